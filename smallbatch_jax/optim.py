"""The paper's SGD, and the optimizers users train with, as Optax transformations per lane.

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

Beyond the paper (`Optimizer`, `lane_optimizer`): 'sgd' (the paper's), 'momentum' (heavy
ball, or Nesterov), 'adam' (L2 on kernels added to the gradient, as the paper's SGD has it)
and 'adamw' (decoupled weight decay, λ·η·w per step, as `optax.adamw`). The swept value s
relates to the learning rate η through `lr_scaling`:

    'linear':  η = m·s  (the paper's η̃: the default of 'sgd' and 'momentum')
    'sqrt':    η = √m·s (the square-root rule often used for Adam; Malladi et al. 2022)
    'none':    η = s    (the swept value is η itself: the default of 'adam' and 'adamw',
                         whose update does not grow with the gradient's scale)

Adam's β₂ at small batches (Marek et al. 2025, arXiv:2507.07101): `beta2_rule='fixed'`
keeps β₂ at every m; 'per_example' keeps its half-life fixed in examples instead of steps,
β₂(m) = β₂(m_ref)^(m / m_ref), so that at m = 1 the second moment averages over as many
examples as at m_ref (`beta2_for`).

Gradient clipping (`Optimizer.clip`, config.grad_clip), as transformer recipes have it: the
gradient of the batch-mean loss scaled down to a global norm where it exceeds it, first,
before weight decay joins it (PyTorch's clip_grad_norm_ before step()). The norm is traced
per lane (inf: unclipped); a run that clips no lane compiles the program it did before.
"""

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
LR_SCALINGS = ("linear", "sqrt", "none")
BETA2_RULES = ("fixed", "per_example")
DEFAULT_LR_SCALING = {"sgd": "linear", "momentum": "linear", "adam": "none", "adamw": "none"}
# How logs, tables and figures name the swept value under each lr_scaling.
SWEPT_SYMBOL = {"linear": "η̃", "sqrt": "s", "none": "η"}

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


def epochs_before_last_decay(epochs: int, read: int, steps_per_epoch: int,
                             decay_points: Sequence[float] = (0.5, 0.75),
                             decay_factor: float = 0.1) -> tuple[int, float]:
    """Of the last `read` epochs (the ones the metric's median reads), how many are evaluated
    before the schedule's last decay (lr_multiplier: ×decay_factor from step ⌊p·total⌋; an
    epoch is evaluated after its last step), and the epoch, fractional, at which that decay
    applies; (0, nan) for a schedule without one."""
    points = [p for p in decay_points if 0 < p < 1]
    if not points or decay_factor == 1 or steps_per_epoch <= 0:
        return 0, float("nan")
    decay_step = math.floor(max(points) * epochs * steps_per_epoch)
    read = min(read, epochs)
    before = sum(1 for e in range(epochs - read + 1, epochs + 1)
                 if e * steps_per_epoch <= decay_step)
    return before, decay_step / steps_per_epoch


def median_reads_mid_training(before: int, window: int) -> bool:
    """Whether a median over `window` epochs, `before` of them evaluated before the last
    decay, can be one of those: half or more of them are (epochs_before_last_decay)."""
    return before > 0 and 2 * before >= window


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
    nesterov: bool = False,
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
      nesterov: with momentum, Nesterov's form θ ← θ − η·(g + μv) (optax.trace).
      decay_points, decay_factor: the step schedule (paper: ×0.1 at 50% and 75%).
    """

    def step_size(count):
        multiplier = lr_multiplier(count, total_steps, warmup_fraction, decay_points, decay_factor)
        return -batch_size * base_lr * multiplier

    transforms = [optax.add_decayed_weights(weight_decay, mask=is_kernel)]
    if momentum is not None:
        transforms.append(optax.trace(decay=momentum, nesterov=nesterov))
    transforms.append(optax.scale_by_schedule(step_size))
    return optax.chain(*transforms)


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """What is static about a lane's optimizer: which one, Nesterov or not, and how the
    swept value scales with m ('' = the optimizer's default, DEFAULT_LR_SCALING). Its
    numbers (η̃, λ, μ or β₁, β₂, ε) are traced per lane (lanes.LaneHparams)."""

    name: str = "sgd"
    nesterov: bool = False
    lr_scaling: str = ""
    # Whether the gradient is clipped (to each lane's LaneHparams.grad_clip, inf for a lane
    # not clipped): static, so that a run without clipping compiles the program it did.
    clip: bool = False

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.name!r} is unknown; allowed: {OPTIMIZERS}")
        if self.lr_scaling and self.lr_scaling not in LR_SCALINGS:
            raise ValueError(f"lr_scaling {self.lr_scaling!r} is unknown; allowed: "
                             f"{LR_SCALINGS} or '' (the optimizer's default)")
        if self.nesterov and self.name != "momentum":
            raise ValueError(f"nesterov=True goes with the 'momentum' optimizer, not "
                             f"{self.name!r}")

    @property
    def scaling(self) -> str:
        return self.lr_scaling or DEFAULT_LR_SCALING[self.name]

    def learning_rate(self, swept, batch_size: int):
        """η from the swept value s at batch size m (see the module docstring)."""
        factor = {"linear": batch_size, "sqrt": math.sqrt(batch_size), "none": 1.0}
        return factor[self.scaling] * swept


def beta2_for(beta2: float, batch_size: int, rule: str, reference_batch_size: int) -> float:
    """β₂ at batch size m: `beta2` itself ('fixed'), or β₂^(m / m_ref) ('per_example': the
    same half-life in examples as β₂ has at m_ref)."""
    if rule == "fixed":
        return beta2
    if rule == "per_example":
        return beta2 ** (batch_size / reference_batch_size)
    raise ValueError(f"beta2_rule {rule!r} is unknown; allowed: {BETA2_RULES}")


def lane_optimizer(optimizer: Optimizer, hp, batch_size: int, total_steps, *,
                   decay_points: Sequence[float] = (0.5, 0.75),
                   decay_factor: float = 0.1) -> optax.GradientTransformation:
    """The optimizer of one lane with hyperparameters `hp` (lanes.LaneHparams: base_lr is
    the swept value, momentum is μ or Adam's β₁), on the mean loss of a batch of m; the
    schedule (warm-up, step decay) multiplies η for every optimizer. With
    `optimizer.clip`, the gradient is first clipped to the global norm hp.grad_clip (inf:
    unchanged), before weight decay joins it, as PyTorch's clip_grad_norm_ before step()."""
    transformation = _unclipped(optimizer, hp, batch_size, total_steps, decay_points,
                                decay_factor)
    if not optimizer.clip:
        return transformation
    return optax.chain(optax.clip_by_global_norm(hp.grad_clip), transformation)


def _unclipped(optimizer: Optimizer, hp, batch_size: int, total_steps,
               decay_points: Sequence[float], decay_factor: float
               ) -> optax.GradientTransformation:
    if optimizer.name in ("sgd", "momentum") and optimizer.scaling == "linear":
        # The paper's transformation itself (and its tests).
        return paper_sgd(hp.base_lr, batch_size, total_steps, weight_decay=hp.weight_decay,
                         warmup_fraction=hp.warmup_fraction,
                         momentum=hp.momentum if optimizer.name == "momentum" else None,
                         nesterov=optimizer.nesterov, decay_points=decay_points,
                         decay_factor=decay_factor)
    lr = optimizer.learning_rate(hp.base_lr, batch_size)

    def step_size(count):
        return -lr * lr_multiplier(count, total_steps, hp.warmup_fraction, decay_points,
                                   decay_factor)

    l2 = optax.add_decayed_weights(hp.weight_decay, mask=is_kernel)
    if optimizer.name in ("sgd", "momentum"):
        moment = ([optax.trace(decay=hp.momentum, nesterov=optimizer.nesterov)]
                  if optimizer.name == "momentum" else [])
        return optax.chain(l2, *moment, optax.scale_by_schedule(step_size))
    adam = optax.scale_by_adam(b1=hp.momentum, b2=hp.beta2, eps=hp.epsilon)
    if optimizer.name == "adam":
        return optax.chain(l2, adam, optax.scale_by_schedule(step_size))
    # adamw: the decay joins the update after Adam's scaling, so it is λ·η·w (optax.adamw).
    return optax.chain(adam, l2, optax.scale_by_schedule(step_size))
