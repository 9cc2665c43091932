"""Exploration (docs/benchmarks.md): what divergence handling costs per step, by parts: the
current check (loss, Σg², BN finite, then jnp.where), the loss alone, Σg² without freezing,
none. Not usable lowerings: measurements only. Usage: python docs/probes/divergence_check_cost.py M K REPEATS"""
import sys
from smallbatch_jax.sharding import use_cpu_cores
use_cpu_cores()
import jax, jax.numpy as jnp, numpy as np, time, optax
from smallbatch_jax import benchmark, trainer as T

m = int(sys.argv[1]); k = int(sys.argv[2]); repeats = int(sys.argv[3])
steps = max(2, 256 // m)
from smallbatch_jax.models import create_model
from smallbatch_jax.lowering import choose_lowering
model = create_model("alexnet", 10)
ds = benchmark.synthetic_dataset((32, 32, 3), 10, max(m * steps, k * m))
lanes_ds = benchmark.synthetic_dataset((32, 32, 3), 10, m * steps)
auto = choose_lowering("cpu", m, min(jax.local_device_count(), k))
orig_sos = T.sum_of_squares
orig_step = T.LaneTrainer._lane_step
def nocheck(self, lane, hp, images, labels, step, total_steps):
    def loss_fn(params):
        logits, bs = self._apply(params, lane.batch_stats, images, train=True)
        return T.cross_entropy(logits, labels).mean(), bs
    (loss, bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(lane.params)
    updates, opt_state = self._optimizer(hp, total_steps).update(grads, lane.opt_state, lane.params)
    return T.LaneState(optax.apply_updates(lane.params, updates), bs, opt_state, lane.diverged, lane.diverged_step), loss
runners = {"baseline": benchmark.python_loop_runner(model, ds, m, k, steps)}
runners["current"] = benchmark.lanes_runner(model, lanes_ds, m, k, auto)
T.sum_of_squares = lambda tree: jnp.float32(0.0)
runners["loss_only"] = benchmark.lanes_runner(model, lanes_ds, m, k, auto)
T.sum_of_squares = orig_sos
def nowhere(self, lane, hp, images, labels, step, total_steps):
    def loss_fn(params):
        logits, bs = self._apply(params, lane.batch_stats, images, train=True)
        return T.cross_entropy(logits, labels).mean(), bs
    (loss, bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(lane.params)
    healthy = jnp.isfinite(loss) & jnp.isfinite(T.sum_of_squares(grads))
    frozen = lane.diverged | ~healthy
    updates, opt_state = self._optimizer(hp, total_steps).update(grads, lane.opt_state, lane.params)
    return T.LaneState(optax.apply_updates(lane.params, updates), bs, opt_state, frozen, jnp.where(frozen & ~lane.diverged, step, lane.diverged_step)), loss
T.LaneTrainer._lane_step = nowhere
runners["sos_nowhere"] = benchmark.lanes_runner(model, lanes_ds, m, k, auto)
T.LaneTrainer._lane_step = orig_step
T.LaneTrainer._lane_step = nocheck
runners["nocheck"] = benchmark.lanes_runner(model, lanes_ds, m, k, auto)
T.LaneTrainer._lane_step = orig_step
t = benchmark.time_interleaved(runners, repeats)
base = t["baseline"].median_step_s
print(f"m={m} K={k}")
for name, timing in t.items():
    print(f"{name:10s} {1e3*timing.median_step_s:8.2f} ms  base/this {base/timing.median_step_s:5.3f}  {[round(1e3*s,2) for s in timing.step_s]}")
