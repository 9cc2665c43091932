"""Issue 12: what a checkpoint costs, per model and K lanes (the state perturbed so that no
two lanes share weights, as after training): its size on disk and the time to save (Orbax, synchronous, with the state's SHA-256) and to restore (with the check),
medians of `repeats`.

    python docs/probes/checkpoint_cost.py MODEL K [REPEATS]
"""
import os
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

from smallbatch_jax.engine import LaneStep, LaneTrainer, plan_for
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model
from smallbatch_jax.optim import Optimizer
from smallbatch_jax.run.checkpoint import RunCheckpoints

name, k = sys.argv[1], int(sys.argv[2])
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
trainer = LaneTrainer(LaneStep(create_model(name, 10), 8, (32, 32, 3),
                               optimizer=Optimizer("momentum")),
                      plan_for(Strategy(), k))
grid = LaneGrid((0,), tuple(2.0**-i for i in range(k)), 5e-4, 0.0, 0.9)
state = trainer.init(jnp.asarray(grid.seeds), grid.hparams())
# As after training: every lane's weights and momentum its own (at init the lanes share
# their weights and the momentum is zero, which compresses far better than a trained state).
leaves, treedef = jax.tree.flatten(state.lanes)
keys = jax.random.split(jax.random.key(0), len(leaves))
state = state.replace(lanes=jax.tree.unflatten(treedef, [
    x + 0.01 * jax.random.normal(key, x.shape, x.dtype)
    if jnp.issubdtype(x.dtype, jnp.floating) else x for x, key in zip(leaves, keys)]))
jax.block_until_ready(state)
state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
with tempfile.TemporaryDirectory() as directory:
    checkpoints = RunCheckpoints(directory, keep=2)
    saves, restores = [], []
    for i in range(repeats):
        state = state.replace(step=jnp.int32(i + 1))
        start = time.perf_counter()
        checkpoints.save(state, {"history": {}, "wall_seconds": 0.0})
        saves.append(time.perf_counter() - start)
        start = time.perf_counter()
        checkpoints.restore_latest(state)
        restores.append(time.perf_counter() - start)
    newest = os.path.join(directory, str(checkpoints.steps()[-1]))
    disk = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(newest)
               for f in files)
    checkpoints.close()
print(f"{name} K={k} (momentum buffers included): state {state_bytes / 2**20:.1f} MiB, "
      f"checkpoint on disk {disk / 2**20:.1f} MiB; save median {statistics.median(saves):.2f} s "
      f"(min {min(saves):.2f}), restore median {statistics.median(restores):.2f} s "
      f"(min {min(restores):.2f}), {repeats} repeats, backend {jax.default_backend()}")
