"""One batch size m, a whole grid of base learning rates η̃: train, evaluate, write results.

`train_and_evaluate(config, workdir)` is what `python -m experiments.lr_sweep` runs. It
writes into `workdir`:
- config.json: the config as run, with the execution plan that was made (strategy,
  precision, donation, devices);
- results.csv: one row per lane (see results.SUMMARY_FIELDS), the paper's metric included;
- curves.csv: per epoch and lane, training loss, test loss and test accuracy;
- state.msgpack: the final training state (restore with checkpoint.restore_state).
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from smallbatch_jax import results
from smallbatch_jax.checkpoint import save_state
from smallbatch_jax.config_checks import check_against_data, check_config
from smallbatch_jax.data import load_dataset
from smallbatch_jax.lanes import LaneGrid
from smallbatch_jax.models import create_model
from smallbatch_jax.models.conv import conv_layer
from smallbatch_jax.train import (LaneStep, LaneTrainer, Programs, batch_source, fit,
                                  make_plan, plan_for)


def lane_grid(config) -> LaneGrid:
    return LaneGrid(
        seeds=tuple(range(config.seed, config.seed + config.num_seeds)),
        base_lrs=tuple(float(lr) for lr in config.base_lrs),
        weight_decay=float(config.weight_decay),
        warmup_fraction=float(config.warmup),
        momentum=float(config.momentum),
    )


def build_trainer(config, dataset, num_lanes: int):
    """The execution plan for `num_lanes` lanes of `config` on this process's devices (made
    once: train/plan.py), the trainer built from it, and the data set's batch source."""
    source = batch_source(dataset, config.batch_size,
                          min(config.eval_batch_size, dataset.num_test))

    def lane_step(conv: str) -> LaneStep:
        model = create_model(config.model, dataset.num_classes, config.bn_batch_size or None,
                             conv_layer(conv))
        return LaneStep(model, batch_size=config.batch_size, image_shape=dataset.image_shape,
                        use_momentum=config.momentum > 0,
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

    plan = make_plan(config, num_lanes, program_bytes=program_bytes)
    trainer = LaneTrainer(lane_step(plan.strategy.conv), plan, num_seeds=config.num_seeds,
                          augment=config.augment)
    return trainer, source


def _log_progress(grid: LaneGrid, epochs: int, started: float):
    lanes = grid.lanes()

    def log(epoch, history, state):
        del state
        elapsed = time.perf_counter() - started
        accuracy = history.test_accuracy[-1][:len(lanes)]  # without padding lanes
        diverged = int(np.isnan(accuracy).sum())
        if diverged < len(lanes):
            best = int(np.nanargmax(accuracy))
            best_text = f"best η̃=2^{np.log2(lanes[best][1]):g} acc {accuracy[best]:.4f}"
        else:
            best_text = "every lane diverged"
        # The first epoch includes compilation: no estimate from it alone.
        eta = f"{elapsed / epoch * (epochs - epoch):.0f}s" if epoch > 1 else "?"
        logging.info("epoch %d/%d  %.1fs (ETA %s)  %s  diverged %d/%d",
                     epoch, epochs, elapsed, eta, best_text, diverged, len(lanes))

    return log


def train_and_evaluate(config, workdir: str) -> list[dict]:
    """Trains every lane of the config's grid; returns the per-lane results rows."""
    check_config(config)
    dataset = load_dataset(config.dataset, config.data_dir, config.image_size)
    check_against_data(config, dataset)
    grid = lane_grid(config)
    trainer, source = build_trainer(config, dataset, grid.num_lanes)
    if config.bn_batch_size and not trainer.has_batch_norm:
        logging.warning("config.bn_batch_size=%d is ignored: %s has no BatchNorm",
                        config.bn_batch_size, config.model)
    lanes_note = ("All lanes share initial weights and data order (seed "
                  f"{config.seed}); only η̃ differs." if config.num_seeds == 1 else
                  "Lanes with the same seed share initial weights and data order.")
    plan = trainer.plan
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "lanes": lanes_note,
                   "strategy": vars(plan.strategy), "precision": plan.precision,
                   "donate": plan.donate, "backend": jax.default_backend(),
                   "devices": [str(d) for d in plan.devices]}, f, indent=2, default=str)

    logging.info("%s on %s: m=%d, %d lanes (%d η̃ × %d seeds) on %d device(s), %d steps/epoch, "
                 "%s", config.model, config.dataset, config.batch_size, grid.num_lanes,
                 len(grid.base_lrs), len(grid.seeds), len(plan.devices),
                 source.steps_per_epoch, plan.strategy)
    state, hparams, source = trainer.start(jnp.asarray(grid.seeds, jnp.int32), grid.hparams(),
                                           source)
    started = time.perf_counter()
    state, history = fit(trainer, state, hparams, source, grid.seeds, config.epochs,
                         on_epoch_end=_log_progress(grid, config.epochs, started))
    wall_seconds = time.perf_counter() - started

    rows = results.summarize(
        history, grid, batch_size=config.batch_size, bn_batch_size=config.bn_batch_size or
        config.batch_size, steps_per_epoch=source.steps_per_epoch,
        diverged_step=np.asarray(state.lanes.diverged_step), last_epochs=config.last_epochs,
        wall_seconds=wall_seconds)
    results.write_csv(os.path.join(workdir, "curves.csv"), results.curve_rows(history, grid),
                      results.CURVE_FIELDS)
    save_state(os.path.join(workdir, "state.msgpack"), state)
    # Last: a results.csv marks a finished run (batch_sweep skips it when re-run).
    results.write_csv(os.path.join(workdir, "results.csv"), rows, results.SUMMARY_FIELDS)

    print(f"\n{config.model} on {config.dataset}, m={config.batch_size}, "
          f"{config.epochs} epochs. {lanes_note}")
    print(results.format_table(rows, min(config.last_epochs, config.epochs)))
    print(f"Wrote {workdir}/results.csv, curves.csv, config.json, state.msgpack")
    return rows
