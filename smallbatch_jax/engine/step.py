"""One lane's math: initialize, take a training step, evaluate a batch, written for one lane.

Like the `train_step` of flax's examples, these are pure functions of one lane's state and
one batch; train/programs.py maps them over the lanes and loops them over the steps.

Randomness is a pure function of (seed, purpose, counter): initial weights from
fold_in(key(seed), INIT), the order of epoch e from fold_in(fold_in(key(seed), DATA_ORDER), e)
(train/batches.py), the augmentation of step s (augment.py) from
fold_in(fold_in(key(seed), AUGMENT), s), the stochastic layers' (Flax's 'dropout' stream)
at step s from fold_in(fold_in(key(seed), DROPOUT), s). Nothing random is carried in the
state, so a run restored at an epoch boundary continues exactly as if it had not stopped,
and lanes with the same seed draw the same dropout masks (only the learning rate differs).

Divergence: a step whose loss, gradients or BatchNorm statistics are not finite, or whose
training loss exceeds the lane's `loss_limit` (LOSS_LIMIT_MULTIPLE times the lane's loss at
initialization, set by engine/loop.py: a regression lane at a loss of 5e16 has blown up
whether or not it has overflowed yet), is not applied; the lane is frozen at its last
state before that step (with `jnp.where`, never `lax.cond`, which under vmap runs both
branches anyway) and marked diverged with that step. Its weights are then finite, unless a
finite gradient's update overflowed (|η·g| > 3·10³⁸): that step is applied, and the next
one freezes the lane. A frozen lane costs the same compute as
a live one, and the other lanes are unaffected.

Compute dtype (`LaneStep.compute_dtype`; config.precision 'bf16' sets 'bfloat16'): `apply`
casts the parameters and floating inputs to it, so the model's forward and backward pass
compute in it while the parameters, their gradients and the optimizer stay float32 (the
casts' gradients are float32); the outputs come back as float32 for the loss and metric.
BatchNorm's running statistics stay float32: in training they go in as they are (a
BatchNorm's forward pass reads only the batch's statistics; the running averages are updated
in float32) and the updated ones are cast back to their own dtype; in evaluation they are
cast like the parameters, so the normalization computes in the compute dtype too. Training,
evaluation and the noise probe all apply the model this way.
"""

import dataclasses
from collections.abc import Sequence
from functools import cached_property

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

from smallbatch_jax.engine.augment import pad_crop_flip
from smallbatch_jax.engine.lanes import LaneHparams
from smallbatch_jax.engine.state import LaneState
from smallbatch_jax.models import init_rngs
from smallbatch_jax.models.conv import follow_plan
from smallbatch_jax.noise_scale import group_sizes, probe_groups
from smallbatch_jax.objectives import CLASSIFICATION, Objective, softmax_cross_entropy
from smallbatch_jax.optim import Optimizer, lane_optimizer

# Streams of fold_in(key(seed), stream): one purpose each.
INIT, DATA_ORDER, AUGMENT, DROPOUT = 0, 1, 2, 3

# A lane whose training loss (one batch's mean) exceeds this multiple of its initial test
# loss has diverged. Large on purpose: at m = 1 a batch's loss scatters widely around the
# mean (a confidently wrong example), and a healthy lane must never cross it; 1000 × ln 10
# for CIFAR-10's initial cross-entropy is a logit gap of 2300, 1000 × the initial squared
# error of standardized targets an error of ~30 standard deviations.
LOSS_LIMIT_MULTIPLE = 1000.0


def standardize(inputs, mean, std):
    """(inputs − mean) / std in float32; inputs as they are where mean is None (token ids,
    or standardization turned off: data/dataset.py)."""
    if mean is None:
        return inputs
    return (inputs.astype(jnp.float32) - mean) / std


cross_entropy = softmax_cross_entropy  # the paper's loss (objectives.CLASSIFICATION)


# LaneStep.compute_dtype's values: the dtype the model's forward and backward compute in.
COMPUTE_DTYPES = ("float32", "bfloat16")


def cast_floating(tree, dtype):
    """Every floating-point leaf of `tree` as `dtype`; other leaves (token ids) unchanged."""
    return jax.tree.map(
        lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def sum_of_elements(tree) -> jax.Array:
    """Σ x over every leaf: not finite if any element is not finite (inf + x = inf, inf − inf
    and NaN + x are NaN) or if the sum overflows. The divergence test of the gradients: a
    plain reduction, which XLA:CPU runs on a weight's gradient where it lies (under vmap the
    product computes a Dense kernel's gradient transposed); with Σ x² the MLP profiled there
    copied each such gradient transposed first, 45% of its 13-lane step
    (docs/benchmarks.md; docs/probes/finite_check_cost.py)."""
    return sum(jnp.sum(x) for x in jax.tree.leaves(tree))


def sum_of_squares(tree) -> jax.Array:
    """Σ x² over every leaf: not finite if any element is not finite (or is huge)."""
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))


def group_moments(squares, totals, sizes):
    """From the probe's per-group sums (`squares` (k,): Σ|G_i|² over a group's batches;
    `totals`: a tree of (k, ...) Σ G_i per group; `sizes` (k,), static: batches per group):
    the whole probe's mean |G_i|² and |Ḡ|², and (k, 2) the same with each group left out."""
    n = float(sum(sizes))
    flat = [t.reshape(t.shape[0], -1).astype(jnp.float32) for t in jax.tree.leaves(totals)]
    total = [f.sum(axis=0) for f in flat]  # Σ G_i over every batch
    total_sq = sum(jnp.sum(jnp.square(t)) for t in total)  # |Σ G_i|²
    group_sq = sum(jnp.sum(jnp.square(f), axis=1) for f in flat)  # |S_g|² (k,)
    group_dot = sum(f @ t for f, t in zip(flat, total))  # S_g · S (k,)
    small, big = squares.sum() / n, total_sq / n**2
    if len(sizes) < 2:  # too few batches to leave any out (noise_scale.probe_groups)
        return small, big, jnp.full((1, 2), jnp.nan, jnp.float32)
    rest = n - jnp.asarray(sizes, jnp.float32)  # batches left with group g out
    left_small = (squares.sum() - squares) / rest
    left_big = (total_sq - 2 * group_dot + group_sq) / jnp.square(rest)
    return small, big, jnp.stack([left_small, left_big], axis=1)


def augment_batch(seed, step, images):
    """The paper's pad-crop-flip of one seed's batch, keyed by (seed, step)."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), AUGMENT), step)
    return pad_crop_flip(key, images)


@dataclasses.dataclass(frozen=True, eq=False)
class LaneStep:
    """The model, the batch size, the objective and the optimizer's static settings: what
    one lane's computation needs besides its state and hyperparameters (traced, per lane)."""

    model: flax.linen.Module
    batch_size: int
    image_shape: tuple[int, ...]  # one example's input shape (an image's, or any)
    optimizer: Optimizer = Optimizer()  # the paper's SGD
    input_dtype: str = "float32"  # the model's input: float32, or int32 for token ids
    objective: Objective = CLASSIFICATION  # the loss trained on and the metric evaluated
    decay_points: Sequence[float] = (0.5, 0.75)
    decay_factor: float = 0.1
    # The plan's convolution (models/conv.py): every plain nn.Conv of the model computes
    # through it (follow_plan), a user's model included.
    conv: str = "xla"
    # The dtype the model computes in (COMPUTE_DTYPES; the module docstring): the plan's
    # (engine/plan.py: precision 'bf16' gives 'bfloat16'), set by engine/programs.py.
    compute_dtype: str = "float32"

    def __post_init__(self):
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype={self.compute_dtype!r}; allowed: "
                             f"{COMPUTE_DTYPES}")

    @cached_property
    def has_batch_norm(self) -> bool:
        return "batch_stats" in jax.eval_shape(self.init_variables, jax.random.key(0))

    def transformation(self, hp: LaneHparams, total_steps):
        """The lane's Optax transformation (optim.lane_optimizer)."""
        return lane_optimizer(self.optimizer, hp, self.batch_size, total_steps,
                              decay_points=self.decay_points, decay_factor=self.decay_factor)

    def init_variables(self, key):
        dummy = jnp.zeros((1,) + tuple(self.image_shape), self.input_dtype)
        return self.model.init(init_rngs(key), dummy, train=False)

    def init_lane(self, variables, hp: LaneHparams) -> LaneState:
        """A fresh lane from initialized variables (lanes with one seed share them)."""
        return LaneState(params=variables["params"],
                         batch_stats=variables.get("batch_stats", {}),
                         opt_state=self.transformation(hp, 1).init(variables["params"]),
                         diverged=jnp.zeros((), bool),
                         diverged_step=jnp.full((), -1, jnp.int32),
                         loss_limit=jnp.full((), jnp.inf, jnp.float32))

    def apply(self, params, batch_stats, images, train: bool, rngs=None):
        """Logits, and the updated BatchNorm statistics when training. `rngs`: the stochastic
        layers' keys when training (e.g. {'dropout': key}). In a compute dtype other than
        float32 (the module docstring): the parameters and inputs cast to it, the evaluation's
        running statistics too; the outputs float32, the statistics in their own dtype."""
        if self.compute_dtype == "float32":
            return self._apply(params, batch_stats, images, train, rngs)
        dtype = jnp.dtype(self.compute_dtype)
        stats = batch_stats if train else cast_floating(batch_stats, dtype)
        outputs, updated = self._apply(cast_floating(params, dtype), stats,
                                       cast_floating(images, dtype), train, rngs)
        outputs = cast_floating(outputs, jnp.float32)
        if not train:
            return outputs, batch_stats
        return outputs, jax.tree.map(lambda new, old: new.astype(old.dtype), updated,
                                     batch_stats)

    def _apply(self, params, batch_stats, images, train: bool, rngs=None):
        """`apply` in the dtypes given."""
        variables = {"params": params}
        with follow_plan(self.conv):
            # (No BatchNorm: no statistics were made at init. Read from the argument, not
            # from `has_batch_norm`, which traces the model's init once more per LaneStep:
            # ResNet-50's set-up traced it twice for this alone, ~1 s each.)
            if not batch_stats:
                return self.model.apply(variables, images, train=train, rngs=rngs), batch_stats
            variables["batch_stats"] = batch_stats
            if not train:
                return self.model.apply(variables, images, train=False), batch_stats
            logits, updated = self.model.apply(variables, images, train=True, rngs=rngs,
                                               mutable=["batch_stats"])
        return logits, updated["batch_stats"]

    def train_step(self, lane: LaneState, hp: LaneHparams, images, labels, seed, step,
                   total_steps):
        """One optimizer step of one lane (whose seed is `seed`) on standardized inputs;
        returns the lane and its loss."""
        dropout = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), DROPOUT), step)

        def loss_fn(params):
            logits, batch_stats = self.apply(params, lane.batch_stats, images, train=True,
                                             rngs={"dropout": dropout})
            return self.objective.loss(logits, labels).mean(), batch_stats

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(lane.params)
        # Decided before the update, so that freezing fuses into the update's single pass over
        # the weights (checking the new weights instead costs two more passes: 5 ms of a
        # 40 ms step for 13 AlexNet lanes on CPU). A non-finite gradient element makes Σg
        # non-finite (sum_of_elements). An update that overflows from a finite gradient
        # (|η·g| > 3e38; Σg² used to flag |g| > 2e19 first, at 1.3-1.8× a small MLP's step) is
        # applied, and the next step's non-finite loss freezes the lane with those weights.
        healthy = (jnp.isfinite(loss) & (loss <= lane.loss_limit)
                   & jnp.isfinite(sum_of_elements(grads)) & all_finite(batch_stats))
        frozen = lane.diverged | ~healthy
        updates, opt_state = self.transformation(hp, total_steps).update(
            grads, lane.opt_state, lane.params)
        params = optax.apply_updates(lane.params, updates)

        keep_old = lambda old, new: jnp.where(frozen, old, new)
        lane = LaneState(
            params=jax.tree.map(keep_old, lane.params, params),
            batch_stats=jax.tree.map(keep_old, lane.batch_stats, batch_stats),
            opt_state=jax.tree.map(keep_old, lane.opt_state, opt_state),
            diverged=frozen,
            # (int32 as carried: under jax_enable_x64 the step is int64.)
            diverged_step=jnp.where(frozen & ~lane.diverged, step, lane.diverged_step).astype(
                jnp.int32),
            loss_limit=lane.loss_limit,
        )
        return lane, loss

    def probe_gradient(self, lane: LaneState, images, labels):
        """The gradient of one lane's mean loss on one batch, weights frozen (BatchNorm on the
        batch's statistics, as in training; a fixed dropout key): the noise-scale probe's G_i."""
        def loss_fn(params):
            logits, _ = self.apply(params, lane.batch_stats, images, train=True,
                                   rngs={"dropout": jax.random.key(0)})
            return self.objective.loss(logits, labels).mean()

        return jax.grad(loss_fn)(lane.params)

    def gradient_moments(self, lane: LaneState, images, labels):
        """The noise-scale probe of one lane (noise_scale.py): on batches images (n, b, ...),
        labels (n, b), the mean over the n batches of |G_i|² and the squared norm of their
        mean, |Ḡ|², where G_i is `probe_gradient` of batch i; and the same two with each of
        the probe's k groups of batches left out in turn ((k, 2): batch i is in group i mod k,
        noise_scale.probe_groups), from which the estimate's standard error follows
        (a delete-a-group jackknife: noise_scale.jackknife_covariance)."""
        # One batch's gradient at a time, summed as it comes: vmapping the gradient over the
        # batches instead compiled 1.5× longer and ran 1.6× slower (13 small-CNN lanes on
        # XLA:CPU, 7.0 against 4.6 s and 78.7 against 49.9 ms; docs/benchmarks.md), and held
        # every batch's gradient. Here k sums are held, one per group (k ≤ 4).
        num_batches = images.shape[0]
        k = probe_groups(num_batches)

        def add_batch(sums, batch):
            squares, totals = sums
            i, batch_images, batch_labels = batch
            grads = self.probe_gradient(lane, batch_images, batch_labels)
            g = i % k
            totals = jax.tree.map(lambda t, x: t.at[g].add(x), totals, grads)
            return (squares.at[g].add(sum_of_squares(grads)), totals), None

        start = (jnp.zeros((k,), jnp.float32),
                 jax.tree.map(lambda p: jnp.zeros((k,) + p.shape, p.dtype), lane.params))
        (squares, totals), _ = lax.scan(add_batch, start,
                                        (jnp.arange(num_batches), images, labels))
        return group_moments(squares, totals, group_sizes(num_batches))

    def evaluate(self, lane: LaneState, images, labels, mask, target_mean=None,
                 target_std=None):
        """The summed metric (correct predictions, for accuracy) and summed loss of one lane on
        standardized test inputs, with the running BatchNorm statistics; `mask` is False on
        padding. With `target_mean` and `target_std` (standardized targets: data/dataset.py)
        the loss is the training loss's, on standardized targets, and the metric is computed
        in the targets' own units: outputs and labels mapped back by `x · std + mean`."""
        outputs, _ = self.apply(lane.params, lane.batch_stats, images, train=False)
        loss = jnp.sum(jnp.where(mask, self.objective.loss(outputs, labels), 0.0))
        if target_mean is not None:
            # outputs (b, D) or (b, 1) for labels (b,): the statistics broadcast over the last
            # axis of both (() for (b,) targets, (D,) for (b, D)).
            outputs = outputs.astype(jnp.float32) * target_std + target_mean
            labels = labels * target_std + target_mean
        metric = jnp.sum(jnp.where(mask, self.objective.metric(outputs, labels), 0.0))
        return metric, loss
