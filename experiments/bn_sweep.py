r"""The paper's ghost-BN study: every SGD batch m × BN batch m_BN of the config (Figs 13, 14).

    python -m experiments.bn_sweep --config=configs/ghost_bn_cifar.py \
        --config.lr_from=runs/fig8 --workdir=runs/fig13a
    python -m experiments.bn_sweep --config=configs/default.py --config.model=small_cnn_bn \
        --config.batch_sizes="(16, 64)" --workdir=runs/bn_digits

η̃ per m: the best of an earlier batch_sweep workdir (`--config.lr_from`), given by hand
(`--config.lr_per_batch_size="((64, 0.0039), (128, 0.002))"`), or the whole base_lrs grid.
Re-running skips (m, m_BN) already complete; split over machines with
`--task_index=i --num_tasks=n`. Writes results.csv, figures/ and summary.md in the workdir.
"""

from experiments import entry, sweep_flags
from smallbatch_jax.study.bn_sweep import run_bn_sweep

CONFIG = entry.config_flag()
WORKDIR = entry.workdir_flag("Where results are written.")
CACHE = entry.compilation_cache_flag()

if __name__ == "__main__":
    entry.run(lambda: run_bn_sweep(CONFIG.value, WORKDIR.value, *sweep_flags.task()),
              cpu_cores=True, compilation_cache=CACHE)
