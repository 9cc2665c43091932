"""Throughput of the lane trainer, side by side with what a user would otherwise run.

Three ways to train K models of batch size m on the same model and data:

1. baseline: K sequential runs, each a jitted train step called from a Python loop with
   batches sliced on the host (the shape of Flax's own examples);
2. lanes: this project's trainer with K lanes, under each strategy asked for ('auto' is
   what a user gets: "ours");
3. limit: one model trained on batches of K·m in the baseline's loop. K lanes do K times the
   work of one model on m examples with K different weights; sharing one batch of K·m
   examples through one set of weights is the most that packing can reach. That loop slices
   on the host and dispatches every step, which at small m is most of its time: the
   scanned limit ("limit scan", timing.scanned_limit_runner) runs the same one model on K·m
   in the lanes' own program shape (data on the device, an epoch per dispatch), the true
   packing limit; "ours/scan" compares with it.

Throughput is examples × lanes per second. Each timing is the median over `repeats` after a
first call, whose time (compilation plus one run) is reported separately. Repeats of the
methods are interleaved, so that a noisy machine's drift affects all of them alike
(timing.py: the runners, the repeats, and the lanes, built as a run of configs/common.py
builds them).
"""

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from smallbatch_jax.data import Dataset, model_input_dtype
from smallbatch_jax.diagnostics.estimates import format_estimate, sweep_estimate
from smallbatch_jax.diagnostics.timing import (WEIGHT_DECAY, Timing, common_run_config,
                                               epoch_runner, scanned_limit_runner,
                                               step_figures, synthetic_dataset,
                                               time_interleaved, timed_lanes, timed_runner,
                                               timing_lr)
from smallbatch_jax.engine import cross_entropy, plan_for, standardize
from smallbatch_jax.engine.plan import COMPUTE_DTYPES
from smallbatch_jax.engine.step import cast_floating
from smallbatch_jax.engine.strategy import PRESETS, Strategy, choose_strategy
from smallbatch_jax.engine.tune import has_convolutions
from smallbatch_jax.models import create_model
from smallbatch_jax.optim import paper_sgd


def _plain_train_step(model, batch_size: int, total_steps: int, precision: str = "default"):
    """A jitted train step as a user writes it: one model, one batch, state in and out;
    matrix products at `precision` (engine/plan.py PRECISIONS), as the lanes they are
    compared with ('bf16': the model computed in bfloat16 on float32 parameters, as
    mixed-precision training is usually written)."""
    tx = paper_sgd(timing_lr(batch_size), batch_size, total_steps, weight_decay=WEIGHT_DECAY)
    matmul = None if precision in ("default", *COMPUTE_DTYPES) else precision
    dtype = jnp.dtype(COMPUTE_DTYPES.get(precision, "float32"))

    @jax.jit
    def step(params, batch_stats, opt_state, images, labels, mean, std):
        if matmul is None:
            return _step(params, batch_stats, opt_state, images, labels, mean, std)
        with jax.default_matmul_precision(matmul):
            return _step(params, batch_stats, opt_state, images, labels, mean, std)

    def _step(params, batch_stats, opt_state, images, labels, mean, std):
        def loss_fn(params):
            x = cast_floating(standardize(images, mean, std), dtype)
            params = cast_floating(params, dtype)
            rngs = {"dropout": jax.random.key(0)}  # (models with Dropout; a fixed key)
            if batch_stats:
                logits, updated = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                              train=True, mutable=["batch_stats"], rngs=rngs)
                return (cross_entropy(logits.astype(jnp.float32), labels).mean(),
                        updated["batch_stats"])
            logits = model.apply({"params": params}, x, train=True, rngs=rngs)
            return cross_entropy(logits.astype(jnp.float32), labels).mean(), {}

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss

    return step, tx


def python_loop_runner(model, dataset: Dataset, batch_size: int, num_runs: int, steps: int,
                       precision: str = "default"):
    """`num_runs` sequential runs of `steps` jitted steps, batches sliced on the host.

    Returns (first_call_s, first_call_steps, run) where `run()` times one repeat: seconds
    per step of all runs.
    """
    step, tx = _plain_train_step(model, batch_size, steps, precision)
    dummy = jnp.zeros((1,) + dataset.image_shape, model_input_dtype(dataset))
    variables = model.init(jax.random.key(0), dummy, train=False)
    images, labels = dataset.train_images, dataset.train_labels
    order = np.random.default_rng(0).permutation(len(labels))

    def train(num_steps):
        for _ in range(num_runs):
            params, batch_stats = variables["params"], variables.get("batch_stats", {})
            opt_state = tx.init(params)
            for s in range(num_steps):
                idx = np.take(order, np.arange(s * batch_size, (s + 1) * batch_size), mode="wrap")
                params, batch_stats, opt_state, _ = step(
                    params, batch_stats, opt_state, images[idx], labels[idx], dataset.mean,
                    dataset.std)
            jax.block_until_ready(params)

    return timed_runner(train, steps)  # its first call compiles


def lanes_runner(model: str, dataset: Dataset, batch_size: int, num_lanes: int,
                 strategy: Strategy):
    """The lane trainer of built-in `model` under `strategy`, on the devices a sweep would use
    (engine/plan.py): timing.epoch_runner, one repeat one epoch of `dataset` (= the measured
    steps)."""
    return epoch_runner(common_run_config(model, batch_size, strategy), dataset, num_lanes)


def tuned_strategy(model: str, dataset: Dataset, batch_size: int, num_lanes: int,
                   cache: str) -> tuple[Strategy, dict]:
    """What strategy.preset='tune' chooses for `model`'s K lanes at m (engine/tune.py):
    every candidate timed (a share of 1 of a long run), or read from `cache`; and the
    tuning's record (its candidates' timings and cost)."""
    # (A run long enough that every candidate fits in its share.)
    config = common_run_config(model, batch_size, Strategy(), epochs=10**7)
    with config.unlocked():
        config.strategy.update(preset="tune", tune_share=1.0, tune_cache=cache)
    plan = timed_lanes(config, dataset, num_lanes).trainer.plan
    return plan.strategy, plan.tuning.as_json()


def model_has_convolutions(model: str, dataset: Dataset, num_classes: int) -> bool:
    """Whether `model` (built in or imported) has convolutions: what 'auto' decides by on a
    CPU (engine/strategy.py)."""
    net = create_model(model, num_classes)
    dummy = jnp.zeros((1,) + dataset.image_shape, model_input_dtype(dataset))
    return has_convolutions(jax.eval_shape(
        lambda: net.init(jax.random.key(0), dummy, train=False)))


def time_python_loop(model, dataset: Dataset, batch_size: int, num_runs: int, steps: int,
                     repeats: int) -> Timing:
    runner = python_loop_runner(model, dataset, batch_size, num_runs, steps)
    return time_interleaved({"loop": runner}, repeats)["loop"]


def time_lanes(model: str, dataset: Dataset, batch_size: int, num_lanes: int,
               strategy: Strategy, repeats: int) -> Timing:
    runner = lanes_runner(model, dataset, batch_size, num_lanes, strategy)
    return time_interleaved({"lanes": runner}, repeats)["lanes"]


def scanned_limit_conv(backend: str, has_conv: bool) -> str:
    """The convolution the scanned limit is timed under: XLA's, except a CNN's on a CPU:
    patches there, where XLA's convolution inside the scan took 12-31x as long in every zoo
    model measured side by side (docs/benchmarks.md, "The scanned limit's convolution on a
    CPU"; both used to be timed, the faster kept, and XLA's was most of a slow model's row).
    Without convolutions the setting changes nothing."""
    return "patches" if backend == "cpu" and has_conv else "xla"


def measure(model: str, image_shape, num_classes: int, batch_size: int, num_lanes: int,
            steps: int, repeats: int, strategies: dict[str, Strategy],
            input_kind: str = "images", has_conv: bool = True) -> dict:
    """Baseline, limit and lanes (each strategy) for one (m, K) of `model` (built in or
    imported); one row of the table. The baselines use XLA's convolution layer; `has_conv`:
    whether the model has convolutions (`scanned_limit_conv`)."""
    baseline_model = create_model(model, num_classes)
    m, k = batch_size, num_lanes
    dataset = synthetic_dataset(image_shape, num_classes, max(m * steps, k * m),
                                input_kind=input_kind)
    lanes_data = synthetic_dataset(image_shape, num_classes, m * steps, input_kind=input_kind)
    runners = {"baseline": python_loop_runner(baseline_model, dataset, m, k, steps),
               "limit": python_loop_runner(baseline_model, dataset, k * m, 1, steps)}
    conv = scanned_limit_conv(jax.default_backend(), has_conv)
    runners["limit_scanned"] = scanned_limit_runner(
        common_run_config(model, k * m, Strategy(conv=conv)), image_shape, num_classes,
        steps, input_kind)
    for name, strategy in strategies.items():
        runners[f"lanes:{name}"] = lanes_runner(model, lanes_data, m, k, strategy)
    timings = time_interleaved(runners, repeats)
    row = {"batch_size": m, "num_lanes": k, "steps": steps,
           "baseline": step_figures(timings["baseline"], m, k),
           "limit": step_figures(timings["limit"], k * m, 1),
           "limit_scanned": {**step_figures(timings["limit_scanned"], k * m, 1),
                             "conv": conv}, "lanes": {}}
    for name, strategy in strategies.items():
        row["lanes"][name] = {**step_figures(timings[f"lanes:{name}"], m, k),
                              "strategy": dataclasses.asdict(strategy),
                              "devices": len(plan_for(strategy, k).devices)}
    return row


def ratios(row: dict, ours: str) -> tuple[float, float]:
    """(speed-up of ours over the baseline, ours' step time over the limit's)."""
    ours_ms = row["lanes"][ours]["step_ms"]
    return row["baseline"]["step_ms"] / ours_ms, ours_ms / row["limit"]["step_ms"]


def scanned_ratio(row: dict, ours: str) -> float:
    """Ours' step time over the scanned limit's (NaN for a row measured without it)."""
    if "limit_scanned" not in row:
        return float("nan")
    return row["lanes"][ours]["step_ms"] / row["limit_scanned"]["step_ms"]


def _table_cells(rows: list[dict], ours: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the throughput table (see `format_table`)."""
    names = list(rows[0]["lanes"])
    header = ["m", "K", "steps", "baseline", "limit", "limit scan", *names, "base/ours",
              "ours/limit", "ours/scan", "compile ours (s)"]
    body = []
    for row in rows:
        speedup, over_limit = ratios(row, ours)
        scanned = row.get("limit_scanned", {}).get("examples_lanes_per_s")
        over_scanned = scanned_ratio(row, ours)
        body.append([str(row["batch_size"]), str(row["num_lanes"]), str(row["steps"]),
                     f"{row['baseline']['examples_lanes_per_s']:.0f}",
                     f"{row['limit']['examples_lanes_per_s']:.0f}",
                     "—" if scanned is None else f"{scanned:.0f}",
                     *(f"{row['lanes'][n]['examples_lanes_per_s']:.0f}" for n in names),
                     f"{speedup:.2f}", f"{over_limit:.2f}",
                     "—" if scanned is None else f"{over_scanned:.2f}",
                     f"{row['lanes'][ours]['compile_s']:.1f}"])
    return header, body


def format_table(rows: list[dict], ours: str) -> str:
    """Throughput per method and the two ratios of `ratios`, one line per (m, K)."""
    header, body = _table_cells(rows, ours)
    widths = [max(len(cell) for cell in column) for column in zip(header, *body)]
    line = lambda cells: " ".join(cell.rjust(w) for cell, w in zip(cells, widths))
    return "\n".join(["throughput in examples·lanes/s (medians); ratios are of step times",
                      line(header), *map(line, body)])


def run_throughput(config, workdir: str) -> list[dict]:
    """Every (m, K) of the config; prints the table, writes throughput.json after each row
    (a long benchmark that is stopped keeps what it measured)."""
    backend = jax.default_backend()
    os.makedirs(workdir, exist_ok=True)
    record = {"config": config.to_dict(), "backend": backend,
              "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M"), "rows": []}
    has_conv = model_has_convolutions(config.model, synthetic_dataset(
        tuple(config.image_shape), config.num_classes, 2, input_kind=config.input_kind),
        config.num_classes)
    for m in config.batch_sizes:
        for k in config.num_lanes:
            steps = max(config.min_steps, config.examples_per_lane // m)
            strategies, tuning = {}, None
            for name in config.strategies:
                if name == "auto":
                    strategies[name] = choose_strategy(backend, m, k, jax.local_device_count(),
                                                       has_conv=has_conv)
                elif name == "tune":  # (timed before the row, its cost not in it)
                    strategies[name], tuning = tuned_strategy(
                        config.model, synthetic_dataset(tuple(config.image_shape),
                                                        config.num_classes, m * steps,
                                                        input_kind=config.input_kind),
                        m, k, os.path.join(workdir, "tuned_strategies.json"))
                else:
                    strategies[name] = PRESETS[name]
            row = measure(config.model, tuple(config.image_shape), config.num_classes, m, k,
                          steps, config.repeats, strategies, config.input_kind, has_conv)
            if tuning is not None:
                row["lanes"]["tune"]["tuning"] = tuning
            record["rows"].append(row)
            with open(os.path.join(workdir, "throughput.json"), "w") as f:
                json.dump(record, f, indent=2)
            print(format_table([row], ours=config.strategies[0]).splitlines()[-1], flush=True)
    print(format_table(record["rows"], ours=config.strategies[0]))
    if config.sweep_epochs:
        record["sweep_estimate"] = sweep_estimate(record["rows"], config.strategies[0],
                                                  config.sweep_num_train, config.sweep_epochs)
        with open(os.path.join(workdir, "throughput.json"), "w") as f:
            json.dump(record, f, indent=2)
        print(format_estimate(record["sweep_estimate"]))
    return record["rows"]


def markdown_table(rows: list[dict], ours: str) -> str:
    """The table of `format_table` in Markdown, for docs/benchmarks.md."""
    header, body = _table_cells(rows, ours)
    line = lambda cells: "| " + " | ".join(cells) + " |"
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, body)])
