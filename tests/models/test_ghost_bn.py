import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from smallbatch_jax.models.ghost_bn import GhostBatchNorm


def _inputs(shape, seed=0):
    return 3.0 * jax.random.normal(jax.random.key(seed), shape) + 1.5


def _flax_bn():
    return nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-5,
                        use_fast_variance=False)


@pytest.mark.parametrize("shape", [(8, 4, 4, 3), (12, 5)])
def test_one_group_is_plain_batch_norm(shape):
    x = _inputs(shape)
    ghost = GhostBatchNorm(group_size=None, use_running_average=False)
    variables = ghost.init(jax.random.key(1), x)
    ours, ours_stats = ghost.apply(variables, x, mutable=["batch_stats"])
    plain = _flax_bn()
    theirs, theirs_stats = plain.apply(plain.init(jax.random.key(1), x), x, mutable=["batch_stats"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    for key in ("mean", "var"):
        np.testing.assert_allclose(ours_stats["batch_stats"][key], theirs_stats["batch_stats"][key],
                                   rtol=1e-5, atol=1e-6)
    # group_size equal to the batch is the same as None.
    full = GhostBatchNorm(group_size=shape[0], use_running_average=False)
    np.testing.assert_array_equal(full.apply(variables, x, mutable=["batch_stats"])[0], ours)


@pytest.mark.parametrize("shape,group", [((12, 4, 4, 3), 4), ((12, 5), 3), ((8, 2, 2, 6), 2)])
def test_groups_are_batch_norm_per_chunk(shape, group):
    x = _inputs(shape, seed=2)
    ghost = GhostBatchNorm(group_size=group, use_running_average=False)
    variables = ghost.init(jax.random.key(1), x)
    # Non-trivial affine parameters, so scale and bias are checked too.
    variables = {"params": {"scale": jnp.linspace(0.5, 2.0, shape[-1]),
                            "bias": jnp.linspace(-1.0, 1.0, shape[-1])},
                 "batch_stats": variables["batch_stats"]}
    ours, ours_stats = ghost.apply(variables, x, mutable=["batch_stats"])

    plain = _flax_bn()
    chunks, chunk_stats = [], []
    for chunk in jnp.split(x, shape[0] // group):
        out, stats = plain.apply(variables, chunk, mutable=["batch_stats"])
        chunks.append(out)
        chunk_stats.append(stats["batch_stats"])
    np.testing.assert_allclose(ours, jnp.concatenate(chunks), rtol=1e-5, atol=1e-5)
    # Running statistics: updated with the mean over groups of the group statistics, i.e.
    # the average of what each chunk's own BatchNorm update would give.
    for key in ("mean", "var"):
        expected = np.mean([s[key] for s in chunk_stats], axis=0)
        np.testing.assert_allclose(ours_stats["batch_stats"][key], expected, rtol=1e-5, atol=1e-6)
    # And different from plain BN over the whole batch.
    whole = GhostBatchNorm(group_size=None, use_running_average=False)
    assert not np.allclose(whole.apply(variables, x, mutable=["batch_stats"])[0], ours, atol=1e-3)


def test_evaluation_uses_running_averages():
    x = _inputs((6, 3))
    variables = GhostBatchNorm(2, use_running_average=True).init(jax.random.key(0), x)
    variables["batch_stats"] = {"mean": jnp.array([1.0, 2.0, 3.0]), "var": jnp.array([4.0, 1.0, 0.25])}
    y = GhostBatchNorm(2, use_running_average=True).apply(variables, x)
    expected = (x - variables["batch_stats"]["mean"]) / np.sqrt(variables["batch_stats"]["var"] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5)
    # Any batch size works at evaluation, also one that group_size does not divide.
    assert GhostBatchNorm(4, use_running_average=True).apply(variables, x).shape == (6, 3)


def test_batch_not_a_multiple_of_the_group_raises():
    x = _inputs((6, 3))
    ghost = GhostBatchNorm(4, use_running_average=False)
    with pytest.raises(ValueError, match="not a multiple of group_size=4"):
        ghost.init(jax.random.key(0), x)


def test_bfloat16_inputs_are_normalized_in_float32():
    """bfloat16 inputs (config.precision 'bf16'): the output is bfloat16, the statistics are
    those of the float32 computation on the same (rounded) inputs, the running averages
    stay float32, in training and in evaluation."""
    x = _inputs((12, 4, 4, 3)).astype(jnp.bfloat16)
    ghost = GhostBatchNorm(group_size=4, use_running_average=False)
    variables = ghost.init(jax.random.key(1), x)
    y, stats = ghost.apply(variables, x, mutable=["batch_stats"])
    y32, stats32 = ghost.apply(variables, x.astype(jnp.float32), mutable=["batch_stats"])
    assert y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(y, y32.astype(jnp.bfloat16))
    for key in ("mean", "var"):
        assert stats["batch_stats"][key].dtype == jnp.float32
        np.testing.assert_array_equal(stats["batch_stats"][key], stats32["batch_stats"][key])
    evaluating = GhostBatchNorm(group_size=4, use_running_average=True)
    assert evaluating.apply({**variables, **stats}, x).dtype == jnp.bfloat16
