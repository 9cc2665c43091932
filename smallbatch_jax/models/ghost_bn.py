"""BatchNorm whose statistics are computed over sub-batches of m_BN examples ("ghost" BN).

The paper (§3.6) splits the SGD batch of m examples into m/m_BN groups and normalizes each
group with its own statistics, as data-parallel BatchNorm does per worker. The weight update
still uses the whole batch. With m_BN = m this is ordinary BatchNorm.

Choices the paper leaves open (paper_protocol.md §5):
- The running averages used at evaluation are updated with the *mean over groups* of the
  group statistics (biased variance, as Flax's BatchNorm), momentum 0.9, ε = 1e-5.
- The variance is computed in two passes, E[(x − E[x])²], which stays accurate for the
  small groups this project is about.
- Statistics and normalization are computed in float32 at least, whatever the input's dtype
  (bfloat16 under config.precision 'bf16'), and the output is in the input's dtype, as
  Flax's BatchNorm does: in bfloat16 the backward pass through the normalization, which
  cancels much of its incoming gradient, doubled the gradient's error (small_cnn_bn on
  digits, m = 32: 15% from float32's, against 7.7% normalizing in float32).

No `axis_name`: statistics never cross the lane axis of the trainer (each learning-rate
lane has its own), nor devices.
"""

import jax.numpy as jnp
from flax import linen as nn
from jax import lax


class GhostBatchNorm(nn.Module):
    """BatchNorm over the last axis with statistics per group of `group_size` examples.

    Attributes:
      group_size: m_BN. None normalizes the whole batch as one group (plain BatchNorm).
        In training, the batch size must be a multiple of it.
      use_running_average: if True, normalize with the running averages (evaluation).
      momentum: decay of the running averages.
      epsilon: added to the variance.
    """

    group_size: int | None = None
    use_running_average: bool | None = None
    momentum: float = 0.9
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None):
        use_running_average = nn.merge_param(
            "use_running_average", self.use_running_average, use_running_average
        )
        features = x.shape[-1]
        dtype = x.dtype  # of the output; the statistics in float32 at least
        x = x.astype(jnp.promote_types(dtype, jnp.float32))
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)

        if use_running_average:
            mean, var = running_mean.value, running_var.value
            y = (x - mean) * lax.rsqrt(var + self.epsilon)
        else:
            batch = x.shape[0]
            group = self.group_size or batch
            if batch % group:
                raise ValueError(
                    f"GhostBatchNorm: batch of {batch} is not a multiple of group_size={group}"
                )
            # (batch, ..., C) -> (groups, group, ..., C); statistics over all but groups and C.
            grouped = x.reshape((batch // group, group) + x.shape[1:])
            reduce_axes = tuple(range(1, grouped.ndim - 1))
            mean = grouped.mean(axis=reduce_axes, keepdims=True)
            var = jnp.square(grouped - mean).mean(axis=reduce_axes, keepdims=True)
            y = ((grouped - mean) * lax.rsqrt(var + self.epsilon)).reshape(x.shape)
            if not self.is_initializing():
                group_axes = tuple(range(grouped.ndim - 1))
                m = self.momentum
                running_mean.value = m * running_mean.value + (1 - m) * mean.mean(group_axes)
                running_var.value = m * running_var.value + (1 - m) * var.mean(group_axes)
        return (y * scale + bias).astype(dtype)
