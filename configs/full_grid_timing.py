r"""The paper's whole Fig 1 grid timed at full size (smallbatch_jax/diagnostics/full_grid.py):

    python -m experiments.full_grid_timing --config=configs/full_grid_timing.py \
        --workdir=runs/full_grid --budget_minutes=8

Synthetic CIFAR-shaped data (50,000 + 10,000 images), the reduced AlexNet without BN and its
13 η̃ (Fig 1), m = 2 … 2048, at TF32 ('default' on NVIDIA GPUs), float32 ('highest') and
bf16 compute, in that order; each m: its build (tuning under `run.strategy.preset='tune'`),
two epochs with their evaluation. Rerunning continues where the budget stopped it.
`:tiny` is the test's setting (two m, 64 + 16 images, seconds on a CPU).
"""

import ml_collections

from smallbatch_jax.config_args import parse_arg, sibling_config


def get_config(arg: str | None = None):
    args = parse_arg(arg, tiny=False)
    config = ml_collections.ConfigDict()
    config.image_shape = (32, 32, 3)
    config.num_train = 50_000
    config.num_test = 10_000
    config.batch_sizes = tuple(2**k for k in range(1, 12))
    config.precisions = ("default", "highest", "bf16")
    # The run every m makes: Fig 1's (configs/alexnet_cifar10.py:bn=none) on the data above.
    config.run = sibling_config(__file__, "alexnet_cifar10", "bn=none")
    config.run.dataset = "synthetic"  # (the data are handed to the run, not loaded)
    config.run.strategy.preset = "tune"
    if args.tiny:
        config.num_train, config.num_test = 64, 16
        config.batch_sizes = (2, 8)
        config.precisions = ("highest", "default")
        config.run.epochs = 3
        config.run.eval_batch_size = 16
    return config
