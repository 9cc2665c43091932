"""The gradient noise scale B_simple = tr(Σ)/|G|² of every lane, measured during training.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", App. A): with G the
true gradient and Σ the per-example gradient covariance, a batch of B examples has
E|G_B|² = |G|² + tr(Σ)/B. Two batch sizes B_small < B_big give unbiased estimates

    |G|²  ≈ (B_big·|G_big|² − B_small·|G_small|²) / (B_big − B_small)
    tr(Σ) ≈ (|G_small|² − |G_big|²) / (1/B_small − 1/B_big),

each smoothed on its own (an exponential moving average) before the ratio, since either
can come out negative where noise dominates. B_simple is the batch size above which, to
first order, a larger batch stops buying a proportional cut in steps: the "critical batch
size" the paper's question is about.

How it is measured here (`NoiseProbe`): after each epoch, with the weights frozen, every lane
takes the gradient of the mean loss on `num_batches` fresh batches of `batch_size` training
examples (drawn per seed and epoch, the same for every lane of a seed): |G_small|² is the
mean of their squared norms (B_small = batch_size), |G_big|² the squared norm of their mean
(B_big = batch_size · num_batches). The probe costs batch_size · num_batches forward and
backward passes per lane and epoch, capped at `max_fraction` of an epoch's examples
(`NoiseProbe.for_data`). BatchNorm layers use the probe batch's statistics, as in training
at m = batch_size (BN makes an example's gradient depend on its batch: the estimate is then
that of BN at this batch size).

Its error (`noise_scale_curves`): the n probe batches fall into k ≤ 4 groups (batch i in
group i mod k); the probe also returns its two numbers with each group left out, and the
spread of the k leave-one-group-out estimates of (|G|², tr Σ) gives their covariance (a
delete-a-group jackknife). The moving average over epochs carries it (fresh batches each
epoch: independent errors), and B_simple's standard error follows by the delta method. Late
in training |G|² is small against the noise tr Σ / B_big, and its estimate can be anywhere
between a tenth and ten times the truth, or negative: B_simple then jumps by orders of
magnitude from epoch to epoch. Such an estimate is marked *not resolved* (|G|² less than
two standard errors above 0: B_simple could be larger without bound) rather than reported
as a measurement; the figure draws it hollow and the recommendation does not use it.
"""

import dataclasses
import math
from typing import NamedTuple

import numpy as np


# The fewest batches a probe takes when it can (4: one per group, each left out in turn,
# for the estimate's error), and the smallest batch it shrinks them to.
MIN_BATCHES, MIN_BATCH_SIZE = 4, 4


@dataclasses.dataclass(frozen=True)
class NoiseProbe:
    batch_size: int = 32  # B_small
    num_batches: int = 8  # B_big = batch_size · num_batches
    decay: float = 0.5  # of the moving averages, per epoch (0: no smoothing)

    @property
    def big_batch(self) -> int:
        return self.batch_size * self.num_batches

    @classmethod
    def for_data(cls, num_train: int, *, batch_size: int = 32, num_batches: int = 8,
                 max_fraction: float = 0.05, decay: float = 0.5,
                 multiple_of: int = 1) -> "NoiseProbe | None":
        """The probe for a data set of `num_train` examples (config.noise_scale's keys): as
        many batches of `batch_size` as `max_fraction` of an epoch allows, at most
        `num_batches`. Where fewer than MIN_BATCHES fit (a small data set: the 1,437 digits
        give 71 examples), smaller batches, MIN_BATCHES of them: its error needs batches to
        leave out (probe_groups). Batches are a multiple of `multiple_of` (ghost BatchNorm's
        m_BN: its groups must divide a batch). None when off (num_batches 0) or when not
        even MIN_BATCHES batches of MIN_BATCH_SIZE (and of m_BN) examples fit."""
        if not num_batches:
            return None
        examples = int(max_fraction * num_train)
        size = max(multiple_of, batch_size // multiple_of * multiple_of)
        fitting = min(num_batches, examples // size)
        if fitting >= min(MIN_BATCHES, num_batches):
            return cls(size, fitting, decay)
        fitting = min(MIN_BATCHES, num_batches)
        size = examples // fitting // multiple_of * multiple_of
        if fitting < 2 or size < max(MIN_BATCH_SIZE, multiple_of):
            return None
        return cls(size, fitting, decay)


def probe_groups(num_batches: int) -> int:
    """How many groups the probe's batches fall into for its error: up to 4 (each a sum the
    probe holds), and 1 (no error) when fewer than 3 batches leave fewer than 2 once a group
    is left out."""
    return min(4, num_batches) if num_batches >= 3 else 1


def group_sizes(num_batches: int) -> tuple[int, ...]:
    """Batches per group (batch i in group i mod k)."""
    k = probe_groups(num_batches)
    return tuple(int(c) for c in np.bincount(np.arange(num_batches) % k, minlength=k))


def unbiased(g2_small, g2_big, b_small: int, b_big: int):
    """(|G|², tr Σ) from the mean squared gradient norms at two batch sizes (arrays: per
    lane)."""
    g2_small, g2_big = np.asarray(g2_small, np.float64), np.asarray(g2_big, np.float64)
    g2 = (b_big * g2_big - b_small * g2_small) / (b_big - b_small)
    trace = (g2_small - g2_big) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


def moving_average(values: list[np.ndarray], decay: float, weight: float | None = None
                   ) -> list[np.ndarray]:
    """The exponential moving average after each entry (the first: itself),
    current ← decay · current + (1 − decay) · value; NaN stays NaN (a diverged lane).
    `weight`: the new value's weight instead of 1 − decay (a variance's: (1 − decay)²)."""
    weight = 1 - decay if weight is None else weight
    averaged, current = [], None
    for value in values:
        value = np.asarray(value, np.float64)
        current = value if current is None else decay * current + weight * value
        averaged.append(current)
    return averaged


def jackknife_covariance(left_out, probe: NoiseProbe) -> np.ndarray:
    """The covariance of the probe's (|G|², tr Σ) estimate, (..., 2, 2), from its
    leave-one-group-out mean squared norms `left_out` (..., k, 2): (k − 1)/k Σ_g (θ_g − θ̄)
    (θ_g − θ̄)ᵀ over the k estimates θ_g made without group g (each at its own B_big). NaN
    where the probe had fewer than 2 groups."""
    left_out = np.asarray(left_out, np.float64)
    sizes = group_sizes(probe.num_batches)
    k = left_out.shape[-2]
    if k < 2 or k != len(sizes):
        return np.full(left_out.shape[:-2] + (2, 2), math.nan)
    thetas = np.stack([np.stack(unbiased(left_out[..., g, 0], left_out[..., g, 1],
                                         probe.batch_size,
                                         probe.batch_size * (probe.num_batches - sizes[g])),
                                axis=-1) for g in range(k)], axis=-2)  # (..., k, 2)
    deviations = thetas - thetas.mean(axis=-2, keepdims=True)
    return (k - 1) / k * np.einsum("...gi,...gj->...ij", deviations, deviations)


class NoiseScaleCurves(NamedTuple):
    """Per epoch, each (K,) per lane: the smoothed |G|² and tr Σ, B_simple = tr Σ / |G|² (NaN
    where the smoothed |G|² is not positive), its standard error (NaN without the
    leave-one-out sums), and whether |G|² is resolved (more than two standard errors above
    0; False where unknown)."""

    g2: list
    trace: list
    scale: list
    scale_se: list
    resolved: list


def noise_scale_curves(g2_small: list[np.ndarray], g2_big: list[np.ndarray],
                       probe: NoiseProbe, left_out: list[np.ndarray] | None = None
                       ) -> NoiseScaleCurves:
    """B_simple per epoch and lane from the probe's mean squared norms (g2_small, g2_big:
    per epoch (K,)) and, for its error, their leave-one-group-out values (`left_out`: per
    epoch (K, k, 2); None or [] for none). The moving average weighs epoch e's estimate by
    w_e; its covariance is Σ w_e² C_e, the epochs' errors being independent."""
    estimates = [unbiased(s, b, probe.batch_size, probe.big_batch)
                 for s, b in zip(g2_small, g2_big)]
    g2s = moving_average([g for g, _ in estimates], probe.decay)
    traces = moving_average([t for _, t in estimates], probe.decay)
    if left_out and len(left_out) == len(estimates):
        covariances = [jackknife_covariance(x, probe) for x in left_out]
    else:
        covariances = [np.full(np.shape(g) + (2, 2), math.nan) for g, _ in estimates]
    smoothed = moving_average(covariances, probe.decay**2, (1 - probe.decay)**2)
    scales, errors, resolved = [], [], []
    for g, t, c in zip(g2s, traces, smoothed):
        positive = g > 0
        g_safe = np.where(positive, g, 1.0)
        scale = np.where(positive, t / g_safe, math.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = (c[..., 0, 0] / g_safe**2 + c[..., 1, 1] / np.square(t)
                        - 2 * c[..., 0, 1] / (g_safe * t))
            scales.append(scale)
            errors.append(np.where(positive, np.abs(scale) * np.sqrt(np.maximum(relative, 0)),
                                   math.nan))
            resolved.append(positive & (g > 2 * np.sqrt(np.maximum(c[..., 0, 0], 0))))
    return NoiseScaleCurves(g2s, traces, scales, errors, resolved)


def probe_indices(seed: int, epoch: int, num_train: int, count: int) -> np.ndarray:
    """The training examples of the probe after `epoch` for lanes of `seed`: `count`
    distinct indices, a pure function of (seed, epoch), so a resumed run probes the same."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    return rng.choice(num_train, size=count, replace=False)


class NoisePoint(NamedTuple):
    """B_simple after one epoch at one (m, η̃), averaged over seeds: its standard error (NaN:
    not known, e.g. a curves.csv from before it was measured) and whether every seed's
    |G|² was resolved (noise_scale_curves)."""

    epoch: int
    scale: float
    se: float = math.nan
    resolved: bool = False

    @property
    def usable(self) -> bool:
        """A measurement to report: finite, and resolved where that is known."""
        return not math.isnan(self.scale) and (self.resolved or math.isnan(self.se))


def curves_at(curves: list[dict], base_lr: float) -> list[NoisePoint]:
    """B_simple per epoch of one m's curves.csv rows at η̃ = `base_lr`, the mean over seeds
    (NaN where a seed's is NaN or none was measured) with the standard error of that mean."""
    by_epoch: dict[int, list[tuple[float, float, bool]]] = {}
    for row in curves:
        if float(row["base_lr"]) == base_lr:
            by_epoch.setdefault(int(row["epoch"]), []).append((
                float(row.get("noise_scale") or math.nan),
                float(row.get("noise_scale_se") or math.nan),
                str(row.get("noise_scale_resolved")) == "True"))
    points = []
    for epoch, seeds in sorted(by_epoch.items()):
        scales, errors, resolved = zip(*seeds)
        points.append(NoisePoint(epoch, float(np.mean(scales)),
                                 float(np.sqrt(np.sum(np.square(errors)))) / len(seeds),
                                 all(resolved)))
    return points


def probed(curves: list[dict], base_lr: float) -> bool:
    """Whether the probe ran at η̃ = `base_lr` in one m's curves.csv rows (a finite
    |G_small|² in some epoch), whatever B_simple came out."""
    return any(float(row["base_lr"]) == base_lr
               and math.isfinite(float(row.get("grad_sq_small") or math.nan)) for row in curves)


def final_scale(curve: list[NoisePoint], last: int = 3) -> tuple[float, float]:
    """(the median B_simple over the last `last` epochs' usable points of a curve, the median
    of their standard errors); NaN if none: not measured, or lost in its own noise."""
    usable = [p for p in curve[-last:] if p.usable]
    if not usable:
        return math.nan, math.nan
    return (float(np.median([p.scale for p in usable])),
            float(np.median([p.se for p in usable])))
