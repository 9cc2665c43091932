"""Exploration (issue 26, the MLP's lanes against the packing limit): the zoo model's whole
lane step with every `nn.Dense` of a few rows computed row by row (`rows_product`: the
forward as one vector-matrix product per row, the kernel's gradient as a sum of outer
products, both elementwise-fusable with what follows), against `nn.Dense` as it is, under
the strategies tuning chooses between for a dense model on a CPU, timed side by side on the
devices a run uses, K = 13, interleaved repeats, medians; the 13 sequential jitted runs
(`sequential`) and the scanned packing limit (one model on K·m examples, `limit`) beside them.
The variant is registered here only, as conv='xla_rows' (XLA's convolution, the rows dense).

Usage: python docs/probes/dense_rows_step.py MODEL M [--repeats=R] [--max-rows=N]
       [--copies-only] [--without-test]
(--without-test adds each way without the gradients' divergence test, to see its share.)
  e.g.  python docs/probes/dense_rows_step.py mlp 2
"""
import contextlib
import dataclasses
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from smallbatch_jax.diagnostics import timing
from smallbatch_jax.engine import step as step_module
from smallbatch_jax.engine import strategy as strategy_module
from smallbatch_jax.engine.sharding import use_cpu_cores
from smallbatch_jax.engine.strategy import PRESETS, Strategy
from smallbatch_jax.models import conv
from zoo_setting import zoo_setting  # (the probe beside this one)

use_cpu_cores()  # (as experiments.lr_sweep does, before JAX starts its backends)


@jax.custom_vjp
def rows_product(x, w):
    flat = x.reshape(-1, x.shape[-1])
    y = jnp.stack([flat[i] @ w for i in range(flat.shape[0])])
    return y.reshape(*x.shape[:-1], w.shape[-1])


def _forward(x, w):
    return rows_product(x, w), (x, w)


def _backward(saved, g):
    x, w = saved
    flat, flat_g = x.reshape(-1, x.shape[-1]), g.reshape(-1, g.shape[-1])
    dw = sum(flat[i][:, None] * flat_g[i][None, :] for i in range(flat.shape[0]))
    return jnp.dot(g, w.T), dw


rows_product.defvjp(_forward, _backward)


def rows_dot_general(x, w, dimension_numbers, precision=None, preferred_element_type=None):
    (contract_x, contract_w), batch = dimension_numbers
    assert tuple(contract_x) == (x.ndim - 1,) and tuple(contract_w) == (0,) and batch == ((), ())
    return rows_product(x, w)


MAX_ROWS = int(next((a.split("=")[1] for a in sys.argv if a.startswith("--max-rows=")), 8))


def dense_rows():
    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if (context.method_name != "__call__" or not isinstance(module, nn.Dense)
                or int(np.prod(args[0].shape[:-1])) > MAX_ROWS):
            return next_fun(*args, **kwargs)
        return conv.call_with_field(module, "dot_general", rows_dot_general, next_fun, args,
                                    kwargs)
    return nn.intercept_methods(interceptor)


@contextlib.contextmanager
def _follow(name):
    with conv.follow_plan("xla" if name == "xla_rows" else name):
        if name == "xla_rows":
            with dense_rows():
                yield
        else:
            yield


# Checked first: the product's value and gradients are the dot's (float rounding).
_x, _w = (jax.random.normal(jax.random.key(i), s) for i, s in ((0, (4, 784)), (1, (784, 256))))
for _ours, _ref in zip(jax.grad(lambda x, w: jnp.sum(jnp.sin(rows_product(x, w))), (0, 1))(_x, _w),
                       jax.grad(lambda x, w: jnp.sum(jnp.sin(x @ w)), (0, 1))(_x, _w)):
    np.testing.assert_allclose(_ours, _ref, rtol=1e-4, atol=2e-3)

conv.CONV_IMPLS = strategy_module.CONV_IMPLS = (*conv.CONV_IMPLS, "xla_rows")
step_module.follow_plan = _follow
_conv_function = conv.conv_function
conv.conv_function = lambda name: _conv_function("xla" if name == "xla_rows" else name)

setting = zoo_setting()  # MODEL M [--repeats=R]
name, m, repeats, model, shape, kind = (setting.name, setting.m, setting.repeats,
                                        setting.model, setting.shape, setting.kind)
K, steps, data = setting.lanes, setting.steps, setting.data
strategies = {"sequential": PRESETS["sequential"]}
shared_ways = (False, True) if "--copies-only" not in sys.argv else (False,)
for impl in ("xla", "xla_rows"):
    for shared in shared_ways:
        strategies[f"{impl}/all/{'shared' if shared else 'copies'}"] = Strategy(
            conv=impl, lanes_per_program=0, shared_batch=shared)
print(f"{name} {shape}, m = {m}, K = {K}, {steps} steps a repeat, {repeats} interleaved "
      f"repeats, {jax.device_count()} devices, jax {jax.__version__}", flush=True)
runners = {label: timing.epoch_runner(timing.common_run_config(model, m, s), data, K)
           for label, s in strategies.items()}
if "--without-test" in sys.argv:
    # The same lanes without the gradients' divergence test (engine/step.py), to see what
    # it costs each way of computing the dense layers.
    from smallbatch_jax.engine import step as S
    current, S.sum_of_elements = S.sum_of_elements, lambda tree: jnp.float32(0.0)
    for label, s in strategies.items():
        if label != "sequential":
            runners[f"{label}/no test"] = timing.epoch_runner(
                timing.common_run_config(model, m, s), data, K)
    S.sum_of_elements = current
runners["limit"] = timing.scanned_limit_runner(
    timing.common_run_config(model, K * m, dataclasses.replace(PRESETS["sequential"])),
    shape, 10, steps, input_kind=kind)
timed = timing.time_interleaved(runners, repeats)
base = np.median(timed["sequential"].step_s)
limit = np.median(timed["limit"].step_s)
for label in runners:
    t = [1e3 * s for s in timed[label].step_s]
    print(f"{label:20s} {np.median(t):8.3f} ms/step [{min(t):.3f}–{max(t):.3f}]   "
          f"sequential ÷ this: {1e3 * base / np.median(t):.2f}   this ÷ limit: "
          f"{np.median(t) / 1e3 / limit:.2f}", flush=True)
