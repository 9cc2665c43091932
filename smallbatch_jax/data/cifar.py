"""CIFAR-10 and CIFAR-100 (50,000 training / 10,000 test images, 32×32×3), three ways.

`data_dir` (config.data_dir) says where the data come from:
- a path ending in `.npz`: one file with arrays `train_images` (N, 32, 32, 3) uint8,
  `train_labels` (N,), `test_images`, `test_labels` (e.g. ../shared/data/cifar10_subset.npz);
- a directory holding the official "python version" (`cifar-10-batches-py/` with
  `data_batch_1` … `data_batch_5` and `test_batch`; `cifar-100-python/` with `train` and
  `test`, whose fine labels are the 100 classes), or that directory itself: for clusters
  without internet, copy the extracted archive there;
- anything else: tensorflow-datasets, which downloads and prepares the data set on first
  use (into `data_dir`, or its default ~/tensorflow_datasets when empty). Preparing needs
  TensorFlow, an optional extra kept off the accelerators (data/tf_import.py).

Every source gives the same `Dataset`: uint8 HWC images in the official order, int labels.
"""

import os
import pickle

import numpy as np

from smallbatch_jax.data.dataset import Dataset, make_dataset, read_npz
from smallbatch_jax.data.tf_import import tensorflow

NUM_CLASSES = {"cifar10": 10, "cifar100": 100}
# The official python version: directory, training files, test file, label key.
PYTHON_VERSION = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], "test_batch",
                b"labels"),
    "cifar100": ("cifar-100-python", ["train"], "test", b"fine_labels"),
}


def load_cifar(name: str, data_dir: str = "") -> Dataset:
    """CIFAR `name` ('cifar10' or 'cifar100') from `data_dir` (see the module docstring)."""
    if name not in NUM_CLASSES:
        raise ValueError(f"{name!r} is not a CIFAR data set; allowed: {sorted(NUM_CLASSES)}")
    if data_dir.endswith(".npz"):
        return load_npz(name, data_dir)
    python_dir = find_python_version(name, data_dir) if data_dir else None
    if python_dir:
        return load_python_version(name, python_dir)
    if data_dir and not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"{name}: data_dir={data_dir!r} does not exist; expected an .npz file, a directory "
            f"holding {PYTHON_VERSION[name][0]}/, or a tensorflow-datasets data directory")
    return load_tfds(name, data_dir)


def load_npz(name: str, path: str) -> Dataset:
    arrays = read_npz(name, path)
    for split, images in (("train", arrays[0]), ("test", arrays[2])):
        if images.ndim != 4:
            raise ValueError(f"{name}: {split} images must be (N, H, W, C); got {images.shape}")
    return make_dataset(name, *arrays, NUM_CLASSES[name])


def find_python_version(name: str, data_dir: str) -> str | None:
    """The official python-version directory in or at `data_dir`, if there is one."""
    directory = PYTHON_VERSION[name][0]
    for candidate in (os.path.join(data_dir, directory), data_dir):
        if os.path.basename(os.path.normpath(candidate)) == directory and os.path.isdir(candidate):
            return candidate
    return None


def _read_batch(name: str, path: str, label_key: bytes):
    """(images (N, 32, 32, 3) uint8, labels (N,)) of one pickled batch file."""
    expected = f"a pickled dict with b'data' (N, 3072) uint8 and {label_key!r}"
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{name}: missing {path}; expected {expected} (the official "
                                "python version of the data set)")
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[label_key])
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{name}: {path} is not {expected} ({error!r})") from error
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or \
            len(labels) != len(data):
        raise ValueError(f"{name}: {path} holds data {data.shape} {data.dtype} and "
                         f"{len(labels)} labels; expected {expected}")
    # Each row is the red plane, then green, then blue, each 32×32 row-major.
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def load_python_version(name: str, directory: str) -> Dataset:
    _, train_files, test_file, label_key = PYTHON_VERSION[name]
    train = [_read_batch(name, os.path.join(directory, f), label_key) for f in train_files]
    test_images, test_labels = _read_batch(name, os.path.join(directory, test_file), label_key)
    return make_dataset(name, np.concatenate([images for images, _ in train]),
                        np.concatenate([labels for _, labels in train]), test_images,
                        test_labels, NUM_CLASSES[name])


def load_tfds(name: str, data_dir: str = "") -> Dataset:
    """Through tensorflow-datasets: downloaded and prepared on first use."""
    _, tfds = tensorflow()

    def split(which):
        ds = tfds.load(name, split=which, as_supervised=True, data_dir=data_dir or None)
        batches = list(tfds.as_numpy(ds.batch(10_000)))
        return (np.concatenate([images for images, _ in batches]),
                np.concatenate([labels for _, labels in batches]))

    return make_dataset(name, *split("train"), *split("test"), NUM_CLASSES[name])
