"""Which lanes a compacted program trains (engine/trainer.py): exactly the live ones on a
CPU, a 2^k or 3·2^k bucket elsewhere; the trainer's end-to-end compaction is in
test_trainer.py."""

import jax
import numpy as np
import pytest

from smallbatch_jax.engine import ExecutionPlan
from smallbatch_jax.engine.trainer import bucket_size, compacted, live_groups
from smallbatch_jax.engine.state import LaneState
from smallbatch_jax.engine.strategy import Strategy


def test_buckets_are_powers_of_two_and_three_times_powers_of_two_never_past_the_group():
    assert [bucket_size(n, 13) for n in range(1, 14)] == [
        1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 13]
    assert bucket_size(7, 7) == 7 and bucket_size(0, 8) == 1


def test_a_compacted_program_holds_the_live_lanes_exactly_or_padded_to_its_bucket():
    diverged = np.zeros(13, bool)
    diverged[[0, 2, 3, 5, 6, 7, 9, 12]] = True  # 5 of 13 live: 1, 4, 8, 10, 11
    assert compacted(0, 13, diverged, exact=True) == (1, 4, 8, 10, 11)
    assert compacted(0, 13, diverged) == (1, 4, 8, 10, 11, 11)  # the last one repeated
    assert compacted(8, 13, diverged, exact=True) == (8, 10, 11)  # within a group
    assert compacted(0, 2, diverged, exact=True) == (1,)
    assert compacted(0, 13, np.zeros(13, bool), exact=True) is None  # nothing diverged
    assert compacted(0, 13, np.ones(13, bool), exact=True) is None  # nothing to train


def test_the_plan_compacts_exactly_on_a_cpu_unless_told_otherwise():
    cpu = jax.devices("cpu")[0]
    diverged = np.zeros(13, bool)
    diverged[:8] = True
    lanes = LaneState(params=None, batch_stats=None, opt_state=None, diverged=diverged,
                      diverged_step=None, loss_limit=None)
    for compaction, expected in [(None, tuple(range(8, 13))), ("exact", tuple(range(8, 13))),
                                 ("bucket", (*range(8, 13), 12))]:
        plan = ExecutionPlan(Strategy(), 13, (cpu,), compaction=compaction)
        assert plan.exact_compaction == (compaction != "bucket")
        (group,) = live_groups(plan, lanes)
        assert group.lanes == expected
    with pytest.raises(ValueError, match="compaction='padded'"):
        ExecutionPlan(Strategy(), 13, (cpu,), compaction="padded")
