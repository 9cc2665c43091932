import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from smallbatch_jax.models import create_model
from smallbatch_jax.models.conv import conv_function, conv_layer, patches_conv, shifted_conv

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


def test_unsupported_arguments_raise():
    x, w = _operands((1, 4, 4, 2), (3, 3, 2, 2))
    for conv in OURS.values():
        with pytest.raises(NotImplementedError):
            conv(x, w, (1, 1), "SAME", rhs_dilation=(2, 2))
    with pytest.raises(ValueError, match="conv='fft'"):
        conv_function("fft")


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
