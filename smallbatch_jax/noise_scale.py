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
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class NoiseProbe:
    batch_size: int = 32  # B_small
    num_batches: int = 8  # B_big = batch_size · num_batches
    decay: float = 0.5  # of the moving averages, per epoch (0: no smoothing)

    @property
    def big_batch(self) -> int:
        return self.batch_size * self.num_batches

    @classmethod
    def from_config(cls, section, num_train: int) -> "NoiseProbe | None":
        """The probe of config.noise_scale for a data set of `num_train` examples: as many
        batches as `max_fraction` of an epoch allows, at most `num_batches`; None when off
        (num_batches 0) or when fewer than 2 batches would fit."""
        if not section.num_batches:
            return None
        fit = int(section.max_fraction * num_train) // section.batch_size
        num_batches = min(section.num_batches, fit)
        if num_batches < 2:
            return None
        return cls(section.batch_size, num_batches, section.decay)


def unbiased(g2_small, g2_big, b_small: int, b_big: int):
    """(|G|², tr Σ) from the mean squared gradient norms at two batch sizes (arrays: per
    lane)."""
    g2_small, g2_big = np.asarray(g2_small, np.float64), np.asarray(g2_big, np.float64)
    g2 = (b_big * g2_big - b_small * g2_small) / (b_big - b_small)
    trace = (g2_small - g2_big) / (1.0 / b_small - 1.0 / b_big)
    return g2, trace


def moving_average(values: list[np.ndarray], decay: float) -> list[np.ndarray]:
    """The exponential moving average after each entry (the first: itself), bias-free;
    NaN stays NaN (a diverged lane)."""
    averaged, current = [], None
    for value in values:
        value = np.asarray(value, np.float64)
        current = value if current is None else decay * current + (1 - decay) * value
        averaged.append(current)
    return averaged


def noise_scale_curves(g2_small: list[np.ndarray], g2_big: list[np.ndarray],
                       probe: NoiseProbe) -> tuple[list, list, list]:
    """Per epoch and lane: the smoothed |G|², the smoothed tr Σ and B_simple = tr Σ / |G|²
    (NaN where the smoothed |G|² is not positive: the gradient is lost in the noise)."""
    g2s, traces = zip(*(unbiased(s, b, probe.batch_size, probe.big_batch)
                        for s, b in zip(g2_small, g2_big))) if g2_small else ((), ())
    g2s, traces = moving_average(list(g2s), probe.decay), moving_average(list(traces),
                                                                         probe.decay)
    scales = [np.where(g > 0, t / np.where(g > 0, g, 1.0), math.nan) for g, t in zip(g2s, traces)]
    return g2s, traces, scales


def probe_indices(seed: int, epoch: int, num_train: int, count: int) -> np.ndarray:
    """The training examples of the probe after `epoch` for lanes of `seed`: `count`
    distinct indices, a pure function of (seed, epoch), so a resumed run probes the same."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    return rng.choice(num_train, size=count, replace=False)


def curves_at(curves: list[dict], base_lr: float) -> list[tuple[int, float]]:
    """[(epoch, B_simple averaged over seeds)] of one m's curves.csv rows at η̃ = `base_lr`
    (NaN where a seed's is NaN or none was measured)."""
    by_epoch: dict[int, list[float]] = {}
    for row in curves:
        if float(row["base_lr"]) == base_lr:
            by_epoch.setdefault(int(row["epoch"]), []).append(
                float(row.get("noise_scale") or math.nan))
    return [(epoch, float(np.mean(values))) for epoch, values in sorted(by_epoch.items())]


def probed(curves: list[dict], base_lr: float) -> bool:
    """Whether the probe ran at η̃ = `base_lr` in one m's curves.csv rows (a finite
    |G_small|² in some epoch), whatever B_simple came out."""
    return any(float(row["base_lr"]) == base_lr
               and math.isfinite(float(row.get("grad_sq_small") or math.nan)) for row in curves)


def final_scale(curve: list[tuple[int, float]], last: int = 3) -> float:
    """The median of the last `last` epochs' finite B_simple of a curve (NaN if none)."""
    values = [v for _, v in curve[-last:] if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan
