"""§b and §c of the GPU check: the paper's Fig 1 and Fig 8, trained while the time lasts.

Each figure is a batch sweep (study.sweep.run_sweep) that starts an m only where its expected
time (estimates.py, from §a's step times) fits the section's budget, and packs the sweep's
workdir for the device tool after each m (`sweep_until`): a check cut off by its timeout
still returns every m it finished. §b (`fig1_section`) is the whole grid at every m, then the
other precision at a few m, then the extension below the grid; §c (`fig8_section`) is
ResNet-32 with BN and augmentation for as many epochs as the minutes left allow.
"""

import copy
import dataclasses
import os
import time

import jax

from smallbatch_jax.data import load_dataset
from smallbatch_jax.diagnostics.estimates import expected_seconds, fig8_plan
from smallbatch_jax.diagnostics.machine import pack
from smallbatch_jax.engine.plan import dispatch_lengths
from smallbatch_jax.diagnostics.timing import Budget, Clock, lanes_runner, run_config_at
from smallbatch_jax.run.config_checks import strategy_choice
from smallbatch_jax.study.batch_sweep import batch_size_runs, report
from smallbatch_jax.study.sweep import is_complete, merge_until_stable, run_sweep


def sweep_until(run_config, workdir: str, budget: Budget, clock: Clock, archive: str,
                label: str, seconds=lambda m: 0.0) -> dict:
    """The batch sweep of `run_config` (run_sweep: finished m are skipped, as batch_sweep
    does), each m only if its expected `seconds(m)` fit in the budget; merged, reported, and
    the workdir's parent packed into `archive` after each m. Returns the wall time per m,
    what was skipped, and why the sweep was refused if it was (e.g. finished runs of another
    config in the workdir)."""
    runs = batch_size_runs(run_config)
    reported = lambda rows: report(workdir, rows, run_config.reliable_tolerance)
    done, started = {"wall_seconds": {}, "skipped": []}, {}

    def may_start(run, spec) -> bool:
        expected = seconds(spec.batch_size)
        if budget.left() <= expected:
            done["skipped"].append(f"{run.name} (expected {expected:.0f} s, "
                                   f"{max(budget.left(), 0):.0f} s left)")
            return False
        clock.log(f"{label}: {run.name} ({spec.schedule.epochs} epochs, expected "
                  f"{expected:.0f} s)")
        started[run.name] = time.perf_counter()
        return True

    def after_run(run) -> None:
        done["wall_seconds"][run.name] = time.perf_counter() - started[run.name]
        if not all(is_complete(workdir, r) for r in runs):  # (the last: run_sweep merges)
            merge_until_stable(workdir, runs, reported)
            pack(os.path.dirname(workdir), archive)

    try:
        run_sweep(run_config, runs, workdir, reported, may_start=may_start,
                  after_run=after_run)
    except ValueError as error:
        done["refused"] = str(error)
        clock.log(f"{label}: refused: {error}")
    if done["wall_seconds"]:
        pack(os.path.dirname(workdir), archive)
    if done["skipped"]:
        clock.log(f"{label}: skipped {done['skipped']}: the section's budget is spent")
    return done


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
        seconds = expected_seconds(rows, config.precision, num_train, sweep.epochs,
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
            strategy_choice(at_m.strategy).resolve(at_m.batch_size, len(fig8.base_lrs),
                                                   jax.default_backend(), 1),
            lanes_per_program=0)
        steps = dispatch_lengths(dataset.num_train // m, strategy.steps_per_dispatch)[0]
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
