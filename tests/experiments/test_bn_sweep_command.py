"""The ghost-BN entry point as a user runs it: η̃ per m from an earlier batch sweep."""

import csv
import math
import os
import subprocess
import sys

from conftest import REPO_ROOT
from smallbatch_jax.run import results


def test_bn_sweep_trains_each_m_and_m_bn_at_the_earlier_sweeps_best_lr(tmp_path):
    earlier = tmp_path / "batch_sweep"
    os.makedirs(earlier)
    best = {16: 2.0**-6, 32: 2.0**-7}
    rows = [{field: "" for field in results.SUMMARY_FIELDS} | {
        "batch_size": m, "bn_batch_size": m, "base_lr": lr, "seed": 0,
        "median_test_metric": 0.9 if lr == best[m] else 0.5}
        for m in best for lr in (2.0**-8, 2.0**-7, 2.0**-6)]
    results.write_csv(earlier / "results.csv", rows, results.SUMMARY_FIELDS)

    workdir = tmp_path / "bn_sweep"
    command = [sys.executable, "-m", "experiments.bn_sweep", "--config=configs/default.py",
               f"--workdir={workdir}", "--config.model=small_cnn_bn", "--config.epochs=1",
               "--config.last_epochs=1", "--config.batch_sizes=(16, 32)",
               "--config.bn_batch_sizes=(4, 16)", f"--config.lr_from={earlier}"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(workdir / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert [(r["batch_size"], r["bn_batch_size"], float(r["base_lr"])) for r in table] == [
        ("16", "4", best[16]), ("16", "16", best[16]), ("32", "4", best[32]),
        ("32", "16", best[32])]
    accuracies = [float(r["median_test_metric"]) for r in table]
    assert all(0.2 < a <= 1 for a in accuracies)  # one epoch of digits learns something
    # Ghost BN changes training: m = 16 with m_BN = 4 and with m_BN = 16 differ.
    assert not math.isclose(float(table[0]["final_train_loss"]),
                            float(table[1]["final_train_loss"]))
    summary = (workdir / "summary.md").read_text()
    assert f"| 16 | 2^-6 | {accuracies[0]:.4f} | {accuracies[1]:.4f} |" in summary
    assert (workdir / "figures" / "accuracy_vs_bn_batch_size.svg").is_file()

    # experiments.plot recognises a ghost-BN workdir and redraws its figures and summary.
    os.remove(workdir / "summary.md")
    os.remove(workdir / "figures" / "bn_heat_map.png")
    done = subprocess.run([sys.executable, "-m", "experiments.plot", f"--workdir={workdir}"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (workdir / "summary.md").read_text() == summary
    assert (workdir / "figures" / "bn_heat_map.png").is_file()
