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

from experiments import entry, sweep_flags
from smallbatch_jax.study.batch_sweep import run_batch_sweep

CONFIG = entry.config_flag()
WORKDIR = entry.workdir_flag("Where results are written.")
CACHE = entry.compilation_cache_flag()

if __name__ == "__main__":
    entry.run(lambda: run_batch_sweep(CONFIG.value, WORKDIR.value, *sweep_flags.task()),
              cpu_cores=True, compilation_cache=CACHE)
