"""The paper's whole Fig 1 grid timed at full size, instead of extrapolated from a subset.

Full CIFAR-10 cannot travel to a lent accelerator, but its timing needs no real images:
synthetic CIFAR-shaped data (50,000 training and 10,000 test images, generated on the machine
that trains) go through the same run a sweep makes (run.build: prepare, create_run, with the
config's strategy, 'tune' included, and compaction on). For every m and precision, one
`TimedRun`: the seconds to build the run (the memory probe, tuning), the first epoch
(compilation included) and a second one, each with its evaluation, and what compiling took.
The grid's time is then a measured sum, `fig1_minutes`: per m, build + first epoch +
(epochs − 1) × the second epoch. Random labels make lanes diverge where real images may not
(and the other way round): compaction then saves what it would save on these data, which the
record states with the lanes still live after two epochs.

Resumable: the record (full_grid.json) is rewritten after every (m, precision), and a rerun
times only what it lacks; `budget_minutes` starts nothing new after that long.
"""

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from smallbatch_jax.diagnostics.timing import synthetic_dataset
from smallbatch_jax.run.build import create_run, prepare
from smallbatch_jax.run.compile_time import compile_seconds

RECORD = "full_grid.json"


@dataclasses.dataclass(frozen=True)
class TimedRun:
    batch_size: int
    precision: str
    strategy: dict
    build_s: float  # prepare + create_run: the memory probe and tuning, if any
    first_epoch_s: float  # compilation included, evaluation included
    epoch_s: float  # the second epoch, evaluation included
    evaluation_s: float  # the second epoch's evaluation alone
    compile_s: float  # JAX's compile events over build and both epochs
    live_lanes: int  # not diverged after two epochs
    num_lanes: int
    steps_per_epoch: int

    def run_minutes(self, epochs: int) -> float:
        """This m's part of the grid: build, the first epoch and the rest at the second's
        pace."""
        return (self.build_s + self.first_epoch_s + (epochs - 1) * self.epoch_s) / 60


def time_run(config, dataset) -> TimedRun:
    """Builds the run of `config` (an lr_sweep config at m) on `dataset` and times two of its
    epochs, evaluation included."""
    compiled, started = compile_seconds(), time.perf_counter()
    run = create_run(prepare(config, dataset))
    built = time.perf_counter()
    grid, trainer = run.spec.grid, run.trainer
    seeds = jnp.asarray(grid.seeds, jnp.int32)
    state, hparams, source = trainer.start(seeds, grid.hparams(), run.source)
    total_steps = config.epochs * source.steps_per_epoch
    seconds = []
    for _ in range(2):
        begin = time.perf_counter()
        state, _, _ = trainer.train_epoch(state, hparams, source, seeds, total_steps)
        jax.block_until_ready(state)
        evaluated = time.perf_counter()
        trainer.evaluate(state.lanes, source)  # (returns host arrays: waits for them)
        seconds.append((time.perf_counter() - begin, time.perf_counter() - evaluated))
    diverged = np.asarray(state.lanes.diverged)[:grid.num_lanes]
    return TimedRun(config.batch_size, config.precision, dataclasses.asdict(run.plan.strategy),
                    built - started, seconds[0][0], seconds[1][0], seconds[1][1],
                    compile_seconds() - compiled, int((~diverged).sum()), grid.num_lanes,
                    source.steps_per_epoch)


def fig1_minutes(rows: list[dict], epochs: int) -> dict[str, float]:
    """{precision: minutes of the whole grid} over the m timed at that precision."""
    totals = {}
    for row in rows:
        totals[row["precision"]] = totals.get(row["precision"], 0.0) + TimedRun(
            **row).run_minutes(epochs)
    return totals


def markdown(record: dict) -> str:
    epochs = record["epochs"]
    lines = [f"# The Fig 1 grid at full size, timed ({record['device']}, jax {record['jax']}, "
             f"{record['date']})", "",
             f"{record['num_train']:,} training and {record['num_test']:,} test images "
             f"(synthetic, CIFAR-shaped), {record['model']}, {record['num_lanes']} lanes per m, "
             f"strategy.preset='{record['preset']}'; per m the run's build (memory probe, "
             "tuning), its first epoch (compilation included) and a second one, each with its "
             f"evaluation. The grid's time = Σ over m of build + first epoch + {epochs - 1} × "
             "the second.", "",
             "| precision | m | strategy | build s | first epoch s | epoch s | of it evaluation s "
             "| compile s | live lanes | minutes at this m |", "|" + "---|" * 10]
    for row in record["rows"]:
        run = TimedRun(**row)
        strategy = run.strategy
        lines.append(
            f"| {run.precision} | {run.batch_size} | {strategy['lane_map']}/{strategy['conv']}"
            f"{'/' + str(strategy['lanes_per_program']) if strategy['lanes_per_program'] else ''}"
            f" | {run.build_s:.1f} | {run.first_epoch_s:.1f} | {run.epoch_s:.2f} | "
            f"{run.evaluation_s:.2f} | {run.compile_s:.1f} | {run.live_lanes}/{run.num_lanes} | "
            f"{run.run_minutes(epochs):.2f} |")
    lines += [""] + [f"- **{precision}**: {minutes:.1f} minutes over m = "
                     + ", ".join(str(r["batch_size"]) for r in record["rows"]
                                 if r["precision"] == precision)
                     for precision, minutes in fig1_minutes(record["rows"], epochs).items()]
    return "\n".join(lines) + "\n"


def time_full_grid(config, workdir: str, budget_minutes: float = 0.0) -> dict:
    """Every (precision, m) of `config` (configs/full_grid_timing.py) not yet in the
    workdir's record; returns the record."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, RECORD)
    record = {"rows": []}
    if os.path.isfile(path):
        with open(path) as f:
            record = json.load(f)
    device = jax.devices()[0]
    record.update(device=device.device_kind, jax=jax.__version__,
                  date=time.strftime("%Y-%m-%d"), model=config.run.model,
                  num_train=config.num_train, num_test=config.num_test,
                  epochs=config.run.epochs, num_lanes=len(config.run.base_lrs),
                  preset=config.run.strategy.preset)
    done = {(r["precision"], r["batch_size"]) for r in record["rows"]}
    logging.info("synthetic data: %d + %d images of %s", config.num_train, config.num_test,
                 tuple(config.image_shape))
    dataset = synthetic_dataset(tuple(config.image_shape), 10, config.num_train,
                                num_test=config.num_test)
    started = time.perf_counter()
    for precision in config.precisions:
        for m in config.batch_sizes:
            if (precision, m) in done:
                continue
            if budget_minutes and time.perf_counter() - started > 60 * budget_minutes:
                logging.info("budget spent: (%s, m = %d) and after left for a rerun",
                             precision, m)
                return record
            run_config = config.run.copy_and_resolve_references()
            with run_config.unlocked():
                run_config.batch_size, run_config.precision = m, precision
            timed = time_run(run_config, dataset)
            logging.info("%s m=%d: build %.1f s, first epoch %.1f s, epoch %.2f s: %.2f min "
                         "of the grid", precision, m, timed.build_s, timed.first_epoch_s,
                         timed.epoch_s, timed.run_minutes(config.run.epochs))
            record["rows"].append(dataclasses.asdict(timed))
            with open(path, "w") as f:
                json.dump(record, f, indent=1)
            with open(os.path.join(workdir, "full_grid.md"), "w") as f:
                f.write(markdown(record))
    return record
