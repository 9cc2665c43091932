"""Grids of several m in one program: the program is each grid's own training, and the
check's parts (its variants, its table)."""

import dataclasses

import jax
import pytest

from configs import gpu_concurrency
from smallbatch_jax.diagnostics.candidates import parse_candidate
from smallbatch_jax.diagnostics.concurrent_grids import (compile_grids, grid_steps, interleaved,
                                                         markdown, parse_variants,
                                                         round_shares, same_training,
                                                         time_grids, together)
from smallbatch_jax.diagnostics.timing import run_config_at
from smallbatch_jax.run.config_checks import check_config


@pytest.fixture(scope="module")
def grids(tiny_digits):
    config = gpu_concurrency.get_config("tiny")
    config.sweep.dataset = "digits"
    return [grid_steps(run_config_at(config.sweep, m, "highest", parse_candidate("vmap/xla")),
                       tiny_digits, 2, 8) for m in (2, 4)]


@pytest.fixture(scope="module")
def compiled(grids):
    """Every program compiled once, shared by the tests (each replaces what it changes)."""
    return compile_grids(grids, log=lambda message: None)


def with_program(compiled, name, program):
    return dataclasses.replace(compiled, programs={**compiled.programs, name: program})


def test_both_programs_of_all_grids_train_each_grid_as_its_own_program(grids, compiled):
    assert [(g.batch_size, g.steps) for g in grids] == [(2, 4), (4, 2)]
    assert round_shares(grids, 0) == [2, 1] and round_shares(grids, 1) == [4, 2]
    with pytest.raises(ValueError):
        round_shares(grids, 4)  # m = 4's 2 steps do not split into 4 rounds
    assert sorted(compiled.programs) == ["interleaved", "m2", "m4", "together"]
    assert same_training(compiled) == {"together": True, "interleaved": True}
    one_round = dataclasses.replace(with_program(compiled, "interleaved",
                                                 interleaved(grids, rounds=1)), rounds=1)
    assert same_training(one_round) == {"together": True, "interleaved": True}
    # The lanes moved: a program that did nothing would also "agree" with one that did not.
    for name in ("together", "interleaved"):
        (lanes, _), _ = compiled.programs[name]([g.lanes for g in grids],
                                                [g.inputs for g in grids])
        before, after = jax.tree.leaves(grids[0].lanes.params), jax.tree.leaves(lanes.params)
        assert any(float(abs(a - b).max()) > 0 for a, b in zip(before, after))


def test_the_timing_has_every_method_and_the_speed_ups_of_its_medians(compiled):
    record = time_grids(compiled, repeats=2)
    assert [g["steps"] for g in record["grids"]] == [4, 2] and record["round_steps"] == [2, 1]
    assert set(record["ms"]) == {"m2", "m4", "queued", "together", "interleaved"}
    assert all(len(values) == 2 for values in record["ms_repeats"].values())
    assert record["speedup_together"] == record["sum_alone_ms"] / record["ms"]["together"]
    assert set(record["compile_s"]) == set(record["ms"]) - {"queued"}


def test_a_program_that_mixes_the_grids_up_is_caught(grids, compiled):
    def perturbed(lanes, inputs):
        return [(jax.tree.map(lambda x: x * 1.01, out[0]), out[1])
                for out in together(grids)(lanes, inputs)]

    assert same_training(with_program(compiled, "together", perturbed)) == {
        "together": False, "interleaved": True}


def test_an_interleaved_program_that_reads_the_wrong_steps_is_caught(grids, compiled,
                                                                     monkeypatch):
    """Every round must start where the last one stopped, in the data and the schedule: one
    whose rounds all read the first steps' batches trains differently."""
    real_replace = type(grids[0].inputs[1]).replace
    monkeypatch.setattr(type(grids[0].inputs[1]), "replace",
                        lambda self, **changes: real_replace(self))  # first_batch unchanged
    wrong = with_program(compiled, "interleaved", interleaved(grids))
    assert same_training(wrong) == {"together": True, "interleaved": False}


def test_variants_parse_in_order_and_bad_ones_raise():
    assert parse_variants(("a=", "b=--x=1 --y=2")) == {"a": "", "b": "--x=1 --y=2"}
    assert list(parse_variants(("z=", "a="))) == ["z", "a"]
    for bad in (("a",), ("=--x",), ("a=", "a=--x")):
        with pytest.raises(ValueError):
            parse_variants(bad)
    # The device config's own variants parse, and its sweep is a valid lr_sweep config.
    config = gpu_concurrency.get_config()
    assert list(parse_variants(config.variants))[0] == "default"
    for m in config.batch_sizes:
        check_config(run_config_at(config.sweep, m, config.precision))


def test_the_table_has_a_row_per_variant_and_names_failures():
    machine = {"device_kind": "H", "platform": "gpu", "jax": "0", "date": "d", "xla_flags": ""}
    variant = {"machine": machine, "grids": [{"batch_size": 2, "steps": 4}],
               "num_lanes": 3, "examples_per_lane": 8, "candidate": "vmap/xla",
               "precision": "highest", "ms": {"m2": 2.0, "queued": 2.0, "together": 1.0,
                                              "interleaved": 0.5},
               "sum_alone_ms": 2.0, "speedup_together": 2.0, "speedup_interleaved": 4.0,
               "speedup_ideal": 1.0, "compile_s": {"together": 1.5, "interleaved": 2.5},
               "round_steps": [4]}
    table = markdown({"variants": {"v": variant}, "failed": {"w": "exit 1: bad flag"}})
    assert ("| v | `(none)` | 2.00 | 2.00 | 2.00 | 1.00 | 2.00× | 0.50 | 4.00× | 1.00× "
            "| 1.5, 2.5 |") in table
    assert "interleaved: 4 steps per round" in table
    # A record of run 7, from before the interleaved program, still renders.
    for key in ("speedup_interleaved", "round_steps"):
        del variant[key]
    del variant["ms"]["interleaved"], variant["compile_s"]["interleaved"]
    assert "| 1.00 | 2.00× | – | –× | 1.00× | 1.5, – |" in markdown(
        {"variants": {"v": variant}, "failed": {}})
    assert "- w: exit 1: bad flag" in table
