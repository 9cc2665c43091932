"""ImageNet (ILSVRC-2012), streamed from a host pipeline: it does not fit on a device.

tensorflow-datasets' `imagenet2012` reads the official archives from a manual download
directory (`<data_dir>/downloads/manual/`: ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar;
ImageNet cannot be downloaded automatically) and prepares them once. A tf.data pipeline
then decodes and augments on the host CPUs and hands the trainer one batch of uint8 images
per step; standardization happens on the device, as for CIFAR.

Preprocessing follows the paper (Simonyan & Zisserman 2014; He et al. 2015a; see
docs/protocol_choices.md):
- training: scale augmentation (the shorter side resized to a random length in
  [256, 480]), a random 224×224 crop, a random horizontal flip, AlexNet-style PCA colour
  noise (σ = 0.1); per-channel standardization with the ImageNet mean and std;
- evaluation (the 50,000 validation images): shorter side 256, the central 224×224 crop.
All lengths scale with `image_size` (224 by default), so tests can use tiny images.

Randomness is a function of (seed, epoch, position in the epoch): the file order, the
shuffle and each image's augmentation use stateless seeds, so a run restored at an epoch
boundary sees the same data as an uninterrupted one.
"""

import dataclasses
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from smallbatch_jax.data.tf_import import tensorflow

NAME = "imagenet2012"
# Per-channel statistics of ImageNet's training images, on the 0-255 scale.
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255
# AlexNet's colour noise: the eigen-decomposition of the RGB covariance (0-1 scale).
PCA_EIGENVALUES = np.array([0.2175, 0.0188, 0.0045], np.float32)
PCA_EIGENVECTORS = np.array([[-0.5675, 0.7192, 0.4009],
                             [-0.5808, -0.0045, -0.8140],
                             [-0.5836, -0.6948, 0.4203]], np.float32)
COLOUR_NOISE = 0.1
SHUFFLE_BUFFER = 16_384


@dataclasses.dataclass(frozen=True)
class StreamedDataset:
    """A data set that stays on the host and is fed to the device one batch at a time.

    `train_batches(seed, epoch, batch_size)` yields (images (m, H, W, C) uint8, labels (m,))
    for every whole batch of the epoch; `test_batches(batch_size)` yields (images, labels,
    mask) with the last batch padded (mask False on padding).
    """

    name: str
    num_train: int
    num_test: int
    image_shape: tuple[int, ...]
    num_classes: int
    mean: np.ndarray
    std: np.ndarray
    train_batches: Callable[[int, int, int], Iterator[tuple[np.ndarray, np.ndarray]]]
    test_batches: Callable[[int], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]]
    input_kind: ClassVar[str] = "images"
    label_kind: ClassVar[str] = "classes"
    streamed: ClassVar[bool] = True  # one data order per program: one seed per run
    # (ImageNet's validation images are its test split here, as in the paper; no split is
    # held out of its training set: config.validation must be 0.)
    evaluated_on: ClassVar[str] = "test"

    def unstandardized(self) -> "StreamedDataset":
        raise ValueError(f"config.standardize=False is not available for {self.name}: its "
                         "host pipeline's images are standardized on the device with the "
                         "data set's channel statistics")


def _resize_shorter_side(tf, image, length):
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.cast(length, tf.float32) / tf.reduce_min(shape)
    size = tf.cast(tf.round(shape * scale), tf.int32)
    return tf.image.resize(image, size, method="bilinear", antialias=True)


def train_preprocess(tf, image, seed, image_size: int):
    """Scale augmentation, random crop, flip, colour noise; uint8 out. `seed`: (2,) int."""
    seeds = tf.random.experimental.stateless_split(seed, 4)
    low, high = round(256 / 224 * image_size), round(480 / 224 * image_size)
    length = tf.random.stateless_uniform([], seeds[0], low, high + 1, dtype=tf.int32)
    image = _resize_shorter_side(tf, tf.cast(image, tf.float32), length)
    image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], seeds[1])
    image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    alpha = tf.random.stateless_normal([3], seeds[3], stddev=COLOUR_NOISE)
    shift = tf.linalg.matvec(tf.constant(PCA_EIGENVECTORS), alpha * PCA_EIGENVALUES) * 255
    return tf.cast(tf.clip_by_value(tf.round(image + shift), 0, 255), tf.uint8)


def eval_preprocess(tf, image, image_size: int):
    """Shorter side 256·image_size/224, then the central image_size² crop; uint8 out."""
    image = _resize_shorter_side(tf, tf.cast(image, tf.float32), round(256 / 224 * image_size))
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    top, left = (height - image_size) // 2, (width - image_size) // 2
    image = image[top:top + image_size, left:left + image_size]
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)


def load_imagenet(data_dir: str = "", image_size: int = 224) -> StreamedDataset:
    """ILSVRC-2012 through tensorflow-datasets, prepared from `<data_dir>/downloads/manual`."""
    tf, tfds = tensorflow()

    builder = tfds.builder(NAME, data_dir=data_dir or None)
    builder.download_and_prepare()

    def num_examples(split: str) -> int:
        if split in builder.info.splits:
            return builder.info.splits[split].num_examples
        # No split metadata (e.g. tfds.testing.mock_data): count what the split yields.
        return int(builder.as_dataset(split=split).reduce(0, lambda n, _: n + 1))

    def train_batches(seed: int, epoch: int, batch_size: int):
        epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] % 2**31)
        read = tfds.ReadConfig(shuffle_seed=epoch_seed)
        ds = builder.as_dataset(split="train", shuffle_files=True, read_config=read,
                                as_supervised=True)
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=epoch_seed).enumerate()
        ds = ds.map(lambda index, example: (train_preprocess(
            tf, example[0], tf.stack([tf.cast(epoch_seed, tf.int64), index]), image_size),
            example[1]), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
        return tfds.as_numpy(ds)

    def test_batches(batch_size: int):
        ds = builder.as_dataset(split="validation", shuffle_files=False, as_supervised=True)
        ds = ds.map(lambda image, label: (eval_preprocess(tf, image, image_size), label),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        for images, labels in tfds.as_numpy(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)):
            yield pad_batch(images, labels, batch_size)

    return StreamedDataset(
        name=NAME, num_train=num_examples("train"), num_test=num_examples("validation"),
        image_shape=(image_size, image_size, 3),
        num_classes=builder.info.features["label"].num_classes, mean=MEAN, std=STD,
        train_batches=train_batches, test_batches=test_batches)


def pad_batch(images, labels, batch_size: int):
    """(images, labels, mask) padded with zeros to `batch_size`; mask False on padding."""
    padding = batch_size - len(labels)
    pad = lambda x: np.concatenate([x, np.zeros((padding,) + x.shape[1:], x.dtype)])
    return pad(images), pad(labels.astype(np.int32)), pad(np.ones(len(labels), bool))
