"""Checks a run's config before any compute; every error names the key and what it allows.

`check_config` needs only the config (its `strategy` section is read by `strategy_choice`,
which the build step also uses); `check_against_data` also needs the data set, for the
limits that depend on its size; `check_model` traces the model once on the data's input
shape (`jax.eval_shape`: shapes only, nothing computed) for what would otherwise train to the
end and report every lane as diverged, or fail deep inside a convolution.
"""

import contextlib
import dataclasses
import inspect
import math
import os

import jax
import numpy as np
from absl import logging
import flax.linen as nn
from flax.errors import InvalidRngError, ModifyScopeVariableError

from smallbatch_jax.data import (BUILT_IN, DATASETS, IGNORED_LABEL, DatasetLike,
                                 check_padding, looks_channels_first, model_input_dtype,
                                 scored)
from smallbatch_jax.engine.plan import PRECISIONS
from smallbatch_jax.engine.strategy import PRESET_CHOICES, Strategy, StrategyChoice
from smallbatch_jax.models import (MODELS, import_model, init_rngs, loaded_nnx,
                                   model_name)
from smallbatch_jax.models.ghost_bn import GhostBatchNorm
from smallbatch_jax.objectives import (OBJECTIVES, REGRESSION, Objective, constant_outputs,
                                       fitted_constant, fitted_outputs)
from smallbatch_jax.optim import (BETA2_RULES, LR_SCALINGS, OPTIMIZERS,
                                  epochs_before_last_decay, is_kernel,
                                  median_reads_mid_training)


def _fail(key, value, allowed):
    raise ValueError(f"config.{key}={value!r} is invalid; allowed: {allowed}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# config.sweep's keys: what each value must be.
SWEEP_RULES = {
    "weight_decay": (lambda v: v >= 0.0, "numbers >= 0"),
    "momentum": (lambda v: 0.0 <= v < 1.0, "numbers in [0, 1) (μ, or Adam's β₁)"),
    "beta2": (lambda v: 0.0 < v < 1.0, "numbers in (0, 1) (Adam's β₂)"),
    "epsilon": (lambda v: v > 0.0, "positive numbers (Adam's ε)"),
    "warmup": (lambda v: 0.0 <= v < 1.0, "fractions of training in [0, 1)"),
    "grad_clip": (lambda v: 0.0 <= v < math.inf, "global norms > 0, or 0 (not clipped)"),
}


def _check_sweep(config) -> None:
    """config.sweep: a tuple of valid values per key (or ()), each meaningful for the
    optimizer."""
    adam = config.optimizer in ("adam", "adamw")

    def check_values(name, key, values, shown):
        valid, what = SWEEP_RULES[key]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and valid(float(v))
                   for v in values):
            _fail(name, shown, f"{what}" if name.endswith("points") else
                  f"a tuple of {what}, or () for the single value")
        if values and key in ("beta2", "epsilon") and not adam:
            _fail(name, shown, f"no {key} for optimizer={config.optimizer!r} (Adam's)")
        if values and key == "momentum" and config.optimizer == "sgd":
            _fail(name, shown, "no momentum for optimizer='sgd' (plain SGD has none: "
                  "optimizer='momentum' sweeps μ, 'adam' β₁)")

    for key, values in config.sweep.items():
        if key == "points":
            continue
        if key not in SWEEP_RULES:
            _fail(f"sweep.{key}", values, f"one of {sorted(SWEEP_RULES)} or points")
        if not isinstance(values, (tuple, list)):
            _fail(f"sweep.{key}", values, "a tuple of values, or () for the single value")
        check_values(f"sweep.{key}", key, values, values)
        if len(set(values)) != len(values):
            _fail(f"sweep.{key}", values, "distinct values")
    points = config.sweep.get("points", ())
    if not isinstance(points, (tuple, list)) or not all(isinstance(p, dict) for p in points):
        _fail("sweep.points", points, "a tuple of settings, e.g. ({'weight_decay': 5e-4, "
              "'momentum': 0.9}, {'weight_decay': 0.0, 'momentum': 0.0})")
    if points:
        keys = set(points[0])
        if not keys or any(set(p) != keys for p in points):
            _fail("sweep.points", points, "settings that each name the same keys")
        unknown = sorted(keys - set(SWEEP_RULES))
        if unknown:
            _fail("sweep.points", points, f"keys among {sorted(SWEEP_RULES)} (η̃ is always "
                  f"the grid of base_lrs, crossed with the points); got {unknown[0]!r}")
        for key in sorted(keys):
            check_values("sweep.points", key, [p[key] for p in points], points)
            if config.sweep[key]:
                _fail(f"sweep.{key}", config.sweep[key], f"() where sweep.points sets {key}")
        if len({tuple(sorted(p.items())) for p in points}) != len(points):
            _fail("sweep.points", points, "distinct settings")


def check_config(config, *, user_model: bool = False, user_data: bool = False) -> None:
    """`user_model`/`user_data`: the model or the data come from the API
    (smallbatch_jax.api), and config.model/dataset only name them. (config.objective is
    checked where it is looked up, once: run/build.py.)"""
    if not user_data and config.dataset not in DATASETS:
        if str(config.dataset).endswith(".npz"):  # (a file named where the kind goes)
            _fail("dataset", config.dataset, f"{DATASETS}; a file is given as "
                  f"--config.dataset=npz --config.data_dir={config.dataset}")
        _fail("dataset", config.dataset, DATASETS)
    if config.dataset == "npz" and not config.data_dir:
        _fail("data_dir", config.data_dir, "the .npz file of dataset='npz'")
    if not isinstance(config.standardize, bool):
        _fail("standardize", config.standardize, "True or False")
    if not isinstance(config.augment, bool):
        _fail("augment", config.augment, "True (pad 4, random crop, random flip) or False")
    if not isinstance(config.test_run, bool):
        _fail("test_run", config.test_run, "True (train the recommended setting for the test "
              "split after a sweep on a validation split) or False")
    if isinstance(config.validation, bool) or not isinstance(config.validation, (int, float)) \
            or not 0.0 <= config.validation < 1.0:
        _fail("validation", config.validation, "a fraction of the training set in [0, 1) to "
              "hold out and evaluate on (0: evaluate on the test split, the paper's protocol)")
    if config.dataset in BUILT_IN and BUILT_IN[config.dataset].streamed:
        name = config.dataset
        if config.augment:
            _fail("augment", config.augment, f"False for {name}: its augmentation is the "
                  "host pipeline's (data/imagenet.py), always on in training")
        if config.num_seeds != 1:
            _fail("num_seeds", config.num_seeds, f"1 for {name} (streamed: one data order "
                  "per program); run each seed as its own sweep")
        if config.standardize is not True:
            _fail("standardize", config.standardize, f"True for {name} (streamed: its images "
                  "are standardized on the device with the data set's statistics)")
        if config.validation:
            _fail("validation", config.validation, f"0 for {name} (streamed: no split is held "
                  "out of its training set; its validation images are its test split)")
        if not _is_int(config.image_size) or config.image_size < 32:
            _fail("image_size", config.image_size, "an integer >= 32 (the paper: 224)")
    if not _is_int(config.batch_size) or config.batch_size <= 0:
        _fail("batch_size", config.batch_size, "a positive integer no larger than the training set")
    if not _is_int(config.bn_batch_size) or config.bn_batch_size < 0 or (
            config.bn_batch_size and config.batch_size % config.bn_batch_size):
        _fail("bn_batch_size", config.bn_batch_size,
              f"0 (BN over the whole batch) or a positive divisor of batch_size={config.batch_size}")
    lrs = tuple(config.base_lrs) if isinstance(config.base_lrs, (tuple, list)) else ()
    if not lrs or not all(isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0
                          for lr in lrs):
        _fail("base_lrs", config.base_lrs, "a non-empty tuple of positive finite numbers")
    if not _is_int(config.epochs) or config.epochs <= 0:
        _fail("epochs", config.epochs, "a positive integer")
    if not _is_int(config.num_seeds) or config.num_seeds <= 0:
        _fail("num_seeds", config.num_seeds, "a positive integer")
    if not _is_int(config.seed) or config.seed < 0:
        _fail("seed", config.seed, "a non-negative integer")
    if not 0.0 <= config.warmup < 1.0:
        _fail("warmup", config.warmup, "a fraction of training in [0, 1)")
    if not config.weight_decay >= 0.0:
        _fail("weight_decay", config.weight_decay, "a number >= 0")
    if not (isinstance(config.grad_clip, (int, float)) and 0.0 <= config.grad_clip < math.inf):
        _fail("grad_clip", config.grad_clip, "a global norm > 0, or 0 (not clipped)")
    _check_sweep(config)
    if config.optimizer not in OPTIMIZERS:
        _fail("optimizer", config.optimizer, OPTIMIZERS)
    if config.lr_scaling not in ("",) + LR_SCALINGS:
        _fail("lr_scaling", config.lr_scaling, f"'' (the optimizer's default) or {LR_SCALINGS}")
    if not isinstance(config.nesterov, bool) or (config.nesterov and
                                                 config.optimizer != "momentum"):
        _fail("nesterov", config.nesterov, "False, or True with optimizer='momentum'")
    if config.optimizer == "momentum":
        if not 0.0 < config.momentum < 1.0:
            _fail("momentum", config.momentum, "a number in (0, 1) for optimizer='momentum'")
    elif config.momentum != 0.0:
        _fail("momentum", config.momentum, f"0 for optimizer={config.optimizer!r} (heavy-ball "
              "momentum is optimizer='momentum'; Adam's β₁ is adam.beta1)")
    adam = config.adam
    if not 0.0 <= adam.beta1 < 1.0:
        _fail("adam.beta1", adam.beta1, "a number in [0, 1)")
    if not 0.0 < adam.beta2 < 1.0:
        _fail("adam.beta2", adam.beta2, "a number in (0, 1)")
    if not adam.epsilon > 0.0:
        _fail("adam.epsilon", adam.epsilon, "a positive number")
    if adam.beta2_rule not in BETA2_RULES:
        _fail("adam.beta2_rule", adam.beta2_rule, BETA2_RULES)
    if not _is_int(adam.beta2_batch_size) or adam.beta2_batch_size <= 0:
        _fail("adam.beta2_batch_size", adam.beta2_batch_size,
              "a positive integer (the m at which adam.beta2 holds)")
    if not all(0.0 < p < 1.0 for p in config.lr_decay_points):
        _fail("lr_decay_points", config.lr_decay_points, "fractions of training in (0, 1)")
    if not 0.0 < config.lr_decay_factor <= 1.0:
        _fail("lr_decay_factor", config.lr_decay_factor, "a number in (0, 1]")
    if not _is_int(config.eval_batch_size) or config.eval_batch_size <= 0:
        _fail("eval_batch_size", config.eval_batch_size, "a positive integer")
    if not _is_int(config.evals_per_epoch) or config.evals_per_epoch <= 0:
        _fail("evals_per_epoch", config.evals_per_epoch,
              "a positive integer (1: after each epoch, as the paper)")
    if not config.memory_budget_gb >= 0:
        _fail("memory_budget_gb", config.memory_budget_gb,
              "0 (no budget) or the GiB one dispatch may use")
    if not _is_int(config.last_epochs) or config.last_epochs <= 0:
        _fail("last_epochs", config.last_epochs, "a positive integer (the paper: 5)")
    if not (isinstance(config.target, (int, float)) and math.isfinite(config.target)):
        _fail("target", config.target, f"a finite number ({DEFAULT_TARGET})")

    if not 0.0 <= config.reliable_tolerance <= 1.0:
        _fail("reliable_tolerance", config.reliable_tolerance,
              "an accuracy difference in [0, 1] (e.g. 0.02 for 2 points)")
    if config.precision not in PRECISIONS:
        _fail("precision", config.precision, PRECISIONS)
    cadence = config.checkpoint
    if not _is_int(cadence.every_epochs) or cadence.every_epochs < 0:
        _fail("checkpoint.every_epochs", cadence.every_epochs, "an integer >= 0 (0: off)")
    if not cadence.every_minutes >= 0:
        _fail("checkpoint.every_minutes", cadence.every_minutes, "a number >= 0 (0: off)")
    if not _is_int(cadence.keep) or cadence.keep < 1:
        _fail("checkpoint.keep", cadence.keep, "a positive integer")
    strategy_choice(config.strategy)
    if not user_model and config.model not in MODELS:
        # Last: importing a user's module may take a while (the cheap checks first).
        import_model(config.model)  # "package.module:attribute", or a clear error


DEFAULT_TARGET = "0: 95% of the way from a constant prediction's score to the sweep's best"


def check_against_data(config, dataset: DatasetLike, objective: Objective) -> None:
    """What the config asks of the data set, and the objective of its labels (and of the
    target: an accuracy of 94 for 94% was never reached, every m "not reached")."""
    if objective.metric_name == "accuracy" and not 0.0 <= config.target <= 1.0:
        _fail("target", config.target, f"an accuracy in [0, 1], e.g. 0.94 for 94% "
              f"({DEFAULT_TARGET})")
    labels = dataset.label_kind
    if objective.labels != labels:
        _fail("objective", config.objective,
              f"one for {labels}, e.g. "
              f"{'regression' if labels == 'targets' else 'classification'!r} "
              f"({dataset.name}'s labels are "
              + ("integer class ids)" if labels == "classes" else "real-valued targets)")
              + f"; this objective needs {objective.labels}")
    kind = dataset.input_kind
    if config.augment and kind != "images":
        _fail("augment", config.augment, f"False for {dataset.name}: its inputs are {kind}, "
              "and the augmentation (pad, crop, flip) is for (N, H, W, C) images")
    if config.augment and looks_channels_first((0,) + tuple(dataset.image_shape)):
        # (make_dataset warns of the layout; augmenting it would crop 3 rows out of 11 and
        # flip along the height: a wrong result, not a slow one)
        _fail("augment", config.augment, f"False for {dataset.name}'s images of shape "
              f"{tuple(dataset.image_shape)} per example, which look channels-first (C, H, W): "
              "the augmentation pads, crops and flips (H, W, C) images. Pass the images as "
              "x.transpose(0, 2, 3, 1)")
    positions = tuple(np.shape(getattr(dataset, "train_labels", np.zeros((0,))))[1:])
    if config.augment and labels == "classes" and positions:
        # (A segmentation's masks would stay as they were while their images are cropped
        # and flipped.)
        _fail("augment", config.augment, f"False for {dataset.name}'s labels per position "
              f"{positions}: the augmentation crops and flips the images, not their labels")
    if config.batch_size > dataset.num_train:
        _fail("batch_size", config.batch_size,
              f"at most the {dataset.num_train} training examples of {dataset.name}")
    steps_per_epoch = dataset.num_train // config.batch_size
    if config.evals_per_epoch > steps_per_epoch:
        _fail("evals_per_epoch", config.evals_per_epoch,
              f"at most the {steps_per_epoch} steps of an epoch at m = {config.batch_size}")


def check_metric_window(config, steps_per_epoch: int) -> None:
    """The paper's metric is the median over the last `last_epochs` (5) of 82 epochs, all of
    them after the schedule's last decay (at epoch 61.5): it measures where training ends,
    steadied against one epoch's noise. A short run's window reaches back before that decay
    (5 epochs of 5: on a rising curve the median is the third epoch's score), and where half
    or more of the epochs it reads were evaluated before the last decay, the median can be a
    mid-training score, which ranks settings by how fast they train as much as by where they
    end (the README's example at 5 epochs: m = 4 and 16 tied at 0.856, their third epochs'
    scores; at the end m = 16 had 0.872, m = 4 0.862). Warned of, with the window that lies
    after the decay (optim.epochs_before_last_decay); the results rows and the study's
    summary say it too (`metric_epochs_before_decay`)."""
    epochs, window = config.epochs, min(config.last_epochs, config.epochs)
    before, decay_epoch = epochs_before_last_decay(epochs, window, steps_per_epoch,
                                                   config.lr_decay_points,
                                                   config.lr_decay_factor)
    if not median_reads_mid_training(before, window):
        return
    first = epochs - window + 1
    shown = (f"epoch {first}" if before == 1 else f"epochs {first}–{first + before - 1}")
    logging.warning(
        "m = %d: the metric is the median over the last %d epochs, and %d of them (%s) %s "
        "evaluated before the learning rate's last decay (at epoch %.4g of %d): its median can "
        "be a mid-training score, which ranks the settings by how fast they train as much as "
        "by where they end (the paper reads 5 of 82 epochs, all after it). Set last_epochs "
        "to at most %d (the epochs after it), or train longer.", config.batch_size, window,
        before, shown, "is" if before == 1 else "are", decay_epoch, epochs,
        epochs - math.floor(decay_epoch))


def check_ghost_batch_norm(name: str, variables, batch_size: int, bn_batch_size: int,
                           built_in: bool) -> None:
    """config.bn_batch_size (m_BN < m: ghost BatchNorm) reaches the built-in models' BN
    layers only: a user's or an imported model normalizes as it is written, and a model
    without BatchNorm has nothing to take it. Either would train as if m_BN = m while the
    results recorded m_BN: refused instead."""
    if not bn_batch_size or bn_batch_size == batch_size:
        return
    if not built_in:
        _fail("bn_batch_size", bn_batch_size,
              f"0 for model {name}: m_BN sets the groups of the built-in models' BatchNorm, "
              "and yours normalizes as it is written. For ghost BatchNorm, put "
              "smallbatch_jax.models.ghost_bn.GhostBatchNorm(group_size=m_BN) in it")
    if "batch_stats" not in variables:
        with_bn = sorted(n for n in MODELS if n != name and (
            n.startswith(f"{name}_bn") or n == name.removesuffix("_nobn")))
        _fail("bn_batch_size", bn_batch_size, f"0 for model {name}, which has no BatchNorm"
              + (f" ({', '.join(with_bn)} {'has' if len(with_bn) == 1 else 'have'} it)"
                 if with_bn else ""))


# How many training examples a user's model's initial outputs are read on: enough that a head
# without an output activation gives outputs of both signs (check_outputs_can_take_targets);
# fewer (down to 8) where 64 would exceed INITIAL_VALUES input values (224² images: 8).
INITIAL_EXAMPLES = 64
INITIAL_VALUES = 2**20


def initial_outputs(model, dataset: DatasetLike, layer_inputs: list | None = None,
                    first_half: list | None = None):
    """The freshly initialized model's outputs (train=False, as NumPy) on a few training
    examples as the step gives them, standardized: the first INITIAL_EXAMPLES and, for token
    ids, those holding the largest and the smallest id. None for a streamed data set (its
    examples are not at hand here). `layer_inputs`: a list to append (layer, its input) to
    for every VALUE_LAYERS call, in the order of the calls (the input itself for the first,
    its dtype alone for the others: a deep model's activations are not kept). `first_half`:
    a list to append the outputs of the first half of those examples to, evaluated beside
    other examples: the first half again instead of the second (check_examples_independent;
    the same batch shape, so no new compilation)."""
    inputs = getattr(dataset, "train_images", None)
    if inputs is None:
        return None
    per_example = max(int(np.prod(inputs.shape[1:])), 1)
    count = min(INITIAL_EXAMPLES, max(8, INITIAL_VALUES // per_example))
    picks = list(range(min(count, len(inputs))))
    if dataset.input_kind == "tokens":
        flat = inputs.reshape(len(inputs), -1)
        picks += [int(flat.max(axis=1).argmax()), int(flat.min(axis=1).argmin())]
    x = np.asarray(inputs[picks]).astype(model_input_dtype(dataset))
    if dataset.mean is not None:
        x = (x - dataset.mean) / dataset.std  # as the step gives them (engine/step.py)
    key = jax.random.key(0)
    variables = model.init(init_rngs(key), x, train=False)
    recorded = [] if layer_inputs is None else layer_inputs
    with (nn.intercept_methods(_value_layer_recorder(recorded)),
          nnx_value_layers_recorded(recorded)):
        outputs = model.apply(variables, x, train=False)
    check_evaluation_deterministic(model, variables, x, outputs)
    if first_half is not None and len(x) >= 2:
        half = len(x) // 2
        beside = model.apply(variables, np.concatenate([x[:half], x[:len(x) - half]]),
                             train=False)
        first_half.append(jax.tree.map(
            lambda o: np.asarray(o)[:half] if np.ndim(o) and len(o) == len(x)
            else np.asarray(o), beside))
    return jax.tree.map(lambda o: np.asarray(o, np.float64), outputs)


def check_evaluation_deterministic(model, variables, x, outputs) -> None:
    """The lanes evaluate without random numbers. A Linen Dropout left active in evaluation
    asks for a 'dropout' stream there and is refused (check_model), but a flax.nnx Dropout
    called without deterministic=not train, wrapped for Linen, drew from a stream of its own:
    every evaluation read the network with the same half of its units dropped, without an
    error. Refused where the outputs change when evaluation is given a random stream (a
    model that draws none computes the same bits)."""
    nnx = loaded_nnx()
    if nnx is None or not isinstance(model, nnx.bridge.ToLinen):
        return
    given = model.apply(variables, x, train=False, rngs={"dropout": jax.random.key(1)})
    if not all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in
               zip(jax.tree.leaves(outputs), jax.tree.leaves(given))):
        raise ValueError(
            f"model {model_name(model)} draws random numbers when evaluated (train=False: its "
            "outputs change with the random stream it is given): an nnx.Dropout called "
            "without deterministic=not train? The lanes evaluate deterministically: pass "
            "deterministic=not train to every Dropout call")


def check_examples_independent(outputs, first_half: list, name: str,
                               layer_inputs: list = ()) -> None:
    """An evaluated model's outputs for an example must not depend on the examples evaluated
    beside it. The lanes evaluate the test split in batches of config.eval_batch_size, the
    last padded with zeros, and train on batches of m: a model that mixes the examples of a
    batch computes another function at every m, and its test metric is one of the test
    split's batching. Attention over (batch, features) inputs does (Flax's attention takes
    the axis before the features as the sequence): a user MLP with a SelfAttention layer on
    make_classification's 20 features, 4 classes, Adam, 6 epochs, was reported at m = 64
    with accuracy 0.772 (η = 2⁻⁸) where its trained weights score 0.454 on each test example
    alone (0.83 and 0.81 at 2⁻⁶), and the sweep compared such functions across m.
    Refused where the outputs of the first half of `initial_outputs`' examples change when
    the other half beside them is replaced by the first half again (`first_half`) by more
    than float rounding could: 1e-4 of the outputs' largest magnitude, or 8 units in the last
    place of the lowest precision the model computes in (its outputs' and its dense and
    convolutional layers' inputs, `layer_inputs`; bfloat16: 0.0625, where weaker mixing
    passes). The batch keeps its shape, so on this CPU every built-in model, a deep MLP, an
    LSTM, token attention and a bfloat16 MLP give their first half the same bits either way
    (between batches of 32 and 64 they differed by up to 1e-6, the bfloat16 MLP by 0.0015).
    BatchNorm with use_running_average=not train mixes nothing when evaluated."""
    if outputs is None or not first_half:
        return
    dtypes = [leaf.dtype for leaf in jax.tree.leaves(first_half[0])] + [
        x.dtype for _, x in layer_inputs if hasattr(x, "dtype")]
    tolerance = max([1e-4] + [8 * float(jax.numpy.finfo(d).eps) for d in dtypes
                              if jax.numpy.issubdtype(d, jax.numpy.floating)])
    differences = []
    for full, half in zip(jax.tree.leaves(outputs), jax.tree.leaves(first_half[0])):
        if full.ndim == 0 or half.ndim == 0 or half.shape[0] >= full.shape[0]:
            continue  # (not per example)
        scale = max(float(np.max(np.abs(full), initial=0.0)), 1e-30)
        gap = np.abs(full[:half.shape[0]] - half.astype(np.float64))
        if np.all(np.isfinite(gap)):
            differences.append(float(gap.max()) / scale)
    if differences and max(differences) > tolerance:
        half = len(jax.tree.leaves(first_half[0])[0])
        raise ValueError(
            f"model {name}: its outputs for an example depend on the other examples evaluated "
            f"with it (train=False): the outputs of {half} examples changed by up to "
            f"{max(differences):.3g} of their largest magnitude when the {half} examples "
            "beside them were replaced. The lanes evaluate the test split in batches (of "
            "config.eval_batch_size, the last padded with zeros) and train on batches of m: "
            "its test metric would be one of how the test split is batched, and each m would "
            "train a different function. Attention over (batch, features) inputs does this "
            "(Flax's attention takes the axis before the features as the sequence: give it "
            "(batch, length, features), e.g. x[:, None, :]); so does a mean or a sum over the "
            "batch axis")


# Layers that compute with their input's values: an integer input there is a number, not an
# id (nn.Embed looks ids up).
VALUE_LAYERS = (nn.Dense, nn.DenseGeneral, nn.Conv, nn.ConvTranspose, nn.ConvLocal, nn.Einsum)


def _layer_name(module) -> str:
    """A Flax layer as the checks name it: its path in the model, or its class."""
    return "/".join(map(str, module.path)) or type(module).__name__


def _value_layer_recorder(found: list):
    """A Flax method interceptor appending (layer path, input) for every VALUE_LAYERS call: the
    first call's input, and the dtype alone (a ShapeDtypeStruct) of the others'."""
    def record(call, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, VALUE_LAYERS):
            x = args[0] if args else next(iter(kwargs.values()), None)
            kept = x if not found else (jax.ShapeDtypeStruct((), x.dtype)
                                        if hasattr(x, "dtype") else None)
            found.append((_layer_name(module), kept))
        return call(*args, **kwargs)
    return record


@contextlib.contextmanager
def nnx_calls_recorded(record: dict):
    """`record[name](self, *args, **kwargs)` called before each call of the flax.nnx layer
    class `nnx.<name>` (those of them this Flax has) while the context lasts: the records
    that Linen's method interception makes of Linen layers (`_value_layer_recorder`,
    `_batch_norm_recorder`, `_idle_dropout_recorder`), made of an NNX model wrapped for
    Linen, whose layers it does not see. Nothing where flax.nnx is not imported."""
    nnx = loaded_nnx()
    layers = {name: getattr(nnx, name) for name in record
              if nnx is not None and hasattr(nnx, name)}
    calls = {name: layer.__call__ for name, layer in layers.items()}

    def recording(name):
        def call(self, *args, **kwargs):
            record[name](self, *args, **kwargs)
            return calls[name](self, *args, **kwargs)
        return call

    for name, layer in layers.items():
        layer.__call__ = recording(name)
    try:
        yield
    finally:
        for name, layer in layers.items():
            layer.__call__ = calls[name]


def nnx_value_layers_recorded(found: list):
    """_value_layer_recorder's records of NNX Linear, LinearGeneral, Conv, ConvTranspose and
    Einsum layers, as the model is applied: without them an NNX Linear computing on raw
    integer features, or on inputs the model rescaled itself, went unnamed where a Linen
    Dense is named."""
    def value_layer(self, x, *args, **kwargs):
        kept = x if not found else (jax.ShapeDtypeStruct((), x.dtype)
                                    if hasattr(x, "dtype") else None)
        found.append((f"nnx.{type(self).__name__}", kept))

    return nnx_calls_recorded({name: value_layer for name in (
        "Linear", "LinearGeneral", "Conv", "ConvTranspose", "Einsum")})


# A first layer's inputs whose spread is this many times the standardized inputs' (or its
# inverse) were rescaled by the model itself (`check_first_layer_scale`).
RESCALED = 10.0


def check_first_layer_scale(layer_inputs: list, dataset: DatasetLike, name: str) -> None:
    """Inputs reach a model standardized (std 1 per channel or feature); a model that
    rescales them itself, as written for raw pixels (x / 255), trains on inputs hundreds of
    times smaller than intended: a user CNN on digits' gray levels 0–255 trained to 0.1385
    accuracy at best, at every m, its training loss after 10 epochs 2.3019 against a constant
    prediction's 2.3026, where without its x / 255 it reached 0.874; the report recommended
    the grid's smallest η̃ as if it had learned.
    Warned of where the first dense or convolutional layer's input spread differs from the
    standardized inputs' by RESCALED× or more."""
    if dataset.mean is None or dataset.input_kind == "tokens" or not layer_inputs:
        return
    layer, x = layer_inputs[0]
    if not hasattr(x, "dtype") or not jax.numpy.issubdtype(x.dtype, jax.numpy.floating):
        return
    spread = float(np.std(np.asarray(x, np.float64)))
    if 1 / RESCALED < spread < RESCALED or spread == 0:
        return
    logging.warning(
        "model %s: its first layer, %s, receives inputs of standard deviation %.3g, though "
        "the inputs reach the model standardized (std 1 per %s): does the model rescale them "
        "itself (x / 255, a normalization of its own)? It then trains on inputs %.3g× %s "
        "than standardized ones, and every answer is that model's. Drop its rescaling, or "
        "pass config.standardize=False to give it the raw values", name, layer, spread,
        "channel" if dataset.input_kind == "images" else "feature",
        1 / spread if spread < 1 else spread, "smaller" if spread < 1 else "larger")


def check_integer_features(name: str, layer_inputs: list, dataset: DatasetLike) -> None:
    """Integer inputs that are not images are token ids, passed as they are (data/dataset.py:
    check_token_ids says so at INFO, which Python does not show). Numeric features stored
    as integers (a DataFrame's counts, ages, amounts) then reach the model's first dense
    layer unstandardized: on ages, incomes and hours (up to 150,000) every lane of a user
    MLP diverged, and the report asked for a smaller η̃. `layer_inputs`: (layer, input) of
    the model's VALUE_LAYERS calls (initial_outputs); an nn.Embed's lookup is none of them."""
    layers = [layer for layer, x in layer_inputs if hasattr(x, "dtype")
              and jax.numpy.issubdtype(x.dtype, jax.numpy.integer)]
    if not layers or dataset.input_kind != "tokens":
        return
    inputs = dataset.train_images
    logging.warning(
        "model %s: its layer %s computes with the integer inputs themselves (shape %s, values "
        "%d … %d), which are taken as token ids and passed unstandardized. If they are "
        "numeric features (counts, ages, amounts), pass x.astype(np.float32) to have them "
        "standardized; token ids go through an nn.Embed", name, layers[0],
        tuple(inputs.shape[1:]), int(inputs.min()), int(inputs.max()))


def check_finite_outputs(outputs, dataset: DatasetLike, name: str) -> None:
    """A user's model whose outputs are not finite before any step: every lane would be
    reported as diverged at step 0, and the report would ask for a smaller η̃, which no η̃
    can fix (token ids beyond an embedding's rows read NaN: a vocabulary of 60 into
    nn.Embed(50, …) did exactly that)."""
    if outputs is None or all(np.isfinite(o).all() for o in jax.tree.leaves(outputs)):
        return
    why = ""
    if dataset.input_kind == "tokens":
        inputs = dataset.train_images
        why = (f"; its token ids span [{int(inputs.min())}, {int(inputs.max())}]: an "
               f"embedding needs at least {int(inputs.max()) + 1} rows (JAX reads ids out of "
               "range as NaN)")
    raise ValueError(f"model {name} gives non-finite outputs at initialization, on training "
                     f"examples, before any step (no learning rate is to blame){why}")


def check_outputs_can_take_targets(outputs, dataset: DatasetLike, name: str) -> None:
    """A regression model with an output activation (ReLU, softplus, exp: right for targets
    that are positive in their units) learns the targets standardized, (y − μ)/σ, about half
    of them negative, which it cannot reach: on scikit-learn's diabetes a user MLP ending in
    a ReLU had a best test mse of 4394 where the same model without it had 2654, without a
    word. `outputs`: `initial_outputs`; refused where they all have one sign on the examples
    read while the standardized targets have both."""
    if outputs is None or getattr(dataset, "target_mean", None) is None \
            or dataset.label_kind != "targets" or len(jax.tree.leaves(outputs)) != 1:
        return
    outputs = jax.tree.leaves(outputs)[0]
    learned = dataset.scaled_targets(dataset.train_labels)
    negative = float(np.mean(learned < 0))
    # (Outputs all 0, a head initialized at zero, say nothing of the sign it can take.)
    for sign, one_sided, share in (
            ("≥", (outputs >= 0).all() and (outputs > 0).any(), negative),
            ("≤", (outputs <= 0).all() and (outputs < 0).any(), float(np.mean(learned > 0)))):
        if one_sided and share > 0:
            raise ValueError(
                f"model {name}: its outputs are all {sign} 0 at initialization on "
                f"{len(outputs)} training examples (an output activation: ReLU, softplus, "
                f"exp?), but it learns the targets standardized, (y − μ)/σ, and {share:.0%} "
                "of them lie on the other side of 0: it cannot fit them. Return the last "
                "layer's outputs without the activation, or keep the targets in their units "
                "with objective=dataclasses.replace(smallbatch_jax.REGRESSION, "
                "scaled_targets=False) (config.standardize=False leaves the inputs "
                "unstandardized too)")


def check_outputs_are_logits(outputs, name: str) -> None:
    """A user's classifier whose last layer is a softmax: the classification loss applies
    its own, so it would train on the softmax of probabilities, slowly and badly, and every
    answer would be that crippled model's (on a 4-class problem: 0.49 and 0.64 accuracy where
    the logits gave 0.85 and 0.94). `outputs`: `initial_outputs`: outputs that are
    non-negative and sum to 1 in every row are probabilities (logits essentially never are;
    log-probabilities, which are fine, are ≤ 0)."""
    if outputs is None:
        return
    if (outputs >= 0).all() and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3):
        raise ValueError(
            f"model {name}: its outputs look like probabilities (non-negative, each row "
            "summing to 1): the classification loss takes logits and applies its own "
            "softmax. Return the last layer's outputs without the softmax (log-softmax is "
            "fine), or give your own objective")


# What check_objective suggests instead of a batch mean.
EXAMPLE_PER_EXAMPLE = {
    "loss": "Return e.g. optax.softmax_cross_entropy_with_integer_labels(outputs, labels), "
            "not its mean",
    "metric": "Return e.g. (jnp.argmax(outputs, -1) == labels).astype(jnp.float32), not its "
              "mean"}


def check_objective(objective: Objective, outputs, dataset: DatasetLike,
                    batch_size: int) -> None:
    """A user's objective called on a batch of the model's outputs and the data's labels
    (shapes only): its loss and metric must each return one value per example, (batch,).
    The lanes take the loss's mean over the batch, and sum the metric and loss over the test
    set's examples, its last batch's padding masked out: a batch mean (shape ()) was summed
    once per example, padding included, and a (batch, 1) broadcast against the mask to
    (batch, batch): a wrong test metric, without an error."""
    label_shape = tuple(getattr(dataset, "train_labels", np.zeros((0,))).shape[1:])
    labels = jax.ShapeDtypeStruct((batch_size,) + label_shape,
                                  np.int32 if dataset.label_kind == "classes" else np.float32)
    for what, function in (("loss", objective.loss), ("metric", objective.metric)):
        try:
            value = jax.eval_shape(function, outputs, labels)
        except Exception as error:  # noqa: BLE001 – whatever the user's function raised
            first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
            raise ValueError(
                f"the objective's {what} cannot take the model's outputs "
                f"{jax.tree.map(lambda o: o.shape, outputs)} and labels {labels.shape} "
                f"({type(error).__name__}: {first})") from error
        shapes = [leaf.shape for leaf in jax.tree.leaves(value)]
        if shapes != [(batch_size,)]:
            raise ValueError(
                f"the objective's {what}"
                + (f" ({objective.metric_name})" if what == "metric" else "")
                + f" returns {shapes[0] if len(shapes) == 1 else shapes} for a batch of "
                f"{batch_size}; it must return one value per example, shape ({batch_size},): "
                f"the lanes average it themselves (over the batch, and over the test set with "
                "its last batch's padding left out), so a batch mean would be counted wrongly. "
                + EXAMPLE_PER_EXAMPLE[what])


def _mean_of(function, outputs, labels) -> float:
    """The mean over examples of a loss or metric `function` of (outputs, labels)."""
    return float(np.mean(np.asarray(function(jax.numpy.asarray(outputs, jax.numpy.float32),
                                             jax.numpy.asarray(labels)), np.float64)))


def check_per_example(what: str, function, shape: tuple, y) -> None:
    """The objective's `what` ('loss' or 'metric') must give each example a value of its own
    output and label alone: the lanes average the loss over a training batch and sum both
    over the test set in batches of config.eval_batch_size, the last one padded. Called on
    random outputs (`shape` per example) for labels `y`, then with the second half of the
    batch replaced by copies of the first: the first half's values must not change. Outputs
    (batch, 1) against targets (batch,), as PyTorch's MSELoss warns of, broadcast to
    (batch, batch): a squared error of every output against every target passed the shape
    check, and the check of directions then called it a log-likelihood whose sign to turn.
    (A statistic of the batch broadcast to every example is left to _check_metric_direction,
    which names it.)"""
    y = np.asarray(y)
    half = len(y) // 2
    if half < 2:
        return
    outputs = np.random.default_rng(0).normal(size=(2 * half,) + shape).astype(np.float32)
    y = y[:2 * half]
    values = lambda out, labels: np.asarray(function(jax.numpy.asarray(out),
                                                     jax.numpy.asarray(labels)), np.float64)
    alone = values(outputs, y)
    beside_itself = values(np.concatenate([outputs[:half]] * 2), np.concatenate([y[:half]] * 2))
    if alone.shape != (2 * half,) or np.ptp(alone) == 0 or np.ptp(beside_itself) == 0:
        return
    changed = ~np.isclose(alone[:half], beside_itself[:half], rtol=1e-4, atol=1e-6)
    if not np.any(changed & np.isfinite(alone[:half])):
        return
    batched = lambda dims: str(("batch", *dims)).replace("'", "")
    broadcast = (f" Outputs of shape {batched(shape)} against labels of shape "
                 f"{batched(y.shape[1:])} broadcast to (batch, batch) in an elementwise "
                 "difference: reshape the outputs to the labels' shape first "
                 "(outputs.reshape(labels.shape)).") if shape == y.shape[1:] + (1,) else ""
    raise ValueError(
        f"the objective's {what} gives an example a value that depends on the other examples "
        f"of its batch: {int(changed.sum())} of {half} examples changed when the rest of the "
        f"batch was replaced.{broadcast} The lanes average it per example (over the training "
        "batch, and over the test set in batches of config.eval_batch_size, the last one "
        "padded): it must return each example's value of its own output and label alone; a "
        "loss that couples the examples of a batch (a contrastive loss) cannot be swept here")


def confident_logits(y: np.ndarray, num_classes: int) -> np.ndarray:
    """A confident, not certain, prediction of class labels `y`: logit log(9(C − 1)) for the
    labelled class against 0 for the others, probability 0.9 (a label-smoothed loss still
    prefers it); at a position labelled IGNORED_LABEL class 0 (the objective skips it). Not
    np.eye(C)[y]: C² values for a vocabulary of C classes."""
    perfect = np.zeros(np.shape(y) + (num_classes,))
    np.put_along_axis(perfect, np.where(y == IGNORED_LABEL, 0, y)[..., None].astype(np.int64),
                      math.log(9 * max(num_classes - 1, 1)), axis=-1)
    return perfect


def check_ignored_left_out(objective: Objective, shape: tuple, labels,
                           num_classes: int) -> None:
    """Labels per position at IGNORED_LABEL (-100, padding) reach a user's objective as they
    are: a loss written without a mask (optax's cross-entropy of the labels as given) was
    NaN there, and every lane "diverged" at step 0, unexplained; a metric without one
    (argmax == labels) counted them as misses, without an error. Called on up to 64 training
    examples holding -100: the loss and the metric must be finite and must not change when
    the outputs at those positions do (refused), and the metric of a perfect prediction
    should not change when those positions are labelled as predicted (warned of: a metric
    summing over positions rather than averaging also does)."""
    y = np.asarray(labels)
    if y.ndim < 2 or tuple(shape) != y.shape[1:] + (num_classes,):
        return
    rows = np.flatnonzero((y == IGNORED_LABEL).reshape(len(y), -1).any(axis=1))
    if not len(rows):
        return
    y = y[rows[np.linspace(0, len(rows) - 1, min(len(rows), 64)).astype(int)]]
    ignored = (y == IGNORED_LABEL)[..., None]
    rng = np.random.default_rng(0)
    outputs = rng.normal(size=y.shape + (num_classes,)).astype(np.float32)
    moved = np.where(ignored, outputs + 10 * rng.normal(size=outputs.shape),
                     outputs).astype(np.float32)
    values = lambda function, out, labels: np.asarray(
        function(jax.numpy.asarray(out), jax.numpy.asarray(labels)), np.float64)
    mask = ("leave them out: counted = labels != -100, and each example's mean over its "
            "counted positions, jnp.where(counted, values, 0).sum(-1) / counted.sum(-1) (what "
            "the built-in objective does; an index of -100 into the outputs is out of range)")
    for what, function in (("loss", objective.loss), ("metric", objective.metric)):
        given, other = values(function, outputs, y), values(function, moved, y)
        finite = np.isfinite(given)
        if not finite.all() or not np.allclose(given, other, rtol=1e-5, atol=1e-6):
            raise ValueError(
                f"the objective's {what} "
                + (f"is not finite on {int((~finite).sum())} of {len(y)} training examples "
                   "holding labels" if not finite.all() else
                   "changes with the outputs at the positions labelled")
                + f" {IGNORED_LABEL} (IGNORED_LABEL: positions not to score, as PyTorch's "
                "ignore_index). They reach your objective as they are: " + mask)
    predicted = np.where(ignored[..., 0], 0, y)
    perfect = confident_logits(y, num_classes).astype(np.float32)
    scored_only, also = (values(objective.metric, perfect, t) for t in (y, predicted))
    if np.all(np.isfinite(scored_only)) and not np.allclose(scored_only, also, rtol=1e-5,
                                                            atol=1e-6):
        logging.warning(
            "the objective's metric (%s) of a perfect prediction changes when the positions "
            "labelled %d (IGNORED_LABEL: not to score) are labelled as predicted instead "
            "(%.4g against %.4g on average): does it count them, as misses? If so, %s",
            objective.metric_name, IGNORED_LABEL, float(scored_only.mean()),
            float(also.mean()), mask)


def check_directions(objective: Objective, outputs, dataset: DatasetLike) -> None:
    """A user's loss and metric scored on a perfect prediction and on a constant one, over
    up to 256 training examples: the loss, which the lanes minimize, must be lower for the
    perfect one, and the metric must rank it better, as its `higher_is_better` says. An
    Objective whose metric is an error but keeps the default higher_is_better=True (and
    metric_name 'accuracy') was maximized: every best, range and recommendation named the
    worst settings, under the name "accuracy", without an error; a log-likelihood given as
    the loss without its minus sign trains away from the data at every η̃. The perfect
    prediction: the targets themselves (outputs shaped like them; standardized for the
    loss where the model learns them so) or logits that give the labelled class probability
    0.9 ((batch, classes) outputs: confident, not certain, so that a label-smoothed loss
    still prefers them); the constant one: objectives.constant_outputs (the training split's
    class frequencies, or its mean target). For other outputs (a single logit for two
    classes, a mean and a variance per target) the metric alone is checked, on the outputs
    the loss itself calls perfect and constant (objectives.fitted_outputs, fitted_constant;
    where the loss and the metric see the same labels): a binary classifier's error rate
    left at higher_is_better=True passed unchecked."""
    if objective.metric_name == "accuracy" and not objective.higher_is_better:
        raise ValueError("the objective's metric is named 'accuracy' with higher_is_better="
                         "False: give it a metric_name that says what it measures")
    leaves = jax.tree.leaves(outputs)
    labels = getattr(dataset, "train_labels", None)
    if labels is None or len(leaves) != 1:
        return
    shape = tuple(leaves[0].shape[1:])
    # (Spread over the training split: data sorted by class would give its first 256 one
    # class, where a constant prediction is as good as a perfect one.)
    y = np.asarray(labels)[np.unique(np.linspace(0, len(labels) - 1, 256).astype(int))]
    classes = dataset.label_kind == "classes"
    # The loss sees the labels as the model learns them (targets standardized), the metric
    # as the test set holds them (outputs mapped back: engine/step.py).
    scaled = (lambda x: x) if classes else dataset.scaled_targets
    for what, function, seen in (("loss", objective.loss, scaled(y)),
                                 ("metric", objective.metric, y)):
        check_per_example(what, function, shape, seen)
    if classes:
        check_ignored_left_out(objective, shape, labels, dataset.num_classes)

    def predictions(y, train_labels):  # (perfect, constant) outputs for labels y
        constant = constant_outputs(train_labels, dataset.label_kind, dataset.num_classes,
                                    shape, len(y))
        if constant is None:
            return None, None
        if classes:
            perfect = confident_logits(y, dataset.num_classes)
        else:
            perfect = np.asarray(y, np.float64).reshape((len(y),) + shape)
        return perfect, constant

    perfect, constant = predictions(scaled(y), scaled(labels))
    if perfect is None:
        if classes or getattr(dataset, "target_mean", None) is None:  # (both see y alike)
            perfect, one = fitted_outputs(objective, y, shape), fitted_constant(
                objective, labels, shape)
            if perfect is not None and one is not None:
                _check_metric_direction(objective, perfect,
                                        np.broadcast_to(one, (len(y),) + shape), y)
        return
    low, high = (_mean_of(objective.loss, out, scaled(y)) for out in (perfect, constant))
    if math.isfinite(low) and math.isfinite(high) and low > high:
        raise ValueError(
            f"the objective's loss is {low:.4g} for a perfect prediction and {high:.4g} for a "
            f"constant one on {len(y)} training examples: the lanes minimize it, and would "
            "train away from the data (a log-likelihood or an accuracy needs its sign "
            "turned: return its negative)")
    _check_metric_direction(objective, *predictions(y, labels), y)


# Raw targets whose mean or spread exceeds this reach a user's objective far from the unit
# scale the η̃ grid suits (`check_raw_target_scale`).
RAW_TARGET_SCALE = 10.0


def check_raw_target_scale(objective: Objective, dataset: DatasetLike) -> None:
    """A user's objective gets real-valued targets as they are unless it says
    scaled_targets=True (a multi-label cross-entropy must not see its multi-hot targets
    standardized). A squared error of its own on scikit-learn's diabetes (mean 152, spread
    77) then diverged at 11 of 12 (m, η̃), the survivor at the grid's smallest η̃, where
    with scaled_targets=True 7 trained (best 2699 against 3395): the sweep's answer was the
    targets' scale. Warned of where their mean or spread exceeds RAW_TARGET_SCALE."""
    labels = getattr(dataset, "train_labels", None)
    if (labels is None or dataset.label_kind != "targets" or objective.scaled_targets
            or getattr(dataset, "target_mean", None) is not None):
        return
    values = np.asarray(labels, np.float64)
    mean, spread = float(np.abs(values.mean())), float(values.std())
    if max(mean, spread) > RAW_TARGET_SCALE:
        logging.warning(
            "%s: the objective's targets reach it as they are (scaled_targets=False), of mean "
            "%.4g and spread %.4g: far from the unit scale the η̃ grid suits, lanes diverge "
            "or crawl by the targets' scale, not the batch size's. If the model's outputs are "
            "predictions in the targets' units, give the Objective scaled_targets=True (it "
            "trains on standardized targets, its metric in their units)", dataset.name,
            values.mean(), spread)


def _check_metric_direction(objective: Objective, perfect, constant, y) -> None:
    """check_directions' metric half: a statistic of the batch refused, and the metric's
    ranking of the `perfect` and the `constant` prediction of labels `y` against its
    higher_is_better."""
    best, flat = _mean_of(objective.metric, perfect, y), _mean_of(objective.metric, constant, y)
    if not (math.isfinite(best) and math.isfinite(flat)) or best == flat:
        return
    # A statistic of the whole batch broadcast to each example (an AUC, the batch's accuracy)
    # passes check_objective's shape test, but the lanes sum per-example values over the test
    # set, its last batch's padding masked out: the padding's predictions enter it, and a
    # statistic that is no mean of per-example values is read as one. A metric that tells
    # the perfect prediction from the constant one on average, but gives one value to every
    # example of a prediction perfect on half of them and constant on the rest, is one.
    half = (np.arange(len(y)) % 2 == 0).reshape((-1,) + (1,) * (perfect.ndim - 1))
    varied = np.where(half, perfect, constant)
    values = np.asarray(objective.metric(jax.numpy.asarray(varied, jax.numpy.float32),
                                         jax.numpy.asarray(y)), np.float64).ravel()
    if len(values) == len(y) and np.ptp(values) == 0:
        raise ValueError(
            f"the objective's metric ({objective.metric_name!r}) gives all {len(y)} training "
            f"examples the same value, {values[0]:.4g}, for a prediction perfect on half of "
            "them and constant on the rest: a statistic of the whole batch broadcast to each "
            "example? The lanes average per-example values over the test set, its last "
            "batch's padding masked out, so a batch statistic would be counted wrongly. "
            "Return one value per example (e.g. (jnp.argmax(outputs, -1) == labels).astype("
            "jnp.float32)); a statistic that is not a mean over examples (an AUC, an F1 score) "
            "cannot be the metric")
    if (best > flat) != objective.higher_is_better:
        stated = "higher" if objective.higher_is_better else "lower"
        raise ValueError(
            f"the objective's metric ({objective.metric_name!r}, higher_is_better="
            f"{objective.higher_is_better}) scores a perfect prediction {best:.4g} and a "
            f"constant one {flat:.4g} on {len(y)} training examples: {stated} is worse "
            "for it, and the sweep would name its worst settings best. Give the Objective "
            f"higher_is_better={not objective.higher_is_better} (and a metric_name that says "
            "what it measures)")


def _batch_norm_recorder(found: list, frozen: list | None = None):
    """A Flax method interceptor that appends (layer, input shape, values per statistic,
    momentum of its running averages) to `found` for every BatchNorm (Flax's or
    GhostBatchNorm) that normalizes with its batch's statistics, and the layer's name to
    `frozen` for every one that normalizes with its running averages; called as the model
    trains (train=True)."""
    def record(call, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, (nn.BatchNorm,
                                                                      GhostBatchNorm)):
            x = args[0] if args else kwargs.get("x")  # (called as bn(x) or bn(x=…))
            given = kwargs.get("use_running_average", args[1] if len(args) > 1 else None)
            running = module.use_running_average if given is None else given
            if frozen is not None and hasattr(x, "shape") and running:
                frozen.append(_layer_name(module))
            if hasattr(x, "shape") and not running:
                shape = tuple(x.shape)
                if isinstance(module, GhostBatchNorm):  # (features last; groups of m_BN)
                    count = (module.group_size or shape[0]) * math.prod(shape[1:-1])
                else:
                    axes = module.axis if isinstance(module.axis, tuple) else (module.axis,)
                    kept = {a % len(shape) for a in axes}
                    count = math.prod(d for i, d in enumerate(shape) if i not in kept)
                found.append((_layer_name(module), shape, count, float(module.momentum)))
        return call(*args, **kwargs)
    return record


def check_batch_norm_inputs(name: str, normalized: list, batch_size: int,
                            bn_batch_size: int = 0) -> None:
    """A BatchNorm whose statistics are over one value per feature (after a dense layer at
    m = 1, or m_BN = 1) outputs its bias β whatever its input: the layers before it learn
    nothing, and the run's metric at this m is that of a model that ignores its inputs.
    Trains without an error, so it is named (a BatchNorm after a convolution normalizes over
    the image's positions too, and is fine at m = 1)."""
    single = [(layer, shape) for layer, shape, count, _ in normalized if count == 1]
    if single:
        layers = ", ".join(f"{layer} (input {shape})" for layer, shape in single)
        logging.warning(
            "model %s at m = %d%s: BatchNorm %s normalizes over one value per feature in "
            "training: its output is its bias β whatever the input, so nothing before it "
            "learns through it, and this run's results are those of a model that ignores "
            "its inputs there. A BatchNorm after a dense layer needs m (and m_BN) ≥ 2; drop "
            "this m, or use LayerNorm there", name, batch_size,
            f", m_BN = {bn_batch_size}" if bn_batch_size else "", layers)


# Above this share of a BatchNorm's running statistics still their initial values (mean 0,
# variance 1) at the first evaluation the metric reads, the run is warned of.
RUNNING_STATISTICS_LEFT = 0.05


def _idle_dropout_recorder(found: list):
    """A Flax method interceptor that appends the name of every nn.Dropout of a rate > 0
    that drops nothing when called as the model trains (deterministic=True)."""
    def record(call, args, kwargs, context):
        module = context.module
        if context.method_name == "__call__" and isinstance(module, nn.Dropout):
            given = kwargs.get("deterministic", args[1] if len(args) > 1 else None)
            deterministic = module.deterministic if given is None else given
            if deterministic is True and module.rate > 0:
                found.append(_layer_name(module))
        return call(*args, **kwargs)
    return record


def nnx_layers_recorded(normalized: list, frozen: list, idle: list):
    """_batch_norm_recorder's and _idle_dropout_recorder's records of NNX BatchNorm and
    Dropout layers, as the model is traced in training: without them an NNX BatchNorm at its
    default momentum 0.99 at large m, or an idle NNX Dropout, went unnamed where the Linen
    ones are warned of."""
    def normalize(self, x, use_running_average=None, **kwargs):
        running = self.use_running_average if use_running_average is None \
            else use_running_average
        name = f"nnx.BatchNorm({self.num_features})"
        if running:
            frozen.append(name)
        else:
            shape = tuple(x.shape)
            normalized.append((name, shape, math.prod(shape) // shape[self.axis],
                               float(self.momentum)))

    def drop(self, inputs, *, deterministic=None, **kwargs):
        if (self.deterministic if deterministic is None else deterministic) and self.rate > 0:
            idle.append(f"nnx.Dropout({self.rate:g})")

    return nnx_calls_recorded({"BatchNorm": normalize, "Dropout": drop})


def check_dropout_trains(name: str, idle: list) -> None:
    """An nn.Dropout given deterministic=True whatever `train` drops nothing in training:
    the study answers for the model without it, the user believing it regularized.
    Warned of."""
    if idle:
        logging.warning(
            "model %s: Dropout %s drop nothing in training (deterministic=True while "
            "train=True): the runs train the model without them. To drop in training, give "
            "nn.Dropout deterministic=not train (or a rate of 0 to have none)", name,
            ", ".join(idle[:6]) + (", …" if len(idle) > 6 else ""))


def check_batch_norm_trains_on_batches(name: str, frozen: list) -> None:
    """A BatchNorm given use_running_average=True whatever `train` (the `not train`
    forgotten) normalizes in training with running averages that never move from their
    start (mean 0, variance 1): a scale and a shift, no normalization, and nothing in it
    depends on the batch size. A user CNN on digits with two such layers trained without a
    word, to 0.904 at m = 8 where the same model normalizing its batches reached 0.950:
    the study answers for a model without batch normalization. Warned of (a BatchNorm
    frozen on purpose, as in fine-tuning, is a model's own choice)."""
    if frozen:
        logging.warning(
            "model %s: BatchNorm %s normalize with their running averages in training "
            "(use_running_average=True while train=True), which then never move from their "
            "start (mean 0, variance 1): they scale and shift, they do not normalize, and the "
            "batch size does not act through them. To normalize with the batch's statistics, "
            "give nn.BatchNorm use_running_average=not train", name,
            ", ".join(frozen[:6]) + (", …" if len(frozen) > 6 else ""))


def check_batch_norm_momentum(name: str, normalized: list, batch_size: int,
                              steps_before_metric: int) -> None:
    """The lanes evaluate with BatchNorm's running averages, which start at mean 0 and
    variance 1 and keep momentum^steps of that start: at a large m there are few steps (digits
    at m = 256: 5 an epoch), and with Flax's default momentum, 0.99, the evaluated model is
    far from the trained one (a user CNN, m = 256, 10 epochs: best 0.904 against 0.927 at
    momentum 0.9; at m = 16 both 0.95). That penalizes large batches for the statistics'
    lag, not for their training: warned of, per layer momentum. `steps_before_metric`: the
    steps before the first evaluation the run's metric reads."""
    momenta = sorted({momentum for *_, momentum in normalized})
    left = {momentum: momentum ** steps_before_metric for momentum in momenta}
    lagging = [momentum for momentum in momenta if left[momentum] > RUNNING_STATISTICS_LEFT]
    if not lagging:
        return
    layers = [layer for layer, _, _, momentum in normalized if momentum in lagging]
    worst = max(lagging)
    # (0.9 is the project's own; below it the running averages follow single batches' noise:
    # a run too short for 0.9 needs more epochs.)
    remedy = (f"Give BatchNorm momentum 0.9 ({100 * 0.9 ** steps_before_metric:.1f}% left), or "
              "more epochs" if worst > 0.9 else "Give it more epochs")
    logging.warning(
        "model %s at m = %d: BatchNorm running statistics (momentum %s; %s) still hold %.0f%% "
        "of their initial values (mean 0, variance 1) at the first evaluation the metric reads, "
        "after %d steps: the model evaluated is not the one trained, and the fewer steps of a "
        "larger m penalize it for that alone. %s", name, batch_size,
        ", ".join(f"{m:g}" for m in lagging),
        ", ".join(layers[:4]) + (", …" if len(layers) > 4 else ""), 100 * left[worst],
        steps_before_metric, remedy)


def check_weight_decay(name: str, params, weight_decay: float,
                       key: str = "weight_decay") -> None:
    """Weight decay covers the parameters named 'kernel' (optim.is_kernel: Flax's Dense,
    Conv, DenseGeneral, Einsum…). A model whose weights are its own `self.param('w', …)` has
    none, and a λ > 0 then changes nothing: a sweep over λ reads the same at every value
    ("spread over weight_decay 0.0000") and the results record a λ never applied: refused.
    Weight matrices (2 or more axes, biases aside) outside the decay beside kernels (an
    nn.Embed's table, a parameter of the model's own) are named in a warning.
    `weight_decay`: the largest λ of the run's lanes, from the config's `key`."""
    if not weight_decay > 0:
        return
    mask = is_kernel(params)
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    decayed = jax.tree.leaves(mask)
    path_text = lambda path: "/".join(str(getattr(k, "key", getattr(k, "name", k)))
                                      for k in path)
    size = lambda leaf: int(np.prod(leaf.shape))
    kernels = sum(size(leaf) for (_, leaf), d in zip(leaves, decayed) if d)
    # (A bias is no weight matrix when it has two axes: attention's, (heads, features).)
    left = [(path_text(path), leaf.shape, size(leaf)) for (path, leaf), d in
            zip(leaves, decayed) if not d and len(leaf.shape) >= 2
            and getattr(path[-1], "key", None) != "bias"]
    listing = lambda found: ", ".join(
        f"{path} ({'×'.join(map(str, shape))})" for path, shape, _ in found[:6]) + (
        ", …" if len(found) > 6 else "")
    if not kernels:
        raise ValueError(
            f"config.{key}: a weight decay up to {weight_decay:g}, but model {name} has no "
            "parameter named 'kernel', which is what weight decay covers (Flax's nn.Dense, "
            f"nn.Conv…; its weights: {listing(left) or 'none'}): every λ would train the "
            "same model, and the results would record a λ never applied. Name its weight "
            "matrices 'kernel' (self.param('kernel', …)), or run without weight decay "
            "(config.weight_decay=0, no sweep of it)")
    if left:
        logging.warning(
            "model %s: weight decay (λ up to %g) covers its parameters named 'kernel' (%d "
            "weights), not %s (%d weights), which train without it: the decay takes "
            "convolution and dense kernels only. To decay one of yours, name it 'kernel' "
            "(self.param('kernel', …))", name, weight_decay, kernels, listing(left),
            sum(n for *_, n in left))


def check_model(model, dataset: DatasetLike, objective: Objective, name: str,
                batch_size: int = 2, bn_batch_size: int = 0, built_in: bool = True,
                steps_before_metric: int | None = None, weight_decay: float = 0.0,
                weight_decay_key: str = "weight_decay") -> tuple[int, ...] | None:
    """The model `name` (a Flax module) against the data: it takes a `train` argument, takes
    the data's inputs, trains and evaluates as the lanes call it (on batches of
    `batch_size`, the run's m: ghost BatchNorm's groups must divide it), (under a built-in
    objective) gives one output per class, or per target component, and takes
    `bn_batch_size` if one is set (check_ghost_batch_norm); with `steps_before_metric` (the
    steps before the first evaluation the metric reads), that its BatchNorm statistics have
    forgotten their start by then (check_batch_norm_momentum); with `weight_decay` > 0 (the
    largest λ of the lanes, from `weight_decay_key`), that the decay reaches its weights
    (check_weight_decay). Returns the shape of the model's outputs per example (None where
    they are not one array)."""
    # (A flax.nnx class wrapped for Linen takes whatever its own __call__ takes.)
    parameters = inspect.signature(getattr(model, "nnx_class", model).__call__).parameters
    if "train" not in parameters and not any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        raise ValueError(f"model {name}: its __call__ takes no `train` argument; the lanes call "
                         "it as model.apply(variables, x, train=True/False) (dropout and "
                         "BatchNorm switch on it): add `train: bool` to its signature")
    inputs = jax.ShapeDtypeStruct((2,) + tuple(dataset.image_shape), model_input_dtype(dataset))
    try:
        outputs, variables = jax.eval_shape(
            lambda x: model.init_with_output(init_rngs(jax.random.key(0)), x, train=False),
            inputs)
    except Exception as error:  # noqa: BLE001 – whatever the model raised on this shape
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        if isinstance(error, TypeError) and "argument 'train'" in first:
            # (nn.Sequential hands every keyword to its first layer.)
            raise ValueError(
                f"model {name} passes `train` on to a layer that does not take it ({first}): "
                "the lanes call it as model.apply(variables, x, train=True/False), and an "
                "nn.Sequential hands that to its first layer. Wrap it in a module whose "
                "__call__(self, x, train) calls the sequence on x") from error
        raise ValueError(f"model {name} cannot take {dataset.name}'s inputs of shape "
                         f"{tuple(dataset.image_shape)} per example ({dataset.input_kind}; "
                         f"{type(error).__name__}: {first}). Give a model for these inputs "
                         "(a convolutional model takes (H, W, C) images, a dense one flat "
                         "features): a Flax module of yours, `--config.model=package.module:"
                         "attribute` or smallbatch_jax.api's `model=`") from error
    # Called as the lanes call it (engine/step.py: LaneStep.apply), in training and in
    # evaluation: what would otherwise fail at the first compile with Flax's bare error.
    batch = jax.ShapeDtypeStruct((batch_size,) + inputs.shape[1:], inputs.dtype)
    normalized = []  # (layer, input shape, values per statistic) of BatchNorm in training
    frozen = []  # BatchNorm layers that train on their running averages
    idle = []  # Dropout layers that drop nothing in training
    try:
        with (nn.intercept_methods(_batch_norm_recorder(normalized, frozen)),
              nn.intercept_methods(_idle_dropout_recorder(idle)),
              nnx_layers_recorded(normalized, frozen, idle)):
            jax.eval_shape(lambda v, x: model.apply(v, x, train=True,
                                                    rngs={"dropout": jax.random.key(0)},
                                                    mutable=["batch_stats"]), variables, batch)
    except InvalidRngError as error:
        raise ValueError(
            f"model {name} draws from a random stream the lanes do not give ({error}). "
            "Stochastic layers draw from Flax's 'dropout' stream, derived per lane and step "
            "from the seed: use self.make_rng('dropout')") from None
    except ModifyScopeVariableError as error:
        raise ValueError(
            f"model {name} updates variables in training that the lanes do not carry "
            f"({error}). Each lane carries its parameters and its 'batch_stats' collection, "
            "updated in training and read in evaluation: keep running statistics of your own "
            "there (self.variable('batch_stats', …))") from None
    check_ghost_batch_norm(name, variables, batch_size, bn_batch_size, built_in)
    check_weight_decay(name, variables.get("params", {}), weight_decay, weight_decay_key)
    check_batch_norm_inputs(name, normalized, batch_size, bn_batch_size)
    check_batch_norm_trains_on_batches(name, frozen)
    check_dropout_trains(name, idle)
    if steps_before_metric is not None:
        check_batch_norm_momentum(name, normalized, batch_size, steps_before_metric)
    try:
        batch_outputs = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                                       variables, batch)
    except ModifyScopeVariableError as error:
        raise ValueError(
            f"model {name} updates its variables when evaluated (train=False: {error}). The "
            "lanes evaluate with the running statistics: give nn.BatchNorm "
            "use_running_average=not train") from None
    except InvalidRngError as error:
        raise ValueError(
            f"model {name} draws random numbers when evaluated (train=False: {error}). The "
            "lanes evaluate deterministically: give nn.Dropout deterministic=not train") from None
    leaves = jax.tree.leaves(batch_outputs)
    output_shape = tuple(leaves[0].shape[1:]) if len(leaves) == 1 else None
    first_layers = []  # (layer, input) of the value layers, in the order called
    first_half = []  # the outputs of the first half of the initial examples, beside itself
    initial = None if built_in else initial_outputs(model, dataset, first_layers, first_half)
    check_examples_independent(initial, first_half, name, first_layers)
    check_first_layer_scale(first_layers, dataset, name)
    check_integer_features(name, first_layers, dataset)
    check_finite_outputs(initial, dataset, name)
    check_outputs_can_take_targets(initial, dataset, name)
    if objective not in OBJECTIVES.values():
        # A user's objective says itself what outputs it takes, but not what it returns.
        check_objective(objective, batch_outputs, dataset, batch_size)
        check_directions(objective, batch_outputs, dataset)
        check_raw_target_scale(objective, dataset)
        return output_shape
    if not isinstance(outputs, jax.ShapeDtypeStruct):
        # (One array in a dict or tuple passed the width check, then failed in the loss.)
        raise ValueError(
            f"model {name} returns a {type(outputs).__name__} of "
            f"{jax.tree.map(lambda o: o.shape, outputs)}; the built-in objectives take one "
            "array of outputs: return it alone, or give your own objective for these outputs")
    outputs = jax.tree.leaves(outputs)
    width = outputs[0].shape[-1] if len(outputs) == 1 and outputs[0].ndim >= 1 else None
    if dataset.label_kind == "classes":
        # One logit per class, at each position where the labels are per position.
        positions = tuple(np.shape(getattr(dataset, "train_labels", np.zeros((0,))))[1:])
        expected = ("batch",) + positions + (dataset.num_classes,)
        if len(outputs) != 1 or tuple(outputs[0].shape[1:]) != expected[1:]:
            unused = not (np.any(dataset.train_labels == 0) or np.any(dataset.test_labels == 0))
            present = np.unique(np.concatenate([scored(dataset.train_labels),
                                                scored(dataset.test_labels)]))
            codes = "" if unused or len(present) == dataset.num_classes else (
                f" (the labels take {len(present)} distinct values, "
                f"{', '.join(map(str, present[:8]))}{', …' if len(present) > 8 else ''}: if "
                "they are codes rather than class indices, number them 0 … "
                f"{len(present) - 1}, np.unique(y, return_inverse=True)[1] over the training "
                "and test labels together)")
            # One output for integer labels: one logit for two classes, or numeric targets
            # (counts, prices, ratings as whole numbers) read as class indices.
            one_output = "" if width != 1 else (
                " (one logit for two classes: the built-in cross-entropy takes one per class; "
                "return 2, or give your own objective, e.g. optax.sigmoid_binary_cross_entropy)"
                if dataset.num_classes == 2 else
                f" (the labels are integers, {len(present)} distinct values, read as class "
                "indices: if they are the numeric targets of a regression, give objective="
                "sbj.REGRESSION or --config.objective=regression)")
            raise ValueError(
                f"model {name} gives outputs of shape {[o.shape for o in outputs]} per batch "
                f"of 2; {dataset.name} has {dataset.num_classes} classes: the model needs "
                f"{str(expected).replace(chr(39), '')} outputs, one per class"
                + (f" at each of the labels' positions {positions}" if positions else "")
                + (one_output or (
                    f" (labels are class indices 0 … {dataset.num_classes - 1}, and no example "
                    "has label 0: if yours start at 1, subtract 1)" if unused else codes)))
        if not built_in:
            check_outputs_are_logits(initial, name)
    else:
        per_example = int(np.prod(outputs[0].shape[1:])) if len(outputs) == 1 else None
        if per_example != dataset.num_classes:
            raise ValueError(
                f"model {name} gives outputs of shape {[o.shape for o in outputs]} per batch "
                f"of 2; {dataset.name}'s targets have {dataset.num_classes} component(s) per "
                f"example: the model needs (batch, {dataset.num_classes}) outputs")
    return output_shape


# Components of a target whose spreads differ by more than this factor are named
# (`check_target_scales`).
TARGET_SPREADS_WARNED = 10.0


def check_target_scales(dataset: DatasetLike, objective: Objective | None) -> None:
    """The built-in regression's test metric sums a target's components' squared errors in
    their own units, while it trains on them standardized, each alike: components of
    unlike spreads (a weight in kg beside a pulse rate and a waist in cm; one in [0, 1]
    beside one in [0, 1000]) make the metric, and every best, range and recommendation
    read from it, the largest one's alone. Warned of, with the ways out."""
    if objective is not REGRESSION:
        return
    labels = np.asarray(dataset.train_labels, np.float64)
    if labels.ndim != 2 or labels.shape[1] < 2:
        return
    spread = labels.std(axis=0)
    if not np.any(spread > 0):
        return
    small = int(np.argmin(np.where(spread > 0, spread, np.inf)))
    large = int(np.argmax(spread))
    if spread[large] > TARGET_SPREADS_WARNED * spread[small]:
        logging.warning(
            "%s: the targets' components spread from %.3g (component %d) to %.3g (component "
            "%d), %.0f× apart; the test mse sums their squared errors in these units (the "
            "model trains on them standardized, each alike), so the metric, and every choice "
            "made on it, follows the widest. To weigh them alike, pass the targets "
            "standardized yourself ((y − mean) / std per component, the training split's), "
            "or give your own objective", dataset.name, spread[small], small, spread[large],
            large, spread[large] / spread[small])


def check_labels(dataset: DatasetLike, tolerance: float | None = None,
                 objective: Objective | None = None) -> None:
    """A warning for test classes the training split never shows (the model cannot learn
    them: the test metric is capped below 1), one for sequences padded at their end under
    the built-in objective (`check_padding`), and one for an evaluated split so small that
    one example moves the accuracy by more than half the study's `tolerance` (its reliable
    ranges and "within noise" would rest on single examples: the 13 examples a validation
    share of 0.01 of digits holds out are 0.077 an example against a tolerance of 0.02)."""
    if not dataset.streamed and dataset.label_kind == "targets":
        check_target_scales(dataset, objective)
    if dataset.streamed or dataset.label_kind != "classes":
        return
    # (Labels per position: the metric moves by one scored position of one example, of an
    # example's scored positions on average: padding marked IGNORED_LABEL is not scored.)
    scored_positions = np.size(scored(dataset.test_labels)) / max(dataset.num_test, 1)
    step = 1.0 / max(dataset.num_test * scored_positions, 1)
    if tolerance and step > tolerance / 2:
        logging.warning("%s: the %s split holds %d examples: its accuracy moves in steps of "
                        "%.3f, coarser than half the reliable-range tolerance (%g); settings "
                        "closer than a few examples are not told apart. Evaluate on more "
                        "examples (a larger config.validation, or test split)", dataset.name,
                        dataset.evaluated_on, dataset.num_test, step, tolerance)
    if objective in OBJECTIVES.values():
        check_padding(dataset.name, dataset.train_labels)
    unseen = np.setdiff1d(scored(dataset.test_labels), scored(dataset.train_labels))
    if len(unseen):
        split = dataset.evaluated_on  # (a validation split held out of a class's only example)
        logging.warning("%s: %s classes %s never occur in the training split; the %s metric "
                        "counts them as errors", dataset.name, split, unseen.tolist()[:20],
                        split)


def strategy_choice(section) -> StrategyChoice:
    """A config's `strategy` section read and checked: a bad value, or a field set away from
    its default while another preset than 'manual' chooses the fields (it would be silently
    ignored), raises naming the key."""
    if section.preset not in PRESET_CHOICES:
        _fail("strategy.preset", section.preset, PRESET_CHOICES)
    fields = {f.name: section[f.name] for f in dataclasses.fields(Strategy)}
    try:
        strategy = Strategy(**fields)
    except ValueError as error:
        raise ValueError(f"config.{error}") from None
    if section.preset != "manual":
        changed = sorted(name for name, value in fields.items()
                         if value != getattr(Strategy(), name))
        if changed:
            raise ValueError(f"config.strategy.{changed[0]}={fields[changed[0]]!r} is set, but "
                             f"strategy.preset={section.preset!r} chooses every field; set "
                             "strategy.preset='manual' to give the fields")
    share = section.get("tune_share", 0.1)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        _fail("strategy.tune_share", share, "a share of the run's time in (0, 1]")
    if section.table and not os.path.isfile(section.table):
        raise ValueError(f"config.strategy.table={section.table!r}: no such file; allowed: '' "
                         "(the packaged table) or a file of measured strategies "
                         "(experiments.gpu_check writes strategy_table.json)")
    return StrategyChoice(section.preset, strategy, section.table, float(share),
                          section.get("tune_cache", ""))
