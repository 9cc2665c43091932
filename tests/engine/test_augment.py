import jax
import jax.numpy as jnp
import numpy as np

from smallbatch_jax.engine.augment import PADDING, crop_offsets_and_flips, pad_crop_flip


def _images(m=16, size=8, channels=3):
    # Distinct positive values, so any pixel can be traced back to where it came from.
    return jnp.arange(1, m * size * size * channels + 1, dtype=jnp.float32).reshape(
        m, size, size, channels)


def _reference(image, offset, flip, padding=PADDING):
    """One image, the slow obvious way: pad with zeros, crop, maybe flip."""
    padded = np.pad(np.asarray(image), ((padding, padding), (padding, padding), (0, 0)))
    h, w = image.shape[:2]
    crop = padded[offset[0]:offset[0] + h, offset[1]:offset[1] + w]
    return crop[:, ::-1] if flip else crop


def test_each_image_is_a_crop_of_its_padded_self_maybe_flipped():
    images = _images()
    key = jax.random.key(3)
    out = pad_crop_flip(key, images)
    assert out.shape == images.shape and out.dtype == images.dtype
    offsets, flips = crop_offsets_and_flips(key, len(images))
    for i in range(len(images)):
        np.testing.assert_array_equal(out[i], _reference(images[i], offsets[i], flips[i]))


def test_the_crop_never_leaves_the_padded_image():
    offsets, flips = crop_offsets_and_flips(jax.random.key(0), 10_000)
    assert int(offsets.min()) == 0 and int(offsets.max()) == 2 * PADDING  # every offset occurs
    # About half the images are flipped.
    assert 0.45 < float(flips.mean()) < 0.55
    # Every output pixel is either padding (0) or a pixel of the same image.
    images = _images(m=64)
    out = np.asarray(pad_crop_flip(jax.random.key(1), images))
    for i in range(len(images)):
        values = set(np.unique(out[i])) - {0.0}
        assert values <= set(np.unique(np.asarray(images[i])))


def test_flip_is_a_horizontal_flip():
    images = _images(m=1)
    padding = 0  # no crop: the output is the image or its mirror
    for seed in range(8):
        key = jax.random.key(seed)
        out = pad_crop_flip(key, images, padding=padding)
        _, flips = crop_offsets_and_flips(key, 1, padding)
        expected = images[:, :, ::-1] if bool(flips[0]) else images
        np.testing.assert_array_equal(out, expected)


def test_same_key_same_result_other_key_other_result():
    images = _images()
    a = pad_crop_flip(jax.random.key(7), images)
    np.testing.assert_array_equal(a, pad_crop_flip(jax.random.key(7), images))
    assert not np.array_equal(a, pad_crop_flip(jax.random.key(8), images))


def test_it_compiles_and_matches_eager():
    images = _images()
    key = jax.random.key(5)
    np.testing.assert_array_equal(jax.jit(pad_crop_flip)(key, images), pad_crop_flip(key, images))
