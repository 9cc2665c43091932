"""Checkpoints of a run as it trains (Orbax), and its final state as one file (msgpack).

`RunCheckpoints(directory)` is an Orbax `CheckpointManager` over `directory/<step>/`, each
checkpoint holding two items:
- `state`: the TrainState, i.e. every lane's weights, BatchNorm statistics, optimizer
  state and divergence flags, and the step and epoch counters;
- `progress` (JSON): what the run needs besides the state to continue and to write the
  same files as a run that never stopped: the history of the epochs so far, the training
  time so far, the config the run started with, the state's SHA-256 and the progress's own
  (a flipped digit in the saved history would otherwise change curves.csv silently).

Why each piece:
- Orbax writes a checkpoint into a temporary directory and renames it when complete, so a
  process killed while saving leaves no half checkpoint (the temporary is removed at the
  next start); the newest `keep` are kept, so the one before is there if the newest is bad.
- Orbax reads back whatever bytes the files hold; the digest makes a silently damaged
  checkpoint (a flipped or zeroed byte) as detectable as a truncated one. `restore_latest`
  tries the newest checkpoint first and falls back to older ones, logging and removing each
  whose arrays it cannot read back intact; if none can be read it fails naming them. A bad
  checkpoint is never trained from.
- Saves are synchronous: the next dispatch may donate (reuse) the state's device buffers
  (train/plan.py), which an asynchronous save would still be reading.

Randomness is a pure function of (seed, purpose, counter) (train/step.py), so a state
restored at an epoch boundary continues exactly as if it had not stopped.

`save_state`/`restore_state`: the final state as one msgpack file (a run's state.msgpack).
"""

import contextlib
import errno
import gc
import glob
import hashlib
import json
import logging as std_logging
import os
import shutil
import sys

import jax
import orbax.checkpoint as ocp
from absl import logging
from flax import serialization

from smallbatch_jax.engine.state import from_legacy, legacy_of


def _orbax_quiet(record) -> bool:
    """Orbax logs a dozen INFO lines per save through absl: keep its warnings only. And a
    full, read-only or forbidden disk: each of its writing threads logs the error with its
    traceback (~270 lines on a full disk) before the save raises it, which `save` turns into
    one line (_as_os_error, then run/directory.py); the tracebacks are kept at
    --verbosity=1."""
    if "/orbax/" not in record.pathname:
        return True
    if record.levelno < std_logging.WARNING:
        return False
    storage = any(text in record.getMessage() for text in _OS_ERRORS)
    return not storage or logging.get_verbosity() >= 1


logging.get_absl_logger().addFilter(_orbax_quiet)


def state_digest(state) -> str:
    """SHA-256 of the state's bytes (its msgpack serialization): equal iff every leaf,
    dtype and shape is."""
    return hashlib.sha256(serialization.to_bytes(state)).hexdigest()


def progress_digest(progress: dict) -> str:
    """SHA-256 of a progress item as JSON (its own digest left out; NaN written as NaN)."""
    text = json.dumps({k: v for k, v in progress.items() if k != "progress_sha256"},
                      sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


class RunCheckpoints:
    """The checkpoints of one run directory. Only this process touches them (each process
    of a multi-process sweep trains its own runs: processes.py), so Orbax is told that
    this process is the only one, and the primary."""

    def __init__(self, directory: str, keep: int = 2, check=None):
        """`check(progress)`: called on a checkpoint's progress before it is used (by
        `newest_progress` and `restore_latest`); an exception from it (a config that differs)
        propagates: it is the command's fault, not the checkpoint's, and no older checkpoint
        would fix it."""
        self.directory = os.path.abspath(directory)
        self.check = check
        self.reported = set()  # the unreadable checkpoints already logged (`_skip`)
        me = jax.process_index()
        os.makedirs(self.directory, exist_ok=True)  # (Orbax's create=True wants all processes)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=False, cleanup_tmp_directories=True,
            enable_async_checkpointing=False,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                primary_host=me, active_processes={me}))
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, state, progress: dict) -> None:
        """Saves `state` with `progress` (JSON-able) under the state's step; the state's
        digest and the progress's own are added to the progress."""
        progress = dict(progress, state_sha256=state_digest(state))
        progress["progress_sha256"] = progress_digest(progress)
        step = int(state.step)
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)),
                force=True)
            self.manager.wait_until_finished()
        except Exception as error:
            # Free what the failed save wrote (the next start would remove it too).
            for partial in glob.glob(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp*")):
                shutil.rmtree(partial, ignore_errors=True)
            raise _as_os_error(error, os.path.join(self.directory, str(step))) from error

    def progress(self, step: int) -> dict:
        """The progress item of checkpoint `step` alone (no arrays are read)."""
        return self.manager.restore(step, args=ocp.args.Composite(
            progress=ocp.args.JsonRestore())).progress

    def newest_progress(self) -> dict | None:
        """The progress of the newest checkpoint whose progress can be read (checked); None
        if none."""
        for step in reversed(self.steps()):
            try:
                progress = self.progress(step)
            except Exception as error:  # noqa: BLE001
                self._skip(os.path.join(self.directory, str(step)), error)
                continue
            if self.check is not None:
                self.check(progress)
            return progress
        return None

    def restore_latest(self, target, check=None):
        """(state, progress) of the newest readable checkpoint, or None if there is none.

        `target`: a state of the same structure, placement and dtypes (e.g. a fresh one).
        `check(progress)` (default: the one these checkpoints were opened with): called on
        each checkpoint's progress before its arrays are read; an exception from it
        propagates.
        """
        check = check or self.check
        failures = []
        for step in reversed(self.steps()):
            path = os.path.join(self.directory, str(step))
            try:
                progress = self.progress(step)
                if progress_digest(progress) != progress.get("progress_sha256",
                                                             progress_digest(progress)):
                    raise ValueError("the progress read back differs from the progress saved "
                                     "(SHA-256 mismatch)")
            except Exception as error:  # noqa: BLE001 – an unreadable checkpoint: the next
                failures.append(self._skip(path, error))
                # Removed, or the run would save this step again over it and fail (Orbax
                # refuses to save over an existing step).
                self._remove(step)
                continue
            if check is not None:
                check(progress)
            try:
                state = self._restore_state(step, target, progress.get("state_sha256"))
                return state, progress
            except Exception as error:  # noqa: BLE001
                failures.append(self._skip(path, error))
                # Removed, or training from the one before would meet it again (Orbax
                # refuses to save over an existing step).
                self._remove(step)
        if failures:
            raise ValueError(f"no checkpoint in {self.directory} can be read: "
                             f"{'; '.join(failures)}. Move the directory away to start over.")
        return None

    def _restore_state(self, step: int, target, digest: str | None):
        """The state of checkpoint `step`, its SHA-256 checked; one saved before the lanes
        had a `loss_limit` (engine/state.py: LegacyLaneState) is read in its own structure
        and resumes without a limit, as it trained until then (not thrown away as damaged)."""
        def read(template):
            state = self.manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(template))).state
            if state_digest(state) != digest:
                raise ValueError("the state read back differs from the state saved "
                                 "(SHA-256 mismatch)")
            return state

        with _orbax_abandoned_reads_quiet():
            try:
                return read(target)
            except Exception as error:  # noqa: BLE001
                try:
                    legacy = read(legacy_of(target))
                except Exception:  # noqa: BLE001 – not a legacy checkpoint either
                    raise error from None
            logging.warning("checkpoint %s was saved before lanes had a loss limit: it "
                            "resumes with none (only non-finite values mark divergence)",
                            os.path.join(self.directory, str(step)))
            return from_legacy(legacy, target)

    def _remove(self, step: int) -> None:
        self.manager.delete(step)
        self.reported.discard(os.path.join(self.directory, str(step)))  # (a new one may be)

    def _skip(self, path: str, error: Exception) -> str:
        """Logs that the checkpoint at `path` cannot be read, once (a run asks for the
        newest progress, then restores: the same bad checkpoint met twice), in one line:
        TensorStore's errors carry a multi-line spec of the store."""
        if path not in self.reported:
            self.reported.add(path)
            text = " ".join(str(error).split()).split(" See full TensorStore details")[0]
            logging.warning("checkpoint %s cannot be read (%s: %s); trying an older one",
                            path, type(error).__name__, text[:300])
        return f"{path} ({type(error).__name__})"

    def close(self) -> None:
        self.manager.close()


@contextlib.contextmanager
def _orbax_abandoned_reads_quiet():
    """Orbax reads a state's arrays concurrently; when one fails (a damaged checkpoint) the
    others' coroutines are abandoned raising the same kind of error, and Python prints each
    as it is collected: "Exception ignored in: <coroutine ...>" and ~60 lines of
    TensorStore spec, three times for the digits CNN, after the one line `_skip` logs. They
    are the failure already reported: logged at --verbosity=1 instead. Collected here
    (gc), while this hook is in place."""
    previous = sys.unraisablehook

    def hook(unraisable):
        code = getattr(unraisable.object, "cr_code", None)
        if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
            logging.debug("Orbax, an abandoned read: %s",
                          " ".join(str(unraisable.exc_value).split())[:300])
            return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        gc.collect()
        sys.unraisablehook = previous


# TensorStore reports a file system's errors as ValueError("RESOURCE_EXHAUSTED: ... No space
# left on device ..."): given back as the OSError they are (run_directory turns those into
# one clear message).
_OS_ERRORS = {"No space left on device": errno.ENOSPC, "Disk quota exceeded": errno.EDQUOT,
              "Read-only file system": errno.EROFS, "Permission denied": errno.EACCES}


def _as_os_error(error: Exception, path: str) -> Exception:
    if isinstance(error, OSError):
        return error
    for text, code in _OS_ERRORS.items():
        if text in str(error):
            return OSError(code, os.strerror(code), path)
    return error


def save_state(path: str, state) -> None:
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.to_bytes(state))
    os.replace(tmp, path)


def restore_state(path: str, template):
    """The state saved at `path`, in the structure of `template` (e.g. a fresh `init`)."""
    with open(path, "rb") as f:
        return serialization.from_bytes(template, f.read())
