"""Trains every lane of a grid for one batch size m in one compiled program.

The state of all lanes is one pytree (`TrainState`) whose lane leaves carry a leading axis
of size K. One dispatch of the compiled program runs many steps for all lanes: the data set
lives on the device, each epoch's order is a permutation computed there from explicit keys,
and batches are gathered inside the program. A data set too large for the device
(ImageNet: data/imagenet.py) is streamed instead: each dispatch receives its steps' batches
from the host, and the same per-step computation runs on them.

Randomness is a pure function of (seed, purpose, counter): initial weights from
fold_in(key(seed), INIT), the order of epoch e from fold_in(fold_in(key(seed), DATA_ORDER), e),
the augmentation of step s (augment.py) from fold_in(fold_in(key(seed), AUGMENT), s).
Nothing random is carried in the state, so a run restored at an epoch boundary continues
exactly as if it had not stopped.

Precision: `precision` sets the default precision of every matrix product and convolution
traced into the programs (jax.default_matmul_precision): 'default' leaves the backend's
(float32 on CPU; TensorFloat-32 on recent NVIDIA GPUs, bfloat16 passes on TPUs), 'highest'
asks for true float32 everywhere.

Divergence: a step whose loss, gradients or BatchNorm statistics are not finite is not
applied; the lane is frozen at its last finite state (with `jnp.where`, never `lax.cond`,
which under vmap runs both branches anyway) and marked diverged with that step. A frozen
lane costs the same compute as a live one, and the other lanes are unaffected.
"""

import collections
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from smallbatch_jax.augment import pad_crop_flip
from smallbatch_jax.data import Dataset, StreamedDataset
from smallbatch_jax.lanes import LaneHparams, tree_concatenate, tree_slice
from smallbatch_jax.lowering import Lowering, loop_steps, map_lanes
from smallbatch_jax.optim import paper_sgd
from smallbatch_jax.sharding import pad_lanes, padded_num_lanes, replicate, shard_lanes

# Streams of fold_in(key(seed), stream): one purpose each.
INIT, DATA_ORDER, AUGMENT = 0, 1, 2
# Steps per dispatch on streamed data when the lowering says "a whole epoch".
STREAMED_STEPS_PER_DISPATCH = 16
# Default precisions of matrix products and convolutions (jax.default_matmul_precision).
PRECISIONS = ("default", "high", "highest")


@flax.struct.dataclass
class LaneState:
    """Everything a lane owns; every leaf has a leading lane axis."""

    params: Any
    batch_stats: Any  # {} for models without BatchNorm
    opt_state: Any
    diverged: jax.Array  # bool
    diverged_step: jax.Array  # int32: the step whose update was not finite; -1 if none


@flax.struct.dataclass
class TrainState:
    lanes: LaneState
    step: jax.Array  # int32 scalar: optimizer steps done
    epoch: jax.Array  # int32 scalar: epochs done


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

    @property
    def num_test(self) -> int:
        return int(self.test_mask.sum())


def put_on_device(dataset: Dataset, eval_batch_size: int) -> DeviceData:
    num_test = len(dataset.test_labels)
    padding = -num_test % eval_batch_size
    pad = lambda x: np.concatenate([x, np.zeros((padding,) + x.shape[1:], x.dtype)])
    return jax.device_put(DeviceData(
        train_images=dataset.train_images,
        train_labels=dataset.train_labels,
        test_images=pad(dataset.test_images),
        test_labels=pad(dataset.test_labels),
        test_mask=pad(np.ones(num_test, bool)),
        mean=dataset.mean,
        std=dataset.std,
    ))


def standardize(images, mean, std):
    return (images.astype(jnp.float32) - mean) / std


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def all_finite(tree) -> jax.Array:
    leaves = jax.tree.leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])) if leaves else True


def sum_of_squares(tree) -> jax.Array:
    """Σ x² over every leaf: not finite if any element is not finite (or is huge)."""
    return sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree))


@dataclasses.dataclass(eq=False)
class LaneTrainer:
    """The compiled programs for one model, batch size, data shape and number of seeds.

    Hyperparameters, seeds, step counters and data are arguments, never constants of the
    program: every grid of the same size runs the same compiled code. `traces` counts how
    often each program was traced (each trace is a compilation).

    With a `mesh` (sharding.lane_mesh) the lanes run on its devices: a lowering that keeps
    every lane in one vmapped program runs partitioned along the lane axis (`place` splits
    the lanes); a lowering with chunks of lanes deals the chunks out over the devices, and
    they run concurrently.

    A chunk of lanes that have all diverged is skipped: its frozen lanes would not change,
    so the results are the same as running it, and a sweep's hopeless η̃ stop costing time.
    """

    model: flax.linen.Module
    batch_size: int
    num_train: int
    image_shape: tuple[int, ...]
    num_seeds: int = 1
    use_momentum: bool = False
    decay_points: Sequence[float] = (0.5, 0.75)
    decay_factor: float = 0.1
    lowering: Lowering = Lowering()
    eval_batch_size: int = 1000
    augment: bool = False  # the paper's pad-crop-flip on training batches (augment.py)
    precision: str = "default"  # of matrix products and convolutions (see PRECISIONS)
    mesh: Any = None
    traces: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision={self.precision!r}; allowed: {PRECISIONS}")
        if self.mesh is not None and not (self.lowering.splits_over_devices
                                          or self.lowering.chunks_over_devices):
            raise ValueError("lanes over several devices need every lane in one vmapped "
                             "program (lowering.lanes='vmap', lane_chunk=0) or chunks of lanes "
                             f"(lowering.lane_chunk > 0); got {self.lowering}")
        # The lowering decides how convolutions are computed; parameters do not change.
        if getattr(self.model, "conv", "xla") != self.lowering.conv:
            if not hasattr(self.model, "conv"):
                raise ValueError(f"lowering.conv={self.lowering.conv!r} needs a model with a "
                                 f"`conv` attribute; {type(self.model).__name__} has none")
            self.model = self.model.clone(conv=self.lowering.conv)
        shapes = jax.eval_shape(self._init_variables, jax.random.key(0))
        self.has_batch_norm = "batch_stats" in shapes
        self.init = jax.jit(self._init)
        self.permutations = jax.jit(self._permutations)
        self.train_chunk = jax.jit(self._at_precision(self._train_chunk),
                                   static_argnames="num_steps")
        self.evaluate_batch = jax.jit(self._at_precision(self._evaluate_batch))
        self.train_streamed = jax.jit(self._at_precision(self._train_streamed))
        self.evaluate_streamed = jax.jit(self._at_precision(self._evaluate_streamed))

    def _at_precision(self, fn):
        """`fn` traced under the trainer's default matmul precision ('default': unchanged)."""
        if self.precision == "default":
            return fn

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            with jax.default_matmul_precision(self.precision):
                return fn(*args, **kwargs)

        return traced

    @property
    def steps_per_epoch(self) -> int:
        """Whole batches per epoch: the remainder that does not fill a batch is dropped."""
        return self.num_train // self.batch_size

    # ----------------------------------------------------------------- one lane

    def _optimizer(self, hp: LaneHparams, total_steps):
        return paper_sgd(
            hp.base_lr, self.batch_size, total_steps,
            weight_decay=hp.weight_decay,
            warmup_fraction=hp.warmup_fraction,
            momentum=hp.momentum if self.use_momentum else None,
            decay_points=self.decay_points,
            decay_factor=self.decay_factor,
        )

    def _init_variables(self, key):
        dummy = jnp.zeros((1,) + tuple(self.image_shape), jnp.float32)
        return self.model.init(key, dummy, train=False)

    def _apply(self, params, batch_stats, images, train: bool):
        """Logits, and the updated BatchNorm statistics when training."""
        variables = {"params": params}
        if not self.has_batch_norm:
            return self.model.apply(variables, images, train=train), batch_stats
        variables["batch_stats"] = batch_stats
        if not train:
            return self.model.apply(variables, images, train=False), batch_stats
        logits, updated = self.model.apply(variables, images, train=True, mutable=["batch_stats"])
        return logits, updated["batch_stats"]

    def _lane_step(self, lane: LaneState, hp: LaneHparams, images, labels, step, total_steps):
        def loss_fn(params):
            logits, batch_stats = self._apply(params, lane.batch_stats, images, train=True)
            return cross_entropy(logits, labels).mean(), batch_stats

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(lane.params)
        # Decided before the update, so that freezing fuses into the update's single pass over
        # the weights (checking the new weights instead costs two more passes: 5 ms of a
        # 40 ms step for 13 AlexNet lanes on CPU). Finite gradients give finite weights: Σg²
        # overflows, and flags the lane, long before an update could.
        healthy = jnp.isfinite(loss) & jnp.isfinite(sum_of_squares(grads)) & all_finite(batch_stats)
        frozen = lane.diverged | ~healthy
        updates, opt_state = self._optimizer(hp, total_steps).update(
            grads, lane.opt_state, lane.params)
        params = optax.apply_updates(lane.params, updates)

        keep_old = lambda old, new: jnp.where(frozen, old, new)
        lane = LaneState(
            params=jax.tree.map(keep_old, lane.params, params),
            batch_stats=jax.tree.map(keep_old, lane.batch_stats, batch_stats),
            opt_state=jax.tree.map(keep_old, lane.opt_state, opt_state),
            diverged=frozen,
            diverged_step=jnp.where(frozen & ~lane.diverged, step, lane.diverged_step),
        )
        return lane, loss

    # ------------------------------------------------------------ all lanes

    def _init(self, seeds: jax.Array, hparams: LaneHparams) -> TrainState:
        """Initial state: lanes with the same seed get the same weights."""
        self.traces["init"] += 1
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), INIT))(seeds)
        variables = jax.vmap(self._init_variables)(keys)
        per_lane = jax.tree.map(lambda x: x[hparams.seed_index], variables)
        params, batch_stats = per_lane["params"], per_lane.get("batch_stats", {})
        opt_state = jax.vmap(lambda p, hp: self._optimizer(hp, 1).init(p))(params, hparams)
        num_lanes = hparams.base_lr.shape[0]
        lanes = LaneState(params, batch_stats, opt_state,
                          diverged=jnp.zeros(num_lanes, bool),
                          diverged_step=jnp.full(num_lanes, -1, jnp.int32))
        return TrainState(lanes, step=jnp.zeros((), jnp.int32), epoch=jnp.zeros((), jnp.int32))

    def _permutations(self, seeds: jax.Array, epoch) -> jax.Array:
        """The order of the training set in `epoch`, one row per seed: (S, N)."""
        def order(seed):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), DATA_ORDER), epoch)
            return jax.random.permutation(key, self.num_train)

        return jax.vmap(order)(seeds)

    def _augment(self, seeds, step, images):
        """Seed s's batch (images[s]) augmented with the key of (s, step)."""
        def one_seed(seed, seed_images):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), AUGMENT), step)
            return pad_crop_flip(key, seed_images)

        return jax.vmap(one_seed)(seeds, images)

    def _train_steps(self, lanes: LaneState, hparams: LaneHparams, batch_at, mean, std, seeds,
                     step, total_steps, num_steps: int):
        """`num_steps` steps of every lane; `batch_at(i)` gives step i's raw batch of each seed,
        (images (S, m, ...), labels (S, m)). Returns the lanes and each lane's summed loss."""
        shared_batch = self.num_seeds == 1  # then every lane sees the same batch
        batch_axis = None if shared_batch else 0
        lane_step = map_lanes(self._lane_step, (0, 0, batch_axis, batch_axis, None, None),
                              self.lowering)

        def body(carry, i):
            lanes, loss_sum = carry
            images, labels = batch_at(i)
            images = standardize(images, mean, std)
            if self.augment:
                images = self._augment(seeds, step + i, images)
            if shared_batch:
                images, labels = images[0], labels[0]
            else:
                images, labels = images[hparams.seed_index], labels[hparams.seed_index]
            lanes, loss = lane_step(lanes, hparams, images, labels, step + i, total_steps)
            return lanes, loss_sum + loss

        loss_sum = jnp.zeros(hparams.base_lr.shape, jnp.float32)
        return loop_steps(body, (lanes, loss_sum), num_steps, self.lowering)

    def _train_chunk(self, lanes: LaneState, hparams: LaneHparams, data: DeviceData, perms,
                     seeds, step, first_batch, total_steps, *, num_steps: int):
        """`num_steps` steps on device-resident data: batch b of the epoch is
        perms[:, b·m:(b+1)·m], gathered inside the program."""
        self.traces["train_chunk"] += 1
        m = self.batch_size

        def batch_at(i):
            indices = lax.dynamic_slice_in_dim(perms, (first_batch + i) * m, m, axis=1)
            return data.train_images[indices], data.train_labels[indices]

        return self._train_steps(lanes, hparams, batch_at, data.mean, data.std, seeds, step,
                                 total_steps, num_steps)

    def _train_streamed(self, lanes: LaneState, hparams: LaneHparams, images, labels, mean,
                        std, seeds, step, total_steps):
        """One dispatch on batches streamed from the host: images (steps, m, ...), labels
        (steps, m), one seed (every lane sees them)."""
        self.traces["train_streamed"] += 1
        batch_at = lambda i: (images[i][None], labels[i][None])
        return self._train_steps(lanes, hparams, batch_at, mean, std, seeds, step, total_steps,
                                 images.shape[0])

    def _evaluate_images(self, lanes: LaneState, images, labels, mask, mean, std):
        """Correct predictions and summed loss of every lane on one test batch."""
        images = standardize(images, mean, std)

        def lane_eval(lane, images, labels, mask):
            logits, _ = self._apply(lane.params, lane.batch_stats, images, train=False)
            correct = jnp.sum((jnp.argmax(logits, -1) == labels) & mask)
            loss = jnp.sum(jnp.where(mask, cross_entropy(logits, labels), 0.0))
            return correct, loss

        return map_lanes(lane_eval, (0, None, None, None), self.lowering)(
            lanes, images, labels, mask)

    def _evaluate_batch(self, lanes: LaneState, data: DeviceData, start):
        """`_evaluate_images` on the device-resident test batch that begins at `start`."""
        self.traces["evaluate"] += 1
        size = self.eval_batch_size
        batch = [lax.dynamic_slice_in_dim(x, start, size)
                 for x in (data.test_images, data.test_labels, data.test_mask)]
        return self._evaluate_images(lanes, *batch, data.mean, data.std)

    def _evaluate_streamed(self, lanes: LaneState, images, labels, mask, mean, std):
        self.traces["evaluate_streamed"] += 1
        return self._evaluate_images(lanes, images, labels, mask, mean, std)

    @property
    def devices(self) -> list:
        """The devices the lanes run on."""
        return jax.local_devices()[:1] if self.mesh is None else list(self.mesh.devices.flat)

    @property
    def num_devices(self) -> int:
        return len(self.devices)

    @property
    def _partitioned(self) -> bool:
        """Every lane in one program that XLA partitions over the mesh's devices."""
        return self.mesh is not None and self.lowering.splits_over_devices

    def start(self, seeds: jax.Array, hparams: LaneHparams, dataset: Dataset | StreamedDataset):
        """Initial state, hyperparameters and data, ready for `fit`: an in-memory data set goes
        to the device(s), a streamed one stays on the host. Lanes partitioned over a mesh are
        padded to a multiple of its devices (copies of the last lane, whose results the
        caller drops)."""
        if self._partitioned:
            hparams = pad_lanes(hparams, padded_num_lanes(hparams.base_lr.shape[0],
                                                          self.num_devices))
        state = self.init(seeds, hparams)
        if isinstance(dataset, StreamedDataset):
            if self.num_seeds != 1:
                raise ValueError(f"{dataset.name} is streamed: one data order per program, so "
                                 "num_seeds must be 1 (run each seed as its own sweep)")
            state, hparams, _ = self.place(state, hparams, None)
            return state, hparams, dataset
        return self.place(state, hparams, put_on_device(dataset, self.eval_batch_size))

    def place(self, state: TrainState, hparams: LaneHparams, data: DeviceData | None):
        """State, hyperparameters and data placed for the mesh: the data on every device;
        the lanes split over the devices when one program is partitioned, otherwise kept on
        the first device (chunks move to their device for each epoch). Unchanged without a
        mesh."""
        if self.mesh is None:
            return state, hparams, data
        data = None if data is None else replicate(data, self.mesh)
        if not self._partitioned:
            return jax.device_put((state, hparams), self.devices[0]) + (data,)
        state = TrainState(shard_lanes(state.lanes, self.mesh), replicate(state.step, self.mesh),
                           replicate(state.epoch, self.mesh))
        return state, shard_lanes(hparams, self.mesh), data

    def _on(self, device, tree):
        """`tree` on `device` (None: where it is). An array with a copy on every device of the
        mesh gives its local copy; anything else is transferred."""
        if device is None:
            return tree

        def put(x):
            if isinstance(x, jax.Array) and x.sharding.is_fully_replicated:
                for shard in x.addressable_shards:
                    if shard.device == device:
                        return shard.data
            return jax.device_put(x, device)

        return jax.tree.map(put, tree)

    def _chunks(self, lanes: LaneState) -> list[tuple[int, int, Any]]:
        """[start, stop) and device of each chunk of lanes (Lowering.lane_slices) that still
        trains. Chunks whose lanes have all diverged are left out (see the class docstring);
        the others are dealt out over the mesh's devices in turn (device None: one device,
        or one program partitioned over the mesh)."""
        diverged = np.asarray(lanes.diverged)
        live = [(a, b) for a, b in self.lowering.lane_slices(len(diverged))
                if not diverged[a:b].all()]
        if self.mesh is None or self._partitioned:
            return [(a, b, None) for a, b in live]
        return [(a, b, self.devices[i % self.num_devices]) for i, (a, b) in enumerate(live)]

    def _chunk_of(self, tree, start: int, stop: int, device):
        """Lanes [start, stop) of a lane-stacked tree, on `device`."""
        whole = start == 0 and stop == jax.tree.leaves(tree)[0].shape[0]
        return self._on(device, tree if whole else tree_slice(tree, start, stop))

    def _assemble(self, lanes: LaneState, trained: dict) -> LaneState:
        """`lanes` with the chunks in `trained` ({(start, stop): lanes}) replaced, on the
        device the lanes live on."""
        slices = self.lowering.lane_slices(lanes.diverged.shape[0])
        if len(slices) == 1:
            return trained.get(slices[0], lanes)
        home = None if self.mesh is None else self.devices[0]
        pieces = [self._on(home, trained[s]) if s in trained else tree_slice(lanes, *s)
                  for s in slices]
        return tree_concatenate(pieces)

    def program_bytes(self, num_lanes: int, data) -> int:
        """Device memory of one training dispatch for `num_lanes` lanes, as XLA's compiled
        memory analysis reports it: arguments (the data set, or a streamed dispatch's
        batches), outputs and temporaries. `data`: DeviceData (or its shapes) or a
        StreamedDataset."""
        hparams = jax.eval_shape(
            lambda: LaneHparams(*(jnp.zeros(num_lanes, d) for d in (jnp.float32,) * 4),
                                seed_index=jnp.zeros(num_lanes, jnp.int32)))
        seeds = jax.ShapeDtypeStruct((self.num_seeds,), jnp.int32)
        state = jax.eval_shape(self._init, seeds, hparams)
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        num_steps = self.lowering.dispatch_lengths(self.steps_per_epoch)[0]
        if isinstance(data, StreamedDataset):
            batch = (num_steps, self.batch_size)
            images = jax.ShapeDtypeStruct(batch + tuple(self.image_shape), jnp.uint8)
            labels = jax.ShapeDtypeStruct(batch, jnp.int32)
            compiled = self.train_streamed.lower(state.lanes, hparams, images, labels, data.mean,
                                                 data.std, seeds, scalar, scalar).compile()
        else:
            perms = jax.ShapeDtypeStruct((self.num_seeds, self.num_train), jnp.int32)
            compiled = self.train_chunk.lower(state.lanes, hparams, data, perms, seeds, scalar,
                                              scalar, scalar, num_steps=num_steps).compile()
        stats = compiled.memory_analysis()
        return (stats.argument_size_in_bytes + stats.output_size_in_bytes
                + stats.temp_size_in_bytes)

    def lanes_within_budget(self, num_lanes: int, data: DeviceData, budget_bytes: int) -> int:
        """The most lanes per program (halving from `num_lanes`) whose dispatch fits
        `budget_bytes`; raises if even one lane does not."""
        chunk = min(self.lowering.lane_chunk or num_lanes, num_lanes)
        while True:
            needed = self.program_bytes(chunk, data)
            if needed <= budget_bytes:
                return chunk
            if chunk == 1:
                raise ValueError(f"one lane needs {needed / 2**20:.0f} MiB per dispatch, over the "
                                 f"memory budget of {budget_bytes / 2**20:.0f} MiB; lower "
                                 "batch_size or raise config.memory_budget_gb")
            chunk = -(-chunk // 2)

    def evaluate(self, lanes: LaneState, data: DeviceData | StreamedDataset
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Test accuracy and mean test loss of every lane, with running BN statistics (NaN for
        a skipped chunk of diverged lanes)."""
        num_lanes = lanes.diverged.shape[0]
        chunks = self._chunks(lanes)
        on_device = [self._chunk_of(lanes, a, b, device) for a, b, device in chunks]
        if isinstance(data, StreamedDataset):
            sums = self._evaluate_stream(on_device, [device for *_, device in chunks], data)
        else:
            sums = []  # every chunk's batches are issued before any result is read
            for chunk, (*_, device) in zip(on_device, chunks):
                local = self._on(device, data)
                sums.append([self.evaluate_batch(chunk, local, np.int32(start))
                             for start in range(0, data.test_labels.shape[0],
                                                self.eval_batch_size)])
        accuracy, loss = np.full(num_lanes, np.nan), np.full(num_lanes, np.nan)
        for (a, b, _), batches in zip(chunks, sums):
            accuracy[a:b] = sum(np.asarray(c) for c, _ in batches) / data.num_test
            loss[a:b] = sum(np.asarray(l) for _, l in batches) / data.num_test
        return accuracy, loss

    def _evaluate_stream(self, chunks: list[LaneState], devices: list, data: StreamedDataset):
        """Each host test batch is read once and evaluated by every chunk of lanes (the
        chunks a memory budget asks for hold on evaluation too). Returns, per chunk, the
        (correct, loss) sums of each batch."""
        sums = [[] for _ in chunks]
        for images, labels, mask in data.test_batches(self.eval_batch_size):
            batch = self._to_devices((images, labels, mask, data.mean, data.std))
            for c, (chunk, device) in enumerate(zip(chunks, devices)):
                sums[c].append(self.evaluate_streamed(chunk, *self._on(device, batch)))
        return sums

    def _to_devices(self, tree):
        """A host tree on every device the lanes use (replicated over the mesh), or on the
        default device."""
        return jax.device_put(tree) if self.mesh is None else replicate(tree, self.mesh)

    def _dispatch_lengths(self, data) -> list[int]:
        if not isinstance(data, StreamedDataset):
            return self.lowering.dispatch_lengths(self.steps_per_epoch)
        # A whole epoch per dispatch (steps_per_dispatch=0) would stack an epoch on the host.
        per_dispatch = self.lowering.steps_per_dispatch or STREAMED_STEPS_PER_DISPATCH
        return dataclasses.replace(self.lowering, steps_per_dispatch=per_dispatch
                                   ).dispatch_lengths(self.steps_per_epoch)

    def train_epoch(self, state: TrainState, hparams: LaneHparams,
                    data: DeviceData | StreamedDataset, seeds: jax.Array, total_steps: int
                    ) -> tuple[TrainState, np.ndarray]:
        """One epoch of every lane; returns the new state and each lane's mean training loss
        (NaN for a skipped chunk of diverged lanes).

        Each chunk of lanes (Lowering.lane_chunk) runs on its device; dispatches go out
        step-major (every chunk's first dispatch, then every chunk's second, …), so chunks on
        different devices run concurrently and a streamed batch is read from the host once.
        """
        streamed = isinstance(data, StreamedDataset)
        chunks = self._chunks(state.lanes)
        lanes = [self._chunk_of(state.lanes, a, b, device) for a, b, device in chunks]
        chunk_hparams = [self._chunk_of(hparams, a, b, device) for a, b, device in chunks]
        if streamed:
            batches = iter(data.train_batches(int(seeds[0]), int(state.epoch), self.batch_size))
        else:
            perms = self.permutations(seeds, state.epoch)
            local = [self._on(device, (data, perms, seeds)) for *_, device in chunks]
        losses = [0] * len(chunks)
        step, first_batch = int(state.step), 0
        for num_steps in self._dispatch_lengths(data):
            if streamed:
                host = [next(batches) for _ in range(num_steps)]
                batch = self._to_devices((np.stack([b[0] for b in host]),
                                          np.stack([b[1] for b in host]).astype(np.int32),
                                          data.mean, data.std, seeds))
            for c, (*_, device) in enumerate(chunks):
                if streamed:
                    lanes[c], loss = self.train_streamed(
                        lanes[c], chunk_hparams[c], *self._on(device, batch), np.int32(step),
                        np.int32(total_steps))
                else:
                    lanes[c], loss = self.train_chunk(
                        lanes[c], chunk_hparams[c], *local[c], np.int32(step),
                        np.int32(first_batch), np.int32(total_steps), num_steps=num_steps)
                losses[c] = losses[c] + loss
            step, first_batch = step + num_steps, first_batch + num_steps
        mean_loss = np.full(state.lanes.diverged.shape[0], np.nan)
        for (a, b, _), loss in zip(chunks, losses):
            mean_loss[a:b] = np.asarray(loss) / self.steps_per_epoch
        trained = {(a, b): chunk for (a, b, _), chunk in zip(chunks, lanes)}
        state = TrainState(self._assemble(state.lanes, trained),
                           step=state.step + self.steps_per_epoch, epoch=state.epoch + 1)
        return state, mean_loss


@dataclasses.dataclass
class History:
    """Per-epoch measurements, each a list of (K,) arrays. NaN once a lane has diverged."""

    epoch: list[int] = dataclasses.field(default_factory=list)
    train_loss: list[np.ndarray] = dataclasses.field(default_factory=list)
    test_loss: list[np.ndarray] = dataclasses.field(default_factory=list)
    test_accuracy: list[np.ndarray] = dataclasses.field(default_factory=list)
    seconds: list[float] = dataclasses.field(default_factory=list)


def fit(trainer: LaneTrainer, state: TrainState, hparams: LaneHparams, data: DeviceData,
        seeds: Sequence[int], epochs: int,
        on_epoch_end: Callable[[int, History, TrainState], None] | None = None,
        ) -> tuple[TrainState, History]:
    """Trains from `state` (at any epoch boundary) to `epochs`, evaluating after each epoch.

    A lane's measurements are NaN from the epoch in which it diverged on: its frozen weights
    are not a trained model.
    """
    seeds = jnp.asarray(seeds, jnp.int32)
    total_steps = epochs * trainer.steps_per_epoch
    history = History()
    for epoch in range(int(state.epoch), epochs):
        start = time.perf_counter()
        state, train_loss = trainer.train_epoch(state, hparams, data, seeds, total_steps)
        test_accuracy, test_loss = trainer.evaluate(state.lanes, data)
        diverged = np.asarray(state.lanes.diverged)
        history.epoch.append(epoch + 1)
        history.train_loss.append(np.where(diverged, np.nan, train_loss))
        history.test_loss.append(np.where(diverged, np.nan, test_loss))
        history.test_accuracy.append(np.where(diverged, np.nan, test_accuracy))
        history.seconds.append(time.perf_counter() - start)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history, state)
    return state, history
