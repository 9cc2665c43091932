"""What K lanes of a dense layer cost against one model on K·m examples: the same FLOPs,
K times the weights read and written.

The packing limit of the throughput benchmark trains one model on K·m examples a step; K
lanes train K models on m examples each. For a convolution network the step is its
arithmetic and the lanes come within the limit's time; for a dense layer at small m the
step is its weights: every lane reads its own weights forward, reads them again in the
update and writes them back. This probe isolates that on the zoo MLP's first layer
(784 → 256, ReLU, SGD), `steps` steps scanned in one dispatch, each side jitted with its
weights donated, interleaved repeats, median ms per step:

- lanes: K weight sets (vmap), each its own m examples;
- limit: one weight set, K·m examples;
- lanes_bound: the same K weight sets read and written once a step and nothing else
  (W ← W·(1 − ε)): the cost of touching the lanes' weights alone;
- lanes_outer, lanes_elementwise: the lanes' step with the weights' gradient, and also the
  forward product, written as broadcast multiply-and-sum (checked equal to `lanes`);
- lanes_forward, lanes_gradient: the lanes' forward product alone, and their weights'
  gradient (x^T times an m-row output gradient) and update alone;
- lanes_rows_gradient: the weights' gradient as m outer products summed term by term (no
  reduction: one elementwise pass, fused with the update); lanes_rows: that, and the forward
  product as m vector-matrix products.

    python docs/probes/dense_layer_lanes.py [m] [K] [repeats] [steps]
"""

import statistics
import sys
import time

import jax
import jax.numpy as jnp

IN, OUT = 784, 256


def layer_step(w, x):
    """One SGD step of a ReLU layer on (x, a fixed target of zero): forward, the weights'
    gradient, the update."""
    y = jax.nn.relu(x @ w)
    g = y / x.shape[0]  # d(½‖y‖²/n)/dy through the ReLU (zero where y is)
    return w - 0.01 * (x.T @ g)


def layer_step_elementwise(w, x):
    """The same step with both products written as broadcast multiply-and-sum, which XLA
    may fuse into one pass over the weights (at small m a product is a few rows)."""
    y = jax.nn.relu((x[:, :, None] * w[None]).sum(1))
    g = y / x.shape[0]
    return w - 0.01 * (x[:, :, None] * g[:, None, :]).sum(0)


def layer_step_outer(w, x):
    """The forward product as a matrix product, the weights' gradient (a sum of m outer
    products) as a broadcast multiply-and-sum fused into the update."""
    y = jax.nn.relu(x @ w)
    g = y / x.shape[0]
    return w - 0.01 * (x[:, :, None] * g[:, None, :]).sum(0)


def layer_step_rows_gradient(w, x):
    """The weights' gradient as a sum of m outer products written term by term: an
    elementwise expression XLA fuses into the update (a single pass over the weights)."""
    y = jax.nn.relu(x @ w)
    g = y / x.shape[0]
    return w - 0.01 * sum(x[i][:, None] * g[i][None, :] for i in range(x.shape[0]))


def layer_step_rows(w, x):
    """layer_step_rows_gradient with the forward product as m vector-matrix products too."""
    y = jax.nn.relu(jnp.stack([x[i] @ w for i in range(x.shape[0])]))
    g = y / x.shape[0]
    return w - 0.01 * sum(x[i][:, None] * g[i][None, :] for i in range(x.shape[0]))


def scanned(step, steps):
    def run(w, xs):
        return jax.lax.scan(lambda w, x: (step(w, x), None), w, xs)[0]
    return jax.jit(run, donate_argnums=0)


def main(m=2, k=13, repeats=7, steps=64):
    key = jax.random.key(0)
    xs_lanes = jax.random.normal(key, (steps, k, m, IN))
    xs_limit = xs_lanes.reshape(steps, k * m, IN)
    lanes = scanned(jax.vmap(layer_step), steps)
    limit = scanned(layer_step, steps)
    bound = scanned(lambda w, x: w * (1 - 1e-6), steps)
    lanes_w = lambda: jnp.full((k, IN, OUT), 0.01)
    new_w = {"lanes": lanes_w, "limit": lambda: jnp.full((IN, OUT), 0.01),
             "lanes_bound": lanes_w, "lanes_outer": lanes_w, "lanes_elementwise": lanes_w,
             "lanes_forward": lanes_w, "lanes_gradient": lanes_w,
             "lanes_rows_gradient": lanes_w, "lanes_rows": lanes_w}
    programs = {"lanes": (lanes, xs_lanes), "limit": (limit, xs_limit),
                "lanes_bound": (bound, xs_lanes),
                "lanes_outer": (scanned(jax.vmap(layer_step_outer), steps), xs_lanes),
                "lanes_elementwise": (scanned(jax.vmap(layer_step_elementwise), steps),
                                      xs_lanes),
                # The lanes' step in parts: the forward product alone (its weights kept,
                # touched by a negligible term so that the scan carries them), and the
                # weights' gradient and update alone (a fixed output gradient).
                "lanes_forward": (scanned(jax.vmap(
                    lambda w, x: w + 1e-9 * (x @ w).sum()), steps), xs_lanes),
                "lanes_gradient": (scanned(jax.vmap(
                    lambda w, x: w - 0.01 * (x.T @ x[:, :OUT])), steps), xs_lanes),
                "lanes_rows_gradient": (scanned(jax.vmap(layer_step_rows_gradient), steps),
                                        xs_lanes),
                "lanes_rows": (scanned(jax.vmap(layer_step_rows), steps), xs_lanes)}
    times = {name: [] for name in programs}
    for name, (program, xs) in programs.items():  # compile
        program(new_w[name](), xs).block_until_ready()
    for _ in range(repeats):
        for name, (program, xs) in programs.items():
            w = new_w[name]()
            w.block_until_ready()
            start = time.perf_counter()
            program(w, xs).block_until_ready()
            times[name].append((time.perf_counter() - start) / steps * 1e3)
    medians = {name: statistics.median(t) for name, t in times.items()}
    megabytes = k * IN * OUT * 4 / 2**20
    print(f"m={m} K={k}: one weight set {IN}x{OUT} float32 = {megabytes / k:.2f} MiB, "
          f"the lanes' {megabytes:.1f} MiB; jax {jax.__version__}, {jax.devices()[0]}")
    for name, ms in medians.items():
        spread = f"{min(times[name]):.3f}–{max(times[name]):.3f}"
        print(f"  {name:12s} {ms:8.3f} ms per step  (repeats {spread})")
    print("  ÷ limit: " + ", ".join(f"{name} {ms / medians['limit']:.2f}"
                                     for name, ms in medians.items() if name != "limit"))
    # The variants compute the same update (up to rounding): checked, or their times mean
    # nothing.
    reference = lanes(lanes_w(), xs_lanes)
    for name in ("lanes_outer", "lanes_elementwise", "lanes_rows_gradient", "lanes_rows"):
        program, xs = programs[name]
        error = float(jnp.max(jnp.abs(program(lanes_w(), xs) - reference)))
        assert error < 1e-5, (name, error)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
