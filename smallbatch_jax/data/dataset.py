"""A classification data set held whole in memory (and then on the device).

A `Dataset` is four arrays and what preprocessing needs. Its inputs are one of three kinds,
told apart by their shape and dtype (`input_kind`):
- 'images': (N, H, W, C), kept in their storage dtype (uint8 for CIFAR: four times less
  device memory than float32), standardized per channel inside the compiled step with
  `mean` and `std` computed on the training split; the only kind augmentation applies to;
- 'features': any other floating-point array (N, ...), e.g. flat vectors (N, F),
  standardized per feature (the last axis) likewise;
- 'tokens': integer arrays that are not images, e.g. sequences of token ids (N, T): passed
  to the model untouched (`mean` and `std` are None).
`standardize=False` leaves images and features untouched too.
"""

import dataclasses
import os
import zipfile

import numpy as np

INPUT_KINDS = ("images", "features", "tokens")
ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # (N, H, W, C) images, or (N, ...) features or tokens
    train_labels: np.ndarray  # (N,) int32
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray | None  # (C,) float32: per channel (last axis) of the training inputs
    std: np.ndarray | None  # (C,) float32; both None: the inputs are used as they are
    input_kind: str = "images"

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    @property
    def num_test(self) -> int:
        return len(self.test_labels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])


def input_kind(inputs: np.ndarray) -> str:
    """'images' (N, H, W, C), 'tokens' (integers, not images) or 'features' (see above)."""
    if inputs.ndim == 4:
        return "images"
    return "tokens" if np.issubdtype(inputs.dtype, np.integer) else "features"


def make_dataset(name, train_images, train_labels, test_images, test_labels,
                 num_classes: int | None = None, standardize: bool = True) -> Dataset:
    """Checks the arrays (one label per example, integer labels in [0, num_classes), the same
    input shape in both splits) and computes the standardization statistics.
    `num_classes`: default, the largest label + 1."""
    arrays = [np.asarray(x) for x in (train_images, train_labels, test_images, test_labels)]
    train_images, train_labels, test_images, test_labels = arrays
    for split, images, labels in (("train", train_images, train_labels),
                                  ("test", test_images, test_labels)):
        if images.ndim < 2 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{name}: {split} inputs must be (N, ...) with one label each "
                             f"(labels (N,)); got {images.shape} and {labels.shape}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{name}: {split} labels must be integers (class indices); got "
                             f"{labels.dtype}")
        if len(labels) == 0:
            raise ValueError(f"{name}: the {split} split is empty")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"{name}: train and test inputs differ in shape: "
                         f"{train_images.shape[1:]} and {test_images.shape[1:]}")
    if num_classes is None:
        num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    for split, labels in (("train", train_labels), ("test", test_labels)):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{name}: {split} labels must lie in [0, {num_classes}); they "
                             f"span [{labels.min()}, {labels.max()}]")
    kind = input_kind(train_images)
    mean = std = None
    if standardize and kind != "tokens":
        mean, std = channel_mean_std(train_images)
        mean, std = mean.astype(np.float32), np.maximum(std, 1e-8).astype(np.float32)
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels.astype(np.int32),
        test_images=test_images,
        test_labels=test_labels.astype(np.int32),
        num_classes=num_classes,
        mean=mean,
        std=std,
        input_kind=kind,
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
        if missing:
            raise ValueError(f"{name}: {path} lacks arrays {missing}; expected {ARRAYS}")
        return [archive[key] for key in ARRAYS]


def load_npz(path: str) -> Dataset:
    """Dataset 'npz': any .npz file of the four arrays, inputs of any shape."""
    return make_dataset("npz", *read_npz("npz", path))


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
