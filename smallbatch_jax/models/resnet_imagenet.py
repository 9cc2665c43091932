"""ResNet-50 for ImageNet (He et al. 2015a, Table 1), with ghost BatchNorm (Figs 12, 14).

The original ("v1") network: a 7×7/2 convolution with 64 channels, 3×3/2 max-pool, four
stages of 3, 4, 6, 3 bottleneck blocks (1×1, 3×3, 1×1 convolutions; 64·4, 128·4, 256·4,
512·4 output channels), global average pooling, a dense classifier. The first block of
stages 2–4 downsamples with stride 2 in its first 1×1 convolution, as in the paper ("v1";
many libraries move the stride to the 3×3, "v1.5"). Shortcuts that change shape are 1×1
projections with BN (option B). BN after every convolution, before the ReLU; the
residual's last BN starts with γ = 1 (the paper does not zero-initialize it).

25,557,032 parameters for 1,000 classes (tests/models/test_models.py checks it).
"""

from flax import linen as nn

from smallbatch_jax.models.convnet import ModuleDef, he_normal
from smallbatch_jax.models.ghost_bn import GhostBatchNorm

STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))  # (blocks, bottleneck width)
EXPANSION = 4


class Bottleneck(nn.Module):
    width: int
    stride: int
    bn_batch_size: int | None
    conv: ModuleDef = nn.Conv

    @nn.compact
    def __call__(self, x, train: bool):
        def conv(y, channels, kernel, stride=1):
            return self.conv(channels, (kernel, kernel), strides=(stride, stride),
                             padding="SAME", use_bias=False, kernel_init=he_normal)(y)

        def normalize(y):
            return GhostBatchNorm(self.bn_batch_size, use_running_average=not train)(y)

        out_channels = self.width * EXPANSION
        y = nn.relu(normalize(conv(x, self.width, 1, self.stride)))
        y = nn.relu(normalize(conv(y, self.width, 3)))
        y = normalize(conv(y, out_channels, 1))
        shortcut = x
        if self.stride != 1 or x.shape[-1] != out_channels:
            shortcut = normalize(conv(x, out_channels, 1, self.stride))
        return nn.relu(y + shortcut)


class ImageNetResNet50(nn.Module):
    """ResNet-50 v1 for 224×224 inputs (any size ≥ 32 works: the pooling is global)."""

    num_classes: int = 1000
    bn_batch_size: int | None = None
    conv: ModuleDef = nn.Conv

    @nn.compact
    def __call__(self, x, train: bool):
        x = self.conv(64, (7, 7), strides=(2, 2), padding="SAME", use_bias=False,
                      kernel_init=he_normal)(x)
        x = nn.relu(GhostBatchNorm(self.bn_batch_size, use_running_average=not train)(x))
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
        for stage, (blocks, width) in enumerate(STAGES):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                x = Bottleneck(width, stride, self.bn_batch_size, self.conv)(x, train)
        x = x.mean(axis=(1, 2))
        return nn.Dense(self.num_classes, kernel_init=he_normal)(x)
