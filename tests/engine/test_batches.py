"""Batch sources (engine/batches.py): placing one leaves it, and every other placement of
it, as it was."""

import jax
import numpy as np

from smallbatch_jax.engine import DeviceBatches, StreamedBatches


def test_placing_a_source_gives_a_placed_copy(tiny_digits):
    """Several trainers place one source, each for its own devices, and train side by side
    (tuning's run-off): a later placement must not move an earlier one's data. (It did: the
    run-off timed `lax.map` on one device at 856 ms a step beside groups over two, 143 ms
    alone, on a 2-core CPU.)"""
    source = DeviceBatches(tiny_digits, 8, 16)
    placed = []

    def put(tree):
        placed.append(jax.device_put(tree))
        return placed[-1]

    first, second = source.place(put), source.place(put)
    assert source.data is None and first is not source and second is not first
    assert first.data is placed[0] and second.data is placed[1] and placed[0] is not placed[1]
    np.testing.assert_array_equal(first.data.train_labels, second.data.train_labels)
    assert first.steps_per_epoch == source.steps_per_epoch == 64 // 8
    streamed = StreamedBatches(None, 8, 16)
    put_a, put_b = (lambda tree: tree), (lambda tree: tree)
    a, b = streamed.place(put_a), streamed.place(put_b)
    assert (streamed.put, a.put, b.put) == (None, put_a, put_b)
