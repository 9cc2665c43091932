"""One lane's math (engine/step.py): when a lane counts as diverged, the test metric of
standardized targets in the targets' own units, and bfloat16 compute with float32 state."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


class DenseBN(nn.Module):
    """A user's model with Flax's own BatchNorm (running statistics in 'batch_stats')."""

    @nn.compact
    def __call__(self, x, train):
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Dense(16)(x)))
        return nn.Dense(4)(x)


def _dtypes(tree):
    return {str(x.dtype) for x in jax.tree.leaves(tree)}


def test_bfloat16_compute_keeps_parameters_statistics_and_optimizer_in_float32():
    """compute_dtype='bfloat16' (precision 'bf16'): the model computes in bfloat16 (its
    matrix products take bfloat16 operands), while the parameters, gradients, optimizer state
    and BatchNorm statistics stay float32 and the outputs come back as float32; the loss and
    the probe's gradient are close to float32's, not equal."""
    f32 = LaneStep(DenseBN(), batch_size=32, image_shape=(8,))
    bf16 = LaneStep(DenseBN(), batch_size=32, image_shape=(8,), compute_dtype="bfloat16")
    lane, hp = _lane(f32)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(32, 8)).astype(np.float32)
    labels = rng.integers(0, 4, 32)

    results = {}
    for name, step in (("f32", f32), ("bf16", bf16)):
        after, loss = jax.jit(step.train_step, static_argnums=6)(lane, hp, images, labels, 0,
                                                                 0, 100)
        outputs, stats = step.apply(after.params, after.batch_stats, images, train=False)
        grads = step.probe_gradient(lane, images, labels)
        results[name] = after, float(loss), grads, outputs
        assert _dtypes((after.params, after.batch_stats, grads, outputs)) == {"float32"}
        assert _dtypes(after.opt_state) <= {"float32", "int32"}
        assert stats is after.batch_stats  # evaluation leaves the statistics as they are
        assert not bool(after.diverged)
        assert not np.array_equal(after.batch_stats["BatchNorm_0"]["mean"],
                                  lane.batch_stats["BatchNorm_0"]["mean"])
        jaxpr = str(jax.make_jaxpr(step.train_step, static_argnums=6)(
            lane, hp, images, labels, 0, 0, 100))
        products = [line for line in jaxpr.splitlines() if "dot_general" in line]
        assert products and all(("bf16[" in line) == (name == "bf16") for line in products)

    (f_after, f_loss, f_grads, f_out), (b_after, b_loss, b_grads, b_out) = results.values()
    # bfloat16 keeps 8 significant bits (relative rounding 2⁻⁹ ≈ 0.2%): here the loss
    # differs by 0.03% and the gradient by 0.5% (measured); bounds 15× and 4× above that.
    assert b_loss != f_loss and abs(b_loss - f_loss) < 0.005 * f_loss
    flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
    error = np.linalg.norm(flat(b_grads) - flat(f_grads)) / np.linalg.norm(flat(f_grads))
    assert 0 < error < 0.02
    # The running statistics were updated from the same batch statistics up to rounding.
    np.testing.assert_allclose(flat(b_after.batch_stats), flat(f_after.batch_stats),
                               rtol=1e-2, atol=2e-4)
    assert not np.array_equal(np.asarray(b_out), np.asarray(f_out))


def test_an_unknown_compute_dtype_is_refused():
    with pytest.raises(ValueError, match="compute_dtype='float16'.*bfloat16"):
        LaneStep(Linear(), batch_size=8, image_shape=(3,), compute_dtype="float16")


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_one_non_finite_gradient_element_makes_the_divergence_test_fail(bad):
    """The gradients' test is Σg (step.sum_of_elements): any non-finite element must make it
    non-finite, also beside an element of the opposite infinity or huge finite ones."""
    from smallbatch_jax.engine.step import sum_of_elements

    healthy = {"a": np.ones((3, 4), np.float32), "b": np.full(5, -2.0, np.float32)}
    assert np.isfinite(sum_of_elements(healthy))
    for a, b in ((bad, 0.0), (bad, -np.inf), (bad, 3e38)):
        tree = {"a": np.ones((3, 4), np.float32), "b": np.full(5, -2.0, np.float32)}
        tree["a"][1, 2], tree["b"][4] = bad, b
        assert not np.isfinite(sum_of_elements(tree)), (a, b)
    under_vmap = jax.vmap(sum_of_elements)({"w": np.stack([healthy["a"], healthy["a"] * bad])})
    assert np.isfinite(under_vmap[0]) and not np.isfinite(under_vmap[1])
