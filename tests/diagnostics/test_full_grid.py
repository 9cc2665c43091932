"""The full-size grid timing (diagnostics/full_grid.py), in its tiny setting: every
(precision, m) timed once, the grid's minutes a sum of what was measured, a rerun times
nothing new, and the budget stops before a new row."""

import json
import subprocess
import sys

import pytest

from smallbatch_jax.diagnostics.full_grid import TimedRun, fig1_minutes
from conftest import REPO_ROOT


def test_the_grid_is_timed_row_by_row_and_resumes(tmp_path):
    from smallbatch_jax.config_args import load_config
    from smallbatch_jax.diagnostics.full_grid import time_full_grid

    overrides = ["--config.run.strategy.preset=auto", "--config.run.model=small_cnn",
                 "--config.image_shape=(8, 8, 1)"]  # (the tiny setting with a quick model)
    config = load_config(f"{REPO_ROOT}/configs/full_grid_timing.py:tiny")
    with config.unlocked():
        config.run.strategy.preset, config.run.model = "auto", "small_cnn"
        config.image_shape = (8, 8, 1)
    # A spent budget starts nothing (and leaves the rows to a rerun).
    assert time_full_grid(config, str(tmp_path / "none"), budget_minutes=1e-9)["rows"] == []
    record = time_full_grid(config, str(tmp_path))
    rows = record["rows"]
    assert json.loads((tmp_path / "full_grid.json").read_text())["rows"] == rows
    assert [(r["precision"], r["batch_size"]) for r in rows] == [
        ("highest", 2), ("highest", 8), ("default", 2), ("default", 8)]
    for row in rows:
        # Each epoch's time holds its evaluation (by construction, not a race between two
        # timings: whether the first epoch outlasts the second depends on the compilation
        # cache and the machine's load).
        assert row["first_epoch_s"] > row["evaluation_s"] > 0
        assert row["epoch_s"] > row["evaluation_s"]
        assert row["compile_s"] > 0 and row["num_lanes"] == 13
        assert row["steps_per_epoch"] == 64 // row["batch_size"]
    # The grid's time: build + first epoch + (epochs − 1) × the second epoch, summed over m.
    expected = sum(r["build_s"] + r["first_epoch_s"] + 2 * r["epoch_s"]
                   for r in rows if r["precision"] == "highest") / 60
    assert fig1_minutes(rows, 3)["highest"] == pytest.approx(expected)
    table = (tmp_path / "full_grid.md").read_text()
    assert "| highest | 8 |" in table and "minutes over m = 2, 8" in table
    # The command line, rerun on the same workdir: it times nothing new.
    command = [sys.executable, "-m", "experiments.full_grid_timing",
               "--config=configs/full_grid_timing.py:tiny", f"--workdir={tmp_path}",
               *overrides]
    again = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((tmp_path / "full_grid.json").read_text())["rows"] == rows


def test_a_row_s_minutes():
    run = TimedRun(batch_size=2, precision="default", strategy={}, build_s=30.0,
                   first_epoch_s=20.0, epoch_s=10.0, evaluation_s=1.0, compile_s=25.0,
                   live_lanes=5, num_lanes=13, steps_per_epoch=25_000)
    assert run.run_minutes(82) == pytest.approx((30 + 20 + 81 * 10) / 60)
