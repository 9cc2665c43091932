"""Exploration (issue 26, docs/benchmarks.md "One batch for every lane, or a copy each"): with
one seed every lane trains on the same batch. Handed to the vmapped step once (unbatched),
XLA folds the lanes into the model's first layer: one product over every lane's weights,
which it transposes each step; copied per lane (`Strategy.shared_batch=False`), every layer
stays a per-lane product. Times, in the throughput benchmark's setting (K lanes under
`auto` on the devices a sweep uses, against K sequential jitted runs on one device), 'auto''s
choice with the batch shared and with copies, interleaved repeats, medians.

Usage: python docs/probes/shared_batch_cost.py MODEL M [K] [REPEATS]
MODEL: a zoo name (smallbatch_jax/diagnostics/zoo.py).
"""
import dataclasses
import sys

from smallbatch_jax.engine.sharding import use_cpu_cores

use_cpu_cores()
import jax

from smallbatch_jax.diagnostics import benchmark, timing, zoo
from smallbatch_jax.engine.strategy import choose_strategy
from smallbatch_jax.models import create_model

name, m = sys.argv[1], int(sys.argv[2])
k, repeats = (int(a) for a in (sys.argv[3:5] + ["13", "5"][len(sys.argv) - 3:]))
steps = max(8, 256 // m)
model, shape, kind = zoo.ZOO[name]
data = timing.synthetic_dataset(shape, 10, max(m * steps, k * m), input_kind=kind)
lanes_data = timing.synthetic_dataset(shape, 10, m * steps, input_kind=kind)
has_conv = benchmark.model_has_convolutions(model, lanes_data, 10)
auto = choose_strategy("cpu", m, k, jax.local_device_count(), has_conv=has_conv)
if auto.lane_map != "vmap":
    sys.exit(f"{name} m={m}: auto is {auto}, not vmapped: every lane has its own product")
runners = {"baseline": benchmark.python_loop_runner(create_model(model, 10), data, m, k, steps)}
for shared in (True, False):
    label = "shared" if shared else "copies"
    runners[label] = benchmark.lanes_runner(model, lanes_data, m, k,
                                            dataclasses.replace(auto, shared_batch=shared))
times = timing.time_interleaved(runners, repeats)
base = times["baseline"].median_step_s
print(f"{name} m={m} K={k} steps={steps} auto={auto} jax {jax.__version__} "
      f"devices {jax.local_device_count()}")
for label, t in times.items():
    print(f"{name} m={m} {label:9s} {1e3 * t.median_step_s:8.2f} ms/step  base/this "
          f"{base / t.median_step_s:5.2f}  {[round(1e3 * s, 2) for s in t.step_s]}")
