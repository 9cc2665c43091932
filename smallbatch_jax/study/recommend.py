""""Which batch size should I use?", answered from a batch sweep's own runs.

`recommendation_markdown(rows, found, tolerance)` turns a sweep's results rows (every m with
its η̃ grid, one row per seed) and its steps to target (`steps_to_target.steps_to_target`)
into recommendation.md: the best (m, η̃) and the optimizer setting to paste, the largest m
within noise of it and what it saves, the stable η̃ per m, the time to target per m, and
verdicts on four pieces of common advice, each computed from these runs with its numbers.

"Within noise" is Welch's t-test over seeds at α = analysis.ALPHA (0.05): with fewer than
analysis.MIN_SEEDS (3) seeds per point there is no test, and every statement that needs one
says "cannot tell", with the number of seeds it had, rather than guess. Nothing here
trains; `experiments.recommend` runs (or resumes) the sweep first.
"""

import dataclasses
import math

import numpy as np

from smallbatch_jax.run.directory import SweepDirectory
from smallbatch_jax.run.results import (HYPERPARAMETER_COLUMNS, baseline_of, baseline_text,
                                        constant_bar, evaluated_on, lr_text, metric_of)
from smallbatch_jax.study import analysis, steps_to_target
from smallbatch_jax.study.analysis import (ALPHA, best_of, best_per_batch_size, format_lrs,
                                           metric_table, optima_at_the_edge, reliable_ranges,
                                           seed_statistics, seed_values, training_seconds,
                                           welch_p, within_noise)

TRUE, FALSE, CANNOT_TELL = "true", "false", "cannot tell"


@dataclasses.dataclass(frozen=True)
class Verdict:
    claim: str
    answer: str  # TRUE, FALSE or CANNOT_TELL
    because: str


def _lr_text(lr: float) -> str:
    return lr_text(lr)


def _score_text(stats: tuple[float, float, int]) -> str:
    mean, se, n = stats
    return f"{mean:.4f}" + (f" ± {se:.4f} (n = {n})" if n > 1 and not math.isnan(se) else "")


def _num_seeds(rows) -> int:
    return min((len(v) for v in seed_values(rows).values()), default=0)


def _no_test(rows) -> str:
    """Why a statement that needs a test has none: too few seeds, with how many there are."""
    seeds = _num_seeds(rows)
    return (f"{seeds} seed{'s' if seeds != 1 else ''} per point, fewer than "
            f"{analysis.MIN_SEEDS}: no test (run with num_seeds ≥ {analysis.MIN_SEEDS})")


def lrs_within_noise(rows, batch_size: int, alpha: float = ALPHA,
                     tolerance: float | None = None) -> list[float] | None:
    """The η̃ at m whose seeds are not significantly worse (Welch p ≥ α) than m's best
    η̃'s, and with `tolerance` also no further from its score than that (within_tolerance:
    the report's "within noise", as for the m; seeds that scatter widely pass the test
    without being as good); None where m's best has fewer than MIN_SEEDS seeds (no test:
    with 2, every other η̃ would come out "significantly worse") or every η̃ diverged."""
    table, values = metric_table(rows), seed_values(rows)
    lr, best_score = best_per_batch_size(table)[batch_size]
    if math.isnan(lr) or len(values[(batch_size, lr)]) < analysis.MIN_SEEDS:
        return None
    reference = values[(batch_size, lr)]
    close = lambda l: tolerance is None or analysis.within_tolerance(
        table[(batch_size, l)], best_score, tolerance, table.higher_is_better)
    return sorted(l for (m, l), v in values.items() if m == batch_size
                  and (l == lr or (welch_p(v, reference) >= alpha and close(l))))


# ------------------------------------------------------------------------ the verdicts


def verdict_32_is_best(rows, alpha: float = ALPHA) -> Verdict:
    """"32 is the best batch size": true if m = 32 is the best m, false if its best η̃ is
    significantly worse than the best point, else (within noise, too few seeds, not run) cannot
    tell."""
    claim = "32 is the best batch size"
    table = metric_table(rows)
    best = best_per_batch_size(table)
    trained = {m: v for m, v in best.items() if not math.isnan(v[1])}
    if 32 not in best:
        return Verdict(claim, CANNOT_TELL, "m = 32 was not run")
    if not trained:
        return Verdict(claim, CANNOT_TELL, "every run diverged")
    best_m = best_of({m: acc for m, (_, acc) in trained.items()}, table.higher_is_better)
    stats = seed_statistics(rows)
    ours = f"m = 32 (η̃ = {_lr_text(best[32][0])}): {_score_text(stats[(32, best[32][0])])}" \
        if 32 in trained else "m = 32: every η̃ diverged"
    theirs = f"m = {best_m} (η̃ = {_lr_text(best[best_m][0])}): " \
             f"{_score_text(stats[(best_m, best[best_m][0])])}"
    if best_m == 32:
        return Verdict(claim, TRUE, f"the best m is 32: {ours}")
    if 32 not in trained:
        return Verdict(claim, FALSE, f"{ours}; best {theirs}")
    p = within_noise(rows, alpha)[32]
    if math.isnan(p):
        return Verdict(claim, CANNOT_TELL, f"{ours}; best {theirs}; {_no_test(rows)}")
    if p >= alpha:
        return Verdict(claim, CANNOT_TELL, f"{ours} is not significantly below the best, {theirs} "
                       f"(Welch p = {p:.2f} ≥ {alpha})")
    return Verdict(claim, FALSE, f"{ours} is below the best, {theirs} (Welch p = {p:.3f})")


def as_base_lrs(rows) -> list[dict]:
    """The rows with η/m as their swept value (the paper's η̃), whatever the sweep's
    lr_scaling: "scale the learning rate linearly" is a claim about η/m, and a sweep of
    Adam's η itself (lr_scaling 'none') or of s = η/√m tests it on that axis."""
    if all((row.get("lr_scaling") or "linear") == "linear" for row in rows):
        return rows
    return [{**row, "base_lr": float(row["lr"]) / int(row["batch_size"])} for row in rows]


def verdict_linear_scaling(rows, alpha: float = ALPHA) -> Verdict:
    """"Scale the learning rate linearly with m": η = m·η̃ ∝ m means one η̃ = η/m for every
    m (as_base_lrs: the same test whatever the sweep's lr_scaling). False if no η̃ is within
    noise of the best at every m that trains (the test rejects a common η̃); true if,
    besides, the best η̃ of every m is within one grid step of the others (the estimates
    agree, not merely the test fails to tell them apart); cannot tell otherwise, with one
    seed, fewer than 2 such m, where the m's grids of η/m share no value, or where an m's
    best lies at the edge of its grid (a bound, not an optimum). Named η/m where the sweep's
    η̃ is another value (Adam's η itself: "best η̃ m = 8: 2^-11" beside a report whose η̃,
    so it said, was η, and whose best η̃ at m = 8 was 2^-8)."""
    linear = all((row.get("lr_scaling") or "linear") == "linear" for row in rows)
    eta = "η̃" if linear else "η/m"
    claim = ("scale the learning rate linearly with m (the best "
             + ("η̃ = η/m" if linear else "η/m") + " is the same at every m)")
    rows = as_base_lrs(rows)
    table = metric_table(rows)
    best = {m: lr for m, (lr, _) in best_per_batch_size(table).items() if not math.isnan(lr)}
    listing = ", ".join(f"m = {m}: {_lr_text(lr)}" for m, lr in best.items())
    if len(best) < 2:
        return Verdict(claim, CANNOT_TELL, "fewer than 2 batch sizes trained")
    edges = optima_at_the_edge(table)
    if edges:
        return Verdict(claim, CANNOT_TELL, f"best {eta} {listing}; at m = "
                       + ", ".join(str(m) for m in edges) + " it is the edge of the grid run "
                       "there (the optimum may lie beyond)")
    grids = {m: sorted(l for mm, l in table if mm == m) for m in best}
    if not set.intersection(*(set(grid) for grid in grids.values())):
        return Verdict(claim, CANNOT_TELL, f"best {eta} {listing}; the grids of η/m run at "
                       "these m share no value to test")
    ranges = {m: lrs_within_noise(rows, m, alpha) for m in best}
    if any(r is None for r in ranges.values()):
        return Verdict(claim, CANNOT_TELL, f"best {eta} {listing}; {_no_test(rows)}")
    common = set.intersection(*(set(r) for r in ranges.values()))
    if not common:
        within = "; ".join(f"m = {m}: {format_lrs(r, grids[m])}" for m, r in ranges.items())
        return Verdict(claim, FALSE, f"every {eta} is significantly worse than the best at one "
                       f"m or more (best {eta} {listing}; not significantly worse than each "
                       f"m's best: {within})")
    spread = math.log2(max(best.values()) / min(best.values()))
    if spread <= 1:
        return Verdict(claim, TRUE, f"best {eta} {listing}: within a factor 2 at every m, and "
                       f"{eta} = {format_lrs(sorted(common), sorted(common))} is not "
                       "significantly worse than the best at any m")
    return Verdict(claim, CANNOT_TELL, f"best {eta} {listing} (a factor {2 ** spread:g} "
                   f"apart), yet the seeds cannot reject one {eta} for all "
                   f"({format_lrs(sorted(common), sorted(common))} is not significantly "
                   "worse than the best at any m): more seeds would tell")


def verdict_small_batches_noisier(rows, alpha: float = ALPHA) -> Verdict:
    """"Small batches give noisier updates": the paper's argument (§2): an SGD update
    η̃·Σᵢ gᵢ over m examples has covariance η̃²·m·Σ, so at each m's best η̃ the update
    variance goes as η̃*²·m. True if that falls as m grows, false if it grows: the trend of
    log₂ η̃*²·m against log₂ m significant (linear regression, p < α) and its change
    between the smallest and largest m more than the grid's resolution (a factor 2 in η̃ is
    4 in η̃²·m); cannot tell otherwise, for optimizers other than SGD, or with optima at grid
    edges."""
    claim = "small batches give noisier updates (at each m's best η̃)"
    if any((r.get("lr_scaling") or "linear") != "linear" or (r.get("optimizer") or "sgd")
           != "sgd" for r in rows):
        return Verdict(claim, CANNOT_TELL, "the argument is plain SGD's on summed gradients "
                       "(η̃·Σg); these runs are not")
    table = metric_table(rows)
    best = {m: lr for m, (lr, _) in best_per_batch_size(table).items() if not math.isnan(lr)}
    edges = optima_at_the_edge(table)
    # (An m run at one η̃ has no optimum to speak of, nor a grid step to know it to.)
    interior = {m: lr for m, lr in best.items()
                if m not in edges and sum(mm == m for mm, _ in table) > 1}
    variance = {m: lr * lr * m for m, lr in interior.items()}
    listing = ", ".join(f"m = {m}: {lr_text(v)}" for m, v in variance.items())
    if len(variance) < 3:
        return Verdict(claim, CANNOT_TELL, (f"η̃*²·m {listing}: " if listing else "")
                       + "fewer than 3 batch sizes with an optimum inside their grid")
    # The trend of log₂(η̃*²·m) against log₂ m over every m: each point is known to the
    # grid's resolution only, so the endpoints alone would decide on noise.
    from scipy import stats  # (here: ~0.8 s to import, analysis.welch_p)
    fit = stats.linregress(np.log2(list(variance)), np.log2(list(variance.values())))
    # (Points on one flat line leave no spread to test against: no ± or p to state.)
    trend = (f"η̃*²·m {listing}: slope {fit.slope:+.2f}"
             + (f" ± {fit.stderr:.2f}" if math.isfinite(fit.stderr) else "") + " in log₂–log₂"
             + (f" (p = {fit.pvalue:.2f})" if math.isfinite(fit.pvalue) else ""))
    if fit.pvalue >= alpha:
        return Verdict(claim, CANNOT_TELL, f"{trend}: no trend")
    # Each best η̃ is known to its grid's step only, which the fit's p-value does not see
    # (grid points can line up exactly: p = 0): the fitted change over the m run must also
    # exceed the resolution of η̃*²·m, twice the coarsest step next to a best (in log₂).
    change = fit.slope * (math.log2(max(variance)) - math.log2(min(variance)))
    resolution = 2 * max(_step_beside(table, m, lr) for m, lr in interior.items())
    if abs(change) <= resolution:
        return Verdict(claim, CANNOT_TELL, f"{trend}: a change of {2 ** abs(change):.3g}× "
                       f"over the m run, within the grid's resolution ({2 ** resolution:g}× "
                       "in η̃*²·m: each best η̃ is known to a grid step)")
    if fit.slope < 0:
        return Verdict(claim, TRUE, f"{trend}: at their best η̃ the updates of small batches "
                       "are the more variable")
    return Verdict(claim, FALSE, f"{trend}: at their best η̃ the updates of larger batches "
                   "are the more variable")


def _step_beside(table, batch_size: int, lr: float) -> float:
    """The larger log₂ step between m's best η̃ `lr` and its neighbours in m's grid."""
    grid = sorted(l for m, l in table if m == batch_size)
    i = grid.index(lr)
    return max(math.log2(grid[j] / grid[j - 1]) for j in (i, i + 1) if 0 < j < len(grid))


TIMING_NOISE = 0.10  # wall times within 10% of each other are not told apart
# What a time to target rests on, said with every timing verdict.
TIMES_REST_ON = ("steps to the target × the seconds per step of m's program in its median "
                 "epoch, every η̃ at once, compilation excluded; one sweep on this machine")


def verdict_larger_train_faster(rows, found: dict[int, dict],
                                target: float = math.nan) -> Verdict:
    """"Larger batches train faster": wall time to the target on this machine (steps to
    target × the measured seconds per step of m's program). True if the largest m run gets
    there faster than every smaller m by more than TIMING_NOISE, false if it never gets
    there or a smaller m is faster by more than that, each at both ends of the evaluation
    interval that bounds its time (`found[m]['interval']`); cannot tell otherwise (times
    within the noise of a shared machine, or evaluations too far apart to order them), or
    if fewer than 2 m reach it with a measured time, or
    if `target` is no better than a constant prediction's score (reached without learning)."""
    claim = "larger batches train faster (wall time to the target, on this machine)"
    trivial = steps_to_target.baseline_note(target, baseline_of(rows), metric_of(rows))
    if trivial:
        return Verdict(claim, CANNOT_TELL, trivial.rstrip("."))
    caveat = analysis.timing_caveat(rows)
    if caveat:
        return Verdict(claim, CANNOT_TELL, caveat)
    timed = {m: f["seconds"] for m, f in found.items()
             if f["steps"] is not None and not math.isnan(f["seconds"])}
    if len(timed) < 2:
        return Verdict(claim, CANNOT_TELL, "fewer than 2 batch sizes reached the target with "
                       "a measured time")
    listing = (", ".join(f"m = {m}: {steps_to_target.seconds_text(s)}" for m, s in timed.items())
               + f" ({TIMES_REST_ON})")
    never = [m for m, f in found.items() if f["steps"] is None]
    largest = max(found)
    if largest in never:
        return Verdict(claim, FALSE, f"{listing}; m = {', '.join(map(str, never))} never "
                       "reached it")
    # A time to target is known to one evaluation interval: the target was first seen at
    # `steps`, and not yet at the evaluation before (`interval` steps earlier). An m evaluated
    # once an epoch of 719 steps, that reached it at its first, may have taken a tenth of
    # that: a comparison holds only where it holds at both ends of each interval.
    lowest = {m: timed[m] * max(found[m]["steps"] - (found[m].get("interval") or 0), 0)
              / found[m]["steps"] if found[m]["steps"] else 0.0 for m in timed}
    fastest_smaller = min((m for m in timed if m != largest), key=timed.get)
    ratio = timed[fastest_smaller] / timed[largest]
    if timed[fastest_smaller] < lowest[largest] * (1 - TIMING_NOISE):
        return Verdict(claim, FALSE, f"{listing}: m = {fastest_smaller} is {1 / ratio:.2f}× "
                       f"faster than the largest, m = {largest}")
    surely_slower = min(lowest[m] for m in timed if m != largest)
    if surely_slower > timed[largest] / (1 - TIMING_NOISE):
        return Verdict(claim, TRUE, f"{listing}: the largest m is {ratio:.2f}× faster than "
                       f"the fastest smaller one, m = {fastest_smaller}")
    if (ratio < 1 - TIMING_NOISE or ratio > 1 / (1 - TIMING_NOISE)):
        coarse = max((m for m in timed), key=lambda m: timed[m] - lowest[m])
        return Verdict(claim, CANNOT_TELL, f"{listing}: the evaluations are too far apart to "
                       f"tell (each time is an upper bound by up to an evaluation interval: "
                       f"m = {coarse} reached the target between {lowest[coarse]:.2g} and "
                       f"{steps_to_target.seconds_text(timed[coarse])}); evaluate more often "
                       "(`config.evals_per_epoch`)")
    return Verdict(claim, CANNOT_TELL, f"{listing}: the largest m and m = {fastest_smaller} "
                   f"are within {TIMING_NOISE:.0%} (timing noise on a shared machine)")


# How the verdicts on swept hyperparameters name them.
HYPERPARAMETER_NAMES = {"weight_decay": "weight decay λ", "momentum": "momentum μ",
                        "beta1": "Adam's β₁", "beta2": "Adam's β₂", "epsilon": "Adam's ε",
                        "warmup": "the warm-up fraction",
                        "grad_clip": "the gradient clipping norm"}


def _best_m(rows) -> tuple[int | None, dict]:
    """(the best m of `rows`, η̃ at each m's other values tuned; None if nothing trained,
    {m: (best η̃, score)})."""
    table = metric_table(rows)
    best = best_per_batch_size(table)
    trained = {m: v for m, (_, v) in best.items() if not math.isnan(v)}
    return best_of(trained, table.higher_is_better), best


def _at(rows, key: str, value: float) -> list[dict]:
    return [row for row in rows if float(row[key]) == value]


def _unresolved_rivals(rows_at: dict, alpha: float) -> dict:
    """{value: what keeps its best m from being resolved} for each value whose rows have an
    m that trains and is not significantly below their best m (or cannot be tested: fewer
    than MIN_SEEDS seeds)."""
    rivals = {}
    for value, at_v in rows_at.items():
        best_m, best = _best_m(at_v)
        close = [f"m = {m} (p = {p:.2f})" if not math.isnan(p) else f"m = {m} (too few seeds)"
                 for m, p in within_noise(at_v, alpha).items()
                 if m != best_m and not math.isnan(best[m][0]) and not p < alpha]
        if close:
            rivals[value] = "not significantly below its best m: " + ", ".join(close)
    return rivals


def swept_together(rows) -> list[tuple[str, ...]]:
    """The hyperparameters swept besides η̃, grouped where their values go together one to
    one over the grid (config.sweep.points such as ({'beta2': 0.99, 'warmup': 0},
    {'beta2': 0.999, 'warmup': 0.1})): no run tells apart what one of them does from what
    the others do, so a verdict names them together."""
    groups: list[list[str]] = []
    for key in analysis.swept_besides_lr(rows):
        for group in groups:
            pairs = {(row[group[0]], row[key]) for row in rows}
            if len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}):
                group.append(key)
                break
        else:
            groups.append([key])
    return [tuple(group) for group in groups]


def verdict_tuning_moves_best_m(rows, key: str, alpha: float = ALPHA,
                                together: tuple[str, ...] = ()) -> Verdict:
    """"Tuning `key` as well changes the best batch size", from the whole grid's rows
    (every setting of the swept hyperparameters; η̃ and the other dimensions tuned either
    way). The best m with `key` tuned, m_t, against the best m at each fixed value v, m_v.
    False if every fixed value's best m is m_t and, at every value, each other m that trains
    is significantly below it (the same best m, resolved: a rival within noise at some value
    could be the best there, and "the same m" would then be a coin's answer); true if at
    some v the change is real both ways: at v, m_t is significantly below m_v (or does not
    train), and with `key` tuned m_v is significantly below m_t (Welch p < α over seeds,
    `within_noise`); cannot tell otherwise (within noise, fewer than MIN_SEEDS seeds,
    nothing trained, one batch size: no rival, so "the same m" would hold vacuously)."""
    name = " and ".join(HYPERPARAMETER_NAMES.get(k, k) for k in (key,) + together) + (
        " (swept together: their values go one to one)" if together else "")
    claim = f"tuning {name} as well changes the best batch size"
    if len({int(row["batch_size"]) for row in rows}) < 2:
        return Verdict(claim, CANNOT_TELL, "fewer than 2 batch sizes in the grid")
    tuned_m, _ = _best_m(rows)
    if tuned_m is None:
        return Verdict(claim, CANNOT_TELL, "every run diverged")
    fixed = {v: _best_m(_at(rows, key, v))[0] for v in analysis.swept_besides_lr(rows)[key]}

    def shown(v):  # (the values swept together with it, beside it)
        row = _at(rows, key, v)[0]
        return f"{v:g}" + "".join(f" ({k} = {float(row[k]):g})" for k in together)

    listing = (f"best m = {tuned_m} with {', '.join((key,) + together)} tuned; at {key} = "
               + ", ".join(f"{shown(v)}: " + ("none trained" if m is None else f"m = {m}")
                           for v, m in fixed.items()))
    moved = {v: m for v, m in fixed.items() if m is not None and m != tuned_m}
    if not moved:
        rivals = _unresolved_rivals({v: _at(rows, key, v) for v in fixed}, alpha)
        if not rivals:
            return Verdict(claim, FALSE, f"{listing}: the same m at every value, each other m "
                           f"significantly below it (p < {alpha:g})")
        return Verdict(claim, CANNOT_TELL, f"{listing}: the same m at every value, but not "
                       "resolved: " + "; ".join(f"at {key} = {v:g}, {text}"
                                                for v, text in rivals.items()))
    tuned_p = within_noise(rows, alpha)
    tests, untested = [], False
    for v, m_v in moved.items():
        at_v = _at(rows, key, v)
        trains_there = not math.isnan(best_per_batch_size(metric_table(at_v))[tuned_m][0])
        p_fixed = within_noise(at_v, alpha)[tuned_m] if trains_there else 0.0
        p_tuned = tuned_p[m_v]
        if math.isnan(p_fixed) or math.isnan(p_tuned):
            untested = True
            continue
        at_v_text = (f"At {key} = {v:g}, m = {tuned_m} " + (f"is below m = {m_v} (p = "
                     f"{p_fixed:.3f})" if trains_there else "does not train"))
        if p_fixed < alpha and p_tuned < alpha:
            return Verdict(claim, TRUE, f"{listing}. {at_v_text}, and with {key} tuned m = "
                           f"{m_v} is below m = {tuned_m} (p = {p_tuned:.3f}): which m is "
                           f"best depends on {name}")
        fixed_text = (at_v_text if p_fixed < alpha else f"at {key} = {v:g}, m = {tuned_m} "
                      f"is not significantly below m = {m_v} (p = {p_fixed:.2f})")
        tests.append(f"{fixed_text[0].lower()}{fixed_text[1:]}; tuned, m = {m_v} against "
                     f"m = {tuned_m}: p = {p_tuned:.2f}")
    if not tests:
        return Verdict(claim, CANNOT_TELL, f"{listing}; {_no_test(rows)}")
    return Verdict(claim, CANNOT_TELL, f"{listing}; the change is not significant: "
                   + "; ".join(tests) + (" (other values: too few seeds)" if untested else ""))


def verdict_lr_moves_with_weight_decay(rows, alpha: float = ALPHA) -> Verdict:
    """"The best η̃ moves with λ" (the η·λ coupling: for a scale-invariant network the
    effective step depends on η·λ, so a larger λ wants a smaller η̃), from the whole grid's
    rows: at each m, the best η̃ at the smallest and the largest λ > 0 swept (λ = 0 has no
    product to keep), the other dimensions tuned. True if at every m that trains at both
    the best η̃ is smaller at the larger λ, and at one m at least significantly so (the
    smaller λ's best η̃ is not within noise at the larger λ, `lrs_within_noise`); false if
    at no m is it smaller and at one m at least a smaller η̃ is significantly worse at the
    larger λ; cannot tell otherwise (within noise, too few seeds, a best at the grid's edge)."""
    claim = ("the best η̃ moves with the weight decay λ (η·λ coupling: a larger λ wants a "
             "smaller η̃)")
    positive = [v for v in analysis.swept_besides_lr(rows).get("weight_decay", []) if v > 0]
    if len(positive) < 2:
        return Verdict(claim, CANNOT_TELL, "fewer than two λ > 0 swept (λ = 0 has no η·λ "
                       "to keep)")
    low, high = min(positive), max(positive)
    at_low, at_high = _at(rows, "weight_decay", low), _at(rows, "weight_decay", high)
    best_low = best_per_batch_size(metric_table(at_low))
    best_high = best_per_batch_size(metric_table(at_high))
    edges = set(optima_at_the_edge(metric_table(at_low))) | set(
        optima_at_the_edge(metric_table(at_high)))
    both = [m for m in best_low if m in best_high and not math.isnan(best_low[m][0])
            and not math.isnan(best_high[m][0])]
    if not both:
        return Verdict(claim, CANNOT_TELL, f"no m trains at both λ = {low:g} and {high:g}")
    listing = "; ".join(f"m = {m}: {_lr_text(best_low[m][0])} → {_lr_text(best_high[m][0])}"
                        + (" (grid edge)" if m in edges else "") for m in both)
    head = (f"best η̃ at λ = {low:g} → λ = {high:g} (coupling predicts {math.log2(high / low):.1f} "
            f"powers of 2 smaller): {listing}")
    down = [m for m in both if best_high[m][0] < best_low[m][0]]
    significant_down, significant_not = [], []
    tested = False
    for m in both:
        if m in edges:
            continue
        near_high = lrs_within_noise(at_high, m, alpha)
        if near_high is None:
            continue
        tested = True
        if best_low[m][0] not in near_high and max(near_high) < best_low[m][0]:
            significant_down.append(m)
        if min(near_high) >= best_low[m][0]:
            significant_not.append(m)
    if len(down) == len(both) and significant_down:
        return Verdict(claim, TRUE, f"{head}; significant at m = "
                       + ", ".join(map(str, significant_down)) + f" (at λ = {high:g}, "
                       f"λ = {low:g}'s best η̃ and every larger one score significantly below "
                       f"the best, Welch p < {alpha})")
    if not down and significant_not:
        return Verdict(claim, FALSE, f"{head}; at m = " + ", ".join(map(str, significant_not))
                       + f" every η̃ smaller than λ = {low:g}'s best is significantly worse "
                       f"at λ = {high:g}")
    if not tested:
        why = ("every best at the grid's edge" if _num_seeds(rows) >= analysis.MIN_SEEDS
               else _no_test(rows) + " where a best is not at the grid's edge")
        return Verdict(claim, CANNOT_TELL, f"{head}; {why}")
    return Verdict(claim, CANNOT_TELL, f"{head}; not the same way at every m, or within "
                   "noise")


def verdicts(rows, found: dict[int, dict], alpha: float = ALPHA,
             grid_rows=None, target: float = math.nan) -> list[Verdict]:
    """The verdicts on common advice (`rows`: η̃ with any other swept hyperparameters
    tuned, analysis.tuned; `found`: the steps to `target`), and with `grid_rows` (the whole
    grid) the verdicts on each hyperparameter swept besides η̃."""
    found_verdicts = [verdict_32_is_best(rows, alpha), verdict_linear_scaling(rows, alpha),
                      verdict_small_batches_noisier(rows, alpha),
                      verdict_larger_train_faster(rows, found, target)]
    groups = swept_together(grid_rows) if grid_rows else []
    found_verdicts += [verdict_tuning_moves_best_m(grid_rows, keys[0], alpha, keys[1:])
                       for keys in groups]
    for keys in groups:
        if "weight_decay" in keys:
            found_verdicts.append(verdict_lr_moves_with_weight_decay(grid_rows, alpha) if
                                  len(keys) == 1 else _weight_decay_not_alone(keys))
    return found_verdicts


def _weight_decay_not_alone(keys: tuple[str, ...]) -> Verdict:
    others = " and ".join(HYPERPARAMETER_NAMES.get(k, k) for k in keys if k != "weight_decay")
    return Verdict("the best η̃ moves with the weight decay λ (η·λ coupling: a larger λ wants "
                   "a smaller η̃)", CANNOT_TELL, f"λ was swept together with {others} (their "
                   "values go one to one): a move of the best η̃ with λ cannot be told from "
                   "one with them")


# ------------------------------------------------------------------------ the report


def optimizer_setting(rows, batch_size: int, base_lr: float) -> str:
    """What to paste: the batch size and the optimizer's own learning rate η on the
    batch-mean loss (the row's `lr`: m·η̃ for the paper's summed-gradient SGD, per the
    sweep's `lr_scaling`), with the rest of the optimizer as the sweep ran it. `rows`: the
    whole grid (a hyperparameter the grid sweeps is stated at its best value even where
    that is 0: a reader pasting the rest from their own config, momentum 0.9 say, would
    otherwise run a setting that was not the best)."""
    swept = analysis.swept_besides_lr(rows)
    row = next(r for r in analysis.tuned(rows) if int(r["batch_size"]) == batch_size
               and float(r["base_lr"]) == base_lr)
    stated = lambda key: key in swept or float(row.get(key) or 0)
    optimizer, scaling = row.get("optimizer") or "sgd", row.get("lr_scaling") or "linear"
    relation = {"linear": f"m·η̃ = {batch_size} × {_lr_text(base_lr)}",
                "sqrt": f"√m·η̃ = √{batch_size} × {_lr_text(base_lr)}"}.get(scaling)
    parts = [f"batch size {batch_size}", f"{optimizer} learning rate {float(row['lr']):.6g}"
             + (f" (= {relation}, on the batch-mean loss)" if relation else "")]
    adam = optimizer in ("adam", "adamw")
    if not adam and row.get("momentum") not in (None, "") and stated("momentum"):
        parts.append(f"momentum {float(row['momentum']):g}")
    if adam and row.get("beta2"):
        # (Tables written before the beta1 column held Adam's β₁ under `momentum`.)
        beta1 = row.get("beta1") or row.get("momentum")
        parts.append((f"β₁ {float(beta1):g}, " if beta1 not in (None, "") else "")
                     + f"β₂ {float(row['beta2']):g}, ε {float(row['epsilon']):g}")
    if stated("weight_decay"):
        # (Where a reader's optimizer decays every parameter, PyTorch's weight_decay say,
        # the same λ is not the same setting.)
        parts.append(f"weight decay {float(row['weight_decay']):g} (as this sweep applies it: "
                     "to the convolution and dense kernels only, not to biases or "
                     "normalization parameters)")
    if stated("warmup"):
        parts.append(f"warm-up over the first {float(row['warmup']):g} of training "
                     "(linear, from η/32)")
    if stated("grad_clip"):
        norm = float(row["grad_clip"])
        parts.append(f"gradients clipped to global norm {norm:g} (of the batch-mean loss's "
                     "gradient, before weight decay)" if norm > 0 else "no gradient clipping")
    if row.get("epochs"):
        parts.append(f"{row['epochs']} epochs with this sweep's schedule")
    return ", ".join(parts)


def _noise_scale_text(scale: float, se: float) -> str:
    if math.isnan(scale):
        return "not measurable"
    return f"{scale:.3g}" + ("" if math.isnan(se) else f" ± {se:.2g}")


def _batch_size_at_the_edge(best_m: int, trained: list[int], run: list[int], rows) -> str:
    """What to add where the best m is the smallest or the largest m that trained (`run`:
    every m of the sweep, `trained`: those where some η̃ did not diverge): like an η̃ at the
    edge of its grid, a bound, not an optimum (a sweep of 4, 16, 64 whose best is 4 says
    nothing of m = 2). Nothing below m = 1, nor above one step per epoch."""
    if len(run) < 2:
        return ""
    if best_m == trained[0] and best_m > 1:
        smaller = [m for m in run if m < best_m]
        if smaller:
            return (f"m = {best_m} is the smallest batch size that trained here; m = "
                    f"{', '.join(map(str, smaller))} diverged at every η̃ of the grid: a smaller "
                    "η̃ there may do better still (extend `base_lrs` below).")
        return (f"m = {best_m} is the smallest batch size run here: a smaller one may do "
                "better still; add it to `batch_sizes` to know.")
    per_epoch = {int(float(r["steps"]) / float(r["epochs"])) for r in rows
                 if int(r["batch_size"]) == best_m and r.get("steps") and r.get("epochs")}
    if best_m == trained[-1] and per_epoch != {1}:
        larger = [m for m in run if m > best_m]
        if larger:
            return (f"m = {best_m} is the largest batch size that trained here; m = "
                    f"{', '.join(map(str, larger))} diverged at every η̃ of the grid: a smaller "
                    "η̃ there may do better still (extend `base_lrs` below).")
        return (f"m = {best_m} is the largest batch size run here: a larger one may do better "
                "still; add it to `batch_sizes` to know.")
    return ""


# A results column swept besides η̃ → (the config key that sets it, its config.sweep key).
_CONFIG_KEYS = {"weight_decay": ("weight_decay", "weight_decay"),
                "momentum": ("momentum", "momentum"), "beta1": ("adam.beta1", "momentum"),
                "beta2": ("adam.beta2", "beta2"), "epsilon": ("adam.epsilon", "epsilon"),
                "warmup": ("warmup", "warmup"), "grad_clip": ("grad_clip", "grad_clip")}


def test_run_overrides(rows, batch_size: int, base_lr: float) -> dict:
    """The config's changes that train the setting (m, η̃ and the other swept hyperparameters
    at their best: `rows`, the whole grid) on the whole training set and evaluate it on the
    test split: {dotted key: value}, the sweeps of other values cleared, β₂ as the column
    gives it at m (the rule 'fixed')."""
    overrides = {"validation": 0.0, "batch_size": batch_size, "base_lrs": (base_lr,)}
    swept = analysis.swept_besides_lr(rows)
    if swept:
        row = next(r for r in analysis.tuned(rows) if int(r["batch_size"]) == batch_size
                   and float(r["base_lr"]) == base_lr)
        for column in swept:
            key, sweep_key = _CONFIG_KEYS[column]
            overrides[key] = float(row[column])
            overrides[f"sweep.{sweep_key}"] = ()
            if column == "beta2":
                overrides["adam.beta2_rule"] = "fixed"
        overrides["sweep.points"] = ()
    return overrides


def test_run_flags(rows, batch_size: int, base_lr: float) -> str:
    """`test_run_overrides` as command-line flags after the sweep's own config (tuples quoted
    for the shell, where a bare parenthesis is a syntax error)."""
    flags = []
    for key, value in test_run_overrides(rows, batch_size, base_lr).items():
        if key == "base_lrs":
            power = math.log2(value[0])
            text = f"2^{power:g}" if power == round(power) else f"'({value[0]!r},)'"
        elif isinstance(value, tuple):
            text = f"'{value!r}'"
        else:
            text = f"{value:g}" if isinstance(value, float) else str(value)
        flags.append(f"--config.{key}={text}")
    return " ".join(flags)


def recommended_point(rows) -> tuple[int, float] | None:
    """(m, η̃) that recommendation.md recommends (the best m at its best η̃, the other swept
    hyperparameters at their best); None where every run diverged, or where the best does
    not beat a constant prediction (`above_baseline`)."""
    best = _best_point(rows)
    return best[:2] if best is not None and above_baseline(rows, best[2]) else None


def _best_point(rows) -> tuple[int, float, float] | None:
    """(m, η̃, score) of the best m at its best η̃; None where every run diverged."""
    table = metric_table(analysis.tuned(rows))
    trained = {m: v for m, v in best_per_batch_size(table).items() if not math.isnan(v[1])}
    if not trained:
        return None
    best_m = best_of({m: v for m, (_, v) in trained.items()}, table.higher_is_better)
    return best_m, trained[best_m][0], trained[best_m][1]


def above_baseline(rows, score: float) -> bool:
    """Whether `score` beats the rows' constant prediction (results.constant_bar; True where
    that is not known): a study whose best does not beat it learned nothing from its inputs
    that a constant output would not give, and its ranking of m is a ranking of noise."""
    baseline = constant_bar(rows)
    return math.isnan(baseline) or metric_of(rows).beats(score, baseline)


def _baseline_lines(rows, best: tuple[int, float, float], alpha: float) -> list[str]:
    """What the best setting scores against a constant prediction: a plain statement, a
    warning where its seeds are not significantly better (one-sample t-test), or the
    refusal to recommend where it is not better at all."""
    text = baseline_text(rows)
    if not text:
        return []
    best_m, best_lr, score = best
    metric, baseline = metric_of(rows), constant_bar(rows)
    if metric.name == "accuracy" and baseline >= 1.0:
        return [f"**The evaluation cannot tell settings apart**: {text}: the "
                f"{evaluated_on(rows)} split holds only one class, so a constant prediction "
                "is perfect there and no setting can beat it: "
                "no recommendation. Evaluate on a split that holds every class.", ""]
    if not metric.beats(score, baseline):
        return [f"**No setting beat a constant prediction**: {text}, and the best of this "
                f"sweep (m = {best_m}, η̃ = {_lr_text(best_lr)}) scores {score:.4f}. These "
                "runs learned nothing from their inputs that a constant output would not "
                "give, so their ranking of m and η̃ is noise: no recommendation. Check that "
                "the labels belong to their inputs (the same order), that the model can learn "
                "the task (it trains on a small subset to beyond the baseline), and the grid "
                "(η̃ too small to move in these epochs, or too large to train).", ""]
    values = analysis.seed_values(analysis.tuned(rows)).get((best_m, best_lr), [])
    p = baseline_p(values, baseline, metric.higher_is_better)
    if not math.isnan(p) and p >= alpha:
        return [f"Baseline: {text}. The recommended setting's {len(values)} seeds are not "
                f"significantly better (one-sided t-test, p = {p:.2f}): it may have learned "
                "little beyond it.", ""]
    return [f"Baseline: {text}.", ""]


def baseline_p(values: list[float], baseline: float, higher: bool) -> float:
    """One-sided p-value of seeds' scores being better than the constant `baseline`
    (one-sample t-test); NaN with fewer than analysis.MIN_SEEDS seeds; without spread, 0 or
    1 as the mean is better or not."""
    if len(values) < analysis.MIN_SEEDS or any(math.isnan(v) for v in values):
        return math.nan
    if np.std(values) == 0:
        return 0.0 if (np.mean(values) > baseline) == higher else 1.0
    from scipy import stats  # (here: ~0.8 s to import, analysis.welch_p)
    return float(stats.ttest_1samp(values, baseline,
                                   alternative="greater" if higher else "less").pvalue)


def _selection_note(evaluated_on: str, points: int, flags: str = "",
                    tested: bool = False) -> str:
    """Which split chose the setting, and what its number is worth: a best chosen among
    `points` settings on the split it is scored on is flattered by the choice. `flags`: the
    overrides that train the chosen setting for the test split (`test_run_flags`); `tested`:
    that run was made (its figure follows)."""
    if evaluated_on == "validation" and tested:
        return ("Chosen on the validation split (`config.validation`: held out of the "
                "training set); the test split took no part in the choice. The test figure "
                "below is this setting trained once more on the whole training set, as "
                "`python -m experiments.lr_sweep` with this sweep's config and "
                f"`{flags}` would.")
    if evaluated_on == "validation":
        return ("Chosen on the validation split (`config.validation`: held out of the "
                "training set); the test split took no part in this sweep. For a test figure "
                "to report, train the setting above once on the whole training set and read "
                "its test metric once: `python -m experiments.lr_sweep` with this sweep's "
                f"config, a new workdir and `{flags}` (from Python: `run_lr_sweep` with the "
                "config so set).")
    if points < 2:
        return ("Scored on the test split (the paper's protocol); no choice was made among "
                "settings.")
    return (f"Chosen and scored on the test split (the paper's protocol): the best of {points} "
            "settings, its number is flattered by the choice. For a number to report, choose "
            "on a split held out of the training set (`config.validation`, e.g. 0.1), then "
            "train the chosen setting once and read its test metric.")


def _test_run_text(test_rows, name: str, chosen_on: tuple[float, float, int]) -> str:
    """The recommended setting's test figure (batch_sweep.test_run's rows), beside its score on
    the validation split it was chosen on."""
    (tested,) = seed_statistics(test_rows).values()  # (one point: its seeds)
    if math.isnan(tested[0]):
        return (f"**On the test split**: the setting, trained once on the whole training set "
                f"({SweepDirectory.TEST_RUN}/), diverged for some seed; its validation score "
                "does not carry over.")
    return (f"**On the test split**, the setting trained once on the whole training set "
            f"({SweepDirectory.TEST_RUN}/; the test split read this once): {name} "
            f"{_score_text(tested)}; on the validation split it was chosen on: "
            f"{_score_text(chosen_on)}.")


def ties_at_the_best(rows, name: str, higher: bool) -> str:
    """Where several points of the grid (m, η̃ and any other swept values) share the best
    score, to float32's resolution (analysis.best_of's ties): the recommendation among them
    is the tie rule's (the smaller m, then η̃), not the data's, and is said to be; '' where
    one point is best. `rows`: the whole grid."""
    scores = {point: v for point, v in analysis.setting_scores(rows).items() if not math.isnan(v)}
    if not scores:
        return ""
    best = (max if higher else min)(scores.values())
    tied = sorted(point for point, v in scores.items() if f"{v:.6g}" == f"{best:.6g}")
    if len(tied) < 2:
        return ""
    swept = [(i, key) for i, key in enumerate(HYPERPARAMETER_COLUMNS)
             if key in analysis.swept_besides_lr(rows)]
    named = ["(m = {}, η̃ = {}{})".format(m, _lr_text(lr), "".join(
        f", {key} = {float(setting[i]):g}" for i, key in swept)) for m, lr, setting in tied]
    ceiling = (" The metric is at its ceiling on the evaluation split: a larger split, a "
               "harder task or a finer measure (the loss) would tell them apart."
               if name == "accuracy" and higher and best >= 1.0 else "")
    return (f"{len(tied)} points tie at the best {name}, {best:.4f}: "
            + ", ".join(named[:6]) + (", …" if len(named) > 6 else "")
            + "; the recommendation among them is the tie rule's (the smaller m, then η̃), "
            "not the data's." + ceiling)


def recommendation_markdown(rows, found: dict[int, dict], target: float, tolerance: float,
                            alpha: float = ALPHA, where: str = "",
                            noise_scales: dict[int, tuple[float, float]] | None = None,
                            not_run: list[int] = (), test_rows=None) -> str:
    """recommendation.md: the answer, its evidence and the verdicts (see the module doc).
    `noise_scales`: {m: (the gradient noise scale B_simple at the end of m's training at its
    best η̃, its standard error)} (noise_scale.final_scale), where probed (NaN: not
    measurable; a standard error NaN: not known). `not_run`: the sweep's batch sizes with no
    results yet (said first). `test_rows`: the results of the recommended setting trained
    on the whole training set and evaluated on the test split (batch_sweep.test_run), for a
    sweep that chose on a validation split."""
    grid_rows, rows = rows, analysis.tuned(rows)  # (η̃ with the others at their best)
    table = metric_table(rows)
    name, higher = table.metric, table.higher_is_better
    stats, seeds = seed_statistics(rows), _num_seeds(rows)
    best = best_per_batch_size(table)
    trained = {m: v for m, v in best.items() if not math.isnan(v[1])}
    lines = ["# Which batch size? The answer from these runs", ""]
    if where:
        lines += [where, ""]
    lines += analysis.swept_value_note(rows) + analysis.not_run_note(not_run)
    lines += [f"{len(best)} batch size{'s' if len(best) != 1 else ''}, {len({lr for _, lr in table})} η̃, {seeds} seed"
              f"{'s' if seeds != 1 else ''} per point; the score is the median "
              f"{table.evaluated_on} {name} "
              "over the last epochs, mean over seeds"
              + ("" if higher else " (lower is better)") + ".", ""]
    if not trained:
        smallest = min(lr for _, lr in table)
        at_first_step = analysis.first_step_divergence(grid_rows)
        return "\n".join(lines + [
            "Every run diverged: no recommendation." + (at_first_step or (
                f" The smallest η̃ of the grid, {lr_text(smallest)}, diverged too: extend "
                "`base_lrs` below it.")), ""])
    best_m, best_lr, best_score = _best_point(grid_rows)
    if not above_baseline(grid_rows, best_score):
        return "\n".join(lines + _baseline_lines(grid_rows, (best_m, best_lr, best_score),
                                                  alpha))
    edges = optima_at_the_edge(table)
    best_row = next(r for r in rows if int(r["batch_size"]) == best_m
                    and float(r["base_lr"]) == best_lr)
    at_best = "".join(f", {key} = {float(best_row[key]):g}"
                      for key in analysis.swept_besides_lr(grid_rows))
    lines += ["## 1. Recommended", "",
              f"**m = {best_m}, η̃ = {_lr_text(best_lr)}{at_best}**: {name} "
              f"{_score_text(stats[(best_m, best_lr)])}.", "",
              f"Setting: {optimizer_setting(grid_rows, best_m, best_lr)}.", "",
              _selection_note(table.evaluated_on, len(analysis.setting_scores(grid_rows)),
                              test_run_flags(grid_rows, best_m, best_lr), bool(test_rows)),
              ""]
    if test_rows:
        lines += [_test_run_text(test_rows, name, stats[(best_m, best_lr)]), ""]
    lines += _baseline_lines(grid_rows, (best_m, best_lr, best_score), alpha)
    tied = ties_at_the_best(grid_rows, name, higher)
    if tied:
        lines += [tied, ""]
    near = lrs_within_noise(rows, best_m, alpha, tolerance)
    grid = sorted(lr for m, lr in table if m == best_m)
    within = (f"within {tolerance:g} of it" if table.higher_is_better
              else f"within {tolerance:g}·|its score| of it")
    lines.append(f"η̃ within noise of it at m = {best_m} (not significantly worse, Welch p ≥ "
                 f"{alpha:g}, and {within}): {format_lrs(near, grid)}."
                 if near is not None else
                 f"Uncertainty: {seeds} seed{'s' if seeds != 1 else ''} per point, so "
                 + ("none is stated" if seeds < 2 else "no test of the η̃ within noise")
                 + f"; run with `--config.num_seeds={analysis.MIN_SEEDS}` for "
                 + ("error bars and tests." if seeds < 2 else "tests."))
    if best_m in edges:
        lines.append(f"Its η̃ is the {edges[best_m]} run at m = {best_m}: the optimum may lie "
                     "beyond the grid; extend `base_lrs`.")
    edge_m = _batch_size_at_the_edge(best_m, sorted(trained), sorted(best), rows)
    if edge_m:
        lines.append(edge_m)
    lines.append("")

    p_values = within_noise(rows, alpha)
    # Training time, compilation left out where it was measured: it is no part of what a
    # larger m saves, and differs by m (digits' README job, the cache warm: m = 32's 21.2 s
    # and m = 4's 23.1 s of wall time held 1.6 and 3.4 s of compiling).
    wall, compiling = training_seconds(rows), training_seconds(rows, "compile_seconds")
    seconds = {m: wall[m] - (0.0 if math.isnan(compiling[m]) else compiling[m])
               for m in best}  # (NaN where the rows do not say)
    compiled_out = all(not math.isnan(compiling[m]) for m in best)
    lines += ["## 2. The largest m within noise of the best", "",
              f"Within noise: not significantly worse than the best (Welch p ≥ {alpha}) and "
              f"no further from it than the tolerance, {tolerance:g} (seeds that scatter "
              "widely fail the test without being as good).", ""]
    close = analysis.batch_sizes_within_noise(rows, tolerance, alpha)
    if len(trained) < 2:
        lines.append(f"No other m trained to compare with m = {best_m}.")
    elif close is None:
        lines.append(f"Cannot tell with fewer than {analysis.MIN_SEEDS} seeds per point "
                     f"({seeds} here).")
    else:
        largest = max(close)
        text = (f"m = {largest} (η̃ = {_lr_text(best[largest][0])}: "
                f"{_score_text(stats[(largest, best[largest][0])])}, Welch p = "
                f"{p_values[largest]:.2f} against the best)")
        if largest == best_m:
            text = f"m = {best_m} itself: no larger m is within noise"
        elif (not math.isnan(seconds[largest]) and not math.isnan(seconds[best_m])
              and not analysis.timing_caveat(rows)):
            text += (f"; its training took {steps_to_target.seconds_text(seconds[largest])} "
                     f"against {steps_to_target.seconds_text(seconds[best_m])} at m = {best_m} "
                     "(this sweep's program, every η̃"
                     + (", compilation excluded)" if compiled_out else ")"))
        if largest != best_m and largest == max(best):
            text += ("; the largest m run here: a larger one may be within noise too (add it "
                     "to `batch_sizes` to know)")
        lines.append(text + ".")
    lines.append("")

    lines += ["## 3. Stable η̃ per m", "",
              f"Trains: no lane diverged. Reliable: {analysis.reliability_rule(table, tolerance)} "
              "(the sweep's best). Gaps in a range are η̃ that are not.", "",
              "| m | best η̃ | best | trains | reliable |", "|---|---|---|---|---|"]
    reliable = reliable_ranges(table, tolerance)
    for m, (lr, _) in best.items():
        grid = sorted(l for mm, l in table if mm == m)
        trains = [l for l in grid if not math.isnan(table[(m, l)])]
        lines.append(f"| {m} | {'—' if math.isnan(lr) else _lr_text(lr)} | "
                     f"{'all diverged' if math.isnan(lr) else _score_text(stats[(m, lr)])} | "
                     f"{format_lrs(trains, grid)} | {format_lrs(reliable.get(m, []), grid)} |")
    lines.append("")
    dropped = analysis.dropped_examples_note(rows)
    if dropped:
        lines += [dropped, ""]
    window = analysis.metric_window_note(rows)
    if window:
        lines += [window, ""]
    below = analysis.batch_sizes_at_baseline(rows)
    if below:
        lines += [f"At m = {', '.join(map(str, below))} no η̃ beat the baseline "
                  f"({baseline_text(rows)}): nothing learned there.", ""]

    lines += ["## 4. Time to the target per m, and the noise scale", ""]
    if found:
        lines += steps_to_target.markdown(
            found, target, name, table.evaluated_on,
            steps_to_target.caution(rows, target)).rstrip("\n").split("\n")
    else:
        lines.append("Not measured: the runs' curves.csv are missing, or lack seeds or η̃ "
                     "of the table (a merged table's others trained elsewhere).")
    lines.append("")
    if noise_scales:
        lines += ["Gradient noise scale B_simple = tr Σ / |G|² at each m's best η̃, the median "
                  "of the last 3 epochs' resolved estimates ± their standard error (McCandlish "
                  "et al. 2018: to first order, batches beyond it stop cutting the steps in "
                  "proportion): " + ", ".join(
                      f"m = {m}: {_noise_scale_text(*b)}" for m, b in noise_scales.items())
                  + f". The best m found by training: {best_m}."
                  + (" Not measurable: in the last epochs the estimate of |G|² was not "
                     "resolved for some seed (not two standard errors above 0, and B_simple "
                     "could be larger without bound): the probe's batches are small next to "
                     "a noise scale this large, or near convergence the gradient is lost in "
                     "their noise. A larger probe (`config.noise_scale.batch_size`, "
                     "`num_batches`, `max_fraction`: at most that share of the training set) "
                     "may resolve it."
                     if any(math.isnan(b[0]) for b in noise_scales.values()) else ""), ""]

    lines += ["## 5. Common advice, checked against these runs", ""]
    for verdict in verdicts(rows, found, alpha, grid_rows, target):
        lines.append(f"- **\"{verdict.claim}\": {verdict.answer}.** {verdict.because}.")
    lines.append("")
    return "\n".join(lines)
