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

import ml_collections

from smallbatch_jax.config_args import parse_arg

PAPER_EPOCHS = {"cifar10": 82, "cifar100": 164}
VARIANTS = {"fig13a": "mbn=8", "fig13b": "mbn=4,dataset=cifar100"}


def get_config(arg: str | None = None):
    args = parse_arg(arg, mbn=8, dataset="cifar10")
    if args.dataset not in PAPER_EPOCHS:
        raise ValueError(f"config argument dataset={args.dataset!r}; "
                         f"allowed: {sorted(PAPER_EPOCHS)}")
    config = ml_collections.ConfigDict()
    config.dataset = args.dataset
    config.data_dir = ""  # "" = tensorflow-datasets' default directory
    config.model = "resnet32"
    config.augment = True
    config.batch_size = 64
    # The sweep of experiments.batch_sweep: one program per m (m_BN … 1024).
    config.batch_sizes = tuple(2**k for k in range(3, 11) if 2**k >= args.mbn)
    config.bn_batch_size = args.mbn
    # The sweep of experiments.bn_sweep: every m of batch_sizes × every m_BN here that
    # divides it, each m at the η̃ of lr_from (an earlier batch_sweep workdir: its best η̃
    # per m) or lr_per_batch_size (((m, η̃), …)); with neither, the whole base_lrs grid.
    config.bn_batch_sizes = tuple(2**k for k in range(1, 11))  # m_BN = 2 … m
    config.lr_from = ""
    config.lr_per_batch_size = ()
    config.base_lrs = tuple(2.0**k for k in range(-12, 1))
    config.seed = 0
    config.num_seeds = 1
    config.weight_decay = 1e-4
    config.momentum = 0.0
    config.epochs = PAPER_EPOCHS[args.dataset]
    config.lr_decay_points = (0.5, 0.75)
    config.lr_decay_factor = 0.1
    config.warmup = 0.0
    config.eval_batch_size = 1000
    config.last_epochs = 5
    # The sweep's summary: η̃ "converges reliably" at m when its accuracy is at least the
    # sweep's best minus this tolerance (the paper leaves it undefined; Fig 16).
    config.reliable_tolerance = 0.02
    # Device memory one dispatch may use (GiB); lanes run in chunks to stay under it. 0: none.
    config.memory_budget_gb = 0.0
    # Matrix products and convolutions: 'highest' is true float32 (the paper's arithmetic, and
    # every CPU result here); 'default' is the backend's own, TensorFloat-32 on recent NVIDIA
    # GPUs (10-bit mantissas, faster). Its cost and effect: docs/benchmarks.md.
    config.precision = "highest"
    # `table`: a measured table of lowerings for 'auto' (experiments.gpu_check writes one);
    # "" = the packaged table of the backend (smallbatch_jax/measured/), if any.
    config.lowering = ml_collections.ConfigDict(dict(
        preset="auto", lanes="vmap", conv="xla", step_loop="scan", steps_per_dispatch=0,
        scan_unroll=1, lane_chunk=0, table=""))
    return config
