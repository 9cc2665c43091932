"""What training carries from step to step: every lane's state, and the counters."""

from typing import Any

import flax
import jax


@flax.struct.dataclass
class LaneState:
    """Everything a lane owns; in a TrainState every leaf has a leading lane axis."""

    params: Any
    batch_stats: Any  # {} for models without BatchNorm
    opt_state: Any
    diverged: jax.Array  # bool
    diverged_step: jax.Array  # int32: the step whose update was not finite; -1 if none
    # float32: a training loss above it marks the lane diverged (engine/step.py); inf, no
    # limit, until the loop sets it from the lane's initial loss (engine/loop.py).
    loss_limit: jax.Array


@flax.struct.dataclass
class TrainState:
    lanes: LaneState
    step: jax.Array  # int32 scalar: optimizer steps done
    epoch: jax.Array  # int32 scalar: epochs done


@flax.struct.dataclass
class LegacyLaneState:
    """A lane as checkpoints saved it before `loss_limit` (2026-12-06): read back, it resumes
    with no loss limit (`LaneState.from_legacy`), as it trained until then."""

    params: Any
    batch_stats: Any
    opt_state: Any
    diverged: jax.Array
    diverged_step: jax.Array


def legacy_of(state: TrainState) -> TrainState:
    """`state` with its lanes in the legacy structure (a template to read an old checkpoint)."""
    lanes = state.lanes
    return state.replace(lanes=LegacyLaneState(lanes.params, lanes.batch_stats,
                                               lanes.opt_state, lanes.diverged,
                                               lanes.diverged_step))


def from_legacy(legacy: TrainState, like: TrainState) -> TrainState:
    """A legacy state with `like`'s loss_limit leaf (inf: no limit), placed like it."""
    lanes = legacy.lanes
    limit = jax.numpy.full_like(like.lanes.loss_limit, jax.numpy.inf)
    return legacy.replace(lanes=LaneState(lanes.params, lanes.batch_stats, lanes.opt_state,
                                          lanes.diverged, lanes.diverged_step, limit))
