import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from smallbatch_jax.optim import WARMUP_START_FACTOR, is_kernel, lr_multiplier, paper_sgd


def _problem(m=6, seed=0):
    """A linear softmax classifier: params with a kernel and a bias, m examples."""
    k1, k2, k3, k4 = jax.random.split(jax.random.key(seed), 4)
    params = {"dense": {"kernel": jax.random.normal(k1, (5, 3)), "bias": jax.random.normal(k2, (3,))}}
    x = jax.random.normal(k3, (m, 5))
    y = jax.random.randint(k4, (m,), 0, 3)

    def per_example_losses(p):
        logits = x @ p["dense"]["kernel"] + p["dense"]["bias"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, y)

    return params, per_example_losses


def test_update_is_the_papers_sum_form():
    """θ − η̃ Σᵢ ∇Lᵢ (plus L2 on kernels) equals the transformation applied to the mean loss."""
    m, base_lr, wd = 6, 0.05, 1e-2
    params, losses = _problem(m)
    tx = paper_sgd(base_lr, m, total_steps=100, weight_decay=wd)
    state = tx.init(params)
    mean_grads = jax.grad(lambda p: losses(p).mean())(params)
    updates, _ = tx.update(mean_grads, state, params)
    ours = optax.apply_updates(params, updates)

    # The paper's eq. 5 with the L2 term (λ/2)‖w‖² added to each per-example loss.
    def sum_form_loss(p):
        l2 = 0.5 * wd * jnp.sum(p["dense"]["kernel"] ** 2)
        return jnp.sum(losses(p) + l2)

    sum_grads = jax.grad(sum_form_loss)(params)
    expected = jax.tree.map(lambda p, g: p - base_lr * g, params, sum_grads)
    np.testing.assert_allclose(ours["dense"]["kernel"], expected["dense"]["kernel"], rtol=1e-6)
    np.testing.assert_allclose(ours["dense"]["bias"], expected["dense"]["bias"], rtol=1e-6)


def test_weight_decay_covers_kernels_only():
    params, _ = _problem()
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = paper_sgd(0.1, 4, total_steps=10, weight_decay=0.5)
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["dense"]["kernel"], -4 * 0.1 * 0.5 * params["dense"]["kernel"],
                               rtol=1e-6)
    np.testing.assert_array_equal(updates["dense"]["bias"], 0.0)
    assert is_kernel(params) == {"dense": {"kernel": True, "bias": False}}


def test_momentum_is_heavy_ball():
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.full(3, 2.0)}
    tx = paper_sgd(0.5, 2, total_steps=100, momentum=0.9)
    state = tx.init(params)
    u1, state = tx.update(grads, state, params)
    u2, state = tx.update(grads, state, params)
    np.testing.assert_allclose(u1["w"], -1.0 * 2.0)  # η = m·η̃ = 1, v = g
    np.testing.assert_allclose(u2["w"], -1.0 * (0.9 * 2.0 + 2.0))


@pytest.mark.parametrize("total", [100, 101, 7])
def test_step_decay_boundaries(total):
    first, second = int(np.floor(0.5 * total)), int(np.floor(0.75 * total))
    value = lambda step: float(lr_multiplier(step, total))
    assert value(0) == 1.0
    assert value(first - 1) == 1.0
    assert value(first) == pytest.approx(0.1)
    assert value(second - 1) == pytest.approx(0.1)
    assert value(second) == pytest.approx(0.01)
    assert value(total - 1) == pytest.approx(0.01)


def test_warmup_boundaries():
    total, fraction = 200, 0.05  # 10 warm-up steps
    value = lambda step: float(lr_multiplier(step, total, fraction))
    assert value(0) == pytest.approx(WARMUP_START_FACTOR) == pytest.approx(1 / 32)
    assert value(5) == pytest.approx(1 / 32 + (1 - 1 / 32) * 0.5)
    assert value(9) == pytest.approx(1 / 32 + (1 - 1 / 32) * 0.9)
    assert value(10) == 1.0
    assert value(99) == 1.0 and value(100) == pytest.approx(0.1)
    # No warm-up: the plain schedule from step 0.
    assert float(lr_multiplier(0, total, 0.0)) == 1.0


def test_schedule_drives_the_update():
    params = {"w": jnp.zeros(2)}
    grads = {"w": jnp.ones(2)}
    tx = paper_sgd(1.0, 1, total_steps=4)  # decays at steps 2 and 3
    state = tx.init(params)
    seen = []
    for _ in range(4):
        updates, state = tx.update(grads, state, params)
        seen.append(float(updates["w"][0]))
    np.testing.assert_allclose(seen, [-1.0, -1.0, -0.1, -0.01], rtol=1e-6)


def test_hyperparameters_are_traced_not_compiled_in():
    params, losses = _problem()
    traces = []

    @jax.jit
    def step(params, base_lr, weight_decay, warmup):
        traces.append(1)
        tx = paper_sgd(base_lr, 6, 100, weight_decay=weight_decay, warmup_fraction=warmup)
        grads = jax.grad(lambda p: losses(p).mean())(params)
        updates, _ = tx.update(grads, tx.init(params), params)
        return optax.apply_updates(params, updates)

    a = step(params, 0.1, 1e-4, 0.0)
    b = step(params, 0.2, 5e-4, 0.05)
    assert len(traces) == 1
    assert not np.allclose(a["dense"]["kernel"], b["dense"]["kernel"])
