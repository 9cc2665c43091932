r"""The paper's study for one model: every batch size m of the config, each with the whole η̃
grid as one program; one tidy results table in the workdir.

    python -m experiments.batch_sweep --config=configs/default.py --workdir=runs/sweep
    python -m experiments.batch_sweep --config=configs/alexnet_cifar10.py:bn=none \
        --config.data_dir=../shared/data/cifar10_subset.npz \
        --config.batch_sizes="(2, 4, 8, 16)" --workdir=runs/alexnet_sweep

Re-running skips batch sizes already complete. Split over machines or job-array tasks with
`--task_index=i --num_tasks=n` (same workdir on a shared file system): task i runs batch
sizes i, i + n, …; each task merges whatever is complete into results.csv when it ends.
"""

from absl import app, flags
from ml_collections import config_flags

from experiments import sweep_flags
from smallbatch_jax.batch_sweep import run_batch_sweep
from smallbatch_jax.sharding import use_cpu_cores

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to the config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results are written.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    use_cpu_cores()  # Before JAX starts: on a CPU, small programs split lanes over cores.
    run_batch_sweep(_CONFIG.value, _WORKDIR.value, *sweep_flags.task())


if __name__ == "__main__":
    app.run(main)
