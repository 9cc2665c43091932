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
