import os

from smallbatch_jax.run import results
from smallbatch_jax.run.build import prepare
from smallbatch_jax.study import sweep
from smallbatch_jax.study.sweep import Run, merge_until_stable
from test_batch_sweep import _config, _fake_run, _read

RUNS = [Run("m8", {"batch_size": 8}), Run("m16", {"batch_size": 16}),
        Run("m32", {"batch_size": 32})]


def _finish(workdir, run):
    _fake_run(prepare(sweep.config_for(_config(), run)), os.path.join(workdir, run.name))


def test_a_run_that_completes_during_the_merge_is_merged_too(tmp_path):
    # Two job-array tasks ending at once: while this task merges m8 and m16, the other
    # finishes m32. A single merge would leave a table without m32 if this task wrote last.
    workdir = str(tmp_path)
    for run in RUNS[:2]:
        _finish(workdir, run)
    reported = []

    def report(rows):
        reported.append(sorted({int(r["batch_size"]) for r in rows}))
        if len(reported) == 1:
            _finish(workdir, RUNS[2])  # the other task, meanwhile

    rows = merge_until_stable(workdir, RUNS, report)
    assert reported == [[8, 16], [8, 16, 32]]
    assert sorted({int(r["batch_size"]) for r in _read(tmp_path / "results.csv")}) == [8, 16, 32]
    assert len(rows) == 3 * len(_config().base_lrs)


def test_merging_an_unchanged_workdir_reports_once(tmp_path):
    _finish(str(tmp_path), RUNS[0])
    reported = []
    merge_until_stable(str(tmp_path), RUNS, reported.append)
    assert len(reported) == 1


def test_replacing_leaves_the_old_file_whole_when_writing_fails(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("old")
    try:
        with results.replacing(str(path)) as temporary:
            with open(temporary, "w") as f:
                f.write("half")
            raise OSError("disk full")
    except OSError:
        pass
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["summary.md"]
    with results.replacing(str(path)) as temporary, open(temporary, "w") as f:
        f.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["summary.md"]


def test_the_eta_fits_a_step_time_of_latency_plus_per_example_cost(tmp_path):
    """A step at m = 32 on a CPU takes ~8× one at m = 4: an ETA at the nearest m's speed per
    step said 485 s for two runs that took ~75 minutes."""
    from types import SimpleNamespace

    runs = [Run(f"m{m}", {"batch_size": m}) for m in (2, 8, 16, 128)]

    def finish(run, steps, seconds):
        os.makedirs(tmp_path / run.name)
        results.write_csv(str(tmp_path / run.name / "results.csv"),
                          [{"batch_size": run.overrides["batch_size"], "steps": steps,
                            "wall_seconds": seconds}], results.SUMMARY_FIELDS)

    data = SimpleNamespace(num_train=6400)
    spec = lambda m, epochs: SimpleNamespace(batch_size=m, schedule=SimpleNamespace(
        epochs=epochs), dataset=data)
    left = [(runs[2], spec(16, 2)),  # 800 steps
            (runs[3], spec(128, 1))]  # 50 steps
    assert sweep.eta_text(str(tmp_path / "none"), runs, left).startswith("?")
    finish(runs[0], 100, 10.0)  # 0.1 s/step at m = 2
    # One m cannot tell latency from per-example cost: the range between the two, from
    # 850 × 0.1 s (constant) to 800 × 0.8 s + 50 × 6.4 s (proportional to m).
    assert sweep.eta_text(str(tmp_path), runs, left).startswith("85 to 960 s ")
    finish(runs[1], 50, 10.0)  # 0.2 s/step at m = 8
    assert sweep.seconds_per_step(str(tmp_path), runs) == {2: 0.1, 8: 0.2}
    # 0.2 s/step = 1/15 s + 8 × 1/60 s: m = 16 → 1/3 s/step, m = 128 → 2.2 s/step
    assert sweep.eta_text(str(tmp_path), runs, left).startswith(f"{800 / 3 + 50 * 2.2:.0f} s ")


def test_the_eta_fit_keeps_both_terms_non_negative():
    assert sweep._fit_step_time({4: 0.3, 32: 0.2}) == (0.25, 0.0)  # faster at larger m: noise
    latency, per_example = sweep._fit_step_time({2: 0.1, 4: 0.4, 8: 0.8})
    assert latency == 0.0 and per_example > 0


def test_a_sweep_says_which_run_of_how_many_it_trains(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sweep, "train", _fake_run)
    config = _config(batch_sizes=(8, 16, 32))
    _finish(str(tmp_path), RUNS[0])
    with caplog.at_level("INFO"):
        sweep.run_sweep(config, RUNS, str(tmp_path), lambda rows: None)
    assert "m8: complete, skipped" in caplog.text
    assert "run 2 of 3 (m = 16)" in caplog.text and "run 3 of 3 (m = 32)" in caplog.text
    assert "ETA of the 2 runs left" in caplog.text


def test_a_spent_budget_starts_no_new_run_but_the_first_always_starts(tmp_path, monkeypatch):
    """A budget already spent when the sweep starts (e.g. a busy machine's slow start) still
    trains the first unfinished run; the next ones wait for a rerun."""
    trained = []
    monkeypatch.setattr(sweep, "train",
                        lambda spec, w: trained.append(spec.batch_size) or _fake_run(spec, w))
    clock = iter(range(0, 10_000, 100))  # every reading 100 s after the last
    monkeypatch.setattr(sweep.time, "perf_counter", lambda: float(next(clock)))
    config = _config(batch_sizes=(8, 16, 32))
    sweep.run_sweep(config, RUNS, str(tmp_path), lambda rows: None, budget_minutes=1.0)
    assert trained == [8]
    sweep.run_sweep(config, RUNS, str(tmp_path), lambda rows: None, budget_minutes=1.0)
    assert trained == [8, 16]


def test_a_second_process_on_the_same_sweep_stops_before_training(tmp_path, monkeypatch):
    """(flock locks belong to an open file, so a second claim in this process stands for a
    second process.)"""
    import pytest

    from smallbatch_jax.run.directory import LockedError, claim

    trained = []
    monkeypatch.setattr(sweep, "train",
                        lambda spec, w: trained.append(spec.batch_size) or _fake_run(spec, w))
    config = _config(batch_sizes=(8, 16, 32))
    with claim(str(tmp_path), ".lock_task0of1"):  # a sweep already running, unsplit
        with pytest.raises(LockedError, match="in use by another process"):
            sweep.run_sweep(config, RUNS, str(tmp_path), lambda rows: None)
        assert trained == []
        # A task of a split sweep is another task: it trains its own runs.
        sweep.run_sweep(config, RUNS, str(tmp_path), lambda rows: None, 1, 2)
        assert trained == [16]


def test_runs_written_before_the_metric_was_configurable_merge_with_new_ones(tmp_path):
    """An old run's results.csv (median_test_accuracy, no metric column) and a new run's
    merge into one table under today's names, read as accuracy."""
    old, new = tmp_path / "m2", tmp_path / "m8"
    old.mkdir(), new.mkdir()
    (old / "results.csv").write_text("batch_size,base_lr,median_test_accuracy,"
                                     "final_test_accuracy\n2,0.5,0.7,0.75\n")
    (new / "results.csv").write_text("batch_size,base_lr,metric,higher_is_better,"
                                     "median_test_metric,final_test_metric\n"
                                     "8,0.5,accuracy,True,0.6,0.65\n")
    rows, names = sweep.merge_results(str(tmp_path), [Run("m2", {}), Run("m8", {})])
    assert names == ["m2", "m8"]
    merged = results.read_csv(str(tmp_path / "results.csv"))
    assert [r["median_test_metric"] for r in merged] == [0.7, 0.6]
    assert results.metric_of(merged) == ("accuracy", True)


def test_a_run_may_be_passed_over_and_each_trained_run_is_followed_by_after_run(tmp_path,
                                                                                 monkeypatch):
    """`may_start` passes a run over (left for a rerun) and the sweep asks about the next;
    `after_run` follows every run that trained, before the next starts."""
    events = []
    monkeypatch.setattr(sweep, "train", lambda spec, w:
                        events.append(("train", spec.batch_size)) or _fake_run(spec, w))
    config = _config(batch_sizes=(8, 16, 32))
    _finish(str(tmp_path), RUNS[0])  # finished before: neither asked about nor trained
    asked = []

    def may_start(run, one):
        asked.append((run.name, one.batch_size))
        return one.batch_size != 16

    sweep.run_sweep(config, RUNS, str(tmp_path), lambda rows: None, may_start=may_start,
                    after_run=lambda run: events.append(("after", run.name)))
    assert asked == [("m16", 16), ("m32", 32)]
    assert events == [("train", 32), ("after", "m32")]
    assert not sweep.is_complete(str(tmp_path), RUNS[1])
    # A rerun without the gate trains what was passed over.
    sweep.run_sweep(config, RUNS, str(tmp_path), lambda rows: None)
    assert events[-1] == ("train", 16)


def test_a_users_own_validation_split_left_unused_by_a_sweep_is_named(caplog):
    """sbj.make_dataset(…, validation=(x_val, y_val)) with config.validation at its default,
    0: the split the user made for choosing is trained on, and the sweep chooses on the test
    split; the results say "test", the log said so at INFO only, which Python does not show."""
    import numpy as np

    from smallbatch_jax.data import load_digits, make_dataset

    digits = load_digits()
    x, y = digits.train_images, digits.train_labels
    xt, yt = digits.test_images, digits.test_labels
    data = make_dataset("mine", x[:1200], y[:1200], xt, yt, validation=(x[1200:], y[1200:]))
    with caplog.at_level("WARNING"):
        sweep.prepare_runs(_config(), RUNS[:1], data)
    assert ("mine: your own validation split (238 examples) is trained on with the rest, and "
            "every choice of m and η̃ is made on the test split: config.validation is 0"
            in caplog.text)
    caplog.clear()
    with caplog.at_level("WARNING"):
        specs = sweep.prepare_runs(_config(validation=0.1), RUNS[:1], data)
        sweep.prepare_runs(_config(), RUNS[:1], make_dataset("mine", x, y, xt, yt))
    assert "your own validation split" not in caplog.text
    np.testing.assert_array_equal(specs[0].dataset.test_images, x[1200:])


def test_a_sweeps_set_up_says_a_models_warning_once(caplog):
    """Every run's set-up checks the same model: a sweep said its warning once per m
    (those that name their m differ, and each is said)."""
    import flax.linen as nn
    import numpy as np

    class IdleDropout(nn.Module):  # (warned of: it drops nothing in training)
        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(3)(nn.Dropout(0.5, deterministic=True)(nn.Dense(8)(x)))

    from smallbatch_jax.data import make_dataset
    rng = np.random.default_rng(0)
    data = make_dataset("mine", rng.normal(size=(300, 5)).astype(np.float32),
                        np.arange(300) % 3, rng.normal(size=(30, 5)).astype(np.float32),
                        np.arange(30) % 3)
    from smallbatch_jax.api import _prepare
    config, data, _ = _prepare(_config(), IdleDropout(), data, None)
    runs = [Run(f"m{m}", {"batch_size": m}) for m in (2, 4, 8)]
    with caplog.at_level("WARNING"):
        sweep.prepare_runs(config, runs, data, IdleDropout())
    assert caplog.text.count("Dropout Dropout_0 drop nothing in training") == 1
    # Only within the sweep's set-up: a second sweep says it again.
    with caplog.at_level("WARNING"):
        sweep.prepare_runs(config, runs[:1], data, IdleDropout())
    assert caplog.text.count("Dropout Dropout_0 drop nothing in training") == 2
