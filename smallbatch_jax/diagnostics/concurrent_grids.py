"""The η̃ grids of several m traced into one program: does the device run them at once?

On an H100 a step of 13 reduced-AlexNet lanes at m = 2 is a chain of ~90 small kernels that
leaves the GPU nearly idle (5 TFLOP/s; docs/gpu/2026-11-26-h100), and the small m cost most
of the paper's Fig 1 grid (m = 2 … 16: 23 of its ~35 minutes on full CIFAR-10). The grids of
different m share nothing, so in one program their kernels are independent: XLA:GPU may run
them concurrently (its command buffers, i.e. CUDA graphs, in CONCURRENT scheduling mode;
the default mode serializes independent kernels). If it does, the whole grid costs about
its slowest m instead of the sum over m.

This module builds that measurement: each m's grid as a function of its lanes and inputs
(`grid_steps`, the trainer's own training steps over a fixed number of examples per lane),
every grid alone and all of them in one jitted program, in two forms, timed side by side
(`time_grids`): `together` keeps each grid's loop over its steps (on an H100 the loops ran
one after another: 1.03×, docs/gpu/2026-11-27-h100); `interleaved` has one loop over rounds
whose body holds every grid's steps of the round, unrolled, as independent chains.
experiments/gpu_concurrency.py runs it under several XLA flag settings.
"""

import collections
import dataclasses
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from smallbatch_jax.diagnostics.candidates import parse_candidate
from smallbatch_jax.diagnostics.machine import carried_cifar10, machine_description
from smallbatch_jax.diagnostics.timing import (Clock, run_config_at, time_interleaved,
                                               timed_lanes, timed_runner)


@dataclasses.dataclass
class GridSteps:
    """`steps` training steps of one m's lanes: `run(lanes, inputs)` → (lanes, loss sums),
    traceable; `inputs` (hyperparameters, the dispatch with the data, seeds, step counters)
    are arguments, never constants of the program."""

    batch_size: int
    steps: int
    run: Callable
    lanes: object
    inputs: tuple
    # (num_steps, step_loop) → the trainer's traceable training steps (Programs.traceable_train)
    traceable: Callable


def grid_steps(run_config, dataset, num_lanes: int, examples_per_lane: int) -> GridSteps:
    """One m's grid (`run_config`, an lr_sweep config at that m with its strategy; lanes as
    timing.timed_lanes builds them) as GridSteps over `examples_per_lane` examples (at
    most one epoch)."""
    timed = timed_lanes(run_config, dataset, num_lanes)
    steps = max(1, min(examples_per_lane // run_config.batch_size,
                       timed.source.steps_per_epoch))
    train = timed.trainer.programs.traceable_train(steps)

    def run(lanes, inputs):
        hparams, dispatch, seeds, step, total = inputs
        return train(lanes, hparams, dispatch, seeds, step, total)

    return GridSteps(run_config.batch_size, steps, run, timed.state.lanes,
                     (timed.hparams, timed.dispatch(steps), timed.seeds, np.int32(0),
                      timed.total_steps), timed.trainer.programs.traceable_train)


def together(grids: list[GridSteps]):
    """One jitted program that trains every grid: nothing in it orders one grid's kernels
    after another's."""
    def program(all_lanes, all_inputs):
        return [grid.run(lanes, inputs)
                for grid, lanes, inputs in zip(grids, all_lanes, all_inputs)]

    return jax.jit(program)


def round_shares(grids: list[GridSteps], rounds: int) -> list[int]:
    """Each grid's steps per round when its steps are split into `rounds` rounds (0: as many
    rounds as the grid with the fewest steps has steps, one step of it per round)."""
    rounds = rounds or min(grid.steps for grid in grids)
    if any(grid.steps % rounds for grid in grids):
        raise ValueError(f"{rounds} rounds do not divide every grid's steps "
                         f"{[grid.steps for grid in grids]}")
    return [grid.steps // rounds for grid in grids]


def interleaved(grids: list[GridSteps], rounds: int = 0):
    """One jitted program, one loop over rounds (round_shares); each iteration runs every
    grid's next steps, traced one after another (no inner loop). One loop body then holds
    every grid's steps as independent chains, which XLA:GPU can schedule at once inside one
    command buffer (CONCURRENT mode); `together` leaves each grid its own loop, and a
    program's loops run one after another. Each grid trains as alone: round r's steps are
    steps r·k … r·k + k − 1 of its data and schedule."""
    shares = round_shares(grids, rounds)
    num_rounds = grids[0].steps // shares[0]
    trains = [grid.traceable(share, "unrolled") for grid, share in zip(grids, shares)]

    def program(all_lanes, all_inputs):
        def body(carry, r):
            out = []
            for train, k, (lanes, loss), inputs in zip(trains, shares, carry, all_inputs):
                hparams, dispatch, seeds, step, total = inputs
                dispatch = dispatch.replace(first_batch=dispatch.first_batch + r * k)
                lanes, round_loss = train(lanes, hparams, dispatch, seeds, step + r * k, total)
                out.append((lanes, loss + round_loss))
            return out, None

        start = [(lanes, jnp.zeros(inputs[0].base_lr.shape, jnp.float32))
                 for lanes, inputs in zip(all_lanes, all_inputs)]
        carry, _ = lax.scan(body, start, jnp.arange(num_rounds))
        return carry

    return jax.jit(program)


@dataclasses.dataclass
class CompiledGrids:
    """Every program of the measurement, compiled once: each grid's own ("m{m}") and the two
    of all grids ("together", and "interleaved" in `rounds`); the seconds each compile took."""

    grids: list[GridSteps]
    rounds: int
    programs: dict
    compile_s: dict


def compile_grids(grids: list[GridSteps], rounds: int = 0, log=print) -> CompiledGrids:
    """Each grid's own program, then `together` and `interleaved`, compiled and timed."""
    all_lanes, all_inputs = [g.lanes for g in grids], [g.inputs for g in grids]
    programs, compile_s = {}, {}
    for name, program, arguments in (
            *((f"m{g.batch_size}", jax.jit(g.run), (g.lanes, g.inputs)) for g in grids),
            ("together", together(grids), (all_lanes, all_inputs)),
            ("interleaved", interleaved(grids, rounds), (all_lanes, all_inputs))):
        start = time.perf_counter()
        programs[name] = program.lower(*arguments).compile()
        compile_s[name] = time.perf_counter() - start
    log(f"compiled: {', '.join(f'{k} {v:.1f} s' for k, v in compile_s.items())}")
    return CompiledGrids(grids, rounds, programs, compile_s)


def time_grids(compiled: CompiledGrids, repeats: int) -> dict:
    """Milliseconds per round (every grid through its examples) of: each grid alone (its own
    program), the sum of those, the grids' programs queued back to back before one wait
    ("queued": overlap across programs), and all in one program, each grid in its own loop
    ("together") and the grids' steps interleaved in one loop of rounds ("interleaved");
    medians of `repeats` interleaved repeats; compile seconds of each program. The programs
    start from the same lanes at every repeat."""
    grids, programs = compiled.grids, compiled.programs
    all_lanes, all_inputs = [g.lanes for g in grids], [g.inputs for g in grids]
    record = {"grids": [{"batch_size": g.batch_size, "steps": g.steps} for g in grids],
              "round_steps": round_shares(grids, compiled.rounds),
              "compile_s": dict(compiled.compile_s)}

    def run_alone(grid):
        program = programs[f"m{grid.batch_size}"]
        return lambda: jax.block_until_ready(program(grid.lanes, grid.inputs))

    def run_queued():
        jax.block_until_ready([programs[f"m{g.batch_size}"](g.lanes, g.inputs) for g in grids])

    def run_joint(name):
        return lambda: jax.block_until_ready(programs[name](all_lanes, all_inputs))

    def repeated(method):
        return lambda count: [method() for _ in range(count)]

    methods = {**{f"m{g.batch_size}": run_alone(g) for g in grids}, "queued": run_queued,
               "together": run_joint("together"), "interleaved": run_joint("interleaved")}
    # Each runner's first call is a warm-up (first runs allocate and load); a repeat is one
    # round.
    timings = time_interleaved({name: timed_runner(repeated(method), 1)
                                for name, method in methods.items()}, repeats)
    ms = {name: 1e3 * timing.median_step_s for name, timing in timings.items()}
    alone_ms = [ms[f"m{g.batch_size}"] for g in grids]
    record["ms"] = ms
    record["ms_repeats"] = {name: [1e3 * s for s in timing.step_s]
                            for name, timing in timings.items()}
    record["sum_alone_ms"], record["max_alone_ms"] = sum(alone_ms), max(alone_ms)
    # 1: no overlap; sum/max: the slowest grid hides every other one.
    record["speedup_together"] = sum(alone_ms) / ms["together"]
    record["speedup_interleaved"] = sum(alone_ms) / ms["interleaved"]
    record["speedup_queued"] = sum(alone_ms) / ms["queued"]
    record["speedup_ideal"] = sum(alone_ms) / max(alone_ms)
    return record


def same_training(compiled: CompiledGrids) -> dict[str, bool]:
    """For each program of every grid (`together`, `interleaved`), whether it trains each
    grid as the grid's own program does (the lanes and summed losses after the grid's steps;
    a check of the measurement's premise)."""
    grids, programs = compiled.grids, compiled.programs
    alone = [programs[f"m{grid.batch_size}"](grid.lanes, grid.inputs) for grid in grids]
    same = {}
    for name in ("together", "interleaved"):
        outputs = programs[name]([g.lanes for g in grids], [g.inputs for g in grids])
        pairs = zip(jax.tree.leaves(outputs), jax.tree.leaves(alone))
        same[name] = all(np.allclose(a, b, rtol=1e-5, atol=1e-6, equal_nan=True)
                         for a, b in pairs)
    return same


# ------------------------------------------------------------------ the check, per XLA flags


RECORD, TABLE = "concurrency.json", "concurrency.md"


def parse_variants(variants) -> dict[str, str]:
    """config.variants, ("name=XLA flags", ...), as {name: flags}, in order."""
    parsed = {}
    for variant in variants:
        name, sep, flags = variant.partition("=")
        if not sep or not name or name in parsed:
            raise ValueError(f"config.variants: {variant!r} is not a new 'name=XLA flags'")
        parsed[name] = flags.strip()
    return parsed


def run_variant(config, outdir: str, name: str) -> dict:
    """This process's measurement (its XLA_FLAGS set by run_check): every m of
    config.batch_sizes alone and together; written to outdir/variants/{name}.json."""
    log = Clock(config.deadline_minutes, name).log
    dataset = carried_cifar10(config.data_path, log, "random images of CIFAR-10's shapes")
    strategy = parse_candidate(config.candidate)
    grids = [grid_steps(run_config_at(config.sweep, m, config.precision, strategy), dataset,
                        config.num_lanes, config.examples_per_lane)
             for m in config.batch_sizes]
    record = {"variant": name, "machine": machine_description(),
              "precision": config.precision, "candidate": config.candidate,
              "num_lanes": config.num_lanes, "examples_per_lane": config.examples_per_lane}
    compiled = compile_grids(grids, config.rounds, log)  # first: its compile times are real
    record.update(time_grids(compiled, config.repeats))
    if config.check_same_training:
        record["same_training"] = same_training(compiled)
        log(f"each program of all grids trains each as alone: {record['same_training']}")
    log(f"ms: {', '.join(f'{k} {v:.2f}' for k, v in record['ms'].items())}; together "
        f"{record['speedup_together']:.2f}×, interleaved {record['speedup_interleaved']:.2f}× "
        f"the sum alone (ideal {record['speedup_ideal']:.2f}×)")
    os.makedirs(os.path.join(outdir, "variants"), exist_ok=True)
    with open(os.path.join(outdir, "variants", f"{name}.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


def run_check(config, outdir: str, child_command: list[str]) -> dict:
    """Every variant of config.variants in its own process (XLA reads its flags once, at
    start), `child_command + ['--variant=NAME']`, while config.deadline_minutes last; a
    variant that fails (an unknown flag, a crash) or runs out of time is recorded, not
    fatal. Writes outdir/concurrency.json and concurrency.md; returns the record."""
    os.makedirs(outdir, exist_ok=True)
    clock = Clock(config.deadline_minutes)
    record = {"variants": {}, "failed": {}}
    for name, flags in parse_variants(config.variants).items():
        left = clock.left()
        if left < 30.0:
            record["failed"][name] = f"not run: {max(left, 0):.0f} s left"
            continue
        env = {**os.environ,
               "XLA_FLAGS": " ".join(f for f in (os.environ.get("XLA_FLAGS", ""), flags) if f)}
        print(f"variant {name}: XLA_FLAGS={env['XLA_FLAGS']!r}", flush=True)
        tail, path = collections.deque(maxlen=20), os.path.join(outdir, "variants", f"{name}.json")
        with subprocess.Popen(child_command + [f"--variant={name}"], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as child:
            timer = threading.Timer(left, child.kill)  # the deadline holds inside a variant too
            timer.start()
            for line in child.stdout:
                print(line, end="", flush=True)
                tail.append(line)
            timer.cancel()
        if child.returncode == 0 and os.path.isfile(path):
            with open(path) as f:
                record["variants"][name] = json.load(f)
        else:
            record["failed"][name] = (f"exit {child.returncode}: " + "".join(tail)[-1500:])
        _write(outdir, record)
    _write(outdir, record)
    return record


def _write(outdir: str, record: dict) -> None:
    with open(os.path.join(outdir, RECORD), "w") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(outdir, TABLE), "w") as f:
        f.write(markdown(record))


def markdown(record: dict) -> str:
    """The variants side by side: ms per round of each m alone, their sum, queued, together,
    interleaved (a record from before `interleaved` existed shows "–" there)."""
    lines = ["# Grids of several m in one program", ""]
    variants = record["variants"]
    if variants:
        first = next(iter(variants.values()))
        machine, names = first["machine"], [f"m{g['batch_size']}" for g in first["grids"]]
        steps = ", ".join(f"m = {g['batch_size']}: {g['steps']} steps" for g in first["grids"])
        if "round_steps" in first:
            steps += "; interleaved: " + ", ".join(
                f"{k}" for k in first["round_steps"]) + " steps per round"
        lines += [f"{machine['device_kind']} ({machine['platform']}), jax {machine['jax']}, "
                  f"{machine['date']}; {first['num_lanes']} lanes per m, "
                  f"{first['examples_per_lane']} examples per lane per round ({steps}), "
                  f"{first['candidate']}, precision {first['precision']}. Milliseconds per "
                  "round, medians of interleaved repeats; speed-up: the sum of the m alone "
                  "over the time (1: no overlap; ideal: the slowest m alone).", "",
                  "| variant | XLA flags | " + " | ".join(f"m = {n[1:]}" for n in names)
                  + " | sum | queued | together | together speed-up | interleaved "
                  "| interleaved speed-up | ideal | compile together, interleaved (s) |",
                  "|" + "---|" * (len(names) + 10)]
        for name, v in variants.items():
            ms, flags = v["ms"], v["machine"]["xla_flags"] or "(none)"
            number = lambda x, form: "–" if x is None else format(x, form)
            lines.append(
                f"| {name} | `{flags}` | " + " | ".join(f"{ms[n]:.2f}" for n in names)
                + f" | {v['sum_alone_ms']:.2f} | {ms['queued']:.2f} | {ms['together']:.2f} | "
                f"{v['speedup_together']:.2f}× | {number(ms.get('interleaved'), '.2f')} | "
                f"{number(v.get('speedup_interleaved'), '.2f')}× | "
                f"{v['speedup_ideal']:.2f}× | {v['compile_s']['together']:.1f}, "
                f"{number(v['compile_s'].get('interleaved'), '.1f')} |")
    for name, why in record["failed"].items():
        lines += ["", f"- {name}: {why.strip()}"]
    return "\n".join(lines) + "\n"
