"""One batch size m, a whole grid of base learning rates η̃: train, evaluate, write results.

`train_and_evaluate(config, workdir)` is what `python -m experiments.lr_sweep` runs. It
writes into `workdir`:
- config.json: the config as run (plus the lowering that was chosen);
- results.csv: one row per lane (see results.SUMMARY_FIELDS), the paper's metric included;
- curves.csv: per epoch and lane, training loss, test loss and test accuracy;
- state.msgpack: the final training state (restore with checkpoint.restore_state).
"""

import dataclasses
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
from smallbatch_jax.data import StreamedDataset, load_dataset
from smallbatch_jax.lanes import LaneGrid
from smallbatch_jax.lowering import PRESETS, Lowering, choose_lowering
from smallbatch_jax.models import create_model
from smallbatch_jax.sharding import mesh_for
from smallbatch_jax.trainer import LaneTrainer, fit, put_on_device


def lane_grid(config) -> LaneGrid:
    return LaneGrid(
        seeds=tuple(range(config.seed, config.seed + config.num_seeds)),
        base_lrs=tuple(float(lr) for lr in config.base_lrs),
        weight_decay=float(config.weight_decay),
        warmup_fraction=float(config.warmup),
        momentum=float(config.momentum),
    )


def resolve_lowering(config, num_lanes: int) -> Lowering:
    """'auto': measured per backend; a preset name; or 'manual': the config's fields."""
    if config.lowering.preset == "auto":
        return choose_lowering(jax.default_backend(), config.batch_size, num_lanes,
                               jax.local_device_count(), config.lowering.table)
    if config.lowering.preset in PRESETS:
        return PRESETS[config.lowering.preset]
    return Lowering(
        lanes=config.lowering.lanes,
        conv=config.lowering.conv,
        step_loop=config.lowering.step_loop,
        steps_per_dispatch=config.lowering.steps_per_dispatch,
        scan_unroll=config.lowering.scan_unroll,
        lane_chunk=config.lowering.lane_chunk,
    )


def build_trainer(config, dataset, num_lanes: int) -> LaneTrainer:
    """The trainer for `config`'s `num_lanes` lanes; split over every local device when there
    are several and the lowering allows it (sharding.mesh_for)."""
    lowering = resolve_lowering(config, num_lanes)
    bn_batch_size = config.bn_batch_size or None
    return LaneTrainer(
        model=create_model(config.model, dataset.num_classes, bn_batch_size),
        batch_size=config.batch_size,
        num_train=dataset.num_train,
        image_shape=dataset.image_shape,
        num_seeds=config.num_seeds,
        use_momentum=config.momentum > 0,
        decay_points=tuple(config.lr_decay_points),
        decay_factor=config.lr_decay_factor,
        lowering=lowering,
        eval_batch_size=min(config.eval_batch_size, dataset.num_test),
        augment=config.augment,
        precision=config.precision,
        mesh=mesh_for(lowering, num_lanes),
    )


def fit_memory_budget(trainer: LaneTrainer, num_lanes: int, dataset, budget_gb: float):
    """The trainer with as many lanes per program as fit in `budget_gb` (measured)."""
    data = dataset if isinstance(dataset, StreamedDataset) else jax.eval_shape(
        lambda: put_on_device(dataset, trainer.eval_batch_size))
    chunk = trainer.lanes_within_budget(num_lanes, data, int(budget_gb * 2**30))
    logging.info("memory budget %.3g GiB: %d of %d lanes per program (%.0f MiB per dispatch)",
                 budget_gb, chunk, num_lanes, trainer.program_bytes(chunk, data) / 2**20)
    if chunk == (trainer.lowering.lane_chunk or num_lanes):
        return trainer
    # Chunks of lanes are dealt out over the devices (one program each) instead.
    lowering = dataclasses.replace(trainer.lowering, lane_chunk=chunk)
    return dataclasses.replace(trainer, lowering=lowering, mesh=mesh_for(lowering, num_lanes))


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
    # Only ImageNet's config has an image size (its crop; CIFAR's images are what they are).
    dataset = load_dataset(config.dataset, config.data_dir, config.get("image_size", 224))
    check_against_data(config, dataset)
    grid = lane_grid(config)
    trainer = build_trainer(config, dataset, grid.num_lanes)
    if config.memory_budget_gb:
        trainer = fit_memory_budget(trainer, grid.num_lanes, dataset, config.memory_budget_gb)
    if config.bn_batch_size and not trainer.has_batch_norm:
        logging.warning("config.bn_batch_size=%d is ignored: %s has no BatchNorm",
                        config.bn_batch_size, config.model)
    lanes_note = ("All lanes share initial weights and data order (seed "
                  f"{config.seed}); only η̃ differs." if config.num_seeds == 1 else
                  "Lanes with the same seed share initial weights and data order.")
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump({"config": config.to_dict(), "lanes": lanes_note,
                   "lowering": vars(trainer.lowering), "backend": jax.default_backend(),
                   "devices": [str(d) for d in trainer.devices]}, f, indent=2, default=str)

    logging.info("%s on %s: m=%d, %d lanes (%d η̃ × %d seeds) on %d device(s), %d steps/epoch, "
                 "lowering %s", config.model, config.dataset, config.batch_size, grid.num_lanes,
                 len(grid.base_lrs), len(grid.seeds), trainer.num_devices,
                 trainer.steps_per_epoch, trainer.lowering)
    state, hparams, data = trainer.start(jnp.asarray(grid.seeds, jnp.int32), grid.hparams(),
                                         dataset)
    started = time.perf_counter()
    state, history = fit(trainer, state, hparams, data, grid.seeds, config.epochs,
                         on_epoch_end=_log_progress(grid, config.epochs, started))
    wall_seconds = time.perf_counter() - started

    rows = results.summarize(
        history, grid, batch_size=config.batch_size, bn_batch_size=config.bn_batch_size or
        config.batch_size, steps_per_epoch=trainer.steps_per_epoch,
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
