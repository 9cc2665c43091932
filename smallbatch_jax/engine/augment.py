"""The paper's CIFAR augmentation, on the device, inside the compiled training step.

"Aug" (paper §3.1, after Lin et al. 2013 and He et al. 2015a): pad each image by 4 pixels on
every side, take a random 32×32 crop, flip it horizontally with probability 1/2. Each image
of a batch gets its own crop offset and flip.

The images are already standardized when they arrive here, so the zero padding pads with
the mean pixel (docs/protocol_choices.md). Everything is vectorized over the batch: one
gather for the crops, one select for the flips; no host round trip, no Python loop.

Keys are derived from (seed, step) by the trainer, so a run restored at any epoch boundary
augments exactly as an uninterrupted one, and every lane sharing a seed sees the same
augmented batch (lanes differ only in η̃).
"""

import jax
import jax.numpy as jnp
from jax import lax

PADDING = 4


def crop_offsets_and_flips(key, batch_size: int, padding: int = PADDING):
    """Per image: the crop's top-left corner (dy, dx) in [0, 2·padding] and a flip bit."""
    offset_key, flip_key = jax.random.split(key)
    offsets = jax.random.randint(offset_key, (batch_size, 2), 0, 2 * padding + 1)
    flips = jax.random.bernoulli(flip_key, 0.5, (batch_size,))
    return offsets, flips


def pad_crop_flip(key, images, padding: int = PADDING):
    """Random crops of the zero-padded images (same size as the input) and random flips.

    Args:
      key: a PRNG key; the same key gives the same augmentation.
      images: (m, H, W, C).
    """
    m, height, width, channels = images.shape
    offsets, flips = crop_offsets_and_flips(key, m, padding)
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    crop = lambda image, offset: lax.dynamic_slice(
        image, (offset[0], offset[1], 0), (height, width, channels))
    cropped = jax.vmap(crop)(padded, offsets)
    return jnp.where(flips[:, None, None, None], cropped[:, :, ::-1, :], cropped)
