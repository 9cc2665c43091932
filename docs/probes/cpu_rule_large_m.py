"""Exploration (issue 26, docs/benchmarks.md "Above m = 16 on a CPU: XLA's convolution per
lane, or lax.map with patches"): 'auto''s CPU rule above m = 16 for a model with convolutions
(one lane and one step per dispatch, XLA's convolution: `sequential`) against what tuning
chose for three CNNs at the larger m (`lax.map` over the lanes in one program, patches),
timed side by side on the devices a run uses (one CPU device per core, as the entry points),
K = 13, interleaved repeats, medians; a repeat is one epoch of max(4, 512 // m) steps.

Usage: python docs/probes/cpu_rule_large_m.py MODEL SHAPE M [M ...] [--repeats=R]
  e.g.  python docs/probes/cpu_rule_large_m.py alexnet 32,32,3 32 64 128
        python docs/probes/cpu_rule_large_m.py small_cnn 8,8,1 32 64 128 256
MODEL: a built-in model, or a name of diagnostics/zoo.py (its own input shape then).
"""
import sys

import jax
import numpy as np

from smallbatch_jax.diagnostics import benchmark, timing, zoo
from smallbatch_jax.engine.sharding import use_cpu_cores
from smallbatch_jax.engine.strategy import PRESETS, Strategy

use_cpu_cores()  # (as experiments.lr_sweep does, before JAX starts its backends)

args = [a for a in sys.argv[1:] if not a.startswith("--repeats=")]
repeats = next((int(a.split("=")[1]) for a in sys.argv[1:] if a.startswith("--repeats=")), 5)
name, shape, *batch_sizes = args
model, kind = name, "images"
if name in zoo.ZOO:
    model, shape_, kind = zoo.ZOO[name]
    shape = ",".join(map(str, shape_))
shape = tuple(int(v) for v in shape.split(","))
K = 13
strategies = {"sequential (auto)": PRESETS["sequential"],
              "map/patches": Strategy(lane_map="map", conv="patches")}
print(f"{name} {shape}, K = {K}, {repeats} interleaved repeats, {jax.device_count()} devices, "
      f"jax {jax.__version__}")
for m in map(int, batch_sizes):
    steps = max(4, 512 // m)
    data = timing.synthetic_dataset(shape, 10, m * steps, input_kind=kind)
    runners = {label: benchmark.lanes_runner(model, data, m, K, s)
               for label, s in strategies.items()}
    timed = timing.time_interleaved(runners, repeats)
    ms = {label: [1e3 * t for t in timed[label].step_s] for label in strategies}
    (a, ta), (b, tb) = ms.items()
    print(f"m = {m:4d} ({steps} steps): " + "   ".join(
        f"{label} {np.median(t):8.1f} ms/step [{min(t):.1f}–{max(t):.1f}]"
        for label, t in ms.items()) + f"   {a} ÷ {b}: {np.median(ta) / np.median(tb):.2f}",
        flush=True)
