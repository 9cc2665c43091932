"""Exploration (docs/benchmarks.md): small-m groups of lanes dealt over the CPU devices vs every
lane in one program split over them. Usage: python docs/probes/lane_chunks_small_m.py M K REPEATS"""
import sys
from smallbatch_jax.engine.sharding import use_cpu_cores
use_cpu_cores()
import jax
from smallbatch_jax.diagnostics import benchmark
from smallbatch_jax.engine.strategy import Strategy, choose_strategy
from smallbatch_jax.models import create_model
m = int(sys.argv[1]); k = int(sys.argv[2]); repeats = int(sys.argv[3])
steps = max(2, 256 // m)
ds = benchmark.synthetic_dataset((32, 32, 3), 10, max(m * steps, k * m))
lanes_ds = benchmark.synthetic_dataset((32, 32, 3), 10, m * steps)
half = -(-k // 2)
variants = {"auto": choose_strategy("cpu", m, k, jax.local_device_count()),
            f"group{half}": Strategy(conv="patches", lanes_per_program=half),
            f"group{-(-k//4)}": Strategy(conv="patches", lanes_per_program=-(-k // 4)),
            f"group{half}_u2": Strategy(conv="patches", lanes_per_program=half, scan_unroll=2),
            f"group{half}_u4": Strategy(conv="patches", lanes_per_program=half, scan_unroll=4)}
runners = {"baseline": benchmark.python_loop_runner(create_model("alexnet", 10), ds, m, k, steps)}
for n, s in variants.items():
    runners[n] = benchmark.lanes_runner(lambda conv: create_model("alexnet", 10, conv=conv),
                                        lanes_ds, m, k, s)
t = benchmark.time_interleaved(runners, repeats)
base = t["baseline"].median_step_s
print(f"m={m} K={k}")
for name, timing in t.items():
    print(f"{name:12s} {1e3*timing.median_step_s:8.2f} ms  base/this {base/timing.median_step_s:5.3f} first {timing.first_call_s:.1f}s")
