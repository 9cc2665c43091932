"""Exploration (issue 26, docs/benchmarks.md "Where token_cnn's lane step goes"): the product
that gives a patches convolution's kernel gradient, Pᵀ·G summed over the batch and positions,
under vmap over K lanes, timed in the layouts XLA:CPU can be handed. YNNPACK (XLA:CPU's fast
matrix products) takes a product only when its left operand is contracted along its last
axis (xla/backends/cpu/ynn_support.cc, IsDotSupportedByYnn); Pᵀ·G contracts P along its
first, so XLA's own program runs it on its slower path. The variants make a transposed copy
first (behind an optimization barrier, or XLA folds the transpose back into the product):

  a   XLA's own (Pᵀ·G as autodiff emits it)
  b   Gᵀ copied, (Gᵀ·P)ᵀ               (the result's transpose folded into the product)
  b2  Gᵀ copied, (Gᵀ·P) behind a barrier, then transposed
  c   Pᵀ copied, Pᵀ·G

Usage: taskset -c 0 python docs/probes/kernel_gradient_layout.py K N P C [repeats]
  (token_cnn's layers at m = 8: 13 512 320 64; plain_cnn's first at m = 8: 13 8192 288 64)
"""
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

K, N, P, C = (int(v) for v in sys.argv[1:5])
repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 15
rng = np.random.default_rng(0)
patches = jnp.asarray(rng.standard_normal((K, N, P)), jnp.float32)
grads = jnp.asarray(rng.standard_normal((K, N, C)), jnp.float32)
barrier = lax.optimization_barrier


def xla_own(p, g):
    return jnp.einsum("bnp,bnc->bpc", p, g)


def g_transposed(p, g):
    return jnp.swapaxes(jnp.einsum("bcn,bnp->bcp", barrier(jnp.swapaxes(g, 1, 2)), p), 1, 2)


def g_transposed_kept(p, g):
    product = jnp.einsum("bcn,bnp->bcp", barrier(jnp.swapaxes(g, 1, 2)), p)
    return jnp.swapaxes(barrier(product), 1, 2)


def p_transposed(p, g):
    return jnp.einsum("bpn,bnc->bpc", barrier(jnp.swapaxes(p, 1, 2)), g)


variants = {"a": xla_own, "b": g_transposed, "b2": g_transposed_kept, "c": p_transposed}
reference = np.asarray(jax.jit(xla_own)(patches, grads))
compiled, times = {}, {name: [] for name in variants}
for name, function in variants.items():
    jitted = jax.jit(function)
    compiled[name] = (jitted, "ynn_fusion" in jitted.lower(patches, grads).compile().as_text())
    np.testing.assert_allclose(np.asarray(jitted(patches, grads)), reference, rtol=1e-3,
                               atol=1e-2)
for _ in range(repeats):  # interleaved
    for name, (jitted, _) in compiled.items():
        begin = time.perf_counter()
        jitted(patches, grads).block_until_ready()
        times[name].append(time.perf_counter() - begin)
print(f"K={K} N={N} P={P} C={C}, jax {jax.__version__}, medians of {repeats}: " + "  ".join(
    f"{name}{' (YNNPACK)' if compiled[name][1] else ''} {1000 * np.median(t):.2f} ms"
    for name, t in times.items()))
