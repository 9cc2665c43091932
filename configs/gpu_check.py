r"""The prepared GPU check: which execution strategy is fastest there, and the paper's Fig 1 at full length.

    bash experiments/gpu_check.sh OUTDIR      # on the device machine; docs/benchmarks.md
    python -m experiments.gpu_check --config=configs/gpu_check.py:tiny --outdir=/tmp/check

Three sections under one deadline (`deadline_minutes`), each writing what it measured into
OUTDIR as it goes (gpu_check.json, gpu_check.md, strategy_table.json, *.tar.gz):

a. Throughput (`throughput`): the reduced AlexNet, K = 13 lanes, on the CIFAR-10 subset's
   shapes. At every m of `batch_sizes_all`, every candidate (a strategy, at `precision` or
   at the one its "@precision" suffix names) strategy that the m's equal share
   of the section's budget allows, side by side with the JAX sequential baseline, the packing limit and the PyTorch eager baseline (interleaved
   repeats); at `batch_sizes_best` only the best `num_best` candidates, and the best at the
   other precision (TF32 against true float32). The fastest strategy per m goes to
   strategy_table.json, which 'auto' then uses (strategy.choose_strategy).
b. Fig 1 (`fig1`): the batch sweep of configs/alexnet_cifar10.py:bn=none, 82 epochs, every
   m = 2 … 2048, on the real subset, with the strategies just measured; then the same at the
   other precision for `fig1_precision_batch_sizes`; then η̃ = 2⁻¹⁶ … 2⁻¹³ for m ≥ 32
   (`fig1_extension_*`) if time allows.
c. Fig 8 (`fig8`): configs/resnet_cifar.py:depth=32,bn=True,aug on the subset, as many epochs
   (the same for every m) as the minutes left allow.

`:tiny` is the same check in a few CPU seconds per program (the test suite runs it): a small
CNN, two m, two candidates, one epoch.
"""

import ml_collections

from smallbatch_jax.config_args import parse_arg, sibling_config

def get_config(arg: str | None = None):
    args = parse_arg(arg, tiny=False)
    config = ml_collections.ConfigDict()
    # The real CIFAR-10 subset, carried to the device in an ignored folder
    # (experiments/gpu_carry.sh); missing: §a on random images of its shapes, §b and §c skipped.
    config.data_path = ".carry/cifar10_subset.npz"
    config.workdir = "/tmp/gpu_check"  # runs and traces; OUTDIR gets the files that come back
    config.cache_dir = "/tmp/gpu_check/jax_cache"  # persistent compilation cache ("": off)
    # The compiled programs of an earlier check on this kind of device (its OUTDIR/
    # jax_cache.tar.gz, carried back): unpacked into cache_dir, they save its compilations
    # where the device, jax and the programs are the same. Every check returns its own. (A
    # fixed absolute cache_dir: jax's cache keys hash the cache's path, compilation_cache.py.)
    config.cache_archive = ".carry/jax_cache.tar.gz"
    config.deadline_minutes = 8.0  # the whole check (issue 10: at most 8 on one H100)
    # The precision of §a's lanes and baselines and of §b's sweep (trainer.PRECISIONS); the
    # other one is measured beside it.
    config.precision = "highest"
    config.other_precision = "default"

    tp = config.throughput = ml_collections.ConfigDict()
    tp.budget_minutes = 3.0
    tp.model = "alexnet"
    tp.num_lanes = 13
    tp.batch_sizes_all = (2, 8, 32)  # every candidate
    tp.batch_sizes_best = (128, 512, 2048)  # the best `num_best`, and the best at other_precision
    tp.num_best = 2
    # Steps per repeat: max(min_steps, examples_per_lane // m), also each program's steps per
    # dispatch (at most an epoch), so that §b runs the programs §a compiled.
    tp.examples_per_lane = 256
    tp.min_steps = 4
    tp.repeats = 3
    # The JAX sequential baseline and the packing limit (False: the candidates alone, for a
    # follow-up run that has its baselines from an earlier one).
    tp.baselines = True
    tp.torch = True  # the PyTorch eager baseline, where `import torch` works (needs baselines)
    # Candidates, in order of priority (each m's share of the budget may stop the list), as
    # "lanes/conv[/unrollN][/stepsN]": how lanes map, how convolutions are computed, scan
    # iterations unrolled, steps per dispatch (default: the repeat's steps, one dispatch).
    # The order is the H100's at m = 2 (docs/gpu/2026-11-26-h100): fastest first, the two
    # whose compilation alone costs more than a minute or who lose 10× last.
    tp.candidates = (
        "vmap/patches",  # batched matrix products, the patches in memory (H100 m = 2: 0.39 ms)
        "vmap/xla",  # the reference: grouped convolutions under vmap (1.37 ms)
        "vmap/shifted",  # batched matrix products, no patches (0.68 ms)
        "vmap/xla/steps1",  # a dispatch per step: the host's cost against the loop's (1.87 ms)
        "vmap/xla/unroll8",  # loop overhead: 8 steps per scan iteration (1.45 ms)
        "map/xla",  # lax.map: one lane at a time, ungrouped cuDNN convolutions (6.17 ms)
        "unrolled/xla",  # K subgraphs in one program (5.03 ms, 78 s to compile)
    )
    # Profiles (jax.profiler, summarized by kernel and HLO op) of the best and the reference
    # at these m.
    tp.profile_batch_sizes = (2, 512)

    fig1 = config.fig1 = sibling_config(__file__, "alexnet_cifar10", "bn=none")
    fig1.data_dir = config.get_ref("data_path")
    config.fig1_budget_minutes = 5.0
    config.fig1_precision_batch_sizes = (8, 128)
    config.fig1_extension_batch_sizes = (32, 64, 128, 256, 512, 1024, 2048)
    config.fig1_extension_lrs = tuple(2.0**k for k in range(-16, -12))

    fig8 = config.fig8 = sibling_config(__file__, "resnet_cifar", "depth=32,bn=True,aug")
    fig8.data_dir = config.get_ref("data_path")
    fig8.batch_sizes = (8, 32, 128, 512)
    config.fig8_max_epochs = 82
    # On a GPU an epoch of the subset takes well under a second at large m: a checkpoint per
    # epoch would cost more than the epoch. One a minute at most (a cut-off check resumes).
    for sweep in (fig1, fig8):
        sweep.checkpoint.every_epochs = 0
        sweep.checkpoint.every_minutes = 1.0

    if args.tiny:
        config.workdir = "/tmp/gpu_check_tiny"
        config.cache_dir = "/tmp/gpu_check_tiny/jax_cache"
        config.cache_archive = "/tmp/gpu_check_tiny/carried_jax_cache.tar.gz"
        config.deadline_minutes = 30.0
        tp.model = "small_cnn"
        tp.num_lanes = 2  # as many as the sweeps' η̃: §b runs the programs §a compiled
        tp.batch_sizes_all = (4,)
        tp.batch_sizes_best = (8,)
        tp.num_best = 1
        tp.examples_per_lane = 8
        tp.min_steps = 2
        tp.repeats = 1
        tp.candidates = ("vmap/xla", "vmap/patches")
        tp.profile_batch_sizes = (4,)
        for sweep in (fig1, fig8):
            sweep.model = "small_cnn" if sweep is fig1 else "small_cnn_bn"
            sweep.epochs = 1
            sweep.last_epochs = 1
            sweep.base_lrs = (2.0**-8, 2.0**-6)
            sweep.batch_sizes = (8,)
        config.fig1_precision_batch_sizes = (8,)
        config.fig1_extension_batch_sizes = (8,)
        config.fig1_extension_lrs = (2.0**-10, 2.0**-9)  # two lanes too: §a's programs
        config.fig8_max_epochs = 1
    return config
