"""The config read once: a run's typed pieces, made before its loop and never revised.

`prepare(config, …)` checks the config (and the data against it) and turns it into a
`RunSpec`: the data set, the objective, the lane grid, the optimizer, the model's recipe,
the strategy asked for, the schedule, the checkpoint policy and the noise probe. Nothing
is compiled yet, so a run directory holding another config's run can refuse it first.
`create_run(spec)` then makes what trains: the lane step, the execution plan (its memory
probe compiles the training program), the trainer and the batch source, as a `Run`.
Below this module nothing reads the ConfigDict: the engine gets these objects.
"""

import dataclasses
import hashlib
import inspect
import json
import math
import re
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import logging

from smallbatch_jax.data import (BUILT_IN, DATASETS, DatasetLike, hold_out, load_dataset,
                                 model_input_dtype)
from smallbatch_jax.engine import LaneStep, LaneTrainer, Programs, batch_source
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.plan import MemoryProbe, make_plan
from smallbatch_jax.engine.strategy import Strategy, StrategyChoice
from smallbatch_jax.engine.tune import (StrategyTimer, has_convolutions, model_fingerprint,
                                        step_flops)
from smallbatch_jax.models import MODELS, create_model, init_rngs, user_model
from smallbatch_jax.models.conv import conv_layer
from smallbatch_jax.noise_scale import NoiseProbe
from smallbatch_jax.objectives import OBJECTIVES, Objective, constant_metric, objective_named
from smallbatch_jax.optim import SWEPT_SYMBOL, Optimizer, beta2_for
from smallbatch_jax.run.config_checks import (check_against_data, check_config, check_labels,
                                             check_metric_window, check_model,
                                             strategy_choice)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long a run trains and how often it is measured."""
    epochs: int
    evals_per_epoch: int  # evaluations per epoch (1: after each, as the paper)
    last_epochs: int  # the paper's metric: the median over these last epochs


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """When a run saves: every `every_epochs` epochs, or once `every_minutes` have passed
    since the last save (0 turns either off); the newest `keep` are kept."""
    every_epochs: int = 1
    every_minutes: float = 0.0
    keep: int = 2

    def due(self, epoch: int, last_save: tuple[int, float]) -> bool:
        """Whether to save after `epoch` (`last_save`: the epoch and perf_counter time of
        the last save)."""
        epochs_since = epoch - last_save[0]
        minutes_since = (time.perf_counter() - last_save[1]) / 60
        return bool((self.every_epochs and epochs_since >= self.every_epochs) or
                    (self.every_minutes and minutes_since >= self.every_minutes))


@dataclasses.dataclass(frozen=True)
class ModelRecipe:
    """How to build the lanes' model for a given convolution layer (models/conv.py): a
    built-in or imported model by name, or a user's module or factory."""
    name: str  # config.model: how results name it
    num_classes: int
    bn_batch_size: int | None  # m_BN (ghost BatchNorm); None: BN over the whole batch
    user: object = None  # a user's Flax module or factory (smallbatch_jax.api)

    @property
    def built_in(self) -> bool:
        """One of the project's models (models.MODELS), not a user's module or an imported
        'module:factory' (a user's model named like a built-in one is not the model a
        measured table was timed on: StrategyChoice.tunes)."""
        return self.user is None and self.name in MODELS

    def build(self, conv: str):
        if self.user is not None:
            return user_model(self.user, self.num_classes)
        return create_model(self.name, self.num_classes, self.bn_batch_size, conv_layer(conv))


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything a run needs from its config, typed, checked and with its data loaded."""
    config: dict  # the config as JSON: what the run directory stores and compares
    dataset_name: str  # config.dataset: how results name the data
    dataset: DatasetLike
    objective: Objective
    grid: LaneGrid
    optimizer: Optimizer
    model: ModelRecipe
    batch_size: int
    eval_batch_size: int
    augment: bool
    decay_points: tuple[float, ...]
    decay_factor: float
    strategy: StrategyChoice
    precision: str
    memory_budget_bytes: int
    schedule: Schedule
    checkpoints: CheckpointPolicy
    probe: NoiseProbe | None  # the gradient-noise probe; None: not measured
    # The data set as loaded or given, before this run's own changes to it (the validation
    # split held out, the standardization switch, raw targets): what a sweep hands its
    # other runs, which make their own (a held-out split of a held-out split would shrink).
    loaded: DatasetLike | None = None
    # The model's outputs per example (None: not one array): what a user's objective's
    # baseline is built for.
    output_shape: tuple[int, ...] | None = None

    @property
    def num_seeds(self) -> int:
        return len(self.grid.seeds)

    @property
    def baseline(self) -> float:
        """The metric of a constant prediction on the evaluated split (Objective.baseline:
        the training split's most frequent class, or its mean target; a user's objective's
        metric of the training split's class frequencies or mean target, where its outputs
        can be built); NaN where not known, or for streamed data (labels not held)."""
        return self._constant_prediction("train_labels")

    @property
    def best_constant(self) -> float:
        """The best a constant prediction scores on the evaluated split: `baseline`'s fitted
        to that split's own labels (its most frequent class, its mean target) instead of the
        training split's. NaN where `baseline` is."""
        return self._constant_prediction("test_labels")

    def _constant_prediction(self, fitted_to: str) -> float:
        """The evaluated split's metric of a constant prediction fitted to the data set's
        labels `fitted_to` ('train_labels' or 'test_labels': the evaluated split's)."""
        data = self.dataset
        if data.streamed:
            return math.nan
        labels = getattr(data, fitted_to)
        if self.objective.baseline is None:  # a user's: its metric of objectives.constant_outputs
            if self.output_shape is None:
                return math.nan
            return constant_metric(self.objective, labels, data.test_labels, data.label_kind,
                                   data.num_classes, self.output_shape)
        return self.objective.baseline(labels, data.test_labels)

    @property
    def swept(self) -> str:
        """The swept value's name: η̃, or η for Adam's lr_scaling 'none' (optim.SWEPT_SYMBOL)."""
        return SWEPT_SYMBOL[self.optimizer.scaling]

    @property
    def lanes_note(self) -> str:
        if self.num_seeds > 1:
            return "Lanes with the same seed share initial weights and data order."
        swept = self.grid.swept
        differ = (f"the learning rate and {', '.join(swept)} differ" if swept
                  else "the learning rate differs")
        return (f"All lanes share initial weights and data order (seed {self.grid.seeds[0]}"
                f"); only {differ}.")


@dataclasses.dataclass(frozen=True)
class Run:
    """What trains: the spec's pieces made into a plan, a trainer and a batch source."""
    spec: RunSpec
    trainer: LaneTrainer
    source: object  # engine.batches: DeviceBatches or StreamedBatches

    @property
    def plan(self):
        return self.trainer.plan


def as_json(config) -> dict:
    """The config as JSON gives it back (tuples as lists): what config.json and a
    checkpoint store, and what run.directory compares."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def lane_grid(config) -> LaneGrid:
    """The lanes of `config`: its seeds × η̃ × the values of config.sweep (× its points),
    and the
    optimizer's numbers where not swept (μ for 'momentum', Adam's β₁, its β₂ at this batch
    size under `adam.beta2_rule` (each swept β₂ too), and ε)."""
    adam = config.optimizer in ("adam", "adamw")
    sweep = config.sweep

    def chosen(key, single):
        values = tuple(float(v) for v in sweep.get(key, ()))
        return values if len(values) > 1 else (values[0] if values else single)

    beta2 = lambda b: beta2_for(b, config.batch_size, config.adam.beta2_rule,
                                config.adam.beta2_batch_size)
    betas = chosen("beta2", float(config.adam.beta2))
    names = {"warmup": "warmup_fraction"}  # (config.sweep's name → LaneGrid's)
    points = tuple(tuple((names.get(key, key), float(beta2(value) if key == "beta2" else value))
                         for key, value in sorted(point.items()))
                   for point in config.sweep.get("points", ()))
    return LaneGrid(
        seeds=tuple(range(config.seed, config.seed + config.num_seeds)),
        base_lrs=tuple(float(lr) for lr in config.base_lrs),
        weight_decay=chosen("weight_decay", float(config.weight_decay)),
        warmup_fraction=chosen("warmup", float(config.warmup)),
        momentum=chosen("momentum", float(config.adam.beta1 if adam else config.momentum)),
        beta2=(tuple(beta2(b) for b in betas) if isinstance(betas, tuple) else beta2(betas))
        if adam else 0.0,
        epsilon=chosen("epsilon", float(config.adam.epsilon)) if adam else 0.0,
        grad_clip=chosen("grad_clip", float(config.get("grad_clip", 0.0))),
        points=points,
    )


def optimizer_of(config) -> Optimizer:
    """The static part of the lanes' optimizer; it clips where any lane has a norm."""
    norms = [float(config.get("grad_clip", 0.0)), *config.sweep.get("grad_clip", ()),
             *(point.get("grad_clip", 0.0) for point in config.sweep.get("points", ()))]
    return Optimizer(config.optimizer, config.nesterov, config.lr_scaling,
                     clip=any(norm > 0 for norm in norms))


def _digest(text: str) -> str:
    # (Addresses of functions and objects differ from process to process: left out.)
    return hashlib.blake2b(re.sub(r" at 0x[0-9a-fA-F]+", "", text).encode(),
                           digest_size=8).hexdigest()


def _source(code) -> str:
    """The source of a class or function where Python has it ('' for one made at run time)."""
    try:
        return inspect.getsource(code)
    except (OSError, TypeError):
        return ""


def model_structure(built: nn.Module, dataset: DatasetLike) -> str:
    """What a user's model is made of beyond its top class: the shapes and dtypes of its
    variables (from an abstract initialization on the data's inputs) and the source of every
    module class of the user's that it calls, submodules and a wrapped flax.nnx class
    included. A width set in a helper module (`Block`'s nn.Dense(2) made 64) changed neither
    the model's repr nor its class's source, and a rerun in the same workdir returned the
    2-wide model's results as the 64-wide one's."""
    classes = set()

    def record(call, args, kwargs, context):
        classes.add(type(context.module))
        return call(*args, **kwargs)

    inputs = jax.ShapeDtypeStruct((2,) + tuple(dataset.image_shape), model_input_dtype(dataset))
    try:
        with nn.intercept_methods(record):
            variables = jax.eval_shape(
                lambda x: built.init(init_rngs(jax.random.key(0)), x, train=False), inputs)
    except Exception:  # noqa: BLE001 – a model that does not fit: check_model says how
        return ""
    classes |= {cls for cls in (getattr(built, "nnx_class", None),) if isinstance(cls, type)}
    own = sorted({_source(cls) for cls in classes
                  if not cls.__module__.startswith(("flax.", "smallbatch_jax."))})
    return repr(jax.tree.map(lambda v: (v.shape, str(v.dtype)), variables)) + "".join(own)


def fingerprints(config, dataset: DatasetLike, model=None, objective: Objective | None = None,
                 built=None) -> dict:
    """What the config's names do not pin down, as digests: a user's model (its repr, a Flax
    module's fields, and the source of its class or factory; `built`: the module it gives,
    likewise), a user's objective (the source of its functions) and a user's data or .npz
    file (Dataset.fingerprint). A run records them with its config, so that a rerun in the
    same workdir after the model, the objective or the data changed is refused naming which,
    instead of returning the finished run's results as theirs (config.model names a user's
    model by its class alone). A comment edited in the model's source counts as a change."""
    found = {}
    if model is not None:
        code = (model if isinstance(model, type) or not isinstance(model, nn.Module)
                else type(model))
        found["model"] = _digest(repr(model) + _source(code) + (
            "" if built is None else repr(built) + _source(type(built))))
        if built is not None:
            found["model_structure"] = _digest(model_structure(built, dataset))
    if objective is not None and objective not in OBJECTIVES.values():
        found["objective"] = _digest(repr(objective) + _source(objective.loss)
                                     + _source(objective.metric))
    if not (config.dataset in BUILT_IN and config.dataset != "npz"):
        found["data"] = dataset.fingerprint
    return {"fingerprints": found} if found else {}


def prepare(config, dataset=None, model=None, objective: Objective | None = None) -> RunSpec:
    """The config checked (against the data too) and read into a RunSpec. `dataset`: the
    loaded data set (a sweep loads it once for all its runs; a user's, through
    smallbatch_jax.api); default: config.dataset, loaded here. `model`: a user's model
    instead of config.model; `objective`: a user's Objective instead of config.objective."""
    check_config(config, user_model=model is not None,
                 user_data=dataset is not None and config.dataset not in DATASETS)
    objective = objective or objective_named(config.objective)  # (a clear error if unknown)
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_dir, config.image_size)
    loaded = dataset
    if config.validation:  # (before anything reads the data: its statistics change too)
        dataset = hold_out(dataset, config.validation)
    elif getattr(dataset, "validation_indices", None) is not None:
        logging.info("%s: its own validation split is trained on with the rest (config."
                     "validation=0: the whole training set, evaluated on the test split)",
                     dataset.name)
    if not config.standardize:
        dataset = dataset.unstandardized()
    if getattr(dataset, "target_mean", None) is not None and not objective.scaled_targets:
        logging.info("%s: its targets are used as they are: the objective %s does not allow "
                     "standardizing them (Objective.scaled_targets)", dataset.name,
                     config.objective)
        dataset = dataset.raw_targets()
    check_against_data(config, dataset, objective)
    recipe = ModelRecipe(config.model, dataset.num_classes, config.bn_batch_size or None, model)
    built = recipe.build("xla")
    # (The metric reads the last `last_epochs` epochs' evaluations: the first of them follows
    # this many steps.)
    first_read = config.epochs - min(config.last_epochs, config.epochs) + 1
    recorded = as_json(config) | fingerprints(config, dataset, model, objective, built)
    optimizer, grid = optimizer_of(config), lane_grid(config)
    decays = {lane["weight_decay"] for lane in grid.settings()}
    decay_key = ("sweep.points" if "weight_decay" in grid.point_names else "sweep.weight_decay"
                 if len(decays) > 1 else "weight_decay")
    output_shape = check_model(built, dataset, objective, recipe.name, config.batch_size,
                               config.bn_batch_size, recipe.built_in,
                               steps_before_metric=first_read * (dataset.num_train
                                                                 // config.batch_size),
                               weight_decay=max(decays), weight_decay_key=decay_key)
    check_labels(dataset, config.reliable_tolerance, objective)
    check_metric_window(config, dataset.num_train // config.batch_size)
    cadence, noise = config.checkpoint, config.noise_scale
    return RunSpec(
        config=recorded,
        dataset_name=config.dataset,
        dataset=dataset,
        objective=objective,
        optimizer=optimizer,
        model=recipe,
        batch_size=config.batch_size,
        eval_batch_size=min(config.eval_batch_size, dataset.num_test),
        augment=config.augment,
        decay_points=tuple(config.lr_decay_points),
        decay_factor=config.lr_decay_factor,
        strategy=strategy_choice(config.strategy),
        precision=config.precision,
        memory_budget_bytes=int(config.memory_budget_gb * 2**30),
        schedule=Schedule(config.epochs, config.evals_per_epoch, config.last_epochs),
        checkpoints=CheckpointPolicy(cadence.every_epochs, cadence.every_minutes, cadence.keep),
        grid=grid,
        output_shape=output_shape,
        probe=NoiseProbe.for_data(dataset.num_train, batch_size=noise.batch_size,
                                  num_batches=noise.num_batches,
                                  max_fraction=noise.max_fraction, decay=noise.decay,
                                  multiple_of=config.bn_batch_size or 1),
        loaded=loaded,
    )


def create_run(spec: RunSpec, resumed_strategy: Strategy | None = None) -> Run:
    """The execution plan for the spec's lanes on this process's devices (made once:
    engine/plan.py; measured for this model under strategy.preset='tune': engine/tune.py),
    the trainer built from it, and the data set's batch source. `resumed_strategy`: the
    strategy a resumed run started with (kept under 'tune', whose timings could differ)."""
    source = batch_source(spec.dataset, spec.batch_size, spec.eval_batch_size)

    def lane_step(conv: str) -> LaneStep:
        return LaneStep(spec.model.build(conv), batch_size=spec.batch_size,
                        image_shape=spec.dataset.image_shape, optimizer=spec.optimizer,
                        input_dtype=model_input_dtype(spec.dataset),
                        objective=spec.objective, decay_points=spec.decay_points,
                        decay_factor=spec.decay_factor, conv=conv)

    memory_probe = MemoryProbe(
        programs_for=lambda plan: Programs(lane_step(plan.strategy.conv), plan, spec.num_seeds),
        abstract_dispatch=lambda steps: source.abstract_dispatch(spec.num_seeds, steps),
        steps_per_epoch=source.steps_per_epoch)
    reference_step = lane_step("xla")
    variables = jax.eval_shape(reference_step.init_variables, jax.random.key(0))
    timer = StrategyTimer(
        trainer_for=lambda plan: LaneTrainer(lane_step(plan.strategy.conv), plan,
                                             num_seeds=spec.num_seeds, augment=spec.augment,
                                             compact=False),
        seeds=jnp.asarray(spec.grid.seeds, jnp.int32), hparams=spec.grid.hparams(),
        source=source, run_steps=spec.schedule.epochs * source.steps_per_epoch,
        flops_per_step=spec.grid.num_lanes * step_flops(reference_step, variables)
        if spec.strategy.tunes(spec.model.name, spec.model.built_in, jax.default_backend())
        else 0.0)
    # What the step's cost depends on besides the model's variables.
    described = [spec.model.name, spec.dataset.image_shape, model_input_dtype(spec.dataset),
                 spec.optimizer, spec.objective.metric_name, spec.objective.labels,
                 spec.augment, spec.model.bn_batch_size, spec.eval_batch_size]
    choice = spec.strategy
    if choice.preset == "auto" and choice.tunes(spec.model.name, spec.model.built_in,
                                                jax.default_backend()):
        # No table measured on this model here (on a CPU the rules are a fallback): it is
        # measured itself (engine/tune.py).
        logging.info("strategy.preset='auto' on %s: tuned for this model here ('tune') if "
                     "the run is long enough to repay it", spec.model.name)
        choice = dataclasses.replace(choice, preset="tune")
    plan = make_plan(choice, spec.grid.num_lanes, spec.batch_size, timer=timer,
                     model_fingerprint=model_fingerprint(repr(described), variables),
                     has_conv=has_convolutions(variables), num_seeds=spec.num_seeds,
                     precision=spec.precision, streamed=spec.dataset.streamed,
                     memory_budget_bytes=spec.memory_budget_bytes, memory_probe=memory_probe,
                     resumed=resumed_strategy)
    trainer = LaneTrainer(lane_step(plan.strategy.conv), plan, num_seeds=spec.num_seeds,
                          augment=spec.augment)
    if spec.model.bn_batch_size and not trainer.has_batch_norm:
        logging.warning("config.bn_batch_size=%d is ignored: %s has no BatchNorm",
                        spec.model.bn_batch_size, spec.model.name)
    return Run(spec, trainer, source)
