"""A run's directory: one process at a time, writable, and write errors that say what to do.

`claim(directory, name)` is the guard a run or a sweep task enters before any compute:
- it creates the directory, or fails at once with the reason (a file in the way, no
  permission, a read-only or full disk) instead of after hours of training;
- it takes an exclusive `fcntl.flock` on `directory/name`. The operating system releases
  the lock when the process ends, however it ends (SIGKILL and preemption included), so a
  killed run never blocks its own restart; a second live process asking for the same lock
  stops at once with a message naming the directory and the holder's pid (`LockedError`);
- with `remove_temporaries`, it deletes what a killed process was writing when it died
  (`*.tmp`, `*.tmp<pid>`: results.replacing and save_state write there first). Only for a
  directory no other process writes into (a run's, under its lock): a sweep's workdir is
  shared by its tasks, whose temporaries may be live;
- inside it, an OSError of a full disk, a read-only file system or a missing permission
  becomes a `WorkdirError` saying that the files already there are intact (every file is
  replaced whole: results.replacing; checkpoints are renamed into place when complete) and
  that re-running the command resumes.
"""

import contextlib
import errno
import fcntl
import os
import re

# Errors of the disk rather than of the program: the remedy is the user's.
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}
TEMPORARY = re.compile(r".+\.tmp\d*$")


class LockedError(RuntimeError):
    """Another live process holds the directory."""


class WorkdirError(RuntimeError):
    """The directory cannot be written (full, read-only, no permission, not a directory)."""


def _lock(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise LockedError(
            f"{os.path.dirname(path)} is in use by another process (pid {holder}, lock "
            f"{path}). One process per run directory: wait for it, or split a sweep over "
            "processes with --task_index/--num_tasks.") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    os.fsync(fd)
    return fd


@contextlib.contextmanager
def claim(directory: str, name: str = ".lock", remove_temporaries: bool = False):
    """Creates `directory`, holds its lock `name` for the block, turns disk errors inside
    the block into WorkdirError (see the module docstring)."""
    try:
        os.makedirs(directory, exist_ok=True)
        fd = _lock(os.path.join(directory, name))
    except (FileExistsError, NotADirectoryError) as error:
        raise WorkdirError(f"cannot use {directory} as a directory: {error.strerror} "
                           f"({error.filename})") from error
    except OSError as error:
        if error.errno in DISK_ERRORS:
            raise WorkdirError(f"cannot write to {directory}: {error.strerror}") from error
        raise
    try:
        if remove_temporaries:
            for entry in os.listdir(directory):
                if TEMPORARY.match(entry) and os.path.isfile(os.path.join(directory, entry)):
                    os.remove(os.path.join(directory, entry))
        yield
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        raise WorkdirError(
            f"cannot write {error.filename or directory}: {error.strerror}. Files already in "
            f"{directory} are intact (each is replaced whole, checkpoints included); make "
            "room or fix permissions and run the same command again: it resumes from the "
            "last checkpoint.") from error
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
