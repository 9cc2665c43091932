"""CIFAR ResNets of He et al. (2015a, §4.2): ResNet-8, -20 and -32, with or without BN.

A 3×3 convolution with 16 channels, three stages of n basic blocks with 16, 32 and 64
channels (depth 6n + 2), stride 2 at the first block of stages 2 and 3, global average
pooling and a dense classifier. Blocks are post-activation: conv-BN-ReLU-conv-BN, add the
shortcut, ReLU.

Shortcuts are "option A" (parameter-free): where the shape changes, the input is subsampled
with stride 2 and its channels are zero-padded (appended at the end; which channels hold the
zeros does not matter since the residual branch is learned).

Without BN ("noBN" in the paper) the BN layers are removed and the convolutions get biases;
the paper does not say whether it added them.
"""

import jax.numpy as jnp
from flax import linen as nn

from smallbatch_jax.models.convnet import ModuleDef, he_normal
from smallbatch_jax.models.ghost_bn import GhostBatchNorm

DEPTHS = (8, 20, 32)


class BasicBlock(nn.Module):
    channels: int
    stride: int
    use_bn: bool
    bn_batch_size: int | None
    conv: ModuleDef = nn.Conv

    @nn.compact
    def __call__(self, x, train: bool):
        def conv(y, stride):
            return self.conv(self.channels, (3, 3), strides=(stride, stride), padding="SAME",
                             use_bias=not self.use_bn, kernel_init=he_normal)(y)

        def normalize(y):
            if not self.use_bn:
                return y
            return GhostBatchNorm(self.bn_batch_size, use_running_average=not train)(y)

        y = nn.relu(normalize(conv(x, self.stride)))
        y = normalize(conv(y, 1))

        shortcut = x
        if self.stride != 1:
            shortcut = shortcut[:, :: self.stride, :: self.stride, :]
        missing_channels = self.channels - x.shape[-1]
        if missing_channels:
            shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (0, missing_channels)))
        return nn.relu(y + shortcut)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32×32 inputs. `conv`: the convolution layer (models/conv.py)."""

    depth: int
    num_classes: int
    use_bn: bool = True
    bn_batch_size: int | None = None
    conv: ModuleDef = nn.Conv

    @nn.compact
    def __call__(self, x, train: bool):
        if self.depth not in DEPTHS:
            raise ValueError(f"depth={self.depth}; allowed: {DEPTHS}")
        blocks_per_stage = (self.depth - 2) // 6

        x = self.conv(16, (3, 3), padding="SAME", use_bias=not self.use_bn,
                      kernel_init=he_normal)(x)
        if self.use_bn:
            x = GhostBatchNorm(self.bn_batch_size, use_running_average=not train)(x)
        x = nn.relu(x)
        for stage, channels in enumerate((16, 32, 64)):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                x = BasicBlock(channels, stride, self.use_bn, self.bn_batch_size,
                               self.conv)(x, train)
        x = x.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=he_normal)(x)
