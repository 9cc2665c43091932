"""Issue 11: device memory of one training dispatch with and without the lane state donated,
from XLA's compiled memory analysis (arguments + outputs − aliased + temporaries).

    python docs/probes/donation_memory.py MODEL M K
"""
import sys

import jax
import jax.numpy as jnp

from smallbatch_jax.diagnostics.benchmark import synthetic_dataset
from smallbatch_jax.engine import DeviceBatches, LaneStep, Programs, plan_for
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model

name, m, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ds = synthetic_dataset((32, 32, 3), 10, 4 * m)
source = DeviceBatches(ds, m, 8)
steps = source.steps_per_epoch
for donate in (False, True):
    programs = Programs(LaneStep(create_model(name, 10), m, (32, 32, 3)),
                        plan_for(Strategy(), k, donate=donate))
    hparams = jax.eval_shape(lambda: LaneGrid((0,), (1.0,) * k, 0.0, 0.0, 0.0).hparams())
    seeds = jax.ShapeDtypeStruct((1,), jnp.int32)
    lanes = jax.eval_shape(programs._init, seeds, hparams).lanes
    scalar = jax.ShapeDtypeStruct((), jnp.int32)
    stats = programs.train.lower(lanes, hparams, source.abstract_dispatch(1, steps), seeds,
                                 scalar, scalar, num_steps=steps).compile().memory_analysis()
    mib = lambda b: b / 2**20
    lane_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(lanes))
    print(f"{name} m={m} K={k} donate={donate}: lanes {mib(lane_bytes):.1f} MiB, arguments "
          f"{mib(stats.argument_size_in_bytes):.1f}, outputs {mib(stats.output_size_in_bytes):.1f}, "
          f"aliased {mib(stats.alias_size_in_bytes):.1f}, temporaries "
          f"{mib(stats.temp_size_in_bytes):.1f}; peak "
          f"{mib(stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes + stats.temp_size_in_bytes):.1f} MiB")
