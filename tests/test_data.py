import os

import numpy as np
import pytest

from conftest import CIFAR10_SUBSET, write_fake_cifar_npz
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


def test_npz_loads(tmp_path):
    path = write_fake_cifar_npz(tmp_path / "c.npz", num_train=20, num_test=6, num_classes=100)
    ds = load_dataset("cifar100", str(path))
    assert ds.num_train == 20 and ds.image_shape == (32, 32, 3) and ds.num_classes == 100
    assert ds.mean.shape == ds.std.shape == (3,)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.npz.*train_images"):
        load_dataset("cifar10", str(tmp_path / "nothere.npz"))


def test_missing_array_names_the_array(tmp_path):
    np.savez(tmp_path / "bad.npz", train_images=np.zeros((2, 32, 32, 3), np.uint8),
             train_labels=np.zeros(2))
    with pytest.raises(ValueError, match=r"bad.npz lacks arrays \['test_images', 'test_labels'\]"):
        load_dataset("cifar10", str(tmp_path / "bad.npz"))


def test_bad_shapes_and_labels_raise(tmp_path):
    path = write_fake_cifar_npz(tmp_path / "c.npz")
    arrays = dict(np.load(path))
    np.savez(tmp_path / "flat.npz", **{**arrays, "test_images": arrays["test_images"].reshape(10, -1)})
    with pytest.raises(ValueError, match="test images must be"):
        load_dataset("cifar10", str(tmp_path / "flat.npz"))
    np.savez(tmp_path / "labels.npz", **{**arrays, "train_labels": arrays["train_labels"] + 10})
    with pytest.raises(ValueError, match=r"train labels must lie in \[0, 10\)"):
        load_dataset("cifar10", str(tmp_path / "labels.npz"))


def test_cifar_needs_a_data_dir_and_unknown_names_raise():
    with pytest.raises(ValueError, match="needs config.data_dir"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match="dataset='mnist' is unknown; allowed"):
        load_dataset("mnist")


@pytest.mark.skipif(not os.path.exists(CIFAR10_SUBSET), reason="../shared CIFAR-10 subset absent")
def test_real_cifar10_subset_loads():
    ds = load_dataset("cifar10", CIFAR10_SUBSET)
    assert ds.num_train == 5085 and len(ds.test_labels) == 1017
    assert ds.train_images.dtype == np.uint8 and ds.image_shape == (32, 32, 3)
    # Per-channel means of CIFAR-10 are near (125, 123, 114) on the 0-255 scale.
    np.testing.assert_allclose(ds.mean, [125.3, 123.0, 113.9], atol=4)
