r"""Trains a whole grid of base learning rates η̃ for one batch size m, as one program.

    python -m experiments.lr_sweep --config=configs/default.py --workdir=/tmp/lr_sweep
    python -m experiments.lr_sweep --config=configs/alexnet_cifar10.py \
        --config.batch_size=8 --config.epochs=10 --workdir=/tmp/alexnet_m8
"""

from experiments import entry
from smallbatch_jax.run.train import train_and_evaluate

CONFIG = entry.config_flag()
WORKDIR = entry.workdir_flag("Where results are written.")
CACHE = entry.compilation_cache_flag()

if __name__ == "__main__":
    entry.run(lambda: train_and_evaluate(CONFIG.value, WORKDIR.value), cpu_cores=True,
              compilation_cache=CACHE)
