"""Groups of lanes and the devices they run on (the plan's, engine/plan.py).

The lanes are cut into the plan's groups (`lane_slices`); each group trains as one program
call per dispatch. Groups whose lanes have all diverged are skipped: their frozen lanes would
not change, so the results are the same as running them, and a sweep's hopeless η̃ stop
costing time. With several devices, the lanes of one partitioned program are sharded along
the lane axis, or the groups are dealt out over the devices in turn.
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


def live_groups(plan: ExecutionPlan, lanes: LaneState, at_home: bool = False) -> list[Group]:
    """The groups that still train, each with its device; `at_home`: every group on the
    lanes' home device instead (for a program run once an epoch, the noise probe: a program
    is compiled once per device it runs on, and 3 probe compiles took 15 s of a 2-device
    small-CNN run on a CPU: docs/benchmarks.md)."""
    diverged = np.asarray(lanes.diverged)
    live = [(a, b) for a, b in plan.strategy.lane_slices(len(diverged))
            if not diverged[a:b].all()]
    if not plan.groups_over_devices:
        return [Group(a, b, None) for a, b in live]
    if at_home:
        return [Group(a, b, plan.devices[0]) for a, b in live]
    return [Group(a, b, plan.devices[i % len(plan.devices)]) for i, (a, b) in enumerate(live)]


def take(tree, group: Group):
    """The group's lanes of a lane-stacked tree, on its device."""
    whole = group.start == 0 and group.stop == jax.tree.leaves(tree)[0].shape[0]
    return on(group.device, tree if whole else tree_slice(tree, group.start, group.stop))


def assemble(plan: ExecutionPlan, lanes: LaneState, trained: dict) -> LaneState:
    """`lanes` with the groups in `trained` ({(start, stop): lanes}) replaced, on the device
    the lanes live on."""
    slices = plan.strategy.lane_slices(lanes.diverged.shape[0])
    if len(slices) == 1:
        return trained.get(slices[0], lanes)
    home = plan.devices[0] if plan.groups_over_devices else None
    pieces = [on(home, trained[s]) if s in trained else tree_slice(lanes, *s) for s in slices]
    return tree_concatenate(pieces)
