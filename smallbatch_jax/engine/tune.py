"""Strategies measured for the model at hand: `strategy.preset='tune'`.

'auto''s rules were measured on the paper's reduced AlexNet (strategy.py); another model, a
user's MLP or the project's ResNet-20, may run faster another way, and so may AlexNet itself
as the trainer changes, so 'auto' tunes every model on a CPU, and elsewhere every model but
the one its measured table was measured on (StrategyChoice.tunes). Tuning times the strategies
this model can take on a short window of its own training program, before the run, and
keeps the fastest:

- the candidates (`candidates`): 'auto''s choice first, then the other lane maps,
  convolutions and lane groupings of the backend (convolution variants only for a model
  with convolutions);
- each is timed as the run will execute it (its plan, devices and lane groups, through the
  trainer it would train with) on windows of `WINDOW_STEPS` steps of the real data, after a
  first window that compiles it: the median of `REPEATS` repeats of at least
  `MIN_REPEAT_SECONDS` each, in ms per step of all lanes (after the first candidate, windows
  of ~`WINDOW_SECONDS` at the fastest pace so far, a single step for a slow model, and a
  candidate `GIVE_UP` times slower than it after one window is not repeated); then the
  fastest few (`RUNOFF_SIZE`, within `RUNOFF_WITHIN` of the fastest) are timed again side by
  side, their repeats interleaved (A B C A B C …), as the share allows, and then decide
  between themselves; the fastest is chosen, but 'auto''s choice is kept unless another
  beats it by more than `KEEP_FIRST_WITHIN`. The lanes are timed at η̃ = 0, so that none
  diverges inside the window (a diverged group is skipped, which would flatter the
  strategies that group lanes); the program is the same at any η̃;
- a run too short to repay even one candidate is not tuned (`optimistic_seconds`: its FLOPs,
  XLA's estimate before compiling, at an optimistic speed, or a floor per step); otherwise
  tuning stops before a candidate whose expected cost (the mean of those timed so far) would
  take its total past `share` of the run's estimated training time (the fastest candidate's
  step time × the run's steps); a run too short to repay a second candidate keeps 'auto''s
  choice and says so. The first candidate's timing is the price of that estimate;
- the timings are cached on disk (`StrategyCache`), keyed by what decides them: the model's
  structure and input, m, K, seeds, precision, the backend, device kind and count, and the
  jax version. A later run of the same shape times only what is not timed yet (so short
  runs finish the tuning a bit at a time), and nothing once every candidate is; a resumed
  run keeps the strategy it started with (recorded in its config.json).

What tuning did (`Tuning`) is logged and recorded in the run's config.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from smallbatch_jax.engine.strategy import PRESETS, Strategy, StrategyChoice

if TYPE_CHECKING:  # (plan.py calls tuning: a plan is only handed in here)
    from smallbatch_jax.engine.plan import ExecutionPlan

WINDOW_STEPS = 32  # steps per timed window (fewer in an epoch that short)
# After the first candidate, windows of about this long at its pace (at least MIN_WINDOW_STEPS
# steps): a slow model's slow candidates would otherwise take minutes a window. One step at
# least, not more: ResNet-20's 13 lanes at m = 32 on a 2-core CPU take 1.4 s a step at best
# and 111 s with vmapped XLA convolutions, whose two windows (compiling, then timed) of 4
# steps cost 15 minutes (docs/benchmarks.md); a step that slow needs no more to be timed.
WINDOW_SECONDS = 0.5
MIN_WINDOW_STEPS = 1
# A candidate whose first timed window is this much slower than the fastest so far is not
# repeated: its one window is its timing.
GIVE_UP = 1.5
REPEATS = 3  # timed repeats per candidate, after the compiling window
MIN_REPEAT_SECONDS = 0.25  # a repeat runs as many windows as this takes (timer noise)
# 'auto''s choice is kept unless another is faster by more than this: differences within
# a window's timing noise would otherwise pick at random between equals.
KEEP_FIRST_WITHIN = 0.05
# The run-off: candidates within RUNOFF_WITHIN of the fastest (at most RUNOFF_SIZE) are timed
# again side by side, their repeats interleaved. Timed one after another, one candidate's
# repeats can all land in a slow spell of a shared machine: token_cnn's lanes at m = 8 on a
# 2-core CPU, one lane per program, timed 13.7 ms per step in one tuning and 17.5 ms in the
# next, which lost it the choice to a candidate at 15 ms (docs/benchmarks.md).
RUNOFF_SIZE = 3
RUNOFF_WITHIN = 1.3
DEFAULT_SHARE = 0.1  # of the run's training time that tuning may take
# Bumped when the candidates, or how one is chosen, change: a cached choice made otherwise is
# stale. 2: a scanned program of one lane on CPUs; 3: the batch per lane; 4: the run-off.
CANDIDATES_VERSION = 4
# A run too short to repay even one candidate's timing is not tuned at all: judged before
# anything compiles, from its FLOPs (XLA's estimate of a step, before compiling) at an
# optimistic speed, or a floor per step, whichever is longer. Optimistic on purpose: only a
# run short even at the machine's best is skipped; the others time the first candidate,
# whose speed then sets the share. Per backend (others: the GPU's).
OPTIMISTIC_FLOPS = {"cpu": 2e11, "gpu": 1e15}  # per second
STEP_FLOOR_SECONDS = {"cpu": 2e-5, "gpu": 5e-5}  # a dispatch-free step of a tiny model
CANDIDATE_SECONDS = {"cpu": 2.0, "gpu": 10.0}  # the least one candidate's timing costs


@dataclasses.dataclass(frozen=True)
class Timed:
    """One candidate's timing: ms per step of all lanes (NaN if it failed), the seconds it
    cost (compilation included), and why it failed."""
    strategy: Strategy
    ms_per_step: float
    seconds: float
    error: str = ""


@dataclasses.dataclass(frozen=True)
class Tuning:
    """What tuning did: 'measured' (`timings` of the candidates timed), 'cached' (read from
    `StrategyCache`), 'resumed' (the strategy a resumed run started with; its config.json keeps
    the record of how that was chosen: run/train.py), 'skipped' (a run
    too short to repay one candidate's timing, judged before compiling), 'partial' (stopped
    before the last candidate: its cost would have passed the share) or 'short' (the run too
    short to repay more than the first candidate). The cache keeps every outcome's timings:
    a later run of the same key times only the candidates not yet timed, and none once
    every one was ('measured')."""
    outcome: str
    chosen: Strategy
    timings: tuple[Timed, ...] = ()
    seconds: float = 0.0
    note: str = ""

    def as_json(self) -> dict:
        return {"outcome": self.outcome, "chosen": dataclasses.asdict(self.chosen),
                "seconds": round(self.seconds, 3), "note": self.note,
                "timings": [{"strategy": dataclasses.asdict(t.strategy),
                             "ms_per_step": None if math.isnan(t.ms_per_step)
                             else round(t.ms_per_step, 4),
                             "seconds": round(t.seconds, 3), **({"error": t.error}
                                                                 if t.error else {})}
                            for t in self.timings]}

    def summary(self) -> str:
        """One line per candidate, fastest first, for the log."""
        timed = sorted(self.timings, key=lambda t: (math.isnan(t.ms_per_step), t.ms_per_step))
        lines = [f"  {t.ms_per_step:9.3f} ms/step  {t.strategy}" if not t.error
                 else f"  failed: {t.error[:120]}  {t.strategy}" for t in timed]
        return "\n".join(lines)


def candidates(auto: Strategy, backend: str, num_lanes: int, num_devices: int,
               has_conv: bool, num_seeds: int = 1) -> list[Strategy]:
    """The strategies tuning times, 'auto''s choice first, without repeats. Convolution
    variants only where the model has convolutions (else they are the same program). With
    one seed, the vmapped ones take 'auto''s way of handing the lanes their batch
    (strategy.py's shared_batch), and the other way is timed second, except for a model with
    convolutions on a CPU, where folding was measured faster on each of the zoo's CNNs
    (docs/benchmarks.md); with several seeds each lane has its seed's batch either way.

    On a CPU a model's convolutions are vmapped as patches only: vmapped, XLA's own
    convolution becomes a grouped one, which took 7–31× the best other candidate's time on
    every zoo CNN tuned there (ResNet-20 at m = 32: 43–111 s a step against 1.4 s) and 36–86%
    of each tuning's time (docs/benchmarks.md); XLA's convolution is timed one lane per
    program ('sequential'), where it is not grouped."""
    convs = ("xla", "patches") if has_conv else ("xla",)
    if backend == "cpu":
        per_device = max(1, -(-num_lanes // num_devices))
        vmapped = convs[-1]  # patches for a model with convolutions
        found = [auto, Strategy(conv=vmapped),
                 Strategy(conv=vmapped, lanes_per_program=per_device),
                 Strategy(conv=vmapped, lanes_per_program=min(4, per_device)),
                 # One lane per program, its whole dispatch scanned: one lane's working set
                 # for many steps, without the per-step dispatch of 'sequential'. (Added for
                 # the MLP, whose lanes trail sequential runs; there it was not faster.)
                 Strategy(conv=vmapped, lanes_per_program=1),
                 PRESETS["sequential"], Strategy(lane_map="map", conv=vmapped)]
    else:
        convs = convs + (("shifted",) if has_conv else ())
        found = [auto] + [Strategy(conv=conv) for conv in convs]
        if num_lanes > 1:
            found += [Strategy(conv=conv, lanes_per_program=-(-num_lanes // 2))
                      for conv in convs]
    if not has_conv:
        found = [dataclasses.replace(s, conv="xla") for s in found]
    shared = auto.shared_batch if num_seeds == 1 else True
    found = [dataclasses.replace(s, shared_batch=shared) if s.lane_map == "vmap" else s
             for s in found]
    if num_seeds == 1 and found[0].lane_map == "vmap" and not (backend == "cpu" and has_conv):
        found.insert(1, dataclasses.replace(found[0], shared_batch=not shared))
    unique = []
    for strategy in found:
        if strategy.lanes_per_program >= num_lanes:  # one group of all lanes: the same
            strategy = dataclasses.replace(strategy, lanes_per_program=0)
        if strategy not in unique:
            unique.append(strategy)
    return unique


class _Window:
    """A placed batch source whose epoch is `steps` steps long: a timed window."""

    def __init__(self, source, steps: int):
        self.source, self.steps_per_epoch = source, steps

    def __getattr__(self, name):
        return getattr(self.source, name)


def step_flops(lane_step, variables) -> float:
    """FLOPs of one lane's training step (forward and backward on a batch of m), as XLA
    estimates them from the lowered program, before compiling (0 where it cannot say).
    `variables`: the model's (abstract) variables."""
    images = jax.ShapeDtypeStruct((lane_step.batch_size,) + tuple(lane_step.image_shape),
                                  jnp.dtype(lane_step.input_dtype))
    stats = variables.get("batch_stats", {})

    def loss(params, stats, images):
        outputs, _ = lane_step.apply(params, stats, images, train=True,
                                     rngs={"dropout": jax.random.key(0)})
        return jnp.sum(outputs)  # (the loss itself costs next to nothing)

    try:
        cost = jax.jit(jax.grad(loss)).lower(variables["params"], stats, images
                                             ).cost_analysis()
    except Exception:  # (a backend or model XLA cannot estimate: no estimate)
        return 0.0
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float((cost or {}).get("flops", 0.0))


def optimistic_seconds(run_steps: int, flops_per_step: float, backend: str) -> float:
    """The least time a run of `run_steps` steps of `flops_per_step` (all lanes) could take
    here: at OPTIMISTIC_FLOPS, or STEP_FLOOR_SECONDS per step, whichever is longer."""
    speed = OPTIMISTIC_FLOPS.get(backend, OPTIMISTIC_FLOPS["gpu"])
    floor = STEP_FLOOR_SECONDS.get(backend, STEP_FLOOR_SECONDS["gpu"])
    return run_steps * max(flops_per_step / speed, floor)


@dataclasses.dataclass(frozen=True)
class StrategyTimer:
    """How `tuned_plan` times a candidate plan: `trainer_for(plan)` builds the trainer the
    run would train with (engine.LaneTrainer, compaction off); `seeds`, `hparams` and the
    unplaced batch `source` are the run's; `run_steps`: the steps of the whole run;
    `flops_per_step`: of all lanes (`step_flops` × K; 0: unknown)."""

    trainer_for: Callable
    seeds: jax.Array
    hparams: object  # lanes.LaneHparams
    source: object  # engine.batches.BatchSource
    run_steps: int
    flops_per_step: float = 0.0

    def _start(self, plan: ExecutionPlan, window_steps: int):
        """`plan`'s trainer started on windows of `window_steps` steps: (a function that runs
        n windows and returns the seconds they took, the window's steps)."""
        trainer = self.trainer_for(plan)
        # η̃ = 0: no lane diverges inside the window; the program is the same.
        hparams = self.hparams.replace(base_lr=jnp.zeros_like(self.hparams.base_lr))
        state, hparams, source = trainer.start(self.seeds, hparams, self.source)
        window = _Window(source, min(window_steps, source.steps_per_epoch))
        held = [state]

        def run(windows: int) -> float:
            begin = time.perf_counter()
            for _ in range(windows):
                held[0], _, _ = trainer.train_epoch(held[0], hparams, window, self.seeds,
                                                    self.run_steps)
            jax.block_until_ready(held[0])
            return time.perf_counter() - begin

        return run, window.steps_per_epoch

    def time(self, plan: ExecutionPlan, window_steps: int = WINDOW_STEPS,
             give_up_ms: float = math.inf) -> Timed:
        """`plan` timed on windows of `window_steps` steps; given up after one window when
        that is slower than `give_up_ms` per step."""
        started = time.perf_counter()
        try:
            run, steps = self._start(plan, window_steps)
            run(1)  # compiles
            once = run(1)
            if 1000 * once / steps > give_up_ms:
                times = [once]  # already far slower than the fastest: not worth repeats
            else:
                windows = max(1, math.ceil(MIN_REPEAT_SECONDS / max(once, 1e-9)))
                times = [run(windows) / windows for _ in range(REPEATS)]
        except (ValueError, RuntimeError, MemoryError) as error:  # (XLA's errors too)
            return Timed(plan.strategy, math.nan, time.perf_counter() - started,
                         f"{type(error).__name__}: {error}")
        ms = 1000 * float(np.median(times)) / steps
        return Timed(plan.strategy, ms, time.perf_counter() - started)

    def time_side_by_side(self, plans: list[ExecutionPlan], window_steps: int
                          ) -> list[Timed]:
        """The plans timed again together: each started and compiled, then `REPEATS` rounds
        in which each runs its windows in turn (A B C A B C …), so that a slow spell of the
        machine falls on all of them alike. Their seconds: the run-off's, shared equally.
        Raises what a plan raised (the caller keeps the earlier timings)."""
        started = time.perf_counter()
        runners, counts = [], []
        for plan in plans:  # (each holds its lanes' state until the end)
            run, steps = self._start(plan, window_steps)
            run(1)  # compiles
            counts.append(max(1, math.ceil(MIN_REPEAT_SECONDS / max(run(1), 1e-9))))
            runners.append((run, steps))
        times = [[] for _ in plans]
        for _ in range(REPEATS):
            for (run, _), count, timed in zip(runners, counts, times):
                timed.append(run(count) / count)
        seconds = (time.perf_counter() - started) / len(plans)
        return [Timed(plan.strategy, 1000 * float(np.median(timed)) / steps, seconds)
                for plan, timed, (_, steps) in zip(plans, times, runners)]


def cache_path(configured: str = "") -> str:
    """Where tuned choices are kept: `configured` (config.strategy.tune_cache), else
    $SMALLBATCH_JAX_CACHE or $XDG_CACHE_HOME (~/.cache) /smallbatch_jax/tuned_strategies.json."""
    if configured:
        return configured
    root = os.environ.get("SMALLBATCH_JAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "smallbatch_jax")
    return os.path.join(root, "tuned_strategies.json")


def cache_key(model_fingerprint: str, batch_size: int, num_lanes: int, num_seeds: int,
              precision: str, streamed: bool, memory_budget_bytes: int, devices) -> dict:
    """Everything that decides which strategy is fastest, readable (the cache stores it)."""
    device = devices[0]
    return {"model": model_fingerprint, "batch_size": batch_size, "num_lanes": num_lanes,
            "num_seeds": num_seeds, "precision": precision, "streamed": streamed,
            "memory_budget_bytes": memory_budget_bytes, "backend": device.platform,
            "device_kind": device.device_kind, "num_devices": len(devices),
            "jax": jax.__version__, "candidates": CANDIDATES_VERSION}


def model_fingerprint(description: str, variables) -> str:
    """A model's structure as tuning keys it: a description (its name, input shape and what
    else the step depends on) and the shapes and dtypes of its variables (an abstract tree,
    jax.eval_shape of its init)."""
    leaves = jax.tree_util.tree_flatten_with_path(variables)[0]
    shapes = [(jax.tree_util.keystr(path), tuple(leaf.shape), str(leaf.dtype))
              for path, leaf in leaves]
    text = json.dumps([description, shapes], default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def has_convolutions(variables) -> bool:
    """Whether a model's variables hold a convolution kernel (a 'kernel' of rank ≥ 3)."""
    leaves = jax.tree_util.tree_flatten_with_path(variables.get("params", variables))[0]
    return any(len(leaf.shape) >= 3 and "kernel" in jax.tree_util.keystr(path)
               for path, leaf in leaves)


class StrategyCache:
    """Tuned choices on disk: one JSON file, {hash of the key: {key, chosen, timings, date}},
    written whole under a lock (several processes may tune at once)."""

    def __init__(self, path: str):
        self.path = path

    @staticmethod
    def _hash(key: dict) -> str:
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                table = json.load(f)
            return table if isinstance(table, dict) else {}
        except (OSError, ValueError):
            return {}  # none yet, or unreadable: tune again (and rewrite it)

    def get(self, key: dict) -> Tuning | None:
        """The tuning stored for `key` (its outcome and timings), or None."""
        entry = self._read().get(self._hash(key))
        try:
            timings = tuple(Timed(Strategy(**t["strategy"]), math.nan if t["ms_per_step"] is None
                                  else float(t["ms_per_step"]), float(t["seconds"]),
                                  t.get("error", "")) for t in entry["timings"])
            return Tuning(entry["outcome"], Strategy(**entry["chosen"]), timings,
                          note=f"{self.path}, {entry.get('date', '?')}")
        except (TypeError, KeyError, ValueError):
            return None  # none, or from another version: tune again

    def put(self, key: dict, tuning: Tuning) -> None:
        import filelock  # (a declared dependency; imported where used)

        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            with filelock.FileLock(self.path + ".lock", timeout=60):
                table = self._read()
                table[self._hash(key)] = {"key": key, **tuning.as_json(),
                                          "date": time.strftime("%Y-%m-%d %H:%M:%S")}
                temporary = f"{self.path}.{os.getpid()}.tmp"
                with open(temporary, "w") as f:
                    json.dump(table, f, indent=1)
                os.replace(temporary, self.path)
        except (OSError, filelock.Timeout) as error:  # a read-only home: tune next time
            logging.warning("could not cache the tuned strategy in %s: %s", self.path, error)


def tune(plans: list[ExecutionPlan], timer: StrategyTimer, share: float,
         known: tuple[Timed, ...] = ()) -> Tuning:
    """Times the candidate plans in order while the tuning's cost stays within `share` of
    the run's estimated training time, then the closest few again side by side (`_runoff`);
    the fastest is chosen (the first, 'auto''s, where it is within KEEP_FIRST_WITHIN of the
    fastest). `known`: timings of earlier
    runs of the same key (the cache's, of a tuning that stopped early): not timed again."""
    started = time.perf_counter()
    timings = {t.strategy: t for t in known}
    note, spent = "", 0.0  # (this run's: the candidates it timed)
    for plan in plans:
        if plan.strategy in timings:
            continue
        finished = [t for t in timings.values() if not math.isnan(t.ms_per_step)]
        if finished:
            expected = float(np.mean([t.seconds for t in timings.values()]))
            run_seconds = min(t.ms_per_step for t in finished) / 1000 * timer.run_steps
            if spent + expected > share * run_seconds:
                note = (f"stopped with {len(timings)} of {len(plans)} candidates timed: the "
                        f"next would take this run's tuning past {share:.0%} of its "
                        f"~{run_seconds:.0f} s (tuning so far {spent:.1f} s); a longer run of "
                        "the same shape goes on from here")
                break
        if finished:  # windows of WINDOW_SECONDS at the fastest pace; the slow given up
            fastest_ms = min(t.ms_per_step for t in finished)
            timed = timer.time(plan, _window_steps(fastest_ms), GIVE_UP * fastest_ms)
        else:
            timed = timer.time(plan)
        timings[plan.strategy] = timed
        spent += timed.seconds
        logging.info("tuning %d/%d: %s: %s", len(timings), len(plans), plan.strategy,
                     timed.error or f"{timed.ms_per_step:.3f} ms/step")
    measured = [t for t in timings.values() if not math.isnan(t.ms_per_step)]
    if not measured:
        raise ValueError("strategy.preset='tune': no candidate strategy ran:\n"
                         + "\n".join(f"{t.strategy}: {t.error}" for t in timings.values()))
    runoff = _runoff(plans, timings, timer, share, spent)
    if runoff:
        timings.update({t.strategy: t for t in runoff[0]})
        note = "; ".join(filter(None, (note, runoff[1])))
    ordered = tuple(timings[p.strategy] for p in plans if p.strategy in timings)
    measured = [t for t in ordered if not math.isnan(t.ms_per_step)]
    # After a run-off its timings decide, between its contenders only: a candidate left out
    # of it was timed alone at another moment of the machine, not beside them (one timed
    # 134.0 ms alone beat the run-off's 134.5–160.8 and was chosen: docs/benchmarks.md).
    if runoff:
        contenders = {t.strategy for t in runoff[0]}
        measured = [t for t in measured if t.strategy in contenders]
    fastest = min(measured, key=lambda t: t.ms_per_step)
    first = ordered[0]  # 'auto''s choice
    chosen = (first if first in measured
              and first.ms_per_step <= (1 + KEEP_FIRST_WITHIN) * fastest.ms_per_step
              else fastest).strategy
    outcome = ("measured" if len(ordered) == len(plans) else
               "short" if len(ordered) == 1 else "partial")
    return Tuning(outcome, chosen, ordered, time.perf_counter() - started, note)


def _window_steps(fastest_ms: float) -> int:
    """Steps of a window after the first candidate: ~WINDOW_SECONDS at the fastest pace so
    far, at least MIN_WINDOW_STEPS, at most WINDOW_STEPS."""
    return max(MIN_WINDOW_STEPS, min(WINDOW_STEPS, math.ceil(1000 * WINDOW_SECONDS
                                                            / fastest_ms)))


def _runoff(plans: list[ExecutionPlan], timings: dict, timer: StrategyTimer, share: float,
            spent: float) -> tuple[list[Timed], str] | None:
    """The fastest candidates (at most RUNOFF_SIZE, within RUNOFF_WITHIN of the fastest)
    timed again side by side, as (their new timings, a note for the record), or None: one
    contender, a run-off whose expected cost (the contenders' first timings') would take the
    tuning past `share` of the run, or one that failed (logged; the first timings stand)."""
    by_strategy = {p.strategy: p for p in plans}
    ranked = sorted((t for t in timings.values()
                     if not math.isnan(t.ms_per_step) and t.strategy in by_strategy),
                    key=lambda t: t.ms_per_step)
    if len(ranked) < 2:
        return None
    fastest_ms = ranked[0].ms_per_step
    contenders = [t for t in ranked if t.ms_per_step <= RUNOFF_WITHIN * fastest_ms][:RUNOFF_SIZE]
    if len(contenders) < 2 or spent + sum(t.seconds for t in contenders) > (
            share * fastest_ms / 1000 * timer.run_steps):
        return None
    try:
        again = timer.time_side_by_side([by_strategy[t.strategy] for t in contenders],
                                        _window_steps(fastest_ms))
    except (ValueError, RuntimeError, MemoryError) as error:  # (e.g. out of memory with
        # several candidates' lanes held at once: the first timings stand)
        logging.info("tuning: the run-off failed (%s: %s); the first timings stand",
                     type(error).__name__, error)
        return None
    merged = [dataclasses.replace(t, seconds=first.seconds + t.seconds)
              for first, t in zip(contenders, again)]
    changes = "; ".join(f"{_fields(t.strategy)}: {first.ms_per_step:.3f} → "
                        f"{t.ms_per_step:.3f}" for first, t in zip(contenders, merged))
    logging.info("tuning: run-off, side by side (ms/step, first → side by side): %s", changes)
    return merged, (f"{len(merged)} fastest timed again side by side (ms/step, first → "
                    f"side by side: {changes})")


def _fields(strategy: Strategy) -> str:
    """A strategy by the fields it sets (the reference's defaults left out)."""
    default = Strategy()
    return ", ".join(f"{f.name}={getattr(strategy, f.name)}"
                     for f in dataclasses.fields(strategy)
                     if getattr(strategy, f.name) != getattr(default, f.name)) or "reference"


def tuned_plan(choice: StrategyChoice, auto: Strategy, plan_of: Callable, *,
               timer: StrategyTimer, model_fingerprint: str, has_conv: bool, num_seeds: int,
               num_lanes: int, batch_size: int, precision: str, streamed: bool,
               memory_budget_bytes: int, devices: list,
               resumed: Strategy | None = None) -> ExecutionPlan:
    """The plan of a run under strategy.preset='tune' (plan.make_plan's for that preset):
    its strategy measured here, or read from the cache, or `resumed` (the strategy a resumed
    run started with); the Tuning recorded on the plan. `auto`: 'auto''s choice, the first
    candidate; `plan_of(strategy, tuning)`: the plan of a strategy on these devices (raising
    ValueError where one lane is over the memory budget)."""
    if resumed is not None:
        logging.info("strategy.preset='tune': %s, the strategy this run started with (its "
                     "config.json), not tuned again", resumed)
        return plan_of(resumed, Tuning("resumed", resumed, note="the strategy this run "
                                       "started with (its config.json)"))
    key = cache_key(model_fingerprint, batch_size, num_lanes, num_seeds, precision, streamed,
                    memory_budget_bytes, devices)
    cache = StrategyCache(cache_path(choice.tune_cache))
    cached = cache.get(key)
    if cached is not None and cached.outcome == "measured":
        logging.info("strategy.preset='tune': %s, tuned before (%s)", cached.chosen,
                     cached.note)
        return plan_of(cached.chosen, dataclasses.replace(cached, outcome="cached"))
    backend = devices[0].platform
    least = optimistic_seconds(timer.run_steps, timer.flops_per_step, backend)
    if cached is None and timer.flops_per_step and choice.tune_share * least < (
            CANDIDATE_SECONDS.get(backend, CANDIDATE_SECONDS["gpu"])):
        note = (f"not tuned: the run is too short to repay it (at best ~{least:.1f} s here: "
                f"{timer.run_steps} steps of {timer.flops_per_step:.3g} FLOPs), 'auto''s "
                "choice kept")
        logging.info("strategy.preset='tune': %s", note)
        return plan_of(auto, Tuning("skipped", auto, note=note))
    plans = []
    for strategy in candidates(auto, backend, num_lanes, len(devices), has_conv, num_seeds):
        try:
            plans.append(plan_of(strategy))
        except ValueError as error:  # (one lane over the memory budget)
            logging.info("tuning: %s left out: %s", strategy, error)
    tuning = tune(plans, timer, choice.tune_share, cached.timings if cached else ())
    logging.info("strategy.preset='tune': chose %s in %.1f s%s\n%s", tuning.chosen,
                 tuning.seconds, f" ({tuning.note})" if tuning.note else "", tuning.summary())
    cache.put(key, tuning)
    chosen = next(p for p in plans if p.strategy == tuning.chosen)
    return dataclasses.replace(chosen, tuning=tuning)
