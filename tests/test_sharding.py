import json
import os
import subprocess
import sys
import textwrap

import jax.numpy as jnp
import numpy as np

from conftest import REPO_ROOT
from smallbatch_jax.lowering import Lowering
from smallbatch_jax.sharding import pad_lanes, padded_num_lanes


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
    from smallbatch_jax.lanes import LaneGrid
    from smallbatch_jax.lowering import Lowering
    from smallbatch_jax.models import create_model
    from smallbatch_jax.sharding import lane_mesh, pad_lanes
    from smallbatch_jax.trainer import LaneTrainer, fit, put_on_device

    d = load_digits()
    ds = make_dataset("digits", d.train_images[:64], d.train_labels[:64], d.test_images[:40],
                      d.test_labels[:40], 10)
    grid = LaneGrid((0,), tuple(2.0**-k for k in (9, 8, 7, 6, 5)), 5e-4, 0.0, 0.0)
    out = {"devices": jax.device_count()}
    whole, chunks = Lowering(conv="patches"), Lowering(conv="patches", lane_chunk=2)
    for name, mesh, lowering in (("one", None, whole), ("four", lane_mesh(), whole),
                                 ("chunks_one", None, chunks), ("chunks_four", lane_mesh(), chunks)):
        trainer = LaneTrainer(create_model("small_cnn_bn", 10), batch_size=8, num_train=64,
                              image_shape=(8, 8, 1), lowering=lowering,
                              eval_batch_size=8, mesh=mesh)
        hparams = pad_lanes(grid.hparams(), 8)
        state = trainer.init(jnp.asarray([0]), hparams)
        state, hparams, data = trainer.place(state, hparams, put_on_device(ds, 8))
        state, history = fit(trainer, state, hparams, data, (0,), epochs=2)
        kernel = state.lanes.params["Conv_0"]["kernel"]
        out[name] = {"kernel": np.asarray(kernel).tolist(),
                     "accuracy": np.stack(history.test_accuracy).tolist(),
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
    assert four["traces"]["train_chunk"] == 1
    # Chunks of 2 lanes dealt out over the four devices: the same programs on other devices.
    chunks_one, chunks_four = out["chunks_one"], out["chunks_four"]
    assert chunks_four["kernel_devices"] == 1  # gathered back on the first device
    np.testing.assert_array_equal(chunks_four["kernel"], chunks_one["kernel"])
    np.testing.assert_array_equal(chunks_four["accuracy"], chunks_one["accuracy"])
    np.testing.assert_allclose(chunks_four["kernel"], one["kernel"], rtol=1e-5, atol=1e-6)


def test_lr_sweep_on_four_devices(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    command = [sys.executable, "-m", "experiments.lr_sweep", "--config=configs/default.py",
               f"--workdir={tmp_path}", "--config.epochs=1", "--config.batch_size=64",
               # 'auto' runs m = 64 on one device on CPU; patches split lanes over devices.
               "--config.lowering.preset=patches",
               "--config.base_lrs=(0.001, 0.002, 0.004, 0.008, 0.016)"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on 4 device(s)" in done.stderr
    with open(tmp_path / "results.csv") as f:
        assert len(f.read().strip().splitlines()) == 1 + 5  # the padding lanes are dropped


def test_which_lowerings_use_several_devices_and_how():
    from smallbatch_jax.lowering import PRESETS
    from smallbatch_jax.sharding import mesh_for
    # One vmapped program partitioned over the devices: one device per lane at most.
    assert PRESETS["patches"].splits_over_devices and PRESETS["reference"].splits_over_devices
    assert [PRESETS["patches"].devices_used(k, 4) for k in (1, 3, 13)] == [1, 3, 4]
    # Chunks of lanes dealt out over the devices: one device per chunk at most.
    for name in ("sequential", "patches_chunked"):
        assert PRESETS[name].chunks_over_devices and not PRESETS[name].splits_over_devices
    assert [PRESETS["sequential"].devices_used(k, 4) for k in (1, 3, 13)] == [1, 3, 4]
    assert [PRESETS["patches_chunked"].devices_used(k, 4) for k in (7, 8, 13, 30)] == [1, 2, 2, 4]
    # Neither: every lane unrolled into one program, which runs on one device.
    assert Lowering(lanes="unrolled").devices_used(13, 4) == 1
    # This process has one CPU device: nothing to split over.
    assert mesh_for(PRESETS["patches"], 13) is None


CORES = textwrap.dedent("""
    import json, os
    import jax
    from smallbatch_jax.lowering import PRESETS
    from smallbatch_jax.sharding import mesh_for, use_cpu_cores
    asked = use_cpu_cores()
    meshes = {k: mesh_for(PRESETS["patches"], k) for k in (1, 2, 13)}
    print("RESULT" + json.dumps({
        "asked": asked, "devices": jax.device_count(),
        "mesh": {k: None if v is None else v.devices.size for k, v in meshes.items()},
        "sequential": getattr(mesh_for(PRESETS["sequential"], 13), "size", None)}))
""")


def _run_cores(env):
    done = subprocess.run([sys.executable, "-c", CORES], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env={**env, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT", 1)[1])


def test_use_cpu_cores_gives_one_device_per_core():
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS")}
    out = _run_cores(env)
    cores = len(os.sched_getaffinity(0))
    assert out["asked"] == out["devices"] == cores
    # At most one device per lane; one lane runs on one device.
    assert out["mesh"] == {"1": None, "2": None if cores < 2 else 2,
                           "13": None if cores < 2 else min(cores, 13)}
    assert out["sequential"] == (None if cores < 2 else min(cores, 13))


def test_use_cpu_cores_leaves_a_users_choice_alone():
    out = _run_cores({**os.environ, "JAX_NUM_CPU_DEVICES": "3"})
    assert out["devices"] == 3 and out["mesh"]["13"] == 3
    out = _run_cores({**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=5"})
    assert out["devices"] == 5
