"""A data set held whole in memory (and then on the device).

A `Dataset` is four arrays and what preprocessing needs. Its labels are 'classes' (integer
class ids, (N,); `num_classes` outputs) or 'targets' (real values, (N,) or (N, D), for a
regression; `num_classes` is then the model's output width, 1 or D): objectives.py says
which an objective needs. Its inputs are one of three kinds,
told apart by their shape and dtype (`input_kind`):
- 'images': (N, H, W, C), kept in their storage dtype (uint8 for CIFAR: four times less
  device memory than float32), standardized per channel inside the compiled step with
  `mean` and `std` computed on the training split; the only kind augmentation applies to;
- 'features': any other floating-point array (N, ...), e.g. flat vectors (N, F),
  standardized per feature (the last axis) likewise;
- 'tokens': integer arrays that are not images, e.g. sequences of token ids (N, T): passed
  to the model untouched (`mean` and `std` are None).
`standardize=False` leaves images and features untouched too.

Real-valued targets are standardized the same way by default (per component, with the
training split's `target_mean` and `target_std`) where the objective allows it
(`Objective.scaled_targets`: the built-in regression; a run under any other objective trains
on the targets as they are, `raw_targets`): a regression on targets of mean 152 and
standard deviation 77 (scikit-learn's diabetes) then trains at the η̃ that suits unit-scale
targets instead of blowing up at nearly all of them. The model learns standardized targets
(`scaled_targets`; the training and test loss are in those units); the test metric is
computed on its outputs mapped back to the targets' own units (engine/step.py: evaluate), so
a reported mean squared error is in the data's units. `standardize=False` trains on the
targets as they are.

Every run evaluates on one split, `evaluated_on`: the test split (the paper's protocol), or a
validation split held out from the training set (`hold_out`, config.validation), so that a
sweep's choices of m and η̃ are made without the test split, whose number for a setting
chosen on it is flattered by the choice.
"""

import dataclasses
import functools
import hashlib
import os
import zipfile
from typing import ClassVar, Protocol

import numpy as np
from absl import logging

INPUT_KINDS = ("images", "features", "tokens")
# What a run evaluates on: the test split, or a validation split held out from the training
# set (`hold_out`; its test split then takes no part in the run).
EVALUATION_SPLITS = ("test", "validation")
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


class DatasetLike(Protocol):
    """What every data set tells the library, held in memory (Dataset) or streamed
    (data/imagenet.py: StreamedDataset)."""

    name: str
    num_classes: int  # the model's output width: classes, or a target's components
    input_kind: str  # INPUT_KINDS
    label_kind: str  # 'classes' or 'targets' (objectives.LABEL_KINDS)
    streamed: bool  # fed from the host one batch per step, or held whole on the device
    evaluated_on: str  # EVALUATION_SPLITS: the split every evaluation of a run reads

    @property
    def num_train(self) -> int: ...

    @property
    def num_test(self) -> int: ...

    @property
    def image_shape(self) -> tuple[int, ...]: ...

    def unstandardized(self) -> "DatasetLike":
        """The same data, its inputs used as they are (config.standardize=False)."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # (N, H, W, C) images, or (N, ...) features or tokens
    train_labels: np.ndarray  # (N,) int32 classes, or (N,) / (N, D) float32 targets
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int  # the model's output width: classes, or a target's components
    mean: np.ndarray | None  # (C,) float32: per channel (last axis) of the training inputs
    std: np.ndarray | None  # (C,) float32; both None: the inputs are used as they are
    input_kind: str = "images"
    label_kind: str = "classes"  # 'classes' or 'targets' (objectives.LABEL_KINDS)
    # Targets' per-component mean and std on the training split: () for (N,) targets, (D,)
    # for (N, D); None for classes, or targets used as they are.
    target_mean: np.ndarray | None = None
    target_std: np.ndarray | None = None
    # The split in test_images and test_labels, which every evaluation reads: 'test', or
    # 'validation' (hold_out: examples held out from the training set).
    evaluated_on: str = "test"
    # The user's own validation split, as positions in the training arrays (make_dataset's
    # `validation`): what `hold_out` holds out instead of a random draw. None: none given.
    validation_indices: np.ndarray | None = dataclasses.field(default=None, compare=False)
    streamed: ClassVar[bool] = False  # held whole, then on the device

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    @property
    def num_test(self) -> int:
        return len(self.test_labels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])

    def unstandardized(self) -> "Dataset":
        return dataclasses.replace(self, mean=None, std=None, target_mean=None,
                                   target_std=None)

    def raw_targets(self) -> "Dataset":
        """The same data, its targets used as they are (an objective that does not allow
        standardized targets: objectives.Objective.scaled_targets)."""
        return dataclasses.replace(self, target_mean=None, target_std=None)

    @functools.cached_property
    def fingerprint(self) -> str:
        """A digest of the four arrays (their values, shapes and dtypes) and the label kind
        and number of classes: a run on a user's data records it, so that a rerun on other
        data under the same name is refused instead of answered with the finished run's
        results (run/build.py). Computed once per Dataset (~1 s per GB)."""
        digest = hashlib.blake2b(digest_size=8)
        digest.update(f"{self.label_kind}:{self.num_classes}".encode())
        if self.evaluated_on != "test":  # (the digest of a data set as before, otherwise)
            digest.update(self.evaluated_on.encode())
        if self.validation_indices is not None:
            digest.update(b"validation" + np.asarray(self.validation_indices, np.int64).tobytes())
        for array in (self.train_images, self.train_labels, self.test_images,
                      self.test_labels):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(memoryview(array).cast("B"))
        return digest.hexdigest()

    def scaled_targets(self, labels: np.ndarray) -> np.ndarray:
        """Labels as the model learns them: targets standardized (see above), classes and
        unstandardized targets as they are."""
        if self.target_mean is None:
            return labels
        return ((labels - self.target_mean) / self.target_std).astype(np.float32)


def hold_out(dataset: Dataset, fraction: float) -> Dataset:
    """The data set with `fraction` of its training examples held out as a validation split,
    which the run evaluates on in place of the test split (dropped: the run never sees it).
    The draw is fixed (seed 0, the same for every m, lane and rerun) and, for classes one
    per example, stratified: round(fraction × its count) examples of each class, so that a
    small validation split keeps the classes' shares. A data set made with its own
    validation split (make_dataset's `validation`: grouped or time-ordered data, where a
    random draw would put near-copies on both sides) holds that split out instead, whatever
    `fraction`. The standardization statistics are the remaining training examples' (where
    the data set had them: `standardize=False` and raw targets stay so). Both parts keep the
    order of the training set."""
    if dataset.streamed:
        raise ValueError(f"{dataset.name}: streamed; no validation split can be held out of "
                         "its training set (config.validation must be 0)")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{dataset.name}: a validation fraction must lie in (0, 1); got "
                         f"{fraction!r}")
    labels = dataset.train_labels
    if dataset.validation_indices is not None:
        held = np.sort(np.asarray(dataset.validation_indices))
    else:
        rng = np.random.default_rng(0)
        if dataset.label_kind == "classes" and labels.ndim == 1:  # (not per position)
            groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        else:
            groups = [np.arange(len(labels))]
        held = np.sort(np.concatenate(
            [rng.permutation(group)[:int(round(fraction * len(group)))] for group in groups]))
    kept = np.setdiff1d(np.arange(len(labels)), held)
    if len(held) == 0 or len(kept) == 0:
        raise ValueError(f"{dataset.name}: config.validation={fraction:g} of its "
                         f"{len(labels)} training examples holds out {len(held)} and keeps "
                         f"{len(kept)}: both must be at least one (per class, round(fraction × "
                         "its count) are held out)")
    split = make_dataset(dataset.name, dataset.train_images[kept], labels[kept],
                         dataset.train_images[held], labels[held],
                         num_classes=dataset.num_classes, labels=dataset.label_kind,
                         check_copies=False)
    if dataset.mean is None:
        split = dataclasses.replace(split, mean=None, std=None)
    if dataset.target_mean is None:
        split = split.raw_targets()
    logging.info("%s: %d of its %d training examples held out as the validation split (%s), "
                 "which the run evaluates on; the test split is not used", dataset.name,
                 len(held), len(labels), "its own" if dataset.validation_indices is not None
                 else f"config.validation={fraction:g}")
    return dataclasses.replace(split, evaluated_on="validation")


def model_input_dtype(dataset: DatasetLike) -> str:
    """The dtype the model receives: token ids as int32, images and features (standardized
    inside the step) as float32."""
    return "int32" if dataset.input_kind == "tokens" else "float32"


def input_kind(inputs: np.ndarray) -> str:
    """'images' (N, H, W, C), 'tokens' (integers, not images) or 'features' (see above)."""
    if inputs.ndim == 4:
        return "images"
    return "tokens" if np.issubdtype(inputs.dtype, np.integer) else "features"


def check_token_ids(name: str, train_inputs: np.ndarray, test_inputs: np.ndarray) -> None:
    """Integer inputs that are not images are token ids, passed to the model as int32 and
    not standardized: said in the log, since numeric features stored as integers (counts,
    ages) would otherwise silently miss the standardization floats get; negative values,
    which no embedding takes, warned about; ids beyond int32 refused (they would wrap)."""
    low = min(int(train_inputs.min()), int(test_inputs.min()))
    high = max(int(train_inputs.max()), int(test_inputs.max()))
    if high > np.iinfo(np.int32).max or low < np.iinfo(np.int32).min:
        raise ValueError(f"{name}: integer inputs span [{low}, {high}], beyond int32, which "
                         "token ids are passed as; numeric features: pass them as floats")
    shape = train_inputs.shape
    if len(shape) == 3:
        # (N, H, W) pixel values (MNIST as keras and torchvision load it) pass as token ids
        # without a word from Python (the log's INFO is not shown there): trained on raw 0–255
        # values, the η̃ that suit standardized inputs blow up, and the sweep answers for a
        # problem the user did not pose.
        logging.warning("%s: integer inputs of shape %s are taken as token ids (passed as "
                        "int32, not standardized). If they are single-channel images (N, H, "
                        "W), add their channel axis, x[..., None], to have them standardized "
                        "per channel (and augmentable) like images", name, shape)
    elif low < 0:
        logging.warning("%s: integer inputs %s are taken as token ids (passed as int32, not "
                        "standardized), but they hold negative values (down to %d), which no "
                        "embedding takes. If they are numeric features, pass them as floats "
                        "(x.astype(np.float32)) to have them standardized", name, shape, low)
    else:
        logging.info("%s: integer inputs %s are taken as token ids in [0, %d]: passed as "
                     "int32, not standardized (numeric features: pass them as floats)", name,
                     shape, high)


# Above this share of test inputs found among the training inputs, the test split is said to
# hold the training data (`check_test_copies`).
COPIES_WARNED = 0.5


def test_copies(train_inputs: np.ndarray, test_inputs: np.ndarray) -> int:
    """How many test inputs are exact copies of a training input (by a digest of each
    example's bytes: ~0.35 s for CIFAR-10's 60,000 images)."""
    digest = lambda x: hashlib.blake2b(x.tobytes(), digest_size=8).digest()
    seen = {digest(x) for x in np.ascontiguousarray(train_inputs).reshape(len(train_inputs), -1)}
    return sum(digest(x) in seen
               for x in np.ascontiguousarray(test_inputs).reshape(len(test_inputs), -1))


def check_test_copies(name: str, train_inputs: np.ndarray, test_inputs: np.ndarray,
                      split: str = "test") -> None:
    """A test split that is mostly the training inputs (data=(x, y, x, y), a notebook's
    shortcut, or a leaky split) trains and reports without an error, and every choice is then
    made on the fit to the training data: warned of, with the way out. A few copies (small
    discrete inputs, short token sequences) are not."""
    copies = test_copies(train_inputs, test_inputs)
    if copies > COPIES_WARNED * len(test_inputs):
        logging.warning(
            "%s: %d of the %d %s inputs (%.0f%%) are exact copies of training inputs. If the "
            "%s split holds the training data, its metric measures the fit to it, and the "
            "sweep's choices of m and η̃ with it: pass a split disjoint from the training "
            "one%s. (Inputs that repeat by nature, few discrete values: ignore this.)",
            name, copies, len(test_inputs), split, 100.0 * copies / len(test_inputs), split,
            ", or let a run hold one out of the training set (config.validation, e.g. 0.1)"
            if split == "test" else "")


def looks_channels_first(shape: tuple[int, ...]) -> bool:
    """(N, C, H, W) with 1 or 3 channels ahead of an image, the layout of a PyTorch loader:
    read as (N, H, W, C) it would be an image 1 or 3 pixels high with many channels."""
    return shape[1] in (1, 3) and shape[3] not in (1, 3, 4) and min(shape[2:]) > 4


def check_one_input_array(name: str, split: str, inputs, labels) -> None:
    """The lanes hand the model one array of inputs per batch, (m, ...). Several inputs per
    example given as a dict of arrays were refused as "inputs of dtype object (a DataFrame's
    mixed columns?)", and a tuple of two (N, F) arrays was stacked by NumPy into one input
    of shape (2, N, F) and refused for its count: the cause, named."""
    several = isinstance(inputs, dict) or (
        isinstance(inputs, (tuple, list)) and 1 < len(inputs) != len(labels)
        and all(hasattr(x, "shape") and len(getattr(x, "shape", ())) >= 1 for x in inputs))
    if several:
        parts = (inputs.items() if isinstance(inputs, dict) else enumerate(inputs))
        shapes = ", ".join(f"{key}: {tuple(np.shape(x))}" for key, x in parts)
        raise ValueError(
            f"{name}: the {split} inputs are a {type(inputs).__name__} of {len(inputs)} "
            f"array(s) ({shapes}); the lanes pass "
            "the model one array of inputs, (N, ...): join them into one (flat features: "
            "np.concatenate(..., axis=1)), and let the model split it again if it needs the "
            "parts (x[:, :k], x[:, k:])")


# A position whose class label is this is not scored: PyTorch's and Hugging Face's
# `ignore_index`, at the padding of sequences and the prompt of a next-token task. Labels per
# position only (an example of one label would have nothing to score); the built-in
# objective's loss and metric are an example's means over its other positions.
IGNORED_LABEL = -100


def scored(labels: np.ndarray) -> np.ndarray:
    """The class labels that count, IGNORED_LABEL's positions left out (flat)."""
    labels = np.asarray(labels)
    return labels[labels != IGNORED_LABEL]


# Sequences' labels padded at their end with one id: warned of (`check_padding`) where that
# padding is at least this share of all positions.
PADDING_WARNED = 0.1


def trailing_run(labels: np.ndarray, value: int) -> np.ndarray:
    """Per sequence of (N, T) labels, how many of its last positions hold `value`."""
    other = labels != value
    last_other = np.where(other.any(axis=1), labels.shape[1] - 1 - np.argmax(other[:, ::-1],
                                                                             axis=1), -1)
    return labels.shape[1] - 1 - last_other


def check_ignored_positions(name: str, split: str, labels: np.ndarray) -> None:
    """IGNORED_LABEL where it can be honoured: at positions of labels per position, with at
    least one scored position in every example (one of none would count as a score of 0 in
    the test metric's mean over examples, or divide by nothing)."""
    ignored = labels == IGNORED_LABEL
    if not ignored.any():
        return
    if labels.ndim == 1:
        raise ValueError(
            f"{name}: {int(ignored.sum())} {split} label(s) are {IGNORED_LABEL} (the positions "
            "not to score, as PyTorch's ignore_index): with one label per example there would "
            "be nothing to score; drop those examples")
    empty = ignored.reshape(len(labels), -1).all(axis=1)
    if empty.any():
        raise ValueError(
            f"{name}: {int(empty.sum())} {split} example(s) have every label {IGNORED_LABEL} "
            f"(first: example {int(np.argmax(empty))}): nothing of theirs is scored; drop them "
            "(empty sequences?)")


def check_padding(name: str, labels: np.ndarray) -> None:
    """Labels per position of sequences padded to one length (variable-length sentences
    filled with a pad id): every position counts in the built-in loss and accuracy, so the
    pad id, the easiest class there is, would be learned and scored with the words. Warned
    of where the sequences end in runs of one id that make up PADDING_WARNED of all positions
    or more (on a chain of tokens without padding: none). For the built-in objective (run/
    config_checks.py: check_labels); a user's may mask the padding itself."""
    if labels.ndim != 2 or np.any(labels == IGNORED_LABEL):  # (padding marked as such)
        return
    value = int(np.bincount(labels[:, -1]).argmax())
    runs = trailing_run(labels, value)
    share = float(runs.sum()) / labels.size
    if share >= PADDING_WARNED and np.mean(runs >= 2) >= 0.25:
        logging.warning(
            "%s: %.0f%% of the label positions are runs of id %d at the end of a sequence "
            "(in %d of %d sequences): padding? Every position counts in the built-in loss and "
            "accuracy, so the padding would be learned and scored with the rest. Set the "
            "labels at the padded positions to %d (IGNORED_LABEL, as PyTorch's ignore_index): "
            "the built-in loss and accuracy leave those out. Give your own Objective whose "
            "loss and metric average over the positions where labels != %d otherwise", name,
            100 * share, value, int(np.sum(runs >= 1)), len(labels), IGNORED_LABEL, value)


# Labels per position that equal the token ids at the same positions this often are taken
# for the inputs themselves (`check_labels_not_inputs`).
SAME_AS_INPUTS_WARNED = 0.9


def check_labels_not_inputs(name: str, inputs: np.ndarray, labels: np.ndarray) -> None:
    """Next-token labels given without their shift (labels = the inputs, not x[:, 1:]
    against x[:, :-1]): a model that copies its input scores an accuracy of 1 at every
    setting, and the study answers nothing, without an error. Warned of where the labels
    equal the token ids at SAME_AS_INPUTS_WARNED of their positions or more."""
    if labels.shape != inputs.shape or labels.ndim < 2:
        return
    counted = labels != IGNORED_LABEL  # (over the scored positions: padding aside)
    same = float(np.sum((labels == inputs) & counted) / max(np.sum(counted), 1))
    if same >= SAME_AS_INPUTS_WARNED:
        logging.warning(
            "%s: the labels equal the input token ids at %.0f%% of their positions: the "
            "inputs themselves, not the next tokens? A model that copies its input scores 1 "
            "at every setting. For next-token prediction, pass x[:, :-1] as the inputs and "
            "x[:, 1:] as the labels", name, 100 * same)


def make_dataset(name, train_images, train_labels, test_images, test_labels,
                 num_classes: int | None = None, standardize: bool = True,
                 labels: str | None = None, validation=None,
                 check_copies: bool = True) -> Dataset:
    """Checks the arrays (the same input shape in both splits, one label per example:
    integer labels in [0, num_classes), or real-valued targets) and computes the
    standardization statistics. `labels`: 'classes' or 'targets'; default, 'classes' for
    integer labels and 'targets' for floating-point ones. `num_classes`: default, the
    largest label + 1 (classes) or a target's number of components (targets).
    `validation`: your own validation split, (inputs, labels), e.g. whole groups or the latest
    period where a random draw would leak: it becomes part of the training set, and a run
    with config.validation > 0 holds it out and evaluates on it (`hold_out`), while one with
    0 trains on all of it (the chosen setting's test run among them). `check_copies`: warn
    of a test split that is mostly the training inputs (`check_test_copies`; False for a
    split held out of data already checked: copies the training set holds by nature would
    be named again, as a test split's, at every run)."""
    for split, inputs, y in (("train", train_images, train_labels),
                             ("test", test_images, test_labels)):
        check_one_input_array(name, split, inputs, y)
    arrays = [np.asarray(x) for x in (train_images, train_labels, test_images, test_labels)]
    train_images, train_labels, test_images, test_labels = arrays
    validation_indices = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError(f"{name}: validation must be (inputs, labels); got "
                             f"{type(validation).__name__}")
        val_images, val_labels = (np.asarray(x) for x in validation)
        if val_images.shape[1:] != train_images.shape[1:] or val_labels.shape[1:] != \
                train_labels.shape[1:] or val_labels.dtype.kind != train_labels.dtype.kind \
                or len(val_images) != len(val_labels) or not len(val_labels):
            raise ValueError(
                f"{name}: the validation split must be like the training one (inputs "
                f"{('N',) + train_images.shape[1:]}, labels {('N',) + train_labels.shape[1:]} "
                f"of kind {train_labels.dtype}, N ≥ 1); got {val_images.shape} and "
                f"{val_labels.shape} of {val_labels.dtype}")
        check_test_copies(name, train_images, val_images, "validation")
        validation_indices = np.arange(len(train_images), len(train_images) + len(val_images))
        train_images = np.concatenate([train_images, val_images])
        train_labels = np.concatenate([train_labels, val_labels])
    if labels is None:
        labels = "classes" if np.issubdtype(train_labels.dtype, np.integer) else "targets"
    if labels not in ("classes", "targets"):
        raise ValueError(f"{name}: labels={labels!r}; allowed: 'classes', 'targets'")
    for split, images, y in (("train", train_images, train_labels),
                             ("test", test_images, test_labels)):
        if images.dtype.kind not in "biuf":
            raise ValueError(f"{name}: {split} inputs are {images.dtype}, not numbers (a "
                             "DataFrame's mixed columns?): encode any text columns, then pass "
                             "x.astype(np.float32)")
        if y.dtype.kind not in "biuf":
            raise ValueError(f"{name}: {split} labels are {y.dtype}, not numbers; class names? "
                             "Give each class an id 0 … C−1: names, y = np.unique(y, "
                             "return_inverse=True) (the same mapping for both splits)")
        # Class labels are one per example, (N,), or one per position of a sequence or
        # grid, (N, T, ...) (tagging, next-token prediction): the model then gives (N, T, ...,
        # C) logits and an example's loss and metric are the means over its positions.
        shapes = "(N,), or (N, T, ...) per position" if labels == "classes" else \
            "(N,) or (N, D)"
        one_hot = (labels == "classes" and y.ndim == 2 and len(y)
                   and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())
        column = labels == "classes" and y.ndim == 2 and y.shape[1:] == (1,)
        if images.ndim < 2 or y.ndim < 1 or (labels == "targets" and y.ndim > 2) \
                or one_hot or column or len(images) != len(y):
            raise ValueError(f"{name}: {split} inputs must be (N, ...) with one label each "
                             f"(labels {shapes}); got {images.shape} and {y.shape}"
                             + ("; the labels look one-hot: pass y.argmax(-1)" if one_hot
                                else "; the labels are a column (as keras loads CIFAR): pass "
                                "y.ravel()" if column else ""))
        if labels == "classes" and not np.issubdtype(y.dtype, np.integer):
            whole = y.dtype.kind == "b" or bool(np.all(np.mod(y, 1) == 0))
            raise ValueError(f"{name}: {split} labels must be integers (class indices); got "
                             f"{y.dtype}" + (" of whole values: pass y.astype(int)" if whole
                                             else "") + " (real-valued targets: "
                             "labels='targets' and a regression objective, e.g. "
                             "config.objective='regression')")
        if labels == "targets" and not np.all(np.isfinite(y.astype(np.float64))):
            raise ValueError(f"{name}: {split} targets must be finite")
        if np.issubdtype(images.dtype, np.floating) and not np.all(np.isfinite(images)):
            bad = int(np.count_nonzero(~np.isfinite(images)))
            raise ValueError(f"{name}: {split} inputs hold {bad} non-finite value(s) (NaN or "
                             "inf); every lane would diverge at its first step. Impute or drop "
                             "them first")
        if len(y) == 0:
            raise ValueError(f"{name}: the {split} split is empty")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"{name}: train and test inputs differ in shape: "
                         f"{train_images.shape[1:]} and {test_images.shape[1:]}")
    if train_labels.shape[1:] != test_labels.shape[1:]:
        raise ValueError(f"{name}: train and test labels differ in shape per example: "
                         f"{train_labels.shape[1:]} and {test_labels.shape[1:]}")
    if labels == "targets":
        width = 1 if train_labels.ndim == 1 else train_labels.shape[1]
        if num_classes not in (None, width):
            raise ValueError(f"{name}: num_classes={num_classes} but the targets have {width} "
                             "component(s)")
        num_classes = width
        train_labels, test_labels = (y.astype(np.float32) for y in (train_labels, test_labels))
    else:
        if num_classes is None:
            num_classes = int(max(train_labels.max(), test_labels.max())) + 1
        for split, y in (("train", train_labels), ("test", test_labels)):
            check_ignored_positions(name, split, y)
            counted = scored(y) if y.ndim > 1 else y
            if counted.min() < 0 or counted.max() >= num_classes:
                raise ValueError(
                    f"{name}: {split} labels must lie in [0, {num_classes}); they span "
                    f"[{counted.min()}, {counted.max()}]" + (
                        f" (positions not to score, per position only: {IGNORED_LABEL})"
                        if y.ndim > 1 and counted.min() < 0 else ""))
        counted = scored(train_labels)
        if np.all(counted == counted[0]):
            raise ValueError(f"{name}: every training label is {counted[0]}: a "
                             "classifier has nothing to learn from one class, and every "
                             "setting would score the same (were the labels read from the "
                             "right column?)")
        train_labels, test_labels = (y.astype(np.int32) for y in (train_labels, test_labels))
    kind = input_kind(train_images)
    if kind == "images" and looks_channels_first(train_images.shape):
        logging.warning(
            "%s: images of shape %s look channels-first (N, C, H, W); this project, Flax's "
            "convolutions and the augmentation take (N, H, W, C), and the inputs are "
            "standardized per last axis. If they are, pass x.transpose(0, 2, 3, 1)", name,
            train_images.shape)
    if kind == "tokens":
        check_token_ids(name, train_images, test_images)
        if labels == "classes":
            check_labels_not_inputs(name, train_images, train_labels)
    if check_copies:
        check_test_copies(name, train_images, test_images)
    mean = std = target_mean = target_std = None
    if standardize and kind != "tokens":
        mean, std = channel_mean_std(train_images)
        constant = constant_channels(name, train_images, test_images)
        # A channel constant in training is centered, not scaled: divided by its std (0,
        # floored at 1e-8) a test value other than the constant became ~1e8 and the model's
        # output noise (a one-hot category absent from training, present in half the test
        # examples: a user MLP's best test accuracy 0.73, against 0.965 centered).
        std = np.where(constant, 1.0, np.maximum(std, 1e-8))
        check_test_scale(name, mean, std, constant, test_images)
        mean, std = mean.astype(np.float32), std.astype(np.float32)
    if standardize and labels == "targets":
        target_mean, target_std = channel_mean_std(train_labels.reshape(len(train_labels), -1))
        if train_labels.ndim == 1:  # () statistics for (N,) targets
            target_mean, target_std = target_mean[0], target_std[0]
        # A constant component is centred, not scaled (its std 0 would divide by zero).
        target_std = np.where(target_std > 0, target_std, 1.0)
        target_mean, target_std = (np.asarray(x, np.float32) for x in (target_mean, target_std))
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        num_classes=num_classes,
        mean=mean,
        std=std,
        input_kind=kind,
        label_kind=labels,
        target_mean=target_mean,
        target_std=target_std,
        validation_indices=validation_indices,
    )


def read_npz(name: str, path: str) -> list[np.ndarray]:
    """The four arrays (ARRAYS) of an .npz file, with errors that name the file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no file at data_dir={path!r}; expected an .npz file "
                                f"with arrays {ARRAYS}")
    try:
        archive = np.load(path)  # not pickles: allow_pickle stays False
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:
        raise ValueError(f"{name}: {path} is not a readable .npz file ({error}); expected "
                         f"arrays {ARRAYS}") from error
    if not hasattr(archive, "files"):  # a single .npy array, not an archive
        raise ValueError(f"{name}: {path} holds one array, not an .npz archive with {ARRAYS}")
    with archive:
        missing = [key for key in ARRAYS if key not in archive.files]
        if missing and all(key in archive.files for key in KERAS_ARRAYS):
            logging.info("%s: %s holds Keras's names %s, read as %s", name, path,
                         KERAS_ARRAYS, ARRAYS)
            return [archive[key] for key in KERAS_ARRAYS]
        if missing:
            raise ValueError(f"{name}: {path} lacks arrays {missing}; expected {ARRAYS} (or "
                             f"Keras's {KERAS_ARRAYS}); it holds {sorted(archive.files)}")
        return [archive[key] for key in ARRAYS]


# The same four arrays as Keras's data sets save them (keras.datasets' mnist.npz).
KERAS_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


# An .npz file's optional pair: its own validation split (make_dataset's `validation`).
VALIDATION_ARRAYS = ("validation_images", "validation_labels")


def load_npz(path: str) -> Dataset:
    """Dataset 'npz': any .npz file of the four arrays, inputs of any shape; with
    validation_images and validation_labels too, its own validation split."""
    arrays = read_npz("npz", path)
    with np.load(path) as archive:
        present = [key for key in VALIDATION_ARRAYS if key in archive.files]
        if len(present) == 1:
            raise ValueError(f"npz: {path} has {present[0]} without its pair; give both "
                             f"{VALIDATION_ARRAYS} (its own validation split) or neither")
        validation = [archive[key] for key in present] or None
    return make_dataset("npz", *arrays, validation=validation)


def constant_channels(name: str, train_inputs: np.ndarray, test_inputs: np.ndarray,
                      chunk: int = 4096) -> np.ndarray:
    """Which channels (last axis) hold one value throughout the training inputs, exactly
    (min = max): (C,) bool. Where one of them takes other values in the test split, its
    values there were never seen in training (a category absent from it): warned of."""
    channels = train_inputs.shape[-1]
    low, high = np.full(channels, np.inf), np.full(channels, -np.inf)
    for start in range(0, len(train_inputs), chunk):
        part = train_inputs[start:start + chunk].reshape(-1, channels)
        low, high = np.minimum(low, part.min(axis=0)), np.maximum(high, part.max(axis=0))
    constant = low == high
    if constant.any():
        test = test_inputs.reshape(-1, channels)[:, constant]
        varying = np.flatnonzero(constant)[(test != low[constant]).any(axis=0)]
        if len(varying):
            logging.warning(
                "%s: input channel(s) %s (last axis) hold one value throughout the training "
                "split but other values in the test split: nothing was learned from them, and "
                "the test examples where they differ are out of the training distribution "
                "(a category absent from training?). They are centered, not scaled",
                name, ", ".join(map(str, varying[:10])) + (", …" if len(varying) > 10 else ""))
    return constant


# A test channel whose spread is this many times the training split's (or its inverse) was
# scaled differently (`check_test_scale`).
SCALE_WARNED = 10.0


def check_test_scale(name: str, mean: np.ndarray, std: np.ndarray, constant: np.ndarray,
                     test_inputs: np.ndarray) -> None:
    """A test split scaled or shifted otherwise than the training split (pixels divided by
    255 in one and not the other, a normalization applied to one only) is standardized with
    the training split's statistics and evaluated far outside what was trained on: every
    choice is then made on the mismatch. Warned of where a channel's spread differs by
    SCALE_WARNED× or its mean by SCALE_WARNED training standard deviations."""
    test_mean, test_std = channel_mean_std(test_inputs)
    varied = ~constant
    ratio = np.where(varied, test_std / np.maximum(std, 1e-12), 1.0)
    shifted = np.where(varied, np.abs(test_mean - mean) / np.maximum(std, 1e-12), 0.0)
    off = np.flatnonzero((ratio > SCALE_WARNED) | (ratio < 1 / SCALE_WARNED)
                         | (shifted > SCALE_WARNED))
    if len(off):
        c = off[0]
        logging.warning(
            "%s: the test inputs are not on the training inputs' scale in channel(s) %s (last "
            "axis): channel %d has mean %.4g and std %.4g in the test split, %.4g and %.4g in "
            "training. Preprocess both splits alike (pixels /255 in one only? a normalization "
            "fitted and applied to one?): the test split is standardized with the training "
            "split's statistics", name, ", ".join(map(str, off[:10])) + (
                ", …" if len(off) > 10 else ""), c, test_mean[c], test_std[c], mean[c], std[c])


def channel_mean_std(images: np.ndarray, chunk: int = 4096):
    """Per-channel (last axis) mean and standard deviation of (N, ..., C) inputs, in float64,
    a chunk at a time (a float64 copy of all of CIFAR's pixels would take 1.2 GB)."""
    channels = images.shape[-1]
    total, total_sq, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(images), chunk):
        pixels = images[start:start + chunk].reshape(-1, channels).astype(np.float64)
        total += pixels.sum(axis=0)
        total_sq += np.square(pixels).sum(axis=0)
        count += len(pixels)
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
