"""Saving and restoring a training state at an epoch boundary.

The state holds everything a run needs to continue (weights, BN statistics, optimizer
state, divergence flags, step and epoch counters); randomness is derived from the seed and
the counters, so a restored run continues exactly. The file is Flax's msgpack
serialization, written to a temporary name and renamed so that a crash never leaves a
half-written checkpoint.
"""

import os

from flax import serialization


def save_state(path: str, state) -> None:
    path = os.fspath(path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.to_bytes(state))
    os.replace(tmp, path)


def restore_state(path: str, template):
    """The state saved at `path`, in the structure of `template` (e.g. a fresh `init`)."""
    with open(path, "rb") as f:
        return serialization.from_bytes(template, f.read())
