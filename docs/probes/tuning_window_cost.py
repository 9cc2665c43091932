"""Exploration (issue 26, docs/benchmarks.md "What a strategy pays once an epoch"): tuning
times its first candidate on windows of WINDOW_STEPS steps and the others (and the run-off)
on windows of about WINDOW_SECONDS at the fastest pace so far, a few steps for a slow model.
Each window is one `train_epoch` of the trainer, so whatever a strategy pays once per epoch
(its lane groups split and gathered again, the data order drawn, the loss read back) is
spread over a window's steps, not over a real epoch's. Times, per strategy, ms per step of
all lanes on windows of each length, interleaved repeats (each a few windows, ~0.5 s),
medians; and the per-window cost the two lengths imply (T(w) = w·step + window: a line
through the two).

Usage: python docs/probes/tuning_window_cost.py MODEL M [K] [REPEATS] [WINDOWS]
MODEL: a zoo name (smallbatch_jax/diagnostics/zoo.py); WINDOWS: e.g. 5,32.
"""
import dataclasses
import math
import sys
import time

from smallbatch_jax.engine.sharding import use_cpu_cores

use_cpu_cores()
import jax
import numpy as np

from smallbatch_jax.diagnostics import timing, zoo
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.engine.tune import _Window

name, m = sys.argv[1], int(sys.argv[2])
k = int(sys.argv[3]) if len(sys.argv) > 3 else 13
repeats = int(sys.argv[4]) if len(sys.argv) > 4 else 5
windows = tuple(int(w) for w in (sys.argv[5] if len(sys.argv) > 5 else "5,32").split(","))
model, shape, kind = zoo.ZOO[name]
data = timing.synthetic_dataset(shape, 10, m * max(windows), input_kind=kind)
patches = Strategy(lane_map="vmap", conv="patches", step_loop="scan", steps_per_dispatch=0)
strategies = {
    "patches / 4": dataclasses.replace(patches, lanes_per_program=4),
    "patches / 1": dataclasses.replace(patches, lanes_per_program=1),
    "unrolled / 1": Strategy(lane_map="unrolled", conv="xla", step_loop="unrolled",
                             steps_per_dispatch=1, lanes_per_program=1),
    "map": dataclasses.replace(patches, lane_map="map"),
}


def runner(strategy, steps):
    """(run(n): seconds of n windows of `steps` steps)."""
    timed = timing.timed_lanes(timing.common_run_config(model, m, strategy), data, k)
    window = _Window(timed.source, steps)
    held = [timed.state]

    def run(n):
        begin = time.perf_counter()
        for _ in range(n):
            held[0], _, _ = timed.trainer.train_epoch(held[0], timed.hparams, window,
                                                      timed.seeds, timed.total_steps)
        jax.block_until_ready(held[0])
        return time.perf_counter() - begin

    run(1)  # compiles
    count = max(1, math.ceil(0.5 / max(run(1), 1e-9)))
    return run, count


runners = {(label, w): runner(s, w) for label, s in strategies.items() for w in windows}
times = {key: [] for key in runners}
for _ in range(repeats):
    for key, (run, count) in runners.items():
        times[key].append(run(count) / count)
print(f"{name} m={m} K={k} windows={windows} repeats={repeats} jax {jax.__version__} "
      f"devices {jax.local_device_count()}")
for label in strategies:
    ms = {w: 1e3 * float(np.median(times[(label, w)])) / w for w in windows}
    short, long = min(windows), max(windows)
    step = (ms[long] * long - ms[short] * short) / (long - short)
    print(f"{label:13s} " + "  ".join(f"w={w}: {ms[w]:8.2f} ms/step" for w in windows)
          + f"  | implied: {step:8.2f} ms/step + {ms[short] * short - step * short:8.1f} "
            "ms/window")
