"""§a of the GPU check: the throughput of every candidate strategy, and the choice.

At every m of `throughput.batch_sizes_all`, each candidate that the m's share of the budget
allows is timed (timing.lanes_runner: K lanes built as §b's sweep builds them) side by side
with the JAX sequential baseline, the packing limit (the Python loop's, and the scanned one
in the lanes' own program shape), the PyTorch eager baseline and PyTorch's vmapped grid
(torch.func), in
interleaved repeats (`measure_row`); at `batch_sizes_best` only the best few. The fastest
strategy per m is written to strategy_table.json, which 'auto' then reads
(`throughput_section`).
"""

import dataclasses
import os

import jax
import jax.numpy as jnp

from smallbatch_jax.diagnostics.benchmark import python_loop_runner
from smallbatch_jax.diagnostics.candidates import (best_candidates, fastest_per_batch_size,
                                                   parse_candidate_spec)
from smallbatch_jax.diagnostics.estimates import full_sweep_estimate
from smallbatch_jax.diagnostics.machine import device_memory, pack
from smallbatch_jax.diagnostics.program_stats import profile_summary
from smallbatch_jax.diagnostics.timing import (WEIGHT_DECAY, Budget, Clock, LaneDiverged,
                                               lanes_runner, run_config_at,
                                               scanned_limit_runner, step_figures,
                                               time_interleaved, timing_lr)
from smallbatch_jax.diagnostics.torch_baseline import (torch_available, torch_sequential_runner,
                                                       torch_vmapped_runner)
from smallbatch_jax.engine.strategy import Strategy, write_measured_table
from smallbatch_jax.models import create_model

STRATEGY_TABLE = "strategy_table.json"


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
        # The timed η̃ is stable at every m for the reference lowering (timing_lr): a
        # candidate whose lanes diverge there is reported, never chosen, and the check goes
        # on with the others.
        row["diverged"].append(name)
        row["lanes"].pop(name, None)
        clock.log(f"m={m}: {name}: a lane diverged at η̃ = {timing_lr(m)}; dropped")
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
        runners["baseline"] = python_loop_runner(model, dataset, m, k, steps, config.precision)
        runners["limit"] = python_loop_runner(model, dataset, k * m, 1, steps, config.precision)
        # The true packing limit: one model on K·m in the lanes' own program shape.
        limit_config = run_config_at(config.fig1, k * m, config.precision, Strategy())
        limit_config.model = tp.model
        try:
            runners["limit_scanned"] = scanned_limit_runner(
                limit_config, dataset.image_shape, dataset.num_classes, steps)
        except LaneDiverged:
            clock.log(f"m={m}: the scanned limit diverged; left out")
    if tp.baselines and tp.torch and torch_available():
        import torch

        clock.log(f"m={m}: PyTorch eager baseline")
        params = model.init(jax.random.key(0), jnp.zeros((1,) + dataset.image_shape),
                            train=False)["params"]
        device = "cuda" if torch.cuda.is_available() else "cpu"
        runners["torch"] = torch_sequential_runner(model, params, dataset, m, k, steps,
                                                   timing_lr(m), WEIGHT_DECAY, device)
        clock.log(f"m={m}: PyTorch vmapped grid (torch.func)")
        runners["torch_vmap"] = torch_vmapped_runner(model, params, dataset, m,
                                                     [timing_lr(m)] * k, steps, WEIGHT_DECAY,
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
    timings = time_interleaved(runners, tp.repeats)
    for name in row["diverged"]:
        runners.pop(name, None)
        timings.pop(name, None)
    for name, timing in timings.items():
        limit = name in ("limit", "limit_scanned")
        figures = step_figures(timing, k * m if limit else m, 1 if limit else k)
        if name in row["lanes"]:
            row["lanes"][name].update(figures)
        else:
            row[name] = figures
    row["device_memory_mib"] = device_memory()
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


def throughput_section(config, dataset, clock: Clock, record: dict, outdir: str,
                       save) -> str | None:
    """§a; returns the path of the measured strategy table (None if nothing was timed)."""
    tp = config.throughput
    budget = Budget(clock, tp.budget_minutes)
    section = record["throughput"] = {"rows": []}
    candidates = {spec: parse_candidate_spec(spec, config.precision) for spec in tp.candidates}
    profile_dir = os.path.join(config.workdir, "profiles")
    remaining = len(tp.batch_sizes_all) + len(tp.batch_sizes_best)

    def measure(m: int, names: dict) -> None:
        # Each m gets an equal share of what is left, so that no m is left without a
        # candidate because the first one's compilations took the whole section (the first
        # H100 run: 7 candidates at m = 2 took 2.5 of its 3 minutes, 78 s of it one compile).
        nonlocal remaining
        share = Budget(clock, max(budget.left(), 0.0) / 60.0 / remaining)
        remaining -= 1
        section["rows"].append(measure_row(config, dataset, m, names, share, clock,
                                           profile_dir))
        save()

    for m in tp.batch_sizes_all:
        measure(m, candidates)
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
        measure(m, later)
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
