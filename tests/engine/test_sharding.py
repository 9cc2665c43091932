import json
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np

from conftest import REPO_ROOT
from smallbatch_jax.engine.sharding import pad_lanes, padded_num_lanes


def test_padding_repeats_the_last_lane():
    assert [padded_num_lanes(k, 4) for k in (1, 4, 5, 13)] == [4, 4, 8, 16]
    tree = {"lr": jnp.array([0.1, 0.2, 0.3]), "w": jnp.arange(6.0).reshape(3, 2)}
    padded = pad_lanes(tree, 5)
    np.testing.assert_allclose(padded["lr"], [0.1, 0.2, 0.3, 0.3, 0.3])
    np.testing.assert_allclose(padded["w"][3:], [[4.0, 5.0], [4.0, 5.0]])
    assert pad_lanes(tree, 3) is not None and pad_lanes(tree, 3)["lr"].shape == (3,)


# Runs in a fresh process: the device count is fixed when JAX starts.
FOUR_DEVICES = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    sys.path.insert(0, "tests")
    from conftest import *  # noqa
    from smallbatch_jax.data import load_digits, make_dataset
    from smallbatch_jax.engine.lanes import LaneGrid
    from smallbatch_jax.models import create_model
    from smallbatch_jax.models.conv import conv_layer
    from smallbatch_jax.engine.sharding import pad_lanes
    from smallbatch_jax.engine.strategy import Strategy
    from smallbatch_jax.engine import DeviceBatches, LaneStep, LaneTrainer, fit, plan_for

    d = load_digits()
    ds = make_dataset("digits", d.train_images[:64], d.train_labels[:64], d.test_images[:40],
                      d.test_labels[:40], 10)
    grid = LaneGrid((0,), tuple(2.0**-k for k in (9, 8, 7, 6, 5)), 5e-4, 0.0, 0.0)
    out = {"devices": jax.device_count()}
    whole, groups = Strategy(conv="patches"), Strategy(conv="patches", lanes_per_program=2)
    one, four = jax.devices()[:1], jax.devices()
    for name, devices, strategy in (("one", one, whole), ("four", four, whole),
                                    ("groups_one", one, groups), ("groups_four", four, groups)):
        lane_step = LaneStep(create_model("small_cnn_bn", 10, conv=conv_layer("patches")),
                             batch_size=8, image_shape=(8, 8, 1))
        trainer = LaneTrainer(lane_step, plan_for(strategy, 8, devices=devices))
        state, hparams, source = trainer.start(jnp.asarray([0]), pad_lanes(grid.hparams(), 8),
                                               DeviceBatches(ds, 8, 8))
        state, history = fit(trainer, state, hparams, source, (0,), epochs=2)
        kernel = state.lanes.params["Conv_0"]["kernel"]
        out[name] = {"kernel": np.asarray(kernel).tolist(),
                     "accuracy": np.stack(history.test_metric).tolist(),
                     "kernel_devices": len(kernel.sharding.device_set),
                     "traces": dict(trainer.traces)}
    print("RESULT" + json.dumps(out))
""")


def test_lanes_over_four_devices_match_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", FOUR_DEVICES], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["devices"] == 4
    one, four = out["one"], out["four"]
    assert one["kernel_devices"] == 1 and four["kernel_devices"] == 4
    np.testing.assert_allclose(four["kernel"], one["kernel"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(four["accuracy"], one["accuracy"])
    assert four["traces"]["train"] == 1
    # Groups of 2 lanes dealt out over the four devices: the same programs on other devices.
    groups_one, groups_four = out["groups_one"], out["groups_four"]
    assert groups_four["kernel_devices"] == 1  # gathered back on the first device
    np.testing.assert_array_equal(groups_four["kernel"], groups_one["kernel"])
    np.testing.assert_array_equal(groups_four["accuracy"], groups_one["accuracy"])
    np.testing.assert_allclose(groups_four["kernel"], one["kernel"], rtol=1e-5, atol=1e-6)


def test_lr_sweep_on_four_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "experiments.lr_sweep", "--config=configs/default.py",
               f"--workdir={tmp_path}", "--config.epochs=1", "--config.batch_size=64",
               # 'auto' runs m = 64 on one device on CPU; patches split lanes over devices.
               "--config.strategy.preset=patches",
               "--config.base_lrs=(0.001, 0.002, 0.004, 0.008, 0.016)"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 4 device(s)" in done.stderr
    with open(tmp_path / "results.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + 5  # the padding lanes are dropped


CORES = textwrap.dedent("""
    import json, os
    import jax
    from smallbatch_jax.engine.sharding import use_cpu_cores
    from smallbatch_jax.engine.strategy import PRESETS
    from smallbatch_jax.engine import plan_for
    asked = use_cpu_cores()
    used = lambda name, k: len(plan_for(PRESETS[name], k).devices)
    several = lambda n: None if n < 2 else n
    print("RESULT" + json.dumps({
        "asked": asked, "devices": jax.device_count(),
        "mesh": {k: several(used("patches", k)) for k in (1, 2, 13)},
        "sequential": several(used("sequential", 13))}))
""")


def _run_cores(*envs):
    """CORES's result in each environment (the processes run at once)."""
    processes = [subprocess.Popen([sys.executable, "-c", CORES], cwd=REPO_ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**env, "JAX_PLATFORMS": "cpu"}) for env in envs]
    outs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-3000:]
        outs.append(json.loads(stdout.split("RESULT", 1)[1]))
    return outs


def test_use_cpu_cores_gives_one_device_per_core():
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
    out, = _run_cores(env)
    cores = len(os.sched_getaffinity(0))
    assert out["asked"] == out["devices"] == cores
    # At most one device per lane; one lane runs on one device.
    assert out["mesh"] == {"1": None, "2": None if cores < 2 else 2,
                           "13": None if cores < 2 else min(cores, 13)}
    assert out["sequential"] == (None if cores < 2 else min(cores, 13))


def test_use_cpu_cores_leaves_a_users_choice_alone():
    out, flagged = _run_cores(
        {**os.environ, "JAX_NUM_CPU_DEVICES": "3"},
        {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=5"})
    assert out["devices"] == 3 and out["mesh"]["13"] == 3
    assert flagged["devices"] == 5
