"""Plain convolutional networks: the paper's reduced AlexNet, and a small CNN for digits.

Reduced AlexNet (paper §3.1): five stride-1 convolutions with kernels [5, 3, 3, 3, 3] and
channels [16, 48, 96, 64, 64], 3×3 stride-2 max-pools, two fully-connected layers of 256
units, He initialization. The paper does not say where the pools sit, nor the padding;
following the original AlexNet layout (paper_protocol.md §3.1) we use

    conv5×5-16, pool, conv3×3-48, pool, conv3×3-96, conv3×3-64, conv3×3-64, pool,
    FC-256, FC-256, FC-classes

with 'SAME' padding (32 → 16 → 8 → 4 spatially), ReLU, no dropout, no LRN.

BatchNorm variants (Figs 5, 6): `bn='all'` normalizes after every convolution and hidden
FC layer, `bn='conv'` after convolutions only; BN sits before the ReLU, and a layer followed
by BN has no bias (BN's offset replaces it). The classifier never has BN.
"""

from collections.abc import Sequence
from typing import Any

from flax import linen as nn

from smallbatch_jax.models.ghost_bn import GhostBatchNorm

ModuleDef = Any  # a layer factory, e.g. nn.Conv or functools.partial(nn.Conv, ...)

# He et al. (2015b): N(0, 2 / fan_in), untruncated.
he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")

BN_PLACEMENTS = ("none", "all", "conv")


class ConvNet(nn.Module):
    """Convolutions (each optionally followed by a max-pool), then FC layers, then a classifier.

    Attributes:
      num_classes: outputs of the classifier.
      conv_kernels, conv_channels, pool_after: one entry per convolution.
      fc_widths: hidden fully-connected layers.
      bn: where BatchNorm goes: 'none', 'all' (convs and hidden FCs) or 'conv'.
      bn_batch_size: m_BN of GhostBatchNorm; None normalizes over the whole batch.
      conv: the convolution layer factory (models/conv.py: conv_layer); the execution plan
        picks how convolutions are computed, never what the parameters are.
    """

    num_classes: int
    conv_kernels: Sequence[int]
    conv_channels: Sequence[int]
    pool_after: Sequence[bool]
    fc_widths: Sequence[int]
    bn: str = "none"
    bn_batch_size: int | None = None
    conv: ModuleDef = nn.Conv

    @nn.compact
    def __call__(self, x, train: bool):
        if self.bn not in BN_PLACEMENTS:
            raise ValueError(f"bn={self.bn!r}; allowed: {BN_PLACEMENTS}")
        conv_bn = self.bn in ("all", "conv")
        fc_bn = self.bn == "all"

        def normalize(y):
            return GhostBatchNorm(self.bn_batch_size, use_running_average=not train)(y)

        for kernel, channels, pool in zip(self.conv_kernels, self.conv_channels, self.pool_after):
            x = self.conv(channels, (kernel, kernel), padding="SAME", use_bias=not conv_bn,
                          kernel_init=he_normal)(x)
            x = nn.relu(normalize(x) if conv_bn else x)
            if pool:
                x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        x = x.reshape((x.shape[0], -1))
        for width in self.fc_widths:
            x = nn.Dense(width, use_bias=not fc_bn, kernel_init=he_normal)(x)
            x = nn.relu(normalize(x) if fc_bn else x)
        return nn.Dense(self.num_classes, kernel_init=he_normal)(x)


def reduced_alexnet(num_classes: int, bn: str = "none", bn_batch_size: int | None = None,
                    conv: ModuleDef = nn.Conv):
    return ConvNet(
        num_classes=num_classes,
        conv_kernels=(5, 3, 3, 3, 3),
        conv_channels=(16, 48, 96, 64, 64),
        pool_after=(True, True, False, False, True),
        fc_widths=(256, 256),
        bn=bn,
        bn_batch_size=bn_batch_size,
        conv=conv,
    )


def small_cnn(num_classes: int, bn: str = "none", bn_batch_size: int | None = None,
              conv: ModuleDef = nn.Conv):
    """A two-convolution network for 8×8 digits: seconds per epoch on a laptop CPU."""
    return ConvNet(
        num_classes=num_classes,
        conv_kernels=(3, 3),
        conv_channels=(16, 32),
        pool_after=(True, True),
        fc_widths=(64,),
        bn=bn,
        bn_batch_size=bn_batch_size,
        conv=conv,
    )
