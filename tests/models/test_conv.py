import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from jax import lax

from smallbatch_jax.models import create_model
from smallbatch_jax.models.conv import (conv_function, conv_layer, follow_plan, patches_conv,
                                        shifted_conv)

DN = ("NHWC", "HWIO", "NHWC")
CASES = [  # input shape, kernel shape, strides, padding
    ((2, 9, 9, 5), (3, 3, 5, 7), (1, 1), "SAME"),
    ((2, 9, 9, 5), (3, 3, 5, 7), (2, 2), "SAME"),
    ((3, 32, 32, 3), (5, 5, 3, 16), (1, 1), "SAME"),
    ((2, 16, 16, 8), (3, 3, 8, 4), (2, 2), "SAME"),  # even size, stride 2: asymmetric pad
    ((2, 10, 7, 2), (3, 2, 2, 3), (1, 2), "VALID"),
    ((2, 6, 6, 3), (3, 3, 3, 2), (1, 1), ((2, 0), (1, 1))),
    ((2, 6, 6, 3), (1, 1, 3, 2), (1, 1), "SAME"),
]


def _operands(lhs_shape, rhs_shape, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    return jax.random.normal(k1, lhs_shape), jax.random.normal(k2, rhs_shape)


OURS = {"patches": patches_conv, "shifted": shifted_conv}


@pytest.mark.parametrize("impl", sorted(OURS))
@pytest.mark.parametrize("lhs_shape,rhs_shape,strides,padding", CASES)
def test_conv_equals_xla_conv(impl, lhs_shape, rhs_shape, strides, padding):
    conv = OURS[impl]
    x, w = _operands(lhs_shape, rhs_shape)
    expected = lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=DN)
    # (Jitted: one program, kept by the suite's compilation cache, instead of op by op.)
    ours = jax.jit(lambda x, w: conv(x, w, strides, padding))
    np.testing.assert_allclose(ours(x, w), expected, rtol=1e-5, atol=1e-5)

    # And so are both gradients.
    loss = lambda conv: lambda x, w: jnp.sum(jnp.sin(conv(x, w, strides, padding)))
    xla = lambda x, w, s, p: lax.conv_general_dilated(x, w, s, p, dimension_numbers=DN)
    for ours, theirs in zip(jax.jit(jax.grad(loss(conv), (0, 1)))(x, w),
                            jax.grad(loss(xla), (0, 1))(x, w)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", sorted(OURS))
@pytest.mark.parametrize("shared_input", [True, False])
def test_conv_under_vmap_over_lanes_emits_no_grouped_convolution(impl, shared_input):
    x, w = _operands((4, 2, 8, 8, 3), (4, 3, 3, 3, 5))
    in_axes = (None if shared_input else 0, 0)
    x_in = x[0] if shared_input else x
    lanes = jax.vmap(lambda x, w: OURS[impl](x, w, (1, 1), "SAME"), in_axes)
    lowered = jax.jit(lanes).lower(x_in, w)
    assert "convolution" not in lowered.as_text()
    ours = lowered.compile()(x_in, w)
    theirs = jax.vmap(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                            dimension_numbers=DN), in_axes)(x_in, w)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def _channels_last(ndim):
    """Flax's layout for `ndim`-D operands: lax's dimension numbers for N…C × …IO."""
    spatial = "DHW"[3 - (ndim - 2):]
    return ("N" + spatial + "C", spatial + "IO", "N" + spatial + "C")


ND_CASES = [  # input shape, kernel shape, strides, padding, kernel dilation
    ((2, 11, 5), (3, 5, 4), (1,), "SAME", (1,)),  # 1-D: a token model's
    ((2, 12, 5), (4, 5, 3), (2,), "VALID", (1,)),
    ((2, 12, 5), (3, 5, 3), (1,), ((2, 0),), (2,)),  # causal-style, dilated
    ((2, 9, 9, 3), (3, 3, 3, 4), (1, 1), "SAME", (2, 2)),
    ((1, 5, 6, 7, 2), (2, 3, 2, 2, 3), (1, 2, 1), "SAME", (1, 1, 1)),  # 3-D
]


@pytest.mark.parametrize("impl", sorted(OURS))
@pytest.mark.parametrize("lhs_shape,rhs_shape,strides,padding,dilation", ND_CASES)
def test_conv_of_any_rank_and_kernel_dilation_equals_xla(impl, lhs_shape, rhs_shape, strides,
                                                          padding, dilation):
    x, w = _operands(lhs_shape, rhs_shape)
    dn = _channels_last(x.ndim)
    expected = lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                        dimension_numbers=dn)
    ours = jax.jit(lambda x, w: OURS[impl](x, w, strides, padding, rhs_dilation=dilation,
                                           dimension_numbers=dn))
    np.testing.assert_allclose(ours(x, w), expected, rtol=1e-5, atol=1e-5)


def test_unsupported_arguments_raise():
    x, w = _operands((1, 4, 4, 2), (3, 3, 2, 2))
    for conv in OURS.values():
        with pytest.raises(NotImplementedError):
            conv(x, w, (1, 1), "SAME", lhs_dilation=(2, 2))
        with pytest.raises(NotImplementedError):
            conv(x, jnp.ones((3, 3, 1, 2)), (1, 1), "SAME", feature_group_count=2)
        with pytest.raises(NotImplementedError, match="channels-last"):
            conv(jnp.ones((1, 2, 4, 4)), w, (1, 1), "SAME",
                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    with pytest.raises(ValueError, match="conv='fft'"):
        conv_function("fft")


class UserNet(nn.Module):
    """A user's model as they write it: plain nn.Conv (2-D, strided, dilated), a 1-D
    nn.Conv over a sequence, a depthwise nn.Conv (feature groups: stays XLA's), Dense."""

    @nn.compact
    def __call__(self, x, train):
        x = nn.relu(nn.Conv(6, (3, 3))(x))
        x = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))
        x = nn.Conv(8, (3, 3), feature_group_count=8)(x)  # depthwise
        x = nn.relu(nn.Conv(8, (3, 3), kernel_dilation=2, padding="VALID")(x))
        sequence = x.reshape(x.shape[0], -1, x.shape[-1])  # (batch, length, 8)
        sequence = nn.relu(nn.Conv(4, (3,), padding="CAUSAL")(sequence))
        return nn.Dense(10)(sequence.mean(axis=1))


@pytest.mark.parametrize("impl", sorted(OURS))
def test_a_users_nn_conv_follows_the_plan_without_changing_the_model(impl, caplog,
                                                                    monkeypatch):
    """Inside follow_plan every plain nn.Conv computes through the plan's function: the same
    outputs and gradients as XLA's, and under vmap over lanes no grouped convolution is
    emitted except by the layer the implementation cannot take (feature groups), which is
    logged once and left to XLA's."""
    from smallbatch_jax.models import conv

    monkeypatch.setattr(conv, "_warned", set())  # (logged once per layer and process)
    model = UserNet()
    x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
    params = model.init(jax.random.key(1), x, train=False)

    def loss(params, x):
        return jnp.sum(jnp.sin(model.apply(params, x, train=True)))

    def planned(params, x):
        with follow_plan(impl):
            return loss(params, x)

    np.testing.assert_allclose(jax.jit(planned)(params, x), jax.jit(loss)(params, x),
                               rtol=1e-5)
    for ours, theirs in zip(jax.tree.leaves(jax.jit(jax.grad(planned))(params, x)),
                            jax.tree.leaves(jax.jit(jax.grad(loss))(params, x))):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    lanes = jax.tree.map(lambda p: jnp.stack([p, 2 * p]), params)
    text = jax.jit(jax.vmap(planned, (0, None))).lower(lanes, x).as_text()
    assert text.count("stablehlo.convolution") == 1  # the depthwise layer alone
    assert "feature_group_count=8" in caplog.text and "uses XLA's convolution" in caplog.text
    reference = jax.jit(jax.vmap(loss, (0, None))).lower(lanes, x).as_text()
    assert reference.count("stablehlo.convolution") == 5  # without the plan: every layer


@pytest.mark.parametrize("impl", sorted(OURS))
@pytest.mark.parametrize("name", ["alexnet_bn", "resnet8"])
def test_models_give_the_same_output_with_every_conv(name, impl):
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    xla = create_model(name, 10)
    ours = create_model(name, 10, conv=conv_layer(impl))
    # (Jitted: one program each, kept by the suite's compilation cache, not op by op.)
    init = lambda model: jax.jit(lambda key, x: model.init(key, x, train=False))
    apply = lambda model: jax.jit(
        lambda variables, x: model.apply(variables, x, train=True, mutable=["batch_stats"]))
    variables = init(xla)(jax.random.key(1), x)
    assert jax.tree.structure(variables) == jax.tree.structure(
        init(ours)(jax.random.key(1), x))
    out_xla, _ = apply(xla)(variables, x)
    out_ours, _ = apply(ours)(variables, x)
    np.testing.assert_allclose(out_ours, out_xla, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", ["patches", "shifted"])
def test_bfloat16_conv_rounds_once_as_xla_does(impl):
    """In bfloat16 the products accumulate in float32 and the output is rounded once, as
    XLA's convolution does: 'shifted' summed its kh·kw products in bfloat16, off by up to a
    unit in the last place of a 3×3 layer's outputs."""
    rng = np.random.default_rng(0)
    lhs = jnp.asarray(rng.normal(size=(3, 9, 10, 16)), jnp.bfloat16)
    rhs = jnp.asarray(rng.normal(size=(5, 5, 16, 8)) / 8, jnp.bfloat16)
    args = ((1, 1), "SAME")
    exact = conv_function("xla")(lhs.astype(jnp.float32), rhs.astype(jnp.float32), *args,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                 precision=lax.Precision.HIGHEST)
    ours = conv_function(impl)(lhs, rhs, *args, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    assert ours.dtype == jnp.bfloat16
    # One rounding of the float32 sum: within bfloat16's unit roundoff, 2⁻⁸, of each value
    # (and a little for the float32 sums' own order).
    error = np.abs(np.asarray(ours, np.float32) - np.asarray(exact))
    assert np.all(error <= 2.0**-8 * np.abs(np.asarray(exact)) * 1.01 + 1e-5)
