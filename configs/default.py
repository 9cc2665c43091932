r"""The default run: the paper's η̃ grid 2⁻¹² … 2⁰ on the embedded digits data set.

    python -m experiments.batch_sweep --config=configs/default.py --workdir=/tmp/sweep
    python -m experiments.lr_sweep --config=configs/default.py --workdir=/tmp/lr_sweep
    python -m experiments.recommend --config=configs/default.py:seeds=3,epochs=15 \
        --workdir=/tmp/recommend

scikit-learn's 8×8 handwritten digits ship inside its wheel: no download. A small CNN
without BatchNorm, batch size m = 8, 13 lanes trained at once; a few minutes on a 2-core
CPU. Every key the code reads is listed here; training length is in epochs and converted
to steps at run time, so overriding `batch_size` leaves nothing stale.

ARG: `seeds=N` (seeds per η̃, as more lanes of the same program: standard errors and tests),
`epochs=E`. The README's recommendation run, `seeds=3,epochs=15`, takes under 5 minutes on
a 2-core CPU (3 seeds at 30 epochs: about 9).
"""

from smallbatch_jax.config_args import parse_arg, sibling_config


def get_config(arg: str | None = None):
    args = parse_arg(arg, seeds=1, epochs=30)
    config = sibling_config(__file__, "common")
    config.dataset = "digits"
    config.model = "small_cnn"
    config.batch_size = 8
    config.batch_sizes = tuple(2**k for k in range(1, 9))  # m = 2 … 256 (1,438 digits)
    config.bn_batch_sizes = (2, 4, 8, 16, 32)
    config.epochs = args.epochs
    config.num_seeds = args.seeds
    return config
