r"""The default run: the paper's η̃ grid 2⁻¹² … 2⁰ on the embedded digits data set.

    python -m experiments.batch_sweep --config=configs/default.py --workdir=/tmp/sweep
    python -m experiments.lr_sweep --config=configs/default.py --workdir=/tmp/lr_sweep

scikit-learn's 8×8 handwritten digits ship inside its wheel: no download. A small CNN
without BatchNorm, batch size m = 8, 13 lanes trained at once; a few minutes on a 2-core
CPU. Every key the code reads is listed here; training length is in epochs and converted
to steps at run time, so overriding `batch_size` leaves nothing stale.
"""

from smallbatch_jax.config_args import sibling_config


def get_config():
    config = sibling_config(__file__, "common")
    config.dataset = "digits"
    config.model = "small_cnn"
    config.batch_size = 8
    config.batch_sizes = tuple(2**k for k in range(1, 9))  # m = 2 … 256 (1,438 digits)
    config.bn_batch_sizes = (2, 4, 8, 16, 32)
    config.epochs = 30
    return config
