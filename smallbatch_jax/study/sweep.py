"""A sweep: many lr_sweep programs (runs), one per point of a grid, in one workdir.

A run is a name (its directory under the workdir) and the config keys it overrides, e.g.
`Run("m8", {"batch_size": 8})` or `Run("m64_mbn8", {"batch_size": 64, "bn_batch_size": 8})`.
`run_sweep` trains the runs of one task that are not complete yet and merges every complete
run's per-lane rows into one tidy table, `workdir/results.csv` (`pandas.read_csv` reads it
in one line).

Before the first run trains, every run's config is checked, against the data set too (loaded
once, for every run), runs that finished before are checked to be of this config (a changed
model, grid or number of epochs would otherwise mix old results into the table: refused,
naming the keys, before anything is written), and the task takes the workdir's lock for its
task (run/directory.py: a second process started on the same sweep without a task split
stops at once). Re-running skips complete runs (their results.csv exists: run.train writes
it last) and resumes an interrupted one from its checkpoint. Between runs it logs "run i of n", the time so far and
an ETA for the task's runs left. Many machines: `task_index`/`num_tasks` give task i the runs i, i + n, i + 2n, … (so the slow
small-m runs spread over the tasks); each task writes only its own run directories.
- Independent tasks (a job array): each merges whatever is complete when it ends, and merges
  again until no run completed meanwhile, so whichever task ends last leaves the whole
  table even when two end at once (every shared file is replaced whole, results.replacing).
- Processes joined by jax.distributed (processes.py): every process waits for the last,
  then process 0 alone merges and reports.
"""

import contextlib
import copy
import logging as std_logging
import math
import os
import time
from typing import Callable, NamedTuple

import jax
from absl import logging

from smallbatch_jax import processes
from smallbatch_jax.run import results
from smallbatch_jax.run.build import RunSpec, prepare
from smallbatch_jax.run.directory import SweepDirectory
from smallbatch_jax.run.train import train


class Run(NamedTuple):
    name: str  # its directory under the sweep's workdir
    overrides: dict  # config keys this run sets


def config_for(config, run: Run):
    """The lr_sweep config of one run of the sweep."""
    one = copy.deepcopy(config)
    with one.unlocked():
        for key, value in run.overrides.items():
            one[key] = value
    return one


def is_complete(workdir: str, run: Run) -> bool:
    return SweepDirectory(workdir).run(run.name).is_finished()


def prepare_runs(config, runs: list[Run], dataset=None, model=None, objective=None
                 ) -> list[RunSpec]:
    """Every run's spec (run/build.py: its config checked, against the data too), the data
    set loaded once for all of them: a bad point of the grid fails before any run trains."""
    specs = []
    with _warned_once():
        for run in runs:
            run_config = config_for(config, run)
            lrs = tuple(run_config.base_lrs)
            if len(set(lrs)) != len(lrs):  # one lane twice: the study would read it as 2 seeds
                raise ValueError(f"config.base_lrs={run_config.base_lrs!r} is invalid; "
                                 "allowed: distinct values (a study reads the lanes of one η̃ "
                                 "as seeds)")
            specs.append(prepare(run_config, dataset, model, objective))
            dataset = specs[0].loaded  # (as loaded: each run makes its own changes to it)
    own = getattr(dataset, "validation_indices", None)
    if own is not None and not config.validation:
        # (A single run trains on it quietly: the recommendation's test run does, by design.)
        logging.warning(
            "%s: your own validation split (%d examples) is trained on with the rest, and "
            "every choice of m and η̃ is made on the test split: config.validation is 0. To "
            "choose on your split, set config.validation to any value > 0 (your split is then "
            "held out as given)", dataset.name, len(own))
    return specs


@contextlib.contextmanager
def _warned_once():
    """Within it, a warning said once: every run's set-up checks the same model and data,
    and a sweep said a model's warning once per m, word for word (those naming their m differ,
    and stay)."""
    said = set()

    class Once(std_logging.Filter):
        def filter(self, record):
            if record.levelno < std_logging.WARNING:
                return True
            text = record.getMessage()
            if text in said:
                return False
            said.add(text)
            return True

    logger, once = logging.get_absl_logger(), Once()
    logger.addFilter(once)
    try:
        yield
    finally:
        logger.removeFilter(once)


def refuse_other_configs(workdir: str, runs: list[Run], specs: list[RunSpec],
                         mine: list[Run]) -> None:
    """ValueError naming the differing keys if a run finished before with another config
    than this sweep gives it (its results would be merged as if they were this config's), or
    one of this task's runs (`mine`) checkpointed with another: before the sweep writes
    anything. (Another task's checkpoints are its own: opening them would remove the
    temporary of a save it may be writing.)"""
    sweep, mine = SweepDirectory(workdir), {run.name for run in mine}
    for run, spec in zip(runs, specs):
        directory = sweep.run(run.name)
        if directory.is_finished():
            directory.refuse_other_config(directory.saved_config(), spec.config, "the results")
        elif run.name in mine:
            directory.refuse_other_checkpoints(spec.config)


def task_runs(runs, task_index: int, num_tasks: int) -> list:
    """The runs task `task_index` of `num_tasks` trains (every one exactly once)."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index={task_index} must lie in [0, num_tasks={num_tasks})")
    return list(runs)[task_index::num_tasks]


def run_sweep(config, runs: list[Run], workdir: str, report: Callable[[list[dict]], None],
              task_index: int = 0, num_tasks: int = 1, *, model=None, dataset=None,
              objective=None, budget_minutes: float = 0.0,
              may_start: Callable[[Run, RunSpec], bool] | None = None,
              after_run: Callable[[Run], None] | None = None) -> list[dict]:
    """Trains this task's unfinished runs (every run's config is checked first, against the
    data too), then merges every complete run into workdir/results.csv and calls
    `report(rows)` on the merged rows (figures, summary); returns them. `model`, `dataset`,
    `objective`: a user's (smallbatch_jax.api), instead of the config's. `budget_minutes`
    (0: none): no run starts once this call has trained that long (a started run finishes;
    the first unfinished one always starts; a rerun resumes with the runs left).
    `may_start(run, its RunSpec)` (None: always): whether an unfinished run may start now
    (False: it is passed over, left for a rerun, and the next one asked); `after_run(run)`:
    called after each run trained (e.g. to save what is done so far)."""
    if len({run.name for run in runs}) != len(runs):
        raise ValueError(f"runs with the same name: {[run.name for run in runs]}")
    specs = prepare_runs(config, runs, dataset, model, objective)
    spec_of = {run.name: spec for run, spec in zip(runs, specs)}
    mine = task_runs(runs, task_index, num_tasks)
    sweep = SweepDirectory(workdir)
    with sweep.claim_task(task_index, num_tasks):
        refuse_other_configs(workdir, runs, specs, mine)
        sweep.write_config(config)
        started, trained = time.perf_counter(), False
        for i, run in enumerate(mine):
            if is_complete(workdir, run):
                logging.info("%s: complete, skipped", os.path.join(workdir, run.name))
                continue
            one = spec_of[run.name]
            left = [(r, spec_of[r.name]) for r in mine[i:] if not is_complete(workdir, r)]
            # The first unfinished run always starts: a budget bounds when runs start, and
            # a budget spent before any run trained (a busy machine) would make no progress.
            if (budget_minutes and trained
                    and time.perf_counter() - started >= 60.0 * budget_minutes):
                logging.info("budget of %g min spent: %s not started (a rerun resumes them)",
                             budget_minutes, [r.name for r, _ in left])
                break
            if may_start is not None and not may_start(run, one):
                continue
            logging.info("run %d of %d (%s): %s; %.0f s so far, ETA of the %d runs left %s",
                         i + 1, len(mine), _describe(run), os.path.join(workdir, run.name),
                         time.perf_counter() - started, len(left), eta_text(workdir, runs, left))
            train(one, sweep.run(run.name).path)
            trained = True
            if after_run is not None:
                after_run(run)
        if jax.process_count() > 1:
            processes.wait_for_all(f"sweep {workdir}: every process trained its runs")
            if jax.process_index() != 0:
                return read_complete(workdir, runs)[0]
        return merge_until_stable(workdir, runs, report)


def _describe(run: Run) -> str:
    names = {"batch_size": "m", "bn_batch_size": "m_BN"}
    return ", ".join(f"{names.get(k, k)} = {v}" for k, v in run.overrides.items()
                     if k != "base_lrs")


def seconds_per_step(workdir: str, runs: list[Run]) -> dict[int, float]:
    """{m: wall seconds per step} of the complete runs (the slowest lane group's program:
    every lane of a run trains at once)."""
    measured = {}
    rows, _ = read_complete(workdir, runs)
    for row in rows:
        steps, seconds = (float(row.get(key) or math.nan) for key in ("steps", "wall_seconds"))
        if steps > 0 and math.isfinite(seconds):  # (NaN > 0 is False)
            measured[int(row["batch_size"])] = seconds / steps
    return measured


def eta_text(workdir: str, runs: list[Run], left: list) -> str:
    """The time the runs `left` ([(run, its RunSpec)]) should take: their steps, each at the
    time a step takes at its m under the cost model latency + m × per-example cost, fitted to
    the complete runs; "?" before any. One complete run cannot separate the two terms, so the
    answer is then the range between them (a step's time constant in m, or proportional to it):
    a step at m = 4 says little about one at m = 256, and one number would be a guess."""
    measured = seconds_per_step(workdir, runs)
    if not measured:
        return "? (no run finished yet)"
    steps = [(one.schedule.epochs * (one.dataset.num_train // one.batch_size), one.batch_size)
             for _, one in left]
    if len(measured) == 1:
        ((done, per_step),) = measured.items()
        low = sum(n * per_step * min(1.0, m / done) for n, m in steps)
        high = sum(n * per_step * max(1.0, m / done) for n, m in steps)
        if math.isclose(low, high):
            return f"{low:.0f} s (their steps at the speed measured at m = {done})"
        return (f"{low:.0f} to {high:.0f} s (their steps at m = {done}'s speed, a step's time "
                f"constant in m or proportional to m)")
    latency, per_example = _fit_step_time(measured)
    total = sum(n * (latency + per_example * m) for n, m in steps)
    return (f"{total:.0f} s (a step's time fitted as {latency * 1e3:.3g} ms + m × "
            f"{per_example * 1e3:.3g} ms to {len(measured)} finished m's)")


def _fit_step_time(measured: dict[int, float]) -> tuple[float, float]:
    """Least squares of seconds per step = latency + m × per-example, both kept ≥ 0."""
    ms, ts = zip(*sorted(measured.items()))
    mean_m, mean_t = sum(ms) / len(ms), sum(ts) / len(ts)
    spread = sum((m - mean_m) ** 2 for m in ms)
    per_example = sum((m - mean_m) * (t - mean_t) for m, t in zip(ms, ts)) / spread
    latency = mean_t - per_example * mean_m
    if per_example < 0:  # slower at smaller m: noise; a step's time constant in m
        return mean_t, 0.0
    if latency < 0:  # a line through the origin: time proportional to m
        return 0.0, sum(m * t for m, t in zip(ms, ts)) / sum(m * m for m in ms)
    return latency, per_example


def read_complete(workdir: str, runs: list[Run]) -> tuple[list[dict], list[str]]:
    """Every complete run's per-lane rows, in the order of `runs`, and those runs' names."""
    rows, names = [], []
    for run in runs:
        directory = SweepDirectory(workdir).run(run.name)
        if directory.is_finished():
            rows.extend(results.read_raw(directory.file(directory.RESULTS)))
            names.append(run.name)
    return rows, names


def merge_results(workdir: str, runs: list[Run]) -> tuple[list[dict], list[str]]:
    """One table of every complete run's per-lane rows, written to workdir; returns the rows
    and the names of the runs merged."""
    rows, names = read_complete(workdir, runs)
    SweepDirectory(workdir).write_results(rows)
    return rows, names


def merge_until_stable(workdir: str, runs: list[Run], report) -> list[dict]:
    """Merges and reports, again while runs complete meanwhile (another task finishing): the
    last task to end writes last and sees every run."""
    while True:
        rows, merged = merge_results(workdir, runs)
        if rows:
            report(rows)
        missing = [run.name for run in runs if run.name not in merged]
        logging.info("%s: %d rows from %d of %d runs%s",
                     SweepDirectory(workdir).file(SweepDirectory.RESULTS),
                     len(rows), len(merged), len(runs),
                     f"; waiting for {missing}" if missing else "")
        if [run.name for run in runs if is_complete(workdir, run)] == merged:
            return rows


def write_summary(workdir: str, summary: str, figure_paths: list[str]) -> None:
    """summary.md in the workdir (replaced whole), also printed."""
    sweep = SweepDirectory(workdir)
    path = sweep.write_text(sweep.SUMMARY, summary)
    print(summary)
    print(f"Wrote {path} and {len(figure_paths)} figure files in {sweep.file(sweep.FIGURES)}")
