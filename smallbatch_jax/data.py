"""Image classification data sets, held whole in memory (and then on the device).

A `Dataset` is four arrays and what preprocessing needs. Images are NHWC and keep their
storage dtype (uint8 for CIFAR: four times less device memory than float32); the trainer
standardizes them per channel inside the compiled step with `mean` and `std`, which are
computed on the training split.

Sources:
- 'digits': scikit-learn's 8×8 handwritten digits (1,797 images, 10 classes). It ships
  inside the scikit-learn wheel, so it needs no download: the embedded default data set.
  Split: a fixed permutation (seed 0), the last 20% is the test split.
- 'cifar10', 'cifar100' from a local `.npz` file (`data_dir`) holding `train_images`,
  `train_labels`, `test_images`, `test_labels` (e.g. ../shared/data/cifar10_subset.npz).
"""

import dataclasses
import os

import numpy as np

DATASETS = ("digits", "cifar10", "cifar100")
NUM_CLASSES = {"digits": 10, "cifar10": 10, "cifar100": 100}
NPZ_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # (N, H, W, C)
    train_labels: np.ndarray  # (N,) int32
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray  # (C,) float32, per-channel mean of the training images
    std: np.ndarray  # (C,) float32

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])


def make_dataset(name, train_images, train_labels, test_images, test_labels, num_classes):
    """Checks the arrays and computes the standardization statistics."""
    for split, images, labels in (("train", train_images, train_labels),
                                  ("test", test_images, test_labels)):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"{name}: {split} images must be (N, H, W, C) with one label each; "
                             f"got {images.shape} and {labels.shape}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{name}: {split} labels must lie in [0, {num_classes})")
    pixels = train_images.reshape(-1, train_images.shape[-1]).astype(np.float64)
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels.astype(np.int32),
        test_images=test_images,
        test_labels=test_labels.astype(np.int32),
        num_classes=num_classes,
        mean=pixels.mean(axis=0).astype(np.float32),
        std=np.maximum(pixels.std(axis=0), 1e-8).astype(np.float32),
    )


def load_digits(test_fraction: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)[..., None]  # values 0..16, (1797, 8, 8, 1)
    labels = bunch.target
    order = np.random.default_rng(0).permutation(len(labels))
    num_test = int(round(test_fraction * len(labels)))
    train, test = order[:-num_test], order[-num_test:]
    return make_dataset("digits", images[train], labels[train], images[test], labels[test], 10)


def load_npz(name: str, path: str) -> Dataset:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: no file at data_dir={path!r}; expected an .npz file "
                                f"with arrays {NPZ_KEYS}")
    with np.load(path) as archive:
        missing = [key for key in NPZ_KEYS if key not in archive.files]
        if missing:
            raise ValueError(f"{name}: {path} lacks arrays {missing}; expected {NPZ_KEYS}")
        arrays = [archive[key] for key in NPZ_KEYS]
    return make_dataset(name, *arrays, NUM_CLASSES[name])


def load_dataset(name: str, data_dir: str = "") -> Dataset:
    """The data set `name` ('digits', 'cifar10', 'cifar100'); CIFAR needs `data_dir`."""
    if name not in DATASETS:
        raise ValueError(f"dataset={name!r} is unknown; allowed: {DATASETS}")
    if name == "digits":
        return load_digits()
    if not data_dir:
        raise ValueError(f"dataset={name!r} needs config.data_dir: a local .npz file with "
                         f"{NPZ_KEYS} (downloading through tensorflow-datasets is not wired yet)")
    return load_npz(name, data_dir)
