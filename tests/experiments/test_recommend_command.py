"""The recommendation entry point as a user runs it, on digits in a tiny setting: a budget
that stops new batch sizes, a rerun that resumes, and the report."""

import subprocess
import sys

from conftest import REPO_ROOT


def test_recommend_runs_within_a_budget_resumes_and_reports(tmp_path):
    command = [sys.executable, "-m", "experiments.recommend", "--config=configs/default.py",
               f"--workdir={tmp_path}", "--config.epochs=1", "--config.num_seeds=2",
               "--config.batch_sizes=(128, 256)",
               "--config.base_lrs=(0.000244140625, 0.0009765625)"]
    # A budget spent by the first batch size: m = 256 does not start.
    done = subprocess.run(command + ["--budget_minutes=0.0001"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not started" in done.stderr and not (tmp_path / "m256" / "results.csv").exists()
    text = (tmp_path / "recommendation.md").read_text()
    assert "1 batch size, 2 η̃, 2 seeds per point" in text
    # The answer says it is from m = 128 alone (it once recommended m = 128 without a word
    # of m = 256, the budget's cut told only in the log).
    assert "**Not run yet: m = 256** of the sweep's batch sizes" in text
    assert "**Not run yet: m = 256**" in (tmp_path / "summary.md").read_text()
    assert "No other m trained to compare with m = 128." in text

    # The rerun skips m = 128 and trains m = 256; the report covers both.
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "m128: complete, skipped" in done.stderr
    text = (tmp_path / "recommendation.md").read_text()
    assert text.strip() in done.stdout  # printed too
    assert "2 batch sizes, 2 η̃, 2 seeds per point" in text and "Not run yet" not in text
    assert "## 1. Recommended" in text and "Setting: batch size " in text
    assert "| 128 |" in text and "| 256 |" in text
    assert text.count("- **\"") == 4
    assert (tmp_path / "figures" / "accuracy_vs_lr.png").is_file()
