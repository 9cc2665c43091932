"""Exploration (docs/benchmarks.md): small-m lane chunks dealt over the CPU devices vs every
lane in one program split over them. Usage: python docs/probes/lane_chunks_small_m.py M K REPEATS"""
import sys
from smallbatch_jax.sharding import use_cpu_cores
use_cpu_cores()
import jax
from smallbatch_jax import benchmark
from smallbatch_jax.lowering import Lowering, choose_lowering
from smallbatch_jax.models import create_model
m = int(sys.argv[1]); k = int(sys.argv[2]); repeats = int(sys.argv[3])
steps = max(2, 256 // m)
model = create_model("alexnet", 10)
ds = benchmark.synthetic_dataset((32, 32, 3), 10, max(m * steps, k * m))
lanes_ds = benchmark.synthetic_dataset((32, 32, 3), 10, m * steps)
half = -(-k // 2)
variants = {"auto": choose_lowering("cpu", m, min(jax.local_device_count(), k)),
            f"chunk{half}": Lowering(conv="patches", lane_chunk=half),
            f"chunk{-(-k//4)}": Lowering(conv="patches", lane_chunk=-(-k // 4)),
            f"chunk{half}_u2": Lowering(conv="patches", lane_chunk=half, scan_unroll=2),
            f"chunk{half}_u4": Lowering(conv="patches", lane_chunk=half, scan_unroll=4)}
runners = {"baseline": benchmark.python_loop_runner(model, ds, m, k, steps)}
for n, l in variants.items():
    runners[n] = benchmark.lanes_runner(model, lanes_ds, m, k, l)
t = benchmark.time_interleaved(runners, repeats)
base = t["baseline"].median_step_s
print(f"m={m} K={k}")
for name, timing in t.items():
    print(f"{name:12s} {1e3*timing.median_step_s:8.2f} ms  base/this {base/timing.median_step_s:5.3f} first {timing.first_call_s:.1f}s")
