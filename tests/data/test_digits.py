import subprocess
import sys

import numpy as np
import pytest

from smallbatch_jax.data import load_dataset


def test_digits_is_embedded_and_split(digits):
    assert digits.num_train == 1438 and len(digits.test_labels) == 359
    assert digits.image_shape == (8, 8, 1) and digits.train_images.dtype == np.uint8
    assert set(np.unique(digits.train_labels)) == set(range(10))
    assert digits.train_images.max() == 16
    pixels = digits.train_images.astype(np.float64)
    np.testing.assert_allclose(digits.mean, [pixels.mean()], rtol=1e-6)
    np.testing.assert_allclose(digits.std, [pixels.std()], rtol=1e-6)
    # The split is fixed: loading twice gives the same arrays.
    np.testing.assert_array_equal(load_dataset("digits").test_labels, digits.test_labels)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="dataset='mnist' is unknown; allowed"):
        load_dataset("mnist")


def test_digits_are_scikit_learns_read_without_importing_it(digits):
    """The same images and labels as sklearn.datasets.load_digits, split as before; loading
    them imports neither scikit-learn nor SciPy (2 s of every small run's start)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.uint8)[..., None]
    order = np.random.default_rng(0).permutation(len(bunch.target))
    train, test = order[:-359], order[-359:]
    np.testing.assert_array_equal(digits.train_images, images[train])
    np.testing.assert_array_equal(digits.test_images, images[test])
    np.testing.assert_array_equal(digits.train_labels, bunch.target[train])
    np.testing.assert_array_equal(digits.test_labels, bunch.target[test])

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys; from smallbatch_jax.data import load_dataset; "
         "load_dataset('digits'); print(sorted({'sklearn', 'scipy'} & set(sys.modules)))"],
        capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.strip() == "[]"
