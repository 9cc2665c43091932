"""The models, by the name a config gives them.

`create_model(name, num_classes, bn_batch_size, conv)` returns a Flax module called as
`model.apply(variables, images, train=...)`; models with BatchNorm keep their running
statistics in the 'batch_stats' collection. `conv` is the convolution layer factory
(models/conv.py: `conv_layer`), which the execution plan chooses; it never changes the
parameters.
"""

from flax import linen as nn

from smallbatch_jax.models.convnet import reduced_alexnet, small_cnn
from smallbatch_jax.models.resnet_cifar import CifarResNet
from smallbatch_jax.models.resnet_imagenet import ImageNetResNet50


def _resnet(depth, use_bn):
    def build(num_classes, bn_batch_size, conv):
        return CifarResNet(depth, num_classes, use_bn=use_bn, bn_batch_size=bn_batch_size,
                           conv=conv)

    return build


def _convnet(factory, bn):
    return lambda num_classes, bn_batch_size, conv: factory(num_classes, bn, bn_batch_size,
                                                            conv)


MODELS = {
    # The paper's reduced AlexNet (Figs 1, 5, 6).
    "alexnet": _convnet(reduced_alexnet, "none"),
    "alexnet_bn": _convnet(reduced_alexnet, "all"),
    "alexnet_bn_conv": _convnet(reduced_alexnet, "conv"),
    # CIFAR ResNets (Figs 2-4, 7-11, 13).
    "resnet8": _resnet(8, True),
    "resnet20": _resnet(20, True),
    "resnet32": _resnet(32, True),
    "resnet8_nobn": _resnet(8, False),
    "resnet20_nobn": _resnet(20, False),
    "resnet32_nobn": _resnet(32, False),
    # ImageNet (Figs 12, 14).
    "resnet50": lambda num_classes, bn_batch_size, conv: ImageNetResNet50(
        num_classes, bn_batch_size, conv),
    # Small networks for the embedded digits data set.
    "small_cnn": _convnet(small_cnn, "none"),
    "small_cnn_bn": _convnet(small_cnn, "all"),
}


def create_model(name: str, num_classes: int, bn_batch_size: int | None = None,
                 conv=nn.Conv):
    """The model called `name`; `bn_batch_size` (m_BN) is ignored by models without BN."""
    if name not in MODELS:
        raise ValueError(f"model={name!r} is unknown; allowed: {sorted(MODELS)}")
    return MODELS[name](num_classes, bn_batch_size, conv)
