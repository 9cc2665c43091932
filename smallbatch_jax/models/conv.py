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
"""

import functools

import jax.numpy as jnp
from flax import linen as nn
from jax import lax

CONV_IMPLS = ("xla", "patches", "shifted")


def _padded_input(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                  feature_group_count):
    """The zero-padded input and the output size of an NHWC × HWIO convolution."""
    if feature_group_count != 1 or any(d != 1 for d in (lhs_dilation or ()) + (rhs_dilation or ())):
        raise NotImplementedError("patches/shifted convolutions: no dilation or feature groups")
    kh, kw = rhs.shape[:2]
    if isinstance(padding, str):
        padding = lax.padtype_to_pads(lhs.shape[1:3], (kh, kw), window_strides, padding)
    x = jnp.pad(lhs, ((0, 0), tuple(padding[0]), tuple(padding[1]), (0, 0)))
    sh, sw = window_strides
    return x, ((x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1)


def _shifted_slice(x, i, j, window_strides, out_size):
    """Input pixel (sh·y + i, sw·x + j) for every output pixel (y, x)."""
    (sh, sw), (out_h, out_w) = window_strides, out_size
    return x[:, i:i + sh * (out_h - 1) + 1:sh, j:j + sw * (out_w - 1) + 1:sw, :]


def patches_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None,
                 preferred_element_type=None):
    """`lax.conv_general_dilated` for NHWC inputs and HWIO kernels, as patches × kernel.

    Takes the arguments Flax's `nn.Conv` passes; supports strides and any padding, not
    dilation or feature groups (no model here uses them).
    """
    del dimension_numbers, preferred_element_type  # Flax's default NHWC / HWIO layout.
    x, out_size = _padded_input(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                feature_group_count)
    kh, kw, c_in, c_out = rhs.shape
    # The concatenation order (i, j, c) matches the row order of the reshaped HWIO kernel.
    slices = [_shifted_slice(x, i, j, window_strides, out_size)
              for i in range(kh) for j in range(kw)]
    patches = jnp.concatenate(slices, axis=-1) if len(slices) > 1 else slices[0]
    return jnp.dot(patches, rhs.reshape(kh * kw * c_in, c_out), precision=precision)


def shifted_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                 dimension_numbers=None, feature_group_count=1, precision=None,
                 preferred_element_type=None):
    """`lax.conv_general_dilated` for NHWC × HWIO as Σ over kernel offsets (i, j) of the
    shifted input times rhs[i, j]; the arguments as for `patches_conv`."""
    del dimension_numbers, preferred_element_type
    x, out_size = _padded_input(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                feature_group_count)
    kh, kw = rhs.shape[:2]
    terms = (jnp.dot(_shifted_slice(x, i, j, window_strides, out_size), rhs[i, j],
                     precision=precision) for i in range(kh) for j in range(kw))
    return sum(terms)


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
