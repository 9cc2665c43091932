"""The cross-sweep summary (Figs 15, 16) as a user runs it, on two finished sweeps' tables."""

import subprocess
import sys

from conftest import REPO_ROOT
from test_bn_sweep import _earlier_sweep

NAN = float("nan")


def _start_compare(tmp_path, sweeps):
    command = [sys.executable, "-m", "experiments.compare", f"--workdir={tmp_path / 'fig15'}",
               f"--sweeps={sweeps}", "--tolerance=0.05"]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(process):
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _compare(tmp_path, sweeps):
    return _finish(_start_compare(tmp_path, sweeps))


def test_compare_draws_figs_15_and_16_from_two_sweeps(tmp_path):
    no_bn = _earlier_sweep(tmp_path / "nobn", {2: {-10: 0.60, -8: 0.62}, 64: {-10: 0.50,
                                                                           -8: NAN}})
    bn = _earlier_sweep(tmp_path / "bn", {2: {-10: 0.70, -8: 0.66}, 64: {-10: 0.72, -8: 0.71}})
    done = _compare(tmp_path, f"no BN={no_bn},BN={bn}")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = (tmp_path / "fig15" / "summary.md").read_text()
    assert "| m | no BN | BN |" in summary
    assert "| 64 | 0.5000 (2^-10, 0 reliable) | 0.7200 (2^-10, 2 reliable) |" in summary
    for name in ("best_accuracy_vs_batch_size", "reliable_lr_range"):
        assert (tmp_path / "fig15" / "figures" / f"{name}.png").is_file()


def test_compare_refuses_a_missing_sweep_or_a_bare_path(tmp_path):
    # (Both commands at once: each fails before it writes anything.)
    missing = _start_compare(tmp_path, f"A={tmp_path / 'none'}")
    bare = _start_compare(tmp_path, str(tmp_path))
    assert "no results.csv in" in _finish(missing).stderr
    assert "label=workdir pairs" in _finish(bare).stderr


def test_a_tolerance_in_points_is_refused_by_both_commands(tmp_path):
    """--tolerance=2 for 2 points of accuracy called every η̃ that trained reliable."""
    sweep = _earlier_sweep(tmp_path / "a", {2: {-10: 0.60, -8: 0.62}})
    started = [subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for command in (
        [sys.executable, "-m", "experiments.plot", f"--workdir={sweep}", "--tolerance=2"],
        [sys.executable, "-m", "experiments.compare", f"--workdir={tmp_path / 'c'}",
         f"--sweeps=a={sweep}", "--tolerance=2"])]
    for done in map(_finish, started):
        assert done.returncode != 0
        assert "flag --tolerance=2: 2.0 is not a number in the range [0.0, 1.0]" in done.stderr
    assert not (tmp_path / "c").exists() and not (tmp_path / "a" / "summary.md").exists()
