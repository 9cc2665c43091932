"""The flags both sweeps take to split their runs: job-array tasks, or processes joined by
jax.distributed (smallbatch_jax/processes.py)."""

from absl import app, flags

from smallbatch_jax import processes

_TASK_INDEX = flags.DEFINE_integer("task_index", 0, "This task's index in [0, num_tasks).")
_NUM_TASKS = flags.DEFINE_integer("num_tasks", 1, "Tasks the sweep's runs are split over.")
_MULTIHOST = flags.DEFINE_bool(
    "multihost", False, "Join the sweep's other processes with jax.distributed.initialize() "
    "(one process per host, same workdir on a shared file system); process i runs task i of "
    "n. Coordinator, process count and index come from the cluster's environment (SLURM, "
    "Open MPI, Kubernetes, Cloud TPU, ...) or the three flags below.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "With --multihost: host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --multihost: processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --multihost: this process.")


def task() -> tuple[int, int]:
    """(task_index, num_tasks) of this process; with --multihost, joins the others first
    (call it before JAX computes anything)."""
    if not _MULTIHOST.value:
        return _TASK_INDEX.value, _NUM_TASKS.value
    if _NUM_TASKS.value != 1:
        raise app.UsageError("--multihost takes the tasks from the processes: leave "
                             "--task_index and --num_tasks unset")
    return processes.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
