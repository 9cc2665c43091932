"""How every diagnostic times things: one clock, budgets, interleaved repeats, timed lanes.

- `Clock` and `Budget`: seconds since the start, a deadline, and a section's share of it;
  log lines that carry the seconds.
- A runner is `(first_call_s, first_call_steps, run)`: the first call's seconds (compilation
  plus `first_call_steps` steps) and `run()`, which times one repeat in seconds per step
  (`timed_runner` makes one from a function that trains). `time_interleaved` times several
  runners in turn (A B C A B C …) into `Timing`s.
- Timed lanes: K lanes at the timed η̃ (`timing_lr`: none diverges while timed), built as a
  run builds them (run.build.prepare, then create_run) from an lr_sweep config at m
  (`run_config_at`); `lanes_runner` times them dispatch by dispatch in one program (the GPU
  check, with what the program is made of), `epoch_runner` epoch by epoch on every device a
  run would use (the throughput benchmark).
"""

import dataclasses
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from smallbatch_jax.config_args import load_config
from smallbatch_jax.data import Dataset, make_dataset
from smallbatch_jax.diagnostics.program_stats import hlo_stats
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.run.build import create_run, prepare
from smallbatch_jax.study.sweep import Run, config_for

# ------------------------------------------------------------------------ clock and budget


class Clock:
    """Seconds since the start, the deadline, and log lines that carry both (prefixed with
    `name` where given)."""

    def __init__(self, deadline_minutes: float, name: str = ""):
        self.start = time.perf_counter()
        self.deadline = self.start + 60.0 * deadline_minutes
        self.name = name

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def log(self, message: str) -> None:
        stamp = (f"{self.name} {self.elapsed():6.1f} s" if self.name
                 else f"{self.elapsed():7.1f} s")
        print(f"[{stamp}] {message}", flush=True)


@dataclasses.dataclass
class Budget:
    """A section's share of the check: until `minutes` after it began, or the deadline."""

    clock: Clock
    minutes: float
    began: float = dataclasses.field(default_factory=lambda: time.perf_counter())

    def left(self) -> float:
        return min(self.began + 60.0 * self.minutes - time.perf_counter(), self.clock.left())


# ------------------------------------------------------------------------ repeats


@dataclasses.dataclass(frozen=True)
class Timing:
    first_call_s: float  # compilation + `first_call_steps` steps
    first_call_steps: int
    step_s: tuple[float, ...]  # per repeat: seconds per step of all K models

    @property
    def median_step_s(self) -> float:
        return float(np.median(self.step_s))

    @property
    def compile_s(self) -> float:
        """First call minus the same steps at steady speed: compilation and one-off costs."""
        return max(self.first_call_s - self.median_step_s * self.first_call_steps, 0.0)


def timed_runner(train: Callable[[int], None], repeat_calls: int, steps_per_call: int = 1):
    """The runner of `train(n)`, which runs n calls of `steps_per_call` steps each and
    waits for them: `train(1)` timed at once (it compiles), and `run()` timing
    `train(repeat_calls)` in seconds per step."""
    start = time.perf_counter()
    train(1)
    first = time.perf_counter() - start

    def run():
        start = time.perf_counter()
        train(repeat_calls)
        return (time.perf_counter() - start) / (repeat_calls * steps_per_call)

    return first, steps_per_call, run


def time_interleaved(runners: dict, repeats: int) -> dict[str, Timing]:
    """Times every runner `repeats` times, in turn (A B C A B C …): on a shared, noisy
    machine, drift then affects every method alike instead of whichever ran last."""
    per_step = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (_, _, run) in runners.items():
            per_step[name].append(run())
    return {name: Timing(first, first_steps, tuple(per_step[name]))
            for name, (first, first_steps, _) in runners.items()}


def step_figures(timing: Timing, batch_size: int, num_models: int) -> dict:
    """A timing of `num_models` models at m as a table's figures: examples × models per
    second, milliseconds per step (median, and each repeat's), compilation seconds."""
    return {
        "examples_lanes_per_s": batch_size * num_models / timing.median_step_s,
        "step_ms": 1e3 * timing.median_step_s,
        "step_ms_repeats": [1e3 * t for t in timing.step_s],
        "compile_s": timing.compile_s,
    }


# ------------------------------------------------------------------------ what is timed

# The timed η̃: small enough that no lane diverges. A diverged lane would stop costing time
# (the trainer skips groups of diverged lanes), so each timing checks that none did. 2⁻¹⁴ up
# to m = 256; above, η = m·η̃ is held at 2⁻⁶: the reduced AlexNet without BN diverges within
# ten steps at η = 2⁻⁴ (m = 128, η̃ = 2⁻¹¹ and m = 256, η̃ = 2⁻¹²; docs/evidence/
# alexnet_nobn_study.md), and on the H100 at m = 2048, η̃ = 2⁻¹⁴ (η = 2⁻³) within 16 steps.
BASE_LR = 2.0**-14
MAX_LR = 2.0**-6
WEIGHT_DECAY = 5e-4


def timing_lr(batch_size: int) -> float:
    """The η̃ every timing at batch size m trains with (see BASE_LR)."""
    return min(BASE_LR, MAX_LR / batch_size)


def synthetic_dataset(image_shape, num_classes: int, num_train: int, seed: int = 0,
                      input_kind: str = "images", num_test: int = 8) -> Dataset:
    """Random inputs: throughput does not depend on their values. 'images' and 'tokens'
    (ids < 256): uint8; 'features': float32."""
    rng = np.random.default_rng(seed)
    if input_kind == "features":
        images = lambda n: rng.normal(size=(n,) + tuple(image_shape)).astype(np.float32)
    else:
        images = lambda n: rng.integers(0, 256, (n,) + tuple(image_shape), dtype=np.uint8)
    train_images, train_labels = images(num_train), rng.integers(0, num_classes, num_train)
    if num_classes > 1 and np.all(train_labels == train_labels[0]):
        # (A draw of a few examples can be one class, which make_dataset refuses.)
        train_labels[-1] = (train_labels[0] + 1) % num_classes
    return make_dataset("synthetic", train_images, train_labels, images(num_test),
                        rng.integers(0, num_classes, num_test), num_classes)


def run_config_at(sweep, batch_size: int, precision: str, strategy: Strategy | None = None):
    """The lr_sweep config of `sweep` at m (the sweep's run there, study.sweep.config_for),
    with `strategy` given by hand (None: the sweep's own)."""
    overrides = {"batch_size": batch_size, "precision": precision}
    if strategy is not None:
        overrides["strategy"] = {**sweep.strategy.to_dict(), "preset": "manual",
                                 **dataclasses.asdict(strategy)}
    return config_for(sweep, Run(f"m{batch_size}", overrides))


COMMON_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs", "common.py")


def common_run_config(model: str, batch_size: int, strategy: Strategy,
                      precision: str = "default", epochs: int = 1000):
    """configs/common.py (the paper's plain SGD, no warm-up; every key a run reads) with
    `model` at m under `strategy`: the runs the throughput benchmark times. `epochs` sets
    the schedule's length only (long: no decay while timed)."""
    config = run_config_at(load_config(COMMON_CONFIG), batch_size, precision, strategy)
    config.model, config.epochs = model, epochs
    return config


class LaneDiverged(RuntimeError):
    """A timed lane diverged: the candidate is reported as such, never timed."""


@dataclasses.dataclass
class TimedLanes:
    """K lanes ready to be timed: their trainer, data source, seeds, start state and
    hyperparameters, and the run's total steps (the schedule's length)."""

    trainer: object
    source: object
    seeds: jax.Array
    state: object
    hparams: object
    total_steps: np.int32
    batch_size: int

    def dispatch(self, num_steps: int):
        """The first `num_steps` steps' batches of epoch 0."""
        return next(self.source.epoch(self.seeds, 0, [num_steps], lambda tree: tree))[1]

    def check_not_diverged(self, lanes) -> None:
        """LaneDiverged if a lane did: a skipped lane would flatter the timing."""
        if np.asarray(lanes.diverged).any():
            raise LaneDiverged(f"a lane diverged at m={self.batch_size} with "
                               f"η̃={timing_lr(self.batch_size)}: it would no longer be "
                               "trained, and the timing would flatter the lanes")


def timed_lanes(run_config, dataset, num_lanes: int) -> TimedLanes:
    """K lanes at η̃ = timing_lr(m), built as a run builds them for `run_config` (an lr_sweep
    config at m, e.g. run_config_at's): run.build.prepare, then create_run."""
    with run_config.unlocked():
        run_config.base_lrs = (timing_lr(run_config.batch_size),) * num_lanes
        run_config.weight_decay = WEIGHT_DECAY
    run = create_run(prepare(run_config, dataset))
    grid, trainer, source = run.spec.grid, run.trainer, run.source
    seeds = jnp.asarray(grid.seeds, jnp.int32)
    state, hparams, source = trainer.start(seeds, grid.hparams(), source)
    return TimedLanes(trainer, source, seeds, state, hparams,
                      np.int32(run_config.epochs * source.steps_per_epoch),
                      run_config.batch_size)


def lanes_runner(run_config, dataset, num_lanes: int, timed_steps: int):
    """K lanes (timed_lanes; a manual strategy without lane groups, one device: all lanes
    in one program) whose repeats each run `timed_steps` steps in dispatches of the
    strategy's steps_per_dispatch. Returns the runner and what the program is made of
    (memory, HLO)."""
    timed = timed_lanes(run_config, dataset, num_lanes)
    trainer, source, plan = timed.trainer, timed.source, timed.trainer.plan
    if len(plan.devices) > 1 or plan.strategy.lanes_per_program:
        raise ValueError("lanes are timed all in one program on one device")
    per_dispatch = plan.dispatch_lengths(source.steps_per_epoch)[0]
    dispatch = timed.dispatch(per_dispatch)
    arguments = lambda lanes: (lanes, timed.hparams, dispatch, timed.seeds, np.int32(0),
                               timed.total_steps)
    lanes, program = [timed.state.lanes], []

    def train(count):
        if not program:
            # Compiled once, explicitly, to read its memory and HLO; the same program as
            # the jitted call's (the persistent cache serves that one).
            program.append(trainer.programs.train.lower(*arguments(lanes[0]),
                                                        num_steps=per_dispatch).compile())
        for _ in range(count):
            lanes[0], _ = program[0](*arguments(lanes[0]))
        jax.block_until_ready(lanes[0])
        timed.check_not_diverged(lanes[0])

    runner = timed_runner(train, -(-timed_steps // per_dispatch), per_dispatch)
    if jax.config.jax_compilation_cache_dir:
        trainer.evaluate(lanes[0], source)  # the sweep's evaluation program, into the cache
    memory = program[0].memory_analysis()
    info = {"steps_per_dispatch": per_dispatch, "donate": plan.donate,
            "hlo": hlo_stats(program[0].as_text()),
            "program_mib": (memory.argument_size_in_bytes + memory.output_size_in_bytes
                            + memory.temp_size_in_bytes) / 2**20 if memory else None}
    return runner, info


def epoch_runner(run_config, dataset, num_lanes: int):
    """K lanes (timed_lanes) on the devices and lane groups a run of `run_config` would use
    (engine/plan.py), one epoch of `dataset` per repeat (= the measured steps)."""
    timed = timed_lanes(run_config, dataset, num_lanes)
    state = [timed.state]
    total_steps = timed.total_steps

    def train(count):
        for _ in range(count):
            state[0], _, _ = timed.trainer.train_epoch(state[0], timed.hparams, timed.source,
                                                       timed.seeds, total_steps)
        jax.block_until_ready(state[0])
        timed.check_not_diverged(state[0].lanes)

    return timed_runner(train, 1, timed.source.steps_per_epoch)


def scanned_limit_runner(run_config, image_shape, num_classes: int, steps: int,
                         input_kind: str = "images"):
    """The packing limit in the lanes' own program shape: one model (one lane) on batches of
    K·m (`run_config` at batch size K·m, e.g. common_run_config's), its synthetic data
    resident on the device, an epoch of `steps` steps per dispatch (the strategy's) in a
    scan: no host slicing, no per-step dispatch. The Python-loop limit beside it pays both,
    which at small m is most of its time."""
    data = synthetic_dataset(image_shape, num_classes, run_config.batch_size * steps,
                             input_kind=input_kind)
    return epoch_runner(run_config, data, 1)
