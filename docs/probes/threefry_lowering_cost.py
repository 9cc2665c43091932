"""Exploration (issue 26, docs/benchmarks.md "One batch for every lane, or a copy each"): on
XLA:CPU JAX lowers the threefry hash as a rolled loop of 5 iterations (short compile times);
what that costs a lane step's dropout: per step, the step's key from the seed (two
fold_ins) and, per Dropout layer of the zoo's MLP (two), a key and a Bernoulli mask of
(m = 2) × 256, scanned over 128 steps. The same function compiled twice in one process,
before and after re-registering JAX's unrolled lowering for the CPU (a private API: a
measurement, not something the project does); same bits checked; interleaved, medians.

Usage: taskset -c 0 python docs/probes/threefry_lowering_cost.py [REPEATS]
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

STEPS = 128


def make():
    def body(carry, step):
        seed, total = carry
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 7), step)
        for layer in range(2):
            mask = jax.random.bernoulli(jax.random.fold_in(key, layer), 0.9, (2, 256))
            total = total + mask.sum()
        return (seed, total), None

    return jax.jit(lambda seed: lax.scan(body, (seed, jnp.int32(0)), jnp.arange(STEPS))[0][1])


rolled = make()
rolled(jnp.int32(0)).block_until_ready()
from jax._src.interpreters import mlir  # noqa: E402
from jax._src.random import threefry2x32  # noqa: E402

mlir.register_lowering(threefry2x32.threefry2x32_p, threefry2x32._threefry2x32_lowering_rule,
                       platform="cpu")
unrolled = make()
assert int(rolled(jnp.int32(3))) == int(unrolled(jnp.int32(3)))  # same bits
times = {"rolled": [], "unrolled": []}
for repeat in range(int(sys.argv[1]) if len(sys.argv) > 1 else 7):
    for name, fn in (("rolled", rolled), ("unrolled", unrolled)):
        start = time.perf_counter()
        fn(jnp.int32(repeat)).block_until_ready()
        times[name].append((time.perf_counter() - start) / STEPS * 1e6)
print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}: µs per step (keys and masks)")
for name, values in times.items():
    print(f"{name:9s} {np.median(values):6.1f}  {[round(v, 1) for v in values]}")
