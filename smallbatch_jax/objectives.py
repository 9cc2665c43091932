"""What a run minimizes and what a sweep ranks by: the loss, the metric and its direction.

The paper trains with softmax cross-entropy and ranks by test accuracy (higher is better);
that is `CLASSIFICATION`, the default. A user's problem may need another loss and a metric
where lower is better (a regression's mean squared error): `REGRESSION`, or any `Objective`
(through the Python API, or `--config.objective=package.module:attribute`). Every summary,
plot and best-of follows `higher_is_better` (analysis.py).

Both functions take one lane's model outputs (batch, ...) and labels (batch, ...) and return
one value per example: the training loss is their mean over the batch, the test metric their
mean over the test set (so a metric must be a mean of per-example values: accuracy, squared
or absolute error, not a root of a mean). Labels are either 'classes' (integer class ids in
[0, num_classes): the model's last axis has num_classes outputs) or 'targets' (real values,
(N,) or (N, D): the model has 1 or D outputs); data/dataset.py checks which the data hold.
"""

import dataclasses
import hashlib
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from smallbatch_jax.config_args import import_attribute
from smallbatch_jax.data.dataset import IGNORED_LABEL, scored

LABEL_KINDS = ("classes", "targets")


class Metric(NamedTuple):
    """A metric's name and direction: the one place that says which of two values is
    better. Results rows carry it (`metric`, `higher_is_better` columns: results.metric_of),
    and every table, best, threshold and plot of a study follows it (study/analysis.py)."""

    name: str = "accuracy"
    higher_is_better: bool = True

    @property
    def short(self) -> str:
        """How a narrow column names it."""
        return "acc" if self.name == "accuracy" else self.name

    def beats(self, value: float, baseline: float) -> bool:
        """Whether `value` is better than `baseline` by more than float32's rounding of a
        mean (a relative 1e-4: below one example in 10,000 of an accuracy); False where
        either is NaN."""
        if math.isnan(value) or math.isnan(baseline):
            return False
        margin = 1e-4 * abs(baseline)
        return value > baseline + margin if self.higher_is_better else value < baseline - margin

    def best(self, values) -> float:
        """The best of `values` (NaN ignored; NaN if none is finite)."""
        finite = [v for v in values if not math.isnan(v)]
        if not finite:
            return math.nan
        return max(finite) if self.higher_is_better else min(finite)


ACCURACY = Metric("accuracy", True)


@dataclasses.dataclass(frozen=True)
class Objective:
    loss: Callable  # (outputs, labels) -> (batch,) training loss per example
    metric: Callable  # (outputs, labels) -> (batch,) per example; the test metric is the mean
    metric_name: str = "accuracy"  # how tables, plots and summaries name the metric
    higher_is_better: bool = True  # (an error metric: False; run/config_checks.py checks it)
    labels: str = "classes"  # LABEL_KINDS: what the data set's labels must be
    # Whether real-valued targets may be standardized for training (data/dataset.py) with
    # the metric computed on outputs mapped back by x·std + mean: true of a regression whose
    # outputs are predictions in the targets' units (REGRESSION), false of anything else (a
    # multi-label cross-entropy on multi-hot targets would train on labels of -0.5 and 1.8
    # and threshold logits mapped back: 0.70 label accuracy where its raw targets gave 0.96).
    scaled_targets: bool = False
    # The metric of a constant prediction, which ignores the inputs: (training labels,
    # evaluated labels) -> float (NaN where not defined). A study whose best setting does not
    # beat it learned nothing from the inputs (study/recommend.py says so instead of
    # recommending). None: not known (a user's objective that does not give one).
    baseline: Callable | None = None

    def __post_init__(self):
        if self.labels not in LABEL_KINDS:
            raise ValueError(f"Objective(labels={self.labels!r}); allowed: {LABEL_KINDS}")

    @property
    def ranking(self) -> Metric:
        """The test metric's name and direction."""
        return Metric(self.metric_name, self.higher_is_better)


def per_example(values, counted=None):
    """An example's value from its positions' (labels per position of a sequence, (batch,
    T, ...)): their mean, every position counted alike, or only those where `counted` (a
    bool array like `values`) holds; (batch,) values as they are."""
    if values.ndim <= 1:
        return values
    values = values.reshape(len(values), -1)
    if counted is None:
        return values.mean(-1)
    counted = counted.reshape(len(counted), -1)
    # (make_dataset refuses an example with no counted position: never 0 / 0.)
    return jnp.where(counted, values, 0).sum(-1) / jnp.maximum(counted.sum(-1), 1)


def softmax_cross_entropy(logits, labels):
    """Per example; labels per position at IGNORED_LABEL (padding) are left out of its mean."""
    if labels.ndim <= 1:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    counted = labels != IGNORED_LABEL
    return per_example(optax.softmax_cross_entropy_with_integer_labels(
        logits, jnp.where(counted, labels, 0)), counted)


def accuracy(logits, labels):
    """Per example; labels per position at IGNORED_LABEL (padding) are left out of its mean."""
    hits = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return per_example(hits, labels != IGNORED_LABEL if labels.ndim > 1 else None)


def squared_error(outputs, targets):
    """Σ over a target's components of (output − target)²; outputs (batch, 1) for targets
    (batch,)."""
    outputs = outputs.reshape(targets.shape).astype(jnp.float32)
    error = jnp.square(outputs - targets)
    return error.reshape(len(error), -1).sum(-1)


def majority_class_accuracy(train_labels, eval_labels) -> float:
    """The accuracy of always predicting the training split's most frequent class (the
    smallest id among equally frequent ones, as argmax picks): the rate a classifier reaches
    without looking at its inputs, 1/C on balanced classes, far higher on imbalanced ones."""
    train_labels, eval_labels = np.asarray(train_labels), np.asarray(eval_labels)
    if not len(train_labels) or not len(eval_labels):
        return math.nan
    majority = np.argmax(np.bincount(scored(train_labels).astype(np.int64)))
    if eval_labels.ndim == 1:
        return float(np.mean(eval_labels == majority))
    # (As `accuracy` scores labels per position: each example's mean over its counted ones.)
    counted = (eval_labels != IGNORED_LABEL).reshape(len(eval_labels), -1)
    hits = (eval_labels == majority).reshape(len(eval_labels), -1)
    return float(np.mean(hits.sum(-1) / np.maximum(counted.sum(-1), 1)))


def mean_target_squared_error(train_labels, eval_labels) -> float:
    """`squared_error` of always predicting the training split's mean target: the error of a
    regression that ignores its inputs (the variance of the targets, summed over their
    components, when both splits share the mean)."""
    train_labels = np.asarray(train_labels, np.float64)
    eval_labels = np.asarray(eval_labels, np.float64)
    if not len(train_labels) or not len(eval_labels):
        return math.nan
    error = np.square(eval_labels - train_labels.mean(axis=0))
    return float(error.reshape(len(error), -1).sum(-1).mean())


def constant_outputs(train_labels, label_kind: str, num_classes: int,
                     output_shape: tuple[int, ...], count: int) -> np.ndarray | None:
    """`count` copies of the best-informed prediction that ignores the inputs: logits
    log p(class) of the training split's class frequencies ((num_classes,) outputs: argmax is
    its most frequent class, and the cross-entropy is the labels' entropy), or its mean target
    (outputs shaped like a target); None for other outputs (one logit for two classes, a mean
    and a variance per target), which it cannot be built for."""
    train_labels = np.asarray(train_labels)
    if label_kind == "classes":
        # (Labels per position: the same class frequencies' logits at every position.)
        if tuple(output_shape) != tuple(train_labels.shape[1:]) + (num_classes,):
            return None
        counts = np.bincount(scored(train_labels).astype(np.int64), minlength=num_classes)
        one = np.log(np.maximum(counts / max(counts.sum(), 1), 1e-12))
    else:
        if int(np.prod(output_shape)) != int(np.prod(train_labels.shape[1:])):
            return None
        one = np.asarray(train_labels, np.float64).mean(axis=0).reshape(output_shape)
    return np.broadcast_to(one, (count,) + tuple(output_shape))


def fitted_constant(objective: Objective, labels, output_shape: tuple[int, ...],
                    steps: int = 500, free_shape: tuple[int, ...] | None = None
                    ) -> np.ndarray | None:
    """The one output that minimizes `objective`'s mean loss over `labels` (up to
    FITTED_LABELS of them, spread over the split, and fewer where the outputs would exceed
    FITTED_ELEMENTS; None below 16): the constant prediction the objective itself prefers,
    for outputs `constant_outputs` cannot build (one logit for two classes: a sigmoid
    cross-entropy's is the log-odds of the labels' share of 1s). Adam from the best of a few
    starting points (the labels' mean among them, for real-valued targets, with steps of
    their spread: from 0 at steps of 0.05 a mean absolute error's constant on targets of
    mean 152 reached only 26 of their median's 141, a baseline of 128 against 70); None
    where the loss is not finite at any of them or where it ends not finite. `free_shape`:
    the shape of the values fitted, a suffix of `output_shape` they are broadcast to (one
    class's logits shared by every position: (C,) for (T, C) outputs); default
    `output_shape`."""
    labels = np.asarray(labels)
    # (At most FITTED_ELEMENTS outputs at once: a vocabulary's logits at every position.)
    count = min(len(labels), FITTED_LABELS,
                FITTED_ELEMENTS // max(int(np.prod(output_shape, dtype=np.int64)), 1))
    if count < 16:
        return None
    labels = labels[np.linspace(0, len(labels) - 1, count).astype(int)]
    return _cached_fit(objective, labels, tuple(output_shape), steps, shared=True,
                       free_shape=tuple(output_shape if free_shape is None else free_shape))


def fitted_outputs(objective: Objective, labels, output_shape: tuple[int, ...],
                   steps: int = 300) -> np.ndarray | None:
    """The outputs, one per label, that minimize `objective`'s loss on `labels`: the
    prediction the loss calls perfect, whatever its outputs mean (a logit driven far to the
    labelled side; a Gaussian's mean at the label). Fitted as `fitted_constant` is, each
    example its own output; None where the loss is not finite."""
    return _cached_fit(objective, np.asarray(labels), tuple(output_shape), steps, shared=False)


def _cached_fit(objective: Objective, labels: np.ndarray, shape: tuple[int, ...], steps: int,
                shared: bool, free_shape: tuple[int, ...] | None = None):
    # (A sweep asks again at every m, and a run for its baseline more than once; each fit
    # compiles a program.)
    free_shape = shape if free_shape is None else free_shape
    key = (objective, shape, free_shape, steps, shared, labels.dtype.str, labels.shape,
           hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest())
    if key not in _FITTED:
        _FITTED[key] = _fit_outputs(objective, jnp.asarray(labels), shape, steps, shared,
                                    free_shape)
    return _FITTED[key]


_FITTED: dict = {}


def _fit_outputs(objective: Objective, labels, shape: tuple[int, ...], steps: int,
                 shared: bool, free_shape: tuple[int, ...]):
    """The optimization of fitted_constant (`shared`: one output for every label, of
    `free_shape` broadcast to `shape`) and of fitted_outputs (one each), uncached."""
    size = () if shared else (len(labels),)
    # Targets in their own units (a mean of 152, a spread of 77) are reached from their mean
    # at steps of their spread; class ids and multi-hot targets from 0 at 0.05.
    floats = jnp.issubdtype(labels.dtype, jnp.floating)
    center = float(jnp.mean(labels)) if floats else 0.0
    rate = 0.05 * max(1.0, float(jnp.std(labels))) if floats else 0.05

    def mean_loss(one):
        outputs = jnp.broadcast_to(one, (len(labels),) + shape)
        return jnp.mean(objective.loss(outputs, labels).astype(jnp.float32))

    @jax.jit
    def fit(start):
        optimizer = optax.adam(rate)

        def step(_, carry):
            one, state = carry
            grads = jax.grad(mean_loss)(one)
            updates, state = optimizer.update(grads, state, one)
            return optax.apply_updates(one, updates), state

        return jax.lax.fori_loop(0, steps, step, (start, optimizer.init(start)))[0]

    starts = [jnp.full(size + (free_shape if shared else shape), value, jnp.float32)
              for value in (0.0, 0.5, 1.0, -1.0) + ((center,) if floats else ())]
    try:
        losses = [float(mean_loss(start)) for start in starts]
    except Exception:  # noqa: BLE001 – a loss that does not take outputs of this shape
        return None
    if not any(math.isfinite(loss) for loss in losses):
        return None
    one = fit(starts[int(np.nanargmin(np.where(np.isfinite(losses), losses, np.nan)))])
    return np.asarray(one) if math.isfinite(float(mean_loss(one))) else None


FITTED_LABELS = 4096  # labels a constant is fitted to (fitted_constant)
FITTED_ELEMENTS = 2**22  # outputs it is fitted with at once, at most (fewer labels if need be)


def constant_metric(objective: Objective, train_labels, eval_labels, label_kind: str,
                    num_classes: int, output_shape: tuple[int, ...]) -> float:
    """A user's Objective's metric, on `eval_labels`, of the constant prediction its loss
    prefers on `train_labels`: its baseline, where it gives none (NaN where none can be had).
    For one output per class (at each position), the better for the metric of
    `constant_outputs`' logits of the class frequencies and the `fitted_constant`; for
    targets the `fitted_constant`, the mean target where the fit fails; for other outputs
    the `fitted_constant`. The mean target itself was wrong for logits: a multi-label
    sigmoid cross-entropy's constant "0.15" (the share of 1s) passed as logits predicts every
    label present, 0.159 label accuracy, where the constant its loss prefers (every label
    absent) scores 0.841, as did a model that learned nothing. The built-in objectives'
    baselines are the same numbers (majority_class_accuracy, mean_target_squared_error)."""
    eval_labels = np.asarray(eval_labels)
    frequencies = constant_outputs(train_labels, label_kind, num_classes, output_shape,
                                   CONSTANT_CHUNK)
    # (Labels per position: one class's logits for every position, as the frequencies
    # are; fitted per position to a test split's 100 padded sentences, 20 positions × 12
    # logits, the "best constant" there read 0.165 where the best one class scored 0.102.)
    per_class = label_kind == "classes" and tuple(output_shape[-1:]) == (num_classes,)
    one = fitted_constant(objective, train_labels, output_shape,
                          free_shape=(num_classes,) if per_class else None)
    fitted = None if one is None else np.broadcast_to(one, (CONSTANT_CHUNK,)
                                                      + tuple(output_shape))
    # Targets: the fitted constant, the mean target where the fit fails. Classes: the better
    # for the metric of the two, the class frequencies' logits being what a plain
    # cross-entropy prefers but not a loss that leaves positions out: a masked per-token
    # cross-entropy on padded sentences (the pad the most frequent label) had its baseline
    # at the pad's logits, "token accuracy 0.0000", and a model at chance, 0.0937, was
    # recommended.
    candidates = ([fitted if fitted is not None else frequencies] if label_kind == "targets"
                  else [frequencies, fitted])
    scores = [_metric_of_constant(objective, outputs, eval_labels) for outputs in candidates
              if outputs is not None and len(eval_labels)]
    scores = [score for score in scores if math.isfinite(score)]
    if not scores:
        return math.nan
    return max(scores) if objective.higher_is_better else min(scores)


def _metric_of_constant(objective: Objective, outputs, eval_labels) -> float:
    """`objective`'s mean metric over `eval_labels` of one constant prediction (`outputs`:
    CONSTANT_CHUNK copies of it). A chunk of examples at a time: a vocabulary of 50,000
    classes over a test split of 10,000 would be 2 GB of identical outputs at once."""
    values = [np.asarray(objective.metric(jnp.asarray(outputs[:len(chunk)], jnp.float32),
                                          jnp.asarray(chunk)), np.float64).ravel()
              for chunk in np.array_split(eval_labels, -(-len(eval_labels) // CONSTANT_CHUNK))]
    return float(np.mean(np.concatenate(values)))


CONSTANT_CHUNK = 1024  # examples per call of a metric on constant outputs


CLASSIFICATION = Objective(softmax_cross_entropy, accuracy, "accuracy", True, "classes",
                           baseline=majority_class_accuracy)
REGRESSION = Objective(squared_error, squared_error, "mse", False, "targets",
                       scaled_targets=True, baseline=mean_target_squared_error)
OBJECTIVES = {"classification": CLASSIFICATION, "regression": REGRESSION}


def objective_named(name: str) -> Objective:
    """config.objective: a built-in name (OBJECTIVES) or "package.module:attribute" naming an
    Objective."""
    if name in OBJECTIVES:
        return OBJECTIVES[name]
    found = import_attribute(name, "config.objective", sorted(OBJECTIVES), "an Objective")
    if not isinstance(found, Objective):
        raise ValueError(f"config.objective={name!r} is a {type(found).__name__}, not a "
                         "smallbatch_jax.Objective")
    return found
