"""The lane trainer: one lane's math (step.py) compiled for K lanes (programs.py), run in the
plan's groups on its devices, on batches from a source (batches.py).

`LaneTrainer.train_epoch` runs one epoch of every live group; dispatches go out step-major
(every group's first dispatch, then every group's second, …), so groups on different devices
run concurrently and a streamed batch is read from the host once. It may also evaluate at
points inside the epoch (steps to a target, measured finer than an epoch): the epoch is cut
into near-equal parts, each dispatched as the plan says, so the steps and their results are
those of an uncut epoch. `evaluate` runs the test split through every live group, issuing
every batch before reading any result. The epoch loop with its history and hooks is loop.py.

Groups of lanes and their devices (below the trainer; the plan's, engine/plan.py): the lanes
are cut into the plan's groups (`lane_slices`); each group trains as one program call per
dispatch. A diverged lane is frozen: the program would leave it unchanged, so it need not
run at all. Groups whose lanes have all diverged are skipped, and a group with some diverged
lanes is *compacted*: its live lanes are gathered into a smaller program (of exactly the
live lanes on a CPU; elsewhere of 2^k or 3·2^k lanes, the last live lane repeated to fill
it, so that a run compiles at most 2 log₂ K extra programs: `bucket_size`,
`ExecutionPlan.compaction`), and their results scattered back. Decided at each epoch (and
evaluation) from the lanes' divergence flags, so a resumed run decides the same. With
several devices, the lanes of one partitioned program are sharded along the lane axis (not
compacted: its lanes must divide over the devices), or the groups are dealt out over the
devices in turn.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from smallbatch_jax.engine.lanes import LaneHparams, tree_concatenate, tree_slice
from smallbatch_jax.engine.plan import ExecutionPlan
from smallbatch_jax.engine.programs import Programs
from smallbatch_jax.engine.sharding import pad_lanes, replicate, shard_lanes
from smallbatch_jax.engine.state import LaneState, TrainState
from smallbatch_jax.engine.step import LaneStep
from smallbatch_jax.noise_scale import probe_groups


class LaneTrainer:
    """The compiled programs of one model, batch size, data shape and number of seeds, run
    as `plan` says."""

    def __init__(self, lane_step: LaneStep, plan: ExecutionPlan, *, num_seeds: int = 1,
                 augment: bool = False, compact: bool = True):
        self.lane_step, self.plan = lane_step, plan
        self.num_seeds, self.augment = num_seeds, augment
        self.compact = compact  # diverged lanes left out of the programs (py)
        self.programs = Programs(lane_step, plan, num_seeds, augment)

    @property
    def traces(self):
        return self.programs.traces

    @property
    def has_batch_norm(self) -> bool:
        return self.lane_step.has_batch_norm

    @property
    def devices(self) -> list:
        return list(self.plan.devices)

    def init(self, seeds: jax.Array, hparams: LaneHparams) -> TrainState:
        return self.programs.init(seeds, hparams)

    def start(self, seeds: jax.Array, hparams: LaneHparams, source):
        """Initial state, hyperparameters and batch source, placed for the plan: an
        in-memory data set goes to the device(s), a streamed one stays on the host. Lanes of
        a partitioned program are padded (pad_for)."""
        if source.one_data_order and self.num_seeds != 1:
            raise ValueError(f"{source.dataset.name} is streamed: one data order per program, "
                             "so num_seeds must be 1 (run each seed as its own sweep)")
        hparams = pad_for(self.plan, hparams)
        state, hparams = place(self.plan, self.init(seeds, hparams), hparams)
        return state, hparams, source.place(lambda tree: put_everywhere(self.plan,
                                                                                    tree))

    def with_loss_limits(self, state: TrainState, source, multiple: float) -> TrainState:
        """`state` with each lane's `loss_limit` (engine/step.py) set to `multiple` times its
        mean test loss now (at initialization: one evaluation, exact, unlike one batch's
        loss at m = 1). A lane whose initial loss is not finite or not positive (a loss that
        can be negative, e.g. a Gaussian negative log-likelihood) gets no limit: only
        non-finite values mark it diverged."""
        _, initial = self.evaluate(state.lanes, source)
        usable = np.isfinite(initial) & (initial > 0)
        limit = np.where(usable, multiple * initial, np.inf)
        # Placed like the array it replaces, committed or not: a committed leaf where the
        # programs' outputs are uncommitted would compile the training program again.
        old = state.lanes.loss_limit
        limit = (jax.device_put(limit.astype(np.float32), old.sharding) if old.committed
                 else jnp.asarray(limit, jnp.float32))
        return state.replace(lanes=state.lanes.replace(loss_limit=limit))

    def train_epoch(self, state: TrainState, hparams: LaneHparams, source, seeds: jax.Array,
                    total_steps: int, evals_per_epoch: int = 1
                    ) -> tuple[TrainState, np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
        """One epoch of every live group; returns the new state, each lane's mean training
        loss (NaN for a skipped group of diverged lanes) and the evaluations inside the epoch,
        [(step, test metric, test loss)] per lane (`evals_per_epoch` − 1 of them, at
        `plan.evaluation_points`; the epoch's end is the caller's to evaluate). With donation,
        `state` is used up."""
        groups = live_groups(self.plan, state.lanes, compact=self.compact)
        lanes = take(self.plan, state.lanes, groups)
        group_hparams = take(self.plan, hparams, groups)
        group_seeds = [on(g.device, seeds) for g in groups]
        lengths, points = self.plan.epoch_dispatches(source.steps_per_epoch, evals_per_epoch)
        losses = [0] * len(groups)
        step = first_step = int(state.step)
        num_lanes = state.lanes.diverged.shape[0]
        put = lambda tree: put_everywhere(self.plan, tree)
        local = {}  # each device's copy of the epoch's data and order, made once
        evaluations = []
        for num_steps, dispatch in source.epoch(seeds, int(state.epoch), lengths, put):
            for i, group in enumerate(groups):
                lanes[i], loss = self.programs.train(
                    lanes[i], group_hparams[i], on(group.device, dispatch, local),
                    group_seeds[i], np.int32(step), np.int32(total_steps), num_steps=num_steps)
                losses[i] = losses[i] + loss
            step += num_steps
            if step - first_step in points[:-1]:
                evaluations.append((step, *self._evaluate_groups(groups, lanes, source,
                                                                 num_lanes)))
        mean_loss = np.full(num_lanes, np.nan)
        for group, loss in zip(groups, losses):
            positions = group.positions
            mean_loss[positions] = (np.asarray(loss) / source.steps_per_epoch)[:len(positions)]
        trained = dict(zip(groups, lanes))
        state = TrainState(assemble(self.plan, state.lanes, trained),
                           step=state.step + source.steps_per_epoch, epoch=state.epoch + 1)
        return state, mean_loss, evaluations

    def evaluate(self, lanes: LaneState, source) -> tuple[np.ndarray, np.ndarray]:
        """The test metric (objectives.py; accuracy by default) and mean test loss of every
        lane, with running BN statistics (NaN for a lane that diverged)."""
        groups = live_groups(self.plan, lanes, compact=self.compact)
        return self._evaluate_groups(groups, take(self.plan, lanes, groups),
                                     source, lanes.diverged.shape[0])

    def _evaluate_groups(self, groups, group_lanes, source, num_lanes: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """`evaluate` of the groups' lanes (each group's on its device); NaN elsewhere, and
        for a lane that diverged."""
        sums = [[] for _ in groups]  # every batch is issued before any result is read
        local = {}
        for batch in source.test_batches():
            for i, group in enumerate(groups):
                sums[i].append(self.programs.evaluate(
                    group_lanes[i], on(group.device, batch, local)))
        metric, loss = np.full(num_lanes, np.nan), np.full(num_lanes, np.nan)
        for group, batches, lanes in zip(groups, sums, group_lanes):
            positions = group.positions  # (a partitioned program's padding lanes dropped)
            diverged = np.asarray(lanes.diverged)[:len(positions)]
            group_metric = sum(np.asarray(c) for c, _ in batches)[:len(positions)]
            group_loss = sum(np.asarray(l) for _, l in batches)[:len(positions)]
            metric[positions] = np.where(diverged, np.nan, group_metric / source.num_test)
            loss[positions] = np.where(diverged, np.nan, group_loss / source.num_test)
        return metric, loss

    def gradient_moments(self, lanes: LaneState, hparams: LaneHparams, probe_batch
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every lane's noise-scale probe (noise_scale.py, LaneStep.gradient_moments): mean
        |G_small|² and |G_big|² (K,) and their leave-one-group-out values (K, k, 2); NaN for a
        skipped group of diverged lanes. `probe_batch`: a host ProbeBatch."""
        num_lanes = lanes.diverged.shape[0]
        groups = live_groups(self.plan, lanes, at_home=True, compact=self.compact)
        probe_batch = put_everywhere(self.plan, probe_batch)
        local, moments = {}, []
        for group, group_lanes, group_hparams in zip(groups, take(self.plan, lanes, groups),
                                                     take(self.plan, hparams, groups)):
            # (every group is issued before any result is read)
            moments.append(self.programs.probe(group_lanes, group_hparams,
                                               on(group.device, probe_batch, local)))
        k = probe_groups(probe_batch.images.shape[1])  # (S, n, b, ...): n batches
        small, big = np.full(num_lanes, np.nan), np.full(num_lanes, np.nan)
        left_out = np.full((num_lanes, k, 2), np.nan)
        for group, (s, b, left) in zip(groups, moments):
            positions = group.positions
            small[positions] = np.asarray(s)[:len(positions)]
            big[positions] = np.asarray(b)[:len(positions)]
            left_out[positions] = np.asarray(left)[:len(positions)]
        return small, big, left_out


# Groups of lanes and the devices they run on.

@dataclasses.dataclass(frozen=True)
class Group:
    start: int
    stop: int
    device: Any  # None: where the lanes are (one device, or one partitioned program)
    # Compacted: the lanes its program trains (their indices among all lanes; the last live
    # one repeated up to the bucket size). None: lanes start … stop.
    lanes: tuple[int, ...] | None = None

    @property
    def positions(self) -> np.ndarray:
        """Which lane each of the program's lanes is."""
        return np.arange(self.start, self.stop) if self.lanes is None else np.asarray(self.lanes)


def bucket_size(live: int, size: int) -> int:
    """The program size for `live` lanes of a group of `size`: the next of 1, 2, 3, 4, 6,
    8, 12, 16, … (2^k and 3·2^k: at most a third of the program spent on repeated lanes,
    and at most 2 log₂ size sizes to compile), never more than `size`."""
    bucket = 1 << max(live - 1, 0).bit_length()  # the next power of two
    if live <= 3 * bucket // 4:
        bucket = 3 * bucket // 4
    return min(size, max(bucket, 1))


def compacted(start: int, stop: int, diverged: np.ndarray,
              exact: bool = False) -> tuple[int, ...] | None:
    """The lanes a compacted program of group [start, stop) trains, or None when no smaller
    program holds its live lanes (or none has diverged); `exact`: a program of exactly the
    live lanes, else of `bucket_size` lanes."""
    live = [i for i in range(start, stop) if not diverged[i]]
    bucket = len(live) if exact else bucket_size(len(live), stop - start)
    if not live or bucket == stop - start:
        return None
    return tuple(live + [live[-1]] * (bucket - len(live)))


def pad_for(plan: ExecutionPlan, hparams):
    """The hyperparameters padded to the partitioned program's lanes (copies of the last
    lane, whose results the caller drops); unchanged otherwise. On several devices the plan
    was made for these lanes."""
    num_lanes = hparams.base_lr.shape[0]
    if len(plan.devices) > 1 and num_lanes != plan.num_lanes:
        raise ValueError(f"the plan was made for {plan.num_lanes} lanes, not {num_lanes}")
    return pad_lanes(hparams, plan.num_program_lanes) if plan.partitioned else hparams


def put_everywhere(plan: ExecutionPlan, tree):
    """A host tree (the data set, a streamed batch) on every device the lanes use, or on the
    default device."""
    return jax.device_put(tree) if plan.mesh is None else replicate(tree, plan.mesh)


def place(plan: ExecutionPlan, state: TrainState, hparams):
    """State and hyperparameters placed for the plan: split over the devices when one
    program is partitioned, otherwise on the first device (groups move to their device for
    each epoch). Unchanged on one device."""
    if plan.mesh is None:
        return state, hparams
    if not plan.partitioned:
        return jax.device_put((state, hparams), plan.devices[0])
    state = TrainState(shard_lanes(state.lanes, plan.mesh), replicate(state.step, plan.mesh),
                       replicate(state.epoch, plan.mesh))
    return state, shard_lanes(hparams, plan.mesh)


def on(device, tree, cache: dict | None = None):
    """`tree` on `device` (None: where it is). An array with a copy on every device of the
    mesh gives its local copy; other device arrays are transferred, all in one call (a call
    per leaf: a small CNN's 13 groups, ~325 calls an epoch, ~45 ms under cProfile); host
    scalars are left to the program call. `cache` ({(id, device): array}, for as long as the
    arrays live) spares repeating this for the same arrays, dispatch after dispatch."""
    if device is None:
        return tree
    leaves, structure = jax.tree.flatten(tree)
    placed, moving = list(leaves), []
    for i, x in enumerate(leaves):
        if not isinstance(x, jax.Array):
            if np.ndim(x) != 0:
                moving.append(i)
            continue
        key = (id(x), device)
        if cache is not None and key in cache:
            placed[i] = cache[key]
            continue
        local = None
        if x.sharding.is_fully_replicated:
            local = next((s.data for s in x.addressable_shards if s.device == device), None)
        if local is None:
            moving.append(i)
            continue
        placed[i] = local
        if cache is not None:
            cache[key] = local
    moved = jax.device_put([leaves[i] for i in moving], device) if moving else []
    for i, x in zip(moving, moved):
        placed[i] = x
        if cache is not None and isinstance(leaves[i], jax.Array):
            cache[(id(leaves[i]), device)] = x
    return jax.tree.unflatten(structure, placed)


def live_groups(plan: ExecutionPlan, lanes: LaneState, at_home: bool = False,
                compact: bool = True) -> list[Group]:
    """The groups that still train, each with its device, compacted where lanes have
    diverged (`compact`; never a partitioned program's); `at_home`: every group on the
    lanes' home device instead (for a program run once an epoch, the noise probe: a program
    is compiled once per device it runs on, and 3 probe compiles took 15 s of a 2-device
    small-CNN run on a CPU: docs/benchmarks.md)."""
    diverged = np.asarray(lanes.diverged)
    compact = compact and not plan.partitioned
    live = [(a, b, compacted(a, b, diverged, plan.exact_compaction) if compact else None)
            for a, b in plan.lane_slices(len(diverged)) if not diverged[a:b].all()]
    if not plan.groups_over_devices:
        return [Group(a, b, None, c) for a, b, c in live]
    if at_home:
        return [Group(a, b, plan.devices[0], c) for a, b, c in live]
    return [Group(a, b, plan.devices[i % len(plan.devices)], c)
            for i, (a, b, c) in enumerate(live)]


# Cutting a lane state into its groups, gathering and scattering a compacted group's lanes,
# and joining the groups back, as one program each (the slices static: compiled once per
# run; the positions traced: a bucket's size compiles once), not leaf by leaf: eagerly, a
# small CNN's 13 groups of ~15 leaves cost ~400 dispatches an epoch, 86–173 ms on a 2-core
# CPU, which a short epoch, and a tuning window, paid in full (docs/benchmarks.md, "What a
# strategy pays once an epoch").
_split = jax.jit(lambda tree, slices: [tree_slice(tree, a, b) for a, b in slices],
                 static_argnums=1)
_join = jax.jit(tree_concatenate)
_gather = jax.jit(lambda tree, rows: jax.tree.map(lambda x: x[rows], tree))
_scatter = jax.jit(lambda tree, rows, new: jax.tree.map(lambda old, n: old.at[rows].set(n),
                                                        tree, new))


def _slices(plan: ExecutionPlan, tree) -> dict:
    """{(start, stop): those lanes of a lane-stacked tree} for every slice of the plan."""
    slices = tuple(plan.lane_slices(jax.tree.leaves(tree)[0].shape[0]))
    return dict(zip(slices, _split(tree, slices)))


def take(plan: ExecutionPlan, tree, groups: list[Group]) -> list:
    """Each group's lanes of a lane-stacked tree (gathered, for a compacted group), on its
    device."""
    num_lanes = jax.tree.leaves(tree)[0].shape[0]
    cut = any(g.lanes is None and (g.start, g.stop) != (0, num_lanes) for g in groups)
    pieces = _slices(plan, tree) if cut else {}

    def lanes_of(group):
        if group.lanes is not None:
            return _gather(tree, np.asarray(group.positions, np.int32))
        return pieces.get((group.start, group.stop), tree)

    return [on(group.device, lanes_of(group)) for group in groups]


def assemble(plan: ExecutionPlan, lanes: LaneState, trained: dict) -> LaneState:
    """`lanes` with the groups in `trained` ({Group: its program's lanes}) put back (a
    compacted group's scattered into its slice, whose diverged lanes are left as they
    were), on the device the lanes live on."""
    home = plan.devices[0] if plan.groups_over_devices else None
    by_slice = {(g.start, g.stop): (g, t) for g, t in trained.items()}
    slices = plan.lane_slices(lanes.diverged.shape[0])
    # The lanes before this epoch, where a slice keeps them (skipped, or compacted).
    old = {s: lanes for s in slices} if len(slices) == 1 else (
        _slices(plan, lanes) if any(s not in by_slice or by_slice[s][0].lanes is not None
                                    for s in slices) else {})

    def piece(start, stop):
        if (start, stop) not in by_slice:
            return old[(start, stop)]
        group, group_lanes = by_slice[(start, stop)]
        group_lanes = on(home, group_lanes)
        if group.lanes is None:
            return group_lanes
        rows = np.asarray(group.positions - start, np.int32)  # (a repeated lane: twice, alike)
        return _scatter(old[(start, stop)], rows, group_lanes)

    if len(slices) == 1:
        return piece(*slices[0])
    return _join([piece(*s) for s in slices])
