r"""CIFAR ResNet-8/20/32 (He et al. 2015a) on CIFAR-10 or CIFAR-100 (Figs 2–4, 7–11, 17, 18).

    python -m experiments.lr_sweep --config=configs/resnet_cifar.py:depth=32,bn,aug \
        --config.batch_size=8 --workdir=runs/fig8_m8

Arguments (comma-separated; see smallbatch_jax/config_args.py), one line per figure:
- `depth=8,bn=False` (Fig 2) and `depth=20,bn=False` (Fig 3), CIFAR-10 noAug. Paper: best at
  m = 4 and m = 2.
- `depth=32,bn=False`: paper §3.2: every m from 16 to 2048 failed at every η̃; only m ≤ 8
  trained, best test accuracy 76%.
- `depth=32,bn` (Fig 7; Fig 4's curves at η̃ = 2⁻⁸): BN, noAug. Paper: best at m = 4 or 8;
  the best η̃ is reachable only for m ≤ 16; convergence similar for 4 ≤ m ≤ 64 (Fig 4).
- `depth=32,bn,aug` (Fig 8) and `...,dataset=cifar100` (Fig 9, 164 epochs). Paper: best at
  m = 4 or 8; the best η̃ reachable only for m ≤ 16 (CIFAR-10), m ≤ 8 (CIFAR-100).
- `depth=32,bn,aug,warmup` (Fig 10) and `...,dataset=cifar100` (Fig 11): linear warm-up from
  η̃/32 over the first 5% of training. Paper: warm-up helps large m, small m still best
  (CIFAR-10: m = 4, 8, good up to 128; CIFAR-100: m = 4–16).
- `depth=32,bn,aug,epochs=41` (Fig 17) and `epochs=164` (Fig 18): appendix A. Paper: longer
  training helps mostly large m at the best η̃; large m stays worse than small m.

`epochs=0` (default) means the paper's budget: 82 epochs for CIFAR-10, 164 for CIFAR-100.
Plain SGD, λ = 10⁻⁴ on kernels, ×0.1 at 50% and 75% of training, η̃ ∈ 2⁻¹² … 2⁰.
"""

import ml_collections

from smallbatch_jax.config_args import parse_arg

PAPER_EPOCHS = {"cifar10": 82, "cifar100": 164}
VARIANTS = {
    "fig2": "depth=8,bn=False", "fig3": "depth=20,bn=False", "resnet32_nobn": "depth=32,bn=False",
    "fig7": "depth=32,bn", "fig8": "depth=32,bn,aug", "fig9": "bn,aug,dataset=cifar100",
    "fig10": "bn,aug,warmup", "fig11": "bn,aug,warmup,dataset=cifar100",
    "fig17": "bn,aug,epochs=41", "fig18": "bn,aug,epochs=164",
}


def get_config(arg: str | None = None):
    args = parse_arg(arg, depth=32, bn=True, aug=False, warmup=False, dataset="cifar10",
                     epochs=0)
    if args.depth not in (8, 20, 32):
        raise ValueError(f"config argument depth={args.depth}; allowed: 8, 20, 32")
    if args.dataset not in PAPER_EPOCHS:
        raise ValueError(f"config argument dataset={args.dataset!r}; "
                         f"allowed: {sorted(PAPER_EPOCHS)}")
    config = ml_collections.ConfigDict()
    config.dataset = args.dataset
    config.data_dir = ""  # "" = tensorflow-datasets' default directory
    config.model = f"resnet{args.depth}" + ("" if args.bn else "_nobn")
    config.augment = args.aug
    config.batch_size = 8
    # The sweep of experiments.batch_sweep: one program per m (2, 4, …, 2048).
    config.batch_sizes = tuple(2**k for k in range(1, 12))
    config.bn_batch_size = 0  # m_BN = m
    config.base_lrs = tuple(2.0**k for k in range(-12, 1))
    config.seed = 0
    config.num_seeds = 1
    config.weight_decay = 1e-4
    config.momentum = 0.0
    config.epochs = args.epochs or PAPER_EPOCHS[args.dataset]
    config.lr_decay_points = (0.5, 0.75)
    config.lr_decay_factor = 0.1
    config.warmup = 0.05 if args.warmup else 0.0
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
