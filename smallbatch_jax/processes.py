"""Several processes (hosts) of one sweep, joined by `jax.distributed`.

Lanes never communicate, and a sweep is many independent programs (one per m, or per
(m, m_BN)). So several hosts share a sweep the cheapest way there is: each process trains
its own runs on its own devices (sharding.py uses `jax.local_devices()` only), no program
spans hosts, and nothing but a barrier and the shared workdir join them.

    python -m experiments.batch_sweep --config=... --workdir=/shared/fs/sweep --multihost

in every process: `initialize` calls `jax.distributed.initialize()`, which finds the
coordinator, the number of processes and this process's index from the cluster's
environment (SLURM, Open MPI, Kubernetes, Cloud TPU, ...) or from the flags
`--coordinator_address`, `--num_processes`, `--process_id`. Process i then runs the sweep's
task i of n (sweep.task_runs). At the end `wait_for_all` holds every process until the last
one is done: process 0 hosts the coordination service, and a process that left early would
take it down under the others, whose runs may take hours longer. Process 0 then writes the
merged table, figures and summary.
"""

import jax
from absl import logging

# A sweep's tasks can differ in length by hours (m = 2 against m = 256): wait up to this long
# at the closing barrier (the coordination service keeps heartbeats going meanwhile).
BARRIER_TIMEOUT_MS = 7 * 24 * 3600 * 1000


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> tuple[int, int]:
    """Joins this process to the others (jax.distributed; anything left None is detected
    from the cluster's environment); returns (this process's index, the number of processes).
    Call it before JAX computes anything."""
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    logging.info("process %d of %d, local devices %s", jax.process_index(),
                 jax.process_count(), jax.local_devices())
    return jax.process_index(), jax.process_count()


def wait_for_all(name: str) -> None:
    """Blocks until every process of the sweep reaches the barrier `name` (no-op with one
    process)."""
    if jax.process_count() == 1:
        return
    # The coordination service's own barrier: no device collective, so it needs no
    # cross-process communication backend (none is set up for CPUs) and costs no device time.
    from jax._src import distributed
    distributed.global_state.client.wait_at_barrier(name, BARRIER_TIMEOUT_MS)
