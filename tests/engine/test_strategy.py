import dataclasses

import pytest

from smallbatch_jax.engine.plan import lane_slices
from smallbatch_jax.engine.strategy import (PRESETS, Strategy, StrategyChoice, choose_strategy,
                                            read_measured_table, write_measured_table)


@pytest.mark.parametrize("fields,match", [
    (dict(lane_map="pmap"), "strategy.lane_map"),
    (dict(conv="winograd"), "strategy.conv"),
    (dict(step_loop="while"), "strategy.step_loop"),
    (dict(steps_per_dispatch=-1), "steps_per_dispatch"),
    (dict(step_loop="unrolled", steps_per_dispatch=0), "needs strategy.steps_per_dispatch"),
    (dict(step_loop="unrolled", steps_per_dispatch=10_000), "needs strategy.steps_per_dispatch"),
    (dict(scan_unroll=0), "scan_unroll"),
    (dict(lanes_per_program=-1), "lanes_per_program"),
    (dict(shared_batch="no"), "strategy.shared_batch"),
    (dict(lane_map="unrolled", shared_batch=False), "goes with lane_map='vmap'"),
    (dict(lane_map="map", shared_batch=False), "goes with lane_map='vmap'"),
])
def test_invalid_strategies_raise(fields, match):
    with pytest.raises(ValueError, match=match):
        Strategy(**fields)


def test_auto_strategy_is_valid_on_every_backend():
    for backend in ("cpu", "gpu", "tpu"):
        assert isinstance(choose_strategy(backend, 8), Strategy)
    # Measured on XLA:CPU (docs/benchmarks.md): vmapped grouped convolutions are slow there,
    # and so is XLA's convolution inside a loop.
    assert choose_strategy("cpu", 2).conv == "patches"
    for m in (2, 8, 32, 128, 2048):
        strategy = choose_strategy("cpu", m)
        assert strategy.conv == "patches" or strategy.step_loop == "unrolled"
        assert not (strategy.lane_map == "vmap" and strategy.conv == "xla")
    # With several CPU devices (one per core) the lanes are split over them: at small m in
    # groups of at most 4 lanes, at least one per device; above m = 16 one lane per group.
    for m, k, group in ((2, 13, 4), (8, 13, 4), (8, 4, 2), (16, 3, 2), (64, 13, 1)):
        strategy = choose_strategy("cpu", m, num_lanes=k, num_devices=2)
        assert strategy.lanes_per_program == group and len(lane_slices(k, group)) >= 2
    assert choose_strategy("cpu", 8, num_lanes=13, num_devices=1).lanes_per_program == 7
    gpu = choose_strategy("gpu", 64, num_lanes=13, num_devices=8)
    assert gpu.lane_map == "vmap" and gpu.lanes_per_program == 0  # partitioned over devices


def test_auto_keeps_a_dense_models_lanes_vmapped_above_m_16_on_a_cpu():
    # One lane per program above m = 16 is for XLA:CPU's convolution in a loop; a model
    # without convolutions keeps every lane in one vmapped program, split over the devices.
    for m in (17, 32, 128, 2048):
        for devices in (1, 2):
            dense = choose_strategy("cpu", m, num_lanes=13, num_devices=devices,
                                    has_conv=False)
            assert dense == Strategy(shared_batch=False)
            assert choose_strategy("cpu", m, 13, devices) == PRESETS["sequential"]
    # At m <= 16 the lanes are laid out as a CNN's, each with its own copy of the batch (a
    # dense first layer's weights are not folded over the lanes); a CNN's share it.
    for m in (2, 8, 16):
        cnn = choose_strategy("cpu", m, 13, 2)
        assert cnn.shared_batch
        assert (choose_strategy("cpu", m, 13, 2, has_conv=False)
                == dataclasses.replace(cnn, shared_batch=False))
    # On other backends the model's convolutions change nothing.
    assert choose_strategy("gpu", 64, has_conv=False) == choose_strategy("gpu", 64)
    assert (StrategyChoice("auto").resolve(32, 13, "cpu", 2, has_conv=False)
            == Strategy(shared_batch=False))
    assert StrategyChoice("sequential").resolve(32, 13, "cpu", 2, has_conv=False) == \
        PRESETS["sequential"]


def test_presets_are_valid_strategies():
    assert PRESETS["reference"] == Strategy()
    assert all(isinstance(strategy, Strategy) for strategy in PRESETS.values())


def test_a_measured_table_decides_auto_for_the_nearest_measured_batch_size(tmp_path):
    path = str(tmp_path / "strategy_table.json")
    small, large = Strategy(lane_map="map", steps_per_dispatch=64), Strategy(conv="shifted")
    write_measured_table(path, {2: small, 32: large}, device="test device", jax="0.0")
    table = read_measured_table(path)
    assert table["device"] == "test device" and table["choices"] == {2: small, 32: large}
    # log₂ distance: 8 is 2 from 2 and 2 from 32 (a tie: the smaller m), 16 is nearer 32;
    # beyond a factor 2 of the measured m, nothing was measured: the reference.
    expected = {1: small, 2: small, 4: small, 8: small, 16: large, 32: large, 64: large,
                128: PRESETS["reference"], 2048: PRESETS["reference"]}
    for m, strategy in expected.items():
        for backend in ("gpu", "cpu"):
            assert choose_strategy(backend, m, table_path=path) == strategy


def test_broken_or_missing_tables_raise(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        choose_strategy("gpu", 8, table_path=str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    for text in ("not json", '{"choices": {}}', '{"choices": {"8": {"lane_map": "pmap"}}}',
                 '{"device": "x"}'):
        bad.write_text(text)
        with pytest.raises(ValueError, match="bad.json"):
            choose_strategy("gpu", 8, table_path=str(bad))


def test_without_a_packaged_table_an_accelerator_gets_the_reference(monkeypatch, tmp_path):
    monkeypatch.setattr("smallbatch_jax.engine.strategy.MEASURED_DIR", str(tmp_path))
    assert choose_strategy("gpu", 8) == PRESETS["reference"]
    write_measured_table(str(tmp_path / "gpu.json"), {8: Strategy(lane_map="map")})
    assert choose_strategy("gpu", 8) == Strategy(lane_map="map")
    assert choose_strategy("tpu", 8) == PRESETS["reference"]
