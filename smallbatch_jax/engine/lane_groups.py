"""Groups of lanes and the devices they run on (the plan's, engine/plan.py).

The lanes are cut into the plan's groups (`lane_slices`); each group trains as one program
call per dispatch. A diverged lane is frozen: the program would leave it unchanged, so it
need not run at all. Groups whose lanes have all diverged are skipped, and a group with
some diverged lanes is *compacted*: its live lanes are gathered into a smaller program (of
exactly the live lanes on a CPU; elsewhere of 2^k or 3·2^k lanes, the last live lane
repeated to fill it, so that a run compiles at most 2 log₂ K extra programs: `bucket_size`,
`ExecutionPlan.compaction`), and their results scattered back. Decided at each
epoch (and evaluation) from the lanes' divergence flags, so a resumed run decides the same.
With several devices, the lanes of one partitioned program are sharded along the lane axis
(not compacted: its lanes must divide over the devices), or the groups are dealt out over
the devices in turn.
"""

import dataclasses
from typing import Any

import jax
import numpy as np

from smallbatch_jax.engine.lanes import tree_concatenate, tree_slice
from smallbatch_jax.engine.plan import ExecutionPlan
from smallbatch_jax.engine.sharding import pad_lanes, replicate, shard_lanes
from smallbatch_jax.engine.state import LaneState, TrainState


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
    mesh gives its local copy; other device arrays are transferred; host scalars are left to
    the program call. `cache` ({(id, device): array}, for as long as the arrays live) spares
    repeating this for the same arrays, dispatch after dispatch."""
    if device is None:
        return tree

    def put(x):
        if not isinstance(x, jax.Array):
            return x if np.ndim(x) == 0 else jax.device_put(x, device)
        key = (id(x), device)
        if cache is not None and key in cache:
            return cache[key]
        local = None
        if x.sharding.is_fully_replicated:
            local = next((s.data for s in x.addressable_shards if s.device == device), None)
        local = jax.device_put(x, device) if local is None else local
        if cache is not None:
            cache[key] = local
        return local

    return jax.tree.map(put, tree)


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
            for a, b in plan.strategy.lane_slices(len(diverged)) if not diverged[a:b].all()]
    if not plan.groups_over_devices:
        return [Group(a, b, None, c) for a, b, c in live]
    if at_home:
        return [Group(a, b, plan.devices[0], c) for a, b, c in live]
    return [Group(a, b, plan.devices[i % len(plan.devices)], c)
            for i, (a, b, c) in enumerate(live)]


# Gathering and scattering every leaf of a lane state as one program each (the positions
# traced: a bucket's size compiles once), not leaf by leaf: eagerly, the state's dozens of
# leaves cost a dispatch each per epoch.
_gather = jax.jit(lambda tree, rows: jax.tree.map(lambda x: x[rows], tree))
_scatter = jax.jit(lambda tree, rows, new: jax.tree.map(lambda old, n: old.at[rows].set(n),
                                                        tree, new))


def take(tree, group: Group):
    """The group's lanes of a lane-stacked tree (gathered, for a compacted group), on its
    device."""
    if group.lanes is not None:
        return on(group.device, _gather(tree, np.asarray(group.positions, np.int32)))
    whole = group.start == 0 and group.stop == jax.tree.leaves(tree)[0].shape[0]
    return on(group.device, tree if whole else tree_slice(tree, group.start, group.stop))


def assemble(plan: ExecutionPlan, lanes: LaneState, trained: dict) -> LaneState:
    """`lanes` with the groups in `trained` ({Group: its program's lanes}) put back (a
    compacted group's scattered into its slice, whose diverged lanes are left as they
    were), on the device the lanes live on."""
    home = plan.devices[0] if plan.groups_over_devices else None
    by_slice = {(g.start, g.stop): (g, t) for g, t in trained.items()}
    num_lanes = lanes.diverged.shape[0]

    def piece(start, stop):
        if (start, stop) not in by_slice:
            return tree_slice(lanes, start, stop)
        group, group_lanes = by_slice[(start, stop)]
        group_lanes = on(home, group_lanes)
        if group.lanes is None:
            return group_lanes
        rows = np.asarray(group.positions - start, np.int32)  # (a repeated lane: twice, alike)
        return _scatter(tree_slice(lanes, start, stop) if (start, stop) != (0, num_lanes)
                        else lanes, rows, group_lanes)

    slices = plan.strategy.lane_slices(lanes.diverged.shape[0])
    if len(slices) == 1:
        return piece(*slices[0]) if slices[0] in by_slice else lanes
    return tree_concatenate([piece(*s) for s in slices])
