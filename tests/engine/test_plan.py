import dataclasses
import functools

import jax
import pytest

from smallbatch_jax.engine import DeviceBatches, LaneStep, Programs, make_plan, plan_for
from smallbatch_jax.engine.plan import MemoryProbe, devices_for, dispatch_lengths, lane_slices
from smallbatch_jax.engine.strategy import PRESETS, Strategy, StrategyChoice
from smallbatch_jax.models import create_model
from smallbatch_jax.models.conv import conv_layer

FOUR = ["d0", "d1", "d2", "d3"]  # devices_for only counts them


@pytest.mark.parametrize("steps_per_dispatch,expected", [
    (0, [10]), (3, [3, 3, 3, 1]), (5, [5, 5]), (20, [10]), (1, [1] * 10)])
def test_dispatch_lengths_cover_the_epoch(steps_per_dispatch, expected):
    assert dispatch_lengths(10, steps_per_dispatch) == expected


@pytest.mark.parametrize("lanes_per_program,expected", [
    (0, [(0, 13)]), (13, [(0, 13)]), (20, [(0, 13)]), (4, [(0, 3), (3, 6), (6, 10), (10, 13)]),
    (1, [(i, i + 1) for i in range(13)]), (7, [(0, 6), (6, 13)])])
def test_lane_slices_are_near_equal_and_cover_every_lane(lanes_per_program, expected):
    slices = lane_slices(13, lanes_per_program)
    assert slices == expected
    assert max(b - a for a, b in slices) <= (lanes_per_program or 13)


def test_which_strategies_use_several_devices_and_how():
    # One vmapped program partitioned over the devices: one device per lane at most.
    assert [len(devices_for(PRESETS["patches"], k, FOUR)) for k in (1, 3, 13)] == [1, 3, 4]
    # Groups of lanes dealt out over the devices: one device per group at most.
    assert [len(devices_for(PRESETS["sequential"], k, FOUR)) for k in (1, 3, 13)] == [1, 3, 4]
    assert [len(devices_for(PRESETS["patches_grouped"], k, FOUR))
            for k in (7, 8, 13, 30)] == [1, 2, 2, 4]
    # Neither: every lane unrolled into one program, which runs on one device.
    assert len(devices_for(Strategy(lane_map="unrolled"), 13, FOUR)) == 1
    # This process has one CPU device: nothing to split over.
    plan = plan_for(PRESETS["patches"], 13)
    assert plan.mesh is None and not plan.partitioned and plan.num_program_lanes == 13


def test_a_plan_on_several_devices_needs_a_strategy_that_uses_them():
    cpu = jax.local_devices()[0]
    with pytest.raises(ValueError, match="lanes over several devices"):
        from smallbatch_jax.engine import ExecutionPlan
        ExecutionPlan(Strategy(lane_map="unrolled"), 13, (cpu, cpu))
    with pytest.raises(ValueError, match="precision='tf32'"):
        plan_for(Strategy(), 3, precision="tf32")


def _choice(preset="auto", **fields):
    """What a config's strategy section asks for (run/config_checks.strategy_choice)."""
    return StrategyChoice(preset, Strategy(**fields))


def test_auto_on_this_cpu_computes_small_batch_convolutions_as_patches():
    # For every model: a user's nn.Conv layers follow the plan too (models/conv.py:
    # follow_plan; tests/models/test_conv.py), so no model is kept to XLA's.
    assert make_plan(_choice(), 13, 2).strategy.conv == "patches"


def test_the_plan_records_what_it_decided():
    plan = make_plan(_choice(preset="manual", conv="shifted", steps_per_dispatch=4), 5, 2,
                     precision="highest")
    assert plan.strategy == Strategy(conv="shifted", steps_per_dispatch=4)
    assert plan.precision == "highest" and plan.num_lanes == 5
    assert plan.donate is False  # on CPU; accelerators donate (plan.donates_by_default)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.num_lanes = 3


def test_memory_budget_picks_fewer_lanes_per_program(tiny_digits):
    lane_step = LaneStep(create_model("small_cnn_bn", 10, conv=conv_layer("patches")),
                         batch_size=8, image_shape=tiny_digits.image_shape)
    source = DeviceBatches(tiny_digits, 8, 16)

    class CachedProbe(MemoryProbe):
        @functools.cache  # the plan asks again for sizes it measured before: compile each once
        def dispatch_bytes(self, plan):
            return super().dispatch_bytes(plan)

    probe = CachedProbe(programs_for=lambda plan: Programs(lane_step, plan),
                        abstract_dispatch=lambda steps: source.abstract_dispatch(1, steps),
                        steps_per_epoch=source.steps_per_epoch)
    program_bytes = lambda strategy: probe.dispatch_bytes(
        plan_for(strategy, 4, devices=jax.local_devices()[:1]))

    whole = Strategy(conv="patches")
    one, two, four = (program_bytes(dataclasses.replace(whole, lanes_per_program=k))
                      for k in (1, 2, 4))
    assert 0 < one < two < four
    per_lane = two - one

    def lanes_per_program(budget):
        plan = plan_for(whole, 4, memory_budget_bytes=budget, memory_probe=probe)
        return plan.strategy.lanes_per_program or 4

    assert lanes_per_program(four) == 4
    assert lanes_per_program(two + per_lane // 2) == 2
    assert lanes_per_program(one) == 1
    with pytest.raises(ValueError, match="over the memory budget"):
        lanes_per_program(one - 1)


def test_the_plan_cuts_an_epoch_into_dispatches_and_at_its_evaluations():
    """A streamed source whose strategy says "a whole epoch" gets dispatches a host can
    stack; evaluations inside an epoch cut its dispatches."""
    resident = plan_for(Strategy(), 3)
    assert resident.dispatch_lengths(40) == [40]
    streamed = plan_for(Strategy(), 3, streamed=True)
    assert streamed.dispatch_lengths(40) == [16, 16, 8]
    assert plan_for(Strategy(steps_per_dispatch=5), 3, streamed=True).dispatch_lengths(12) == [
        5, 5, 2]
    assert resident.epoch_dispatches(10, 3) == ([3, 4, 3], [3, 7, 10])
    assert streamed.epoch_dispatches(40, 2) == ([16, 4, 16, 4], [20, 40])
