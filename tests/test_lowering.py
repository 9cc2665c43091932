import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallbatch_jax.lowering import (PRESETS, Lowering, choose_lowering, loop_steps, map_lanes,
                                     read_measured_table, write_measured_table)


@pytest.mark.parametrize("steps_per_dispatch,expected", [
    (0, [10]), (3, [3, 3, 3, 1]), (5, [5, 5]), (20, [10]), (1, [1] * 10)])
def test_dispatch_lengths_cover_the_epoch(steps_per_dispatch, expected):
    assert Lowering(steps_per_dispatch=steps_per_dispatch).dispatch_lengths(10) == expected


@pytest.mark.parametrize("lane_chunk,expected", [
    (0, [(0, 13)]), (13, [(0, 13)]), (20, [(0, 13)]), (4, [(0, 3), (3, 6), (6, 10), (10, 13)]),
    (1, [(i, i + 1) for i in range(13)]), (7, [(0, 6), (6, 13)])])
def test_lane_slices_are_near_equal_and_cover_every_lane(lane_chunk, expected):
    slices = Lowering(lane_chunk=lane_chunk).lane_slices(13)
    assert slices == expected
    assert max(b - a for a, b in slices) <= (lane_chunk or 13)


@pytest.mark.parametrize("fields,match", [
    (dict(lanes="pmap"), "lowering.lanes"),
    (dict(conv="winograd"), "lowering.conv"),
    (dict(step_loop="while"), "lowering.step_loop"),
    (dict(steps_per_dispatch=-1), "steps_per_dispatch"),
    (dict(step_loop="unrolled", steps_per_dispatch=0), "needs lowering.steps_per_dispatch"),
    (dict(step_loop="unrolled", steps_per_dispatch=10_000), "needs lowering.steps_per_dispatch"),
    (dict(scan_unroll=0), "scan_unroll"),
    (dict(lane_chunk=-1), "lane_chunk"),
])
def test_invalid_lowerings_raise(fields, match):
    with pytest.raises(ValueError, match=match):
        Lowering(**fields)


def test_auto_lowering_is_valid_on_every_backend():
    for backend in ("cpu", "gpu", "tpu"):
        assert isinstance(choose_lowering(backend, 8), Lowering)
    # Measured on XLA:CPU (docs/benchmarks.md): vmapped grouped convolutions are slow there,
    # and so is XLA's convolution inside a loop.
    assert choose_lowering("cpu", 2).conv == "patches"
    for m in (2, 8, 32, 128, 2048):
        lowering = choose_lowering("cpu", m)
        assert lowering.conv == "patches" or lowering.step_loop == "unrolled"
        assert not (lowering.lanes == "vmap" and lowering.conv == "xla")
    # With several CPU devices (one per core) the lanes are split over them: at small m in
    # chunks of at most 4 lanes, at least one per device; above m = 16 one lane per chunk.
    for m, k, chunk in ((2, 13, 4), (8, 13, 4), (8, 4, 2), (16, 3, 2), (64, 13, 1)):
        lowering = choose_lowering("cpu", m, num_lanes=k, num_devices=2)
        assert lowering.lane_chunk == chunk and lowering.devices_used(k, 2) == 2
    assert choose_lowering("cpu", 8, num_lanes=1, num_devices=2).devices_used(1, 2) == 1
    assert choose_lowering("cpu", 8, num_lanes=13, num_devices=1).devices_used(13, 1) == 1
    assert choose_lowering("gpu", 64, num_lanes=13, num_devices=8).splits_over_devices


def test_presets_are_valid_lowerings():
    assert PRESETS["reference"] == Lowering()
    assert all(isinstance(lowering, Lowering) for lowering in PRESETS.values())


@pytest.mark.parametrize("lanes", ["vmap", "unrolled", "map"])
def test_map_lanes_matches_vmap(lanes):
    def fn(tree, shared, scalar):
        return {"y": tree["a"] * shared + scalar, "z": tree["b"].sum()}, scalar * 2

    tree = {"a": jnp.arange(12.0).reshape(3, 4), "b": jnp.ones((3, 2))}
    shared = jnp.linspace(0, 1, 4)
    scalars = jnp.array([1.0, 2.0, 3.0])
    expected = jax.vmap(fn, in_axes=(0, None, 0))(tree, shared, scalars)
    got = map_lanes(fn, (0, None, 0), Lowering(lanes=lanes))(tree, shared, scalars)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("lowering", [
    Lowering(), Lowering(scan_unroll=3), Lowering(step_loop="unrolled", steps_per_dispatch=7)])
def test_loop_steps_runs_every_step_in_order(lowering):
    body = lambda carry, i: (carry[0] * 2 + i, carry[1] + 1)
    value, count = jax.jit(lambda c: loop_steps(body, c, 7, lowering))((jnp.int32(1), jnp.int32(0)))
    expected = 1
    for i in range(7):
        expected = expected * 2 + i
    assert int(value) == expected and int(count) == 7


def test_a_measured_table_decides_auto_for_the_nearest_measured_batch_size(tmp_path):
    path = str(tmp_path / "lowering_table.json")
    small, large = Lowering(lanes="map", steps_per_dispatch=64), Lowering(conv="shifted")
    write_measured_table(path, {2: small, 32: large}, device="test device", jax="0.0")
    table = read_measured_table(path)
    assert table["device"] == "test device" and table["choices"] == {2: small, 32: large}
    # log₂ distance: 8 is 2 from 2 and 2 from 32 (a tie: the smaller m), 16 is nearer 32.
    expected = {1: small, 2: small, 4: small, 8: small, 16: large, 32: large, 2048: large}
    for m, lowering in expected.items():
        for backend in ("gpu", "cpu"):
            assert choose_lowering(backend, m, table_path=path) == lowering


def test_broken_or_missing_tables_raise(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        choose_lowering("gpu", 8, table_path=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    for text in ("not json", '{"choices": {}}', '{"choices": {"8": {"lanes": "pmap"}}}',
                 '{"device": "x"}'):
        bad.write_text(text)
        with pytest.raises(ValueError, match="bad.json"):
            choose_lowering("gpu", 8, table_path=str(bad))


def test_without_a_packaged_table_an_accelerator_gets_the_reference(monkeypatch, tmp_path):
    monkeypatch.setattr("smallbatch_jax.lowering.MEASURED_DIR", str(tmp_path))
    assert choose_lowering("gpu", 8) == PRESETS["reference"]
    write_measured_table(str(tmp_path / "gpu.json"), {8: Lowering(lanes="map")})
    assert choose_lowering("gpu", 8) == Lowering(lanes="map")
    assert choose_lowering("tpu", 8) == PRESETS["reference"]
