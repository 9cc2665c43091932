"""A sweep: many lr_sweep programs (runs), one per point of a grid, in one workdir.

A run is a name (its directory under the workdir) and the config keys it overrides, e.g.
`Run("m8", {"batch_size": 8})` or `Run("m64_mbn8", {"batch_size": 64, "bn_batch_size": 8})`.
`run_sweep` trains the runs of one task that are not complete yet and merges every complete
run's per-lane rows into one tidy table, `workdir/results.csv` (`pandas.read_csv` reads it
in one line).

Re-running skips complete runs (their results.csv exists: lr_sweep writes it last). Many
machines: `task_index`/`num_tasks` give task i the runs i, i + n, i + 2n, … (so the slow
small-m runs spread over the tasks); each task writes only its own run directories.
- Independent tasks (a job array): each merges whatever is complete when it ends, and merges
  again until no run completed meanwhile, so whichever task ends last leaves the whole
  table even when two end at once (every shared file is replaced whole, results.replacing).
- Processes joined by jax.distributed (processes.py): every process waits for the last,
  then process 0 alone merges and reports.
"""

import copy
import csv
import json
import os
from typing import Callable, NamedTuple

import jax
from absl import logging

from smallbatch_jax import processes, results
from smallbatch_jax.config_checks import check_config
from smallbatch_jax.lr_sweep import train_and_evaluate

RESULTS = "results.csv"
SWEEP_CONFIG = "sweep_config.json"  # the sweep's config as run (experiments.plot reads it)


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
    return os.path.isfile(os.path.join(workdir, run.name, RESULTS))


def task_runs(runs, task_index: int, num_tasks: int) -> list:
    """The runs task `task_index` of `num_tasks` trains (every one exactly once)."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index={task_index} must lie in [0, num_tasks={num_tasks})")
    return list(runs)[task_index::num_tasks]


def run_sweep(config, runs: list[Run], workdir: str, report: Callable[[list[dict]], None],
              task_index: int = 0, num_tasks: int = 1) -> list[dict]:
    """Trains this task's unfinished runs (every run's config is checked first), then merges
    every complete run into workdir/results.csv and calls `report(rows)` on the merged rows
    (figures, summary); returns them."""
    if len({run.name for run in runs}) != len(runs):
        raise ValueError(f"runs with the same name: {[run.name for run in runs]}")
    for run in runs:
        check_config(config_for(config, run))
    os.makedirs(workdir, exist_ok=True)
    with results.replacing(os.path.join(workdir, SWEEP_CONFIG)) as temporary, \
            open(temporary, "w") as f:
        json.dump(config.to_dict(), f, indent=2, default=str)
    for run in task_runs(runs, task_index, num_tasks):
        if is_complete(workdir, run):
            logging.info("%s: complete, skipped", os.path.join(workdir, run.name))
            continue
        logging.info("%s: training %s", run.name, run.overrides)
        train_and_evaluate(config_for(config, run), os.path.join(workdir, run.name))
    if jax.process_count() > 1:
        processes.wait_for_all(f"sweep {workdir}: every process trained its runs")
        if jax.process_index() != 0:
            return read_complete(workdir, runs)[0]
    return merge_until_stable(workdir, runs, report)


def read_complete(workdir: str, runs: list[Run]) -> tuple[list[dict], list[str]]:
    """Every complete run's per-lane rows, in the order of `runs`, and those runs' names."""
    rows, names = [], []
    for run in runs:
        if is_complete(workdir, run):
            with open(os.path.join(workdir, run.name, RESULTS)) as f:
                rows.extend(csv.DictReader(f))
            names.append(run.name)
    return rows, names


def merge_results(workdir: str, runs: list[Run]) -> tuple[list[dict], list[str]]:
    """One table of every complete run's per-lane rows, written to workdir; returns the rows
    and the names of the runs merged."""
    rows, names = read_complete(workdir, runs)
    results.write_csv(os.path.join(workdir, RESULTS), rows, results.SUMMARY_FIELDS)
    return rows, names


def merge_until_stable(workdir: str, runs: list[Run], report) -> list[dict]:
    """Merges and reports, again while runs complete meanwhile (another task finishing): the
    last task to end writes last and sees every run."""
    while True:
        rows, merged = merge_results(workdir, runs)
        if rows:
            report(rows)
        missing = [run.name for run in runs if run.name not in merged]
        logging.info("%s: %d rows from %d of %d runs%s", os.path.join(workdir, RESULTS),
                     len(rows), len(merged), len(runs),
                     f"; waiting for {missing}" if missing else "")
        if [run.name for run in runs if is_complete(workdir, run)] == merged:
            return rows


def write_summary(workdir: str, summary: str, figure_paths: list[str]) -> None:
    """summary.md in the workdir (replaced whole), also printed."""
    with results.replacing(os.path.join(workdir, "summary.md")) as temporary, \
            open(temporary, "w") as f:
        f.write(summary)
    print(summary)
    print(f"Wrote {os.path.join(workdir, 'summary.md')} and {len(figure_paths)} figure files in "
          f"{os.path.join(workdir, 'figures')}")
