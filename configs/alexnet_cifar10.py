r"""The paper's reduced AlexNet on CIFAR-10 (Figs 1, 5, 6; the AlexNet points of Fig 15).

    python -m experiments.lr_sweep --config=configs/alexnet_cifar10.py:bn=none \
        --config.batch_size=8 --workdir=runs/fig1_m8

The argument picks the variant (comma-separated, see smallbatch_jax/config_args.py):
- `bn=none` (Fig 1): no BatchNorm. Paper: best at m ≤ 8; a clear best η̃ that trains stably
  only below a critical m, and a sharp collapse as m grows at fixed η̃.
- `bn=all` (Fig 5): BN after every convolution and hidden FC layer. Paper: BN helps over a
  wide range of m; best m = 8–64.
- `bn=conv` (Fig 6): BN after the convolutions only. Paper: best m = 4–32; generalizes about
  as well as `bn=all`.
- `aug`: the paper's augmentation (pad 4, random crop, flip); Figs 1, 5, 6 are noAug, the
  Aug runs enter Fig 15.

The protocol: 82 epochs, plain SGD, λ = 5·10⁻⁴ on kernels, ×0.1 at 50% and 75% of training,
η̃ ∈ 2⁻¹² … 2⁰, the median test accuracy over the last 5 epochs. CIFAR-10 comes through
tensorflow-datasets (downloaded on first use) unless `--config.data_dir` names an .npz file
or the official python version (e.g. `--config.data_dir=../shared/data/cifar10_subset.npz`).
"""

import ml_collections

from smallbatch_jax.config_args import parse_arg

MODELS = {"none": "alexnet", "all": "alexnet_bn", "conv": "alexnet_bn_conv"}
# One argument per figure (the tests run each).
VARIANTS = {"fig1": "bn=none", "fig5": "bn=all", "fig6": "bn=conv", "fig15_aug": "bn=none,aug"}


def get_config(arg: str | None = None):
    args = parse_arg(arg, bn="none", aug=False)
    if args.bn not in MODELS:
        raise ValueError(f"config argument bn={args.bn!r}; allowed: {sorted(MODELS)}")
    config = ml_collections.ConfigDict()
    config.dataset = "cifar10"
    config.data_dir = ""  # "" = tensorflow-datasets' default directory
    config.model = MODELS[args.bn]
    config.augment = args.aug
    config.batch_size = 8
    # The sweep of experiments.batch_sweep: one program per m (2, 4, …, 2048).
    config.batch_sizes = tuple(2**k for k in range(1, 12))
    config.bn_batch_size = 0  # m_BN = m
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
