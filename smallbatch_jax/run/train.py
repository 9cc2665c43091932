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
workdir (run.directory).
"""

import time

import jax.numpy as jnp
import numpy as np
from absl import logging

from smallbatch_jax.engine import fit
from smallbatch_jax.engine.loop import History
from smallbatch_jax.optim import epochs_before_last_decay
from smallbatch_jax.run import results
from smallbatch_jax.run.build import RunSpec, create_run, prepare
from smallbatch_jax.run.checkpoint import RunCheckpoints, save_state
from smallbatch_jax.run.compile_time import compile_seconds
from smallbatch_jax.run.directory import RunDirectory
from smallbatch_jax.run.provenance import device_name, provenance


def train_and_evaluate(config, workdir: str, dataset=None, model=None,
                       objective=None) -> list[dict]:
    """Trains every lane of the config's grid, or resumes it from the workdir's newest
    checkpoint; returns the per-lane results rows. `dataset`: the loaded data set (a
    sweep loads it once for all its runs; a user's, through smallbatch_jax.api); default:
    config.dataset, loaded here. `model`: a user's model instead of config.model;
    `objective`: a user's Objective instead of config.objective."""
    return train(prepare(config, dataset, model, objective), workdir)


def train(spec: RunSpec, workdir: str) -> list[dict]:
    """Trains the run `spec` (build.prepare) in `workdir`, or resumes it, or returns the
    rows of the finished run."""
    directory = RunDirectory(workdir)
    with directory.claim():
        rows = directory.finished_rows(spec.config)
        if rows is not None:
            logging.info("%s: finished already (its results.csv); nothing to train", workdir)
            directory.remove_checkpoints()  # (a run killed right after finishing left them)
            return rows
        checkpoints = directory.checkpoints(spec.config, spec.checkpoints.keep)
        try:
            return _train(spec, directory, checkpoints)
        finally:
            checkpoints.close()  # (its threads, also when the run fails)


def _train(spec: RunSpec, directory: RunDirectory, checkpoints: RunCheckpoints) -> list[dict]:
    newest = checkpoints.newest_progress()  # (another config's refused before anything compiles)
    # The run's clocks start together, before create_run (its memory probe and tuning
    # compile and take time): what compiling took is a part of the wall time it reports.
    started, compiled_at_start = time.perf_counter(), compile_seconds()
    # A resumed run keeps the strategy it started with (a tuned one could differ now).
    run = create_run(spec, directory.recorded_strategy() if newest is not None else None)
    grid, plan, epochs = spec.grid, run.plan, spec.schedule.epochs
    tuning = plan.tuning.as_json() if plan.tuning else None
    if plan.tuning is not None and plan.tuning.outcome == "resumed":
        # How the strategy was chosen when the run started stays its record: a resumed
        # run's files are an uninterrupted run's.
        tuning = directory.recorded_tuning() or tuning
    directory.write_config({"config": spec.config, "lanes": spec.lanes_note,
                            "strategy": vars(plan.strategy), "precision": plan.precision,
                            "donate": plan.donate, "provenance": provenance(plan.devices),
                            **({"tuning": tuning} if tuning else {})})
    also = "".join(f" × {len(values)} {name}" for name, values in grid.swept.items()
                   if name not in grid.point_names)
    if grid.points:
        also += f" × {len(grid.points)} points of ({', '.join(grid.point_names)})"
    logging.info("%s on %s: m=%d, %d lanes (%d %s%s × %d seeds) on %d device(s), %d "
                 "steps/epoch, %s", spec.model.name, spec.dataset_name, spec.batch_size,
                 grid.num_lanes, len(grid.base_lrs), spec.swept, also, len(grid.seeds),
                 len(plan.devices), run.source.steps_per_epoch, plan.strategy)

    state, hparams, source = run.trainer.start(jnp.asarray(grid.seeds, jnp.int32),
                                               grid.hparams(), run.source)
    history, seconds_before, compiled_before = History(), 0.0, 0.0
    restored = checkpoints.restore_latest(state)
    if restored is not None:
        state, progress = restored
        history = History.from_dict(progress["history"])
        seconds_before = progress["wall_seconds"]
        # (NaN for a checkpoint from before compile time was measured: unknown, not 0.)
        compiled_before = progress.get("compile_seconds", float("nan"))
        logging.info("resumed from %s at epoch %d of %d (step %d)", checkpoints.directory,
                     int(state.epoch), epochs, int(state.step))

    outputs = EpochOutputs(spec, directory, checkpoints, source.steps_per_epoch,
                           int(state.epoch), started, seconds_before,
                           compiled_before - compiled_at_start)
    state, history = fit(run.trainer, state, hparams, source, grid.seeds, epochs,
                         on_epoch_end=outputs, history=history, probe=spec.probe,
                         evals_per_epoch=spec.schedule.evals_per_epoch)

    rows = results.summarize(
        history, grid, batch_size=spec.batch_size,
        bn_batch_size=spec.model.bn_batch_size or spec.batch_size,
        steps_per_epoch=source.steps_per_epoch,
        diverged_step=np.asarray(state.lanes.diverged_step),
        last_epochs=spec.schedule.last_epochs, wall_seconds=outputs.wall_seconds(),
        compile_seconds=outputs.compile_seconds(),
        model=spec.model.name, dataset=spec.dataset_name, optimizer=spec.optimizer,
        objective=spec.objective, evaluated_on=spec.dataset.evaluated_on,
        baseline=spec.baseline, best_constant=spec.best_constant,
        device=device_name(plan.devices),
        epochs_before_decay=epochs_before_last_decay(
            epochs, spec.schedule.last_epochs, source.steps_per_epoch, spec.decay_points,
            spec.decay_factor)[0])
    save_state(directory.file(directory.STATE), state)
    # Last: a results.csv marks a finished run (a sweep skips it when re-run).
    directory.write_results(rows)
    directory.remove_checkpoints()  # state.msgpack is the final state

    print(f"\n{spec.model.name} on {spec.dataset_name}, m={spec.batch_size}, {epochs} epochs. "
          f"{spec.lanes_note}")
    print(results.format_table(rows, min(spec.schedule.last_epochs, epochs)))
    print(f"Wrote {directory.path}/results.csv, curves.csv, config.json, state.msgpack")
    return rows


class EpochOutputs:
    """What a run writes after each epoch (the engine's `on_epoch_end`): the progress line,
    curves.csv (and evaluations.csv with several evaluations per epoch) rewritten whole, and
    a checkpoint when the policy says so, whose progress lets a resumed run write the same
    files as one that never stopped."""

    def __init__(self, spec: RunSpec, directory: RunDirectory, checkpoints: RunCheckpoints,
                 steps_per_epoch: int, first_epoch: int, started: float,
                 seconds_before: float, compile_offset: float):
        self.spec, self.directory, self.checkpoints = spec, directory, checkpoints
        self.steps_per_epoch, self.seconds_before = steps_per_epoch, seconds_before
        self.compile_offset = compile_offset  # compile_seconds() + this: the run's so far
        self.started = started  # (this process's part of the run began, set-up included)
        self.last_save = (first_epoch, time.perf_counter())
        self.first_done = None  # (epoch, time) at the end of this process's first epoch

    def wall_seconds(self) -> float:
        """The run's time so far, its set-up (memory probe, tuning) and compiling included,
        and the epochs before a resume."""
        return self.seconds_before + time.perf_counter() - self.started

    def compile_seconds(self) -> float:
        """Compiling time so far (compile_time.py), a resumed run's earlier compiles included."""
        return self.compile_offset + compile_seconds()

    def __call__(self, epoch: int, history: History, state) -> None:
        spec = self.spec
        self.log(epoch, history)
        self.directory.write_curves(results.curve_rows(history, spec.grid, spec.probe))
        if spec.schedule.evals_per_epoch > 1:
            self.directory.write_evaluations(
                results.evaluation_rows(history, spec.grid, self.steps_per_epoch))
        if epoch < spec.schedule.epochs and spec.checkpoints.due(epoch, self.last_save):
            self.checkpoints.save(state, {"config": spec.config, "history": history.to_dict(),
                                          "wall_seconds": self.wall_seconds(),
                                          "compile_seconds": self.compile_seconds()})
            self.last_save = (epoch, time.perf_counter())

    def log(self, epoch: int, history: History) -> None:
        """The progress line; the ETA is from the epochs after this process's first, whose
        time includes compilation."""
        spec, now = self.spec, time.perf_counter()
        lanes = spec.grid.lanes()
        metric = history.test_metric[-1][:len(lanes)]  # without padding lanes
        diverged = int(np.isnan(metric).sum())
        if diverged < len(lanes):
            ranking = spec.objective.ranking
            best = int(np.nanargmax(metric) if ranking.higher_is_better
                       else np.nanargmin(metric))
            best_text = (f"best {spec.swept}={results.lr_text(lanes[best][1])} {ranking.short} "
                         f"{metric[best]:.4f}")
        else:
            best_text = "every lane diverged"
        if self.first_done is None:
            self.first_done = (epoch, now)
        first_epoch, first_time = self.first_done
        epochs = spec.schedule.epochs
        eta = ("?" if epoch == first_epoch else
               f"{(now - first_time) / (epoch - first_epoch) * (epochs - epoch):.0f}s")
        logging.info("epoch %d/%d  %.1fs (ETA %s)  %s  diverged %d/%d",
                     epoch, epochs, now - self.started, eta, best_text, diverged, len(lanes))
