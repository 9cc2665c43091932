"""One batch size m, a whole grid of base learning rates η̃: train, evaluate, write results.

`train_and_evaluate(config, workdir)` is what `python -m experiments.lr_sweep` runs. It
writes into `workdir`:
- config.json: the config as run, with the execution plan that was made (strategy,
  precision, donation, devices) and what a reader needs to rerun it (provenance.py);
- curves.csv: per epoch and lane, training loss, test loss and test accuracy, rewritten
  whole after every epoch (a reader never sees half a row);
- evaluations.csv (with `config.evals_per_epoch` > 1): every evaluation, inside epochs and
  at their ends, per lane with its step (steps to a target read it);
- checkpoints/: while it trains, the training state and history at epoch boundaries
  (checkpoint.py; cadence `config.checkpoint`), removed when the run has finished;
- results.csv: one row per lane (see results.SUMMARY_FIELDS), the paper's metric included;
- state.msgpack: the final training state (restore with checkpoint.restore_state).

Preemption: running the same command again resumes from the newest readable checkpoint and
ends with the same files, bit for bit, as a run that never stopped (wall times aside); on a
finished run it does nothing and returns its rows. A checkpoint or finished run made with a
different config is refused before any compute, naming the keys. One process at a time per
workdir (run_directory.claim).
"""

import dataclasses
import json
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from smallbatch_jax.run import results
from smallbatch_jax.run.checkpoint import RunCheckpoints, save_state
from smallbatch_jax.run.config_checks import check_against_data, check_config
from smallbatch_jax.data import DATASETS, Dataset, load_dataset
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.models import create_model, takes_conv, user_model
from smallbatch_jax.models.conv import conv_layer
from smallbatch_jax.objectives import Objective, objective_named
from smallbatch_jax.noise_scale import NoiseProbe
from smallbatch_jax.optim import SWEPT_SYMBOL, Optimizer, beta2_for
from smallbatch_jax.run.provenance import provenance
from smallbatch_jax.run.directory import claim
from smallbatch_jax.engine import (LaneStep, LaneTrainer, Programs, batch_source, fit,
                                   make_plan, plan_for)
from smallbatch_jax.engine.loop import History

CHECKPOINTS = "checkpoints"
# Keys a checkpoint's config may differ in from the command's: they do not change what one
# run computes (the sweep's other points, the summary's tolerance, how often to save, what
# is measured on the side: the noise-scale probe never touches the weights).
RESUME_IGNORES = ("batch_sizes", "bn_batch_sizes", "lr_from", "lr_per_batch_size",
                  "reliable_tolerance", "target", "checkpoint", "noise_scale")
# Keys added to the config after runs were saved without them, with the value that trains
# as those runs were trained: absent from a saved config and at this value now is no
# difference (a finished run stays finished, a checkpoint resumes).
ADDED_KEYS = {"objective": "classification", "evals_per_epoch": 1}


def optimizer_of(config) -> Optimizer:
    return Optimizer(config.optimizer, config.nesterov, config.lr_scaling)


def lane_grid(config) -> LaneGrid:
    """The lanes of `config`: its seeds × swept values, and the optimizer's numbers (μ for
    'momentum', Adam's β₁, its β₂ at this batch size under `adam.beta2_rule`, and ε)."""
    adam = config.optimizer in ("adam", "adamw")
    return LaneGrid(
        seeds=tuple(range(config.seed, config.seed + config.num_seeds)),
        base_lrs=tuple(float(lr) for lr in config.base_lrs),
        weight_decay=float(config.weight_decay),
        warmup_fraction=float(config.warmup),
        momentum=float(config.adam.beta1 if adam else config.momentum),
        beta2=beta2_for(config.adam.beta2, config.batch_size, config.adam.beta2_rule,
                        config.adam.beta2_batch_size) if adam else 0.0,
        epsilon=float(config.adam.epsilon) if adam else 0.0,
    )


def build_trainer(config, dataset, num_lanes: int, model=None, objective=None):
    """The execution plan for `num_lanes` lanes of `config` on this process's devices (made
    once: train/plan.py), the trainer built from it, and the data set's batch source.
    `model`: a user's model (a Flax module or a factory of one) instead of config.model;
    `objective`: a user's Objective instead of config.objective."""
    objective = objective or objective_named(config.objective)
    source = batch_source(dataset, config.batch_size,
                          min(config.eval_batch_size, dataset.num_test))
    tokens = getattr(dataset, "input_kind", "images") == "tokens"

    def lane_step(conv: str) -> LaneStep:
        if model is not None:
            built = user_model(model, dataset.num_classes)
        else:
            built = create_model(config.model, dataset.num_classes,
                                 config.bn_batch_size or None, conv_layer(conv))
        return LaneStep(built, batch_size=config.batch_size, image_shape=dataset.image_shape,
                        optimizer=optimizer_of(config),
                        input_dtype="int32" if tokens else "float32", objective=objective,
                        decay_points=tuple(config.lr_decay_points),
                        decay_factor=config.lr_decay_factor)

    def program_bytes(strategy) -> int:
        """One dispatch's bytes under `strategy`, compiled on one device (a probe)."""
        plan = plan_for(strategy, num_lanes, precision=config.precision,
                        devices=jax.local_devices()[:1])
        steps = source.dispatch_lengths(strategy, source.steps_per_epoch)[0]
        lanes = strategy.lanes_per_program or num_lanes
        return Programs(lane_step(strategy.conv), plan, config.num_seeds).program_bytes(
            lanes, source.abstract_dispatch(config.num_seeds, steps), steps)

    plan = make_plan(config, num_lanes, program_bytes=program_bytes,
                     model_takes_conv=model is None and takes_conv(config.model))
    trainer = LaneTrainer(lane_step(plan.strategy.conv), plan, num_seeds=config.num_seeds,
                          augment=config.augment)
    return trainer, source


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def as_json(config) -> dict:
    """The config as JSON gives it back (tuples as lists): what a checkpoint stores."""
    return json.loads(json.dumps(config.to_dict(), default=str))


def config_differences(saved: dict, current: dict) -> list[str]:
    """'key: saved → current' for every key that differs, RESUME_IGNORES aside (and
    ADDED_KEYS absent from `saved` at their old behaviour's value)."""
    saved, current = _flat(saved), _flat(current)
    ignored = lambda key: key.split(".")[0] in RESUME_IGNORES or (
        key in ADDED_KEYS and key not in saved and current.get(key) == ADDED_KEYS[key])
    return [f"{key}: {saved.get(key, '(absent)')!r} → {current.get(key, '(absent)')!r}"
            for key in sorted(set(saved) | set(current))
            if not ignored(key) and saved.get(key) != current.get(key)]


def check_resumable(saved_config: dict, config, workdir: str, what: str = "a checkpoint"
                    ) -> None:
    differences = config_differences(saved_config, as_json(config))
    if differences:
        raise ValueError(
            f"{workdir} holds {what} of a run with another config; differing keys: "
            f"{'; '.join(differences)}. Run with its config (to resume it, or to read its "
            "results), or give another --workdir (or move this one away) to start over.")


def checkpoint_due(cadence, epoch: int, last_save: tuple[int, float]) -> bool:
    """Whether to save after `epoch` (`last_save`: the epoch and perf_counter time of the
    last save): every `every_epochs` epochs, or when `every_minutes` have passed; 0 turns
    either off."""
    epochs_since, minutes_since = epoch - last_save[0], (time.perf_counter() - last_save[1]) / 60
    return bool((cadence.every_epochs and epochs_since >= cadence.every_epochs) or
                (cadence.every_minutes and minutes_since >= cadence.every_minutes))


def _log_progress(grid: LaneGrid, epochs: int, started: float, objective: Objective,
                  swept: str = "η̃"):
    """The per-epoch progress line (`swept`: the swept value's name, optim.SWEPT_SYMBOL);
    the ETA is from the epochs after this process's first, whose time includes compilation."""
    lanes = grid.lanes()
    first_done = []  # (epoch, time) at the end of this process's first epoch

    def log(epoch, history):
        now = time.perf_counter()
        metric = history.test_metric[-1][:len(lanes)]  # without padding lanes
        diverged = int(np.isnan(metric).sum())
        if diverged < len(lanes):
            best = int(np.nanargmax(metric) if objective.higher_is_better
                       else np.nanargmin(metric))
            name = "acc" if objective.metric_name == "accuracy" else objective.metric_name
            best_text = f"best {swept}=2^{np.log2(lanes[best][1]):g} {name} {metric[best]:.4f}"
        else:
            best_text = "every lane diverged"
        if not first_done:
            first_done.append((epoch, now))
        first_epoch, first_time = first_done[0]
        eta = ("?" if epoch == first_epoch else
               f"{(now - first_time) / (epoch - first_epoch) * (epochs - epoch):.0f}s")
        logging.info("epoch %d/%d  %.1fs (ETA %s)  %s  diverged %d/%d",
                     epoch, epochs, now - started, eta, best_text, diverged, len(lanes))

    return log


def train_and_evaluate(config, workdir: str, dataset=None, model=None,
                       objective=None) -> list[dict]:
    """Trains every lane of the config's grid, or resumes it from the workdir's newest
    checkpoint; returns the per-lane results rows. `dataset`: the loaded data set (a
    sweep loads it once for all its runs; a user's, through smallbatch_jax.api); default:
    config.dataset, loaded here. `model`: a user's model instead of config.model;
    `objective`: a user's Objective instead of config.objective."""
    check_config(config, user_model=model is not None,
                 user_data=dataset is not None and config.dataset not in DATASETS,
                 user_objective=objective is not None)
    objective = objective or objective_named(config.objective)
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_dir, config.image_size)
    if not config.standardize and isinstance(dataset, Dataset):
        dataset = dataclasses.replace(dataset, mean=None, std=None)
    check_against_data(config, dataset, objective)
    with claim(workdir, remove_temporaries=True):
        return _train_and_evaluate(config, workdir, dataset, model, objective)


def _train_and_evaluate(config, workdir: str, dataset, model, objective) -> list[dict]:
    finished = os.path.join(workdir, "results.csv")
    if os.path.isfile(finished):
        with open(os.path.join(workdir, "config.json")) as f:
            check_resumable(json.load(f)["config"], config, workdir, "the results")
        logging.info("%s: finished already (its results.csv); nothing to train", workdir)
        return results.read_csv(finished)

    checkpoints = RunCheckpoints(os.path.join(workdir, CHECKPOINTS), config.checkpoint.keep)
    try:
        return _train(config, workdir, dataset, model, objective, checkpoints)
    finally:
        checkpoints.close()  # (its threads, also when the run fails)


def _train(config, workdir: str, dataset, model, objective, checkpoints) -> list[dict]:
    newest = checkpoints.newest_progress()
    if newest is not None:  # refused before anything compiles
        check_resumable(newest["config"], config, workdir)

    grid = lane_grid(config)
    trainer, source = build_trainer(config, dataset, grid.num_lanes, model, objective)
    if config.bn_batch_size and not trainer.has_batch_norm:
        logging.warning("config.bn_batch_size=%d is ignored: %s has no BatchNorm",
                        config.bn_batch_size, config.model)
    lanes_note = ("All lanes share initial weights and data order (seed "
                  f"{config.seed}); only the learning rate differs." if config.num_seeds == 1 else
                  "Lanes with the same seed share initial weights and data order.")
    plan = trainer.plan
    with results.replacing(os.path.join(workdir, "config.json")) as temporary, \
            open(temporary, "w") as f:
        json.dump({"config": config.to_dict(), "lanes": lanes_note,
                   "strategy": vars(plan.strategy), "precision": plan.precision,
                   "donate": plan.donate, "provenance": provenance(plan.devices)},
                  f, indent=2, default=str)

    swept = SWEPT_SYMBOL[optimizer_of(config).scaling]  # η̃, or η for Adam's lr_scaling 'none'
    logging.info("%s on %s: m=%d, %d lanes (%d %s × %d seeds) on %d device(s), %d steps/epoch, "
                 "%s", config.model, config.dataset, config.batch_size, grid.num_lanes,
                 len(grid.base_lrs), swept, len(grid.seeds), len(plan.devices),
                 source.steps_per_epoch, plan.strategy)
    state, hparams, source = trainer.start(jnp.asarray(grid.seeds, jnp.int32), grid.hparams(),
                                           source)
    history, seconds_before = History(), 0.0
    restored = checkpoints.restore_latest(
        state, check=lambda progress: check_resumable(progress["config"], config, workdir))
    if restored is not None:
        state, progress = restored
        history = History.from_dict(progress["history"])
        seconds_before = progress["wall_seconds"]
        logging.info("resumed from %s at epoch %d of %d (step %d)", checkpoints.directory,
                     int(state.epoch), config.epochs, int(state.step))

    probe = NoiseProbe.from_config(config.noise_scale, source.num_train)
    started = time.perf_counter()
    log = _log_progress(grid, config.epochs, started, objective, swept)
    last_save = [int(state.epoch), started]

    def on_epoch_end(epoch, history, state):
        log(epoch, history)
        results.write_csv(os.path.join(workdir, "curves.csv"),
                          results.curve_rows(history, grid, probe), results.CURVE_FIELDS)
        if config.evals_per_epoch > 1:
            results.write_csv(os.path.join(workdir, "evaluations.csv"),
                              results.evaluation_rows(history, grid, source.steps_per_epoch),
                              results.EVALUATION_FIELDS)
        if epoch < config.epochs and checkpoint_due(config.checkpoint, epoch, last_save):
            checkpoints.save(state, {
                "config": as_json(config), "history": history.to_dict(),
                "wall_seconds": seconds_before + time.perf_counter() - started})
            last_save[:] = [epoch, time.perf_counter()]

    state, history = fit(trainer, state, hparams, source, grid.seeds, config.epochs,
                         on_epoch_end=on_epoch_end, history=history, probe=probe,
                         evals_per_epoch=config.evals_per_epoch)
    wall_seconds = seconds_before + time.perf_counter() - started

    rows = results.summarize(
        history, grid, batch_size=config.batch_size, bn_batch_size=config.bn_batch_size or
        config.batch_size, steps_per_epoch=source.steps_per_epoch,
        diverged_step=np.asarray(state.lanes.diverged_step), last_epochs=config.last_epochs,
        wall_seconds=wall_seconds, model=config.model, dataset=config.dataset,
        optimizer=optimizer_of(config), objective=objective)
    save_state(os.path.join(workdir, "state.msgpack"), state)
    # Last: a results.csv marks a finished run (batch_sweep skips it when re-run).
    results.write_csv(os.path.join(workdir, "results.csv"), rows, results.SUMMARY_FIELDS)
    shutil.rmtree(checkpoints.directory, ignore_errors=True)  # state.msgpack is the final state

    print(f"\n{config.model} on {config.dataset}, m={config.batch_size}, "
          f"{config.epochs} epochs. {lanes_note}")
    print(results.format_table(rows, min(config.last_epochs, config.epochs)))
    print(f"Wrote {workdir}/results.csv, curves.csv, config.json, state.msgpack")
    return rows
