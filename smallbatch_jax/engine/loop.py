"""The epoch loop: train every lane an epoch at a time, evaluate after each, keep the history.

`fit` starts from a state at any epoch boundary (a fresh one, or one restored from a
checkpoint) and calls `on_epoch_end(epoch, history, state)` after each epoch: the hook for
progress lines, checkpoints and per-epoch files. With `evals_per_epoch` > 1 it also
evaluates inside each epoch (plan.evaluation_points), kept apart from the per-epoch
measurements that the paper's metric and the figures read.
"""

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from smallbatch_jax.engine.lanes import LaneHparams
from smallbatch_jax.engine.state import TrainState
from smallbatch_jax.engine.step import LOSS_LIMIT_MULTIPLE
from smallbatch_jax.engine.trainer import LaneTrainer


@dataclasses.dataclass
class History:
    """Per-epoch measurements, each a list of (K,) arrays. NaN once a lane has diverged."""

    epoch: list[int] = dataclasses.field(default_factory=list)
    train_loss: list[np.ndarray] = dataclasses.field(default_factory=list)
    test_loss: list[np.ndarray] = dataclasses.field(default_factory=list)
    test_metric: list[np.ndarray] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)
    # The noise-scale probe's mean |G_small|² and |G_big|² (noise_scale.py); empty without.
    grad_sq_small: list[np.ndarray] = dataclasses.field(default_factory=list)
    grad_sq_big: list[np.ndarray] = dataclasses.field(default_factory=list)
    # ... and with each group of the probe's batches left out, (K, k, 2): its error.
    grad_sq_left_out: list[np.ndarray] = dataclasses.field(default_factory=list)
    # Evaluations inside epochs (fit's evals_per_epoch > 1): the step after which each was
    # made, and every lane's test metric and loss there; empty without.
    within_step: list[int] = dataclasses.field(default_factory=list)
    within_test_metric: list[np.ndarray] = dataclasses.field(default_factory=list)
    within_test_loss: list[np.ndarray] = dataclasses.field(default_factory=list)

    ARRAYS = ("train_loss", "test_loss", "test_metric", "grad_sq_small", "grad_sq_big",
              "grad_sq_left_out",
              "within_test_metric", "within_test_loss")

    def to_dict(self) -> dict:
        """JSON-able (a checkpoint's progress); `from_dict` gives back an equal History (every
        value is float64, whose repr JSON keeps exactly; NaN is written as NaN)."""
        return {"epoch": list(self.epoch), "seconds": list(self.seconds),
                "within_step": list(self.within_step),
                **{name: [np.asarray(v, np.float64).tolist() for v in getattr(self, name)]
                   for name in self.ARRAYS}}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        if "test_accuracy" in d:  # a checkpoint from before the metric was configurable
            d = {**d, "test_metric": d["test_accuracy"]}
        # From before the noise probe, or before evaluations inside epochs:
        d = {"grad_sq_small": [], "grad_sq_big": [], "grad_sq_left_out": [], "within_step": [],
             "within_test_metric": [], "within_test_loss": [], **d}
        return cls(epoch=[int(e) for e in d["epoch"]], seconds=[float(s) for s in d["seconds"]],
                   within_step=[int(s) for s in d["within_step"]],
                   **{name: [np.asarray(v, np.float64) for v in d[name]] for name in cls.ARRAYS})


def fit(trainer: LaneTrainer, state: TrainState, hparams: LaneHparams, source,
        seeds: Sequence[int], epochs: int,
        on_epoch_end: Callable[[int, History, TrainState], None] | None = None,
        history: History | None = None, probe=None, evals_per_epoch: int = 1,
        loss_limit_multiple: float = LOSS_LIMIT_MULTIPLE) -> tuple[TrainState, History]:
    """Trains from `state` (at any epoch boundary) to `epochs`, evaluating after each epoch
    (and `evals_per_epoch` − 1 times inside it), and probing the gradient noise after each
    epoch with `probe` (a noise_scale.NoiseProbe; None: not, nor on a streamed source).
    `history`: the epochs before `state` (a resumed run's), continued; default: a new
    history of the epochs from `state` on.

    A lane's measurements are NaN from the epoch in which it diverged on: its frozen weights
    are not a trained model. With a donating plan, `state` is used up: keep the returned one.
    """
    seeds = jnp.asarray(seeds, jnp.int32)
    total_steps = epochs * source.steps_per_epoch
    if history is None:  # the epochs from `state` on only
        history = History()
    elif len(history.epoch) != int(state.epoch):
        raise ValueError(f"a history of {len(history.epoch)} epochs cannot continue from a "
                         f"state at epoch {int(state.epoch)}")
    if int(state.step) == 0 and math.isfinite(loss_limit_multiple):
        state = trainer.with_loss_limits(state, source, loss_limit_multiple)
    for epoch in range(int(state.epoch), epochs):
        start = time.perf_counter()
        state, train_loss, within = trainer.train_epoch(state, hparams, source, seeds,
                                                        total_steps, evals_per_epoch)
        for step, metric, loss in within:
            history.within_step.append(step)
            history.within_test_metric.append(metric)
            history.within_test_loss.append(loss)
        test_metric, test_loss = trainer.evaluate(state.lanes, source)  # objectives.py
        diverged = np.asarray(state.lanes.diverged)
        history.epoch.append(epoch + 1)
        history.train_loss.append(np.where(diverged, np.nan, train_loss))
        history.test_loss.append(np.where(diverged, np.nan, test_loss))
        history.test_metric.append(np.where(diverged, np.nan, test_metric))
        probe_batch = None if probe is None else source.probe_batch(seeds, epoch, probe)
        if probe_batch is not None:
            small, big, left_out = trainer.gradient_moments(state.lanes, hparams, probe_batch)
            history.grad_sq_small.append(np.where(diverged, np.nan, small))
            history.grad_sq_big.append(np.where(diverged, np.nan, big))
            history.grad_sq_left_out.append(np.where(diverged[:, None, None], np.nan, left_out))
        history.seconds.append(time.perf_counter() - start)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history, state)
    return state, history
