"""Models written the way a user writes them, for the throughput benchmark's zoo.

Each is plain Flax (`nn.Conv`, `nn.BatchNorm`, `nn.Dense`, `nn.Embed`, no convolution
factory), called as `model.apply(variables, x, train=...)`, built by a factory of
`num_classes` so that `--config.model=smallbatch_jax.diagnostics.zoo:<name>` imports it.
`ZOO` gives each model's input (shape and kind) beside the project's own models that the
zoo's table compares them with (`configs/throughput.py:zoo=<name>`).

`plain_cnn` and `plain_cnn_project_layers` are one network: the first as a user writes it
(its `nn.Conv` follow the plan by interception: models/conv.py), the second built from the
project's convolution layer (models/conv.py: conv_layer('patches'), the computation 'auto'
picks on a CPU at small m): the user's should cost what the project's costs.
"""

import functools

from flax import linen as nn
from jax import lax

from smallbatch_jax.models.conv import conv_layer


class PlainCNN(nn.Module):
    """Three 3×3 convolutions (32, 64, 64 channels, max pooling after the first two) and two
    dense layers: a first CNN from a tutorial."""

    num_classes: int = 10
    conv: type = nn.Conv

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.relu(self.conv(32, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(self.conv(64, (3, 3))(x))
        x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(self.conv(64, (3, 3))(x))
        x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_classes)(x)


class PlainCNNBatchNorm(nn.Module):
    """The same with Flax's own nn.BatchNorm after each convolution (running statistics in
    'batch_stats', as the project's models keep them)."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool):
        norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9)
        for features in (32, 64):
            x = nn.relu(norm()(nn.Conv(features, (3, 3), use_bias=False)(x)))
            x = nn.max_pool(x, (2, 2), (2, 2))
        x = nn.relu(norm()(nn.Conv(64, (3, 3), use_bias=False)(x)))
        x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_classes)(x)


class MLP(nn.Module):
    """Two hidden layers of 256 on flat features, with Dropout."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, train: bool):
        for _ in range(2):
            x = nn.relu(nn.Dense(256)(x))
            x = nn.Dropout(0.1, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)


class TokenCNN(nn.Module):
    """A sequence classifier: token embeddings (a vocabulary of 256), two 1-D convolutions
    of width 5, mean over the sequence."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, tokens, train: bool):
        x = nn.Embed(256, 64)(tokens)
        x = nn.relu(nn.Conv(64, (5,))(x))
        x = nn.relu(nn.Conv(64, (5,))(x))
        return nn.Dense(self.num_classes)(x.mean(axis=1))


def plain_cnn(num_classes: int) -> nn.Module:
    return PlainCNN(num_classes)


def plain_cnn_project_layers(num_classes: int) -> nn.Module:
    return PlainCNN(num_classes, conv=conv_layer("patches"))


def plain_cnn_xla(num_classes: int) -> nn.Module:
    """The user's network pinned to XLA's convolution (a function given to its nn.Conv: the
    plan leaves it alone): what every user's CNN ran before its nn.Conv followed the plan."""
    return PlainCNN(num_classes, conv=functools.partial(
        nn.Conv, conv_general_dilated=lax.conv_general_dilated))


def plain_cnn_bn(num_classes: int) -> nn.Module:
    return PlainCNNBatchNorm(num_classes)


def mlp(num_classes: int) -> nn.Module:
    return MLP(num_classes)


def token_cnn(num_classes: int) -> nn.Module:
    return TokenCNN(num_classes)


# name: (config.model, input shape, input kind); the input kinds of data/dataset.py.
ZOO = {
    "alexnet": ("alexnet", (32, 32, 3), "images"),
    "resnet20": ("resnet20", (32, 32, 3), "images"),
    "plain_cnn": (f"{__name__}:plain_cnn", (32, 32, 3), "images"),
    "plain_cnn_project_layers": (f"{__name__}:plain_cnn_project_layers", (32, 32, 3), "images"),
    "plain_cnn_xla": (f"{__name__}:plain_cnn_xla", (32, 32, 3), "images"),
    "plain_cnn_bn": (f"{__name__}:plain_cnn_bn", (32, 32, 3), "images"),
    "mlp": (f"{__name__}:mlp", (784,), "features"),
    "token_cnn": (f"{__name__}:token_cnn", (64,), "tokens"),
}
