import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from smallbatch_jax.run.directory import LockedError, WorkdirError, claim

HOLD = """
import sys, time
from smallbatch_jax.run.directory import claim
with claim(sys.argv[1]):
    print("holding", flush=True)
    time.sleep(600)
"""


def _holder(directory):
    """A process that holds `directory`'s lock until killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)],
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "holding"
    return process


def test_a_second_process_stops_at_once_and_a_killed_one_leaves_no_stale_lock(tmp_path):
    holder = _holder(tmp_path / "run")
    try:
        start = time.perf_counter()
        with pytest.raises(LockedError, match=rf"run is in use by another process \(pid "
                                              rf"{holder.pid}.*--task_index"):
            with claim(str(tmp_path / "run")):
                pass
        assert time.perf_counter() - start < 1.0  # no waiting
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with claim(str(tmp_path / "run")):  # the dead process's lock is gone with it
        pass
    with claim(str(tmp_path / "run"), ".other"):  # other names are other locks
        with claim(str(tmp_path / "run"), ".lock"):
            pass


def test_a_directory_that_cannot_be_one_fails_before_anything(tmp_path):
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(WorkdirError, match="cannot use .*file as a directory"):
        with claim(str(tmp_path / "file")):
            raise AssertionError("must not run")


def test_disk_errors_inside_say_what_is_intact_and_what_to_do(tmp_path):
    with pytest.raises(WorkdirError, match=r"cannot write .*x.csv: No space left on device\. "
                                           r"Files already in .* are intact.*resumes"):
        with claim(str(tmp_path / "run")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "x.csv"))
    with pytest.raises(KeyError):  # anything else passes through
        with claim(str(tmp_path / "run")):
            raise KeyError("not a disk error")


def test_a_run_directory_loses_what_a_killed_writer_left(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("curves.csv.tmp4242", "state.msgpack.tmp", "results.csv", "notes.tmp.txt"):
        (run / name).write_text("x")
    with claim(str(run)):  # a sweep's shared directory keeps them (tasks may be writing)
        pass
    assert len(os.listdir(run)) == 5
    with claim(str(run), remove_temporaries=True):
        pass
    assert sorted(os.listdir(run)) == [".lock", "notes.tmp.txt", "results.csv"]


def test_fingerprints_are_compared_but_a_run_from_before_them_still_matches():
    from smallbatch_jax.run.directory import config_differences

    old = {"model": "m:Net", "epochs": 2}
    new = old | {"fingerprints": {"model": "ab12", "data": "cd34"}}
    assert config_differences(old, new) == []  # (saved before fingerprints were recorded)
    assert config_differences(new, new) == []
    changed = new | {"fingerprints": {"model": "ab12", "data": "ef56"}}
    assert config_differences(new, changed) == ["fingerprints.data: 'cd34' → 'ef56'"]
