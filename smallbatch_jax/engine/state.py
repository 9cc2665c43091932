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
