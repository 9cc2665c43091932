"""Throughput of the lane trainer, side by side with what a user would otherwise run.

Three ways to train K models of batch size m on the same model and data:

1. baseline: K sequential runs, each a jitted train step called from a Python loop with
   batches sliced on the host (the shape of Flax's own examples);
2. lanes: this project's trainer with K lanes, under each strategy asked for ('auto' is
   what a user gets: "ours");
3. limit: one model trained on batches of K·m in the baseline's loop. K lanes do K times the
   work of one model on m examples with K different weights; sharing one batch of K·m
   examples through one set of weights is the most that packing can reach.

Throughput is examples × lanes per second. Each timing is the median over `repeats` after a
first call, whose time (compilation plus one run) is reported separately. Repeats of the
methods are interleaved, so that a noisy machine's drift affects all of them alike.
"""

import dataclasses
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from smallbatch_jax.data import Dataset, make_dataset
from smallbatch_jax.engine import (DeviceBatches, LaneStep, LaneTrainer, cross_entropy, plan_for,
                                   standardize)
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.strategy import PRESETS, Strategy, choose_strategy
from smallbatch_jax.models.conv import conv_layer
from smallbatch_jax.optim import paper_sgd

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


def synthetic_dataset(image_shape, num_classes: int, num_train: int, seed: int = 0) -> Dataset:
    """Random uint8 images: throughput does not depend on pixel values."""
    rng = np.random.default_rng(seed)
    images = lambda n: rng.integers(0, 256, (n,) + tuple(image_shape), dtype=np.uint8)
    return make_dataset("synthetic", images(num_train), rng.integers(0, num_classes, num_train),
                        images(8), rng.integers(0, num_classes, 8), num_classes)


def _plain_train_step(model, batch_size: int, total_steps: int, precision: str = "default"):
    """A jitted train step as a user writes it: one model, one batch, state in and out;
    matrix products at `precision` (trainer.PRECISIONS), as the lanes they are compared with."""
    tx = paper_sgd(timing_lr(batch_size), batch_size, total_steps, weight_decay=WEIGHT_DECAY)

    @jax.jit
    def step(params, batch_stats, opt_state, images, labels, mean, std):
        if precision == "default":
            return _step(params, batch_stats, opt_state, images, labels, mean, std)
        with jax.default_matmul_precision(precision):
            return _step(params, batch_stats, opt_state, images, labels, mean, std)

    def _step(params, batch_stats, opt_state, images, labels, mean, std):
        def loss_fn(params):
            x = standardize(images, mean, std)
            if batch_stats:
                logits, updated = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                              train=True, mutable=["batch_stats"])
                return cross_entropy(logits, labels).mean(), updated["batch_stats"]
            return cross_entropy(model.apply({"params": params}, x, train=True), labels).mean(), {}

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
    dummy = jnp.zeros((1,) + dataset.image_shape, jnp.float32)
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

    start = time.perf_counter()
    train(1)  # compiles
    first = time.perf_counter() - start

    def run():
        start = time.perf_counter()
        train(steps)
        return (time.perf_counter() - start) / steps

    return first, 1, run


def lanes_runner(build_model, dataset: Dataset, batch_size: int, num_lanes: int,
                 strategy: Strategy, donate: bool | None = None):
    """The lane trainer under `strategy`, on the devices a sweep would use (train/plan.py);
    one repeat is one epoch of `dataset` (= the measured steps). `build_model(conv)`: the
    model with the convolution layer the strategy asks for (models/conv.py: conv_layer)."""
    plan = plan_for(strategy, num_lanes, donate=donate)
    model = build_model(conv_layer(strategy.conv))
    trainer = LaneTrainer(LaneStep(model, batch_size, dataset.image_shape), plan)
    source = DeviceBatches(dataset, batch_size, eval_batch_size=len(dataset.test_labels))
    grid = LaneGrid(seeds=(0,), base_lrs=(timing_lr(batch_size),) * num_lanes,
                    weight_decay=WEIGHT_DECAY, warmup_fraction=0.0, momentum=0.0)
    seeds = jnp.asarray(grid.seeds)
    state, hparams, source = trainer.start(seeds, grid.hparams(), source)
    state = [state]
    total_steps = 1000 * source.steps_per_epoch

    def epoch():
        start = time.perf_counter()
        state[0], _, _ = trainer.train_epoch(state[0], hparams, source, seeds, total_steps)
        jax.block_until_ready(state[0])
        seconds = time.perf_counter() - start
        if np.asarray(state[0].lanes.diverged).any():
            raise RuntimeError(f"a lane diverged at m={batch_size} with "
                               f"η̃={timing_lr(batch_size)}: it would no longer be trained, "
                               "and the timing would flatter the lanes")
        return seconds

    first = epoch()
    return first, source.steps_per_epoch, lambda: epoch() / source.steps_per_epoch


def time_interleaved(runners: dict, repeats: int) -> dict[str, Timing]:
    """Times every runner `repeats` times, in turn (A B C A B C …): on a shared, noisy
    machine, drift then affects every method alike instead of whichever ran last."""
    per_step = {name: [] for name in runners}
    for _ in range(repeats):
        for name, (_, _, run) in runners.items():
            per_step[name].append(run())
    return {name: Timing(first, first_steps, tuple(per_step[name]))
            for name, (first, first_steps, _) in runners.items()}


def time_python_loop(model, dataset: Dataset, batch_size: int, num_runs: int, steps: int,
                     repeats: int) -> Timing:
    runner = python_loop_runner(model, dataset, batch_size, num_runs, steps)
    return time_interleaved({"loop": runner}, repeats)["loop"]


def time_lanes(build_model, dataset: Dataset, batch_size: int, num_lanes: int,
               strategy: Strategy, repeats: int) -> Timing:
    runner = lanes_runner(build_model, dataset, batch_size, num_lanes, strategy)
    return time_interleaved({"lanes": runner}, repeats)["lanes"]


def step_figures(timing: Timing, batch_size: int, num_models: int) -> dict:
    return {
        "examples_lanes_per_s": batch_size * num_models / timing.median_step_s,
        "step_ms": 1e3 * timing.median_step_s,
        "step_ms_repeats": [1e3 * t for t in timing.step_s],
        "compile_s": timing.compile_s,
    }


def measure(build_model, image_shape, num_classes: int, batch_size: int, num_lanes: int,
            steps: int, repeats: int, strategies: dict[str, Strategy]) -> dict:
    """Baseline, limit and lanes (each strategy) for one (m, K); one row of the table.
    `build_model(conv)`: the model with a convolution layer (the baselines: XLA's)."""
    model = build_model(nn.Conv)
    m, k = batch_size, num_lanes
    dataset = synthetic_dataset(image_shape, num_classes, max(m * steps, k * m))
    lanes_data = synthetic_dataset(image_shape, num_classes, m * steps)
    runners = {"baseline": python_loop_runner(model, dataset, m, k, steps),
               "limit": python_loop_runner(model, dataset, k * m, 1, steps)}
    for name, strategy in strategies.items():
        runners[f"lanes:{name}"] = lanes_runner(build_model, lanes_data, m, k, strategy)
    timings = time_interleaved(runners, repeats)
    row = {"batch_size": m, "num_lanes": k, "steps": steps,
           "baseline": step_figures(timings["baseline"], m, k),
           "limit": step_figures(timings["limit"], k * m, 1), "lanes": {}}
    for name, strategy in strategies.items():
        row["lanes"][name] = {**step_figures(timings[f"lanes:{name}"], m, k),
                              "strategy": dataclasses.asdict(strategy),
                              "devices": len(plan_for(strategy, k).devices)}
    return row


def ratios(row: dict, ours: str) -> tuple[float, float]:
    """(speed-up of ours over the baseline, ours' step time over the limit's)."""
    ours_ms = row["lanes"][ours]["step_ms"]
    return row["baseline"]["step_ms"] / ours_ms, ours_ms / row["limit"]["step_ms"]


def _table_cells(rows: list[dict], ours: str) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the throughput table (see `format_table`)."""
    names = list(rows[0]["lanes"])
    header = ["m", "K", "steps", "baseline", "limit", *names, "base/ours", "ours/limit",
              "compile ours (s)"]
    body = []
    for row in rows:
        speedup, over_limit = ratios(row, ours)
        body.append([str(row["batch_size"]), str(row["num_lanes"]), str(row["steps"]),
                     f"{row['baseline']['examples_lanes_per_s']:.0f}",
                     f"{row['limit']['examples_lanes_per_s']:.0f}",
                     *(f"{row['lanes'][n]['examples_lanes_per_s']:.0f}" for n in names),
                     f"{speedup:.2f}", f"{over_limit:.2f}", f"{row['lanes'][ours]['compile_s']:.1f}"])
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
    from smallbatch_jax.models import create_model

    backend = jax.default_backend()
    build_model = lambda conv: create_model(config.model, config.num_classes, conv=conv)
    os.makedirs(workdir, exist_ok=True)
    record = {"config": config.to_dict(), "backend": backend,
              "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M"), "rows": []}
    for m in config.batch_sizes:
        for k in config.num_lanes:
            strategies = {name: choose_strategy(backend, m, k, jax.local_device_count())
                          if name == "auto" else PRESETS[name] for name in config.strategies}
            steps = max(config.min_steps, config.examples_per_lane // m)
            row = measure(build_model, tuple(config.image_shape), config.num_classes, m, k, steps,
                          config.repeats, strategies)
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


def sweep_estimate(rows: list[dict], ours: str, num_train: int, epochs: int) -> dict:
    """The training time of a batch-size sweep from measured step times (e.g. the paper's
    Fig 1: 82 epochs of 50,000 images at every m of 2 … 2048): per measured m, at the most
    lanes measured for it, epochs · ⌊num_train / m⌋ steps of ours and of the baseline
    (K sequential runs). Evaluation and compilation are not included."""
    widest = {}
    for row in rows:
        if row["num_lanes"] >= widest.get(row["batch_size"], {"num_lanes": 0})["num_lanes"]:
            widest[row["batch_size"]] = row
    per_m = []
    for m, row in sorted(widest.items()):
        steps = epochs * (num_train // m)
        per_m.append({"batch_size": m, "num_lanes": row["num_lanes"], "steps": steps,
                      "ours_hours": steps * row["lanes"][ours]["step_ms"] / 3.6e6,
                      "baseline_hours": steps * row["baseline"]["step_ms"] / 3.6e6})
    return {"num_train": num_train, "epochs": epochs, "per_m": per_m,
            "ours_hours": sum(r["ours_hours"] for r in per_m),
            "baseline_hours": sum(r["baseline_hours"] for r in per_m)}


def format_estimate(estimate: dict) -> str:
    lines = [f"Sweep estimate: {estimate['epochs']} epochs of {estimate['num_train']} examples "
             "at each m below (training only)",
             "    m    K      steps   ours (h)  baseline (h)"]
    lines += [f"{r['batch_size']:5d} {r['num_lanes']:4d} {r['steps']:10d} {r['ours_hours']:10.2f} "
              f"{r['baseline_hours']:13.2f}" for r in estimate["per_m"]]
    lines.append(f"total {estimate['ours_hours']:.2f} h ours, {estimate['baseline_hours']:.2f} h "
                 "baseline")
    return "\n".join(lines)


def markdown_table(rows: list[dict], ours: str) -> str:
    """The table of `format_table` in Markdown, for docs/benchmarks.md."""
    header, body = _table_cells(rows, ours)
    line = lambda cells: "| " + " | ".join(cells) + " |"
    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, body)])
