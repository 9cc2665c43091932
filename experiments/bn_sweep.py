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

from absl import app, flags
from ml_collections import config_flags

from experiments import sweep_flags
from smallbatch_jax.bn_sweep import run_bn_sweep
from smallbatch_jax.sharding import use_cpu_cores

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to the config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results are written.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    use_cpu_cores()  # Before JAX starts: on a CPU, small programs split lanes over cores.
    run_bn_sweep(_CONFIG.value, _WORKDIR.value, *sweep_flags.task())


if __name__ == "__main__":
    app.run(main)
