r"""The throughput benchmark: lanes against sequential runs and the packing limit.

    python -m experiments.throughput --config=configs/throughput.py --workdir=runs/throughput

Reduced AlexNet on 32×32×3 inputs (synthetic pixels: speed does not depend on them), or a
model of the zoo (`configs/throughput.py:zoo=plain_cnn`: smallbatch_jax/diagnostics/zoo.py), plain
SGD, m ∈ {2, 8, 32, 128} × K ∈ {1, 4, 13}. Each (m, K) trains about `examples_per_lane`
examples per lane per repeat. 'auto' is the strategy a user gets; add 'tune' (the strategy
that strategy.preset='tune' measures for this model, every candidate timed before the row,
the choice cached in the workdir) or other presets of smallbatch_jax.engine.strategy.PRESETS
to see them side by side.

The time of the paper's whole Fig 1 grid (13 η̃ × m = 2 … 2048 × 82 epochs of CIFAR-10) on
this machine, from a measurement at every m:

    python -m experiments.throughput --config=configs/throughput.py --workdir=runs/fig1_cost \
        --config.batch_sizes="(2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)" \
        --config.num_lanes="(13,)" --config.strategies="('auto',)" --config.repeats=2
"""

import ml_collections

from smallbatch_jax.diagnostics.zoo import ZOO


def get_config(arg: str | None = None):
    """`arg`: "zoo=NAME", a model of the zoo (smallbatch_jax/diagnostics/zoo.py: ZOO) with its
    input; default the reduced AlexNet."""
    model, shape, kind = ZOO["alexnet"]
    if arg:
        key, _, name = arg.partition("=")
        if key != "zoo" or name not in ZOO:
            raise ValueError(f"configs/throughput.py:{arg}; allowed: zoo=NAME, NAME in "
                             f"{sorted(ZOO)}")
        model, shape, kind = ZOO[name]
    config = ml_collections.ConfigDict()
    config.model = model  # built in, or "package.module:attribute"
    config.image_shape = shape  # one example's input shape
    config.input_kind = kind  # 'images', 'features' or 'tokens' (data/dataset.py)
    config.num_classes = 10
    config.batch_sizes = (2, 8, 32, 128)
    config.num_lanes = (1, 4, 13)
    config.examples_per_lane = 256  # steps = max(min_steps, examples_per_lane // m)
    config.min_steps = 2
    config.repeats = 3
    config.strategies = ("auto", "reference")
    # After the table: the training time of a sweep over the measured m (at the most lanes
    # measured), `sweep_epochs` epochs of `sweep_num_train` examples (Fig 1: 82 × 50,000);
    # 0 epochs: no estimate.
    config.sweep_epochs = 82
    config.sweep_num_train = 50_000
    return config
