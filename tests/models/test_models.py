import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from smallbatch_jax.models import MODELS, create_model, user_model

# Parameter counts (trainable). ResNet-20/32 with BN match the well-known CIFAR ResNet
# implementation (akamaster/pytorch_resnet_cifar10: 269,722 and 464,154); the reduced
# AlexNet count is by hand: convs 1216 + 6960 + 41568 + 55360 + 36928, FCs
# 262400 + 65792 + 2570.
PARAM_COUNTS = {
    "alexnet": 472_794,
    "alexnet_bn": 473_594,
    "alexnet_bn_conv": 473_082,
    "resnet8": 75_290,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet8_nobn": 75_050,
    "resnet20_nobn": 269_034,
    "resnet32_nobn": 463_018,
    # ResNet-50 v1: 25,557,032 with 1,000 classes (torchvision and Keras agree).
    "resnet50": 25_557_032 - 2048 * 990 - 990,
    "small_cnn": 13_706,
    "small_cnn_bn": 13_818,
}
WITH_BN = {"alexnet_bn", "alexnet_bn_conv", "resnet8", "resnet20", "resnet32", "resnet50",
           "small_cnn_bn"}


def test_every_model_is_listed():
    assert set(PARAM_COUNTS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("num_classes", [10, 100])
def test_output_shape_and_parameter_count(name, num_classes):
    shape = (4, 8, 8, 1) if name.startswith("small") else (4, 32, 32, 3)
    model = create_model(name, num_classes, bn_batch_size=2)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    count = sum(x.size for x in jax.tree.leaves(variables["params"]))
    final_layer = max(p for p in variables["params"] if p.startswith("Dense"))
    classifier = variables["params"][final_layer]["kernel"].shape[0]
    expected = PARAM_COUNTS[name] + classifier * (num_classes - 10) + (num_classes - 10)
    assert count == expected
    assert ("batch_stats" in variables) == (name in WITH_BN)
    for train in (False, True):
        out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros(shape), train=train,
                                                   mutable=["batch_stats"] if train else False),
                             variables)
        logits = out[0] if train else out
        assert logits.shape == (4, num_classes)


def test_bn_placement_of_alexnet_variants():
    def bn_layers(name):
        v = jax.eval_shape(lambda: create_model(name, 10).init(
            jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
        return sorted(v.get("batch_stats", {}))

    assert bn_layers("alexnet") == []
    assert len(bn_layers("alexnet_bn")) == 7  # 5 convs + 2 hidden FCs
    assert len(bn_layers("alexnet_bn_conv")) == 5


def test_unknown_model_raises():
    with pytest.raises(ValueError, match="model='vgg'.*allowed"):
        create_model("vgg", 10)


def test_resnet50_has_the_reference_parameter_count_and_53_batch_norms():
    model = create_model("resnet50", 1000)
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)),
                                                  train=False))
    assert sum(x.size for x in jax.tree.leaves(variables["params"])) == 25_557_032
    # 1 stem + 16 blocks × 3 + 4 projection shortcuts.
    assert len(jax.tree.leaves(variables["batch_stats"])) == 2 * 53


class _Fixed(nn.Module):
    """A user's module class without a class-count field."""

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(4)(x)


class _Sized(nn.Module):
    """A user's module class whose class count is not its first field."""
    width: int = 8
    num_classes: int = 2

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(self.num_classes)(nn.Dense(self.width)(x))


def test_a_users_model_is_an_instance_a_class_or_a_factory():
    instance = _Fixed()
    assert user_model(instance, 10) is instance
    # A class: built without arguments, or with num_classes= where it is a field (by name:
    # `_Sized(10)` would set its width).
    assert isinstance(user_model(_Fixed, 10), _Fixed)
    sized = user_model(_Sized, 10)
    assert sized.num_classes == 10 and sized.width == 8
    assert isinstance(user_model(lambda num_classes: _Sized(num_classes=num_classes), 3),
                      _Sized)
    with pytest.raises(ValueError, match="cannot be called with the number of classes"):
        user_model(lambda a, b: _Fixed(), 10)
    with pytest.raises(ValueError, match="returned int, not a Flax module"):
        user_model(lambda num_classes: num_classes, 10)
