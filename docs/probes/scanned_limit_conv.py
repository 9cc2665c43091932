"""Exploration (issue 26, docs/benchmarks.md "The scanned limit's convolution on a CPU"): the
throughput benchmark's scanned limit (one model on K·m examples per step, an epoch per
dispatch in a scan) under XLA's convolution and as patches × kernel, timed side by side
(interleaved repeats, medians) on one CPU device, as the benchmark times it.

Usage: python docs/probes/scanned_limit_conv.py [MODEL] [K·M] [STEPS] [REPEATS]
       (default plain_cnn 104 2 2; MODEL a name of diagnostics/zoo.py)
"""
import sys

import jax

from smallbatch_jax.diagnostics import timing, zoo
from smallbatch_jax.engine.strategy import Strategy

name, km, steps, repeats = (sys.argv[1:] + ["plain_cnn", "104", "2", "2"][len(sys.argv) - 1:])[:4]
km, steps, repeats = int(km), int(steps), int(repeats)
model, shape, kind = zoo.ZOO[name]
runners = {conv: timing.scanned_limit_runner(
    timing.common_run_config(model, km, Strategy(conv=conv)), shape, 10, steps, kind)
    for conv in ("xla", "patches")}
timed = timing.time_interleaved(runners, repeats)
print(f"{name}, one model on {km} examples per step, {steps} steps per dispatch, "
      f"{repeats} repeats, jax {jax.__version__}, {jax.devices()[0].platform}:")
for conv, t in timed.items():
    print(f"  {conv:8s} {1e3 * t.median_step_s:10.1f} ms/step (repeats "
          f"{', '.join(f'{1e3 * s:.1f}' for s in t.step_s)}), first call {t.compile_s:.1f} s")
xla, patches = (timed[c].median_step_s for c in ("xla", "patches"))
print(f"  xla / patches: {xla / patches:.2f}")
