"""An image classification data set held whole in memory (and then on the device).

A `Dataset` is four arrays and what preprocessing needs. Images are NHWC and keep their
storage dtype (uint8 for CIFAR: four times less device memory than float32); the trainer
standardizes them per channel inside the compiled step with `mean` and `std`, which are
computed on the training split.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    train_images: np.ndarray  # (N, H, W, C)
    train_labels: np.ndarray  # (N,) int32
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    mean: np.ndarray  # (C,) float32, per-channel mean of the training images
    std: np.ndarray  # (C,) float32

    @property
    def num_train(self) -> int:
        return len(self.train_labels)

    @property
    def num_test(self) -> int:
        return len(self.test_labels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train_images.shape[1:])


def make_dataset(name, train_images, train_labels, test_images, test_labels, num_classes):
    """Checks the arrays and computes the standardization statistics."""
    for split, images, labels in (("train", train_images, train_labels),
                                  ("test", test_images, test_labels)):
        if images.ndim != 4 or len(images) != len(labels):
            raise ValueError(f"{name}: {split} images must be (N, H, W, C) with one label each; "
                             f"got {images.shape} and {labels.shape}")
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{name}: {split} labels must lie in [0, {num_classes})")
    mean, std = channel_mean_std(train_images)
    return Dataset(
        name=name,
        train_images=train_images,
        train_labels=train_labels.astype(np.int32),
        test_images=test_images,
        test_labels=test_labels.astype(np.int32),
        num_classes=num_classes,
        mean=mean.astype(np.float32),
        std=np.maximum(std, 1e-8).astype(np.float32),
    )


def channel_mean_std(images: np.ndarray, chunk: int = 4096):
    """Per-channel mean and standard deviation of (N, H, W, C) images, in float64, a chunk
    of images at a time (a float64 copy of all of CIFAR's pixels would take 1.2 GB)."""
    channels = images.shape[-1]
    total, total_sq, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(images), chunk):
        pixels = images[start:start + chunk].reshape(-1, channels).astype(np.float64)
        total += pixels.sum(axis=0)
        total_sq += np.square(pixels).sum(axis=0)
        count += len(pixels)
    mean = total / count
    return mean, np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
