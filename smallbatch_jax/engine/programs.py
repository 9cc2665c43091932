"""The compiled programs: one lane's math (train/step.py) over K lanes and many steps.

Three programs per trainer, each jitted once:
- `init(seeds, hparams)`: every lane's initial state (lanes of one seed share weights);
- `train(lanes, hparams, dispatch, seeds, step, total_steps, num_steps=…)`: `num_steps`
  steps of every lane on a dispatch's batches (train/batches.py); returns the lanes and each
  lane's summed loss;
- `evaluate(lanes, test_batch)`: every lane's correct predictions and summed loss.

How the lanes map (`vmap`, unrolled, `lax.map`) and how the steps loop (`lax.scan`,
unrolled) is the plan's strategy (strategy.py); the matmul precision is traced in
(`jax.default_matmul_precision`), and precision 'bf16' applies the model in bfloat16 in all
three of training, evaluation and the noise probe (the plan's `compute_dtype` given to the
LaneStep); with the plan's `donate`, a dispatch's lanes are donated to it, so the device
holds one copy of the lane state instead of two.

Hyperparameters, seeds, step counters and data are arguments, never constants of a
program: every grid of the same size runs the same compiled code. `traces` counts how often
each program was traced (each trace is a compilation).
"""

import collections
import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax import lax

from smallbatch_jax.engine.lanes import LaneGrid, LaneHparams, tree_index, tree_stack
from smallbatch_jax.engine.state import LaneState, TrainState
from smallbatch_jax.engine.step import INIT, LaneStep, augment_batch, standardize


def map_lanes(fn, in_axes, lane_map: str):
    """`fn` applied to every lane: like `jax.vmap(fn, in_axes)`, computed as `lane_map` says
    ('vmap', 'unrolled' or 'map'). `in_axes` has one entry per positional argument: 0 for a
    lane-stacked argument, None for one that every lane shares."""
    if lane_map == "vmap":
        return jax.vmap(fn, in_axes=in_axes)
    if lane_map == "map":
        def mapped(*args):
            def one_lane(lane_args):
                return fn(*(a if axis == 0 else shared
                            for a, shared, axis in zip(lane_args, args, in_axes)))

            return lax.map(one_lane, tuple(a if axis == 0 else None
                                           for a, axis in zip(args, in_axes)))

        return mapped

    def unrolled(*args):
        stacked = [a for a, axis in zip(args, in_axes) if axis == 0]
        num_lanes = jax.tree.leaves(stacked)[0].shape[0]
        outputs = []
        for lane in range(num_lanes):
            lane_args = [tree_index(a, lane) if axis == 0 else a for a, axis in zip(args, in_axes)]
            outputs.append(fn(*lane_args))
        return tree_stack(outputs)

    return unrolled


def loop_steps(body, carry, num_steps: int, step_loop: str, scan_unroll: int = 1):
    """Runs `carry = body(carry, i)` for i in 0 … num_steps − 1, as a `lax.scan` ('scan',
    `scan_unroll` steps per iteration) or traced one step after another ('unrolled')."""
    if step_loop == "scan":
        carry, _ = lax.scan(lambda c, i: (body(c, i), None), carry, jnp.arange(num_steps),
                            unroll=min(scan_unroll, max(num_steps, 1)))
        return carry
    for i in range(num_steps):
        carry = body(carry, i)
    return carry


class Programs:
    """The jitted programs of one LaneStep under one plan (train/plan.py)."""

    def __init__(self, lane_step: LaneStep, plan, num_seeds: int = 1, augment: bool = False):
        # The plan decides the model's compute dtype (precision 'bf16': bfloat16).
        if lane_step.compute_dtype != plan.compute_dtype:
            lane_step = dataclasses.replace(lane_step, compute_dtype=plan.compute_dtype)
        self.lane_step, self.plan = lane_step, plan
        self.num_seeds, self.augment = num_seeds, augment
        self.traces = collections.Counter()
        self.init = jax.jit(self._init)
        self.train = jax.jit(self._at_precision(self._train), static_argnames="num_steps",
                             donate_argnums=(0,) if plan.donate else ())
        self.evaluate = jax.jit(self._at_precision(self._evaluate))
        self.probe = jax.jit(self._at_precision(self._probe))

    def _at_precision(self, fn):
        """`fn` traced under the plan's default matmul precision ('default' and 'bf16':
        unchanged)."""
        precision = self.plan.matmul_precision
        if precision is None:
            return fn

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            with jax.default_matmul_precision(precision):
                return fn(*args, **kwargs)

        return traced

    def _init(self, seeds: jax.Array, hparams: LaneHparams) -> TrainState:
        """Initial state: lanes with the same seed get the same weights."""
        self.traces["init"] += 1
        keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), INIT))(seeds)
        variables = jax.vmap(self.lane_step.init_variables)(keys)
        per_lane = jax.tree.map(lambda x: x[hparams.seed_index], variables)
        lanes = jax.vmap(self.lane_step.init_lane)(per_lane, hparams)
        return TrainState(lanes, step=jnp.zeros((), jnp.int32), epoch=jnp.zeros((), jnp.int32))

    def _train(self, lanes: LaneState, hparams: LaneHparams, dispatch, seeds, step,
               total_steps, *, num_steps: int, step_loop: str | None = None):
        """`num_steps` steps of every lane; `dispatch.batch(i)` is step i's raw batch of each
        seed, (images (S, m, ...), labels (S, m)); the steps looped as the strategy says
        unless `step_loop` says otherwise."""
        self.traces["train"] += 1
        strategy = self.plan.strategy
        # With one seed every lane sees the same batch: handed over once, unbatched, unless
        # the strategy copies it per lane (strategy.py's shared_batch: the faster for a
        # dense first layer, whose weights folding the lanes into it transposes every step).
        shared_batch = self.num_seeds == 1 and strategy.shared_batch
        batch_axis = None if shared_batch else 0
        lane_step = map_lanes(self.lane_step.train_step,
                              (0, 0, batch_axis, batch_axis, 0, None, None), strategy.lane_map)
        lane_seeds = seeds[hparams.seed_index]  # each lane's seed (its dropout stream)

        def body(carry, i):
            lanes, loss_sum = carry
            images, labels = dispatch.batch(i)
            images = standardize(images, dispatch.mean, dispatch.std)
            if self.augment:
                images = jax.vmap(augment_batch, in_axes=(0, None, 0))(seeds, step + i, images)
            if shared_batch:
                images, labels = images[0], labels[0]
            else:  # each lane its seed's batch (one seed: copies of one batch)
                images, labels = images[hparams.seed_index], labels[hparams.seed_index]
            lanes, loss = lane_step(lanes, hparams, images, labels, lane_seeds, step + i,
                                    total_steps)
            return lanes, loss_sum + loss

        loss_sum = jnp.zeros(hparams.base_lr.shape, jnp.float32)
        return loop_steps(body, (lanes, loss_sum), num_steps, step_loop or strategy.step_loop,
                          strategy.scan_unroll)

    def traceable_train(self, num_steps: int, step_loop: str | None = None):
        """The training dispatch of `num_steps` steps as a function to trace inside another
        program (not jitted; at the plan's precision; `step_loop`: as in loop_steps, default
        the strategy's): several grids in one program (concurrent_grids.py)."""
        return functools.partial(self._at_precision(self._train), num_steps=num_steps,
                                 step_loop=step_loop)

    def _evaluate(self, lanes: LaneState, test_batch):
        """Correct predictions and summed loss of every lane on one test batch."""
        self.traces["evaluate"] += 1
        images, labels, mask = test_batch.batch()
        images = standardize(images, test_batch.mean, test_batch.std)
        return map_lanes(self.lane_step.evaluate, (0, None, None, None, None, None),
                         self.plan.strategy.lane_map)(lanes, images, labels, mask,
                                                      test_batch.target_mean,
                                                      test_batch.target_std)

    def _probe(self, lanes: LaneState, hparams: LaneHparams, probe_batch):
        """Every lane's noise-scale probe (LaneStep.gradient_moments) on its seed's probe
        batches: `probe_batch.images` (S, n, b, ...), labels (S, n, b)."""
        self.traces["probe"] += 1
        images = standardize(probe_batch.images, probe_batch.mean, probe_batch.std)
        images, labels = images[hparams.seed_index], probe_batch.labels[hparams.seed_index]
        return map_lanes(self.lane_step.gradient_moments, (0, 0, 0),
                         self.plan.strategy.lane_map)(lanes, images, labels)

    def program_bytes(self, num_lanes: int, dispatch, num_steps: int) -> int:
        """Device memory of one training dispatch of `num_lanes` lanes, as XLA's compiled
        memory analysis reports it: arguments (the data set, or a streamed dispatch's
        batches), outputs and temporaries. `dispatch`: a dispatch or its shapes."""
        hparams = jax.eval_shape(lambda: LaneGrid(
            (0,), (1.0,) * num_lanes, 0.0, 0.0, 0.0).hparams())
        seeds = jax.ShapeDtypeStruct((self.num_seeds,), jnp.int32)
        state = jax.eval_shape(self._init, seeds, hparams)
        scalar = jax.ShapeDtypeStruct((), jnp.int32)
        compiled = self.train.lower(state.lanes, hparams, dispatch, seeds, scalar, scalar,
                                    num_steps=num_steps).compile()
        stats = compiled.memory_analysis()
        return (stats.argument_size_in_bytes + stats.output_size_in_bytes
                + stats.temp_size_in_bytes)
