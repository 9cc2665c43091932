import numpy as np

from smallbatch_jax.data.dataset import channel_mean_std


def test_channel_statistics_match_numpy_in_any_chunking():
    images = np.random.default_rng(0).integers(0, 256, (37, 5, 4, 3), dtype=np.uint8)
    pixels = images.reshape(-1, 3).astype(np.float64)
    for chunk in (1, 8, 37, 1000):
        mean, std = channel_mean_std(images, chunk=chunk)
        np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-9)
