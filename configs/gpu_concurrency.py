r"""Grids of several m in one program, under several XLA flag settings (issue 10's 15 minutes).

    bash experiments/device_run.sh OUTDIR /tmp/concurrency python3 -m experiments.gpu_concurrency \
        --config=configs/gpu_concurrency.py --outdir=/tmp/concurrency    # on the device
    python -m experiments.gpu_concurrency --config=configs/gpu_concurrency.py:tiny --outdir=/tmp/c

For each variant (its own process: XLA reads XLA_FLAGS once), the reduced AlexNet's η̃ grid
(13 lanes) at every m of `batch_sizes`, each m alone and all in one program
(smallbatch_jax/diagnostics/concurrent_grids.py): whether the GPU overlaps independent grids, and how
much the command-buffer settings change one grid's step. `:tiny` is the same in CPU seconds
(the test suite runs it).
"""

import ml_collections

from smallbatch_jax.config_args import parse_arg, sibling_config


def get_config(arg: str | None = None):
    args = parse_arg(arg, tiny=False)
    config = ml_collections.ConfigDict()
    config.data_path = ".carry/cifar10_subset.npz"  # missing: random images of its shapes
    config.sweep = sibling_config(__file__, "alexnet_cifar10", "bn=none")
    # The small m: latency-bound, most of the paper's grid's time (docs/gpu/2026-11-26-h100).
    config.batch_sizes = (2, 4, 8, 16)
    config.num_lanes = 13
    # Per lane per round: m = 2 takes 128 steps, m = 16 16 (one chain of 128 small steps
    # against ones of 64, 32, 16).
    config.examples_per_lane = 256
    # The interleaved program's rounds: 0, as many as the largest m has steps (16: each round
    # m = 2's 8 steps, m = 4's 4, m = 8's 2, m = 16's 1).
    config.rounds = 0
    config.repeats = 5
    config.candidate = "vmap/patches"  # gpu_check's spelling; the GPU's fastest lanes
    config.precision = "default"  # TF32, the precision of the 15-minute estimate
    # Whether the program of all grids trains each as alone (a compile of every program
    # twice: on for the test, off on the device where minutes count).
    config.check_same_training = False
    config.deadline_minutes = 8.0
    # "name=XLA flags", run in this order. XLA:GPU wraps runs of kernels in command buffers
    # (CUDA graphs); its default scheduling there (LHS) keeps the thunks' serial order,
    # CONCURRENT lets independent ones run at once; WHILE in the enabled commands puts the
    # scan loop itself into the graph; an empty list turns command buffers off.
    config.variants = (
        "default=",
        "concurrent_while=--xla_gpu_command_buffer_scheduling_mode=CONCURRENT "
        "--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,"
        "DYNAMIC_SLICE_FUSION,WHILE,CONDITIONAL",
    )
    # Run 7 (docs/gpu/2026-11-27-h100) also measured, not rerun: CONCURRENT alone
    # ("concurrent=--xla_gpu_command_buffer_scheduling_mode=CONCURRENT", between the two
    # above at every m) and command buffers off ("no_command_buffers=
    # --xla_gpu_enable_command_buffer=": m = 2 1.54× slower than the default).
    if args.tiny:
        config.sweep.model = "small_cnn"
        config.batch_sizes = (2, 4)
        config.num_lanes = 2
        config.examples_per_lane = 8
        config.repeats = 2
        config.check_same_training = True
        config.deadline_minutes = 10.0
        # A GPU flag is parsed, and ignored, on a CPU: the test checks that each variant's
        # flags reach its process.
        config.variants = ("default=",
                           "concurrent=--xla_gpu_command_buffer_scheduling_mode=CONCURRENT")
    return config
