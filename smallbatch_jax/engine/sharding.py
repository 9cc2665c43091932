"""Lanes across devices: the jax.sharding helpers the execution plan uses (train/plan.py).

Lanes are independent, so sharding them needs no communication during training: each
device trains its share of the lanes on a full copy of the data. Two ways, as the plan
says: the same vmapped program partitioned by XLA along the lane axis of a 1-D mesh (GSPMD;
the number of lanes is padded to a multiple of the device count with copies of the last
lane, whose results are dropped), or groups of lanes dealt out over the devices, one
program per group (engine/trainer.py).

On a CPU, XLA sees one device however many cores there are; `use_cpu_cores` asks for one
device per core, so that a program too small to spread over the cores by itself (m = 2)
runs its lanes on all of them.

Only this process's devices (`jax.local_devices()`) are used: with several processes
(processes.py) each one trains its own runs of a sweep on its own devices, so no program
spans hosts.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

LANE_AXIS = "lanes"


def cpu_core_count() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def use_cpu_cores() -> int:
    """One XLA:CPU device per core this process may use; returns the number asked for.

    Call it first thing in an entry point: the number of CPU devices is fixed when JAX
    starts its backends. A user's own choice (JAX_NUM_CPU_DEVICES, or XLA_FLAGS with
    --xla_force_host_platform_device_count) is left alone. Accelerators are not affected.
    """
    if "JAX_NUM_CPU_DEVICES" in os.environ or \
            "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return jax.config.jax_num_cpu_devices
    cores = cpu_core_count()
    jax.config.update("jax_num_cpu_devices", cores)
    return cores


def lane_mesh(devices=None) -> Mesh:
    """A 1-D mesh over `devices` (default: every local device) whose axis holds lanes."""
    devices = jax.local_devices() if devices is None else devices
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
