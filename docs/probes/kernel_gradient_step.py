"""Exploration (issue 26, docs/benchmarks.md "Where token_cnn's lane step goes"): the whole
training step of a model's lanes with the patches convolution's kernel gradient computed
through a transposed copy of G (kernel_gradient_layout.py's variant b2: YNNPACK takes the
product), against the patches convolution as it is, under the same strategies, timed side by
side on the devices a run uses (one CPU device per core), K = 13, interleaved repeats,
medians; the 13 sequential jitted runs' way (`sequential`, XLA's convolution, which the
variant does not touch) beside them as the base. The variant is registered here only, as
conv='patches_t'.

Usage: python docs/probes/kernel_gradient_step.py MODEL M [--repeats=R]
  e.g.  python docs/probes/kernel_gradient_step.py token_cnn 8
MODEL: a name of diagnostics/zoo.py (its own input shape).
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from smallbatch_jax.diagnostics import benchmark, timing
from smallbatch_jax.engine import strategy as strategy_module
from smallbatch_jax.engine.sharding import use_cpu_cores
from smallbatch_jax.engine.strategy import PRESETS, Strategy
from smallbatch_jax.models import conv
from zoo_setting import zoo_setting  # (the probe beside this one)

use_cpu_cores()  # (as experiments.lr_sweep does, before JAX starts its backends)


@jax.custom_vjp
def _product(patches, kernel):
    return jnp.dot(patches, kernel)


def _product_forward(patches, kernel):
    return jnp.dot(patches, kernel), (patches, kernel)


def _product_backward(saved, g):
    patches, kernel = saved
    flat_p = patches.reshape(-1, patches.shape[-1])
    flat_g = g.reshape(-1, g.shape[-1])
    # Gᵀ copied (C, N), then (Gᵀ·P) kept in its layout, then transposed: the product's left
    # operand contracted along its last axis, which YNNPACK takes.
    product = jnp.dot(lax.optimization_barrier(flat_g.T), flat_p)
    return jnp.dot(g, kernel.T), lax.optimization_barrier(product).T


_product.defvjp(_product_forward, _product_backward)


def patches_t_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                   dimension_numbers=None, feature_group_count=1, precision=None,
                   preferred_element_type=None):
    """conv.patches_conv with the kernel gradient above (precision: the backend's)."""
    del preferred_element_type, precision
    conv._check_layout(lhs, dimension_numbers)
    x, out_size, dilation = conv._padded_input(lhs, rhs, window_strides, padding,
                                               lhs_dilation, rhs_dilation, feature_group_count)
    c_in, c_out = rhs.shape[-2:]
    slices = [conv._shifted_slice(x, offset, window_strides, out_size)
              for _, offset in conv._offsets(rhs, dilation)]
    patches = jnp.concatenate(slices, axis=-1) if len(slices) > 1 else slices[0]
    return _product(patches, rhs.reshape(len(slices) * c_in, c_out))


# The variant's gradients are the product's (up to float rounding), checked first.
_p, _k = (jax.random.normal(jax.random.key(i), shape) for i, shape in ((0, (8, 64, 320)),
                                                                          (1, (320, 64))))
for _ours, _xla in zip(jax.grad(lambda p, k: jnp.sum(jnp.sin(_product(p, k))), (0, 1))(_p, _k),
                       jax.grad(lambda p, k: jnp.sum(jnp.sin(jnp.dot(p, k))), (0, 1))(_p, _k)):
    np.testing.assert_allclose(_ours, _xla, rtol=1e-4, atol=1e-3)

_original = conv.conv_function
conv.CONV_IMPLS = strategy_module.CONV_IMPLS = (*conv.CONV_IMPLS, "patches_t")
conv.conv_function = lambda name: patches_t_conv if name == "patches_t" else _original(name)

setting = zoo_setting()  # MODEL M [--repeats=R]
name, m, repeats, model, shape, kind = (setting.name, setting.m, setting.repeats,
                                        setting.model, setting.shape, setting.kind)
K, steps, data = setting.lanes, setting.steps, setting.data
strategies = {"sequential": PRESETS["sequential"]}
for lanes in (1, 0):
    for impl in ("patches", "patches_t"):
        strategies[f"{impl}/{lanes or 'all'}"] = Strategy(conv=impl, lanes_per_program=lanes)
print(f"{name} {shape}, m = {m}, K = {K}, {steps} steps a repeat, {repeats} interleaved "
      f"repeats, {jax.device_count()} devices, jax {jax.__version__}", flush=True)
runners = {label: benchmark.lanes_runner(model, data, m, K, s)
           for label, s in strategies.items()}
timed = timing.time_interleaved(runners, repeats)
base = np.median(timed["sequential"].step_s)
for label in strategies:
    t = [1e3 * s for s in timed[label].step_s]
    print(f"{label:14s} {np.median(t):8.2f} ms/step [{min(t):.2f}–{max(t):.2f}]   "
          f"sequential ÷ this: {1e3 * base / np.median(t):.2f}", flush=True)
