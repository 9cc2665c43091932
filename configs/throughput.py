r"""The throughput benchmark: lanes against sequential runs and the packing limit.

    python -m experiments.throughput --config=configs/throughput.py --workdir=runs/throughput

Reduced AlexNet on 32×32×3 inputs (synthetic pixels: speed does not depend on them), plain
SGD, m ∈ {2, 8, 32, 128} × K ∈ {1, 4, 13}. Each (m, K) trains about `examples_per_lane`
examples per lane per repeat. 'auto' is the lowering a user gets; add other presets of
smallbatch_jax.lowering.PRESETS to see them side by side.
"""

import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    config.model = "alexnet"
    config.image_shape = (32, 32, 3)
    config.num_classes = 10
    config.batch_sizes = (2, 8, 32, 128)
    config.num_lanes = (1, 4, 13)
    config.examples_per_lane = 256  # steps = max(min_steps, examples_per_lane // m)
    config.min_steps = 2
    config.repeats = 3
    config.lowerings = ("auto", "reference")
    return config
