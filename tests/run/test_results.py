import csv
import math

import numpy as np
import pytest

from smallbatch_jax.engine import History
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.run.results import (CURVE_FIELDS, SUMMARY_FIELDS, columns_of, curve_rows,
                                        evaluated_on, format_table, median_last, merge_tables,
                                        summarize, write_csv)


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
        h.test_metric.append(np.array(acc))
        h.test_loss.append(np.array(loss))
        h.train_loss.append(np.array(loss) / 2)
        h.seconds.append(1.0)
    return h


def test_summary_rows():
    grid = LaneGrid(seeds=(0,), base_lrs=(2.0**-6, 2.0**-1), weight_decay=5e-4,
                    warmup_fraction=0.0, momentum=0.0)
    rows = summarize(_history(), grid, batch_size=8, bn_batch_size=8, steps_per_epoch=10,
                     diverged_step=np.array([-1, 13]), last_epochs=5, compile_seconds=12.5,
                     epochs_before_decay=2)
    assert [tuple(r) for r in rows] == [SUMMARY_FIELDS] * 2
    # The median read the 3 epochs there are (of a window of 5), 2 before the last decay.
    assert [(r["metric_epochs"], r["metric_epochs_before_decay"]) for r in rows] == [(3, 2)] * 2
    healthy, diverged = rows
    assert healthy["median_test_metric"] == 0.6 and healthy["final_test_metric"] == 0.7
    assert healthy["lr"] == 8 * 2.0**-6 and healthy["log2_base_lr"] == -6
    assert not healthy["diverged"] and healthy["diverged_step"] == -1
    assert diverged["diverged"] and diverged["diverged_step"] == 13
    assert diverged["diverged_epoch"] == 2  # step 13 lies in epoch 2 (steps 10..19)
    assert np.isnan(diverged["median_test_metric"])
    assert healthy["compile_seconds"] == diverged["compile_seconds"] == 12.5  # the program's
    table = format_table(rows, 5)
    assert "step 13" in table and "0.6000" in table and "2^-6" in table
    assert healthy["baseline_test_metric"] == "" and "Baseline" not in table  # (not known)


def test_rows_carry_what_a_constant_prediction_scores_and_the_table_says_if_it_was_beaten():
    from smallbatch_jax.run.results import baseline_of
    grid = LaneGrid(seeds=(0,), base_lrs=(2.0**-6, 2.0**-1), weight_decay=5e-4,
                    warmup_fraction=0.0, momentum=0.0)
    rows = summarize(_history(), grid, batch_size=8, bn_batch_size=8, steps_per_epoch=10,
                     diverged_step=np.array([-1, 13]), last_epochs=5, baseline=0.55)
    assert [r["baseline_test_metric"] for r in rows] == [0.55, 0.55]
    assert baseline_of(rows) == 0.55
    last = format_table(rows, 5).splitlines()[-1]
    assert last == ("Baseline: always predicting the training split's most frequent class "
                    "scores accuracy 0.5500 on the test split.")
    # The best lane (0.6) at the baseline: said.
    at = summarize(_history(), grid, batch_size=8, bn_batch_size=8, steps_per_epoch=10,
                   diverged_step=np.array([-1, 13]), last_epochs=5, baseline=0.6)
    assert format_table(at, 5).endswith("no lane beat it: none learned from its inputs.")
    # Rows that do not say, or say different things (other data merged), have none.
    assert math.isnan(baseline_of([dict(rows[0], baseline_test_metric="")] + rows[1:]))
    assert math.isnan(baseline_of(rows + at)) and math.isnan(baseline_of([{}]))
    assert baseline_of([{"baseline_test_metric": "0.55"}]) == 0.55  # (read from a CSV)


def test_compile_time_is_measured_where_programs_compile_and_not_where_they_are_reused():
    """(The first epoch's excess over the others, used before, read 0 s with two epochs.)"""
    import jax
    import jax.numpy as jnp

    from smallbatch_jax.run.compile_time import compile_seconds

    program = jax.jit(lambda x: jnp.tanh(x @ x.T) * 3.25 - 0.5)
    before = compile_seconds()
    program(jnp.ones((31, 17))).block_until_ready()
    compiled = compile_seconds()
    assert compiled > before
    program(jnp.zeros((31, 17))).block_until_ready()  # the same shapes: no new program
    assert compile_seconds() == compiled


def test_csv_files_round_trip(tmp_path):
    grid = LaneGrid(seeds=(0,), base_lrs=(0.5, 0.25), weight_decay=0.0, warmup_fraction=0.0,
                    momentum=0.0)
    rows = curve_rows(_history(), grid)
    assert len(rows) == 3 * 2
    write_csv(tmp_path / "curves.csv", rows, CURVE_FIELDS)
    with open(tmp_path / "curves.csv") as f:
        read = list(csv.DictReader(f))
    assert len(read) == 6 and float(read[2]["test_metric"]) == 0.6


def test_rows_name_the_metric_and_the_table_marks_the_best_in_its_direction(tmp_path):
    from smallbatch_jax.objectives import REGRESSION
    from smallbatch_jax.run.results import metric_of, read_csv
    grid = LaneGrid(seeds=(0,), base_lrs=(2.0**-6, 2.0**-5), weight_decay=0.0,
                    warmup_fraction=0.0, momentum=0.0)
    h = _history()
    h.test_metric = [np.array([0.5, 0.4])] * 3  # lane 1 has the lower error
    h.test_loss = h.train_loss = [np.array([1.0, 1.0])] * 3
    rows = summarize(h, grid, batch_size=8, bn_batch_size=8, steps_per_epoch=10,
                     diverged_step=np.array([-1, -1]), last_epochs=5, objective=REGRESSION)
    assert metric_of(rows) == ("mse", False)
    lines = format_table(rows, 5).splitlines()
    assert "median mse" in lines[0] and "lower is better" in lines[0]
    assert lines[2].endswith(" *") and not lines[1].endswith(" *")
    write_csv(tmp_path / "results.csv", rows, SUMMARY_FIELDS)
    assert metric_of(read_csv(tmp_path / "results.csv")) == ("mse", False)


def test_files_from_before_the_metric_was_configurable_read_as_accuracy(tmp_path):
    from smallbatch_jax.run.results import metric_of, read_csv
    (tmp_path / "old.csv").write_text("batch_size,base_lr,median_test_accuracy,"
                                      "final_test_accuracy\n8,0.5,0.7,0.75\n")
    rows = read_csv(tmp_path / "old.csv")
    assert rows == [{"batch_size": 8, "base_lr": 0.5, "median_test_metric": 0.7,
                     "final_test_metric": 0.75}]
    assert metric_of(rows) == ("accuracy", True)
    old = History.from_dict({"epoch": [1], "seconds": [2.0], "train_loss": [[1.0]],
                             "test_loss": [[1.5]], "test_accuracy": [[0.25]]})
    assert old.test_metric[0].tolist() == [0.25]



def test_tables_of_one_study_merge_and_a_lane_held_twice_is_refused():
    row = {"model": "alexnet", "dataset": "cifar10", "optimizer": "sgd", "batch_size": "8",
           "bn_batch_size": "8", "base_lr": "0.0078125", "seed": "0"}
    seed_0 = [row, row | {"base_lr": "0.015625"}]
    seeds_1_2 = [row | {"seed": "1", "compile_seconds": "3.0"}, row | {"seed": "2"}]
    merged = merge_tables([seed_0, seeds_1_2])
    assert [r["seed"] for r in merged] == ["0", "0", "1", "2"]
    assert columns_of(merged)[-1] == "compile_seconds"  # a column only the newer table has
    with pytest.raises(ValueError, match="both hold the lane m = 8, m_BN = 8"):
        merge_tables([seed_0, [row | {"base_lr": "0.0078125000"}]])  # the same η̃, seed 0
    with pytest.raises(ValueError, match="different models"):
        merge_tables([seed_0, [row | {"seed": "1", "model": "resnet32"}]])
    # Seeds of a 10-epoch run are no seeds of a 30-epoch one; nor of another η̃'s meaning.
    timed = [r | {"epochs": "30", "lr_scaling": "linear"} for r in seed_0]
    with pytest.raises(ValueError, match=r"different lengths \(epochs\) cannot be merged: "
                                         r"\['10', '30'\]"):
        merge_tables([timed, [row | {"seed": "1", "epochs": 10, "lr_scaling": "linear"}]])
    with pytest.raises(ValueError, match=r"different lr_scalings cannot be merged"):
        merge_tables([timed, [row | {"seed": "1", "epochs": 30, "lr_scaling": "sqrt"}]])
    assert len(merge_tables([timed, [row | {"seed": "1", "epochs": 30}]])) == 3  # (30 = '30')
    # Medians over the last 5 epochs are no seeds of medians over the last 2 (last_epochs).
    windowed = [r | {"metric_epochs": "5"} for r in seed_0]
    with pytest.raises(ValueError, match=r"different metric windows \(last_epochs\) cannot be "
                                         r"merged: \['2', '5'\]"):
        merge_tables([windowed, [row | {"seed": "1", "metric_epochs": 2}]])
    assert len(merge_tables([windowed, [row | {"seed": "1", "metric_epochs": 5}]])) == 3
    # A table from before the column existed (no model) merges with one that has it.
    assert len(merge_tables([seed_0, [row | {"seed": "1", "model": ""}]])) == 3
    # A study that sweeps λ too holds one lane per λ at each (m, η̃, seed): all distinct.
    swept = [row | {"weight_decay": "0.0"}, row | {"weight_decay": "0.0005"}]
    assert len(merge_tables([swept, [r | {"seed": "1"} for r in swept]])) == 4
    with pytest.raises(ValueError, match=r"both hold the lane .* seed 0 \(weight_decay = 0.0005\)"):
        merge_tables([swept, swept[1:]])
    # Seeds chosen on a validation split are no seeds of a sweep scored on the test split,
    # nor is a table from before the column (which evaluated on the test split).
    held = [r | {"seed": "1", "evaluated_on": "validation"} for r in seed_0]
    for test_split in (seed_0, [r | {"evaluated_on": "test"} for r in seed_0]):
        with pytest.raises(ValueError, match=r"evaluated on different splits cannot be merged: "
                                             r"\['test', 'validation'\]"):
            merge_tables([test_split, held])
    assert evaluated_on(held) == "validation" and evaluated_on(seed_0) == "test"
    # ... nor are seeds of a split of 10% those of one of 20%: another training set, whose
    # size the steps at each m tell.
    tenth = [r | {"steps": "1296", "evaluated_on": "validation"} for r in seed_0]
    with pytest.raises(ValueError, match=r"different training sets or lengths cannot be "
                                         r"merged: m = 8 trained \[1152, 1296\] steps"):
        merge_tables([tenth, [r | {"steps": "1152"} for r in held]])
    assert len(merge_tables([tenth, [r | {"steps": "1296.0"} for r in held]])) == 4
    with pytest.raises(ValueError, match="evaluated on different splits cannot be compared"):
        evaluated_on(seed_0 + held)
    # Other labels of the same size (another file under the same name): a constant prediction
    # scores differently on them. Tables from before the column merge as they did.
    ours = [r | {"baseline_test_metric": "0.1"} for r in seed_0]
    with pytest.raises(ValueError, match=r"different data cannot be merged: a constant "
                                         r"prediction scores 0\.1000, 0\.2500"):
        merge_tables([ours, [r | {"baseline_test_metric": "0.25"} for r in seeds_1_2]])
    assert len(merge_tables([ours, [r | {"baseline_test_metric": "0.1"} for r in seeds_1_2]])) == 4
    assert len(merge_tables([ours, seeds_1_2])) == 4


def test_an_adam_row_names_beta1_as_beta1_and_the_setting_to_paste_says_so():
    """An Adam run's `momentum` column held β₁, and the recommendation pasted it as
    'momentum 0.9'."""
    from smallbatch_jax.optim import Optimizer
    from smallbatch_jax.study.recommend import optimizer_setting

    grid = LaneGrid(seeds=(0,), base_lrs=(2.0**-6,), weight_decay=0.0, warmup_fraction=0.0,
                    momentum=0.9, beta2=0.999, epsilon=1e-8)
    history = _history()
    history.test_metric = [m[:1] for m in history.test_metric]
    history.train_loss = [m[:1] for m in history.train_loss]
    history.test_loss = [m[:1] for m in history.test_loss]
    rows = summarize(history, grid, batch_size=8, bn_batch_size=8, steps_per_epoch=10,
                     diverged_step=np.array([-1]), last_epochs=5,
                     optimizer=Optimizer("adam"))
    assert rows[0]["momentum"] == "" and rows[0]["beta1"] == 0.9 and rows[0]["beta2"] == 0.999
    setting = optimizer_setting(rows, 8, 2.0**-6)
    assert "β₁ 0.9, β₂ 0.999, ε 1e-08" in setting and "momentum" not in setting
    # A table from before the column: β₁ was under `momentum`.
    old = [{k: v for k, v in rows[0].items() if k != "beta1"} | {"momentum": 0.9}]
    assert "β₁ 0.9, β₂ 0.999" in optimizer_setting(old, 8, 2.0**-6)


def test_learning_rates_are_written_as_powers_of_two_only_where_they_are_one():
    """An Adam grid of 3e-4, 1e-3, 3e-3, 1e-2 was reported as 2^-11.7027 … 2^-6.64386."""
    from smallbatch_jax.run.results import lr_text

    assert [lr_text(v) for v in (2.0**-8, 2.0**-6.5, 1.0)] == ["2^-8", "2^-6.5", "2^0"]
    assert [lr_text(v) for v in (3e-4, 1e-3, 0.3)] == ["0.0003", "0.001", "0.3"]
    assert lr_text(float(np.float32(0.01))) == "0.01"  # (as results.csv holds it)
    assert lr_text(float("nan")) == "nan"
