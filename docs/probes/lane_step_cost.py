"""Exploration (issue 26, docs/benchmarks.md "Tuning for the model at hand"): where a lane step
of a small dense model loses to a user's plain jitted step. Everything on ONE CPU device (the
default: `use_cpu_cores` is not called), so both sides get the same cores; S steps per timed
repeat; interleaved repeats, medians.

  plain_loop   K sequential runs of a user's jitted step, batches sliced on the host (the
               benchmark's baseline)
  plain_scan   one plain model, its S steps scanned in one jit, data on the device: the
               baseline without dispatch (× K runs: per lane). The baseline's step draws
               its dropout masks from a fixed key, which XLA hoists out of the scan: for a
               model with dropout (the zoo's MLP) a lower bound, the masks drawn once
  ours_1_unrolled       our trainer's program, one lane, S steps scanned, the lane step
                        not vmapped (lane_map 'unrolled': CPU auto's choice above m = 16)
  ours_1_unrolled_bare  the same with the lane step's divergence check and freeze removed
  ours_1       the same under vmap (over one lane)
  ours_1_bare  the same, no check and freeze
  ours_K       K lanes vmapped in one program on the one device
  ours_K_bare  the same, no check and freeze

and XLA's cost analysis (flops, bytes accessed) of one step of each program, per lane.
Not usable strategies: measurements only.

Usage: python docs/probes/lane_step_cost.py [MODEL] [M] [K] [REPEATS] [S]
       (MODEL a zoo name, default mlp; M 2; K 13; REPEATS 7; S 64)
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from smallbatch_jax.diagnostics import benchmark, timing, zoo
from smallbatch_jax.engine import step as S
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model

DEFAULTS = ["mlp", "2", "13", "7", "64"]
name, *numbers = sys.argv[1:] + DEFAULTS[len(sys.argv) - 1:]
m, k, repeats, steps = (int(n) for n in numbers)
model_name, shape, kind = zoo.ZOO[name]
data = timing.synthetic_dataset(shape, 10, m * steps, input_kind=kind)
original_step = S.LaneStep.train_step


def bare_step(self, lane, hp, images, labels, seed, step, total_steps):
    """The lane step without the divergence check and freeze."""
    dropout = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), S.DROPOUT), step)

    def loss_fn(params):
        logits, batch_stats = self.apply(params, lane.batch_stats, images, train=True,
                                         rngs={"dropout": dropout})
        return self.objective.loss(logits, labels).mean(), batch_stats
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(lane.params)
    updates, opt_state = self.transformation(hp, total_steps).update(
        grads, lane.opt_state, lane.params)
    return lane.replace(params=optax.apply_updates(lane.params, updates),
                        batch_stats=batch_stats, opt_state=opt_state), loss


def ours(num_lanes: int, bare: bool, lane_map: str = "vmap"):
    S.LaneStep.train_step = bare_step if bare else original_step
    strategy = Strategy(lane_map=lane_map, conv="xla", step_loop="scan",
                        steps_per_dispatch=steps)
    try:
        config = timing.common_run_config(model_name, m, strategy)
        runner, info = timing.lanes_runner(config, data, num_lanes, steps)
        timed = timing.timed_lanes(config, data, num_lanes)
        per = timed.trainer.plan.dispatch_lengths(timed.source.steps_per_epoch)[0]
        args = (timed.state.lanes, timed.hparams, timed.dispatch(per), timed.seeds,
                np.int32(0), timed.total_steps)
        cost = timed.trainer.programs.train.lower(*args, num_steps=per).compile().cost_analysis()
    finally:
        S.LaneStep.train_step = original_step
    return runner, _per_lane_step(cost, num_lanes)


def _per_lane_step(cost, count):
    """XLA's cost analysis counts a loop's body once: one step, `count` lanes."""
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {key: float(cost.get(key, np.nan)) / count for key in ("flops", "bytes accessed")}


def plain_scan():
    """One plain model's S steps in one scanned jit, its data on the device; K runs."""
    model = create_model(model_name, 10)
    step, tx = benchmark._plain_train_step(model, m, steps)
    variables = model.init(jax.random.key(0), jnp.asarray(data.train_images[:1]), train=False)
    images = jnp.asarray(data.train_images).reshape((steps, m) + tuple(shape))
    labels = jnp.asarray(data.train_labels).reshape(steps, m)

    @jax.jit
    def train(params, batch_stats, opt_state, images, labels):
        def body(carry, batch):
            params, batch_stats, opt_state = carry
            params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state, *batch,
                                                        data.mean, data.std)
            return (params, batch_stats, opt_state), loss
        return lax.scan(body, (params, batch_stats, opt_state), (images, labels))

    start = (variables["params"], variables.get("batch_stats", {}),
             tx.init(variables["params"]))
    cost = train.lower(*start, images, labels).compile().cost_analysis()

    def run(count):
        for _ in range(count):
            for _ in range(k):
                out = train(*start, images, labels)
        jax.block_until_ready(out)

    return timing.timed_runner(run, 1, steps), _per_lane_step(cost, 1)


runners, costs = {}, {}
runners["plain_loop"] = benchmark.python_loop_runner(create_model(model_name, 10), data, m, k,
                                                     steps)
runners["plain_scan"], costs["plain_scan"] = plain_scan()
for lanes, bare, lane_map in ((1, False, "unrolled"), (1, True, "unrolled"), (1, False, "vmap"),
                              (1, True, "vmap"), (k, False, "vmap"), (k, True, "vmap")):
    label = (f"ours_{1 if lanes == 1 else 'K'}{'_unrolled' if lane_map == 'unrolled' else ''}"
             f"{'_bare' if bare else ''}")
    runners[label], costs[label] = ours(lanes, bare, lane_map)
times = timing.time_interleaved(runners, repeats)
per_lane = {label: k if label.startswith(("plain", "ours_K")) else 1 for label in runners}
print(f"{name} m={m} K={k} S={steps} repeats={repeats} device={jax.devices()[0].device_kind}"
      f" jax {jax.__version__}")
print(f"{'':12s} {'ms/step':>8s} {'ms/lane step':>12s} {'MFLOP/lane step':>15s} "
      f"{'MB/lane step':>12s}  repeats (ms/step)")
for label, t in times.items():
    c = costs.get(label, {})
    print(f"{label:12s} {1e3 * t.median_step_s:8.3f} {1e3 * t.median_step_s / per_lane[label]:12.3f}"
          f" {c.get('flops', np.nan) / 1e6:15.3f} {c.get('bytes accessed', np.nan) / 1e6:12.3f}"
          f"  {[round(1e3 * s, 2) for s in t.step_s]}")
