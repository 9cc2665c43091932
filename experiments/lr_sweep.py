r"""Trains a whole grid of base learning rates η̃ for one batch size m, as one program.

    python -m experiments.lr_sweep --config=configs/default.py --workdir=/tmp/lr_sweep
    python -m experiments.lr_sweep --config=configs/alexnet_cifar10.py \
        --config.batch_size=8 --config.epochs=10 --workdir=/tmp/alexnet_m8
"""

from absl import app, flags
from ml_collections import config_flags

from smallbatch_jax.lr_sweep import train_and_evaluate
from smallbatch_jax.sharding import use_cpu_cores

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to the config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where results are written.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    use_cpu_cores()  # Before JAX starts: on a CPU, small programs split lanes over cores.
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
