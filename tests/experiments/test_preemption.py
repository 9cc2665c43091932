"""Preemption, for real: `lr_sweep` and `batch_sweep` killed with SIGKILL at several moments
(while compiling, in the middle of training, while a checkpoint is being written), then the
same command run again. Every output file must equal an uninterrupted run's, bit for bit
(wall times aside), and nothing half-written may remain."""

import csv
import os
import signal
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, shared_across_workers

# batch_sizes: the killed batch sweep's; the lr_sweep runs (m = 16) carry it too, so that
# their config.json is that of the sweep's uninterrupted m16 run, their reference.
RUN = ["--config=configs/default.py", "--config.epochs=4", "--config.batch_size=16",
       "--config.base_lrs=(0.001953125, 0.0078125)", "--config.checkpoint.every_epochs=1",
       "--config.batch_sizes=(16, 32)"]
STEPS_PER_EPOCH = 1438 // 16  # digits' training split at m = 16
# Runs the module named by its arguments (as `python -m` would) and kills it (SIGKILL)
# itself, at an exact moment of its progress, whatever the machine's load:
# - KILL_AFTER_LOG: when it logs the last of these "|"-separated texts (each after the one
#   before it);
# - KILL_AT_SAVE=N: as Orbax finalizes the Nth checkpoint (the rename of its temporary
#   directory onto the step's name): the checkpoint is written but not in place.
KILLING = """
import logging, os, runpy, signal, sys
waiting = [text for text in os.environ.get("KILL_AFTER_LOG", "").split("|") if text]
class KillingHandler(logging.Handler):
    def emit(self, record):
        if waiting and waiting[0] in record.getMessage():
            waiting.pop(0)
            if not waiting:
                os.kill(os.getpid(), signal.SIGKILL)
if waiting:
    logging.getLogger().addHandler(KillingHandler())
if "KILL_AT_SAVE" in os.environ:
    from orbax.checkpoint._src.path import atomicity
    calls, finalize = [0], atomicity.AtomicRenameTemporaryPath.finalize
    async def killing_finalize(self, *args, **kwargs):
        calls[0] += self.get_final().name.isdigit()  # the step's directory, not an item's
        if calls[0] == int(os.environ["KILL_AT_SAVE"]):
            os.kill(os.getpid(), signal.SIGKILL)
        return await finalize(self, *args, **kwargs)
    atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
TIMING_COLUMNS = {"wall_seconds", "compile_seconds", "epoch_seconds"}


def _command(module: str, workdir, *extra) -> list[str]:
    return [sys.executable, "-m", module, *RUN, *extra, f"--workdir={workdir}"]


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _killed(command, **when) -> str:
    """Runs `command`, which kills itself (KILLING) when `when` says: log=[texts, in order]
    (JAX logs each program it compiles too) or save=N; returns its log."""
    python, *module = command
    env = dict(os.environ, KILL_AFTER_LOG="|".join(when.get("log", ())), JAX_LOG_COMPILES="1")
    if "save" in when:
        env["KILL_AT_SAVE"] = str(when["save"])
    done = subprocess.run([python, "-c", KILLING, *module[1:]], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    return done.stderr


def _rows(path) -> list[dict]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS}
                for row in csv.DictReader(f)]


def assert_same_run(run, reference):
    """The files of `run` equal those of `reference` (timing columns aside); nothing else
    is left but the lock file (run_directory.py)."""
    assert sorted(os.listdir(run)) == sorted(os.listdir(reference)) == [
        ".lock", "config.json", "curves.csv", "results.csv", "state.msgpack"]
    for name in ("results.csv", "curves.csv"):
        assert _rows(run / name) == _rows(reference / name), name
    assert (run / "state.msgpack").read_bytes() == (reference / "state.msgpack").read_bytes()
    assert (run / "config.json").read_text() == (reference / "config.json").read_text()


def _uninterrupted_sweep(workdir):
    _run(_command("experiments.batch_sweep", workdir))


@pytest.fixture
def straight(tmp_path_factory):
    """An uninterrupted batch sweep of RUN (m = 16, 32), made once for every test here."""
    return shared_across_workers(tmp_path_factory, "preemption_straight", _uninterrupted_sweep)


@pytest.fixture
def reference(straight):
    """An uninterrupted run of RUN at m = 16: the straight sweep's (the same config, so the
    same files as `lr_sweep` writes; batch_sweep runs lr_sweep's train_and_evaluate)."""
    return straight / "m16"


def _damage_arrays(checkpoint):
    """Truncates every array file of a checkpoint (its OCDBT data files)."""
    for root, _, names in os.walk(checkpoint):
        for name in names:
            if os.path.basename(root) == "d":
                path = os.path.join(root, name)
                with open(path, "r+b") as f:
                    f.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize("moment", ["compiling", "training", "saving", "damaged"])
def test_a_killed_run_resumes_to_the_same_files(tmp_path, request, moment):
    """compiling: killed before any checkpoint, so the rerun starts over: the same config and
    seed in a new process give the same files, bit for bit. damaged: the newest checkpoint
    left by the kill is truncated; the one before is used (and the damaged one removed)."""
    workdir = tmp_path / "run"
    command = _command("experiments.lr_sweep", workdir)
    if moment == "compiling":  # after the plan is made, as the training program compiles
        _killed(command, log=["steps/epoch", "Compiling jit(_train)"])
        assert not os.listdir(workdir / "checkpoints")
    elif moment == "training":  # epoch 1's checkpoint is complete before epoch 2's line
        _killed(command, log=["epoch 2/4"])
        assert os.listdir(workdir / "checkpoints")
    elif moment == "saving":  # inside the rename that completes epoch 2's checkpoint
        _killed(command, save=2)
        left = os.listdir(workdir / "checkpoints")
        assert str(STEPS_PER_EPOCH) in left and str(2 * STEPS_PER_EPOCH) not in left
    else:
        _killed(command, save=3)
        _damage_arrays(workdir / "checkpoints" / str(2 * STEPS_PER_EPOCH))
    again = _run(command)
    if moment != "compiling":
        assert "resumed from" in again.stderr
    if moment == "damaged":
        assert f"checkpoints/{2 * STEPS_PER_EPOCH} cannot be read" in again.stderr
        assert "at epoch 1 of 4" in again.stderr
    # (Asked for last: while another worker makes it, this one killed and reran meanwhile.)
    assert_same_run(workdir, request.getfixturevalue("reference"))


def test_a_killed_batch_sweep_resumes_its_unfinished_run(tmp_path, request):
    killed = tmp_path / "killed"
    command = _command("experiments.batch_sweep", killed)
    log = _killed(command, log=["run 2 of 2 (m = 32)", "epoch 3/4"])
    assert "m16: complete" not in log
    again = _run(command)
    assert "m16: complete, skipped" in again.stderr and "resumed from" in again.stderr
    straight = request.getfixturevalue("straight")  # (asked for last, as above)
    for m in (16, 32):
        assert_same_run(killed / f"m{m}", straight / f"m{m}")
    assert _rows(killed / "results.csv") == _rows(straight / "results.csv")
