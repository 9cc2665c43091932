"""CIFAR from each source: .npz, the official python version, tensorflow-datasets."""

import os
import pickle

import numpy as np
import pytest

from conftest import CIFAR10_SUBSET, write_fake_cifar_npz
from smallbatch_jax.data import load_dataset


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


def test_an_npz_file_of_keras_names_loads(tmp_path):
    """keras.datasets saves x_train, y_train, x_test, y_test: read as the four arrays."""
    arrays = dict(np.load(write_fake_cifar_npz(tmp_path / "c.npz")))
    np.savez(tmp_path / "keras.npz", x_train=arrays["train_images"],
             y_train=arrays["train_labels"], x_test=arrays["test_images"],
             y_test=arrays["test_labels"])
    ds = load_dataset("npz", str(tmp_path / "keras.npz"))
    assert ds.num_train == len(arrays["train_labels"]) and ds.image_shape == (32, 32, 3)
    np.testing.assert_array_equal(ds.test_labels, arrays["test_labels"])
    np.savez(tmp_path / "other.npz", images=arrays["train_images"])
    with pytest.raises(ValueError, match=r"other.npz lacks arrays .*\(or Keras's \('x_train', "
                                         r"'y_train', 'x_test', 'y_test'\)\); it holds "
                                         r"\['images'\]"):
        load_dataset("npz", str(tmp_path / "other.npz"))


def test_bad_shapes_and_labels_raise(tmp_path):
    path = write_fake_cifar_npz(tmp_path / "c.npz")
    arrays = dict(np.load(path))
    np.savez(tmp_path / "flat.npz", **{**arrays, "test_images": arrays["test_images"].reshape(10, -1)})
    with pytest.raises(ValueError, match="test images must be"):
        load_dataset("cifar10", str(tmp_path / "flat.npz"))
    np.savez(tmp_path / "labels.npz", **{**arrays, "train_labels": arrays["train_labels"] + 10})
    with pytest.raises(ValueError, match=r"train labels must lie in \[0, 10\)"):
        load_dataset("cifar10", str(tmp_path / "labels.npz"))


def test_a_corrupt_npz_names_the_file(tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="broken.npz is not a readable .npz file"):
        load_dataset("cifar10", str(tmp_path / "broken.npz"))


def test_a_missing_directory_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist.*cifar-10-batches-py"):
        load_dataset("cifar10", str(tmp_path / "nowhere"))


# The official "python version": each batch a pickled dict, each image a row of 3072 bytes
# holding the red plane, then green, then blue (32×32 each, row-major).
def _to_rows(images):
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def _write_batch(path, images, labels, label_key=b"labels"):
    with open(path, "wb") as f:
        pickle.dump({b"data": _to_rows(images), label_key: list(labels), b"batch_label": b"x"}, f)


def _fake_images(rng, n):
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def write_cifar10_python(root, per_batch=4, seed=0):
    rng = np.random.default_rng(seed)
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images, labels = _fake_images(rng, per_batch), rng.integers(0, 10, per_batch)
        _write_batch(directory / name, images, labels)
        batches.append((images, labels))
    return directory, batches


def test_cifar10_python_version_loads_in_the_official_order(tmp_path):
    directory, batches = write_cifar10_python(tmp_path)
    for data_dir in (tmp_path, directory):  # the parent, or the directory itself
        ds = load_dataset("cifar10", str(data_dir))
        assert ds.num_train == 20 and len(ds.test_labels) == 4 and ds.num_classes == 10
        np.testing.assert_array_equal(ds.train_images, np.concatenate([b[0] for b in batches[:5]]))
        np.testing.assert_array_equal(ds.train_labels, np.concatenate([b[1] for b in batches[:5]]))
        np.testing.assert_array_equal(ds.test_images, batches[5][0])


def test_the_rows_are_red_then_green_then_blue(tmp_path):
    directory, _ = write_cifar10_python(tmp_path)
    image = np.zeros((1, 32, 32, 3), np.uint8)
    image[0, 0, 1] = (10, 20, 30)  # pixel (row 0, column 1)
    row = np.zeros((1, 3072), np.uint8)
    row[0, 1], row[0, 1024 + 1], row[0, 2048 + 1] = 10, 20, 30
    np.testing.assert_array_equal(_to_rows(image), row)  # the writer above is the format
    _write_batch(directory / "test_batch", image, [7])
    ds = load_dataset("cifar10", str(tmp_path))
    np.testing.assert_array_equal(ds.test_images[0, 0, 1], [10, 20, 30])
    assert ds.test_labels[0] == 7


def test_cifar100_python_version_uses_the_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    directory = tmp_path / "cifar-100-python"
    directory.mkdir()
    for name, n in (("train", 6), ("test", 3)):
        with open(directory / name, "wb") as f:
            pickle.dump({b"data": _to_rows(_fake_images(rng, n)),
                         b"fine_labels": [99, 50, 3, 0, 1, 2][:n],
                         b"coarse_labels": [19, 10, 1, 0, 0, 0][:n]}, f)
    ds = load_dataset("cifar100", str(tmp_path))
    assert ds.num_classes == 100 and list(ds.train_labels) == [99, 50, 3, 0, 1, 2]


def test_missing_or_corrupt_python_batches_name_the_file(tmp_path):
    directory, _ = write_cifar10_python(tmp_path)
    os.remove(directory / "data_batch_3")
    with pytest.raises(FileNotFoundError, match="missing .*data_batch_3; expected a pickled dict"):
        load_dataset("cifar10", str(tmp_path))
    (directory / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="data_batch_3 is not a pickled dict"):
        load_dataset("cifar10", str(tmp_path))
    with open(directory / "data_batch_3", "wb") as f:
        pickle.dump({b"data": np.zeros((4, 1024), np.uint8), b"labels": [0] * 4}, f)
    with pytest.raises(ValueError, match=r"data_batch_3 holds data \(4, 1024\) uint8"):
        load_dataset("cifar10", str(tmp_path))


@pytest.mark.skipif(not os.path.exists(CIFAR10_SUBSET), reason="../shared CIFAR-10 subset absent")
def test_real_cifar10_subset_loads():
    ds = load_dataset("cifar10", CIFAR10_SUBSET)
    assert ds.num_train == 5085 and len(ds.test_labels) == 1017
    assert ds.train_images.dtype == np.uint8 and ds.image_shape == (32, 32, 3)
    # Per-channel means of CIFAR-10 are near (125, 123, 114) on the 0-255 scale.
    np.testing.assert_allclose(ds.mean, [125.3, 123.0, 113.9], atol=4)


@pytest.mark.parametrize("name,num_classes", [("cifar10", 10), ("cifar100", 100)])
def test_tensorflow_datasets_path_with_mock_data(name, num_classes):
    """What a user with internet gets (data_dir empty: download and prepare), offline."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        ds = load_dataset(name, "")
    assert ds.num_train == 12 and ds.num_test == 12 and ds.num_classes == num_classes
    assert ds.image_shape == (32, 32, 3) and ds.train_images.dtype == np.uint8
    assert ds.train_labels.dtype == np.int32 and ds.train_labels.max() < num_classes
    assert ds.mean.shape == (3,)


def test_a_single_array_is_not_an_archive(tmp_path):
    path = tmp_path / "one.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="one.npz holds one array, not an .npz archive"):
        load_dataset("cifar10", str(path))


def test_without_tensorflow_the_tfds_path_names_the_extra(monkeypatch, tmp_path):
    """TensorFlow is an optional extra: where it is missing, the paths that need it say which
    to install, and the others do not import it."""
    import sys

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[tfds\]"'):
        load_dataset("cifar10", "")  # tensorflow-datasets' copy
    with pytest.raises(ImportError, match=r"\.\[tfds\]"):
        load_dataset("imagenet2012", str(tmp_path))
    # An .npz needs no TensorFlow (generated: a user's clone has no ../shared).
    assert load_dataset("cifar10", str(write_fake_cifar_npz(tmp_path / "c.npz"))).num_train == 24
    assert load_dataset("digits").num_train == 1438


def test_the_package_imports_without_tensorflow():
    import subprocess
    import sys

    code = ("import sys; sys.modules['tensorflow'] = None; "
            "sys.modules['tensorflow_datasets'] = None; "
            "import smallbatch_jax.run.train, smallbatch_jax.study.batch_sweep, smallbatch_jax.study.bn_sweep")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
