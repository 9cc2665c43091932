"""Every batch size m of a grid, each with the whole η̃ grid: the paper's study, one table.

`run_batch_sweep(config, workdir)` is what `python -m experiments.batch_sweep` runs. For
each m in `config.batch_sizes` it runs `lr_sweep.train_and_evaluate` with batch_size = m
(one compiled program per m) into `workdir/m{m}/`, then merges every finished batch size's
per-lane rows into one tidy table, `workdir/results.csv` (`pandas.read_csv` reads it in
one line): batch size, m_BN, η̃, seed, the paper's metric, divergence, wall time, ...
and draws the paper's figures from it (`workdir/figures/`, plots.py) with a summary
(`workdir/summary.md`: best m, best η̃, the reliable η̃ range per m; analysis.py).

Re-running skips batch sizes already complete (their results.csv exists: lr_sweep writes it
last). Many machines: `task_index`/`num_tasks` give task i the batch sizes i, i + n,
i + 2n, … of the grid (so the slow small-m runs spread over the tasks); each task writes
only its own m directories, and the merge at the end of every task (or
`merge_results(workdir)`) reads whatever is complete, so tasks never write the same file.
"""

import copy
import csv
import json
import os

from absl import logging

from smallbatch_jax import analysis, plots, results
from smallbatch_jax.config_checks import check_config
from smallbatch_jax.lr_sweep import train_and_evaluate

RESULTS = "results.csv"
SWEEP_CONFIG = "sweep_config.json"  # the sweep's config as run (experiments.plot reads it)


def run_dir(workdir: str, batch_size: int) -> str:
    return os.path.join(workdir, f"m{batch_size}")


def is_complete(workdir: str, batch_size: int) -> bool:
    return os.path.isfile(os.path.join(run_dir(workdir, batch_size), RESULTS))


def task_batch_sizes(batch_sizes, task_index: int, num_tasks: int) -> list[int]:
    """The batch sizes task `task_index` of `num_tasks` runs (every one exactly once)."""
    if not 0 <= task_index < num_tasks:
        raise ValueError(f"task_index={task_index} must lie in [0, num_tasks={num_tasks})")
    return list(batch_sizes)[task_index::num_tasks]


def config_for(config, batch_size: int):
    """The lr_sweep config of one batch size of the sweep."""
    one = copy.deepcopy(config)
    with one.unlocked():
        one.batch_size = batch_size
    return one


def check_sweep(config) -> None:
    """Every batch size's config passes the checks before any of them runs."""
    batch_sizes = tuple(config.batch_sizes)
    if not batch_sizes or len(set(batch_sizes)) != len(batch_sizes):
        raise ValueError(f"config.batch_sizes={config.batch_sizes!r} is invalid; allowed: a "
                         "non-empty tuple of distinct positive integers")
    for m in batch_sizes:
        check_config(config_for(config, m))


def run_batch_sweep(config, workdir: str, task_index: int = 0, num_tasks: int = 1
                    ) -> list[dict]:
    """Runs this task's unfinished batch sizes, then merges; returns the merged rows."""
    check_sweep(config)
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, SWEEP_CONFIG), "w") as f:
        json.dump(config.to_dict(), f, indent=2, default=str)
    mine = task_batch_sizes(config.batch_sizes, task_index, num_tasks)
    for m in mine:
        if is_complete(workdir, m):
            logging.info("m=%d: complete in %s, skipped", m, run_dir(workdir, m))
            continue
        logging.info("m=%d: training %d η̃ × %d seed(s)", m, len(config.base_lrs),
                     config.num_seeds)
        train_and_evaluate(config_for(config, m), run_dir(workdir, m))
    rows = merge_results(workdir, config.batch_sizes)
    done = sorted({int(r["batch_size"]) for r in rows})
    missing = [m for m in config.batch_sizes if m not in done]
    logging.info("%s: %d rows, batch sizes %s complete%s", os.path.join(workdir, RESULTS),
                 len(rows), done, f"; waiting for {missing}" if missing else "")
    if rows:
        report(workdir, rows, config.reliable_tolerance)
    return rows


def report(workdir: str, rows, tolerance: float, curves=None) -> None:
    """The figures (workdir/figures/, with `curves` as in plots.training_curves) and
    summary.md of the rows; printed summary too."""
    paths = plots.write_figures(rows, os.path.join(workdir, "figures"), tolerance, curves)
    summary = analysis.summary_markdown(rows, tolerance)
    with open(os.path.join(workdir, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)
    print(f"Wrote {os.path.join(workdir, RESULTS)}, summary.md and {len(paths)} figure files "
          f"in {os.path.join(workdir, 'figures')}")


def merge_results(workdir: str, batch_sizes) -> list[dict]:
    """One table of every complete batch size's per-lane rows, written to workdir."""
    rows = []
    for m in sorted(batch_sizes):
        if is_complete(workdir, m):
            with open(os.path.join(run_dir(workdir, m), RESULTS)) as f:
                rows.extend(csv.DictReader(f))
    results.write_csv(os.path.join(workdir, RESULTS), rows, results.SUMMARY_FIELDS)
    return rows
