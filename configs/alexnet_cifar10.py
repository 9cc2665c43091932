r"""The paper's reduced AlexNet on CIFAR-10, no augmentation (Figs 1, 5, 6).

    python -m experiments.lr_sweep --config=configs/alexnet_cifar10.py:nobn \
        --config.data_dir=../shared/data/cifar10_subset.npz --config.batch_size=8 \
        --workdir=/tmp/alexnet_nobn_m8

The argument picks the BatchNorm variant: 'nobn' (Fig 1), 'bn' (BN in conv and FC layers,
Fig 5) or 'bn_conv' (BN after convolutions only, Fig 6). The paper trains 82 epochs with
λ = 5·10⁻⁴, plain SGD, ×0.1 at 50% and 75% of training, η̃ ∈ 2⁻¹² … 2⁰.
Its finding: without BN the best batch sizes are m ≤ 8; with BN in conv and FC layers
m = 8–64, with conv-only BN m = 4–32.
`data_dir` is a local .npz (the full data set comes through tensorflow-datasets later).
"""

import ml_collections

VARIANTS = {"nobn": "alexnet", "bn": "alexnet_bn", "bn_conv": "alexnet_bn_conv"}


def get_config(variant: str = "nobn"):
    if variant not in VARIANTS:
        raise ValueError(f"variant {variant!r}; allowed: {sorted(VARIANTS)}")
    config = ml_collections.ConfigDict()
    config.dataset = "cifar10"
    config.data_dir = ""
    config.model = VARIANTS[variant]
    config.batch_size = 8
    config.bn_batch_size = 0
    config.base_lrs = tuple(2.0**k for k in range(-12, 1))
    config.seed = 0
    config.num_seeds = 1
    config.weight_decay = 5e-4
    config.momentum = 0.0
    config.epochs = 82
    config.lr_decay_points = (0.5, 0.75)
    config.lr_decay_factor = 0.1
    config.warmup = 0.0
    config.eval_batch_size = 1000
    config.last_epochs = 5
    # Device memory one dispatch may use (GiB); lanes run in chunks to stay under it. 0: none.
    config.memory_budget_gb = 0.0
    config.lowering = ml_collections.ConfigDict(dict(
        preset="auto", lanes="vmap", conv="xla", step_loop="scan", steps_per_dispatch=0,
        scan_unroll=1, lane_chunk=0))
    return config
