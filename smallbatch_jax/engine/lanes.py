"""Lanes: the runs that one compiled program trains side by side.

A lane is one point of the grid: a seed, an η̃ and a value of each other hyperparameter
(weight decay λ, momentum μ or Adam's β₁, β₂, ε, the warm-up fraction), each of which may be
swept too: the lanes are the product of the seeds and every hyperparameter's values.
Everything a lane owns is a pytree whose leaves carry a leading lane axis of size K; its
hyperparameters are traced arrays of shape (K,), so a new grid of the same size reuses the
compiled program, whichever hyperparameters it sweeps.

Instead of a product, some of the hyperparameters may take an explicit list of settings
(`points`, a non-product design: e.g. (λ, μ) ∈ {(5·10⁻⁴, 0.9), (0, 0)}), crossed with η̃, the
seeds and the other hyperparameters' values.

Lanes are ordered seed-major, then η̃, then the other swept values in the order of SWEPT
(itertools.product), then the points: (seed₀, η̃₀, λ₀), (seed₀, η̃₀, λ₁), …, (seed₀, η̃₁,
λ₀), … Lanes with the same seed share their initial weights and their data order, so by
default (one seed) every lane sees the same initialization and the same batches and only its
hyperparameters differ.
"""

import dataclasses
import itertools
import math

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
    # The global norm the gradient is clipped to (inf: not clipped); read only where the
    # optimizer clips (optim.Optimizer.clip).
    grad_clip: jax.Array


# The hyperparameters a grid may sweep besides η̃, as LaneGrid and LaneHparams name them.
SWEPT = ("weight_decay", "momentum", "beta2", "epsilon", "warmup_fraction", "grad_clip")


def values_of(value) -> tuple[float, ...]:
    """A hyperparameter's values: a tuple (swept) or one number."""
    return tuple(float(v) for v in value) if isinstance(value, (tuple, list)) else (float(value),)


@dataclasses.dataclass(frozen=True)
class LaneGrid:
    """The grid as plain Python values: what results tables and logs are written from. Each
    hyperparameter of SWEPT is one number, or a tuple of the values swept."""

    seeds: tuple[int, ...]
    base_lrs: tuple[float, ...]
    weight_decay: float | tuple[float, ...]
    warmup_fraction: float | tuple[float, ...]
    momentum: float | tuple[float, ...]
    beta2: float | tuple[float, ...] = 0.999
    epsilon: float | tuple[float, ...] = 1e-8
    grad_clip: float | tuple[float, ...] = 0.0  # (0: that lane is not clipped)
    # A non-product design: settings ((name, value), …) of some names of SWEPT, each the
    # same names; those names' own fields are then unused.
    points: tuple[tuple[tuple[str, float], ...], ...] = ()

    @property
    def point_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.points[0]) if self.points else ()

    def _axes(self) -> list[tuple[float, ...]]:
        """The values of each name of SWEPT that the product takes (one dummy for names
        the points set)."""
        return [(math.nan,) if name in self.point_names else values_of(getattr(self, name))
                for name in SWEPT]

    @property
    def swept(self) -> dict[str, tuple[float, ...]]:
        """{name: values} of the hyperparameters of SWEPT with more than one value."""
        swept = {}
        for name in SWEPT:
            values = (tuple(dict.fromkeys(dict(p)[name] for p in self.points))
                      if name in self.point_names else values_of(getattr(self, name)))
            if len(values) > 1:
                swept[name] = values
        return swept

    @property
    def num_lanes(self) -> int:
        return (len(self.seeds) * len(self.base_lrs) * math.prod(map(len, self._axes()))
                * max(len(self.points), 1))

    def settings(self) -> list[dict]:
        """Every lane's seed, η̃ ('base_lr') and value of each hyperparameter of SWEPT, in
        lane order."""
        points = [dict(p) for p in self.points] or [{}]
        return [{"seed": seed, "base_lr": lr, **dict(zip(SWEPT, values)), **point}
                for seed in self.seeds for lr in self.base_lrs
                for values in itertools.product(*self._axes()) for point in points]

    def lanes(self) -> list[tuple[int, float]]:
        """(seed, η̃) of every lane, in lane order."""
        return [(lane["seed"], lane["base_lr"]) for lane in self.settings()]

    def hparams(self) -> LaneHparams:
        settings = self.settings()
        column = lambda name: jnp.asarray([lane[name] for lane in settings], jnp.float32)
        per_seed = self.num_lanes // len(self.seeds)
        clip = column("grad_clip")
        return LaneHparams(
            base_lr=column("base_lr"),
            weight_decay=column("weight_decay"),
            warmup_fraction=column("warmup_fraction"),
            momentum=column("momentum"),
            seed_index=jnp.asarray(np.repeat(np.arange(len(self.seeds)), per_seed), jnp.int32),
            beta2=column("beta2"),
            epsilon=column("epsilon"),
            grad_clip=jnp.where(clip > 0, clip, jnp.inf),
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
