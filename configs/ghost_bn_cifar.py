r"""ResNet-32 with BN over sub-batches of m_BN ≤ m ("ghost" BN), CIFAR-10/100, Aug (Fig 13).

    python -m experiments.lr_sweep --config=configs/ghost_bn_cifar.py:mbn=8 \
        --config.batch_size=64 --workdir=runs/fig13a_m64_mbn8

The SGD batch of m examples is split into m / m_BN groups; BatchNorm normalizes each group
by its own statistics (as m / m_BN data-parallel workers would), the update uses the whole
batch. Arguments: `mbn` (m_BN, a divisor of batch_size), `dataset=cifar10` (Fig 13a) or
`cifar100` (Fig 13b, 164 epochs). The paper trains each m at the best η̃ of Fig 8 / Fig 9;
give it with `--config.base_lrs="(0.00390625,)"`, or keep the whole grid.

The whole figure, every m × m_BN at the best η̃ of an earlier Fig 8 sweep:

    python -m experiments.batch_sweep --config=configs/resnet_cifar.py:depth=32,bn,aug \
        --workdir=runs/fig8
    python -m experiments.bn_sweep --config=configs/ghost_bn_cifar.py \
        --config.lr_from=runs/fig8 --workdir=runs/fig13a

Paper: a smaller overall m is better; m_BN = 4 or 8 is best for every m; on CIFAR-100 the
best result at each m uses an m_BN smaller than m.
"""

from smallbatch_jax.config_args import parse_arg, sibling_config

PAPER_EPOCHS = {"cifar10": 82, "cifar100": 164}
VARIANTS = {"fig13a": "mbn=8", "fig13b": "mbn=4,dataset=cifar100"}


def get_config(arg: str | None = None):
    args = parse_arg(arg, mbn=8, dataset="cifar10")
    if args.dataset not in PAPER_EPOCHS:
        raise ValueError(f"config argument dataset={args.dataset!r}; "
                         f"allowed: {sorted(PAPER_EPOCHS)}")
    config = sibling_config(__file__, "common")
    config.dataset = args.dataset
    config.model = "resnet32"
    config.augment = True
    config.batch_size = 64
    # The batch sweep and the ghost-BN sweep: m = max(8, m_BN) … 1024, m_BN = 2 … m.
    config.batch_sizes = tuple(2**k for k in range(3, 11) if 2**k >= args.mbn)
    config.bn_batch_size = args.mbn
    config.bn_batch_sizes = tuple(2**k for k in range(1, 11))
    config.weight_decay = 1e-4
    config.epochs = PAPER_EPOCHS[args.dataset]
    return config
