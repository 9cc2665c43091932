"""Steps, examples and wall time to a target metric per batch size (Shallue et al. 2019).

"Larger batches train faster" is a claim about time to a result, not about the final
accuracy. Shallue et al. ("Measuring the Effects of Data Parallelism on Neural Network
Training", 2019) measure it as the fewest steps, over the learning-rate grid, in which a
batch size first reaches a target: under perfect scaling doubling m halves them, and the
curve's bend shows where larger batches stop paying.

Here, from a batch sweep's curves (every lane's test metric after every evaluation: one per
epoch in curves.csv, or `evals_per_epoch` per epoch in evaluations.csv): the mean over seeds
of each (m, η̃)'s curve (NaN once a seed diverged), the first evaluation at which it reaches
the target, and the fewest such steps over η̃ per m. A step count is an evaluation's step,
so it is an upper bound by less than one evaluation interval (stated per m). The wall time
to target is those steps at the speed m's program measured: its median epoch's seconds /
steps per epoch (curves.csv; every η̃ at once, evaluation included, so an upper bound for
one η̃ alone), the first epoch left out where there are others: it pays the compilation
(in a 2-epoch run the median alone would be half of it; in a short run it would dominate a
large m's few steps). Without per-epoch times, the run's wall seconds / steps.

The default target is 95% of the way from what a constant prediction scores (the rows'
`baseline_test_metric`: the training split's most frequent class, or its mean target) to
the sweep's best: best − 5% of (best − baseline), best + 5% of (baseline − best) where lower
is better. Measured from the constant prediction, not from 0: on imbalanced classes (97% of
one) "0.95 × best" lies below what predicting the majority class scores, and every m
"reached" it at its first evaluation, the largest m (fewest steps per epoch) first: a
verdict on speed drawn from a model that had learned nothing. Where no baseline is known (a
user's objective, rows from before the column), within `DEFAULT_FRACTION` (5%) of the best,
on the worse side: best − 5% of |best| where higher is better, best + 5% of |best| where lower
is. (|best|: a metric below 0, a log-likelihood say, would otherwise get a target beyond its
best, which no run reaches.) Every report states the target it used, and says where a target
(a user's `config.target`) is no better than the constant prediction.
"""

import collections
import math

import numpy as np

from smallbatch_jax.run.results import baseline_of, lr_text, metric_of
from smallbatch_jax.study.analysis import best_of, metric_table, timing_caveat

DEFAULT_FRACTION = 0.05


def default_target(rows) -> float:
    """DEFAULT_FRACTION short of the sweep's best, of the way from a constant prediction's
    score where the rows give one that the best beats, else of |best| (the module doc); NaN
    if every run diverged."""
    table = metric_table(rows)
    best = best_of(table, table.higher_is_better)
    if best is None:
        return math.nan
    value = table[best]
    gain = (abs(value - table.baseline) if table.ranking.beats(value, table.baseline)
            else abs(value))
    margin = DEFAULT_FRACTION * gain
    return value - margin if table.higher_is_better else value + margin


def baseline_note(target: float, baseline: float, metric) -> str:
    """A sentence where `target` is no better than a constant prediction's score
    (`baseline`; `metric`: objectives.Metric, for the direction): reached without learning,
    the steps to it measure nothing. '' otherwise, or where the baseline is not known."""
    if math.isnan(baseline) or math.isnan(target) or metric.beats(target, baseline):
        return ""
    return (f"The target, {target:.4f}, is no better than what a constant prediction scores "
            f"({baseline:.4f}): a model reaches it without learning from its inputs, so these "
            "steps measure nothing; set `config.target` beyond it.")


def mean_curves(curves: list[dict], steps_per_epoch: int | None = None
                ) -> dict[float, list[tuple[int, float]]]:
    """{η̃: [(step, mean over seeds of the test metric)]} of one m's evaluation rows (NaN at
    a step where any seed's value is NaN). Rows with a `step` (evaluations.csv) give it;
    per-epoch rows (curves.csv) are at epoch × `steps_per_epoch` (default 1: the epoch)."""
    by_point = collections.defaultdict(list)
    for row in curves:
        step = (int(row["step"]) if row.get("step") not in (None, "")
                else int(row["epoch"]) * (steps_per_epoch or 1))
        by_point[(float(row["base_lr"]), step)].append(float(row["test_metric"]))
    means = collections.defaultdict(list)
    for (lr, step), values in sorted(by_point.items()):
        means[lr].append((step, math.nan if any(math.isnan(v) for v in values)
                          else float(np.mean(values))))
    return dict(means)


def first_reaching(curve: list[tuple[int, float]], target: float, higher: bool) -> int | None:
    """The first step (or epoch) whose value reaches `target` (≥, or ≤ where lower is
    better)."""
    for step, value in curve:
        if not math.isnan(value) and (value >= target if higher else value <= target):
            return step
    return None


def seconds_text(seconds: float) -> str:
    """Wall seconds as tables and verdicts print them: two significant digits below 10 s
    (a time to target of 0.07 s printed as "0 s" made a 13× ratio look like 0 against 1)."""
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.2g} s"


def epoch_seconds_per_step(curves: list[dict], steps_per_epoch: int) -> float:
    """The median epoch's wall seconds / steps per epoch, from one m's curves.csv rows, the
    first epoch (its compilation) left out where there are others (NaN where they hold no
    epoch times). A resumed run's first epoch after the resume compiles too: the median
    over the rest keeps it out unless the epochs are few."""
    by_epoch = {int(row["epoch"]): float(row.get("epoch_seconds") or math.nan)
                for row in curves}
    seconds = [s for epoch, s in sorted(by_epoch.items()) if math.isfinite(s)]
    steady = seconds[1:] or seconds
    return float(np.median(steady)) / steps_per_epoch if steady else math.nan


def steps_to_target(rows, curves_by_m: dict[int, list[dict]], target: float,
                    epoch_curves: dict[int, list[dict]] | None = None) -> dict[int, dict]:
    """Per m: {'steps', 'examples', 'seconds', 'lr'} of the η̃ that reaches `target` in the
    fewest steps (None values where no η̃ does), and 'interval', the steps between m's
    evaluations. `rows`: the sweep's results rows (for the direction, steps per epoch and the
    run's speed); `curves_by_m`: {m: its evaluation rows (curves.csv or evaluations.csv)};
    `epoch_curves`: {m: its curves.csv rows}, for the speed of its median epoch (default:
    `curves_by_m`'s rows where they are curves.csv's)."""
    higher = metric_table(rows).higher_is_better
    steps_per_epoch, seconds_per_step = {}, {}
    for row in rows:
        if not row.get("steps") or not row.get("epochs"):
            continue  # a table that does not say (its m get no steps to target)
        m = int(row["batch_size"])
        steps, epochs = int(row["steps"]), int(row["epochs"])
        steps_per_epoch[m] = steps // epochs
        seconds = float(row.get("wall_seconds") or math.nan)
        seconds_per_step[m] = seconds / steps if steps else math.nan
    epoch_curves = epoch_curves or {m: c for m, c in curves_by_m.items()
                                    if c and "epoch_seconds" in c[0]}
    for m, curves in epoch_curves.items():
        per_step = epoch_seconds_per_step(curves, steps_per_epoch.get(m, 0) or 1)
        if m in seconds_per_step and not math.isnan(per_step):
            seconds_per_step[m] = per_step
    found = {}
    for m in sorted(set(curves_by_m) & set(steps_per_epoch)):
        curves = mean_curves(curves_by_m[m], steps_per_epoch[m])
        # The widest gap between evaluations, from step 0 on: the bound on each count.
        interval = max((b[0] - a[0] for curve in curves.values()
                        for a, b in zip([(0, None)] + curve, curve)), default=None)
        reached = {lr: first_reaching(curve, target, higher) for lr, curve in curves.items()}
        reached = {lr: step for lr, step in reached.items() if step is not None}
        if not reached:
            found[m] = {"steps": None, "examples": None, "seconds": None, "lr": None,
                        "interval": interval}
            continue
        lr = min(reached, key=lambda lr: (reached[lr], lr))  # ties: the smaller η̃
        steps = reached[lr]
        found[m] = {"steps": steps, "examples": steps * m,
                    "seconds": steps * seconds_per_step.get(m, math.nan), "lr": lr,
                    "interval": interval}
    return found


def caution(rows, target: float) -> str:
    """What the table of steps to `target` must be read with: a target no better than a
    constant prediction (baseline_note), wall times measured on different devices
    (analysis.timing_caveat); '' where neither."""
    notes = [baseline_note(target, baseline_of(rows), metric_of(rows)), timing_caveat(rows)]
    return " ".join(n if n.endswith(".") else n + "." for n in notes if n)


def markdown(found: dict[int, dict], target: float, metric: str,
             evaluated_on: str = "test", caution: str = "") -> str:
    """The table of steps, examples and wall time to the target per m (the metric read on
    the split `evaluated_on`); `caution`: a sentence after it (baseline_note)."""
    lines = [f"Steps to target: the fewest optimizer steps over η̃ after which the mean over "
             f"seeds of the {evaluated_on} {metric} first reaches {target:.4f}: an upper bound "
             "by less "
             "than the steps between two evaluations (the last column; an epoch's, unless "
             "the runs set `evals_per_epoch`); wall time at the speed of m's program in its "
             "median epoch (every η̃ at once, evaluation included, compilation not).", "",
             "| m | η̃ | steps | examples | wall time | evaluated every |",
             "|---|---|---|---|---|---|"]
    for m, f in found.items():
        every = ("—" if f.get("interval") is None else
                 f"{f['interval']} step" + ("s" if f["interval"] != 1 else ""))
        if f["steps"] is None:
            lines.append(f"| {m} | — | not reached | — | — | {every} |")
        else:
            seconds = "—" if math.isnan(f["seconds"]) else seconds_text(f["seconds"])
            lines.append(f"| {m} | {lr_text(f['lr'])} | {f['steps']} | "
                         f"{f['examples']} | {seconds} | {every} |")
    if caution:
        lines += ["", caution]
    return "\n".join(lines) + "\n"
