"""The paper's figures from a sweep's results table (and per-m training curves).

Each function draws one figure on a new matplotlib Figure and returns it; `write_figures`
saves a batch sweep's as PNG and SVG, `write_bn_figures` a ghost-BN sweep's. Diverged runs
stay visible: as crosses in a strip under the curves of the metric vs η̃ (one row per m),
at the worst edge of the m_BN plot (the bottom for accuracy, the top where lower is better),
and as empty cells of the heat maps. Every label
names the table's metric (analysis.MetricTable) and says when lower is better.

For a paper: one colour *and* marker per m (tab10 and black, so m = 2, 4, 8 do not look
alike and the paper's eleven m = 2 … 2048 have a colour each), error
bars of one standard error where a sweep has several seeds, integer log₂ ticks, the axes
fitted to the data, the model, data set and optimizer in the title, 300-dpi PNG and SVG.
"""

import math
import os
import re

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import LogFormatter, MaxNLocator  # noqa: E402

from smallbatch_jax.objectives import ACCURACY, Metric  # noqa: E402
from smallbatch_jax.optim import SWEPT_SYMBOL  # noqa: E402
from smallbatch_jax.run.results import evaluated_on, metric_of, replacing  # noqa: E402
from smallbatch_jax.study.analysis import (  # noqa: E402
    MetricTable, best_of, best_per_batch_size, bn_metric_table, consecutive_runs, context,
    metric_table, most_important, reliability_rule, reliable_ranges, seed_statistics,
    setting_scores, swept_besides_lr, value_in)

FORMATS = ("png", "svg")
DPI = 300
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")


# tab10 and, for the paper's eleven m (2 … 2048), black: m = 2048 in tab10's first colour
# would be drawn like m = 2.
COLORS = tuple(plt.cm.tab10(i) for i in range(10)) + (mcolors.to_rgba("black"),)


def _style(i: int) -> dict:
    """The i-th series' colour and marker: distinguishable in colour and in grey."""
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)]}


def _title(ax, text: str, where: str = "") -> None:
    ax.set_title(text + (f"\n{where}" if where else ""), fontsize=10)


def _integer_log2_axis(axis) -> None:
    axis.set_major_locator(MaxNLocator(integer=True))


def _batch_sizes(accuracies):
    return sorted({m for m, _ in accuracies})


def _base_lrs(accuracies):
    return sorted({lr for _, lr in accuracies})


def _metric_label(table, prefix: str = "") -> str:
    """e.g. 'test accuracy', 'best validation mse (lower is better)' (`prefix` 'best '): the
    metric, the split it was measured on (analysis.MetricTable) and its direction."""
    return f"{prefix}{table.evaluated_on} {table.metric}" + (
        "" if table.higher_is_better else " (lower is better)")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _mark_failed(ax, table, xs, color, row: int = 0) -> None:
    """Crosses at the worst edge of the axes (x in data, y in axes coordinates), one row per
    series so that no series' marks hide another's: failed runs stay visible without
    stretching the axis to a made-up value."""
    y = 0.03 + 0.035 * row if table.higher_is_better else 0.97 - 0.035 * row
    ax.plot(xs, [y] * len(xs), "x", color=color, markersize=5,
            transform=ax.get_xaxis_transform(), clip_on=False)


def figure_names(metric: str) -> dict[str, str]:
    """The file names (without extension) of a batch sweep's figures that show the metric,
    named for it: accuracy_vs_lr.png for the paper's accuracy, mse_vs_lr.png for a
    regression's error. Keys: what each figure is."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", metric).strip("_") or "metric"
    return {"vs_lr": f"{slug}_vs_lr", "best_vs_batch_size": f"best_{slug}_vs_batch_size",
            "heat_map": f"{slug}_heat_map", "vs_bn_batch_size": f"{slug}_vs_bn_batch_size",
            "swept_heat_maps": f"{slug}_heat_maps_by_setting"}


def _metric_scale(ax, table, values) -> None:
    """A log y axis where lower is better and the finite values are positive and span more
    than a decade (an error of 0.3 at the best η̃ and 40 near divergence: on a linear axis
    the good end is one flat line)."""
    finite = np.asarray([v for v in values if np.isfinite(v)], float)
    if (not table.higher_is_better and finite.size and finite.min() > 0
            and finite.max() > 10 * finite.min()):
        ax.set_yscale("log")


def _colormap(table) -> str:
    return "viridis" if table.higher_is_better else "viridis_r"  # bright: better


def swept_symbol(rows) -> str:
    """How the axes name the swept value: η̃ (the paper's, η = m·η̃), η where the sweep's
    lr_scaling is 'none' (Adam's default), s where it is 'sqrt'."""
    scalings = {row.get("lr_scaling") or "linear" for row in rows}
    return SWEPT_SYMBOL.get(scalings.pop(), "η̃") if len(scalings) == 1 else "η̃"


def _swept_name(swept: str) -> str:
    return {"η̃": "base learning rate", "η": "learning rate"}.get(swept, f"learning rate {swept}")


def metric_vs_lr(accuracies, errors: dict | None = None, where: str = "",
                   swept: str = "η̃") -> plt.Figure:
    """Figs 1–3, 5–11: the test metric vs η̃, one curve per m; below it, a strip with one
    row per m marking (✕) the η̃ where m diverged, so that no mark hides another or the
    data. `errors`: {(m, η̃): standard error} (bars where finite); `where`: the title's
    second line (plots.context)."""
    ms = _batch_sizes(accuracies)
    fig, (ax, strip) = plt.subplots(
        2, 1, figsize=(6, 4.2 + 0.12 * len(ms)), sharex=True,
        gridspec_kw={"height_ratios": [4, 0.6 + 0.15 * len(ms)], "hspace": 0.05})
    for i, m in enumerate(ms):
        style = _style(i)
        lrs = sorted(lr for mm, lr in accuracies if mm == m)
        accs = [accuracies[(m, lr)] for lr in lrs]
        bars = [(errors or {}).get((m, lr), math.nan) for lr in lrs]
        ax.errorbar(np.log2(lrs), accs, yerr=None if np.all(np.isnan(bars)) else bars,
                    linestyle="-", markersize=4, capsize=2, label=f"m = {m}", **style)
        failed = [math.log2(lr) for lr, acc in zip(lrs, accs) if math.isnan(acc)]
        strip.plot(failed, [i] * len(failed), "x", color=style["color"], markersize=5)
    strip.set_yticks(range(len(ms)), [str(m) for m in ms], fontsize=6)
    strip.set_ylim(-0.7, len(ms) - 0.3)
    strip.invert_yaxis()
    strip.set_ylabel("✕ diverged\nm", fontsize=7)
    strip.grid(alpha=0.3, axis="x")
    _integer_log2_axis(strip.xaxis)
    strip.set_xlabel(f"log₂ {swept}")
    # (On two lines: on one, a long label runs down past the axes into the strip's.)
    ax.set(ylabel=_metric_label(accuracies) + ",\nmedian of the last epochs")
    _metric_scale(ax, accuracies, accuracies.values())
    _baseline_line(ax, accuracies)
    _title(ax, f"{_capital(accuracies.evaluated_on)} {accuracies.metric} vs "
               f"{_swept_name(swept)}", where)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def _baseline_line(ax, table) -> None:
    """A dotted line at what a constant prediction scores (MetricTable.baseline), where it
    falls inside the axes the data set: at a baseline far below the data (digits' 0.1 under
    accuracies of 0.97) the scale stays the data's, and the line is left out."""
    baseline = getattr(table, "baseline", math.nan)
    low, high = ax.get_ylim()
    if not math.isnan(baseline) and min(low, high) <= baseline <= max(low, high):
        ax.axhline(baseline, color="0.35", linestyle=":", linewidth=1,
                   label="constant prediction")
        ax.set_ylim(low, high)


def _batch_size_ticks(ax, positions, sizes) -> None:
    """A tick per batch size, labelled with it; slanted when the row of labels would run
    together (m = 2 … 2048 on a 5-inch axis: "10242048")."""
    labels = [str(m) for m in sizes]
    ax.set_xticks(positions, labels)
    if len(labels) > 6 and max(map(len, labels)) >= 4:
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)


def best_metric_vs_batch_size(accuracies, errors: dict | None = None,
                                where: str = "") -> plt.Figure:
    """Fig 15 of one sweep: the best test metric over η̃ at each m (± one standard error)."""
    return compare_best_metric({None: accuracies}, {None: errors}, where)


def compare_best_metric(tables: dict, errors: dict | None = None,
                          where: str = "") -> plt.Figure:
    """Fig 15: the best test metric over η̃ at each m, one curve per sweep ({label: accuracies};
    label None: a single sweep, no legend); `errors`: {label: {(m, η̃): standard error}}."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    all_ms = sorted({m for accuracies in tables.values() for m, _ in accuracies})
    for i, (label, accuracies) in enumerate(tables.items()):
        best = best_per_batch_size(accuracies)
        sweep_errors = (errors or {}).get(label) or {}
        bars = [sweep_errors.get((m, lr), math.nan) for m, (lr, _) in best.items()]
        ax.errorbar(np.log2(list(best)), [acc for _, acc in best.values()],
                    yerr=None if np.all(np.isnan(bars)) else bars, linestyle="-",
                    markersize=4, capsize=2, label=label, **_style(i))
    _batch_size_ticks(ax, np.log2(all_ms), all_ms)
    first = next(iter(tables.values()), {})
    ax.set(xlabel="batch size m", ylabel=_metric_label(first, "best "))
    if first:
        _metric_scale(ax, first, [acc for table in tables.values()
                                  for _, acc in best_per_batch_size(table).values()])
    if len(tables) == 1:
        _baseline_line(ax, first)
    _title(ax, f"Best {first.evaluated_on} {first.metric} vs m", where)
    if any(label is not None for label in tables) or ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def best_metric_tuned_or_fixed(rows, key: str, values, where: str = "") -> plt.Figure:
    """The best test metric vs m with hyperparameter `key` (swept besides η̃: config.sweep)
    tuned, and fixed at each of its `values` (η̃ and the others tuned either way): whether
    tuning it moves the best batch size."""
    tables = {f"{key} tuned": metric_table(rows)}
    for value in values:
        # (A clipping norm of 0 is none: said, not left to be read as a norm of zero.)
        none = " (none)" if key == "grad_clip" and value == 0 else ""
        tables[f"{key} = {value:g}{none}"] = metric_table(
            [row for row in rows if float(row[key]) == value])
    fig = compare_best_metric(tables, where=where)
    ax = fig.axes[0]
    tuned = next(line for line in ax.get_lines() if len(line.get_xdata()))
    # Drawn on top, apart: at each m it coincides with the best of the fixed curves.
    tuned.set(color="black", linestyle="--", linewidth=1.6, markersize=6,
              markerfacecolor="none", zorder=5)
    ax.legend(fontsize=7)
    tuned_table = tables[f"{key} tuned"]
    fig.axes[0].set_title(f"Best {tuned_table.evaluated_on} {tuned_table.metric} vs m, {key} "
                          f"tuned or "
                          f"fixed" + (f"\n{where}" if where else ""), fontsize=10)
    return fig


def reliable_range_vs_batch_size(accuracies, tolerance: float, where: str = "",
                                 swept: str = "η̃") -> plt.Figure:
    """Fig 16 of one sweep: the η̃ that converge reliably at each m."""
    return compare_reliable_ranges({None: accuracies}, tolerance, where, swept)


def compare_reliable_ranges(tables: dict, tolerance: float, where: str = "",
                            swept: str = "η̃") -> plt.Figure:
    """Fig 16: the η̃ that converge reliably at each m (vertical bars through the grid points),
    one colour per sweep ({label: accuracies}, each against its own best; side by side at each m)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    all_ms = sorted({m for accuracies in tables.values() for m, _ in accuracies})
    colors = plt.cm.tab10(np.arange(len(tables)) % 10)
    for i, (color, (label, accuracies)) in enumerate(zip(colors, tables.items())):
        grid = sorted({lr for _, lr in accuracies})
        offset = 0.15 * (i - (len(tables) - 1) / 2)
        for m, lrs in reliable_ranges(accuracies, tolerance).items():
            x = math.log2(m) + offset
            for run in consecutive_runs(lrs, grid):  # gaps stay gaps
                # ±0.3 around the run's ends: a lone η̃ shows as a bar, a gap as white.
                ax.plot([x] * 2, [math.log2(run[0]) - 0.3, math.log2(run[-1]) + 0.3], "-",
                        color=color, solid_capstyle="butt",
                        linewidth=6 if len(tables) == 1 else 3, alpha=0.5)
            if lrs:
                ax.plot([x] * len(lrs), np.log2(lrs), "o", color=color, markersize=3)
        if label is not None:
            ax.plot([], [], "-", color=color, linewidth=3, label=label)
    _batch_size_ticks(ax, np.log2(all_ms), all_ms)
    _integer_log2_axis(ax.yaxis)
    ax.set(xlabel="batch size m", ylabel=f"log₂ {swept}")
    _title(ax, f"Reliable {swept}: {reliability_rule(next(iter(tables.values()), {}), tolerance)}, "
               "no divergence", where)
    if any(label is not None for label in tables):
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def metric_heat_map(accuracies, where: str = "", swept: str = "η̃") -> plt.Figure:
    """Test accuracy over the η̃ × m grid (blank: diverged)."""
    ms, lrs = _batch_sizes(accuracies), _base_lrs(accuracies)
    values = np.array([[accuracies.get((m, lr), np.nan) for m in ms] for lr in lrs])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    # Cells of η̃ not run at m (grids that differ per m) in grey: blank means diverged only.
    not_run = np.array([[(m, lr) not in accuracies for m in ms] for lr in lrs])
    if not_run.any():
        ax.imshow(np.where(not_run, 1.0, np.nan), origin="lower", aspect="auto",
                  cmap=mcolors.ListedColormap(["0.85"]), vmin=0, vmax=1)
    finite = values[np.isfinite(values)]
    norm = None  # a log colour scale where lower is better and the errors span decades
    if (not accuracies.higher_is_better and finite.size and finite.min() > 0
            and finite.max() > 10 * finite.min()):
        norm = mcolors.LogNorm(finite.min(), finite.max())
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=_colormap(accuracies),
                      norm=norm)
    _batch_size_ticks(ax, range(len(ms)), ms)
    ax.set_yticks(range(len(lrs)), [f"{math.log2(lr):g}" for lr in lrs])
    ax.set(xlabel="batch size m", ylabel=f"log₂ {swept}")
    _title(ax, f"{_capital(_metric_label(accuracies))} (blank: diverged"
               + ("; grey: not run)" if not_run.any() else ")"), where)
    fig.colorbar(image, ax=ax)
    return fig


def _dimension_label(key: str, swept: str) -> str:
    return f"log₂ {swept}" if key == "base_lr" else key


def _tick_text(key: str, value: float) -> str:
    return f"{math.log2(value):g}" if key == "base_lr" else f"{value:g}"


def swept_heat_maps(rows, where: str = "", swept: str = "η̃") -> plt.Figure:
    """Per m, the test metric over the two most important swept dimensions at that m
    (analysis.most_important: η̃ and config.sweep's, by the spread of the best score over
    their values), each cell at the best of the other dimensions, mean over seeds (blank:
    diverged; grey: not run). One colour scale for every m."""
    scores = setting_scores(rows)
    table = metric_table(rows)
    ms = sorted({m for m, _, _ in scores})
    panels = []
    for m in ms:
        keys = most_important(rows, m)[:2]
        if len(keys) < 2:
            continue
        y_key, x_key = keys  # the most important one up the side
        at_m = {(lr, setting): v for (mm, lr, setting), v in scores.items() if mm == m}
        ys = sorted({value_in(p, y_key) for p in at_m})
        xs = sorted({value_in(p, x_key) for p in at_m})
        cells = np.full((len(ys), len(xs)), np.nan)
        run = np.zeros((len(ys), len(xs)), bool)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                here = {p: v for p, v in at_m.items()
                        if value_in(p, y_key) == y and value_in(p, x_key) == x}
                run[i, j] = bool(here)
                best = best_of(here, table.higher_is_better) if here else None
                cells[i, j] = here[best] if best is not None else np.nan
        panels.append((m, y_key, x_key, ys, xs, cells, run))
    columns = min(len(panels), 4) or 1
    lines = -(-len(panels) // columns) or 1
    fig, axes = plt.subplots(lines, columns, figsize=(3.6 * columns, 3.1 * lines + 0.7),
                             squeeze=False, layout="constrained")
    for ax, (m, y_key, x_key, ys, xs, cells, run) in zip(axes.flat, panels):
        if not run.all():
            ax.imshow(np.where(run, np.nan, 1.0), origin="lower", aspect="auto",
                      cmap=mcolors.ListedColormap(["0.85"]), vmin=0, vmax=1)
        # Each m on its own colour scale: the structure within m is the point (best_*
        # figures compare the m); the best cell ringed.
        image = ax.imshow(cells, origin="lower", aspect="auto", cmap=_colormap(table))
        if np.isfinite(cells).any():
            flat = np.nanargmax(cells) if table.higher_is_better else np.nanargmin(cells)
            i, j = np.unravel_index(flat, cells.shape)
            ax.plot(j, i, "o", markerfacecolor="none", markeredgecolor="red", markersize=9)
        ax.set_yticks(range(len(ys)), [_tick_text(y_key, y) for y in ys])
        ax.set_xticks(range(len(xs)), [_tick_text(x_key, x) for x in xs])
        ax.set(ylabel=_dimension_label(y_key, swept), xlabel=_dimension_label(x_key, swept))
        ax.set_title(f"m = {m}", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.85)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{_capital(_metric_label(table))} over each m's two most important swept "
                 "dimensions, the others at their best (each m its own scale; ○ best; blank: "
                 "diverged)" + (f"\n{where}" if where else ""), fontsize=9)
    return fig


def metric_vs_bn_batch_size(bn_grid) -> plt.Figure:
    """Figs 13–14: test accuracy vs m_BN, one curve per m (analysis.bn_metric_table: the
    best η̃ of each (m, m_BN)); ✕ marks an (m, m_BN) where every η̃ diverged."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    batch_sizes = sorted({m for m, _ in bn_grid})
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(batch_sizes)))
    for color, m in zip(colors, batch_sizes):
        mbns = sorted(b for mm, b in bn_grid if mm == m)
        accs = [bn_grid[(m, b)][1] for b in mbns]
        ax.plot(np.log2(mbns), accs, "o-", color=color, label=f"m = {m}", markersize=3)
        _mark_failed(ax, bn_grid, [math.log2(b) for b, acc in zip(mbns, accs)
                                   if math.isnan(acc)], color)
    mbns = sorted({b for _, b in bn_grid})
    _batch_size_ticks(ax, np.log2(mbns), mbns)
    ax.set(xlabel="BN batch size m_BN",
           ylabel=_metric_label(bn_grid) + ", median of the last epochs",
           title=f"{_capital(bn_grid.evaluated_on)} {bn_grid.metric} vs BN batch size "
                 "(✕: diverged)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return fig


def bn_heat_map(bn_grid) -> plt.Figure:
    """Test accuracy over the m_BN × m grid (blank: not run, or every η̃ diverged)."""
    ms, mbns = sorted({m for m, _ in bn_grid}), sorted({b for _, b in bn_grid})
    values = np.array([[bn_grid.get((m, b), (np.nan, np.nan))[1] for m in ms] for b in mbns])
    fig, ax = plt.subplots(figsize=(6, 4.5))
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=_colormap(bn_grid))
    _batch_size_ticks(ax, range(len(ms)), ms)
    ax.set_yticks(range(len(mbns)), [str(b) for b in mbns])
    ax.set(xlabel="SGD batch size m", ylabel="BN batch size m_BN",
           title=f"{_capital(_metric_label(bn_grid))}, best η̃ (blank: not run or diverged)")
    fig.colorbar(image, ax=ax)
    return fig


def training_curves(curves: dict[str, list[dict]], metric: Metric = ACCURACY,
                    evaluated_on: str = "test") -> plt.Figure:
    """Fig 4: the test metric (or the validation split's: `evaluated_on`) per epoch, one
    curve per label (e.g. 'm = 8, η̃ = 2^-8')."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    values = []
    for label, rows in curves.items():
        values += [float(r["test_metric"]) for r in rows]
        ax.plot([int(r["epoch"]) for r in rows], [float(r["test_metric"]) for r in rows],
                label=label)
    table = MetricTable(ranking=metric, evaluated_on=evaluated_on)
    ax.set(xlabel="epoch", ylabel=_metric_label(table), title="Training curves")
    _metric_scale(ax, table, values)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def steps_to_target_vs_batch_size(found: dict[int, dict], target: float, metric: str,
                                  where: str = "", evaluated_on: str = "test") -> plt.Figure:
    """Shallue et al.'s figure: the fewest steps to the target per m (steps_to_target.py),
    log–log, with the perfect-scaling line (steps ∝ 1/m) through the smallest m that
    reached it; m that never reached it are marked at the top. A point is the evaluation
    that first found the target reached: its bar goes down to the step after the evaluation
    before, which had not (the crossing lies in between; an m that reached it at its first
    evaluation, down to step 1), so that m measured once an epoch are not read finer than
    that."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    reached = {m: f["steps"] for m, f in found.items() if f["steps"] is not None}
    if reached:
        ms = sorted(reached)
        ax.plot(ms, [reached[m] for m in ms], linestyle="-", markersize=5,
                label="measured", **_style(0))
        bounded = [m for m in ms if found[m].get("interval")]
        if bounded:
            ax.vlines(bounded, [max(reached[m] - found[m]["interval"] + 1, 1) for m in bounded],
                      [reached[m] for m in bounded], color=_style(0)["color"], alpha=0.5,
                      linewidth=3, label="since the evaluation before")
        ax.plot(ms, [reached[ms[0]] * ms[0] / m for m in ms], "--", color="grey",
                label="perfect scaling")
    missed = [m for m, f in found.items() if f["steps"] is None]
    ax.plot(missed, [0.97] * len(missed), "x", color="black", markersize=6,
            transform=ax.get_xaxis_transform(), clip_on=False,
            label="not reached" if missed else None)
    ax.set_xscale("log", base=2)
    if reached:
        ax.set_yscale("log")
        # Step counts as numbers (50, 40, …), not "4×10¹" (minor ticks labelled only over
        # a short range, as matplotlib's default does).
        ax.yaxis.set_major_formatter(LogFormatter())
        ax.yaxis.set_minor_formatter(LogFormatter(minor_thresholds=(2, 0.4)))
    else:
        ax.text(0.5, 0.5, "no m reached the target", ha="center", transform=ax.transAxes)
    all_ms = sorted(found)
    _batch_size_ticks(ax, all_ms, all_ms)
    ax.set(xlabel="batch size m", ylabel="steps to target")
    _title(ax, f"Steps to {evaluated_on} {metric} {target:.4f}", where)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return fig


def noise_scale_vs_progress(curves: dict[int, list], best_m: int | None,
                            where: str = "") -> plt.Figure:
    """The gradient noise scale B_simple (noise_scale.py) against the fraction of training
    done, one curve per m at its best η̃ ({m: [noise_scale.NoisePoint]}), log scale, with a
    band of ± one standard error around the resolved estimates and the unresolved ones drawn
    hollow (|G|² within two standard errors of 0: B_simple could be larger without bound);
    the sweep's empirically best m as a dashed line: does the noise scale point at it? An m
    whose estimate was never positive is named as not measurable."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    lost = [m for m, curve in sorted(curves.items()) if all(math.isnan(p.scale) for p in curve)]
    if lost:
        ax.text(0.02, 0.02, "not measurable at m = " + ", ".join(map(str, lost)),
                transform=ax.transAxes, fontsize=7, color="grey")
    hollow = False
    for i, (m, curve) in enumerate(sorted(curves.items())):
        if m in lost:
            continue
        style = _style(i)
        epochs = max((p.epoch for p in curve), default=1)
        x = np.array([p.epoch / epochs for p in curve])
        y = np.array([p.scale for p in curve])
        ax.plot(x, y, linestyle="-", linewidth=1, label=f"m = {m}", color=style["color"],
                marker="none")
        usable = np.array([p.usable for p in curve], bool)
        ax.plot(x[usable], y[usable], linestyle="none", markersize=4, **style)
        ax.plot(x[~usable], y[~usable], linestyle="none", markersize=5, markeredgewidth=0.8,
                markerfacecolor="white", color=style["color"], marker=style["marker"])
        hollow |= bool((~usable & np.isfinite(y)).any())
        se = np.array([p.se for p in curve])
        band = usable & np.isfinite(se)
        if band.any():  # on a log axis: the band's lower edge kept above 0
            ax.fill_between(x, np.where(band, np.maximum(y - se, y / 100), np.nan),
                            np.where(band, y + se, np.nan), color=style["color"], alpha=0.2,
                            linewidth=0)
    if hollow:
        ax.plot([], [], "o", markerfacecolor="none", color="grey",
                label="hollow: not resolved")
    if best_m is not None:
        ax.axhline(best_m, linestyle="--", color="grey", label=f"best m = {best_m}")
    ax.set_yscale("log")
    ax.set(xlabel="fraction of training", ylabel="noise scale B_simple = tr Σ / |G|²")
    _title(ax, "Gradient noise scale at each m's best η̃ (± 1 s.e.)", where)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return fig


def _typeset_tilde(fig: plt.Figure) -> None:
    """η̃ through matplotlib's mathtext: as Unicode (η + a combining tilde) its fonts draw
    the tilde beside the η, which reads as "ñ". The figures' functions keep plain Unicode
    (what their callers and tests compare); the files get the typeset symbol."""
    for text in fig.findobj(Text):
        if "η̃" in text.get_text():
            text.set_text(text.get_text().replace("η̃", r"$\tilde{\eta}$"))


def save(fig: plt.Figure, directory: str, name: str) -> list[str]:
    """`fig` as `name`.png and .svg in `directory`, cropped to what it draws. The crop is
    measured once for both files: savefig(bbox_inches='tight') draws the figure once more
    per file to measure it (a digits sweep's figures: 1.48 s of CPU instead of 2.02;
    docs/probes/figure_save.py, docs/benchmarks.md)."""
    _typeset_tilde(fig)
    paths = [os.path.join(directory, f"{name}.{ext}") for ext in FORMATS]
    crop = fig.get_tightbbox().padded(plt.rcParams["savefig.pad_inches"])
    for path, ext in zip(paths, FORMATS):
        with replacing(path) as temporary:
            fig.savefig(temporary, format=ext, dpi=DPI, bbox_inches=crop)
    plt.close(fig)
    return paths


def write_figures(rows, directory: str, tolerance: float, curves=None) -> list[str]:
    """Every figure of a batch sweep, as PNG and SVG in `directory`; returns the paths."""
    os.makedirs(directory, exist_ok=True)
    accuracies = metric_table(rows)
    errors = {point: se for point, (_, se, _) in seed_statistics(rows).items()}
    where, swept = context(rows), swept_symbol(rows)
    names = figure_names(accuracies.metric)
    figures = {names["vs_lr"]: metric_vs_lr(accuracies, errors, where, swept),
               names["best_vs_batch_size"]: best_metric_vs_batch_size(accuracies, errors,
                                                                      where),
               "reliable_lr_range": reliable_range_vs_batch_size(accuracies, tolerance, where,
                                                                 swept),
               names["heat_map"]: metric_heat_map(accuracies, where, swept)}
    for key, values in swept_besides_lr(rows).items():
        figures[f"{names['best_vs_batch_size']}_by_{key}"] = best_metric_tuned_or_fixed(
            rows, key, values, where)
    if swept_besides_lr(rows):
        figures[names["swept_heat_maps"]] = swept_heat_maps(rows, where, swept)
    if curves:
        figures["training_curves"] = training_curves(curves, metric_of(rows),
                                                     evaluated_on(rows))
    return [path for name, fig in figures.items() for path in save(fig, directory, name)]


def write_comparison_figures(tables: dict, directory: str, tolerance: float) -> list[str]:
    """Figs 15 and 16 of several sweeps ({label: metric_table}) in `directory`."""
    os.makedirs(directory, exist_ok=True)
    names = figure_names(next(iter(tables.values())).metric if tables else "accuracy")
    figures = {names["best_vs_batch_size"]: compare_best_metric(tables),
               "reliable_lr_range": compare_reliable_ranges(tables, tolerance)}
    return [path for name, fig in figures.items() for path in save(fig, directory, name)]


def write_bn_figures(rows, directory: str) -> list[str]:
    """The figures of a ghost-BN sweep (accuracy vs m_BN, the m × m_BN heat map)."""
    os.makedirs(directory, exist_ok=True)
    bn_grid = bn_metric_table(rows)
    name = figure_names(bn_grid.metric)["vs_bn_batch_size"]
    figures = {name: metric_vs_bn_batch_size(bn_grid),
               "bn_heat_map": bn_heat_map(bn_grid)}
    return [path for name, fig in figures.items() for path in save(fig, directory, name)]
