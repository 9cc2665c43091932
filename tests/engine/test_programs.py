import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallbatch_jax.engine.programs import loop_steps, map_lanes


@pytest.mark.parametrize("lane_map", ["vmap", "unrolled", "map"])
def test_map_lanes_matches_vmap(lane_map):
    def fn(tree, shared, scalar):
        return {"y": tree["a"] * shared + scalar, "z": tree["b"].sum()}, scalar * 2

    tree = {"a": jnp.arange(12.0).reshape(3, 4), "b": jnp.ones((3, 2))}
    shared = jnp.linspace(0, 1, 4)
    scalars = jnp.array([1.0, 2.0, 3.0])
    expected = jax.vmap(fn, in_axes=(0, None, 0))(tree, shared, scalars)
    got = map_lanes(fn, (0, None, 0), lane_map)(tree, shared, scalars)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("step_loop,scan_unroll", [("scan", 1), ("scan", 3), ("unrolled", 1)])
def test_loop_steps_runs_every_step_in_order(step_loop, scan_unroll):
    body = lambda carry, i: (carry[0] * 2 + i, carry[1] + 1)
    loop = lambda c: loop_steps(body, c, 7, step_loop, scan_unroll)
    value, count = jax.jit(loop)((jnp.int32(1), jnp.int32(0)))
    expected = 1
    for i in range(7):
        expected = expected * 2 + i
    assert int(value) == expected and int(count) == 7
