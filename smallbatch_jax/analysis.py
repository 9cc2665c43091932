"""What a batch sweep's results table says: best η̃ per m, best m, the reliable η̃ range.

Input: the rows of a sweep's results.csv (dicts of strings or numbers). Seeds are averaged
first: the score of (m, η̃) is the mean over seeds of the paper's metric (the median test
accuracy over the last epochs, or of the run's own metric: objectives.py), NaN if any seed
diverged within them. The tables (`MetricTable`) carry the metric's name and direction, and
every best, threshold and sentence follows it: for a metric where lower is better (a
regression's error), the best is the smallest and "within tolerance" means ≤ best + tolerance.

"Reliable convergence" (the paper's Fig 16) is not defined in the paper
(paper_protocol.md §7). Here, as the protocol suggests: η̃ is reliable for m when its
accuracy is at least the best accuracy of the whole sweep (every m, every η̃) minus
`tolerance` (in the metric's units), and no seed diverged. The tolerance is the sweep
config's `reliable_tolerance`, and every figure and summary states it.

Ties: wherever a best is chosen (η̃ at an m, the best m, the best m_BN), equal scores go
to the smaller value (`best_of`), one rule for every table, figure and summary.
"""

import collections
import math

import numpy as np

from smallbatch_jax.results import metric_of


class MetricTable(dict):
    """A dict of scores ({(m, η̃): value}, or {(m, m_BN): (η̃, value)}) that knows its
    metric's name and direction. A plain dict is taken as accuracy, higher is better."""

    def __init__(self, items=(), metric: str = "accuracy", higher_is_better: bool = True):
        super().__init__(items)
        self.metric, self.higher_is_better = metric, higher_is_better


def metric_name(table) -> str:
    return getattr(table, "metric", "accuracy")


def higher_is_better(table) -> bool:
    return getattr(table, "higher_is_better", True)


def best_of(scores: dict, higher: bool = True):
    """The key of the best finite score (the highest, or the lowest when not `higher`); ties
    go to the smallest key. None if no score is finite."""
    finite = [key for key, score in scores.items() if not math.isnan(score)]
    if not finite:
        return None
    sign = -1.0 if higher else 1.0
    return min(finite, key=lambda key: (sign * scores[key], key))


def accuracy_table(rows) -> MetricTable:
    """{(m, η̃): mean over seeds of the median test metric (accuracy by default)}; NaN if a
    seed is NaN."""
    by_point = collections.defaultdict(list)
    for row in rows:
        by_point[(int(row["batch_size"]), float(row["base_lr"]))].append(
            float(row["median_test_metric"]))
    return MetricTable({point: float(np.mean(values))
                        for point, values in sorted(by_point.items())}, *metric_of(rows))


def best_per_batch_size(accuracies: dict) -> dict[int, tuple[float, float]]:
    """{m: (best η̃, its score)}; (NaN, NaN) where every η̃ failed."""
    best = {}
    for m in sorted({m for m, _ in accuracies}):
        lr = best_of({lr: acc for (mm, lr), acc in accuracies.items() if mm == m},
                     higher_is_better(accuracies))
        best[m] = (math.nan, math.nan) if lr is None else (lr, accuracies[(m, lr)])
    return best


def within_tolerance(value: float, best: float, tolerance: float, higher: bool) -> bool:
    """Whether `value` is no worse than `best` by more than `tolerance` (NaN: never)."""
    if math.isnan(value):
        return False
    return value >= best - tolerance if higher else value <= best + tolerance


def reliable_ranges(accuracies: dict, tolerance: float) -> dict[int, list[float]]:
    """{m: the η̃ whose score is within `tolerance` of the sweep's best}, sorted."""
    higher = higher_is_better(accuracies)
    best_point = best_of(accuracies, higher)
    if best_point is None:
        return {m: [] for m, _ in accuracies}
    best = accuracies[best_point]
    ranges = {m: [] for m, _ in accuracies}
    for (m, lr), acc in accuracies.items():
        if within_tolerance(acc, best, tolerance, higher):
            ranges[m].append(lr)
    return {m: sorted(lrs) for m, lrs in sorted(ranges.items())}


def reliability_rule(table, tolerance: float) -> str:
    """The reliability rule in words, e.g. 'accuracy ≥ best − 0.02'."""
    if higher_is_better(table):
        return f"{metric_name(table)} ≥ best − {tolerance:g}"
    return f"{metric_name(table)} ≤ best + {tolerance:g}"


def _metric_words(table) -> str:
    name = metric_name(table)
    return (f"median test {name} over the last epochs, mean over seeds"
            + ("" if higher_is_better(table) else "; lower is better"))


def training_seconds(rows) -> dict[int, float]:
    """{m: wall seconds of m's training} (one program trains all of m's lanes: the whole η̃
    grid); NaN where the table does not say."""
    seconds = collections.defaultdict(lambda: math.nan)
    for row in rows:
        m, value = int(row["batch_size"]), float(row.get("wall_seconds") or math.nan)
        if not math.isnan(value):
            seconds[m] = value if math.isnan(seconds[m]) else max(seconds[m], value)
    return seconds


def optima_at_the_edge(accuracies: dict) -> dict[int, str]:
    """{m: 'smallest' or 'largest'} where m's best η̃ is the smallest or largest η̃ run at m:
    the true optimum may lie outside the grid, and m's best accuracy is a lower bound."""
    edges = {}
    for m, (lr, _) in best_per_batch_size(accuracies).items():
        lrs = sorted(l for mm, l in accuracies if mm == m)
        if math.isnan(lr) or len(lrs) < 2:
            continue
        if lr == lrs[0]:
            edges[m] = "smallest"
        elif lr == lrs[-1]:
            edges[m] = "largest"
    return edges


def summary_markdown(rows, tolerance: float, title: str = "Batch-size sweep") -> str:
    """Best m, best η̃ and the reliable range per m, with the numbers."""
    accuracies = accuracy_table(rows)
    best = best_per_batch_size(accuracies)
    ranges = reliable_ranges(accuracies, tolerance)
    trained = {m: v for m, v in best.items() if not math.isnan(v[1])}
    name = metric_name(accuracies)
    lines = [f"# {title}", ""]
    if trained:
        best_m = best_of({m: acc for m, (_, acc) in trained.items()},
                         higher_is_better(accuracies))
        lr, acc = trained[best_m]
        lines += [f"Best: m = {best_m}, η̃ = 2^{math.log2(lr):g}, {name} {acc:.4f} "
                  f"({_metric_words(accuracies)}).", ""]
    else:
        lines += ["Every run diverged.", ""]
    lines += [f"Reliable η̃: {reliability_rule(accuracies, tolerance)} and no divergence. "
              "Training time: the wall time of m's program, every η̃ (and seed) at once.", "",
              f"| m | best η̃ | best {name} | reliable η̃ | reliable count | training time |",
              "|---|---|---|---|---|---|"]
    seconds = training_seconds(rows)
    for m, (lr, acc) in best.items():
        lrs = ranges[m]
        span = (f"2^{math.log2(lrs[0]):g} … 2^{math.log2(lrs[-1]):g}" if lrs else "none")
        best_lr = f"2^{math.log2(lr):g}" if not math.isnan(lr) else "—"
        best_acc = f"{acc:.4f}" if not math.isnan(acc) else "all diverged"
        time_text = "—" if math.isnan(seconds[m]) else f"{seconds[m]:.0f} s"
        lines.append(f"| {m} | {best_lr} | {best_acc} | {span} | {len(lrs)} | {time_text} |")
    edges = optima_at_the_edge(accuracies)
    for side in ("smallest", "largest"):
        at_edge = [str(m) for m, where in edges.items() if where == side]
        if at_edge:
            lines += ["", f"At m = {', '.join(at_edge)} the best η̃ is the {side} of the grid: "
                      f"the optimum may lie beyond it, and the best {name} there is a bound. "
                      "Extend `base_lrs` to find it."]
    return "\n".join(lines) + "\n"


def comparison_markdown(tables: dict, tolerance: float) -> str:
    """Several sweeps side by side ({label: accuracy_table}): per m, each sweep's best
    accuracy, its η̃ and its number of reliable η̃ (against that sweep's own best)."""
    labels = list(tables)
    all_ms = sorted({m for accuracies in tables.values() for m, _ in accuracies})
    best = {label: best_per_batch_size(accuracies) for label, accuracies in tables.items()}
    ranges = {label: reliable_ranges(accuracies, tolerance) for label, accuracies in tables.items()}
    first = next(iter(tables.values()), {})
    if len({(metric_name(t), higher_is_better(t)) for t in tables.values()}) > 1:
        raise ValueError("sweeps of different metrics cannot be compared")
    name = metric_name(first)
    lines = ["# Sweeps compared (Figs 15 and 16)", "",
             f"Each cell: best {name} ({_metric_words(first)}) at its best "
             f"η̃, and how many η̃ converge reliably ({reliability_rule(first, tolerance)}, "
             "that sweep's own best; no divergence).", "",
             "| m | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for m in all_ms:
        cells = []
        for label in labels:
            if m not in best[label]:
                cells.append("—")
                continue
            lr, acc = best[label][m]
            cells.append("all diverged" if math.isnan(acc) else
                         f"{acc:.4f} (2^{math.log2(lr):g}, {len(ranges[label][m])} reliable)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Best m of each sweep: " + "; ".join(
        f"{label}: m = "
        f"{best_of({m: acc for m, (_, acc) in trained.items()}, higher_is_better(first))}"
        for label in labels
        if (trained := {m: v for m, v in best[label].items() if not math.isnan(v[1])}))]
    return "\n".join(lines) + "\n"


def bn_accuracy_table(rows) -> MetricTable:
    """{(m, m_BN): (best η̃, its accuracy)} of a ghost-BN sweep: seeds averaged first (as in
    `accuracy_table`), then the best η̃ of each (m, m_BN); (NaN, NaN) where every η̃ failed."""
    by_point = collections.defaultdict(list)
    for row in rows:
        point = (int(row["batch_size"]), int(row["bn_batch_size"]), float(row["base_lr"]))
        by_point[point].append(float(row["median_test_metric"]))
    by_run = collections.defaultdict(dict)
    for (m, mbn, lr), values in sorted(by_point.items()):
        by_run[(m, mbn)][lr] = float(np.mean(values))
    metric, higher = metric_of(rows)
    best = MetricTable(metric=metric, higher_is_better=higher)
    for run, scores in by_run.items():
        lr = best_of(scores, higher)
        best[run] = (math.nan, math.nan) if lr is None else (lr, scores[lr])
    return best


def bn_summary_markdown(rows, title: str = "Ghost-BN sweep") -> str:
    """Accuracy per SGD batch m (rows) and BN batch m_BN (columns), the best m_BN per m and
    the η̃ each m was trained with."""
    accuracies = bn_accuracy_table(rows)
    batch_sizes = sorted({m for m, _ in accuracies})
    bn_sizes = sorted({b for _, b in accuracies})
    lrs_used = collections.defaultdict(set)
    for row in rows:
        lrs_used[int(row["batch_size"])].add(float(row["base_lr"]))
    trained = {key: v for key, v in accuracies.items() if not math.isnan(v[1])}
    higher, name = higher_is_better(accuracies), metric_name(accuracies)
    lines = [f"# {title}", ""]
    if trained:
        (m, mbn) = best_of({key: acc for key, (_, acc) in trained.items()}, higher)
        lr, acc = trained[(m, mbn)]
        lines += [f"Best: m = {m}, m_BN = {mbn} (η̃ = 2^{math.log2(lr):g}), {name} {acc:.4f} "
                  f"({_metric_words(accuracies)}).", ""]
    else:
        lines += ["Every run diverged.", ""]
    lines += [f"Each cell: the best η̃'s {name} at (m, m_BN); — where m_BN does not divide m "
              "or was not run.", "",
              "| m | η̃ | " + " | ".join(f"m_BN = {b}" for b in bn_sizes) + " | best m_BN |",
              "|---|---|" + "---|" * (len(bn_sizes) + 1)]
    for m in batch_sizes:
        used = sorted(lrs_used[m])
        lr_text = f"2^{math.log2(used[0]):g}" if len(used) == 1 else f"best of {len(used)}"
        cells = []
        for b in bn_sizes:
            acc = accuracies.get((m, b), (math.nan, None))[1] if (m, b) in accuracies else None
            cells.append("—" if acc is None else "diverged" if math.isnan(acc) else f"{acc:.4f}")
        row_best = best_of({b: v[1] for (mm, b), v in trained.items() if mm == m}, higher)
        best_text = "—" if row_best is None else str(row_best)
        lines.append(f"| {m} | {lr_text} | " + " | ".join(cells) + f" | {best_text} |")
    return "\n".join(lines) + "\n"
