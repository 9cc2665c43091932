"""The noise-scale probe's program (issue 14) in two forms, compile and run time side by side:
the gradients of the probe's batches vmapped ('vmap', as it was) or summed one batch at a
time in a lax.scan ('scan', LaneStep.gradient_moments now), for K = 13, 4 and 1 lanes of
the default config (small CNN on digits, m = 2, 2 probe batches of 32), one device. Both
give the same moments (printed). Since the probe's error was added, the scan form also sums
each group of batches apart (its leave-one-group-out moments): it now does more than the
vmapped form beside it.

    python docs/probes/noise_probe_compile.py [REPEATS]
"""
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from smallbatch_jax.config_args import load_config
from smallbatch_jax.engine.step import LaneStep, sum_of_squares
from smallbatch_jax.run.build import create_run, prepare


def vmapped(self, lane, images, labels):
    """gradient_moments as it was before the scan (4375d0e … 0ab4471)."""
    grads = jax.vmap(lambda x, y: self.probe_gradient(lane, x, y))(images, labels)
    small = jnp.mean(jax.vmap(sum_of_squares)(grads))
    big = sum_of_squares(jax.tree.map(lambda g: jnp.mean(g, axis=0), grads))
    return small, big


repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
config = load_config("configs/default.py")
config.batch_size = 2
config.strategy.preset = "reference"  # every lane in one program
spec = prepare(config)
grid = spec.grid
forms = {"scan": LaneStep.gradient_moments, "vmap": vmapped}
print(f"{jax.devices()[0].device_kind}, jax {jax.__version__}, {repeats} repeats")
for num_lanes in (13, 4, 1):
    for name, method in forms.items():
        LaneStep.gradient_moments = method
        # A new trainer per form: its jitted probe traces the form set above.
        run = create_run(spec)
        trainer = run.trainer
        state, hparams, source = trainer.start(jnp.asarray(grid.seeds, jnp.int32),
                                               grid.hparams(), run.source)
        probe_batch = source.probe_batch(grid.seeds, 0, spec.probe)
        lanes, lane_hparams = (jax.tree.map(lambda x: x[:num_lanes], tree)
                               for tree in (state.lanes, hparams))
        start = time.perf_counter()
        program = trainer.programs.probe.lower(lanes, lane_hparams, probe_batch).compile()
        compile_s = time.perf_counter() - start
        jax.block_until_ready(program(lanes, lane_hparams, probe_batch))
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            small, big = jax.block_until_ready(program(lanes, lane_hparams, probe_batch))[:2]
            seconds.append(time.perf_counter() - start)
        print(f"K = {num_lanes:2d} {name}: compile {compile_s:.1f} s, run "
              f"{1e3 * statistics.median(seconds):.1f} ms; lane 0: |G_small|² "
              f"{float(np.asarray(small)[0]):.4f}, |G_big|² {float(np.asarray(big)[0]):.4f}",
              flush=True)
LaneStep.gradient_moments = forms["scan"]
