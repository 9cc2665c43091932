"""Every batch size m of a grid, each with the whole η̃ grid: the paper's study, one table.

`run_batch_sweep(config, workdir)` is what `python -m experiments.batch_sweep` runs. For
each m in `config.batch_sizes` it runs `lr_sweep.train_and_evaluate` with batch_size = m
(one compiled program per m) into `workdir/m{m}/`, merges every finished batch size's
per-lane rows into one tidy table, `workdir/results.csv` (sweep.py: batch size, m_BN, η̃,
seed, the paper's metric, divergence, wall time, ...), and draws the paper's figures from it
(`workdir/figures/`, plots.py) with a summary (`workdir/summary.md`: best m, best η̃, the
reliable η̃ range per m; analysis.py). Re-running skips batch sizes already complete;
`task_index`/`num_tasks` split the batch sizes over machines (sweep.py).
"""

import collections
import copy
import hashlib
import math
import os

from absl import logging

from smallbatch_jax import noise_scale
from smallbatch_jax.run import results
from smallbatch_jax.run.directory import RunDirectory, SweepDirectory
from smallbatch_jax.run.train import train_and_evaluate
from smallbatch_jax.study import analysis, plots, recommend, steps_to_target
from smallbatch_jax.study.sweep import Run, run_sweep, write_summary


def run_name(batch_size: int) -> str:
    """The directory of batch size m's run under the sweep's workdir."""
    return f"m{batch_size}"


def run_directory(workdir: str, batch_size: int) -> RunDirectory:
    return SweepDirectory(workdir).run(run_name(batch_size))


def batch_size_runs(config) -> list[Run]:
    """One run per m of config.batch_sizes (checked: distinct positive integers)."""
    batch_sizes = tuple(config.batch_sizes)
    if not batch_sizes or len(set(batch_sizes)) != len(batch_sizes):
        raise ValueError(f"config.batch_sizes={config.batch_sizes!r} is invalid; allowed: a "
                         "non-empty tuple of distinct positive integers")
    return [Run(run_name(m), {"batch_size": m}) for m in batch_sizes]


def run_batch_sweep(config, workdir: str, task_index: int = 0, num_tasks: int = 1, *,
                    model=None, dataset=None, objective=None,
                    budget_minutes: float = 0.0) -> list[dict]:
    """Runs this task's unfinished batch sizes (none started after `budget_minutes`, 0: no
    limit), merges, reports; returns the merged rows. `model`, `dataset`, `objective`: a
    user's (smallbatch_jax.api)."""
    return run_sweep(config, batch_size_runs(config), workdir,
                     lambda rows: report(workdir, rows, config.reliable_tolerance,
                                         target=config.target),
                     task_index, num_tasks, model=model, dataset=dataset, objective=objective,
                     budget_minutes=budget_minutes)


def _tuned_lanes(rows, per_m: dict[int, list[dict] | None]) -> dict[int, list[dict] | None]:
    """Each m's curves or evaluations rows of the lanes that `analysis.tuned` keeps: where
    the grid sweeps more than η̃, a curve read by its η̃ is that of η̃'s best setting."""
    if not analysis.swept_besides_lr(rows):
        return per_m
    keep = collections.defaultdict(set)
    for row in analysis.tuned(rows):
        keep[int(row["batch_size"])].add(int(row["lane"]))
    return {m: None if lines is None else [r for r in lines if int(r["lane"]) in keep[m]]
            for m, lines in per_m.items()}


def _curves(workdir: str, rows) -> dict[int, list[dict]] | None:
    """{m: its curves.csv rows (of the tuned lanes)}; None if any m's file is missing, or
    lacks a seed or η̃ of the table (a table merged with seeds or η̃ trained elsewhere, whose
    curves are there: an answer from part of them would not be the table's)."""
    curves = {m: run_directory(workdir, m).read_curves()
              for m in sorted({int(row["batch_size"]) for row in rows})}
    if any(lines is None for lines in curves.values()):
        return None
    lanes = lambda table: {(str(r["seed"]), float(r["base_lr"])) for r in table}
    if any(not lanes(r for r in rows if int(r["batch_size"]) == m) <= lanes(lines)
           for m, lines in curves.items()):
        return None
    return _tuned_lanes(rows, curves)


def noise_scales(workdir: str, rows) -> dict[int, list[tuple[int, float]]]:
    """{m: [(epoch, B_simple)] at m's best η̃} where the runs probed it (noise_scale.py;
    NaN where the estimate was not positive: the gradient lost in the probe's noise)."""
    curves = _curves(workdir, rows) or {}
    best = analysis.best_per_batch_size(analysis.metric_table(rows))
    return {m: noise_scale.curves_at(curves[m], lr) for m, (lr, _) in best.items()
            if m in curves and not math.isnan(lr) and noise_scale.probed(curves[m], lr)}


def time_to_target(workdir: str, rows, target: float = 0.0) -> tuple[float, dict[int, dict]]:
    """(the target, steps_to_target's table per m) from the runs' evaluations (evaluations.csv
    where there is one, else curves.csv); `target` 0: steps_to_target.default_target. The
    table is empty where a run's curves are missing or every run diverged."""
    curves = _curves(workdir, rows)
    target = target or steps_to_target.default_target(rows)
    if math.isnan(target) or curves is None:
        return target, {}
    # A run that evaluated inside epochs (config.evals_per_epoch) has its finer evaluations.
    evaluations = _tuned_lanes(rows, {m: run_directory(workdir, m).read_evaluations()
                                      for m in curves})
    evaluations = {m: evaluations[m] or curves[m] for m in curves}
    return target, steps_to_target.steps_to_target(rows, evaluations, target, curves)


def not_run(workdir: str, rows) -> list[int]:
    """The batch sizes of the sweep's config (its sweep_config.json) without rows yet."""
    config = SweepDirectory(workdir).saved_config() or {}
    ran = {int(row["batch_size"]) for row in rows}
    return [int(m) for m in config.get("batch_sizes", ()) if int(m) not in ran]


def test_run_directory(workdir: str, rows) -> tuple[RunDirectory, dict] | None:
    """Where the sweep's recommended setting (recommend.recommended_point) is trained for the
    test split, workdir/test_run/m<m>_<digest of its overrides> (another point, after a
    merge, gets its own), and those overrides (recommend.test_run_overrides). None where
    the sweep chose on the test split, every run diverged, or no setting beat a constant
    prediction (recommend.recommended_point)."""
    if results.evaluated_on(rows) != "validation":
        return None
    point = recommend.recommended_point(rows)
    if point is None:
        return None
    overrides = recommend.test_run_overrides(rows, *point)
    name = f"m{point[0]}_" + hashlib.blake2b(repr(sorted(overrides.items())).encode(),
                                             digest_size=4).hexdigest()
    return SweepDirectory(workdir).test_run(name), overrides


def test_run(config, workdir: str, rows, *, model=None, dataset=None,
             objective=None) -> list[dict] | None:
    """For a complete sweep that chose on a validation split (config.validation): its
    recommended setting trained once on the whole training set, every seed, and evaluated
    on the test split, in `test_run_directory` (a finished one is read back). None where
    config.test_run is False, batch sizes are still to run (the answer may change), or
    there is no such directory."""
    found = test_run_directory(workdir, rows)
    if not config.test_run or found is None or not_run(workdir, rows):
        return None
    directory, overrides = found
    final = copy.deepcopy(config)
    with final.unlocked():
        for key, value in overrides.items():
            *parents, last = key.split(".")
            node = final
            for parent in parents:
                node = node[parent]
            node[last] = value
    logging.info("the recommended setting on the whole training set, for the test split: %s",
                 overrides)
    return train_and_evaluate(final, directory.path, dataset, model, objective)


def write_recommendation(workdir: str, rows, tolerance: float, target: float = 0.0) -> str:
    """workdir/recommendation.md from the sweep's rows (recommend.py), with the recommended
    setting's test figure where its test run (test_run) has finished; returns its path."""
    target, found = time_to_target(workdir, rows, target)
    tested = test_run_directory(workdir, rows)
    test_rows = tested[0].read_results() if tested is not None else None
    scales = {m: noise_scale.final_scale(curve) for m, curve in noise_scales(workdir, rows).items()}
    text = recommend.recommendation_markdown(rows, found, target, tolerance,
                                             where=analysis.context(rows), noise_scales=scales,
                                             not_run=not_run(workdir, rows),
                                             test_rows=test_rows)
    names = plots.figure_names(analysis.metric_table(rows).metric)
    figures = (names["vs_lr"], names["best_vs_batch_size"], "reliable_lr_range",
               "steps_to_target", "noise_scale")
    swept = analysis.swept_besides_lr(rows)
    if swept:  # (plots.write_figures: the figures of the other swept hyperparameters)
        figures += tuple(f"{names['best_vs_batch_size']}_by_{key}" for key in swept) + (
            names["swept_heat_maps"],)
    text += ("\nFigures: " + ", ".join(f"[{name}](figures/{name}.png)" for name in figures)
             + " (this workdir's `figures/`), summary: [summary.md](summary.md).\n")
    return SweepDirectory(workdir).write_text(SweepDirectory.RECOMMENDATION, text)


def report(workdir: str, rows, tolerance: float, curves=None, target: float = 0.0) -> None:
    """The figures (workdir/figures/, with `curves` as in plots.training_curves) and
    summary.md of the rows, with the steps to `target` (0: steps_to_target.default_target)
    from the runs' curves.csv; printed summary too."""
    directory = SweepDirectory(workdir).file(SweepDirectory.FIGURES)
    paths = plots.write_figures(rows, directory, tolerance, curves)
    summary = analysis.summary_markdown(rows, tolerance, not_run=not_run(workdir, rows))
    target, found = time_to_target(workdir, rows, target)
    if found:
        metric, split = results.metric_of(rows).name, results.evaluated_on(rows)
        summary += "\n" + steps_to_target.markdown(found, target, metric, split,
                                                    steps_to_target.caution(rows, target))
        paths += plots.save(plots.steps_to_target_vs_batch_size(
            found, target, metric, analysis.context(rows), split), directory,
            "steps_to_target")
    scales = noise_scales(workdir, rows)
    if scales:
        table = analysis.metric_table(rows)
        best = analysis.best_of(table, table.higher_is_better)
        paths += plots.save(plots.noise_scale_vs_progress(
            scales, best[0] if best else None, analysis.context(rows)), directory, "noise_scale")
    write_summary(workdir, summary, paths)


def report_comparison(sweeps: dict[str, str], workdir: str, tolerance: float) -> None:
    """Figs 15 and 16 across finished sweeps ({label: sweep workdir}), e.g. AlexNet with and
    without BN, in workdir/figures/ with workdir/summary.md."""
    tables, scalings = {}, {}
    for label, sweep_dir in sweeps.items():
        sweep = SweepDirectory(sweep_dir)
        if not sweep.has_results():
            raise ValueError(f"sweep {label!r}: no {sweep.RESULTS} in {sweep_dir}")
        rows = sweep.read_results()
        tables[label] = analysis.metric_table(rows)
        scalings[label] = sorted({row.get("lr_scaling") or "linear" for row in rows})
    # (Checked before anything is drawn: one η̃ axis and one metric axis for every sweep.)
    if len({tuple(s) for s in scalings.values()}) > 1:
        raise ValueError("sweeps whose swept value means different things cannot share an η̃ "
                         "axis: lr_scaling " + ", ".join(f"{label}: {'/'.join(s)}"
                                                         for label, s in scalings.items()))
    if len({(t.metric, t.higher_is_better) for t in tables.values()}) > 1:
        raise ValueError("sweeps of different metrics cannot be compared: " + ", ".join(
            f"{label}: {t.metric}" for label, t in tables.items()))
    if len({t.evaluated_on for t in tables.values()}) > 1:
        raise ValueError("sweeps evaluated on different splits cannot be compared "
                         "(config.validation): " + ", ".join(
                             f"{label}: {t.evaluated_on}" for label, t in tables.items()))
    os.makedirs(workdir, exist_ok=True)
    paths = plots.write_comparison_figures(tables, SweepDirectory(workdir).file(
        SweepDirectory.FIGURES), tolerance)
    write_summary(workdir, analysis.comparison_markdown(tables, tolerance), paths)
