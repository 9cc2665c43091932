"""Exploration (docs/benchmarks.md): what divergence handling costs per step, by parts: the
current check (loss, Σg since docs/probes/finite_check_cost.py, Σg² before; BN finite; then
jnp.where), the loss alone, Σg² without freezing, none. Not usable strategies: measurements
only. Usage: python docs/probes/divergence_check_cost.py M K REPEATS"""
import sys
from smallbatch_jax.engine.sharding import use_cpu_cores
use_cpu_cores()
import jax, jax.numpy as jnp, optax
from smallbatch_jax.diagnostics import benchmark
from smallbatch_jax.engine import step as S
from smallbatch_jax.engine.strategy import choose_strategy
from smallbatch_jax.models import create_model

m = int(sys.argv[1]); k = int(sys.argv[2]); repeats = int(sys.argv[3])
steps = max(2, 256 // m)
ds = benchmark.synthetic_dataset((32, 32, 3), 10, max(m * steps, k * m))
lanes_ds = benchmark.synthetic_dataset((32, 32, 3), 10, m * steps)
auto = choose_strategy("cpu", m, k, jax.local_device_count())
model = lambda: (lambda conv: create_model("alexnet", 10, conv=conv))
orig_sos = S.sum_of_elements
orig_step = S.LaneStep.train_step


def nocheck(self, lane, hp, images, labels, step, total_steps):
    def loss_fn(params):
        logits, bs = self.apply(params, lane.batch_stats, images, train=True)
        return S.cross_entropy(logits, labels).mean(), bs
    (loss, bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(lane.params)
    updates, opt_state = self.transformation(hp, total_steps).update(grads, lane.opt_state, lane.params)
    return S.LaneState(optax.apply_updates(lane.params, updates), bs, opt_state, lane.diverged, lane.diverged_step), loss


def nowhere(self, lane, hp, images, labels, step, total_steps):
    def loss_fn(params):
        logits, bs = self.apply(params, lane.batch_stats, images, train=True)
        return S.cross_entropy(logits, labels).mean(), bs
    (loss, bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(lane.params)
    healthy = jnp.isfinite(loss) & jnp.isfinite(S.sum_of_squares(grads))
    frozen = lane.diverged | ~healthy
    updates, opt_state = self.transformation(hp, total_steps).update(grads, lane.opt_state, lane.params)
    return S.LaneState(optax.apply_updates(lane.params, updates), bs, opt_state, frozen, jnp.where(frozen & ~lane.diverged, step, lane.diverged_step)), loss


runners = {"baseline": benchmark.python_loop_runner(create_model("alexnet", 10), ds, m, k, steps)}
runners["current"] = benchmark.lanes_runner(model(), lanes_ds, m, k, auto)
S.sum_of_elements = lambda tree: jnp.float32(0.0)
runners["loss_only"] = benchmark.lanes_runner(model(), lanes_ds, m, k, auto)
S.sum_of_elements = orig_sos
S.LaneStep.train_step = nowhere
runners["sos_nowhere"] = benchmark.lanes_runner(model(), lanes_ds, m, k, auto)
S.LaneStep.train_step = nocheck
runners["nocheck"] = benchmark.lanes_runner(model(), lanes_ds, m, k, auto)
S.LaneStep.train_step = orig_step
t = benchmark.time_interleaved(runners, repeats)
base = t["baseline"].median_step_s
print(f"m={m} K={k}")
for name, timing in t.items():
    print(f"{name:10s} {1e3*timing.median_step_s:8.2f} ms  base/this {base/timing.median_step_s:5.3f}  {[round(1e3*s,2) for s in timing.step_s]}")
