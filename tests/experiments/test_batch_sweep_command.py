"""The batch-sweep entry point as a user runs it: two job-array tasks, one workdir."""

import csv
import subprocess
import sys

from conftest import REPO_ROOT


def test_two_tasks_fill_one_table(tmp_path):
    for task in (0, 1):
        command = [sys.executable, "-m", "experiments.batch_sweep", "--config=configs/default.py",
                   f"--workdir={tmp_path}", "--config.epochs=1",
                   "--config.batch_sizes=(128, 256)", "--config.base_lrs=(0.000244140625,)",
                   f"--task_index={task}", "--num_tasks=2"]
        done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "results.csv: 2 rows from 2 of 2 runs" in done.stderr  # both tasks' runs merged
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["batch_size"] for r in rows] == ["128", "256"]

    # The plot entry point redraws from the workdir, with training curves (Fig 4).
    command = [sys.executable, "-m", "experiments.plot", f"--workdir={tmp_path}",
               "--tolerance=0.05", "--curves=128:0.000244140625"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "figures" / "training_curves.png").is_file()
    assert "accuracy ≥ best − 0.05" in (tmp_path / "summary.md").read_text()
