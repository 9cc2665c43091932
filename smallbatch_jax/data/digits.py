"""scikit-learn's 8×8 handwritten digits: the embedded default data set (no download).

1,797 images of 10 classes ship inside the scikit-learn wheel (sklearn/datasets/data/
digits.csv.gz). Split: a fixed permutation (seed 0), the last 20% is the test split. Pixel
values are 0…16, stored as uint8.

The file is read here as `sklearn.datasets.load_digits` reads it (np.loadtxt of the gzipped
CSV), without importing scikit-learn: its import (SciPy with it) took 2 of a small run's 5
seconds, in every process that trains on digits.
"""

import gzip
import importlib.util
import os

import numpy as np

from smallbatch_jax.data.dataset import Dataset, make_dataset


def digits_file() -> str:
    """The CSV inside the installed scikit-learn (found without importing it)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the digits data set ships with scikit-learn: pip install scikit-learn")
    return os.path.join(spec.submodule_search_locations[0], "datasets", "data",
                        "digits.csv.gz")


def load_digits(test_fraction: float = 0.2) -> Dataset:
    with gzip.open(digits_file(), mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")  # 64 pixels, then the label, per row
    images = data[:, :-1].reshape(-1, 8, 8).astype(np.uint8)[..., None]  # (1797, 8, 8, 1)
    labels = data[:, -1].astype(int)
    order = np.random.default_rng(0).permutation(len(labels))
    num_test = int(round(test_fraction * len(labels)))
    train, test = order[:-num_test], order[-num_test:]
    return make_dataset("digits", images[train], labels[train], images[test], labels[test], 10)
