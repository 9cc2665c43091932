import csv
import os

import numpy as np
import pytest

from smallbatch_jax.run import results
from smallbatch_jax.run.directory import RunDirectory
from smallbatch_jax.study import sweep
from smallbatch_jax.study.batch_sweep import batch_size_runs, run_batch_sweep
from smallbatch_jax.study.sweep import merge_results, task_runs
from conftest import REPO_ROOT, parse


def _config(**overrides):
    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.batch_sizes = (128, 256)
        config.epochs = 1
        config.base_lrs = (2.0**-12, 2.0**-10)  # stable at every m here
        for key, value in overrides.items():
            config[key] = value
    return config


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("num_tasks", [1, 2, 3, 5])
def test_tasks_split_the_runs_exactly_once(num_tasks):
    accuracies = (2, 4, 8, 16, 32)
    assigned = [m for i in range(num_tasks) for m in task_runs(accuracies, i, num_tasks)]
    assert sorted(assigned) == list(accuracies)
    with pytest.raises(ValueError, match="task_index=3 must lie in"):
        task_runs(accuracies, 3, 3)


def test_sweep_writes_one_tidy_table_and_skips_finished_batch_sizes(tmp_path, monkeypatch):
    """The real trainer, one epoch per m: one row per (m, η̃), every field of the schema."""
    config = _config()
    rows = run_batch_sweep(config, str(tmp_path))
    table = _read(tmp_path / "results.csv")
    assert len(rows) == len(table) == 2 * 2
    assert list(table[0]) == list(results.SUMMARY_FIELDS)
    assert [(int(r["batch_size"]), float(r["base_lr"])) for r in table] == [
        (m, lr) for m in (128, 256) for lr in (2.0**-12, 2.0**-10)]
    assert all(float(r["wall_seconds"]) > 0 and r["bn_batch_size"] == r["batch_size"]
               for r in table)
    assert all(np.isfinite(float(r["median_test_metric"])) for r in table)
    for m in (128, 256):
        assert os.path.isfile(tmp_path / f"m{m}" / "curves.csv")
    # The figures and the summary, from the same table.
    assert os.path.isfile(tmp_path / "figures" / "accuracy_vs_lr.png")
    assert os.path.isfile(tmp_path / "figures" / "reliable_lr_range.svg")
    summary = (tmp_path / "summary.md").read_text()
    best = max(table, key=lambda r: float(r["median_test_metric"]))
    assert f"accuracy {float(best['median_test_metric']):.4f}" in summary
    assert f"Best: m = {best['batch_size']}," in summary
    assert "Steps to target: " in summary and "| m | η̃ | steps | examples | wall time |" in summary
    assert os.path.isfile(tmp_path / "figures" / "steps_to_target.png")

    # Re-running trains nothing that is complete; a missing batch size is run again.
    trained = []
    monkeypatch.setattr(sweep, "train",
                        lambda spec, workdir: trained.append(spec.batch_size) or
                        _fake_run(spec, workdir))
    run_batch_sweep(config, str(tmp_path))
    assert trained == []
    os.remove(tmp_path / "m128" / "results.csv")  # as if that run had been killed
    run_batch_sweep(config, str(tmp_path))
    assert trained == [128]
    assert len(_read(tmp_path / "results.csv")) == 4


def _fake_run(spec, workdir):
    """What run.train.train leaves behind, without training: its config.json and one row
    per η̃."""
    os.makedirs(workdir, exist_ok=True)
    RunDirectory(workdir).write_config({"config": spec.config})
    rows = [{field: "" for field in results.SUMMARY_FIELDS} | {
        "batch_size": spec.batch_size,
        "bn_batch_size": spec.model.bn_batch_size or spec.batch_size, "base_lr": lr,
        "seed": spec.grid.seeds[0], "median_test_metric": 0.5}
        for lr in spec.grid.base_lrs]
    results.write_csv(os.path.join(workdir, "results.csv"), rows, results.SUMMARY_FIELDS)
    return rows


def test_tasks_write_their_own_runs_and_the_merge_sees_all(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "train", _fake_run)
    config = _config(batch_sizes=(2, 4, 8, 16, 32))
    first = run_batch_sweep(config, str(tmp_path), task_index=0, num_tasks=2)
    assert sorted({int(r["batch_size"]) for r in first}) == [2, 8, 32]
    second = run_batch_sweep(config, str(tmp_path), task_index=1, num_tasks=2)
    assert sorted({int(r["batch_size"]) for r in second}) == [2, 4, 8, 16, 32]
    assert len(merge_results(str(tmp_path), batch_size_runs(config))[0]) == 5 * 2


def test_a_rerun_with_another_config_is_refused_before_any_file_changes(tmp_path, monkeypatch):
    """Finished runs of another model, grid or length would be merged into one table with
    the new ones: refused, naming the keys; adding batch sizes stays allowed."""
    monkeypatch.setattr(sweep, "train", _fake_run)
    run_batch_sweep(_config(), str(tmp_path))
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for change, key in ((dict(epochs=2), "epochs: 1 → 2"), (dict(model="small_cnn_bn"), "model: "),
                        (dict(base_lrs=(2.0**-12,)), "base_lrs: ")):
        with pytest.raises(ValueError, match=f"m128 holds the results of a run with another "
                                             f"config; differing keys: {key}"):
            run_batch_sweep(_config(**change), str(tmp_path))
        assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files
    rows = run_batch_sweep(_config(batch_sizes=(64, 128, 256)), str(tmp_path))
    assert sorted({int(r["batch_size"]) for r in rows}) == [64, 128, 256]


def test_a_checkpoint_of_another_config_is_refused_before_any_file_changes(tmp_path,
                                                                            monkeypatch):
    """A run interrupted with another config (its checkpoint's) is refused by the sweep
    before sweep_config.json or anything else is written, naming the keys."""
    import flax
    import jax.numpy as jnp

    from smallbatch_jax.run.build import prepare
    from smallbatch_jax.run.checkpoint import RunCheckpoints

    @flax.struct.dataclass
    class State:
        step: jnp.ndarray

    monkeypatch.setattr(sweep, "train", _fake_run)
    run_batch_sweep(_config(batch_sizes=(128,)), str(tmp_path))
    os.makedirs(tmp_path / "m256")
    checkpoints = RunCheckpoints(str(tmp_path / "m256" / "checkpoints"))
    checkpoints.save(State(jnp.int32(3)), {"config": prepare(_config(batch_size=256,
                                                                     epochs=3)).config})
    checkpoints.close()
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match="m256 holds a checkpoint of a run with another "
                                         "config; differing keys: epochs: 3 → 1"):
        run_batch_sweep(_config(), str(tmp_path))
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == files


@pytest.mark.parametrize("overrides,match", [
    (dict(batch_sizes=()), "config.batch_sizes=.*non-empty"),
    (dict(batch_sizes=(8, 8)), "config.batch_sizes=.*distinct"),
    (dict(batch_sizes=(8, 12), bn_batch_size=8), "config.bn_batch_size=8.*batch_size=12"),
    (dict(batch_sizes=(8, 0)), "config.batch_size=0"),
    # Against the data set: digits has 1438 training examples (m = 64 must not train first).
    (dict(batch_sizes=(64, 4096)), "config.batch_size=4096.*at most the 1438"),
])
def test_every_batch_size_is_checked_before_any_runs(tmp_path, monkeypatch, overrides, match):
    monkeypatch.setattr(sweep, "train", _fake_run)
    with pytest.raises(ValueError, match=match):
        run_batch_sweep(_config(**overrides), str(tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("content,match", [
    (b"this is not a zip archive", "broken.npz is not a readable .npz file"),
    (None, r"broken.npz lacks arrays \[.train_images"),  # readable, without the four arrays
])
def test_bad_data_fails_the_sweep_before_any_run(tmp_path, monkeypatch, content, match):
    """The sweep loads the data once, before its first run: a damaged or mismatched file
    stops it with the loader's message, naming the file, and no run directory is made."""
    import numpy as np

    monkeypatch.setattr(sweep, "train", lambda *a: pytest.fail("trained"))
    path = tmp_path / "broken.npz"
    if content is None:
        np.savez(path, images=np.zeros((4, 32, 32, 3), np.uint8))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        run_batch_sweep(_config(dataset="cifar10", data_dir=str(path)), str(tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists()


def test_a_task_leaves_the_checkpoints_of_another_tasks_runs_alone(tmp_path, monkeypatch):
    """Opening a run's checkpoints removes Orbax's temporaries (a killed save's): done on
    another task's run, it would delete the save that task is writing at that moment."""
    monkeypatch.setattr(sweep, "train", _fake_run)
    writing = tmp_path / "m256" / "checkpoints" / "40.orbax-checkpoint-tmp-1"
    writing.mkdir(parents=True)
    run_batch_sweep(_config(), str(tmp_path), task_index=0, num_tasks=2)  # m128 is task 0's
    assert writing.is_dir()


def test_a_repeated_learning_rate_is_refused_before_any_run(tmp_path):
    """The same η̃ twice trains one lane twice, which a study reads as two seeds (± 0 'over 2
    seeds'). A single run may hold it (the timing diagnostics run K copies of one lane)."""
    with pytest.raises(ValueError, match=r"config.base_lrs=\(0.001, 0.002, 0.001\).*distinct"):
        run_batch_sweep(_config(base_lrs=(0.001, 0.002, 0.001)), str(tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists()


def test_sweeps_compared_share_one_meaning_of_the_swept_value_and_one_metric(tmp_path):
    """An Adam sweep of η itself (lr_scaling 'none') beside an SGD sweep of η̃ = η/m was
    drawn on one η̃ axis; sweeps of different metrics were refused only after their figures
    were drawn."""
    from smallbatch_jax.study.batch_sweep import report_comparison
    from test_analysis import _rows

    def finished(name, **columns):
        os.makedirs(tmp_path / name)
        rows = [{f: "" for f in results.SUMMARY_FIELDS} | row | columns
                for row in _rows({8: {-8: 0.8, -6: 0.7}, 32: {-8: 0.75, -6: 0.6}})]
        results.write_csv(str(tmp_path / name / "results.csv"), rows, results.SUMMARY_FIELDS)
        return str(tmp_path / name)

    sgd, adam = finished("sgd", lr_scaling="linear"), finished("adam", lr_scaling="none")
    mse = finished("mse", lr_scaling="linear", metric="mse", higher_is_better="False")
    with pytest.raises(ValueError, match=r"cannot share an η̃ axis: lr_scaling sgd: linear, "
                                         r"adam: none"):
        report_comparison({"sgd": sgd, "adam": adam}, str(tmp_path / "out"), 0.02)
    with pytest.raises(ValueError, match=r"different metrics cannot be compared: sgd: "
                                         r"accuracy, mse: mse"):
        report_comparison({"sgd": sgd, "mse": mse}, str(tmp_path / "out"), 0.02)
    held = finished("held", lr_scaling="linear", evaluated_on="validation")
    with pytest.raises(ValueError, match=r"evaluated on different splits cannot be compared "
                                         r"\(config.validation\): sgd: test, held: validation"):
        report_comparison({"sgd": sgd, "held": held}, str(tmp_path / "out"), 0.02)
    assert not (tmp_path / "out").exists()  # (nothing drawn)
    report_comparison({"a": sgd, "b": finished("b", lr_scaling="")}, str(tmp_path / "out"), 0.02)
    assert (tmp_path / "out" / "summary.md").is_file()
