"""Lanes: the runs that one compiled program trains side by side.

A lane is one (seed, η̃) pair of the grid. Everything a lane owns is a pytree whose leaves
carry a leading lane axis of size K; its hyperparameters are traced arrays of shape (K,),
so a new grid of the same size reuses the compiled program.

Lanes are ordered seed-major: (seed₀, η̃₀), (seed₀, η̃₁), …, (seed₁, η̃₀), … Lanes with the
same seed share their initial weights and their data order, so by default (one seed) every
lane sees the same initialization and the same batches and only η̃ differs.
"""

import dataclasses

import flax
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class LaneHparams:
    """Per-lane hyperparameters, each of shape (K,)."""

    base_lr: jax.Array  # the swept value (η̃ = η/m for the paper's SGD; optim.Optimizer)
    weight_decay: jax.Array  # λ of the L2 term (or decoupled decay) on kernels
    warmup_fraction: jax.Array  # fraction of training spent ramping η up from η/32
    momentum: jax.Array  # heavy-ball μ, or Adam's β₁; unused by plain SGD
    seed_index: jax.Array  # int32: which of the program's seeds this lane uses
    beta2: jax.Array  # Adam's β₂ at this batch size (optim.beta2_for); unused by SGD
    epsilon: jax.Array  # Adam's ε; unused by SGD


@dataclasses.dataclass(frozen=True)
class LaneGrid:
    """The grid as plain Python values: what results tables and logs are written from."""

    seeds: tuple[int, ...]
    base_lrs: tuple[float, ...]
    weight_decay: float
    warmup_fraction: float
    momentum: float
    beta2: float = 0.999
    epsilon: float = 1e-8

    @property
    def num_lanes(self) -> int:
        return len(self.seeds) * len(self.base_lrs)

    def lanes(self) -> list[tuple[int, float]]:
        """(seed, η̃) of every lane, in lane order."""
        return [(seed, lr) for seed in self.seeds for lr in self.base_lrs]

    def hparams(self) -> LaneHparams:
        k = self.num_lanes
        return LaneHparams(
            base_lr=jnp.asarray([lr for _, lr in self.lanes()], jnp.float32),
            weight_decay=jnp.full((k,), self.weight_decay, jnp.float32),
            warmup_fraction=jnp.full((k,), self.warmup_fraction, jnp.float32),
            momentum=jnp.full((k,), self.momentum, jnp.float32),
            seed_index=jnp.asarray(np.repeat(np.arange(len(self.seeds)), len(self.base_lrs)),
                                   jnp.int32),
            beta2=jnp.full((k,), self.beta2, jnp.float32),
            epsilon=jnp.full((k,), self.epsilon, jnp.float32),
        )


def tree_index(tree, i):
    """Lane `i` of a lane-stacked pytree."""
    return jax.tree.map(lambda x: x[i], tree)


def tree_stack(trees):
    """Stacks same-structured pytrees along a new leading lane axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def tree_slice(tree, start: int, stop: int):
    """Lanes [start, stop) of a lane-stacked pytree."""
    return jax.tree.map(lambda x: x[start:stop], tree)


def tree_concatenate(trees):
    """Joins lane-stacked pytrees along the lane axis."""
    return jax.tree.map(lambda *xs: jnp.concatenate(xs), *trees)
