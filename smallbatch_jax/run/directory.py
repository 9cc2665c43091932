"""The directories runs and sweeps write: every file name, "finished", the config comparison
that resuming rests on, one process at a time, and write errors that say what to do.

`RunDirectory(path)` is one run's directory (what `run.train.train_and_evaluate` writes:
config.json, curves.csv, evaluations.csv, checkpoints/, state.msgpack, results.csv, the last
marking the run finished); `SweepDirectory(path)` a sweep's (its runs' directories under it,
the merged results.csv, sweep_config.json, summary.md, recommendation.md, figures/). Every
module that reads or writes those files asks these objects for their paths.

A run directory holds the runs of one config only: a finished run, or a checkpoint, made
with another config is refused before any compute, naming the keys that differ
(`config_differences`); RESUME_IGNORES are the keys that do not change what a run computes.

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
import json
import os
import re
import shutil

from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.run import results
from smallbatch_jax.run.checkpoint import RunCheckpoints

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


# Keys a run's saved config may differ in from the command's: they do not change what one
# run computes (the sweep's other points, the summary's tolerance, how often to save, what
# is measured on the side: the noise-scale probe never touches the weights).
RESUME_IGNORES = ("batch_sizes", "bn_batch_sizes", "lr_from", "lr_per_batch_size",
                  "reliable_tolerance", "target", "checkpoint", "noise_scale", "test_run")
# Keys added to the config after runs were saved without them, with the value that trains
# as those runs were trained: absent from a saved config and at this value now is no
# difference (a finished run stays finished, a checkpoint resumes).
ADDED_KEYS = {"objective": "classification", "evals_per_epoch": 1,
              **{f"sweep.{key}": [] for key in ("weight_decay", "momentum", "beta2", "epsilon",
                                                "warmup", "grad_clip", "points")},
              "grad_clip": 0.0,
              "strategy.tune_share": 0.1, "strategy.tune_cache": "",
              "strategy.shared_batch": True, "validation": 0.0}


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# The keys that add lanes to a sweep's grid: a finished sweep grows by a merge of tables.
GRID_KEYS = {"base_lrs", "seed", "num_seeds", "sweep"}


def config_differences(saved: dict, current: dict) -> list[str]:
    """'key: saved → current' for every key that differs, RESUME_IGNORES aside (and
    ADDED_KEYS absent from `saved` at their old behaviour's value)."""
    saved, current = _flat(saved), _flat(current)
    ignored = lambda key: key.split(".")[0] in RESUME_IGNORES or (
        key in ADDED_KEYS and key not in saved and current.get(key) == ADDED_KEYS[key]) or (
        key.startswith("fingerprints.") and key not in saved)  # (a run from before them)
    return [f"{key}: {saved.get(key, '(absent)')!r} → {current.get(key, '(absent)')!r}"
            for key in sorted(set(saved) | set(current))
            if not ignored(key) and saved.get(key) != current.get(key)]


class RunDirectory:
    """One run's directory and every file in it, by name."""

    CONFIG = "config.json"  # the config as run, the plan, the provenance
    CURVES = "curves.csv"  # per epoch and lane, rewritten after every epoch
    EVALUATIONS = "evaluations.csv"  # every evaluation, with evals_per_epoch > 1
    CHECKPOINTS = "checkpoints"  # while the run trains; removed when it has finished
    STATE = "state.msgpack"  # the final training state
    RESULTS = "results.csv"  # per lane; written last: it marks the run finished

    def __init__(self, path: str):
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def claim(self):
        """The run's lock for the block (a run directory has one writer: its temporaries
        are removed)."""
        return claim(self.path, remove_temporaries=True)

    def is_finished(self) -> bool:
        return os.path.isfile(self.file(self.RESULTS))

    def saved_record(self) -> dict:
        """config.json: the config the run was made with ('config'), its plan, provenance."""
        with open(self.file(self.CONFIG)) as f:
            return json.load(f)

    def saved_config(self) -> dict:
        """The config the run was made with (config.json's)."""
        return self.saved_record()["config"]

    def recorded_strategy(self) -> Strategy | None:
        """The execution strategy config.json records (None without a readable one)."""
        try:
            return Strategy(**self.saved_record()["strategy"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def recorded_tuning(self) -> dict | None:
        """How config.json says the strategy was chosen (engine/tune.py's Tuning as JSON;
        None without one)."""
        try:
            return self.saved_record().get("tuning")
        except (OSError, ValueError):
            return None

    def refuse_other_config(self, saved: dict, current: dict, what: str = "a checkpoint"
                            ) -> None:
        """ValueError naming the differing keys unless `saved` (a config as JSON) trains as
        `current` does."""
        differences = config_differences(saved, current)
        if differences:
            grown = {d.split(":")[0].split(".")[0] for d in differences} & GRID_KEYS
            raise ValueError(
                f"{self.path} holds {what} of a run with another config; differing keys: "
                f"{'; '.join(differences)}. Run with its config (to resume it, or to read its "
                "results), or give another --workdir (or move this one away) to start over."
                + (" To add η̃, seeds or settings to a finished sweep, run only the new ones "
                   "into another workdir and merge the tables: python -m experiments.plot "
                   "--workdir=<this sweep> --merge=<the other>/results.csv" if grown else "")
                + (" (fingerprints: digests of the model, objective or data you gave: they "
                   "changed since that run)" if any(d.startswith("fingerprints.")
                                                    for d in differences) else ""))

    def finished_rows(self, current: dict) -> list[dict] | None:
        """The results of the finished run (its config checked against `current`, a config
        as JSON); None if it has not finished."""
        if not self.is_finished():
            return None
        self.refuse_other_config(self.saved_config(), current, "the results")
        return results.read_csv(self.file(self.RESULTS))

    def checkpoints(self, current: dict, keep: int = 2) -> RunCheckpoints:
        """The run's checkpoints (the newest `keep` kept), each refused (ValueError naming
        the differing keys) if made with another config than `current` (a config as JSON)."""
        return RunCheckpoints(self.file(self.CHECKPOINTS), keep, check=lambda progress: (
            self.refuse_other_config(progress["config"], current)))

    def refuse_other_checkpoints(self, current: dict) -> None:
        """ValueError naming the differing keys if the run's newest readable checkpoint was
        made with another config than `current` (a config as JSON). Reads only the
        checkpoints' JSON; creates nothing where there are none."""
        if not os.path.isdir(self.file(self.CHECKPOINTS)):
            return
        checkpoints = self.checkpoints(current)
        try:
            checkpoints.newest_progress()
        finally:
            checkpoints.close()

    def write_config(self, record: dict) -> None:
        with results.replacing(self.file(self.CONFIG)) as temporary, open(temporary, "w") as f:
            json.dump(record, f, indent=2, default=str)

    def write_curves(self, rows: list[dict]) -> None:
        results.write_csv(self.file(self.CURVES), rows, results.CURVE_FIELDS)

    def write_evaluations(self, rows: list[dict]) -> None:
        results.write_csv(self.file(self.EVALUATIONS), rows, results.EVALUATION_FIELDS)

    def write_results(self, rows: list[dict]) -> None:
        results.write_csv(self.file(self.RESULTS), rows, results.SUMMARY_FIELDS)

    def read_results(self) -> list[dict] | None:
        """results.csv's rows (strings); None if the run has not finished."""
        return results.read_raw(self.file(self.RESULTS)) if self.is_finished() else None

    def read_curves(self) -> list[dict] | None:
        """curves.csv's rows (strings); None if there is none."""
        path = self.file(self.CURVES)
        return results.read_raw(path) if os.path.isfile(path) else None

    def read_evaluations(self) -> list[dict] | None:
        """evaluations.csv's rows (strings); None if the run evaluated once per epoch."""
        path = self.file(self.EVALUATIONS)
        return results.read_raw(path) if os.path.isfile(path) else None

    def remove_checkpoints(self) -> None:
        shutil.rmtree(self.file(self.CHECKPOINTS), ignore_errors=True)


class SweepDirectory:
    """A sweep's workdir: its runs' directories by name, and the sweep's own files."""

    RESULTS = "results.csv"  # every complete run's rows, merged
    CONFIG = "sweep_config.json"  # the sweep's config as run (experiments.plot reads it)
    SUMMARY = "summary.md"
    RECOMMENDATION = "recommendation.md"
    # A sweep that chose on a validation split: its recommended setting trained once more on
    # the whole training set for the test split (study/batch_sweep.py: test_run), one run
    # directory per recommended point below it.
    TEST_RUN = "test_run"
    FIGURES = "figures"

    def __init__(self, path: str):
        self.path = os.fspath(path)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def run(self, name: str) -> RunDirectory:
        return RunDirectory(os.path.join(self.path, name))

    def test_run(self, name: str) -> RunDirectory:
        return RunDirectory(os.path.join(self.path, self.TEST_RUN, name))

    def claim_task(self, task_index: int, num_tasks: int):
        """The lock of one task of the sweep (its temporaries are left alone: other tasks
        write into the same workdir)."""
        return claim(self.path, f".lock_task{task_index}of{num_tasks}")

    def saved_config(self) -> dict | None:
        """sweep_config.json; None if there is none."""
        if not os.path.isfile(self.file(self.CONFIG)):
            return None
        with open(self.file(self.CONFIG)) as f:
            return json.load(f)

    def write_config(self, config) -> None:
        with results.replacing(self.file(self.CONFIG)) as temporary, open(temporary, "w") as f:
            json.dump(config.to_dict(), f, indent=2, default=str)

    def has_results(self) -> bool:
        return os.path.isfile(self.file(self.RESULTS))

    def read_results(self) -> list[dict]:
        """The merged table's rows (strings)."""
        return results.read_raw(self.file(self.RESULTS))

    def write_results(self, rows: list[dict], fields=results.SUMMARY_FIELDS) -> None:
        results.write_csv(self.file(self.RESULTS), rows, fields)

    def write_text(self, name: str, text: str) -> str:
        """A report (summary.md, recommendation.md) replaced whole; returns its path."""
        path = self.file(name)
        with results.replacing(path) as temporary, open(temporary, "w") as f:
            f.write(text)
        return path
