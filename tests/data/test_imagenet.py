"""ImageNet's host pipeline: preprocessing, and the tensorflow-datasets path on mock data."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")  # a dependency (pyproject); skip only if broken
import tensorflow_datasets as tfds  # noqa: E402

from smallbatch_jax.data.imagenet import (  # noqa: E402
                                          eval_preprocess, load_imagenet, pad_batch, train_preprocess)


def _image(height=60, width=90, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_training_preprocessing_is_a_function_of_its_seed():
    image = _image()
    out = train_preprocess(tf, image, tf.constant([3, 7], tf.int64), image_size=32)
    assert out.shape == (32, 32, 3) and out.dtype == tf.uint8
    again = train_preprocess(tf, image, tf.constant([3, 7], tf.int64), image_size=32)
    other = train_preprocess(tf, image, tf.constant([3, 8], tf.int64), image_size=32)
    np.testing.assert_array_equal(out, again)
    assert not np.array_equal(out, other)


def test_evaluation_is_the_central_crop_and_deterministic():
    # Left third black, middle third grey, right third white, 60×90: after resizing the
    # shorter side to 37 (256/224 · 32), the central 32×32 crop lies inside the grey third
    # except for a few columns at its edges.
    image = np.zeros((60, 90, 3), np.uint8)
    image[:, 30:60], image[:, 60:] = 128, 255
    out = eval_preprocess(tf, tf.constant(image), image_size=32).numpy()
    assert out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out, eval_preprocess(tf, tf.constant(image), 32).numpy())
    np.testing.assert_array_equal(out[:, 12:20], 128)  # the centre is grey
    assert out[:, 0].mean() < 128 < out[:, -1].mean()  # black to the left, white to the right


def test_pad_batch_masks_the_padding():
    images, labels, mask = pad_batch(np.ones((3, 2, 2, 3), np.uint8), np.array([4, 5, 6]), 5)
    assert images.shape == (5, 2, 2, 3) and list(labels) == [4, 5, 6, 0, 0]
    assert list(mask) == [True, True, True, False, False] and images[3:].sum() == 0


def test_mock_imagenet_streams_batches_reproducibly():
    with tfds.testing.mock_data(num_examples=10):
        ds = load_imagenet("", image_size=32)
        assert (ds.num_train, ds.num_test, ds.num_classes) == (10, 10, 1000)
        assert ds.image_shape == (32, 32, 3)
        first = list(ds.train_batches(0, 0, 4))
        again = list(ds.train_batches(0, 0, 4))
        next_epoch = list(ds.train_batches(0, 1, 4))
        test = list(ds.test_batches(4))
    assert len(first) == 2  # whole batches only: 10 // 4
    assert first[0][0].shape == (4, 32, 32, 3) and first[0][0].dtype == np.uint8
    for (a, la), (b, lb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(first[0][0], next_epoch[0][0])
    assert [int(mask.sum()) for _, _, mask in test] == [4, 4, 2]  # padded last batch
