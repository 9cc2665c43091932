"""The entry point, end to end, as a user runs it (a subprocess, real flags)."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from smallbatch_jax.run.checkpoint import restore_state
from conftest import ALL_CONFIGS, REPO_ROOT, parse, stopping_fit


def run_lr_sweep(workdir, *overrides, config="configs/default.py"):
    command = [sys.executable, "-m", "experiments.lr_sweep", f"--config={config}",
               f"--workdir={workdir}", *overrides]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_lr_sweep_on_the_embedded_data(tmp_path):
    workdir = tmp_path / "run"
    done = run_lr_sweep(workdir, "--config.epochs=3", "--config.batch_size=32",
                        "--config.base_lrs=(0.0009765625, 0.00390625, 0.25, 4.0)")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All lanes share initial weights and data order" in done.stdout
    assert "median acc (last 3)" in done.stdout  # a 3-epoch run: the window is 3
    assert "4 lanes (4 η̃ × 1 seeds)" in done.stderr and "best η̃=2^" in done.stderr
    assert "All lanes share" in json.loads((workdir / "config.json").read_text())["lanes"]

    config = json.loads((workdir / "config.json").read_text())
    assert config["config"]["batch_size"] == 32 and config["strategy"]["lane_map"] in ("vmap", "unrolled")
    rows = read_csv(workdir / "results.csv")
    assert [float(r["base_lr"]) for r in rows] == [2.0**-10, 2.0**-8, 2.0**-2, 4.0]
    assert all(r["epochs"] == "3" and r["steps"] == str(3 * (1438 // 32)) for r in rows)
    # 44 steps an epoch, the last decay from step ⌊0.75 · 132⌋ = 99: the median read epochs
    # 1 and 2 before it (evaluated after steps 44 and 88), which the run warned of.
    assert {(r["metric_epochs"], r["metric_epochs_before_decay"]) for r in rows} == {("3", "2")}
    assert ("2 of them (epochs 1–2) are evaluated before the learning rate's last decay (at "
            "epoch 2.25 of 3)") in done.stderr
    # What the times were measured on, and what a constant prediction scores (digits' most
    # frequent training class, on the test split): in every row.
    assert {r["device"] for r in rows} == {config["provenance"]["device"]}
    assert config["provenance"]["device"].startswith("cpu")
    assert len({r["baseline_test_metric"] for r in rows}) == 1
    assert 0.05 < float(rows[0]["baseline_test_metric"]) < 0.15
    # Small η̃ learn digits within 3 epochs; η̃ = 4 (η = 128 at m = 32) blows up.
    assert float(rows[1]["final_test_metric"]) > 0.6
    assert rows[3]["diverged"] == "True" and int(rows[3]["diverged_step"]) >= 0
    assert rows[3]["median_test_metric"] == "nan"
    curves = read_csv(workdir / "curves.csv")
    assert len(curves) == 3 * 4 and {c["epoch"] for c in curves} == {"1", "2", "3"}


def test_the_command_line_takes_a_grid_of_powers_of_two(tmp_path):
    done = run_lr_sweep(tmp_path / "run", "--config.base_lrs=2^-9:2^-7:2", "--config.epochs=1",
                        "--config.batch_size=256", "--config.noise_scale.num_batches=0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [float(r["base_lr"]) for r in read_csv(tmp_path / "run" / "results.csv")] == [
        2.0**-9, 2.0**-7]
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["config"]["base_lrs"] == [2.0**-9, 2.0**-7]
    bad = run_lr_sweep(tmp_path / "bad", "--config.base_lrs=2^-3:2^-9")
    assert bad.returncode == 1 and "the grid runs from the smaller exponent up" in bad.stderr


def test_an_unknown_config_key_on_the_command_line_is_named_without_a_traceback(tmp_path):
    done = run_lr_sweep(tmp_path / "typo", "--config.optimiser=adam")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: unknown config key 'optimiser'" in done.stderr
    assert 'Did you mean "optimizer" instead of "optimiser"?' in done.stderr
    assert not (tmp_path / "typo").exists()


def test_a_tuple_key_given_twice_on_the_command_line_is_refused(tmp_path):
    """ml_collections joins a tuple's repeated overrides: a script's appended
    --config.base_lrs meant to replace its default's ran both grids, one sweep."""
    from experiments.entry import repeated_tuple_overrides

    config = parse(f"--config={REPO_ROOT}/configs/default.py", "--config.batch_sizes=(2, 4)",
                   "--config.batch_sizes=(8,)")
    assert tuple(config.batch_sizes) == (2, 4, 8)  # (what ml_collections does)
    argv = ["prog", "--config.batch_sizes=(2, 4)", "--config.epochs=3", "--config.batch_sizes",
            "(8,)", "--config.epochs=5"]
    assert repeated_tuple_overrides(argv, config) == (
        "--config.batch_sizes is given 2 times ((2, 4), (8,)): ml_collections joins a tuple's "
        "overrides into (2, 4, 8); give it once, with every value")
    assert repeated_tuple_overrides(argv[:3] + argv[5:], config) == ""  # (numbers: last wins)
    done = run_lr_sweep(tmp_path / "twice", "--config.base_lrs=(0.1, 0.2)",
                        "--config.base_lrs=(0.3,)")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: --config.base_lrs is given 2 times" in done.stderr
    assert not (tmp_path / "twice").exists()


def test_bad_config_fails_fast_with_the_key(tmp_path):
    done = run_lr_sweep(tmp_path / "bad", "--config.bn_batch_size=3")
    assert done.returncode == 1
    # One line naming the fix, no traceback (it is there with --verbosity=1).
    assert done.stderr.strip().splitlines()[-1] == (
        "error: config.bn_batch_size=3 is invalid; allowed: 0 (BN over the whole batch) or a "
        "positive divisor of batch_size=8")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bad").exists()


def _one_per_file_and_dataset(config_args):
    """Every config file once, and every data set once (each variant's model is checked in
    tests/models, each variant's keys in test_config_checks): compiling all 19 variants'
    programs would take minutes of the suite's budget."""
    chosen, datasets = {}, set()
    for arg in config_args:
        dataset = parse(f"--config={arg}").dataset
        if arg.split(":")[0] not in chosen or dataset not in datasets:
            chosen.setdefault(arg.split(":")[0], []).append(arg)
            datasets.add(dataset)
    return [arg for args in chosen.values() for arg in args]


@pytest.mark.parametrize("config_arg", _one_per_file_and_dataset(ALL_CONFIGS),
                         ids=os.path.basename)
def test_every_config_runs_a_tiny_step(tmp_path, config_arg):
    """Each config, shrunk (two lanes, one epoch of two steps), trains in process on
    tensorflow-datasets' mock data: the path a user with internet takes, offline."""
    import tensorflow_datasets as tfds

    from smallbatch_jax.run.train import train_and_evaluate

    config = parse(f"--config={config_arg}")
    with config.unlocked():
        config.batch_size = max(8, config.bn_batch_size)  # a multiple of m_BN
        config.epochs, config.eval_batch_size = 1, 8
        config.base_lrs = (2.0**-10, 2.0**-8)  # stable η̃: this test is about running
        # The deeper CIFAR ResNets as ResNet-8 (the same blocks and BN, ghost or not: the
        # depth is the models' tests' subject, tests/models); compiling ResNet-32 lanes took
        # over a minute of the suite per config.
        config.model = config.model.replace("resnet32", "resnet8").replace("resnet20",
                                                                            "resnet8")
        if config.dataset == "imagenet2012":
            config.image_size = 32  # a tiny ResNet-50 input
    with tfds.testing.mock_data(num_examples=16):
        rows = train_and_evaluate(config, str(tmp_path / "run"))
    assert len(rows) == 2
    # Every lane trained to the end, or diverged at a recorded step (ResNet-32 without BN
    # does even at small η̃, as in the paper).
    assert all(np.isfinite(r["final_train_loss"]) != r["diverged"] for r in rows)
    assert all((r["diverged_step"] >= 0) == r["diverged"] for r in rows)
    num_train = 1438 if config.dataset == "digits" else 16
    assert all(r["steps"] == num_train // config.batch_size for r in rows)
    state = restore_state(tmp_path / "run" / "state.msgpack", None)
    assert int(np.asarray(state["epoch"])) == 1


def test_memory_budget_runs_lanes_in_groups(tmp_path, caplog):
    from smallbatch_jax.run.train import train_and_evaluate

    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.epochs, config.batch_size = 1, 64
        config.base_lrs = (2.0**-9, 2.0**-8, 2.0**-7, 2.0**-6)
        config.memory_budget_gb = 1e-9
        config.strategy.preset = "patches"  # all lanes in one program unless the budget says
    with pytest.raises(ValueError, match="over the memory budget"):
        train_and_evaluate(config, str(tmp_path / "too_small"))
    config.memory_budget_gb = 0.0
    unlimited = train_and_evaluate(config, str(tmp_path / "all"))
    # A budget that admits two lanes but not four: the same results, in two groups.
    import dataclasses

    import jax

    from smallbatch_jax.data import load_dataset
    from smallbatch_jax.models import create_model
    from smallbatch_jax.models.conv import conv_layer
    from smallbatch_jax.engine.strategy import PRESETS
    from smallbatch_jax.engine import DeviceBatches, LaneStep, Programs, plan_for

    dataset = load_dataset("digits")
    source = DeviceBatches(dataset, 64, 1000)
    steps = source.steps_per_epoch
    lane_step = LaneStep(create_model("small_cnn", 10, conv=conv_layer("patches")), 64,
                         dataset.image_shape)
    program_bytes = lambda lanes: Programs(
        lane_step, plan_for(dataclasses.replace(PRESETS["patches"], lanes_per_program=lanes), 4,
                            precision="highest", devices=jax.local_devices()[:1])
    ).program_bytes(lanes, source.abstract_dispatch(1, steps), steps)
    two = program_bytes(2)
    config.memory_budget_gb = (two + (program_bytes(4) - two) / 4) / 2**30
    with caplog.at_level("INFO"):
        grouped = train_and_evaluate(config, str(tmp_path / "grouped"))
    assert "2 of 4 lanes per program" in caplog.text
    for a, b in zip(unlimited, grouped):  # (a lane that diverged: NaN in both, same step)
        assert a["diverged_step"] == b["diverged_step"]
        assert a["final_train_loss"] == pytest.approx(b["final_train_loss"], rel=1e-5,
                                                      nan_ok=True)
        assert a["final_test_metric"] == pytest.approx(b["final_test_metric"], abs=1e-9,
                                                       nan_ok=True)


def test_resume_refuses_another_config_before_compute_and_survives_a_full_disk(
        tmp_path, monkeypatch, caplog):
    import errno

    from smallbatch_jax.run import train as lr_sweep
    from smallbatch_jax.run.checkpoint import RunCheckpoints
    from smallbatch_jax.run.directory import WorkdirError

    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.epochs, config.batch_size, config.base_lrs = 3, 64, (2.0**-9, 2.0**-7)
    workdir = str(tmp_path / "run")
    monkeypatch.setattr(lr_sweep, "fit", stopping_fit(after_epoch=1))
    with pytest.raises(KeyboardInterrupt):
        lr_sweep.train_and_evaluate(config, workdir)
    monkeypatch.undo()
    assert os.listdir(os.path.join(workdir, "checkpoints")) == [str(1438 // 64)]
    saved = RunCheckpoints(os.path.join(workdir, "checkpoints"))
    compiled_before = saved.newest_progress()["compile_seconds"]
    saved.close()
    assert compiled_before > 0  # (measured: the first epoch compiled the programs)

    # Another grid or seed: refused, naming the keys, before anything is built or compiled.
    other = parse(f"--config={REPO_ROOT}/configs/default.py")
    with other.unlocked():
        other.epochs, other.batch_size, other.base_lrs = 3, 64, (2.0**-9, 2.0**-6)
        other.seed = 1
    monkeypatch.setattr(lr_sweep, "create_run", lambda *a: pytest.fail("compiled"))
    with pytest.raises(ValueError, match=r"another config; differing keys: base_lrs: "
                                         r"\[0.001953125, 0.0078125\] → \[0.001953125, "
                                         r"0.015625\]; seed: 0 → 1\. Run with its config"
                                         r".* To add η̃, seeds or settings to a finished "
                                         r"sweep, .* --merge=<the other>/results.csv"):
        lr_sweep.train_and_evaluate(other, workdir)
    monkeypatch.undo()

    # The disk fills at the next checkpoint: a clear error; epoch 2's curves are whole.
    def full(self, state, progress):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.directory)
    monkeypatch.setattr(RunCheckpoints, "save", full)
    with pytest.raises(WorkdirError, match="No space left on device.*intact.*resumes"):
        lr_sweep.train_and_evaluate(config, workdir)
    monkeypatch.undo()
    assert {row["epoch"] for row in read_csv(os.path.join(workdir, "curves.csv"))} == {"1", "2"}

    # Keys that do not change one run (the sweep's other points, the cadence) may differ.
    with config.unlocked():
        config.batch_sizes = (64, 128)
        config.checkpoint.every_epochs = 2
    with caplog.at_level("INFO"):
        rows = lr_sweep.train_and_evaluate(config, workdir)
    assert "resumed from" in caplog.text and "at epoch 1 of 3" in caplog.text
    assert len(rows) == 2 and rows[0]["epochs"] == 3
    assert rows[0]["compile_seconds"] >= compiled_before  # kept across the resume
    assert sorted(os.listdir(workdir)) == [".lock", "config.json", "curves.csv",
                                           "results.csv", "state.msgpack"]

    # Finished: the same command returns its rows without training (and removes the
    # checkpoints a kill between results.csv and their removal left); another is refused.
    os.makedirs(os.path.join(workdir, "checkpoints", "26"))
    monkeypatch.setattr(lr_sweep, "create_run", lambda *a: pytest.fail("compiled"))
    again = lr_sweep.train_and_evaluate(config, workdir)
    assert not os.path.exists(os.path.join(workdir, "checkpoints"))
    assert [r["median_test_metric"] for r in again] == pytest.approx(
        [r["median_test_metric"] for r in rows])
    assert again[0]["diverged"] is rows[0]["diverged"] and again[0]["epochs"] == 3
    with pytest.raises(ValueError, match="holds the results of a run with another config; "
                                         "differing keys: seed: 0 → 1"):
        lr_sweep.train_and_evaluate(_with(config, seed=1), workdir)
    with pytest.raises(ValueError, match="differing keys: epochs: 3 → 4") as refused:
        lr_sweep.train_and_evaluate(_with(config, epochs=4), workdir)
    assert "--merge" not in str(refused.value)  # (a longer run is no merge of tables)


def _with(config, **overrides):
    import copy
    config = copy.deepcopy(config)
    with config.unlocked():
        config.update(overrides)
    return config


def test_a_run_saved_before_a_config_key_existed_is_the_same_run_at_its_old_value():
    from smallbatch_jax.run.directory import config_differences
    saved = {"model": "alexnet", "base_lrs": [0.5], "checkpoint": {"keep": 2}}
    assert config_differences(saved, {**saved, "objective": "classification"}) == []
    assert config_differences(saved, {**saved, "objective": "regression"}) == [
        "objective: '(absent)' → 'regression'"]
    assert config_differences({**saved, "objective": "regression"},
                              {**saved, "objective": "classification"}) == [
        "objective: 'regression' → 'classification'"]
    assert config_differences(saved, {**saved, "model": "resnet32"}) == [
        "model: 'alexnet' → 'resnet32'"]
    # The sweep section (issue 27): absent before, empty now is the same run; swept is not.
    empty = {key: [] for key in ("weight_decay", "momentum", "beta2", "epsilon", "warmup")}
    assert config_differences(saved, {**saved, "sweep": empty}) == []
    assert config_differences(saved, {**saved, "sweep": {**empty, "weight_decay": [0.0, 5e-4]}}
                              ) == ["sweep.weight_decay: '(absent)' → [0.0, 0.0005]"]
    # strategy.shared_batch (issue 26): absent before, the batch shared as it always was.
    strategy = {"preset": "auto", "lanes_per_program": 0}
    assert config_differences({**saved, "strategy": strategy},
                              {**saved, "strategy": {**strategy, "shared_batch": True}}) == []
    assert config_differences({**saved, "strategy": strategy},
                              {**saved, "strategy": {**strategy, "shared_batch": False}}) == [
        "strategy.shared_batch: '(absent)' → False"]


def test_evaluations_inside_epochs_are_written_and_survive_a_resume(tmp_path, monkeypatch):
    """evals_per_epoch = 3 at m = 64 (22 steps per epoch): evaluations.csv has each lane
    after steps 7, 15, 22, 29, …; a run stopped after epoch 1 and resumed writes the same
    file as one that never stopped; curves.csv and the paper's metric are per epoch still."""
    from smallbatch_jax.run import train as lr_sweep

    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.epochs, config.batch_size, config.base_lrs = 2, 64, (2.0**-9, 2.0**-7)
        config.evals_per_epoch = 3
    straight = tmp_path / "straight"
    lr_sweep.train_and_evaluate(config, str(straight))
    evaluations = read_csv(straight / "evaluations.csv")
    assert [int(r["step"]) for r in evaluations[::2]] == [7, 15, 22, 29, 37, 44]
    assert [float(r["epoch"]) for r in evaluations[4::2]] == [1.0, 29 / 22, 37 / 22, 2.0]
    curves = read_csv(straight / "curves.csv")
    at_epoch_ends = [r for r in evaluations if r["step"] in ("22", "44")]
    assert [r["test_metric"] for r in at_epoch_ends] == [r["test_metric"] for r in curves]
    assert evaluations[0]["test_metric"] != evaluations[4]["test_metric"]

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(lr_sweep, "fit", stopping_fit(after_epoch=1))
    with pytest.raises(KeyboardInterrupt):
        lr_sweep.train_and_evaluate(config, str(resumed))
    monkeypatch.undo()
    assert len(read_csv(resumed / "evaluations.csv")) == 2 * 3
    lr_sweep.train_and_evaluate(config, str(resumed))
    assert read_csv(resumed / "evaluations.csv") == evaluations


def test_an_adam_sweep_names_its_swept_value_eta(tmp_path):
    """Adam sweeps η itself (lr_scaling 'none'): the log and the table say η, not η̃."""
    done = run_lr_sweep(tmp_path / "adam", "--config.optimizer=adam", "--config.epochs=1",
                        "--config.batch_size=64", "--config.base_lrs=(0.0009765625, 0.00390625)")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 lanes (2 η × 1 seeds)" in done.stderr and "best η=2^" in done.stderr
    assert "η̃" not in done.stderr


def test_the_compilation_cache_keeps_programs_and_a_cached_run_is_the_same(tmp_path):
    """The training commands keep their compiled programs in the user's cache directory; a
    second run in another workdir is served from them and writes the same results and final
    state, bit for bit; --compilation_cache=DIR moves the cache, '' turns it off, and a cache
    JAX was given in the environment (the suite's, conftest.py) is respected."""
    def start(workdir, *extra, jax_dir=None):
        # (Without the noise probe: one program fewer to compile, in each of the 5 runs.)
        command = [sys.executable, "-m", "experiments.lr_sweep", "--config=configs/default.py",
                   f"--workdir={workdir}", "--config.epochs=1", "--config.batch_size=64",
                   "--config.base_lrs=(0.001953125,)", "--config.noise_scale.num_batches=0",
                   *extra]
        env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"), JAX_LOG_COMPILES="1")
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        if jax_dir:
            env["JAX_COMPILATION_CACHE_DIR"] = str(jax_dir)
        log = tmp_path / f"{os.path.basename(workdir)}.log"  # (not a pipe: never full)
        with open(log, "w") as f:
            return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                    stderr=f, env=env), log

    def finish(started):
        process, log = started
        process.wait(timeout=600)
        stderr = log.read_text()
        assert process.returncode == 0, stderr[-3000:]
        return stderr

    run = lambda workdir, *extra, jax_dir=None: finish(start(workdir, *extra, jax_dir=jax_dir))
    # The run given its cache by the environment touches no other cache: it runs meanwhile.
    from_environment = tmp_path / "from_environment"
    fourth = start(tmp_path / "fourth", jax_dir=from_environment)

    default = tmp_path / "xdg" / "smallbatch_jax" / "jax"
    assert "cache hit" not in run(tmp_path / "first")
    # (Which quick programs pass the cache's 0.5 s threshold depends on the machine's load:
    # only the training programs, which are always slow to compile, are compared.)
    trains = lambda: sorted(n for n in os.listdir(default) if n.startswith("jit__train"))
    kept = trains()
    assert kept
    assert "Persistent compilation cache hit for 'jit__train'" in run(tmp_path / "second")
    assert trains() == kept
    timing = ("wall_seconds", "compile_seconds")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]
    first, second = (read_csv(tmp_path / name / "results.csv") for name in ("first", "second"))
    assert strip(first) == strip(second)
    # Compiling is measured (run/compile_time.py): the run served from the cache compiled less.
    assert 0 < float(second[0]["compile_seconds"]) < float(first[0]["compile_seconds"])
    assert ((tmp_path / "first" / "state.msgpack").read_bytes()
            == (tmp_path / "second" / "state.msgpack").read_bytes())

    other = tmp_path / "other"
    run(tmp_path / "third", f"--compilation_cache={other}")
    assert any(name.startswith("jit__train") for name in os.listdir(other))
    # '' turns it off, even with programs in the default cache and in the environment's.
    assert "cache hit" not in run(tmp_path / "off", "--compilation_cache=", jax_dir=other)
    finish(fourth)
    assert any(name.startswith("jit__train") for name in os.listdir(from_environment))
