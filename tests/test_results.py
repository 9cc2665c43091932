import csv

import numpy as np

from smallbatch_jax.lanes import LaneGrid
from smallbatch_jax.results import (CURVE_FIELDS, SUMMARY_FIELDS, curve_rows, format_table,
                                    median_last, summarize, write_csv)
from smallbatch_jax.train import History


def test_median_over_the_last_epochs():
    values = np.array([[0.1, 0.5], [0.2, 0.6], [0.9, 0.7], [0.3, np.nan]])
    np.testing.assert_allclose(median_last(values, 3), [0.3, np.nan])
    np.testing.assert_allclose(median_last(values[:, :1], 5), [0.25])  # fewer epochs than asked


def _history():
    nan = np.nan
    h = History()
    for epoch, (acc, loss) in enumerate([([0.5, 0.4], [1.0, 2.0]), ([0.6, nan], [0.8, nan]),
                                         ([0.7, nan], [0.6, nan])], start=1):
        h.epoch.append(epoch)
        h.test_accuracy.append(np.array(acc))
        h.test_loss.append(np.array(loss))
        h.train_loss.append(np.array(loss) / 2)
        h.seconds.append(1.0)
    return h


def test_summary_rows():
    grid = LaneGrid(seeds=(0,), base_lrs=(2.0**-6, 2.0**-1), weight_decay=5e-4,
                    warmup_fraction=0.0, momentum=0.0)
    rows = summarize(_history(), grid, batch_size=8, bn_batch_size=8, steps_per_epoch=10,
                     diverged_step=np.array([-1, 13]), last_epochs=5)
    assert [tuple(r) for r in rows] == [SUMMARY_FIELDS] * 2
    healthy, diverged = rows
    assert healthy["median_test_accuracy"] == 0.6 and healthy["final_test_accuracy"] == 0.7
    assert healthy["lr"] == 8 * 2.0**-6 and healthy["log2_base_lr"] == -6
    assert not healthy["diverged"] and healthy["diverged_step"] == -1
    assert diverged["diverged"] and diverged["diverged_step"] == 13
    assert diverged["diverged_epoch"] == 2  # step 13 lies in epoch 2 (steps 10..19)
    assert np.isnan(diverged["median_test_accuracy"])
    table = format_table(rows, 5)
    assert "step 13" in table and "0.6000" in table and "2^-6" in table


def test_csv_files_round_trip(tmp_path):
    grid = LaneGrid(seeds=(0,), base_lrs=(0.5, 0.25), weight_decay=0.0, warmup_fraction=0.0,
                    momentum=0.0)
    rows = curve_rows(_history(), grid)
    assert len(rows) == 3 * 2
    write_csv(tmp_path / "curves.csv", rows, CURVE_FIELDS)
    with open(tmp_path / "curves.csv") as f:
        read = list(csv.DictReader(f))
    assert len(read) == 6 and float(read[2]["test_accuracy"]) == 0.6
