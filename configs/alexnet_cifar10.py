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

from smallbatch_jax.config_args import parse_arg, sibling_config

MODELS = {"none": "alexnet", "all": "alexnet_bn", "conv": "alexnet_bn_conv"}
# One argument per figure (the tests run each).
VARIANTS = {"fig1": "bn=none", "fig5": "bn=all", "fig6": "bn=conv", "fig15_aug": "bn=none,aug"}


def get_config(arg: str | None = None):
    args = parse_arg(arg, bn="none", aug=False)
    if args.bn not in MODELS:
        raise ValueError(f"config argument bn={args.bn!r}; allowed: {sorted(MODELS)}")
    config = sibling_config(__file__, "common")
    config.dataset = "cifar10"
    config.model = MODELS[args.bn]
    config.augment = args.aug
    return config
