"""Where a dispatch's batches come from: one interface, two sources.

A batch source hands the epoch loop, for each dispatch of an epoch, a `Dispatch`: a pytree of
device arrays that the compiled training program receives, whose `batch(i)` gives step i's
raw batch of every seed inside the program; and for evaluation, `TestBatch`es whose
`batch()` gives the images, labels and padding mask. The program is the same for both
sources (the pytree's type selects its compilation):

- `DeviceBatches`: the whole data set lives on the device(s); each epoch's order is a
  permutation drawn there from (seed, epoch), and batches are gathered inside the program:
  no host work per step.
- `StreamedBatches`: a data set too large for the device (ImageNet: data/imagenet.py) stays
  on the host; each dispatch carries its steps' batches, read from the host pipeline once
  and sent to every device that trains lanes. One data order per program (one seed).
"""

import copy
import dataclasses
from collections.abc import Callable, Iterator
from typing import ClassVar

import flax
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from smallbatch_jax import noise_scale
from smallbatch_jax.data import Dataset, StreamedDataset
from smallbatch_jax.engine.step import DATA_ORDER


@flax.struct.dataclass
class DeviceData:
    """A data set on the device. The test split is padded to whole evaluation batches."""

    train_images: jax.Array
    train_labels: jax.Array
    test_images: jax.Array
    test_labels: jax.Array
    test_mask: jax.Array  # bool: False on padding
    mean: jax.Array
    std: jax.Array
    # Standardized targets' mean and std (data/dataset.py), for the test metric in the
    # targets' units; None for classes or unstandardized targets.
    target_mean: jax.Array | None = None
    target_std: jax.Array | None = None


def put_on_device(dataset: Dataset, eval_batch_size: int) -> DeviceData:
    num_test = len(dataset.test_labels)
    padding = -num_test % eval_batch_size
    pad = lambda x: np.concatenate([x, np.zeros((padding,) + x.shape[1:], x.dtype)])
    return jax.device_put(DeviceData(
        train_images=dataset.train_images,
        train_labels=dataset.scaled_targets(dataset.train_labels),
        test_images=pad(dataset.test_images),
        test_labels=pad(dataset.scaled_targets(dataset.test_labels)),
        test_mask=pad(np.ones(num_test, bool)),
        mean=dataset.mean,
        std=dataset.std,
        target_mean=dataset.target_mean,
        target_std=dataset.target_std,
    ))


# ------------------------------------------------------------------ in the program


class _ResidentStatistics:
    """`mean` and `std` of what standardizes a batch, and `target_mean` and `target_std` of
    its targets: the device-resident data set's."""

    @property
    def mean(self):
        return self.data.mean

    @property
    def std(self):
        return self.data.std

    @property
    def target_mean(self):
        return self.data.target_mean

    @property
    def target_std(self):
        return self.data.target_std


@flax.struct.dataclass
class ResidentDispatch(_ResidentStatistics):
    """A dispatch on device-resident data: batch b of the epoch is perms[:, b·m:(b+1)·m]."""

    data: DeviceData
    perms: jax.Array  # (S, N): the epoch's order of each seed
    first_batch: jax.Array  # int32: the epoch's batch at the dispatch's step 0
    batch_size: int = flax.struct.field(pytree_node=False)

    def batch(self, i):
        """Step i's raw batch of every seed: images (S, m, ...), labels (S, m)."""
        m = self.batch_size
        indices = lax.dynamic_slice_in_dim(self.perms, (self.first_batch + i) * m, m, axis=1)
        return self.data.train_images[indices], self.data.train_labels[indices]


@flax.struct.dataclass
class StreamedDispatch:
    """A dispatch of host batches: images (steps, m, ...), labels (steps, m), one seed."""

    images: jax.Array
    labels: jax.Array
    mean: jax.Array
    std: jax.Array

    def batch(self, i):
        return self.images[i][None], self.labels[i][None]


@flax.struct.dataclass
class ResidentTestBatch(_ResidentStatistics):
    data: DeviceData
    start: jax.Array  # int32
    size: int = flax.struct.field(pytree_node=False)

    def batch(self):
        return [lax.dynamic_slice_in_dim(x, self.start, self.size)
                for x in (self.data.test_images, self.data.test_labels, self.data.test_mask)]


@flax.struct.dataclass
class StreamedTestBatch:
    images: jax.Array
    labels: jax.Array
    mask: jax.Array
    mean: jax.Array
    std: jax.Array
    target_mean = target_std = None  # streamed data sets hold classes

    def batch(self):
        return self.images, self.labels, self.mask


@flax.struct.dataclass
class ProbeBatch:
    """The noise-scale probe's batches of every seed (noise_scale.py): images (S, n, b, ...),
    labels (S, n, b), raw like a dispatch's (standardized in the program)."""

    images: jax.Array
    labels: jax.Array
    mean: jax.Array | None
    std: jax.Array | None


# ------------------------------------------------------------------ on the host


def _permutations(seeds: jax.Array, epoch, num_train: int) -> jax.Array:
    """The order of the training set in `epoch`, one row per seed: (S, N)."""
    def order(seed):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), DATA_ORDER), epoch)
        return jax.random.permutation(key, num_train)

    return jax.vmap(order)(seeds)


@dataclasses.dataclass(eq=False)
class BatchSource:
    """The interface the trainer uses. `place(put)` returns a copy of the source with what
    lives on the devices put there (`put`: host tree → the lanes' devices); `epoch(seeds,
    epoch, lengths, put)` yields (steps, dispatch) for each dispatch of an epoch; `test_batches()`
    yields the test batches of the test split; `abstract_dispatch` gives a dispatch's shapes
    (for compiling without data)."""

    dataset: Dataset | StreamedDataset
    batch_size: int
    eval_batch_size: int
    one_data_order: ClassVar[bool] = False  # True: one seed per program

    @property
    def num_train(self) -> int:
        return self.dataset.num_train

    @property
    def num_test(self) -> int:
        return self.dataset.num_test

    @property
    def steps_per_epoch(self) -> int:
        """Whole batches per epoch: the remainder that does not fill a batch is dropped."""
        return self.num_train // self.batch_size


@dataclasses.dataclass(eq=False)
class DeviceBatches(BatchSource):
    """An in-memory data set, placed on the device(s) by `place`."""

    data: DeviceData | None = None  # after `place`

    def __post_init__(self):
        self.permutations = jax.jit(_permutations, static_argnames="num_train")

    def place(self, put) -> "DeviceBatches":
        """A copy of this source with the data set put on the device(s) by `put` (a tree →
        tree placement). A copy, not this source changed: several trainers may place one
        source for their own devices and train side by side (tuning's run-off, engine/tune.py),
        each on its own placement."""
        placed = copy.copy(self)
        placed.data = put(put_on_device(self.dataset, self.eval_batch_size))
        return placed

    def epoch(self, seeds: jax.Array, epoch: int, lengths: list[int], put) -> Iterator:
        """The epoch's dispatches; `put` places what changes per epoch (the order)."""
        perms = put(self.permutations(seeds, epoch, num_train=self.num_train))
        first = 0
        for num_steps in lengths:
            yield num_steps, ResidentDispatch(self.data, perms, np.int32(first), self.batch_size)
            first += num_steps

    def test_batches(self) -> Iterator:
        for start in range(0, self.data.test_labels.shape[0], self.eval_batch_size):
            yield ResidentTestBatch(self.data, np.int32(start), self.eval_batch_size)

    def probe_batch(self, seeds, epoch: int, probe) -> ProbeBatch:
        """The noise-scale probe after `epoch` (noise_scale.NoiseProbe): each seed's
        num_batches × batch_size training examples, drawn per (seed, epoch)."""
        count = probe.batch_size * probe.num_batches
        shape = (probe.num_batches, probe.batch_size)
        picks = [noise_scale.probe_indices(int(seed), epoch, self.num_train, count)
                 for seed in np.asarray(seeds)]
        images = np.stack([self.dataset.train_images[i].reshape(
            shape + self.dataset.train_images.shape[1:]) for i in picks])
        labels = np.stack([self.dataset.scaled_targets(self.dataset.train_labels[i]).reshape(
            shape + self.dataset.train_labels.shape[1:]) for i in picks])
        return ProbeBatch(images, labels, self.dataset.mean, self.dataset.std)

    def abstract_dispatch(self, num_seeds: int, num_steps: int) -> ResidentDispatch:
        """The shapes of a dispatch, for compiling without data (memory analysis)."""
        data = jax.eval_shape(lambda: put_on_device(self.dataset, self.eval_batch_size))
        perms = jax.ShapeDtypeStruct((num_seeds, self.num_train), jnp.int32)
        return ResidentDispatch(data, perms, jax.ShapeDtypeStruct((), jnp.int32),
                                self.batch_size)


@dataclasses.dataclass(eq=False)
class StreamedBatches(BatchSource):
    """A data set read from a host pipeline, batch by batch."""

    put: Callable | None = None  # after `place`: host tree → the lanes' device(s)
    one_data_order: ClassVar[bool] = True  # the host pipeline's order: one seed per program

    def place(self, put) -> "StreamedBatches":
        """A copy of this source whose batches `put` places (as DeviceBatches.place)."""
        placed = copy.copy(self)
        placed.put = put
        return placed

    def epoch(self, seeds: jax.Array, epoch: int, lengths: list[int], put) -> Iterator:
        del put  # each dispatch is put on the devices as it is read
        batches = iter(self.dataset.train_batches(int(seeds[0]), int(epoch), self.batch_size))
        for num_steps in lengths:
            host = [next(batches) for _ in range(num_steps)]
            yield num_steps, self.put(StreamedDispatch(
                np.stack([b[0] for b in host]), np.stack([b[1] for b in host]).astype(np.int32),
                self.dataset.mean, self.dataset.std))

    def probe_batch(self, seeds, epoch: int, probe) -> None:
        """None: a streamed data set is not in memory to draw probe batches from."""
        return None

    def test_batches(self) -> Iterator:
        for images, labels, mask in self.dataset.test_batches(self.eval_batch_size):
            yield self.put(StreamedTestBatch(images, labels, mask, self.dataset.mean,
                                             self.dataset.std))

    def abstract_dispatch(self, num_seeds: int, num_steps: int) -> StreamedDispatch:
        del num_seeds
        batch = (num_steps, self.batch_size)
        return StreamedDispatch(
            jax.ShapeDtypeStruct(batch + tuple(self.dataset.image_shape), jnp.uint8),
            jax.ShapeDtypeStruct(batch, jnp.int32),
            jax.ShapeDtypeStruct(self.dataset.mean.shape, jnp.float32),
            jax.ShapeDtypeStruct(self.dataset.std.shape, jnp.float32))


def batch_source(dataset: Dataset | StreamedDataset, batch_size: int, eval_batch_size: int):
    """The batch source of a data set: resident if it is held in memory, else streamed."""
    if dataset.streamed:
        return StreamedBatches(dataset, batch_size, eval_batch_size)
    return DeviceBatches(dataset, batch_size, eval_batch_size)
