"""One lane's math (engine/step.py): when a lane counts as diverged, and the test metric of
standardized targets in the targets' own units."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.step import LaneStep
from smallbatch_jax.objectives import REGRESSION


class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(1)(x)


def _lane(step, limit=np.inf):
    hp = jax.tree.map(lambda x: x[0], LaneGrid((0,), (2.0**-4,), 0.0, 0.0, 0.0).hparams())
    lane = step.init_lane(step.init_variables(jax.random.key(0)), hp)
    return lane.replace(loss_limit=jnp.float32(limit)), hp


def _batch(scale):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype(np.float32)
    return x, (scale * rng.normal(size=8)).astype(np.float32)


def test_a_finite_loss_above_the_lanes_limit_freezes_it_like_a_non_finite_one():
    """A regression lane at a loss of 1e8 has blown up whether or not it has overflowed yet:
    above its limit the step is not applied and the lane is marked diverged at that step."""
    step = LaneStep(Linear(), batch_size=8, image_shape=(3,), objective=REGRESSION)
    images, targets = _batch(scale=1e4)  # a finite loss of order 1e8
    for limit, frozen in ((np.inf, False), (1e3, True)):
        lane, hp = _lane(step, limit)
        after, loss = step.train_step(lane, hp, images, targets, 0, 5, 100)
        assert np.isfinite(loss) and float(loss) > 1e6
        assert bool(after.diverged) == frozen
        assert int(after.diverged_step) == (5 if frozen else -1)
        changed = not np.array_equal(after.params["Dense_0"]["kernel"],
                                     lane.params["Dense_0"]["kernel"])
        assert changed == (not frozen)
        assert float(after.loss_limit) == limit  # carried unchanged


def test_the_metric_of_standardized_targets_is_in_the_targets_units():
    """The model learns (y − μ)/σ; its test metric maps outputs and labels back: the squared
    error of μ + σ·output against y, not of the standardized values (σ² times smaller)."""
    step = LaneStep(Linear(), batch_size=8, image_shape=(3,), objective=REGRESSION)
    lane, _ = _lane(step)
    images, _ = _batch(scale=1.0)
    outputs = np.asarray(step.apply(lane.params, {}, images, train=False)[0])[:, 0]
    mean, std = np.float32(152.0), np.float32(77.0)
    targets = np.linspace(25, 346, 8).astype(np.float32)  # in the data's units
    scaled = (targets - mean) / std
    mask = np.ones(8, bool)
    metric, loss = step.evaluate(lane, images, scaled, mask, mean, std)
    np.testing.assert_allclose(float(metric), np.sum((outputs * std + mean - targets) ** 2),
                               rtol=1e-4)
    np.testing.assert_allclose(float(loss), np.sum((outputs - scaled) ** 2), rtol=1e-4)
    plain_metric, _ = step.evaluate(lane, images, scaled, mask)  # classes, or unscaled
    np.testing.assert_allclose(float(plain_metric), float(loss), rtol=1e-6)
