"""Convolution implementations a model can be built with, chosen by the execution strategy.

Under `jax.vmap` over lanes the kernel gains a lane axis, and `lax.conv_general_dilated`
becomes a *grouped* convolution (one group per lane), which XLA:CPU runs several times slower
than the same work as separate convolutions (docs/benchmarks.md).

'patches' computes the same convolution as a matrix product: the padded input is cut into
kh·kw shifted (and strided) slices, concatenated along channels into patches of
kh·kw·C_in values, and multiplied by the kernel reshaped to (kh·kw·C_in, C_out). Under vmap
the product becomes a *batched* matrix product over lanes (or one wide product when the input
is shared by all lanes), which XLA:CPU runs at full speed. Same parameters, same result up to
float rounding (tests/models/test_conv.py).

'shifted' computes it as a sum of kh·kw matrix products, one per kernel offset: the input
slice shifted by (i, j) times the kernel's (C_in, C_out) slice at (i, j). It never
materializes the patches (kh·kw times the input: 25× for the first 5×5 layer, gigabytes per
lane at m = 2048), at the price of kh·kw smaller products; under vmap each is a batched matrix
product, so no grouped convolution is emitted either. Which of the three is fastest depends on
the backend and m: measured, never assumed (docs/benchmarks.md).

Both take any number of spatial axes (1-D convolutions of token models, 2-D of images),
strides, padding and kernel dilation. A user's model needs no change to use them:
`follow_plan` intercepts every plain `nn.Conv` (engine/step.py applies models inside it).
"""

import contextlib
import functools
import itertools

import jax.numpy as jnp
from absl import logging
from flax import linen as nn
from jax import lax

CONV_IMPLS = ("xla", "patches", "shifted")


def _channels_last(dimension_numbers, ndim: int) -> bool:
    """Whether `dimension_numbers` is Flax's layout: N, spatial…, C inputs and outputs and
    spatial…, I, O kernels (None: lax's default NCHW, not ours)."""
    if dimension_numbers is None:
        return False
    spatial = tuple(range(1, ndim - 1))
    lhs, rhs, out = lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, dimension_numbers)
    return (lhs == (0, ndim - 1) + spatial and out == lhs
            and rhs == (ndim - 1, ndim - 2) + tuple(range(ndim - 2)))


def _padded_input(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                  feature_group_count):
    """The zero-padded input, the output's spatial size and the kernel dilation of an
    N, spatial…, C × spatial…, I, O convolution (any number of spatial axes)."""
    spatial = rhs.ndim - 2
    if feature_group_count != 1 or any(d != 1 for d in (lhs_dilation or ())):
        raise NotImplementedError("patches/shifted convolutions: no input dilation or "
                                  "feature groups")
    dilation = tuple(rhs_dilation or (1,) * spatial)
    extent = tuple((k - 1) * d + 1 for k, d in zip(rhs.shape[:spatial], dilation))
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:1 + spatial], extent, window_strides, padding)
    x = jnp.pad(lhs, ((0, 0),) + tuple(tuple(p) for p in padding) + ((0, 0),))
    out_size = tuple((x.shape[1 + a] - extent[a]) // window_strides[a] + 1
                     for a in range(spatial))
    return x, out_size, dilation


def _shifted_slice(x, offset, window_strides, out_size):
    """Input pixel (s·y + o) along each spatial axis for every output pixel y."""
    return x[(slice(None),) + tuple(slice(o, o + s * (n - 1) + 1, s) for o, s, n
                                    in zip(offset, window_strides, out_size)) + (slice(None),)]


def _offsets(rhs, dilation):
    """Each kernel position's index and its offset into the input, in the kernel's
    row-major order (that of its reshape to (positions · C_in, C_out))."""
    spatial = rhs.ndim - 2
    for index in itertools.product(*(range(k) for k in rhs.shape[:spatial])):
        yield index, tuple(i * d for i, d in zip(index, dilation))


def _check_layout(lhs, dimension_numbers):
    if dimension_numbers is not None and not _channels_last(dimension_numbers, lhs.ndim):
        raise NotImplementedError("patches/shifted convolutions: channels-last layouts only "
                                  f"(Flax's), not {dimension_numbers}")


def patches_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None,
                 preferred_element_type=None):
    """`lax.conv_general_dilated` for channels-last inputs (N, spatial…, C) and kernels
    (spatial…, C_in, C_out), any number of spatial axes, as patches × kernel.

    Takes the arguments Flax's `nn.Conv` passes; supports strides, any padding and kernel
    dilation, not input dilation or feature groups (NotImplementedError: `follow_plan` then
    leaves that layer to XLA).
    """
    del preferred_element_type
    _check_layout(lhs, dimension_numbers)
    x, out_size, dilation = _padded_input(lhs, rhs, window_strides, padding, lhs_dilation,
                                          rhs_dilation, feature_group_count)
    c_in, c_out = rhs.shape[-2:]
    # The concatenation order (position, c) matches the row order of the reshaped kernel.
    slices = [_shifted_slice(x, offset, window_strides, out_size)
              for _, offset in _offsets(rhs, dilation)]
    patches = jnp.concatenate(slices, axis=-1) if len(slices) > 1 else slices[0]
    return jnp.dot(patches, rhs.reshape(len(slices) * c_in, c_out), precision=precision)


def shifted_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None,
                 preferred_element_type=None):
    """`lax.conv_general_dilated` as Σ over kernel positions of the shifted input times the
    kernel's (C_in, C_out) slice there; the arguments as for `patches_conv`. Below float32
    (bfloat16) the kh·kw products are summed in float32 and rounded once, as XLA's
    convolution and patches' one product accumulate: summed in bfloat16, a 3×3 layer's
    outputs were off by up to one unit in the last place of theirs."""
    del preferred_element_type
    _check_layout(lhs, dimension_numbers)
    x, out_size, dilation = _padded_input(lhs, rhs, window_strides, padding, lhs_dilation,
                                          rhs_dilation, feature_group_count)
    dtype = jnp.result_type(lhs, rhs)
    wide = jnp.float32 if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32 \
        else None
    terms = (jnp.dot(_shifted_slice(x, offset, window_strides, out_size), rhs[index],
                     precision=precision, preferred_element_type=wide)
             for index, offset in _offsets(rhs, dilation))
    return sum(terms).astype(dtype)


def conv_function(name: str):
    """The `conv_general_dilated` that `nn.Conv` should call for implementation `name`."""
    if name not in CONV_IMPLS:
        raise ValueError(f"conv={name!r}; allowed: {CONV_IMPLS}")
    return {"xla": lax.conv_general_dilated, "patches": patches_conv,
            "shifted": shifted_conv}[name]


def conv_layer(name: str):
    """The convolution layer factory for implementation `name`, as models receive it (flax's
    ModuleDef pattern): `nn.Conv` itself for XLA's, else `nn.Conv` computing through our
    function. Same parameters and names either way."""
    if name == "xla":
        return nn.Conv
    return functools.partial(nn.Conv, conv_general_dilated=conv_function(name))


def unsupported(module: nn.Conv) -> str | None:
    """Why implementation 'patches'/'shifted' cannot compute this `nn.Conv` (None: it can)."""
    if module.feature_group_count != 1:
        return f"feature_group_count={module.feature_group_count}"
    if module.input_dilation not in (None, 1) and any(d != 1 for d in module.input_dilation):
        return f"input_dilation={module.input_dilation}"
    if not module.shared_weights:
        return "unshared weights (a local convolution)"
    return None


_warned: set = set()


def follow_plan(name: str):
    """A context in which every Flax `nn.Conv` that does not name its own convolution
    function computes through implementation `name` (conv_function): a user's model gets the
    plan's convolution without changing a line. Flax's method interception
    (`nn.intercept_methods`) sees each `nn.Conv` call; the module's `conv_general_dilated`
    field, None by default, is set for that call only. A layer the implementation cannot
    compute (`unsupported`) stays with XLA's, logged once per layer. 'xla': no interception."""
    if name == "xla":
        return contextlib.nullcontext()
    function = conv_function(name)

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if (context.method_name != "__call__" or not isinstance(module, nn.Conv)
                or module.conv_general_dilated is not None
                or module.conv_general_dilated_cls is not None):
            return next_fun(*args, **kwargs)
        reason = unsupported(module)
        if reason is not None:
            where = "/".join(module.path) or type(module).__name__
            if (where, reason) not in _warned:
                _warned.add((where, reason))
                logging.warning("conv=%r cannot compute %s (%s): that layer uses XLA's "
                                "convolution", name, where, reason)
            return next_fun(*args, **kwargs)
        return call_with_field(module, "conv_general_dilated", function, next_fun, args,
                               kwargs)

    return nn.intercept_methods(interceptor)


def call_with_field(module: nn.Module, field: str, value, next_fun, args, kwargs):
    """`next_fun(*args, **kwargs)` (an intercepted method of `module`) with the module's
    `field` set to `value` for this call only. Flax modules are frozen dataclasses: the
    field is set around the one call (while tracing) and put back to None, its default, so
    the module is unchanged for every other use."""
    object.__setattr__(module, field, value)
    try:
        return next_fun(*args, **kwargs)
    finally:
        object.__setattr__(module, field, None)
