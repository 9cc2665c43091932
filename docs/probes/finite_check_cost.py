"""Exploration (issue 26, docs/benchmarks.md): what the lane step's divergence check costs under
the throughput benchmark's own setting (K lanes under `auto` on the devices a sweep uses,
against K sequential jitted runs), for several forms of its gradient test (`--tests=a,b`
picks some; a model without convolutions gets the strategy `auto` gives it, a batch copy
per lane):

  sumsq  isfinite(Σ g²) over every gradient leaf (the check before this probe)
  sum    isfinite(Σ g) (step.sum_of_elements: the check since)
  maxabs isfinite(max |g|) (no sum, so no pairwise reduction for XLA, and no overflow)
  dot    isfinite(g · 1) per leaf (the sum as a vector product, which XLA:CPU hands to a
         library routine)
  none   no gradient test (the loss and the BatchNorm statistics still checked)

Interleaved repeats, medians. Usage:
  python docs/probes/finite_check_cost.py MODEL M [K] [REPEATS] [STEPS] [--tests=sum,dot,none]
MODEL: a zoo name (smallbatch_jax/diagnostics/zoo.py) or a built-in model ('alexnet').
"""
import functools
import sys

from smallbatch_jax.engine.sharding import use_cpu_cores

use_cpu_cores()
import jax
import jax.numpy as jnp

from smallbatch_jax.diagnostics import benchmark, timing, zoo
from smallbatch_jax.engine import step as S
from smallbatch_jax.engine.strategy import choose_strategy
from smallbatch_jax.models import create_model

argv = [a for a in sys.argv if not a.startswith("--")]
name, m = argv[1], int(argv[2])
k, repeats = (int(a) for a in (argv[3:5] + ["13", "5"][len(argv) - 3:]))
steps = int(argv[5]) if len(argv) > 5 else max(8, 256 // m)
model, shape, kind = zoo.ZOO.get(name, (name, (32, 32, 3), "images"))
data = timing.synthetic_dataset(shape, 10, max(m * steps, k * m), input_kind=kind)
lanes_data = timing.synthetic_dataset(shape, 10, m * steps, input_kind=kind)
strategy = choose_strategy("cpu", m, k, jax.local_device_count(),
                           has_conv=benchmark.model_has_convolutions(model, data, 10))
tests = {"sumsq": lambda tree: sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)),
         "sum": lambda tree: sum(jnp.sum(x) for x in jax.tree.leaves(tree)),
         "maxabs": lambda tree: functools.reduce(
             jnp.maximum, [jnp.max(jnp.abs(x)) for x in jax.tree.leaves(tree)]),
         "dot": lambda tree: sum(jnp.dot(x.reshape(-1), jnp.ones(x.size, x.dtype))
                                 for x in jax.tree.leaves(tree)),
         "none": lambda tree: jnp.float32(0.0)}
only = [a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--tests=")]
tests = {k: v for k, v in tests.items() if not only or k in only[0]}
current = S.sum_of_elements  # what the lane step calls (engine/step.py)
runners = {"baseline": benchmark.python_loop_runner(create_model(model, 10), data, m, k, steps)}
for label, test in tests.items():
    S.sum_of_elements = test
    runners[label] = benchmark.lanes_runner(model, lanes_data, m, k, strategy)
S.sum_of_elements = current
times = timing.time_interleaved(runners, repeats)
base = times["baseline"].median_step_s
print(f"{name} m={m} K={k} steps={steps} {strategy} jax {jax.__version__}")
for label, t in times.items():
    print(f"{label:9s} {1e3 * t.median_step_s:8.2f} ms/step  base/this {base / t.median_step_s:5.2f}"
          f"  {[round(1e3 * s, 2) for s in t.step_s]}")
