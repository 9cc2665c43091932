"""The prepared accelerator check: measure every candidate strategy, choose, then train Fig 1.

`run_gpu_check(config, outdir)` is what `python -m experiments.gpu_check` runs (configs/
gpu_check.py says what each section does). Device time is scarce (minutes per session), so:
- one deadline for the whole check, a budget per section, and candidates in priority order:
  what does not fit is skipped and said so, never silently;
- every figure lands in `outdir` as soon as it is measured (gpu_check.json and .md
  rewritten after each row or run; the sweeps' workdirs packed after each run), so a check
  cut off by its timeout still returns what it did, and every log line carries the seconds
  since the start;
- JAX's persistent compilation cache is on, and §a's lanes are built exactly as §b's sweep
  builds them (run.build.create_run, the same data shapes and steps per dispatch), so §b
  reuses §a's compiled programs, and a rerun on the same machine recompiles nothing.

Where the time goes is recorded, not guessed: per candidate, the compiled program's memory
and its HLO (grouped convolutions, cuDNN and cuBLAS calls, fusions, loops), and at a few m a
profile of one repeat summarized by kernel and by HLO op (`profile_summary`).
"""

import copy
import dataclasses
import gzip
import json
import math
import os
import re
import subprocess
import tarfile
import time

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
import optax

from smallbatch_jax import compilation_cache
from smallbatch_jax.data import load_dataset
from smallbatch_jax.diagnostics import benchmark
from smallbatch_jax.diagnostics.torch_baseline import (settings as torch_settings, torch_available,
                                                       torch_sequential_runner)
from smallbatch_jax.engine.plan import PRECISIONS
from smallbatch_jax.engine.strategy import Strategy, strategy_from_config, write_measured_table
from smallbatch_jax.models import create_model
from smallbatch_jax.run import results, train as lr_sweep
from smallbatch_jax.run.build import create_run, prepare
from smallbatch_jax.study.batch_sweep import batch_size_runs, report
from smallbatch_jax.study.sweep import config_for, is_complete, merge_until_stable

RECORD, TABLE, STRATEGY_TABLE = "gpu_check.json", "gpu_check.md", "strategy_table.json"
CACHE_ARCHIVE = "jax_cache.tar.gz"
# The full data set the estimate is for: the paper's Fig 1 on all of CIFAR-10.
FULL_NUM_TRAIN, FULL_EPOCHS, FULL_BATCH_SIZES = 50_000, 82, tuple(2**k for k in range(1, 12))


class Clock:
    """Seconds since the start, the deadline, and log lines that carry both."""

    def __init__(self, deadline_minutes: float):
        self.start = time.perf_counter()
        self.deadline = self.start + 60.0 * deadline_minutes

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def log(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f} s] {message}", flush=True)


@dataclasses.dataclass
class Budget:
    """A section's share of the check: until `minutes` after it began, or the deadline."""

    clock: Clock
    minutes: float
    began: float = dataclasses.field(default_factory=lambda: time.perf_counter())

    def left(self) -> float:
        return min(self.began + 60.0 * self.minutes - time.perf_counter(), self.clock.left())


def unpack_cache(archive: str, cache_dir: str) -> int:
    """Compiled programs of an earlier check (its OUTDIR/{CACHE_ARCHIVE}, carried back to the
    device) into `cache_dir`: on the same kind of device and jax they are served from there,
    so that a check's minutes go to measuring rather than compiling. Returns how many files."""
    if not (archive and cache_dir and os.path.isfile(archive)):
        return 0
    with tarfile.open(archive) as tar:
        members = [member for member in tar.getmembers() if member.isfile()]
        for member in members:
            # The archive holds one folder (pack()'s arcname): its files go into cache_dir.
            member.name = os.path.join(*member.name.split("/")[1:])
        tar.extractall(cache_dir, members=members, filter="data")
    return len(members)


def machine_description() -> dict:
    """The device, the software, the date: what a reader needs to place the figures."""
    device = jax.devices()[0]
    described = {"platform": device.platform, "device_kind": device.device_kind,
                 "num_devices": jax.device_count(), "jax": jax.__version__,
                 "jaxlib": jaxlib.__version__, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
                 "xla_flags": os.environ.get("XLA_FLAGS", "")}
    try:
        described["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
             "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return described


def parse_candidate(spec: str) -> Strategy:
    """"lanes/conv[/unrollN][/stepsN]" → the Strategy: scan iterations unrolled N steps at a
    time, N steps per dispatch (without: the timing's steps, set by `measure_row`)."""
    lanes, conv, *options = spec.split("/") + [""] * (spec.count("/") < 1)
    fields = {}
    for option in options:
        match = re.fullmatch(r"(unroll|steps)(\d+)", option)
        if not match:
            raise ValueError(f"candidate {spec!r}: expected 'lanes/conv[/unrollN][/stepsN]'")
        fields["scan_unroll" if match[1] == "unroll" else "steps_per_dispatch"] = int(match[2])
    return Strategy(lane_map=lanes, conv=conv, **fields)


def parse_candidate_spec(spec: str, precision: str) -> tuple[Strategy, str]:
    """"STRATEGY[@precision]" → (its Strategy, its precision; `precision` without a suffix),
    so that one list can time a strategy at both precisions side by side."""
    name, _, suffix = spec.partition("@")
    suffix = suffix or precision
    if suffix not in PRECISIONS:
        raise ValueError(f"candidate {spec!r}: precision {suffix!r} not in {PRECISIONS}")
    return parse_candidate(name), suffix


FLOPS_BATCH_SIZE = 8


def train_flops_per_example(model, image_shape, num_classes: int, device=None) -> float:
    """The model's forward and backward floating-point operations per training example, as
    XLA:CPU counts them (cost analysis of the gradient of the summed loss): with the step
    time, how far a lowering is from the device's arithmetic rate. Counted on the CPU
    (`device`: the first CPU device unless given) because XLA:GPU's count leaves out the
    convolutions it hands to cuDNN (reduced AlexNet: 3.0 MFLOP per example on an H100,
    against 60.5)."""
    cost = training_gradient_program(model, image_shape, num_classes, device).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / FLOPS_BATCH_SIZE


def training_gradient_program(model, image_shape, num_classes: int, device=None):
    """The gradient of the summed loss over FLOPS_BATCH_SIZE examples, compiled on `device`
    (the first CPU device unless given) whatever the default device: every argument is
    given as a shape placed there (a count needs no values: initializing the model eagerly
    took most of the count's 8 s on a CPU). (Closing over arrays made under
    `jax.default_device` left the arguments uncommitted: the GPU compiled it, and its count
    came back in runs 3, 5 and 6 of docs/gpu/2026-11-26-h100.)"""
    m = FLOPS_BATCH_SIZE
    device = device or jax.devices("cpu")[0]
    on_device = jax.sharding.SingleDeviceSharding(device)
    placed = lambda shape: jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=on_device)
    images = placed(jax.ShapeDtypeStruct((m,) + tuple(image_shape), jnp.float32))
    labels = placed(jax.ShapeDtypeStruct((m,), jnp.int32))
    variables = jax.tree.map(placed, jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1,) + tuple(image_shape)),
                           train=False)))
    params, others = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def loss(params, others, images, labels):
        logits = model.apply({**others, "params": params}, images, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

    return jax.jit(jax.grad(loss)).lower(params, others, images, labels).compile()


def hlo_stats(text: str) -> dict:
    """What a compiled program is made of, counted in its HLO text: where grouped
    convolutions, library calls, kernels (fusions) and loops come from."""
    groups = [int(g) for g in re.findall(r"feature_group_count=(\d+)", text)]
    return {
        "convolutions": len(re.findall(r"\bconvolution\(", text)),
        "grouped_convolutions": sum(g > 1 for g in groups),
        "cudnn_calls": len(re.findall(r'custom_call_target="__cudnn', text)),
        "cublas_calls": len(re.findall(r'custom_call_target="__cublas', text)),
        "dots": len(re.findall(r"\bdot\(", text)),
        "fusions": len(re.findall(r"=\s*\S+\s+fusion\(", text)),
        "while_loops": len(re.findall(r"\bwhile\(", text)),
    }


def profile_summary(trace_dir: str, top: int = 12) -> dict:
    """A jax.profiler trace (its perfetto_trace.json.gz) summarized: per device (or, without
    one, per host) process, the busy time (union of its events) and the events with the most
    total time. On a GPU, the 'Stream' threads hold the kernels and 'XLA Ops' the HLO ops they
    come from; both are summarized, never added together."""
    paths = [os.path.join(root, f) for root, _, files in os.walk(trace_dir) for f in files
             if f == "perfetto_trace.json.gz"]
    if not paths:
        return {"error": f"no perfetto_trace.json.gz under {trace_dir}"}
    with gzip.open(sorted(paths)[-1], "rt") as f:
        events = json.load(f)["traceEvents"]
    processes = {e["pid"]: e["args"]["name"] for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    device_pids = [pid for pid, name in processes.items() if name.startswith("/device:")]
    pids = device_pids or list(processes)

    def summarize(selected):
        totals, intervals = {}, []
        for e in selected:
            totals[e["name"]] = totals.get(e["name"], 0.0) + e["dur"]
            intervals.append((e["ts"], e["ts"] + e["dur"]))
        busy, end = 0.0, -math.inf
        for a, b in sorted(intervals):
            if b > end:
                busy += b - max(a, end)
                end = b
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
        return {"events": len(selected), "busy_ms": busy / 1e3,
                "span_ms": (max(b for _, b in intervals) - min(a for a, _ in intervals)) / 1e3
                if intervals else 0.0,
                "top": [{"name": name[:120], "total_ms": t / 1e3} for name, t in ranked]}

    summary = {}
    for pid in pids:
        timed = [e for e in events if e.get("ph") == "X" and e.get("pid") == pid and "dur" in e]
        by_thread = {}
        for e in timed:
            by_thread.setdefault(threads.get((pid, e.get("tid")), ""), []).append(e)
        streams = [e for name, es in by_thread.items() if name.startswith("Stream") for e in es]
        ops = by_thread.get("XLA Ops", [])
        summary[processes[pid]] = {
            "kernels": summarize(streams or timed),
            **({"hlo_ops": summarize(ops)} if ops else {}),
        }
    return summary


# ------------------------------------------------------------------------ §a throughput


def run_config_at(sweep, batch_size: int, precision: str, strategy: Strategy | None = None):
    """The lr_sweep config of `sweep` at m, with `strategy` given by hand (None: 'auto')."""
    config = copy.deepcopy(sweep)
    with config.unlocked():
        config.batch_size = batch_size
        config.precision = precision
        if strategy is not None:
            config.strategy.preset = "manual"
            for field, value in dataclasses.asdict(strategy).items():
                config.strategy[field] = value
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

    def dispatch(self, num_steps: int):
        """The first `num_steps` steps' batches of epoch 0."""
        return next(self.source.epoch(self.seeds, 0, [num_steps], lambda tree: tree))[1]


def timed_lanes(run_config, dataset, num_lanes: int) -> TimedLanes:
    """K lanes at η̃ = benchmark.timing_lr(m) (none diverges while timed), built as lr_sweep
    builds them for `run_config` (a manual strategy without lane groups, one device)."""
    with run_config.unlocked():
        run_config.base_lrs = (benchmark.timing_lr(run_config.batch_size),) * num_lanes
        run_config.weight_decay = benchmark.WEIGHT_DECAY
    run = create_run(prepare(run_config, dataset))
    grid, trainer, source = run.spec.grid, run.trainer, run.source
    if len(trainer.plan.devices) > 1 or trainer.plan.strategy.lanes_per_program:
        raise ValueError("lanes are timed all in one program on one device")
    seeds = jnp.asarray(grid.seeds, jnp.int32)
    state, hparams, source = trainer.start(seeds, grid.hparams(), source)
    return TimedLanes(trainer, source, seeds, state, hparams,
                      np.int32(run_config.epochs * source.steps_per_epoch))


def lanes_runner(run_config, dataset, num_lanes: int, timed_steps: int):
    """K lanes (timed_lanes) whose repeats each run `timed_steps` steps in dispatches of the
    strategy's steps_per_dispatch. Returns (first_call_s, first_call_steps, run) and what the
    program is made of (memory, HLO)."""
    timed = timed_lanes(run_config, dataset, num_lanes)
    trainer, source, plan = timed.trainer, timed.source, timed.trainer.plan
    per_dispatch = source.dispatch_lengths(plan.strategy, source.steps_per_epoch)[0]
    dispatch = timed.dispatch(per_dispatch)
    dispatches = -(-timed_steps // per_dispatch)
    arguments = lambda lanes: (lanes, timed.hparams, dispatch, timed.seeds, np.int32(0),
                               timed.total_steps)
    lanes, program = [timed.state.lanes], []

    def train(count):
        for _ in range(count):
            lanes[0], _ = program[0](*arguments(lanes[0]))
        jax.block_until_ready(lanes[0])
        if np.asarray(lanes[0].diverged).any():
            raise LaneDiverged("a lane diverged: skipped lanes would flatter the timing")

    start = time.perf_counter()
    # Compiled once, explicitly, to read its memory and HLO; the same program as the jitted
    # call's (the persistent cache serves that one).
    program.append(trainer.programs.train.lower(*arguments(lanes[0]),
                                                num_steps=per_dispatch).compile())
    train(1)
    first = time.perf_counter() - start
    if jax.config.jax_compilation_cache_dir:
        trainer.evaluate(lanes[0], source)  # §b's evaluation program, into the cache
    memory = program[0].memory_analysis()
    info = {"steps_per_dispatch": per_dispatch, "donate": plan.donate,
            "hlo": hlo_stats(program[0].as_text()),
            "program_mib": (memory.argument_size_in_bytes + memory.output_size_in_bytes
                            + memory.temp_size_in_bytes) / 2**20 if memory else None}

    def run():
        start = time.perf_counter()
        train(dispatches)
        return (time.perf_counter() - start) / (dispatches * per_dispatch)

    return (first, per_dispatch, run), info


def _device_memory() -> dict | None:
    stats = jax.local_devices()[0].memory_stats()
    if not stats:
        return None
    return {key: stats[key] / 2**20 for key in ("peak_bytes_in_use", "bytes_in_use",
                                                 "bytes_limit") if key in stats}


def measure_row(config, dataset, batch_size: int, candidates: dict, budget: Budget,
                clock: Clock, profile_dir: str | None) -> dict:
    """Baselines and every candidate that the budget allows at one m, interleaved.
    `candidates`: {name: (Strategy, precision)}."""
    tp = config.throughput
    m, k = batch_size, tp.num_lanes
    steps = max(tp.min_steps, tp.examples_per_lane // m)
    model = create_model(tp.model, dataset.num_classes)
    runners, row = {}, {"batch_size": m, "num_lanes": k, "steps": steps, "lanes": {},
                        "skipped": [], "diverged": []}

    def diverged(name):
        # The timed η̃ is stable at every m for the reference lowering (benchmark.timing_lr):
        # a candidate whose lanes diverge there is reported, never chosen, and the check goes
        # on with the others.
        row["diverged"].append(name)
        row["lanes"].pop(name, None)
        clock.log(f"m={m}: {name}: a lane diverged at η̃ = {benchmark.timing_lr(m)}; dropped")
        return float("nan")

    def guarded(name, run):
        def timed():
            if name in row["diverged"]:
                return float("nan")
            try:
                return run()
            except LaneDiverged:
                return diverged(name)
        return timed

    if tp.baselines:
        clock.log(f"m={m}: JAX baseline and packing limit")
        runners["baseline"] = benchmark.python_loop_runner(model, dataset, m, k, steps,
                                                           config.precision)
        runners["limit"] = benchmark.python_loop_runner(model, dataset, k * m, 1, steps,
                                                        config.precision)
    if tp.baselines and tp.torch and torch_available():
        import torch

        clock.log(f"m={m}: PyTorch eager baseline")
        params = model.init(jax.random.key(0), jnp.zeros((1,) + dataset.image_shape),
                            train=False)["params"]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        runners["torch"] = torch_sequential_runner(model, params, dataset, m, k, steps,
                                                   benchmark.timing_lr(m),
                                                   benchmark.WEIGHT_DECAY,
                                                   device)
    for name, (strategy, precision) in candidates.items():
        if budget.left() <= 0:
            row["skipped"].append(name)
            clock.log(f"m={m}: {name} skipped: the section's budget is spent")
            continue
        clock.log(f"m={m}: lanes {name} (precision {precision}): compiling")
        strategy = dataclasses.replace(strategy,
                                       steps_per_dispatch=strategy.steps_per_dispatch or steps)
        run_config = run_config_at(config.fig1, m, precision, strategy)
        run_config.model = tp.model
        try:
            (first, first_steps, run), info = lanes_runner(run_config, dataset, k, steps)
        except LaneDiverged:
            diverged(name)
            continue
        runners[name] = (first, first_steps, guarded(name, run))
        row["lanes"][name] = {**info, "precision": precision,
                              "strategy": dataclasses.asdict(strategy)}
    clock.log(f"m={m}: timing {len(runners)} methods, {tp.repeats} interleaved repeats")
    timings = benchmark.time_interleaved(runners, tp.repeats)
    for name in row["diverged"]:
        runners.pop(name, None)
        timings.pop(name, None)
    for name, timing in timings.items():
        figures = benchmark.step_figures(timing, k * m if name == "limit" else m,
                                     1 if name == "limit" else k)
        if name in row["lanes"]:
            row["lanes"][name].update(figures)
        else:
            row[name] = figures
    row["device_memory_mib"] = _device_memory()
    if profile_dir and m in tp.profile_batch_sizes and row["lanes"]:
        best = min(row["lanes"], key=lambda n: row["lanes"][n]["step_ms"])
        reference = next(iter(candidates))
        row["profile"] = {}
        for name in dict.fromkeys((best, reference)):
            if name not in runners:
                continue
            trace_dir = os.path.join(profile_dir, f"m{m}_{name.replace('/', '-')}")
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                runners[name][2]()
            row["profile"][name] = profile_summary(trace_dir)
    return row


def best_candidates(rows: list[dict], count: int, precision: str | None = None) -> list[str]:
    """The `count` candidates (at `precision`; None: any) with the lowest mean slowdown
    against each m's fastest of them, over the m where every one of them was timed."""
    names = [n for n in rows[0]["lanes"] if all(n in row["lanes"] for row in rows)
             and precision in (None, rows[0]["lanes"][n]["precision"])]

    def slowdown(name):
        return np.mean([row["lanes"][name]["step_ms"]
                        / min(row["lanes"][n]["step_ms"] for n in names) for row in rows])

    return sorted(names, key=slowdown)[:count]


def fastest_per_batch_size(rows: list[dict], precision: str) -> dict[int, tuple[str, dict]]:
    """Per m: the name and figures of the fastest lanes at `precision`."""
    chosen = {}
    for row in rows:
        at = {n: f for n, f in row["lanes"].items() if f["precision"] == precision}
        if at:
            name = min(at, key=lambda n: at[n]["step_ms"])
            chosen[row["batch_size"]] = (name, at[name])
    return chosen


def throughput_section(config, dataset, clock: Clock, record: dict, outdir: str,
                       save) -> str | None:
    """§a; returns the path of the measured strategy table (None if nothing was timed)."""
    tp = config.throughput
    budget = Budget(clock, tp.budget_minutes)
    section = record["throughput"] = {"rows": []}
    candidates = {spec: parse_candidate_spec(spec, config.precision) for spec in tp.candidates}
    profile_dir = os.path.join(config.workdir, "profiles")
    remaining = len(tp.batch_sizes_all) + len(tp.batch_sizes_best)

    def share() -> Budget:
        # Each m gets an equal share of what is left, so that no m is left without a
        # candidate because the first one's compilations took the whole section (the first
        # H100 run: 7 candidates at m = 2 took 2.5 of its 3 minutes, 78 s of it one compile).
        nonlocal remaining
        minutes = max(budget.left(), 0.0) / 60.0 / remaining
        remaining -= 1
        return Budget(clock, minutes)

    for m in tp.batch_sizes_all:
        section["rows"].append(measure_row(config, dataset, m, candidates, share(), clock,
                                           profile_dir))
        save()
    timed = [row for row in section["rows"] if row["lanes"]]
    if not timed:
        return None
    best = best_candidates(timed, tp.num_best, config.precision)
    section["best"] = best
    clock.log(f"best candidates over m = {tp.batch_sizes_all}: {best}")
    later = {name: candidates[name] for name in best}
    strategy, precision = candidates[best[0]]
    if precision != config.other_precision:
        later.setdefault(f"{best[0].partition('@')[0]}@{config.other_precision}",
                         (strategy, config.other_precision))
    for m in tp.batch_sizes_best:
        section["rows"].append(measure_row(config, dataset, m, later, share(), clock,
                                           profile_dir))
        save()
    chosen = fastest_per_batch_size(section["rows"], config.precision)
    section["chosen"] = {m: name for m, (name, _) in chosen.items()}
    path = os.path.join(outdir, STRATEGY_TABLE)
    write_measured_table(
        path, {m: Strategy(**figures["strategy"]) for m, (_, figures) in chosen.items()},
        device=record["machine"]["device_kind"], jax=jax.__version__,
        date=record["machine"]["date"], model=tp.model, num_lanes=tp.num_lanes,
        precision=config.precision, source="experiments.gpu_check (docs/benchmarks.md)")
    section["full_fig1_estimate"] = full_sweep_estimate(section["rows"], config.precision)
    if not pack(profile_dir, os.path.join(outdir, "profiles.tar.gz")):
        section["profiles_archive"] = "over the size limit: summaries only (above)"
    save()
    return path


def _interpolated_ms(measured: dict[int, float], m: int) -> float:
    """Step time at m from the measured m around it, linear in log m – log time; below the
    smallest measured m the same as there (small steps are latency-bound), above the largest
    proportional to m (large ones are compute-bound)."""
    if m in measured:
        return measured[m]
    below, above = [x for x in measured if x < m], [x for x in measured if x > m]
    if not below:
        return measured[min(above)]
    if not above:
        return measured[max(below)] * m / max(below)
    a, b = max(below), min(above)
    t = math.log(m / a) / math.log(b / a)
    return math.exp((1 - t) * math.log(measured[a]) + t * math.log(measured[b]))


def full_sweep_estimate(rows: list[dict], precision: str) -> dict:
    """The paper's whole Fig 1 grid (13 η̃ × m = 2 … 2048 × 82 epochs × 50,000 images) from
    the measured step times (interpolated between measured m; training only), for ours, the
    JAX sequential baseline and, where measured, PyTorch eager sequential runs; only for a
    series measured at two m or more."""
    series = {"ours": {m: f["step_ms"] for m, (_, f) in
                       fastest_per_batch_size(rows, precision).items()},
              "jax_sequential": {r["batch_size"]: r["baseline"]["step_ms"] for r in rows
                                 if "baseline" in r},
              "torch_sequential": {r["batch_size"]: r["torch"]["step_ms"] for r in rows
                                   if "torch" in r}}
    estimate = {"num_train": FULL_NUM_TRAIN, "epochs": FULL_EPOCHS, "minutes": {},
                "from_batch_sizes": {}}
    for name, measured in series.items():
        # One m says nothing about how the step time changes over three decades of m (a
        # check of m = 512 alone "estimated" m = 2's steps at m = 512's time: 28 hours).
        if len(measured) >= 2:
            estimate["from_batch_sizes"][name] = sorted(measured)
            estimate["minutes"][name] = sum(
                FULL_EPOCHS * (FULL_NUM_TRAIN // m) * _interpolated_ms(measured, m)
                for m in FULL_BATCH_SIZES) / 6e4
    return estimate


# ------------------------------------------------------------------------ §b and §c


def pack(directory: str, path: str, max_mib: float = 15.0,
         leave_out: tuple[str, ...] = ("state.msgpack", ".xplane.pb")) -> bool:
    """`directory` as a .tar.gz at `path`, replaced whole (a reader never sees half),
    without files ending in `leave_out` (a trained state: 25 MB per AlexNet m; raw
    profiles: their summaries are in the record). An archive over `max_mib` (what the
    device tool brings back) is not written; returns whether it was."""
    if not os.path.isdir(directory):
        return False
    skip = lambda info: None if info.name.endswith(leave_out) else info
    temporary = f"{path}.tmp{os.getpid()}"
    with tarfile.open(temporary, "w:gz") as tar:
        tar.add(directory, arcname=os.path.basename(directory), filter=skip)
    if os.path.getsize(temporary) > max_mib * 2**20:
        os.remove(temporary)
        return False
    os.replace(temporary, path)
    return True


# What a sweep run spends beyond its training steps, measured on an H100 (runs 5 and 8,
# docs/gpu): compiling its programs and the first epoch's other excess, 11–26 s per new
# program at TF32 (the timing's programs are not the sweep's, so the cache does not help);
# evaluating the test set each epoch, 5–21% of an epoch's training steps (more at large m,
# whose epochs are short).
COMPILE_SECONDS = 30.0
EVALUATION_FACTOR = 1.2


def run_seconds(measured_ms: dict[int, float], batch_size: int, steps_per_epoch: int,
                epochs: int, lane_fraction: float = 1.0) -> float:
    """A run's expected wall time from §a's step times (of `lane_fraction` as many lanes as
    the run has: fewer lanes cost less), evaluation and compilation included; 0 without a
    measurement."""
    if not measured_ms:
        return 0.0
    steps_seconds = (lane_fraction * epochs * steps_per_epoch
                     * _interpolated_ms(measured_ms, batch_size) / 1e3)
    return EVALUATION_FACTOR * steps_seconds + COMPILE_SECONDS


def sweep_until(run_config, workdir: str, budget: Budget, clock: Clock, archive: str,
                label: str, seconds=lambda m: 0.0) -> dict:
    """The batch sweep of `run_config` one m at a time (finished m are skipped, as
    batch_sweep does), each m only if its expected `seconds(m)` fit in the budget; merged,
    reported, and the workdir's parent packed into `archive` after each m. Returns the wall
    time per m and what was skipped."""
    runs = batch_size_runs(run_config)
    done = {"wall_seconds": {}, "skipped": []}
    for run in runs:
        if is_complete(workdir, run):
            continue
        expected = seconds(run.overrides["batch_size"])
        if budget.left() <= expected:
            done["skipped"].append(f"{run.name} (expected {expected:.0f} s, "
                                   f"{max(budget.left(), 0):.0f} s left)")
            continue
        clock.log(f"{label}: {run.name} ({run_config.epochs} epochs, expected {expected:.0f} s)")
        start = time.perf_counter()
        lr_sweep.train_and_evaluate(config_for(run_config, run), os.path.join(workdir, run.name))
        done["wall_seconds"][run.name] = time.perf_counter() - start
        merge_until_stable(workdir, runs,
                           lambda rows: report(workdir, rows, run_config.reliable_tolerance))
        pack(os.path.dirname(workdir), archive)
    if done["skipped"]:
        clock.log(f"{label}: skipped {done['skipped']}: the section's budget is spent")
    return done


def _expected_seconds(rows, precision: str, num_train: int, epochs: int, lane_fraction: float):
    """m → a sweep run's expected seconds, from §a's fastest lanes at `precision` (measured
    at every m; another precision's run costs about the same at small m, where steps are
    latency-bound), scaled by the run's share of §a's lanes."""
    measured = {m: f["step_ms"] for m, (_, f) in fastest_per_batch_size(rows, precision).items()}
    return lambda m: run_seconds(measured, m, num_train // m, epochs, lane_fraction)


def fig1_section(config, table_path: str, clock: Clock, record: dict, outdir: str, save):
    """§b: the whole grid at every m, then the other precision at a few m, then the
    extension below the grid at m ≥ 32, each while the budget lasts."""
    budget = Budget(clock, config.fig1_budget_minutes)
    section = record["fig1"] = {}
    root = os.path.join(config.workdir, "fig1")
    main = copy.deepcopy(config.fig1)
    other = copy.deepcopy(config.fig1)
    extension = copy.deepcopy(config.fig1)
    for sweep in (main, other, extension):
        with sweep.unlocked():
            sweep.strategy.table = table_path or ""
            sweep.precision = config.precision
    with other.unlocked():
        other.precision = config.other_precision
        other.batch_sizes = tuple(config.fig1_precision_batch_sizes)
    with extension.unlocked():
        extension.batch_sizes = tuple(config.fig1_extension_batch_sizes)
        extension.base_lrs = tuple(config.fig1_extension_lrs)
    rows = record.get("throughput", {}).get("rows", [])
    num_train = load_dataset(main.dataset, main.data_dir).num_train
    for name, sweep in (("grid", main), (f"precision_{config.other_precision}", other),
                        ("extension", extension)):
        if not sweep.batch_sizes:
            section[name] = {"skipped": "no batch sizes asked for"}
            continue
        seconds = _expected_seconds(rows, config.precision, num_train, sweep.epochs,
                                    len(sweep.base_lrs) / config.throughput.num_lanes)
        section[name] = sweep_until(sweep, os.path.join(root, name), budget, clock,
                                    os.path.join(outdir, "fig1.tar.gz"), f"Fig 1 {name}",
                                    seconds)
        save()


def fig8_section(config, table_path: str, clock: Clock, record: dict, outdir: str, save):
    """§c: ResNet-32 with BN and augmentation, as many epochs (the same at every m) as the
    time left allows, estimated from one timed dispatch per m."""
    fig8 = copy.deepcopy(config.fig8)
    with fig8.unlocked():
        fig8.strategy.table = table_path or ""
        fig8.precision = config.precision
    budget = Budget(clock, clock.left() / 60.0)
    section = record["fig8"] = {"epoch_seconds": {}}
    workdir = os.path.join(config.workdir, "fig8", "sweep")
    if all(is_complete(workdir, run) for run in batch_size_runs(fig8)):
        section["runs"] = "complete (an earlier check)"
        return
    dataset = load_dataset(fig8.dataset, fig8.data_dir)
    for m in fig8.batch_sizes:
        if budget.left() <= 0:
            break
        clock.log(f"Fig 8: timing m={m}")
        at_m = run_config_at(fig8, m, config.precision)
        # The sweep's own strategy, all lanes in one program (an estimate either way).
        strategy = dataclasses.replace(
            strategy_from_config(at_m, len(fig8.base_lrs), jax.default_backend(), 1),
            lanes_per_program=0)
        steps = strategy.dispatch_lengths(dataset.num_train // m)[0]
        runner, _ = lanes_runner(run_config_at(fig8, m, config.precision, strategy), dataset,
                                 len(fig8.base_lrs), steps)
        section["epoch_seconds"][m] = runner[2]() * (dataset.num_train // m)
    if not section["epoch_seconds"]:
        return
    save()
    epochs, expected = fig8_plan(section["epoch_seconds"], budget.left(),
                                 config.fig8_max_epochs)
    section["epochs"], section["expected_seconds"] = epochs, expected
    save()
    if epochs < 1:
        clock.log(f"Fig 8: not one epoch of every m fits in {budget.left():.0f} s; skipped")
        return
    with fig8.unlocked():
        fig8.epochs = epochs
        fig8.last_epochs = min(fig8.last_epochs, epochs)
        fig8.batch_sizes = tuple(section["epoch_seconds"])
    section["runs"] = sweep_until(fig8, workdir, budget, clock,
                                  os.path.join(outdir, "fig8.tar.gz"), "Fig 8",
                                  lambda m: expected[m])
    save()


def fig8_plan(epoch_seconds: dict[int, float], seconds_left: float,
              max_epochs: int) -> tuple[int, dict[int, float]]:
    """The epochs (the same at every m, as the paper compares m) that fit `seconds_left`
    when each m's epoch takes its timed `epoch_seconds` plus evaluation, and each m's run
    compiles anew; and each m's expected seconds at that length (sweep_until skips an m
    whose time is not left rather than have it cut off)."""
    compiling = COMPILE_SECONDS * len(epoch_seconds)
    per_epoch = EVALUATION_FACTOR * sum(epoch_seconds.values())
    epochs = int(min(max_epochs, max(seconds_left - compiling, 0.0) // per_epoch))
    return epochs, {m: EVALUATION_FACTOR * epochs * seconds + COMPILE_SECONDS
                    for m, seconds in epoch_seconds.items()}


# ------------------------------------------------------------------------ the check


def run_gpu_check(config, outdir: str) -> dict:
    """All three sections under the config's deadline; returns the record (also in
    outdir/gpu_check.json, with outdir/gpu_check.md for people)."""
    clock = Clock(config.deadline_minutes)
    os.makedirs(outdir, exist_ok=True)
    os.makedirs(config.workdir, exist_ok=True)  # a rerun skips the sweeps' finished runs
    compilation_cache.enable(config.cache_dir, min_compile_seconds=0.0)
    record = {"machine": machine_description(), "config": config.to_dict(),
              "cache_files_carried": unpack_cache(config.cache_archive, config.cache_dir)}
    if config.throughput.torch and torch_available():
        import torch

        record["machine"]["torch"] = torch_settings(
            "cuda" if torch.cuda.is_available() else "cpu")

    def save():
        record["elapsed_s"] = clock.elapsed()
        with results.replacing(os.path.join(outdir, RECORD)) as temporary, \
                open(temporary, "w") as f:
            json.dump(record, f, indent=1, default=str)
        with results.replacing(os.path.join(outdir, TABLE)) as temporary, \
                open(temporary, "w") as f:
            f.write(markdown(record))

    def pack_cache():
        # For the next check on this kind of device (carried back as config.cache_archive).
        if config.cache_dir and not pack(config.cache_dir, os.path.join(outdir, CACHE_ARCHIVE)):
            clock.log(f"the compilation cache is over {CACHE_ARCHIVE}'s size limit"
                      + (": the one packed earlier stays" if os.path.isfile(
                          os.path.join(outdir, CACHE_ARCHIVE)) else ": not returned"))

    clock.log(f"{record['machine']['device_kind']} ({record['machine']['platform']}), "
              f"jax {jax.__version__}; deadline {config.deadline_minutes} min; "
              f"{record['cache_files_carried']} compiled programs carried")
    save()
    if os.path.isfile(config.data_path):
        dataset = load_dataset("cifar10", config.data_path)
    else:
        clock.log(f"{config.data_path} is missing: §a on random images of its shapes, "
                  "§b and §c skipped")
        dataset = benchmark.synthetic_dataset((32, 32, 3), 10, 5085)
    record["train_flops_per_example"] = train_flops_per_example(
        create_model(config.throughput.model, dataset.num_classes), dataset.image_shape,
        dataset.num_classes)
    table_path = throughput_section(config, dataset, clock, record, outdir, save)
    pack_cache()
    if not os.path.isfile(config.data_path):
        record["fig1"] = record["fig8"] = {"skipped": f"no data at {config.data_path}"}
    else:
        fig1_section(config, table_path, clock, record, outdir, save)
        if clock.left() > 0:
            fig8_section(config, table_path, clock, record, outdir, save)
        else:
            record["fig8"] = {"skipped": "no minutes left"}
    pack_cache()
    save()
    clock.log(f"done; wrote {sorted(os.listdir(outdir))}")
    return record


# ------------------------------------------------------------------------ the report


def _speed(figures: dict | None) -> str:
    return "" if not figures else f"{figures['examples_lanes_per_s']:.0f}"


def _tflops(figures: dict, flops_per_example: float | None) -> str:
    """The arithmetic rate achieved: the model's training FLOPs per example × examples/s."""
    if not flops_per_example:
        return ""
    return f"{figures['examples_lanes_per_s'] * flops_per_example / 1e12:.3g}"


def markdown(record: dict) -> str:
    """The check for people: machine, throughput per m and method, the choice, the targets,
    the estimate, profiles, and the sweeps' progress."""
    machine = record["machine"]
    lines = [f"# GPU check: {machine['device_kind']}", "",
             f"jax {machine['jax']} (jaxlib {machine['jaxlib']}), {machine['date']}, "
             f"{machine['platform']} × {machine['num_devices']}"
             + (f"; PyTorch {machine['torch']['torch']}" if "torch" in machine else "")
             + f"; {record.get('elapsed_s', 0):.0f} s so far."
             + (f" The model's training step: {record['train_flops_per_example'] / 1e6:.1f} "
                "MFLOP per example (XLA's count)." if record.get("train_flops_per_example")
                else ""), ""]
    section = record.get("throughput", {})
    if section.get("rows"):
        lines += ["## Throughput (examples·lanes/s, medians of interleaved repeats)", "",
                  "| m | K | method | precision | examples·lanes/s | step ms | TFLOP/s | "
                  "compile s | program MiB | grouped convs | convs | cuDNN | cuBLAS | "
                  "fusions | loops |", "|" + "---|" * 15]
        flops = record.get("train_flops_per_example")
        for row in section["rows"]:
            for name in ("baseline", "limit", "torch"):
                if name in row:
                    f = row[name]
                    lines.append(f"| {row['batch_size']} | {row['num_lanes']} | {name} | | "
                                 f"{_speed(f)} | {f['step_ms']:.2f} | {_tflops(f, flops)} | "
                                 f"{f['compile_s']:.1f} | | | | | | | |")
            for name, f in row["lanes"].items():
                if "step_ms" not in f:
                    continue
                h = f["hlo"]
                lines.append(
                    f"| {row['batch_size']} | {row['num_lanes']} | lanes {name} | "
                    f"{f['precision']} | {_speed(f)} | {f['step_ms']:.2f} | "
                    f"{_tflops(f, flops)} | {f['compile_s']:.1f} | {f['program_mib'] or 0:.0f} | "
                    f"{h['grouped_convolutions']} | {h['convolutions']} | {h['cudnn_calls']} | "
                    f"{h['cublas_calls']} | {h['fusions']} | {h['while_loops']} |")
            if row["skipped"]:
                lines.append(f"| {row['batch_size']} | | skipped (budget): "
                             f"{', '.join(row['skipped'])} | | | | | | | | | | | | |")
            if row.get("diverged"):
                lines.append(f"| {row['batch_size']} | | diverged (dropped): "
                             f"{', '.join(row['diverged'])} | | | | | | | | | | | | |")
        lines += ["", "## Fastest lanes per m against the targets", "",
                  "| m | fastest | ours/JAX sequential (≥ 3 at m ≤ 8) | "
                  "ours/PyTorch eager (≥ 10 at m ≤ 8) | ours/limit time (≤ 1.3) | "
                  "device peak MiB |", "|---|---|---|---|---|---|"]
        precision = record["config"]["precision"]
        for m, (name, f) in fastest_per_batch_size(section["rows"], precision).items():
            row = next(r for r in section["rows"] if r["batch_size"] == m)
            ratio = lambda name: (f"{row[name]['step_ms'] / f['step_ms']:.2f}" if name in row
                                  else "not measured")
            memory = row.get("device_memory_mib") or {}
            limit = (f"{f['step_ms'] / row['limit']['step_ms']:.2f}" if "limit" in row
                     else "not measured")
            lines.append(f"| {m} | {name} | {ratio('baseline')} | {ratio('torch')} | {limit} | "
                         f"{memory.get('peak_bytes_in_use', float('nan')):.0f} |")
        estimate = section.get("full_fig1_estimate")
        if estimate and not estimate["minutes"]:
            lines += ["", "No estimate of the paper's whole Fig 1 grid: it needs step times "
                      "at two m or more."]
        elif estimate:
            lines += ["", f"Estimate of the paper's whole Fig 1 grid ({estimate['epochs']} "
                      f"epochs × {estimate['num_train']} images × m = 2 … 2048, 13 η̃; "
                      "training only, from the step times above): " + ", ".join(
                          f"{name} {minutes:.1f} min"
                          for name, minutes in estimate["minutes"].items()) + "."]
        profiles = [(row["batch_size"], name, p) for row in section["rows"]
                    for name, p in row.get("profile", {}).items()]
        if profiles:
            lines += ["", "## Profiles (one repeat)", ""]
        for m, name, summary in profiles:
            for process, parts in summary.items():
                if not isinstance(parts, dict):
                    continue
                kernels = parts["kernels"]
                lines.append(f"- m={m}, {name}, {process}: busy {kernels['busy_ms']:.1f} of "
                             f"{kernels['span_ms']:.1f} ms; top: " + "; ".join(
                                 f"{t['name'][:60]} {t['total_ms']:.2f} ms"
                                 for t in kernels["top"][:6]))
    for name in ("fig1", "fig8"):
        if name in record:
            lines += ["", f"## {name}", "", "```", json.dumps(record[name], indent=1,
                                                              default=str), "```"]
    return "\n".join(lines) + "\n"
