"""The paper's SGD as an Optax gradient transformation.

Masters & Luschi (2018, eq. 5) write SGD with a *sum* of per-example gradients and a
*base* learning rate η̃:

    θ ← θ − η̃ Σᵢ ∇Lᵢ(θ),        η̃ = η / m.

Which form the code uses: the training loss is the **mean** over the m examples of the
batch, so its gradient is (1/m) Σᵢ ∇Lᵢ, and this transformation scales it by the usual
learning rate η = m·η̃. The two forms are the same update (tests/test_optim.py checks it
against the sum form); the mean form keeps gradient magnitudes independent of m.

Weight decay is an L2 term (λ/2)‖w‖² on the mean loss, so each step also subtracts
m·η̃·λ·w. It covers convolution and dense *kernels* only: biases and BatchNorm scales and
offsets are not decayed (the paper does not say; this is the common convention).

Every hyperparameter may be a traced JAX scalar. The trainer builds one optimizer per lane
inside its vmapped step from that lane's hyperparameters, so a new learning-rate grid of the
same size runs the already-compiled program.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

# The paper's warm-up starts at η/32 (after Goyal et al. 2017).
WARMUP_START_FACTOR = 1.0 / 32.0


def lr_multiplier(
    step: jax.Array,
    total_steps: jax.Array,
    warmup_fraction: jax.Array | float = 0.0,
    decay_points: Sequence[float] = (0.5, 0.75),
    decay_factor: float = 0.1,
) -> jax.Array:
    """The factor applied to η at (0-based) step `step` of `total_steps`.

    Step decay: ×`decay_factor` from step ⌊p·total_steps⌋ on, for each p in `decay_points`.
    Warm-up: linear from 1/32 at step 0 to 1 at step ⌊warmup_fraction·total_steps⌋.
    """
    step = jnp.asarray(step, jnp.int32)
    total = jnp.asarray(total_steps, jnp.float32)
    multiplier = jnp.ones((), jnp.float32)
    for point in decay_points:
        milestone = jnp.floor(point * total).astype(jnp.int32)
        multiplier = jnp.where(step >= milestone, multiplier * decay_factor, multiplier)

    warmup_steps = jnp.floor(jnp.asarray(warmup_fraction, jnp.float32) * total)
    progress = step.astype(jnp.float32) / jnp.maximum(warmup_steps, 1.0)
    ramp = WARMUP_START_FACTOR + (1.0 - WARMUP_START_FACTOR) * progress
    return jnp.where(step.astype(jnp.float32) < warmup_steps, ramp * multiplier, multiplier)


def is_kernel(params) -> "jax.tree_util.PyTreeDef":
    """A mask over `params`: True for convolution and dense kernels (what weight decay covers)."""

    def leaf_is_kernel(path, _):
        last = path[-1]
        return getattr(last, "key", getattr(last, "name", None)) == "kernel"

    return jax.tree_util.tree_map_with_path(leaf_is_kernel, params)


def paper_sgd(
    base_lr: jax.Array | float,
    batch_size: int,
    total_steps: jax.Array | int,
    *,
    weight_decay: jax.Array | float = 0.0,
    warmup_fraction: jax.Array | float = 0.0,
    momentum: jax.Array | float | None = None,
    decay_points: Sequence[float] = (0.5, 0.75),
    decay_factor: float = 0.1,
) -> optax.GradientTransformation:
    """SGD with base learning rate η̃ on the *mean* loss over a batch of `batch_size`.

    Args:
      base_lr: η̃, the learning rate per example-gradient of the paper (η = batch_size·η̃).
      batch_size: m, the number of examples averaged by the loss.
      total_steps: training length in steps; places the decay points and the warm-up.
      weight_decay: λ of the L2 term (λ/2)‖w‖² on kernels (see `is_kernel`).
      warmup_fraction: fraction of `total_steps` over which η ramps up from η/32.
      momentum: None for plain SGD (the paper). Otherwise heavy-ball momentum
        v ← μv + g, θ ← θ − η·v; μ may be traced, but None vs. a value changes the state.
      decay_points, decay_factor: the step schedule (paper: ×0.1 at 50% and 75%).
    """

    def step_size(count):
        multiplier = lr_multiplier(count, total_steps, warmup_fraction, decay_points, decay_factor)
        return -batch_size * base_lr * multiplier

    transforms = [optax.add_decayed_weights(weight_decay, mask=is_kernel)]
    if momentum is not None:
        transforms.append(optax.trace(decay=momentum))
    transforms.append(optax.scale_by_schedule(step_size))
    return optax.chain(*transforms)
