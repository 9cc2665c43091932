"""What a batch sweep's results table says: best η̃ per m, best m, the reliable η̃ range.

Input: the rows of a sweep's results.csv (dicts of strings or numbers). Seeds are averaged
first: the score of (m, η̃) is the mean over seeds of the paper's metric (the median test
accuracy over the last epochs, or of the run's own metric: objectives.py; on a validation
split held out of the training set where the runs had config.validation, and every text
says which), NaN if any seed diverged within them. The tables (`MetricTable`) carry the
metric's name and direction, and every best, threshold and sentence follows it: for a metric
where lower is better (a regression's error), the best is the smallest and "within
tolerance" means ≤ best + tolerance × |best|: relative, so that it means the same at any
scale of the targets.

"Reliable convergence" (the paper's Fig 16) is not defined in the paper
(paper_protocol.md §7). Here, as the protocol suggests: η̃ is reliable for m when its
accuracy is at least the best accuracy of the whole sweep (every m, every η̃) minus
`tolerance` (in the metric's units; relative where lower is better, above), and no seed
diverged. The tolerance is the sweep
config's `reliable_tolerance`, and every figure and summary states it.

Seeds: with two or more, every (m, η̃) has a mean and a standard error (`seed_statistics`).
With at least MIN_SEEDS = 3 per point, an m is "within noise of the best" when Welch's t-test
of its best η̃'s seeds against the sweep's best point's seeds does not reject equal means at
α = 0.05, two-sided (`within_noise`), and its score is within the tolerance of the best
(`batch_sizes_within_noise`: the one answer summary.md and recommendation.md both give). The best η̃ of each m is itself chosen on these seeds, which flatters every
m alike; the test does not correct for it, and the summary says so.

Ties: wherever a best is chosen (η̃ at an m, the best m, the best m_BN), equal scores go
to the smaller value (`best_of`), one rule for every table, figure and summary.
"""

import collections
import math
import warnings

import numpy as np

from smallbatch_jax.objectives import ACCURACY, Metric
from smallbatch_jax.optim import median_reads_mid_training
from smallbatch_jax.run.results import (HYPERPARAMETER_COLUMNS, baseline_of, baseline_text,
                                        constant_bar, evaluated_on, lr_text, metric_of)

ALPHA = 0.05  # the significance level of `within_noise`
# Seeds per point a test of "within noise" needs: with 2 seeds per point Welch's test has
# about one degree of freedom, and 0.225 against 0.349 came out "within noise" (p = 0.058).
# Fewer: every report says it cannot tell.
MIN_SEEDS = 3


class MetricTable(dict):
    """A dict of scores ({(m, η̃): value}, or {(m, m_BN): (η̃, value)}) that knows its
    metric (objectives.Metric: the name and the direction, as the results rows say) and the
    split it was measured on (`evaluated_on`: 'test', or 'validation': config.validation),
    and what a constant prediction scores there (`baseline`, results.baseline_of; NaN: not
    known)."""

    def __init__(self, items=(), ranking: Metric = ACCURACY, evaluated_on: str = "test",
                 baseline: float = math.nan):
        super().__init__(items)
        self.ranking = ranking
        self.evaluated_on = evaluated_on
        self.baseline = baseline

    @property
    def metric(self) -> str:
        return self.ranking.name

    @property
    def higher_is_better(self) -> bool:
        return self.ranking.higher_is_better


def context(rows) -> str:
    """'alexnet on cifar10, sgd' from results rows (what they name; '' if nothing): the line
    every summary and figure names its runs with."""
    first = rows[0] if rows else {}
    named = [str(first.get(key) or "") for key in ("model", "dataset", "optimizer")]
    if not any(named):
        return ""
    return f"{named[0] or '?'} on {named[1] or '?'}" + (f", {named[2]}" if named[2] else "")


def best_of(scores: dict, higher: bool = True):
    """The key of the best finite score (the highest, or the lowest when not `higher`); ties
    go to the smallest key. None if no score is finite."""
    finite = [key for key, score in scores.items() if not math.isnan(score)]
    if not finite:
        return None
    sign = -1.0 if higher else 1.0
    # The metric is computed in float32 on the device, and means over seeds of equal scores
    # differ in their last bits (356/359 as 0.99164343 and as 0.99164346): scores equal to
    # 6 significant digits, float32's resolution, are ties.
    return min(finite, key=lambda key: (float(f"{sign * scores[key]:.6g}"), key))


def metric_table(rows) -> MetricTable:
    """{(m, η̃): mean over seeds of the median test metric (accuracy by default)}; NaN if a
    seed is NaN."""
    return MetricTable({point: float(np.mean(values))
                        for point, values in seed_values(rows).items()}, metric_of(rows),
                       evaluated_on(rows), baseline_of(rows))


def setting_of(row) -> tuple:
    """A results row's hyperparameters besides η̃ (results.HYPERPARAMETER_COLUMNS)."""
    return tuple(str(row.get(key, "")) for key in HYPERPARAMETER_COLUMNS)


def swept_besides_lr(rows) -> dict[str, list[float]]:
    """{column: its values} of the hyperparameters besides η̃ that the rows sweep
    (config.sweep)."""
    swept = {}
    for key in HYPERPARAMETER_COLUMNS:
        values = {row.get(key, "") for row in rows} - {"", None}
        if len({str(v) for v in values}) > 1:
            swept[key] = sorted(float(v) for v in values)
    return swept


def tuned(rows) -> list[dict]:
    """The rows of each (m, η̃) at its best setting of the other swept hyperparameters (the
    highest mean over seeds of the median test metric, or lowest where lower is better; a
    setting where a seed diverged scores NaN; ties to the smallest values): every table,
    figure and best of a study then reads "η̃ with the others tuned". The rows unchanged
    where only η̃ is swept. Without this, rows of one (m, η̃) at several λ would be averaged
    as if they were seeds."""
    by_point = collections.defaultdict(lambda: collections.defaultdict(list))
    for row in rows:
        by_point[(int(row["batch_size"]), float(row["base_lr"]))][setting_of(row)].append(row)
    if all(len(settings) == 1 for settings in by_point.values()):
        return list(rows)
    higher = metric_of(rows).higher_is_better
    chosen = set()
    for point, settings in by_point.items():
        scores = {setting: float(np.mean([float(r["median_test_metric"]) for r in group]))
                  for setting, group in settings.items()}
        best = best_of(scores, higher)
        chosen.add((point, best if best is not None else min(settings)))
    return [row for row in rows if ((int(row["batch_size"]), float(row["base_lr"])),
                                    setting_of(row)) in chosen]


def setting_statistics(rows) -> dict[tuple, tuple[float, float, int]]:
    """{(m, η̃, setting): (mean over seeds of the median test metric, its standard error,
    seeds)} of every point of the whole grid; NaN mean where a seed diverged, NaN standard
    error with one seed."""
    by_point = collections.defaultdict(list)
    for row in rows:
        by_point[(int(row["batch_size"]), float(row["base_lr"]), setting_of(row))].append(
            float(row["median_test_metric"]))
    statistics = {}
    for point, values in by_point.items():
        n = len(values)
        se = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        statistics[point] = (float(np.mean(values)), se, n)
    return statistics


def setting_scores(rows) -> dict[tuple, float]:
    """{(m, η̃, setting): mean over seeds of the median test metric} of every point of the
    whole grid (NaN where a seed diverged)."""
    return {point: mean for point, (mean, _, _) in setting_statistics(rows).items()}


def value_in(point: tuple, key: str) -> float:
    """A (η̃, setting) point's value of dimension `key` ('base_lr' or a swept column)."""
    if key == "base_lr":
        return float(point[0])
    return float(point[1][HYPERPARAMETER_COLUMNS.index(key)])


def dimension_spreads(rows, batch_size: int, keys) -> dict[str, tuple[float, float]]:
    """{key: (spread, its standard error)} at m: the spread of the best score over each of
    the dimension's values (each value scored at its best point of the others), and the
    standard error of the difference of the two extreme values' bests (√(se₁² + se₂²);
    NaN with one seed). NaN where fewer than two values train. How much a dimension
    matters at m."""
    higher = metric_of(rows).higher_is_better
    at_m = {(lr, setting): v for (m, lr, setting), v in setting_statistics(rows).items()
            if m == batch_size and not math.isnan(v[0])}
    spreads = {}
    for key in keys:
        per_value = collections.defaultdict(dict)
        for point, v in at_m.items():
            per_value[value_in(point, key)][point] = v
        if len(per_value) < 2:
            spreads[key] = (math.nan, math.nan)
            continue
        bests = []
        for points in per_value.values():  # each value at its best point (ties: smallest)
            best = best_of({p: v[0] for p, v in points.items()}, higher)
            bests.append(points[best])
        bests.sort(key=lambda v: v[0])
        low, high = bests[0], bests[-1]
        spreads[key] = (high[0] - low[0], math.sqrt(low[1] ** 2 + high[1] ** 2))
    return spreads


def joint_best(rows) -> dict[int, tuple[dict, dict]]:
    """{m: ({hyperparameter: its value at m's best point}, {hyperparameter: (the spread of
    the best score over its values at m, its standard error)})} for the hyperparameters
    swept besides η̃ (`dimension_spreads`): a large spread says the dimension matters at
    that m."""
    swept = swept_besides_lr(rows)
    if not swept:
        return {}
    higher = metric_of(rows).higher_is_better
    scores = setting_scores(rows)
    result = {}
    for m in sorted({m for m, _, _ in scores}):
        at_m = {(lr, setting): v for (mm, lr, setting), v in scores.items() if mm == m}
        best = best_of(at_m, higher)
        if best is None:
            result[m] = ({key: math.nan for key in swept},
                         {key: (math.nan, math.nan) for key in swept})
            continue
        values = {key: value_in(best, key) for key in swept}
        result[m] = (values, dimension_spreads(rows, m, swept))
    return result


def most_important(rows, batch_size: int) -> list[str]:
    """The swept dimensions ('base_lr' for η̃, then config.sweep's), most important first
    at m: by the spread of the best score over their values (`dimension_spreads`; ties
    keep this order, dimensions that cannot be compared go last)."""
    keys = ["base_lr"] + list(swept_besides_lr(rows))
    spreads = dimension_spreads(rows, batch_size, keys)
    return sorted(keys, key=lambda k: -spreads[k][0] if not math.isnan(spreads[k][0])
                  else math.inf)


def reliable_region(rows, tolerance: float) -> dict[int, list[tuple]]:
    """{m: the points (η̃, setting) of the whole grid at m whose every seed trained and
    whose mean score is within `tolerance` of the sweep's best point}: the paper's reliable
    range (Fig 16) over every swept dimension, not only η̃ at the others' best."""
    scores = setting_scores(rows)
    higher = metric_of(rows).higher_is_better
    best_point = best_of(scores, higher)
    region = {m: [] for m, _, _ in scores}
    if best_point is not None:
        for (m, lr, setting), value in scores.items():
            if within_tolerance(value, scores[best_point], tolerance, higher):
                region[m].append((lr, setting))
    return {m: sorted(points) for m, points in sorted(region.items())}


def _spread_text(spread: tuple[float, float]) -> str:
    value, se = spread
    if math.isnan(value):
        return "—"
    return f"{value:.4f}" + ("" if math.isnan(se) else f" ± {se:.4f}")


def joint_best_markdown(rows, tolerance: float | None = None) -> list[str]:
    """The lines summary.md gives a grid that sweeps more than η̃ (config.sweep)."""
    swept = swept_besides_lr(rows)
    if not swept:
        return []
    table = joint_best(rows)
    best = best_per_batch_size(metric_table(rows))
    name = metric_of(rows).name
    lines = ["Swept besides η̃ (config.sweep), as lanes of the same programs: "
             + "; ".join(f"{key} ∈ {{{', '.join(f'{v:g}' for v in values)}}}"
                         for key, values in swept.items())
             + f". Every table and figure shows each η̃ at its best setting of these (tuned). "
             f"Per m, the best point's setting, and the spread of the best {name} over each "
             "one's values (each value at its own best η̃ and other values: how much the "
             "dimension matters at that m; ± the standard error of that difference over "
             "seeds, itself chosen on the same seeds):", "",
             "| m | best η̃ | " + " | ".join(f"best {key}" for key in swept) + " | "
             + " | ".join(f"spread over {key}" for key in swept) + " |",
             "|---|---|" + "---|" * (2 * len(swept))]
    for m, (values, spreads) in table.items():
        lr = best[m][0]
        lines.append(f"| {m} | {'—' if math.isnan(lr) else lr_text(lr)} | "
                     + " | ".join("—" if math.isnan(values[k]) else f"{values[k]:g}"
                                  for k in swept) + " | "
                     + " | ".join(_spread_text(spreads[k]) for k in swept) + " |")
    lines.append("")
    if tolerance is not None:
        region = reliable_region(rows, tolerance)
        sizes = collections.Counter(m for m, _, _ in setting_scores(rows))
        keys = ["base_lr"] + list(swept)
        lines += ["Reliable region over the whole grid (" + reliability_rule(
                      metric_table(rows), tolerance) + ", against the sweep's best point; "
                  "every seed trained), per m: its points, and the values of each dimension "
                  "inside it:", "",
                  "| m | points | " + " | ".join("η̃" if k == "base_lr" else k for k in keys)
                  + " |", "|---|---|" + "---|" * len(keys)]
        for m, points in region.items():
            cells = []
            for key in keys:
                values = sorted({value_in(p, key) for p in points})
                cells.append(", ".join(lr_text(v) if key == "base_lr" else f"{v:g}"
                                       for v in values) or "—")
            lines.append(f"| {m} | {len(points)} of {sizes[m]} | " + " | ".join(cells) + " |")
        lines.append("")
    higher = metric_of(rows).higher_is_better
    for key, key_values in swept.items():  # does fixing it move the best m?
        def best_m(subset):
            bests = {m: v for m, (_, v) in best_per_batch_size(metric_table(subset)).items()
                     if not math.isnan(v)}
            found = best_of(bests, higher)
            return "none trained" if found is None else f"m = {found} ({name} {bests[found]:.4f})"
        fixed = "; ".join(f"at {key} = {v:g}: {best_m([r for r in rows if float(r[key]) == v])}"
                          for v in key_values)
        lines += [f"Best m with {key} tuned: {best_m(rows)}; {fixed}.", ""]
    return lines


def seed_values(rows) -> dict[tuple[int, float], list[float]]:
    """{(m, η̃): every seed's median test metric} (NaN for a seed that diverged), at each
    point's best setting of the other swept hyperparameters (`tuned`)."""
    by_point = collections.defaultdict(list)
    for row in tuned(rows):
        by_point[(int(row["batch_size"]), float(row["base_lr"]))].append(
            float(row["median_test_metric"]))
    return dict(sorted(by_point.items()))


def seed_statistics(rows) -> dict[tuple[int, float], tuple[float, float, int]]:
    """{(m, η̃): (mean, standard error, seeds)} over seeds; the standard error is the seeds'
    sample standard deviation / √n (NaN with one seed); both NaN if a seed diverged."""
    statistics = {}
    for point, values in seed_values(rows).items():
        n = len(values)
        if any(math.isnan(v) for v in values):
            statistics[point] = (math.nan, math.nan, n)
        else:
            se = float(np.std(values, ddof=1) / math.sqrt(n)) if n > 1 else math.nan
            statistics[point] = (float(np.mean(values)), se, n)
    return statistics


def within_noise(rows, alpha: float = ALPHA) -> dict[int, float]:
    """{m: the p-value of Welch's t-test between m's best η̃ and the sweep's best point}
    (1.0 for the best m itself; NaN where either has fewer than MIN_SEEDS seeds or m every η̃
    diverged)."""
    table, values = metric_table(rows), seed_values(rows)
    best = best_per_batch_size(table)
    trained = {m: v for m, v in best.items() if not math.isnan(v[1])}
    if not trained:
        return {m: math.nan for m in best}
    best_m = best_of({m: acc for m, (_, acc) in trained.items()}, table.higher_is_better)
    reference = values[(best_m, trained[best_m][0])]
    p_values = {}
    for m, (lr, _) in best.items():
        if m == best_m:
            p_values[m] = 1.0
        elif math.isnan(lr) or len(values[(m, lr)]) < 2 or len(reference) < 2:
            p_values[m] = math.nan
        else:
            p_values[m] = welch_p(values[(m, lr)], reference)
    return p_values


def welch_p(ours: list[float], reference: list[float]) -> float:
    """The p-value of Welch's t-test between two sets of seeds' scores (NaN with fewer than
    MIN_SEEDS of either or a NaN among them); without spread in either, the means decide (1
    or 0)."""
    if (len(ours) < MIN_SEEDS or len(reference) < MIN_SEEDS
            or any(math.isnan(v) for v in ours + reference)):
        return math.nan
    if np.std(ours) == 0 and np.std(reference) == 0:
        return 1.0 if np.mean(ours) == np.mean(reference) else 0.0
    # (Imported here: scipy.stats takes ~0.8 s to import, which every entry point paid at
    # start whether or not its study had the seeds for a test.)
    from scipy import stats
    with warnings.catch_warnings():  # nearly equal seeds: scipy warns, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_ind(ours, reference, equal_var=False).pvalue)


def consecutive_runs(lrs: list[float], grid: list[float]) -> list[list[float]]:
    """`lrs` cut into runs of consecutive points of `grid` (a gap: a grid point not in
    `lrs`)."""
    index, runs = {lr: i for i, lr in enumerate(sorted(grid))}, []
    for lr in sorted(lrs):
        if runs and index[lr] == index[runs[-1][-1]] + 1:
            runs[-1].append(lr)
        else:
            runs.append([lr])
    return runs


def format_lrs(lrs: list[float], grid: list[float]) -> str:
    """The η̃ of `lrs` as runs of consecutive grid points, gaps shown as gaps:
    '2^-12 … 2^-11, 2^-9' (not '2^-12 … 2^-9' when 2^-10 is missing); 'none' if empty."""
    if not lrs:
        return "none"
    return ", ".join(lr_text(r[0]) if len(r) == 1 else f"{lr_text(r[0])} … {lr_text(r[-1])}"
                     for r in consecutive_runs(lrs, grid))


def best_per_batch_size(accuracies: dict) -> dict[int, tuple[float, float]]:
    """{m: (best η̃, its score)}; (NaN, NaN) where every η̃ failed."""
    best = {}
    for m in sorted({m for m, _ in accuracies}):
        lr = best_of({lr: acc for (mm, lr), acc in accuracies.items() if mm == m},
                     accuracies.higher_is_better)
        best[m] = (math.nan, math.nan) if lr is None else (lr, accuracies[(m, lr)])
    return best


def batch_sizes_at_baseline(rows) -> list[int]:
    """The m whose best score (at their best η̃) does not beat a constant prediction
    (results.constant_bar; none where that is not known) though some lane trained: nothing
    was learned from the inputs there."""
    baseline, metric = constant_bar(rows), metric_of(rows)
    if math.isnan(baseline):
        return []
    return [m for m, (_, score) in best_per_batch_size(metric_table(rows)).items()
            if not math.isnan(score) and not metric.beats(score, baseline)]


def batch_sizes_within_noise(rows, tolerance: float, alpha: float = ALPHA) -> list[int] | None:
    """The m whose best η̃ is within noise of the sweep's best point: Welch p ≥ `alpha`
    (within_noise) and a score no further from the best than `tolerance` (seeds that scatter
    widely pass the test without being as good); the best m among them. None where it
    cannot be told: no other m has MIN_SEEDS seeds at its best η̃, nor the best point."""
    table = metric_table(rows)
    trained = {m: v for m, v in best_per_batch_size(table).items() if not math.isnan(v[1])}
    if not trained:
        return None
    best_m = best_of({m: score for m, (_, score) in trained.items()}, table.higher_is_better)
    p_values = within_noise(rows, alpha)
    if all(math.isnan(p_values[m]) for m in trained if m != best_m):
        return None
    best_score = trained[best_m][1]
    return [m for m in trained if not math.isnan(p_values[m]) and p_values[m] >= alpha
            and within_tolerance(trained[m][1], best_score, tolerance, table.higher_is_better)]


def within_tolerance(value: float, best: float, tolerance: float, higher: bool) -> bool:
    """Whether `value` is no worse than `best` by more than the tolerance (NaN: never):
    `tolerance` itself where higher is better (accuracy and other scores on a fixed scale, as
    the paper's protocol suggests: "1 or 2 percentage points"); `tolerance` × |best| where
    lower is better (an error in the data's units: a regression's mean squared error on
    targets in metres or in millimetres has one reliable range)."""
    if math.isnan(value):
        return False
    return value >= best - tolerance if higher else value <= best + tolerance * abs(best)


def reliable_ranges(accuracies: dict, tolerance: float) -> dict[int, list[float]]:
    """{m: the η̃ whose score is within `tolerance` of the sweep's best}, sorted."""
    higher = accuracies.higher_is_better
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
    if table.higher_is_better:
        return f"{table.metric} ≥ best − {tolerance:g}"
    return f"{table.metric} ≤ best + {tolerance:g}·|best|"


def _metric_words(table) -> str:
    name = table.metric
    return (f"median {table.evaluated_on} {name} over the last epochs, mean over seeds"
            + ("" if table.higher_is_better else "; lower is better"))


def training_seconds(rows, field: str = "wall_seconds") -> dict[int, float]:
    """{m: wall seconds of m's training} (one program trains all of m's lanes: the whole η̃
    grid), or of its compiling (`field` 'compile_seconds'); NaN where the table does not
    say."""
    seconds = collections.defaultdict(lambda: math.nan)
    for row in rows:
        m, value = int(row["batch_size"]), float(row.get(field) or math.nan)
        if not math.isnan(value):
            seconds[m] = value if math.isnan(seconds[m]) else max(seconds[m], value)
    return seconds


def timing_caveat(rows) -> str:
    """Where the batch sizes of `rows` were timed on different devices (their `device`
    column: a sweep's tasks on different hosts, a table merged from another machine), a
    sentence saying which, and that their times are not compared; '' where they were timed on
    one (or the rows do not say)."""
    by_device = collections.defaultdict(set)
    for row in rows:
        if row.get("device"):
            by_device[row["device"]].add(int(row["batch_size"]))
    if len(by_device) < 2:
        return ""
    listing = "; ".join(f"{device}: m = {', '.join(map(str, sorted(ms)))}"
                        for device, ms in sorted(by_device.items()))
    return (f"The batch sizes were timed on different devices ({listing}): their times are "
            "not compared")


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


def swept_value_note(rows) -> list[str]:
    """The lines that say what the tables' η̃ is where a sweep's lr_scaling is not the
    paper's (the tables say η̃ for the swept value whatever it is); none for 'linear'."""
    scalings = {row.get("lr_scaling") for row in rows} - {None, "", "linear"}
    if not scalings:
        return []
    meaning = {"none": "η itself (lr_scaling 'none')",
               "sqrt": "s, with η = √m·s (lr_scaling 'sqrt')"}
    return ["The swept value, written η̃ below, is "
            + " or ".join(meaning.get(s, repr(s)) for s in sorted(scalings)) + ".", ""]


def first_step_divergence(rows) -> str:
    """Where every lane diverged at its first step (step 0): that step's loss and gradients
    are the initial weights', the same at every η̃, so the cause is the model, the loss or the
    data, not the learning rate; '' otherwise."""
    steps = {int(float(row.get("diverged_step") or -1)) for row in rows}  # ('' in old tables)
    if steps != {0}:
        return ""
    return (" Every lane at its first step, whose loss and gradients are those of the initial "
            "weights at every η̃: the model, the loss or the data give non-finite values (or "
            "a loss above the divergence limit), not the learning rate.")


def not_run_note(not_run: list[int]) -> list[str]:
    """The lines that say which of the sweep's batch sizes have no results yet (a budget
    spent, a task of a split sweep still running, a run that failed): every answer below is
    from the others alone."""
    if not not_run:
        return []
    return [f"**Not run yet: m = {', '.join(map(str, not_run))}** of the sweep's batch sizes "
            "(a budget spent, another task still running, or a run that stopped; running the "
            "sweep again trains them). Everything below is from the batch sizes that ran.", ""]


# Batch sizes that see fewer than this share of the examples an epoch that the most-fed m
# sees are named (`dropped_examples_note`).
EXAMPLES_NOTED = 0.95


def dropped_examples_note(rows) -> str:
    """Each epoch trains on ⌊N/m⌋·m examples (the rest dropped, another subset each epoch):
    on a small training set a large m sees markedly fewer examples over the same epochs
    (digits' 1438 at m = 512: 1024, 71%), a handicap the comparison of m at equal epochs
    does not show. A sentence naming the m below EXAMPLES_NOTED of the most-fed m's
    examples an epoch; '' where none is (or the rows do not say)."""
    per_epoch = {}
    for row in rows:
        if row.get("steps") in (None, "") or not row.get("epochs"):
            continue
        m = int(row["batch_size"])
        per_epoch[m] = int(float(row["steps"])) // int(float(row["epochs"])) * m
    if not per_epoch:
        return ""
    most = max(per_epoch.values())
    fed = min(m for m, n in per_epoch.items() if n == most)
    fewer = {m: n for m, n in sorted(per_epoch.items()) if n < EXAMPLES_NOTED * most}
    if not fewer:
        return ""
    return ("Examples per epoch: " + ", ".join(f"m = {m} trains on {n} ({n / most:.0%})"
                                                 for m, n in fewer.items())
            + f", against m = {fed}'s {most} (⌊N/m⌋ batches an epoch, the rest dropped, "
            "another subset each epoch): over the same epochs these m saw fewer examples, a "
            "handicap in their scores beside the batch size itself.")


def metric_window_note(rows) -> str:
    """A sentence naming the m whose metric, the median over the last epochs, read half or
    more of its epochs before the learning rate's last decay (results' `metric_epochs` and
    `metric_epochs_before_decay`): there it can be a mid-training score, ranking settings by
    how fast they train as much as by where they end (the README's API example at 5 epochs:
    3 of 5); '' where none did (or the rows do not say)."""
    read = {}
    for row in rows:
        if row.get("metric_epochs_before_decay") in (None, "") or not row.get("metric_epochs"):
            continue
        window, before = int(row["metric_epochs"]), int(row["metric_epochs_before_decay"])
        if median_reads_mid_training(before, window):
            read[int(row["batch_size"])] = (before, window)
    if not read:
        return ""
    windows = sorted(set(read.values()))
    counts = "; ".join(f"{before} of {window}" for before, window in windows)
    return (f"At m = {', '.join(str(m) for m in sorted(read))} the metric's median read "
            f"{counts} epochs before the learning rate's last decay: a mid-training score "
            "there, which ranks the settings by how fast they train as much as by where they "
            "end (the paper reads 5 of 82 epochs, all after it). A smaller `last_epochs` or "
            "more epochs measure where training ends.")


def summary_markdown(rows, tolerance: float, title: str = "Batch-size sweep",
                     not_run: list[int] = ()) -> str:
    """Best m, best η̃ and the reliable range per m, with the numbers; with several seeds,
    each best's standard error and whether m is within noise of the best. `not_run`: the
    sweep's batch sizes that have no results yet (said first: `not_run_note`)."""
    accuracies = metric_table(rows)
    statistics = seed_statistics(rows)
    seeds = max((n for _, _, n in statistics.values()), default=1)
    p_values = within_noise(rows) if seeds > 1 else {}
    best = best_per_batch_size(accuracies)
    ranges = reliable_ranges(accuracies, tolerance)
    trained = {m: v for m, v in best.items() if not math.isnan(v[1])}
    name = accuracies.metric
    where = context(rows)
    lines = [f"# {title}", ""] + ([f"{where}.", ""] if where else []) + not_run_note(not_run)
    if trained:
        best_m = best_of({m: acc for m, (_, acc) in trained.items()},
                         accuracies.higher_is_better)
        lr, acc = trained[best_m]
        se = statistics[(best_m, lr)][1]
        spread = (f" ± {se:.4f}" if not math.isnan(se) else "")
        words = _metric_words(accuracies) + (f"; ± one standard error over {seeds} seeds"
                                             if spread else "")
        lines += [f"Best: m = {best_m}, η̃ = {lr_text(lr)}, {name} {acc:.4f}{spread} "
                  f"({words}).", ""]
        if baseline_text(rows):
            beaten = accuracies.ranking.beats(acc, constant_bar(rows))
            lines += [f"Baseline: {baseline_text(rows)}" + (
                "." if beaten else ": **not beaten by any setting**; on this split the runs "
                "are not told apart from a constant output, and their ranking is noise."), ""]
        if seeds > 1:
            close = batch_sizes_within_noise(rows, tolerance)
            if len(trained) < 2:
                lines += [f"Within noise of the best: no other m trained to compare with m = "
                          f"{best_m}.", ""]
            elif close is None:
                lines += [f"Within noise of the best: cannot tell with fewer than {MIN_SEEDS} "
                          f"seeds per point ({seeds} here).", ""]
            else:
                lines += [f"Within noise of the best: m = {', '.join(map(str, close))} "
                          f"(Welch's t-test of each m's best η̃ against the best point over "
                          f"{seeds} seeds, two-sided, p ≥ {ALPHA:g}, and within {tolerance:g} "
                          "of it; each m's best η̃"
                          + (" and setting of " + ", ".join(swept_besides_lr(rows))
                             if swept_besides_lr(rows) else "")
                          + " is chosen on the same seeds, which the test does not correct "
                          "for).", ""]
    else:
        lines += ["Every run diverged." + first_step_divergence(rows), ""]
    lines += joint_best_markdown(rows, tolerance)
    lines += swept_value_note(rows)
    noise = bool(p_values)
    lines += [f"Reliable η̃: {reliability_rule(accuracies, tolerance)} and no divergence "
              "(gaps in a range are η̃ that are not). Wall time: of m's program, every η̃ (and "
              "seed) at once, its set-up (tuning included) and compilation too (of several "
              "programs at one m, the longest); in brackets, what compiling took of it (as "
              "JAX reports its compiles).", "",
              f"| m | best η̃ | best {name} |" + (" ± se | p vs best |" if noise else "")
              + " reliable η̃ | reliable count | wall time |",
              "|---|---|---|" + ("---|---|" if noise else "") + "---|---|---|"]
    seconds, compiling = training_seconds(rows), training_seconds(rows, "compile_seconds")
    grid = collections.defaultdict(list)
    for m, lr in accuracies:
        grid[m].append(lr)
    for m, (lr, acc) in best.items():
        lrs = ranges[m]
        best_lr = lr_text(lr) if not math.isnan(lr) else "—"
        best_acc = f"{acc:.4f}" if not math.isnan(acc) else "all diverged"
        time_text = "—" if math.isnan(seconds[m]) else f"{seconds[m]:.0f} s"
        if not math.isnan(seconds[m]) and not math.isnan(compiling[m]):
            time_text += f" ({compiling[m]:.0f} s compiling)"
        cells = ""
        if noise:
            se = statistics[(m, lr)][1] if not math.isnan(lr) else math.nan
            p = p_values.get(m, math.nan)
            cells = (f" {'—' if math.isnan(se) else f'{se:.4f}'} |"
                     f" {'—' if math.isnan(p) else f'{p:.2g}'} |")
        lines.append(f"| {m} | {best_lr} | {best_acc} |{cells} {format_lrs(lrs, grid[m])} | "
                     f"{len(lrs)} | {time_text} |")
    edges = optima_at_the_edge(accuracies)
    for side in ("smallest", "largest"):
        at_edge = [str(m) for m, where in edges.items() if where == side]
        if at_edge:
            lines += ["", f"At m = {', '.join(at_edge)} the best η̃ is the {side} of the grid: "
                      f"the optimum may lie beyond it, and the best {name} there is a bound. "
                      "Extend `base_lrs` to find it."]
    dropped = dropped_examples_note(rows)
    if dropped:
        lines += ["", dropped]
    window = metric_window_note(rows)
    if window:
        lines += ["", window]
    caveat = timing_caveat(rows)
    if caveat:
        lines += ["", caveat + " (each m's wall time is its own device's)."]
    below = batch_sizes_at_baseline(rows)
    if below and len(below) < len(trained):
        lines += ["", f"At m = {', '.join(map(str, below))} no η̃ beat the baseline: nothing "
                  "learned there."]
    return "\n".join(lines) + "\n"


def comparison_markdown(tables: dict, tolerance: float) -> str:
    """Several sweeps side by side ({label: metric_table}): per m, each sweep's best
    accuracy, its η̃ and its number of reliable η̃ (against that sweep's own best)."""
    labels = list(tables)
    all_ms = sorted({m for accuracies in tables.values() for m, _ in accuracies})
    best = {label: best_per_batch_size(accuracies) for label, accuracies in tables.items()}
    ranges = {label: reliable_ranges(accuracies, tolerance) for label, accuracies in tables.items()}
    first = next(iter(tables.values()), {})
    if len({(t.metric, t.higher_is_better) for t in tables.values()}) > 1:
        raise ValueError("sweeps of different metrics cannot be compared")
    name = first.metric
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
                         f"{acc:.4f} ({lr_text(lr)}, {len(ranges[label][m])} reliable)")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "Best m of each sweep: " + "; ".join(
        f"{label}: m = "
        f"{best_of({m: acc for m, (_, acc) in trained.items()}, first.higher_is_better)}"
        for label in labels
        if (trained := {m: v for m, v in best[label].items() if not math.isnan(v[1])}))]
    return "\n".join(lines) + "\n"


def bn_metric_table(rows) -> MetricTable:
    """{(m, m_BN): (best η̃, its accuracy)} of a ghost-BN sweep: seeds averaged first (as in
    `metric_table`), then the best η̃ of each (m, m_BN); (NaN, NaN) where every η̃ failed."""
    by_point = collections.defaultdict(list)
    for row in rows:
        point = (int(row["batch_size"]), int(row["bn_batch_size"]), float(row["base_lr"]))
        by_point[point].append(float(row["median_test_metric"]))
    by_run = collections.defaultdict(dict)
    for (m, mbn, lr), values in sorted(by_point.items()):
        by_run[(m, mbn)][lr] = float(np.mean(values))
    best = MetricTable(ranking=metric_of(rows), evaluated_on=evaluated_on(rows))
    for run, scores in by_run.items():
        lr = best_of(scores, best.higher_is_better)
        best[run] = (math.nan, math.nan) if lr is None else (lr, scores[lr])
    return best


def bn_summary_markdown(rows, title: str = "Ghost-BN sweep") -> str:
    """Accuracy per SGD batch m (rows) and BN batch m_BN (columns), the best m_BN per m and
    the η̃ each m was trained with."""
    accuracies = bn_metric_table(rows)
    batch_sizes = sorted({m for m, _ in accuracies})
    bn_sizes = sorted({b for _, b in accuracies})
    lrs_used = collections.defaultdict(set)
    for row in rows:
        lrs_used[int(row["batch_size"])].add(float(row["base_lr"]))
    trained = {key: v for key, v in accuracies.items() if not math.isnan(v[1])}
    higher, name = accuracies.higher_is_better, accuracies.metric
    lines = [f"# {title}", ""]
    if trained:
        (m, mbn) = best_of({key: acc for key, (_, acc) in trained.items()}, higher)
        lr, acc = trained[(m, mbn)]
        lines += [f"Best: m = {m}, m_BN = {mbn} (η̃ = {lr_text(lr)}), {name} {acc:.4f} "
                  f"({_metric_words(accuracies)}).", ""]
    else:
        lines += ["Every run diverged.", ""]
    lines += [f"Each cell: the best η̃'s {name} at (m, m_BN); — where m_BN does not divide m "
              "or was not run.", "",
              "| m | η̃ | " + " | ".join(f"m_BN = {b}" for b in bn_sizes) + " | best m_BN |",
              "|---|---|" + "---|" * (len(bn_sizes) + 1)]
    for m in batch_sizes:
        used = sorted(lrs_used[m])
        lr_note = lr_text(used[0]) if len(used) == 1 else f"best of {len(used)}"
        cells = []
        for b in bn_sizes:
            acc = accuracies.get((m, b), (math.nan, None))[1] if (m, b) in accuracies else None
            cells.append("—" if acc is None else "diverged" if math.isnan(acc) else f"{acc:.4f}")
        row_best = best_of({b: v[1] for (mm, b), v in trained.items() if mm == m}, higher)
        best_text = "—" if row_best is None else str(row_best)
        lines.append(f"| {m} | {lr_note} | " + " | ".join(cells) + f" | {best_text} |")
    return "\n".join(lines) + "\n"
