r"""ResNet-50 on ImageNet (ILSVRC-2012), streamed from the host (Figs 12 and 14).

    python -m experiments.lr_sweep --config=configs/resnet50_imagenet.py \
        --config.data_dir=/data/tensorflow_datasets --config.batch_size=32 \
        --workdir=runs/fig12_m32

ImageNet cannot be downloaded automatically: put ILSVRC2012_img_train.tar and
ILSVRC2012_img_val.tar in `<data_dir>/downloads/manual/`; tensorflow-datasets prepares them
on the first run. Decoding and augmentation (scale augmentation 256–480, random 224 crop,
flip, colour noise) run on the host CPUs (smallbatch_jax/data/imagenet.py); the lanes train
on the accelerator, one batch per step, 16 batches per dispatch
(train/batches.STREAMED_STEPS_PER_DISPATCH; `strategy.steps_per_dispatch` with preset 'manual').

Arguments: `mbn=N` sets the BN batch m_BN (Fig 14; 0 = m_BN = m, Fig 12), `seed=N` (the paper
averages 2 runs: seeds 0 and 1, each its own sweep). Plain SGD, λ = 10⁻⁴, 90 epochs, ×0.1 at
epochs 30, 60 and 80, η̃ ∈ 2⁻¹² … 2⁰, the median top-1 validation accuracy of the last 5
epochs. Paper: best at m = 16–64; m = 16 and 32 best over a continuous range of η̃; m ≤ 8
limited by BN over few examples; for ghost BN, m_BN = 16–64 is best at every m (Fig 14, with
η̃ = 2⁻¹⁰ for m = 256–1024 and 2⁻⁹ for m = 2048, chosen with m_BN = 128).

Fig 14 with the paper's η̃ (2⁻¹⁰ = 0.0009765625, 2⁻⁹ = 0.001953125):

    python -m experiments.bn_sweep --config=configs/resnet50_imagenet.py \
        --config.data_dir=/data/tensorflow_datasets \
        --config.batch_sizes="(256, 512, 1024, 2048)" --config.bn_batch_sizes="(16, 32, 64, 128)" \
        --config.lr_per_batch_size="((256, 0.0009765625), (512, 0.0009765625), \
            (1024, 0.0009765625), (2048, 0.001953125))" --workdir=runs/fig14
"""

from smallbatch_jax.config_args import parse_arg, sibling_config

VARIANTS = {"fig12": "", "fig14": "mbn=16"}


def get_config(arg: str | None = None):
    args = parse_arg(arg, mbn=0, seed=0)
    config = sibling_config(__file__, "common")
    config.dataset = "imagenet2012"
    config.image_size = 224
    config.model = "resnet50"
    config.augment = False  # ImageNet's augmentation is the host pipeline's (always on)
    config.batch_size = 32
    config.batch_sizes = tuple(2**k for k in range(2, 9))  # m = 4 … 256
    config.bn_batch_size = args.mbn
    config.bn_batch_sizes = tuple(2**k for k in range(2, 9))
    config.seed = args.seed
    config.weight_decay = 1e-4
    config.epochs = 90
    config.lr_decay_points = (30 / 90, 60 / 90, 80 / 90)
    config.eval_batch_size = 250
    return config
