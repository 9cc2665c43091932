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


# ------------------------------------------------------------------ beyond the paper


def _hp(base_lr, weight_decay=1e-2, momentum=0.9, beta2=0.99, epsilon=1e-6):
    from smallbatch_jax.engine.lanes import LaneGrid
    from smallbatch_jax.engine.lanes import tree_index
    grid = LaneGrid((0,), (base_lr,), weight_decay, 0.0, momentum, beta2, epsilon)
    return tree_index(grid.hparams(), 0)


REFERENCES = {
    # Each optimizer against optax's own, η given directly: the same updates step by step.
    "sgd": lambda lr, wd: optax.chain(optax.add_decayed_weights(wd, mask=is_kernel),
                                      optax.sgd(lr)),
    "momentum": lambda lr, wd: optax.chain(optax.add_decayed_weights(wd, mask=is_kernel),
                                           optax.sgd(lr, momentum=0.9)),
    "nesterov": lambda lr, wd: optax.chain(optax.add_decayed_weights(wd, mask=is_kernel),
                                           optax.sgd(lr, momentum=0.9, nesterov=True)),
    "adam": lambda lr, wd: optax.chain(optax.add_decayed_weights(wd, mask=is_kernel),
                                       optax.adam(lr, b1=0.9, b2=0.99, eps=1e-6)),
    "adamw": lambda lr, wd: optax.adamw(lr, b1=0.9, b2=0.99, eps=1e-6, weight_decay=wd,
                                        mask=is_kernel),
}


@pytest.mark.parametrize("name", list(REFERENCES))
@pytest.mark.parametrize("scaling", ["linear", "sqrt", "none"])
def test_each_optimizer_is_optax_reference_at_the_scaled_rate(name, scaling):
    from smallbatch_jax.optim import Optimizer, lane_optimizer

    m, swept, wd = 8, 2.0**-7, 1e-2
    optimizer = Optimizer("momentum" if name == "nesterov" else name,
                          nesterov=name == "nesterov", lr_scaling=scaling)
    eta = {"linear": m * swept, "sqrt": np.sqrt(m) * swept, "none": swept}[scaling]
    assert optimizer.learning_rate(swept, m) == pytest.approx(eta)
    ours = lane_optimizer(optimizer, _hp(swept, wd), m, total_steps=100)
    reference = REFERENCES[name](eta, wd)
    params, losses = _problem(m)
    mine, theirs = params, params
    mine_state, theirs_state = ours.init(params), reference.init(params)
    for _ in range(4):  # before any decay point (50% of 100 steps)
        g = jax.grad(lambda p: losses(p).mean())(mine)
        updates, mine_state = ours.update(g, mine_state, mine)
        mine = optax.apply_updates(mine, updates)
        g = jax.grad(lambda p: losses(p).mean())(theirs)
        updates, theirs_state = reference.update(g, theirs_state, theirs)
        theirs = optax.apply_updates(theirs, updates)
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    assert not np.allclose(mine["dense"]["kernel"], params["dense"]["kernel"])


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "adamw"])
def test_a_lane_of_each_optimizer_equals_a_single_lane_run(name):
    """Lanes vmapped over traced hyperparameters (η̃, λ, β's) update as each lane alone."""
    from smallbatch_jax.engine.lanes import LaneGrid, tree_index, tree_stack
    from smallbatch_jax.optim import Optimizer, lane_optimizer

    optimizer = Optimizer(name)
    grid = LaneGrid((0,), (2.0**-9, 2.0**-7, 2.0**-5), 1e-3, 0.0, 0.9, 0.99, 1e-6)
    hparams = grid.hparams()
    params, losses = _problem(8)

    def run(hp, p):
        tx = lane_optimizer(optimizer, hp, 8, total_steps=100)
        state = tx.init(p)
        for _ in range(3):
            updates, state = tx.update(jax.grad(lambda q: losses(q).mean())(p), state, p)
            p = optax.apply_updates(p, updates)
        return p

    lanes = jax.jit(jax.vmap(run))(hparams, tree_stack([params] * 3))
    for i in range(3):
        alone = jax.jit(run)(tree_index(hparams, i), params)
        for a, b in zip(jax.tree.leaves(tree_index(lanes, i)), jax.tree.leaves(alone)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert not np.allclose(tree_index(lanes, 0)["dense"]["kernel"],
                           tree_index(lanes, 2)["dense"]["kernel"])


def test_beta2_rule_keeps_the_half_life_in_examples():
    from smallbatch_jax.optim import beta2_for

    assert beta2_for(0.999, 2, "fixed", 128) == 0.999
    assert beta2_for(0.999, 128, "per_example", 128) == 0.999
    assert beta2_for(0.999, 2, "per_example", 128) == pytest.approx(0.999 ** (1 / 64))
    # Marek et al.'s example scale: β₂ = 0.95 at m = 512 is ≈ 0.9999 at m = 1.
    assert beta2_for(0.95, 1, "per_example", 512) == pytest.approx(0.9999, abs=1e-5)
    # The half-life in examples, m·ln(0.5)/ln(β₂), is the same at every m.
    half_life = lambda m: m * np.log(0.5) / np.log(beta2_for(0.98, m, "per_example", 64))
    assert half_life(2) == pytest.approx(half_life(64)) == pytest.approx(half_life(1024))
    with pytest.raises(ValueError, match="beta2_rule 'steps'"):
        beta2_for(0.999, 2, "steps", 128)


def test_bad_optimizer_settings_fail_with_the_allowed_values():
    from smallbatch_jax.optim import Optimizer

    with pytest.raises(ValueError, match="optimizer 'lamb' is unknown"):
        Optimizer("lamb")
    with pytest.raises(ValueError, match="nesterov=True goes with the 'momentum'"):
        Optimizer("adam", nesterov=True)
    with pytest.raises(ValueError, match="lr_scaling 'cube'"):
        Optimizer("sgd", lr_scaling="cube")
    assert Optimizer("adam").scaling == "none" and Optimizer("sgd").scaling == "linear"


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_gradient_clipping_is_optax_reference_and_a_lane_without_it_is_unchanged(name):
    """Clipping to a global norm (config.grad_clip), per lane: the gradient of the
    batch-mean loss is clipped first, before weight decay joins it (PyTorch's
    clip_grad_norm_ before step()); a lane at norm 0 (inf in the lanes' arrays) takes the
    unclipped updates, bit for bit, and lanes of several norms update as each alone."""
    from smallbatch_jax.engine.lanes import LaneGrid, tree_index, tree_stack
    from smallbatch_jax.optim import Optimizer, lane_optimizer

    m, swept, wd, norm = 8, 2.0**-3, 1e-2, 0.05
    clipped, plain = Optimizer(name, clip=True), Optimizer(name)
    grid = LaneGrid((0,), (swept,), wd, 0.0, 0.9, 0.99, 1e-6, grad_clip=(0.0, norm, 10.0))
    hparams = grid.hparams()
    assert np.isinf(hparams.grad_clip[0]) and hparams.grad_clip[1] == norm
    eta = m * swept if name == "sgd" else swept
    reference = {"sgd": optax.chain(optax.clip_by_global_norm(norm),
                                    optax.add_decayed_weights(wd, mask=is_kernel),
                                    optax.sgd(eta)),
                 "adamw": optax.chain(optax.clip_by_global_norm(norm),
                                      optax.adamw(eta, b1=0.9, b2=0.99, eps=1e-6,
                                                  weight_decay=wd, mask=is_kernel))}[name]
    params, losses = _problem(m)

    def run(tx, p, steps=3):
        state = tx.init(p)
        for _ in range(steps):
            updates, state = tx.update(jax.grad(lambda q: losses(q).mean())(p), state, p)
            p = optax.apply_updates(p, updates)
        return p

    ours = lambda hp, p: run(lane_optimizer(clipped, hp, m, total_steps=100), p)
    lanes = jax.jit(jax.vmap(ours))(hparams, tree_stack([params] * 3))
    for a, b in zip(jax.tree.leaves(tree_index(lanes, 1)), jax.tree.leaves(run(reference,
                                                                               params))):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    unclipped = jax.jit(lambda hp, p: run(lane_optimizer(plain, hp, m, total_steps=100), p))(
        tree_index(hparams, 0), params)
    for a, b in zip(jax.tree.leaves(jax.jit(ours)(tree_index(hparams, 0), params)),
                    jax.tree.leaves(unclipped)):
        np.testing.assert_array_equal(a, b)
    for i in range(3):
        alone = jax.jit(ours)(tree_index(hparams, i), params)
        for a, b in zip(jax.tree.leaves(tree_index(lanes, i)), jax.tree.leaves(alone)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # The norm binds: the clipped lane differs from the unclipped one (under SGD it moved
    # less; Adam's steps are near-invariant to the gradient's scale).
    kernel = lambda i: tree_index(lanes, i)["dense"]["kernel"]
    assert not np.allclose(kernel(1), kernel(0))
    if name == "sgd":
        moved = lambda i: float(jnp.abs(kernel(i) - params["dense"]["kernel"]).sum())
        assert moved(1) < 0.5 * moved(0)
