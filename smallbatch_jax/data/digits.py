"""scikit-learn's 8×8 handwritten digits: the embedded default data set (no download).

1,797 images of 10 classes ship inside the scikit-learn wheel. Split: a fixed permutation
(seed 0), the last 20% is the test split. Pixel values are 0…16, stored as uint8.
"""

import numpy as np

from smallbatch_jax.data.dataset import Dataset, make_dataset


def load_digits(test_fraction: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)[..., None]  # (1797, 8, 8, 1)
    labels = bunch.target
    order = np.random.default_rng(0).permutation(len(labels))
    num_test = int(round(test_fraction * len(labels)))
    train, test = order[:-num_test], order[-num_test:]
    return make_dataset("digits", images[train], labels[train], images[test], labels[test], 10)
