r"""Every key the code reads, once, with the paper's protocol as the default.

Each experiment's config starts from this one and overrides what its figure changes (flax's
`configs/default.py` + `v100_x8.py` pattern):

    config = sibling_config(__file__, "common")
    config.model = "alexnet"

Training length is in epochs, converted to steps at run time, so overriding `batch_size`
leaves nothing stale. Run on its own it is the paper's protocol with a small CNN on the
embedded digits (configs/default.py is that, sized for a laptop).
"""

import ml_collections


def get_config():
    config = ml_collections.ConfigDict()
    # Data and model.
    # 'digits' (embedded), 'cifar10', 'cifar100', 'imagenet2012', or 'npz' (any .npz file of
    # train_images, train_labels, test_images, test_labels: data_dir names it).
    config.dataset = "digits"
    # CIFAR: "" (tensorflow-datasets' directory), the official python version, or an .npz
    # file; ImageNet: tensorflow-datasets' data directory; 'npz': the file.
    config.data_dir = ""
    config.image_size = 224  # ImageNet's training and evaluation crop (other data: unused)
    # Built in (smallbatch_jax.models.MODELS), or your own: "package.module:attribute", a
    # Flax module or a factory of one called with the number of classes.
    config.model = "small_cnn"
    # What training minimizes and the sweep ranks by (smallbatch_jax/objectives.py):
    # 'classification' (softmax cross-entropy; the test accuracy, higher is better: the
    # paper's), 'regression' (squared error, for real-valued targets; the test mean squared
    # error, lower is better), or your own: "package.module:attribute" naming an Objective.
    config.objective = "classification"
    # Standardize the inputs with the training split's statistics (per channel for images,
    # per feature for other float inputs; token ids are never touched).
    config.standardize = True
    # The paper's augmentation (pad 4, random 32×32 crop, random flip), on the device.
    config.augment = False
    # SGD batch size m, and the BatchNorm batch m_BN (0: the whole batch, m_BN = m).
    config.batch_size = 8
    config.bn_batch_size = 0
    # The sweep of experiments.batch_sweep: one program per m (the paper: 2, 4, …, 2048).
    config.batch_sizes = tuple(2**k for k in range(1, 12))
    # The sweep of experiments.bn_sweep: every m of batch_sizes × every m_BN here that
    # divides it, each m at the η̃ of lr_from (an earlier batch_sweep workdir: its best η̃
    # per m) or lr_per_batch_size (((m, η̃), …)); with neither, the whole base_lrs grid.
    config.bn_batch_sizes = tuple(2**k for k in range(1, 11))
    config.lr_from = ""
    config.lr_per_batch_size = ()
    # The lanes: base learning rates η̃ = η/m, × num_seeds seeds (seed, seed + 1, …).
    config.base_lrs = tuple(2.0**k for k in range(-12, 1))
    config.seed = 0
    config.num_seeds = 1
    # Optimizer (smallbatch_jax/optim.py): 'sgd' (plain, the paper's), 'momentum' (heavy
    # ball with μ = `momentum`; Nesterov's with `nesterov`), 'adam', 'adamw'. How the swept
    # base_lrs give η: `lr_scaling` 'linear' (η = m·η̃, the paper), 'sqrt' (η = √m·s) or
    # 'none' (η = s); '' = the optimizer's default (linear for SGD, none for Adam). Weight
    # decay: L2 on kernels (decoupled, λ·η·w, for adamw).
    config.optimizer = "sgd"
    config.lr_scaling = ""
    config.weight_decay = 5e-4
    config.momentum = 0.0
    config.nesterov = False
    # Adam's moments. β₂ at m: `beta2` at every m ('fixed'), or the same half-life in
    # examples as `beta2` has at m = beta2_batch_size ('per_example': β₂^(m/beta2_batch_size);
    # Marek et al. 2025).
    config.adam = ml_collections.ConfigDict(dict(
        beta1=0.9, beta2=0.999, epsilon=1e-8, beta2_rule="fixed", beta2_batch_size=128))
    # Schedule: ×lr_decay_factor at each fraction of training in lr_decay_points; optional
    # linear warm-up from η/32 over the first `warmup` fraction of training (paper: 0.05).
    # Hyperparameters swept besides η̃, as lanes of the same program (engine/lanes.py): a
    # tuple of values each (the grid is the product of every tuple, η̃'s and the seeds);
    # () takes the single value above (weight_decay, momentum or Adam's adam.beta1,
    # adam.beta2 under adam.beta2_rule, adam.epsilon, warmup, grad_clip). `points`: a non-product
    # design instead, a tuple of settings that each name the same keys, e.g.
    # ({'weight_decay': 5e-4, 'momentum': 0.9}, {'weight_decay': 0.0, 'momentum': 0.0}),
    # crossed with the η̃ grid, the seeds and any other key's tuple.
    config.sweep = ml_collections.ConfigDict(dict(
        weight_decay=(), momentum=(), beta2=(), epsilon=(), warmup=(), grad_clip=(),
        points=()))
    config.epochs = 82
    config.lr_decay_points = (0.5, 0.75)
    config.lr_decay_factor = 0.1
    config.warmup = 0.0
    # Gradient clipping (a transformer recipe's): the batch-mean loss's gradient scaled down
    # to this global norm where it exceeds it, before weight decay and the optimizer
    # (optax.clip_by_global_norm; PyTorch's clip_grad_norm_ before step()). 0: none (the
    # paper's); sweep.grad_clip may hold 0 beside norms (those lanes unclipped).
    config.grad_clip = 0.0
    # Evaluation: every epoch on the test split; the metric is the median test accuracy
    # over the last `last_epochs` epochs (paper: 5).
    config.eval_batch_size = 1000
    config.last_epochs = 5
    # `validation` > 0: that fraction of the training set (a fixed draw, stratified by class)
    # is held out and every evaluation reads it instead of the test split, which the run then
    # never evaluates on: m and η̃ chosen on it, and its numbers, are free of the bias a choice on
    # the test split gives its own number (the columns still say test_*; each row's
    # `evaluated_on` says which split). 0: the paper's protocol, the test split. A data set
    # made with its own validation split (make_dataset(..., validation=(x_val, y_val))) holds
    # that out instead, at any value > 0.
    config.validation = 0.0
    # With `validation` > 0: experiments.recommend (sbj.recommend_batch_size) then trains the
    # recommended setting once on the whole training set, with every seed, and reads its test
    # metric once (workdir/test_run/), beside its validation score. False: it says how to.
    config.test_run = True
    # Evaluations per epoch, at near-equal steps: 1 is the paper's; more time steps to a
    # target finer than an epoch (each m's evaluations.csv; the metric above and the figures
    # still read the per-epoch ones). Each costs a pass over the test split.
    config.evals_per_epoch = 1
    # The sweep's summary: η̃ "converges reliably" at m when its accuracy is at least the
    # sweep's best minus this tolerance (the paper leaves it undefined; Fig 16).
    config.reliable_tolerance = 0.02
    # Steps to target (steps_to_target.py): the test metric each m is timed to reach; 0: 95% of
    # the way from what a constant prediction scores (the majority class's rate, the mean
    # target's error) to the sweep's best (without one: best − 5% of |best|, + where lower is
    # better).
    config.target = 0.0
    # Matrix products and convolutions: 'highest' is true float32 (the paper's arithmetic, and
    # every CPU result here); 'default' is the backend's own, TensorFloat-32 on recent NVIDIA
    # GPUs (10-bit mantissas). Measured on an H100 (docs/gpu/2026-11-26-h100): TF32 is 1.3×
    # (m = 2) to 1.5× (m = 2048) faster, and at 82 epochs it kept m = 2's divergence edge and
    # its best accuracy within one seed's noise (0.569 vs 0.579). The default stays float32:
    # a modest gain, and too little evidence yet that no result moves. 'bf16' computes the
    # model's forward and backward passes in bfloat16 (parameters and inputs cast inside the
    # loss; matmuls at the backend's default precision, accumulating in float32) while the
    # parameters, gradients, optimizer state and BatchNorm statistics stay float32 and the
    # loss is taken on float32 outputs; evaluation and the noise-scale probe compute the same
    # way. Off by default; tested on CPU only, not yet against the paper on a GPU.
    config.precision = "highest"
    # The gradient noise scale B_simple = tr(Σ)/|G|² of every lane after each epoch
    # (noise_scale.py, McCandlish et al. 2018): from `num_batches` batches of `batch_size`
    # training examples, at most `max_fraction` of an epoch's examples (where fewer than 4
    # fit, 4 smaller ones, for the estimate's error; fewer than 4 of 4 examples: not
    # measured; num_batches 0: off); smoothed over epochs with `decay`.
    config.noise_scale = ml_collections.ConfigDict()
    config.noise_scale.batch_size = 32
    config.noise_scale.num_batches = 8
    config.noise_scale.max_fraction = 0.05
    config.noise_scale.decay = 0.5
    # Device memory one dispatch may use (GiB); lanes run in groups to stay under it. 0: none.
    config.memory_budget_gb = 0.0
    # Checkpoints while a run trains (checkpoint.py): at an epoch boundary every
    # `every_epochs` epochs or once `every_minutes` have passed since the last (0 turns either
    # off; both 0: none, a killed run starts over); the newest `keep` are kept. Re-running a
    # command resumes from the newest; a finished run removes them (state.msgpack remains).
    config.checkpoint = ml_collections.ConfigDict(dict(every_epochs=1, every_minutes=0.0,
                                                       keep=2))
    # How lanes, steps and convolutions execute (smallbatch_jax/engine/strategy.py): `preset` 'auto'
    # (measured fastest per backend), a name of strategy.PRESETS, or 'manual' (the fields;
    # with another preset they must stay at these defaults). `table`: a measured table for
    # 'auto' (experiments.gpu_check writes one; "" = the packaged one of the backend).
    # 'tune' times the strategies this model can take on a few dispatches of its own program
    # before the run and keeps the fastest (engine/tune.py), spending at most `tune_share` of
    # the run's estimated time, and caches the choice in `tune_cache` ("" = the user's cache
    # directory, ~/.cache/smallbatch_jax): a second run of the same shape times nothing.
    config.strategy = ml_collections.ConfigDict(dict(
        preset="auto", lane_map="vmap", conv="xla", step_loop="scan", steps_per_dispatch=0,
        scan_unroll=1, lanes_per_program=0, shared_batch=True, table="", tune_share=0.1,
        tune_cache=""))
    return config
