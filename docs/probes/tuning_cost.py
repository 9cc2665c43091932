"""Exploration (issue 26, docs/benchmarks.md "What tuning costs a slow model"): one zoo
model's tuning at m, K lanes, every candidate timed (a share of 1, as the throughput
benchmark tunes), with a fresh cache, one CPU device per core as the entry points set up:
the seconds it took, per candidate, and the choice.
Compare with the tuning recorded in an earlier run's tuned_strategies.json (an older tuner).

Usage: python docs/probes/tuning_cost.py [MODEL] [M] [K]   (default resnet20 32 13)
"""
import json
import sys
import tempfile
import time

import jax

from smallbatch_jax.diagnostics import benchmark, timing, zoo
from smallbatch_jax.engine.sharding import use_cpu_cores

use_cpu_cores()  # (as experiments.throughput does, before JAX starts its backends)

name, m, k = (sys.argv[1:] + ["resnet20", "32", "13"][len(sys.argv) - 1:])[:3]
m, k = int(m), int(k)
model, shape, kind = zoo.ZOO[name]
steps = max(2, 256 // m)  # the throughput benchmark's steps per row (configs/throughput.py)
data = timing.synthetic_dataset(shape, 10, m * steps, input_kind=kind)
with tempfile.TemporaryDirectory() as directory:
    begin = time.perf_counter()
    chosen, tuning = benchmark.tuned_strategy(model, data, m, k, f"{directory}/tuned.json")
    seconds = time.perf_counter() - begin
print(f"{name} m={m} K={k} on {jax.device_count()} devices, jax {jax.__version__}: "
      f"tuning {seconds:.0f} s in all "
      f"({tuning['seconds']:.0f} s timing {len(tuning['timings'])} candidates); chose {chosen}")
for timed in tuning["timings"]:
    ms = timed["ms_per_step"] if timed["ms_per_step"] is not None else float("nan")
    print(f"  {ms:10.1f} ms/step  {timed['seconds']:6.1f} s  "
          f"{json.dumps(timed['strategy'])}")
