"""Lanes across devices: the lane axis of every lane-stacked array is split over a 1-D mesh.

Lanes are independent, so sharding them needs no communication during training: each
device trains its share of the lanes on a full copy of the data. The compiled program is
the same vmapped one; XLA partitions it along the lane axis (GSPMD). The number of lanes is
padded to a multiple of the device count with copies of the last lane, whose results are
dropped.

Several hosts: call `jax.distributed.initialize()` first in every process (see README);
`jax.devices()` then lists every host's devices and the same code shards lanes over all of
them, each process holding the whole data set.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LANE_AXIS = "lanes"


def lane_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every device) whose axis holds lanes."""
    devices = jax.devices() if devices is None else devices
    return Mesh(np.asarray(devices), (LANE_AXIS,))


def padded_num_lanes(num_lanes: int, num_devices: int) -> int:
    return -(-num_lanes // num_devices) * num_devices


def pad_lanes(tree, num_lanes: int):
    """Extends every leaf's lane axis to `num_lanes` by repeating its last lane."""
    def pad(x):
        extra = num_lanes - x.shape[0]
        return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]) if extra else x

    return jax.tree.map(pad, tree)


def shard_lanes(tree, mesh: Mesh):
    """Places a lane-stacked pytree with its leading (lane) axis split over the mesh."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(LANE_AXIS)))


def replicate(tree, mesh: Mesh):
    """A full copy of `tree` on every device of the mesh (the data set, the epoch order)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
