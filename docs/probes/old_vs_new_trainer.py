"""Issue 11's speed check: the trainer before the refactor (the package at commit d453b1f,
copied as `smallbatch_jax_old`) and after, side by side in one process, interleaved repeats,
with the JAX sequential baseline; and the new trainer with the lane state donated.

    rm -rf /tmp/oldpkg && mkdir -p /tmp/oldpkg && git archive d453b1f smallbatch_jax \
        | tar -x -C /tmp/oldpkg && mv /tmp/oldpkg/smallbatch_jax /tmp/oldpkg/smallbatch_jax_old \
        && grep -rl smallbatch_jax /tmp/oldpkg/smallbatch_jax_old \
        | xargs sed -i 's/smallbatch_jax\\b/smallbatch_jax_old/g'
    PYTHONPATH=/tmp/oldpkg python docs/probes/old_vs_new_trainer.py "2,8,32,128" 13 5

Prints one line per m and method: median ms per step of all lanes, and baseline/this.
"""
import sys

from smallbatch_jax.engine.sharding import use_cpu_cores

use_cpu_cores()
import jax  # noqa: E402

from smallbatch_jax.diagnostics import benchmark
from smallbatch_jax.models import create_model  # noqa: E402
from smallbatch_jax.engine.strategy import choose_strategy  # noqa: E402
from smallbatch_jax_old import benchmark as old_benchmark  # noqa: E402
from smallbatch_jax_old.lowering import choose_lowering  # noqa: E402
from smallbatch_jax_old.models import create_model as old_create_model  # noqa: E402

batch_sizes = [int(m) for m in sys.argv[1].split(",")]
k, repeats = int(sys.argv[2]), int(sys.argv[3])
devices = jax.local_device_count()
print(f"K={k}, {repeats} interleaved repeats, {devices} devices, jax {jax.__version__}")
for m in batch_sizes:
    steps = max(2, 256 // m)
    ds = benchmark.synthetic_dataset((32, 32, 3), 10, max(m * steps, k * m))
    lanes_ds = benchmark.synthetic_dataset((32, 32, 3), 10, m * steps)
    build = lambda conv: create_model("alexnet", 10, conv=conv)
    strategy = choose_strategy("cpu", m, k, devices)
    runners = {
        "baseline": benchmark.python_loop_runner(create_model("alexnet", 10), ds, m, k, steps),
        "old": old_benchmark.lanes_runner(old_create_model("alexnet", 10), lanes_ds, m, k,
                                          choose_lowering("cpu", m, k, devices)),
        "new": benchmark.lanes_runner(build, lanes_ds, m, k, strategy),
        "new_donated": benchmark.lanes_runner(build, lanes_ds, m, k, strategy, donate=True),
    }
    timings = benchmark.time_interleaved(runners, repeats)
    base = timings["baseline"].median_step_s
    for name, timing in timings.items():
        print(f"m={m:4d} {name:12s} {1e3 * timing.median_step_s:8.2f} ms  "
              f"baseline/this {base / timing.median_step_s:5.3f}  compile "
              f"{timing.compile_s:5.1f} s  repeats "
              f"{[round(1e3 * s, 2) for s in timing.step_s]}", flush=True)
