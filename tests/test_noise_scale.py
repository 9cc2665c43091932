"""The gradient noise scale: the estimator, and the probe on a problem whose gradient
covariance is known in closed form."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from smallbatch_jax import noise_scale
from smallbatch_jax.engine.state import LaneState
from smallbatch_jax.engine.step import LaneStep
from smallbatch_jax.noise_scale import NoiseProbe
from smallbatch_jax.objectives import REGRESSION


def test_the_two_batch_estimates_are_unbiased():
    # Per-example gradients G + ε with a known covariance: the estimates, averaged over many
    # draws, recover |G|² and tr Σ.
    rng = np.random.default_rng(0)
    d, b_small, num_batches, draws = 6, 4, 8, 4000
    g_true = rng.normal(size=d)
    scales = np.linspace(0.5, 3.0, d)  # Σ = diag(scales²)
    examples = g_true + scales * rng.normal(size=(draws, num_batches, b_small, d))
    batch_means = examples.mean(axis=2)  # (draws, n, d)
    small = np.mean(np.sum(batch_means**2, axis=-1), axis=1)
    big = np.sum(batch_means.mean(axis=1) ** 2, axis=-1)
    g2, trace = noise_scale.unbiased(small, big, b_small, b_small * num_batches)
    assert abs(g2.mean() / np.sum(g_true**2) - 1) < 0.03
    assert abs(trace.mean() / np.sum(scales**2) - 1) < 0.03


class _Linear(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dense(1, use_bias=False)(x)[..., 0]


def test_the_probe_measures_the_noise_scale_of_linear_regression():
    # x ~ N(0, I_d), y = w*·x + σ·z, squared error at weights w = w* + δ: the per-example
    # gradient 2((δ·x) − σz)x has mean 2δ and covariance 4[(|δ|² + σ²) I + δδᵀ], so
    # B_simple = tr Σ / |G|² = (d(|δ|² + σ²) + |δ|²) / |δ|² (the factor 4 cancels).
    d, sigma, delta = 10, 1.0, 1.0 / math.sqrt(10) * np.ones(10)  # |δ|² = 1
    expected = (d * (1.0 + sigma**2) + 1.0) / 1.0
    step = LaneStep(_Linear(1), batch_size=32, image_shape=(d,), objective=REGRESSION)
    w_star = np.linspace(-1, 1, d)
    params = {"Dense_0": {"kernel": jnp.asarray(w_star + delta)[:, None]}}
    lane = LaneState(params=params, batch_stats={}, opt_state=(), diverged=jnp.zeros((), bool),
                     diverged_step=jnp.zeros((), jnp.int32), loss_limit=jnp.inf)
    probe = NoiseProbe(batch_size=16, num_batches=8)
    repeats = 500

    def one_probe(key):
        kx, kz = jax.random.split(key)
        x = jax.random.normal(kx, (probe.num_batches, probe.batch_size, d))
        y = x @ jnp.asarray(w_star) + sigma * jax.random.normal(kz, x.shape[:2])
        return step.gradient_moments(lane, x, y)

    small, big, left_out = jax.jit(jax.vmap(one_probe))(
        jax.random.split(jax.random.key(0), repeats))
    g2, trace = noise_scale.unbiased(np.mean(small), np.mean(big), probe.batch_size,
                                     probe.big_batch)
    assert abs(trace / g2 / expected - 1) < 0.1
    # One probe's estimate, smoothed over "epochs" of fresh probes, lands near it too.
    curves = noise_scale.noise_scale_curves(list(np.asarray(small)[:, None]),
                                            list(np.asarray(big)[:, None]),
                                            NoiseProbe(16, 8, decay=0.98),
                                            list(np.asarray(left_out)[:, None]))
    assert abs(float(curves.scale[-1][0]) / expected - 1) < 0.5
    # The error it reports is the error it makes: over the repeats, the spread of one
    # probe's (|G|², tr Σ) matches the jackknife's standard errors (a factor of 1.5 either
    # way: the jackknife over 4 groups is itself a rough estimate, averaged here).
    single = np.stack(noise_scale.unbiased(small, big, probe.batch_size, probe.big_batch), 1)
    covariance = noise_scale.jackknife_covariance(np.asarray(left_out), probe)  # (repeats, 2, 2)
    for i in range(2):
        ratio = np.sqrt(np.mean(covariance[:, i, i])) / np.std(single[:, i])
        assert 1 / 1.5 < ratio < 1.5, (i, ratio)
    # The smoothed estimate's standard error shrinks as fresh probes average in, and the
    # scale's truth lies within a few of them.
    se = np.array([float(e[0]) for e in curves.scale_se])
    assert se[-1] < se[0] and abs(float(curves.scale[-1][0]) - expected) < 4 * se[-1]
    assert bool(curves.resolved[-1][0])


def test_the_leave_one_group_out_sums_are_those_of_the_batches_left():
    """LaneStep.gradient_moments' (k, 2): with batch i in group i mod k left out, the mean
    |G_i|² and |Ḡ|² of the batches that remain, computed here from the gradients one by one
    (7 batches: groups of 2, 2, 2 and 1)."""
    d, n, b = 5, 7, 4
    step = LaneStep(_Linear(1), batch_size=b, image_shape=(d,), objective=REGRESSION)
    params = {"Dense_0": {"kernel": jnp.linspace(-1, 1, d)[:, None]}}
    lane = LaneState(params=params, batch_stats={}, opt_state=(), diverged=jnp.zeros((), bool),
                     diverged_step=jnp.zeros((), jnp.int32), loss_limit=jnp.inf)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, b, d)).astype(np.float32)
    y = rng.normal(size=(n, b)).astype(np.float32)
    small, big, left_out = step.gradient_moments(lane, x, y)
    grads = np.stack([np.asarray(step.probe_gradient(lane, x[i], y[i])["Dense_0"]["kernel"])
                      .ravel() for i in range(n)])
    np.testing.assert_allclose(small, np.mean(np.sum(grads**2, 1)), rtol=1e-5)
    np.testing.assert_allclose(big, np.sum(grads.mean(0) ** 2), rtol=1e-5)
    assert noise_scale.group_sizes(n) == (2, 2, 2, 1) and left_out.shape == (4, 2)
    for g in range(4):
        kept = grads[np.arange(n) % 4 != g]
        np.testing.assert_allclose(left_out[g], [np.mean(np.sum(kept**2, 1)),
                                                 np.sum(kept.mean(0) ** 2)], rtol=1e-4)
    _, _, too_few = step.gradient_moments(lane, x[:2], y[:2])  # 2 batches: none to leave out
    assert np.isnan(too_few).all()


def test_an_estimate_lost_in_its_noise_is_not_resolved():
    """|G|² smaller than two of its standard errors: B_simple could be anything above; it is
    reported with its error but marked unresolved, and final_scale does not use it."""
    probe = NoiseProbe(batch_size=4, num_batches=8)
    b_small, b_big = probe.batch_size, probe.big_batch
    # Leave-one-out values that scatter: a spread of |G|² estimates around 0.05 ± ~0.5.
    rng = np.random.default_rng(0)
    left = np.stack([1.0 + 0.05 * rng.normal(size=4), 0.3 + 0.1 * rng.normal(size=4)], 1)
    curves = noise_scale.noise_scale_curves([np.array([1.0])], [np.array([0.3])], probe,
                                            [left[None]])
    g2 = noise_scale.unbiased(1.0, 0.3, b_small, b_big)[0]
    assert 0 < float(curves.g2[0][0]) == g2
    assert not bool(curves.resolved[0][0]) and float(curves.scale_se[0][0]) > 0
    from smallbatch_jax.noise_scale import NoisePoint, final_scale

    point = NoisePoint(1, float(curves.scale[0][0]), float(curves.scale_se[0][0]), False)
    assert math.isnan(final_scale([point])[0])
    assert final_scale([point._replace(resolved=True)])[0] == point.scale


def test_a_gradient_lost_in_the_noise_gives_no_scale_and_nan_stays_nan():
    probe = NoiseProbe(batch_size=4, num_batches=2)
    # |G_big|² below |G_small|²·(B_small/B_big): the |G|² estimate is negative.
    g2s, traces, scales, _, _ = noise_scale.noise_scale_curves(
        [np.array([1.0, 1.0, math.nan])], [np.array([0.2, 0.9, math.nan])], probe)
    assert g2s[0][0] < 0 and math.isnan(scales[0][0])
    assert scales[0][1] > 0 and math.isnan(scales[0][2])


def test_the_probe_fits_its_share_of_an_epoch():
    section = dict(batch_size=32, num_batches=8, max_fraction=0.05, decay=0.5)
    assert NoiseProbe.for_data(50_000, **section) == NoiseProbe(32, 8, 0.5)
    assert NoiseProbe.for_data(5_085, **section).num_batches == 7  # 254 of 5,085 examples
    # 71 of the 1,437 digits: 2 batches of 32 would leave no error; 4 batches of 17 do.
    assert NoiseProbe.for_data(1_437, **section) == NoiseProbe(17, 4, 0.5)
    assert NoiseProbe.for_data(300, **section) is None  # 15 examples: not 4 batches of 4
    # Ghost BN's groups of m_BN must divide a probe batch (of 32 where they fit, else smaller).
    assert NoiseProbe.for_data(1_437, **section, multiple_of=4) == NoiseProbe(16, 4, 0.5)
    assert NoiseProbe.for_data(50_000, **section, multiple_of=64) == NoiseProbe(64, 8, 0.5)
    assert NoiseProbe.for_data(1_437, **section, multiple_of=32) is None  # 71: not 4 × 32
    section["num_batches"] = 0
    assert NoiseProbe.for_data(50_000, **section) is None


def test_probe_examples_are_distinct_and_a_function_of_seed_and_epoch():
    a = noise_scale.probe_indices(0, 3, 1000, 64)
    assert len(set(a)) == 64 and np.array_equal(a, noise_scale.probe_indices(0, 3, 1000, 64))
    assert not np.array_equal(a, noise_scale.probe_indices(0, 4, 1000, 64))
    assert not np.array_equal(a, noise_scale.probe_indices(1, 3, 1000, 64))


def test_probed_is_whether_the_probe_ran_at_that_lr_whatever_it_estimated():
    from smallbatch_jax.noise_scale import probed

    rows = [{"base_lr": "0.5", "grad_sq_small": "2.0", "noise_scale": "nan"},
            {"base_lr": "0.25", "grad_sq_small": "nan", "noise_scale": "nan"}]
    assert probed(rows, 0.5) and not probed(rows, 0.25) and not probed(rows, 1.0)
