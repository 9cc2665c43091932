import math

import pytest

from smallbatch_jax.study.analysis import (best_per_batch_size, bn_metric_table,
                                           bn_summary_markdown, comparison_markdown, joint_best,
                                           metric_table, most_important, optima_at_the_edge,
                                           reliable_ranges, reliable_region, seed_statistics,
                                           setting_of, summary_markdown, tuned)

NAN = float("nan")


def _rows(table, seed=0):
    """table: {m: {log2 η̃: accuracy}} → results rows (strings, as csv gives them)."""
    return [{"batch_size": str(m), "base_lr": str(2.0**k), "seed": str(seed),
             "median_test_metric": str(acc)}
            for m, accs in table.items() for k, acc in accs.items()]


TABLE = {
    2: {-12: 0.60, -10: 0.70, -8: 0.71, -6: 0.69, -4: NAN},
    8: {-12: 0.66, -10: 0.70, -8: 0.65, -6: NAN, -4: NAN},
    64: {-12: 0.50, -10: NAN, -8: NAN, -6: NAN, -4: NAN},
    256: {-12: NAN, -10: NAN, -8: NAN, -6: NAN, -4: NAN},
}


def test_best_per_batch_size():
    best = best_per_batch_size(metric_table(_rows(TABLE)))
    assert best[2] == (2.0**-8, 0.71) and best[8] == (2.0**-10, 0.70)
    assert best[64] == (2.0**-12, 0.50)
    assert all(math.isnan(x) for x in best[256])


@pytest.mark.parametrize("tolerance,expected", [
    (0.0, {2: [-8], 8: [], 64: [], 256: []}),
    (0.015, {2: [-10, -8], 8: [-10], 64: [], 256: []}),
    (0.02, {2: [-10, -8, -6], 8: [-10], 64: [], 256: []}),
    (0.06, {2: [-10, -8, -6], 8: [-12, -10, -8], 64: [], 256: []}),
    (0.5, {2: [-12, -10, -8, -6], 8: [-12, -10, -8], 64: [-12], 256: []}),
])
def test_reliable_range_is_within_tolerance_of_the_sweeps_best(tolerance, expected):
    ranges = reliable_ranges(metric_table(_rows(TABLE)), tolerance)
    assert ranges == {m: [2.0**k for k in ks] for m, ks in expected.items()}


def test_seeds_are_averaged_and_a_diverged_seed_is_not_reliable():
    rows = _rows({4: {-8: 0.8, -6: 0.7}}) + _rows({4: {-8: 0.6, -6: NAN}}, seed=1)
    accuracies = metric_table(rows)
    assert accuracies[(4, 2.0**-8)] == pytest.approx(0.7) and math.isnan(accuracies[(4, 2.0**-6)])
    assert reliable_ranges(accuracies, 0.5) == {4: [2.0**-8]}


def test_summary_numbers_match_the_table():
    text = summary_markdown(_rows(TABLE), tolerance=0.02)
    assert "Best: m = 2, η̃ = 2^-8, accuracy 0.7100" in text
    assert "accuracy ≥ best − 0.02" in text
    assert "| 2 | 2^-8 | 0.7100 | 2^-10 … 2^-6 | 3 | — |" in text
    assert "| 8 | 2^-10 | 0.7000 | 2^-10 | 1 | — |" in text
    assert "| 256 | — | all diverged | none | 0 | — |" in text
    assert "At m = 64 the best η̃ is the smallest of the grid" in text
    assert "largest of the grid" not in text


def test_training_time_per_batch_size_is_its_programs_wall_time():
    rows = [row | {"wall_seconds": str(s)} for row, s in
            zip(_rows({2: {-10: 0.7, -8: 0.71}, 8: {-10: 0.7}}), (120.5, 120.5, 30.2))]
    text = summary_markdown(rows, tolerance=0.02)
    assert "| 2 | 2^-8 | 0.7100 | 2^-10 … 2^-8 | 2 | 120 s |" in text
    assert "| 8 | 2^-10 | 0.7000 | 2^-10 | 1 | 30 s |" in text
    # With what compiling took (rows from before the column have none: as above).
    rows = [row | {"compile_seconds": str(c)} for row, c in zip(rows, (15.2, 15.2, 9.7))]
    text = summary_markdown(rows, tolerance=0.02)
    assert "| 2 | 2^-8 | 0.7100 | 2^-10 … 2^-8 | 2 | 120 s (15 s compiling) |" in text
    assert "| 8 | 2^-10 | 0.7000 | 2^-10 | 1 | 30 s (10 s compiling) |" in text


def test_times_measured_on_different_devices_are_not_compared():
    """A sweep's tasks on two hosts (`--task_index`): m = 2 timed on a GPU, m = 8 on a CPU.
    Their wall times are each their own device's, and no comparison of them is made."""
    from smallbatch_jax.study.analysis import timing_caveat
    rows = [row | {"wall_seconds": "30", "device": "NVIDIA H100 ×1" if row["batch_size"] == "2"
                   else "cpu ×2"} for row in _rows({2: {-10: 0.7}, 8: {-10: 0.71}})]
    caveat = timing_caveat(rows)
    assert caveat == ("The batch sizes were timed on different devices (NVIDIA H100 ×1: m = 2; "
                      "cpu ×2: m = 8): their times are not compared")
    assert caveat in summary_markdown(rows, tolerance=0.02)
    assert timing_caveat([r | {"device": "cpu ×2"} for r in rows]) == ""
    assert timing_caveat(_rows({2: {-10: 0.7}})) == ""  # (rows that do not say)


def test_optima_at_the_edge_of_the_grid_are_flagged():
    table = {2: {-12: 0.6, -10: 0.7, -8: 0.5}, 4: {-12: 0.6, -10: 0.5, -8: 0.7},
             8: {-12: 0.7, -10: 0.6, -8: NAN}, 16: {-12: 0.7}, 32: {-12: NAN, -10: NAN}}
    assert optima_at_the_edge(metric_table(_rows(table))) == {4: "largest", 8: "smallest"}


def _bn_rows(cells, seed=0):
    """cells: {(m, m_BN, log2 η̃): accuracy} → results rows."""
    return [{"batch_size": str(m), "bn_batch_size": str(b), "base_lr": str(2.0**k),
             "seed": str(seed), "median_test_metric": str(acc)}
            for (m, b, k), acc in cells.items()]


BN_CELLS = {
    (16, 4, -8): 0.80, (16, 4, -6): 0.82, (16, 16, -8): 0.78, (16, 16, -6): NAN,
    (64, 4, -8): 0.74, (64, 16, -8): 0.76, (64, 64, -8): NAN,
}


def test_bn_grid_takes_the_best_lr_of_each_cell_after_averaging_seeds():
    accuracies = bn_metric_table(_bn_rows(BN_CELLS))
    assert accuracies[(16, 4)] == (2.0**-6, 0.82) and accuracies[(16, 16)] == (2.0**-8, 0.78)
    assert accuracies[(64, 16)] == (2.0**-8, 0.76)
    assert all(math.isnan(x) for x in accuracies[(64, 64)])
    # A second seed: η̃ = 2^-6 at (16, 4) now averages 0.62 and 2^-8 wins with 0.79.
    rows = _bn_rows(BN_CELLS) + _bn_rows({(16, 4, -8): 0.78, (16, 4, -6): 0.42}, seed=1)
    assert bn_metric_table(rows)[(16, 4)] == (2.0**-8, pytest.approx(0.79))


def test_bn_summary_numbers_match_the_table():
    text = bn_summary_markdown(_bn_rows(BN_CELLS))
    assert "Best: m = 16, m_BN = 4 (η̃ = 2^-6), accuracy 0.8200" in text
    assert "| m | η̃ | m_BN = 4 | m_BN = 16 | m_BN = 64 | best m_BN |" in text
    assert "| 16 | best of 2 | 0.8200 | 0.7800 | — | 4 |" in text
    assert "| 64 | 2^-8 | 0.7400 | 0.7600 | diverged | 16 |" in text
    # A tie goes to the smaller m_BN, in the table and in the "Best:" line alike.
    tied = bn_summary_markdown(_bn_rows({(16, 4, -8): 0.8, (16, 16, -8): 0.8}))
    assert "Best: m = 16, m_BN = 4" in tied and "| 16 | 2^-8 | 0.8000 | 0.8000 | 4 |" in tied


def test_comparison_table_holds_each_sweeps_best_and_reliable_count():
    other = {2: {-12: 0.80, -10: 0.81}, 8: {-12: 0.85, -10: NAN}}
    tables = {"A": metric_table(_rows(TABLE)), "B": metric_table(_rows(other))}
    text = comparison_markdown(tables, tolerance=0.02)
    assert "| m | A | B |" in text
    # B's best is 0.85 (m = 8): at m = 2 neither 0.80 nor 0.81 is within 0.02 of it.
    assert "| 2 | 0.7100 (2^-8, 3 reliable) | 0.8100 (2^-10, 0 reliable) |" in text
    assert "| 8 | 0.7000 (2^-10, 1 reliable) | 0.8500 (2^-12, 1 reliable) |" in text
    assert "| 64 | 0.5000 (2^-12, 0 reliable) | — |" in text
    assert "| 256 | all diverged | — |" in text
    assert "Best m of each sweep: A: m = 2; B: m = 8" in text


def test_one_tie_rule_everywhere_the_smaller_value_wins():
    """Equal accuracies: the smaller η̃ at an m, the smaller m for the sweep's best, the
    smaller m_BN in a ghost-BN row and for its best (listed in any order)."""
    from smallbatch_jax.study.analysis import best_of

    assert best_of({0.5: 0.7, 0.25: 0.7, 1.0: 0.6}) == 0.25
    assert best_of({4: NAN}) is None
    table = {8: {-6: 0.70, -8: 0.70, -10: 0.60}, 2: {-6: 0.70, -7: 0.70}}
    best = best_per_batch_size(metric_table(_rows(table)))
    assert best[8] == (2.0**-8, 0.70) and best[2] == (2.0**-7, 0.70)
    assert "Best: m = 2, η̃ = 2^-7" in summary_markdown(_rows(table), 0.02)
    bn_rows = [{"batch_size": "64", "bn_batch_size": str(b), "base_lr": str(lr), "seed": "0",
                "median_test_metric": "0.7"} for b in (16, 4, 8) for lr in (0.5, 0.125)]
    assert bn_metric_table(bn_rows)[(64, 8)] == (0.125, 0.7)
    summary = bn_summary_markdown(bn_rows)
    assert "Best: m = 64, m_BN = 4 (η̃ = 2^-3)" in summary
    assert summary.rstrip().endswith("| 4 |")


def _lower_is_better(rows):
    return [{**row, "metric": "mse", "higher_is_better": "False"} for row in rows]


def test_a_metric_where_lower_is_better_turns_every_best_around():
    """The same numbers as errors: the best is the smallest, the reliable range is within
    tolerance above it, and the summary and the BN and comparison tables say so."""
    rows = _lower_is_better(_rows(TABLE))
    errors = metric_table(rows)
    assert (errors.metric, errors.higher_is_better) == ("mse", False)
    best = best_per_batch_size(errors)
    assert best[2] == (2.0**-12, 0.60) and best[8] == (2.0**-8, 0.65)
    assert best[64] == (2.0**-12, 0.50) and all(math.isnan(x) for x in best[256])
    # The sweep's best is 0.50 (m = 64): within 25% of it (≤ 0.625), 0.60 (m = 2) and
    # nothing of m = 8 (0.65).
    assert reliable_ranges(errors, 0.25) == {2: [2.0**-12], 8: [], 64: [2.0**-12], 256: []}
    assert reliable_ranges(metric_table(_rows(TABLE)), 0.12)[8] == [2.0**-12, 2.0**-10,
                                                                       2.0**-8]
    # Relative where lower is better: the same errors in other units, the same range.
    for scale in (1e-3, 1e6):
        scaled = [{**row, "median_test_metric": str(float(row["median_test_metric"]) * scale)}
                  for row in rows]
        assert reliable_ranges(metric_table(scaled), 0.25) == reliable_ranges(errors, 0.25)
    text = summary_markdown(rows, tolerance=0.25)
    assert "Best: m = 64, η̃ = 2^-12, mse 0.5000" in text and "lower is better" in text
    assert "mse ≤ best + 0.25·|best|" in text and "| m | best η̃ | best mse |" in text
    assert "| 2 | 2^-12 | 0.6000 | 2^-12 | 1 | — |" in text
    bn_rows = [{**row, "bn_batch_size": row["batch_size"]} for row in rows]
    assert bn_metric_table(bn_rows)[(8, 8)] == (2.0**-8, 0.65)
    assert "Best: m = 64, m_BN = 64" in bn_summary_markdown(bn_rows)
    compared = comparison_markdown({"a": errors}, 0.12)
    assert "Best m of each sweep: a: m = 64" in compared and "mse ≤ best + 0.12·|best|" in compared


def test_rows_of_different_metrics_are_not_ranked_together():
    with pytest.raises(ValueError, match="different metrics"):
        metric_table(_rows(TABLE) + _lower_is_better(_rows({4: {-8: 0.3}})))


def test_a_reliable_range_with_a_gap_is_shown_with_the_gap():
    from smallbatch_jax.study.analysis import format_lrs
    grid = [2.0**k for k in range(-12, -6)]
    assert format_lrs([2.0**-12, 2.0**-11, 2.0**-9], grid) == "2^-12 … 2^-11, 2^-9"
    assert format_lrs([2.0**-10], grid) == "2^-10" and format_lrs([], grid) == "none"
    rows = _rows({4: {-12: 0.70, -11: 0.71, -10: 0.60, -9: 0.70, -8: NAN}})
    text = summary_markdown(rows, tolerance=0.02)
    assert "| 4 | 2^-11 | 0.7100 | 2^-12 … 2^-11, 2^-9 | 3 | — |" in text


def _seeded(table_per_seed):
    return [row for seed, table in enumerate(table_per_seed) for row in _rows(table, seed)]


def test_seeds_give_standard_errors_and_which_m_are_within_noise_of_the_best():
    """m = 2's best (2^-8) has seeds 0.70, 0.72, 0.74; m = 8's best (2^-10) 0.69, 0.71, 0.73
    (the same spread, 0.01 lower: within noise); m = 64's 0.50, 0.51, 0.52 (far below)."""
    from smallbatch_jax.study.analysis import seed_statistics, within_noise
    per_seed = [{2: {-10: 0.60, -8: 0.70 + d}, 8: {-10: 0.69 + d, -8: 0.5},
                 64: {-10: 0.50 + d / 2, -8: NAN}} for d in (0.0, 0.02, 0.04)]
    rows = _seeded(per_seed)
    statistics = seed_statistics(rows)
    mean, se, n = statistics[(2, 2.0**-8)]
    assert n == 3 and mean == pytest.approx(0.72) and se == pytest.approx(0.02 / math.sqrt(3))
    assert math.isnan(statistics[(64, 2.0**-8)][0])
    p = within_noise(rows)
    assert p[2] == 1.0 and p[8] > 0.05 and p[64] < 0.01
    text = summary_markdown(rows, tolerance=0.02)
    assert ("accuracy 0.7200 ± 0.0115 (median test accuracy over the last epochs, mean over "
            "seeds; ± one standard error over 3 seeds)") in text
    assert "Within noise of the best: m = 2, 8 (Welch's t-test" in text
    assert "| m | best η̃ | best accuracy | ± se | p vs best | reliable η̃ |" in text
    assert "| 64 | 2^-10 | 0.5100 | 0.0058 |" in text
    one_seed = summary_markdown(_rows(TABLE), tolerance=0.02)
    assert "± se" not in one_seed and "Within noise" not in one_seed


def test_a_summary_says_what_the_swept_value_is_when_it_is_not_eta_tilde():
    rows = [{**r, "lr_scaling": "none"} for r in _rows(TABLE)]
    assert "The swept value, written η̃ below, is η itself (lr_scaling 'none')." in (
        summary_markdown(rows, 0.02))
    assert "swept value" not in summary_markdown(_rows(TABLE), 0.02)


def test_scores_equal_to_float32_resolution_are_ties():
    from smallbatch_jax.study.analysis import best_of
    a, b = 0.9916434288024902, 0.9916434586048126  # 356/359 in float32, two ways
    assert a != b and best_of({4: a, 2: b}) == 2 and best_of({4: b, 2: a}) == 2
    assert best_of({4: 0.99165, 2: 0.99163}) == 4  # a real difference still decides


def test_the_summary_names_the_model_the_data_and_the_optimizer():
    rows = [dict(row, model="alexnet", dataset="cifar10", optimizer="momentum-nesterov")
            for row in _rows(TABLE)]
    assert summary_markdown(rows, 0.02).splitlines()[:3] == [
        "# Batch-size sweep", "", "alexnet on cifar10, momentum-nesterov."]


def test_within_noise_needs_three_seeds_and_both_reports_give_one_answer():
    """Two seeds gave Welch's test about one degree of freedom (0.225 against 0.349 came out
    "within noise"): the summary and the recommendation now say they cannot tell. With three
    seeds both name the same m: within noise and within the tolerance of the best (m = 8's
    seeds scatter widely: the test passes them, the tolerance does not)."""
    from smallbatch_jax.study import recommend

    with_lr = lambda rows: [dict(r, lr=str(int(r["batch_size"]) * float(r["base_lr"])))
                            for r in rows]  # (the recommendation's setting to paste needs η)
    two = with_lr(_seeded([{2: {-8: 0.349}, 8: {-8: 0.225}}, {2: {-8: 0.351}, 8: {-8: 0.40}}]))
    assert "Within noise of the best: cannot tell with fewer than 3 seeds per point (2 here)" \
        in summary_markdown(two, tolerance=0.02)
    assert "Cannot tell with fewer than 3 seeds per point (2 here)" in \
        recommend.recommendation_markdown(two, {}, 0.0, 0.02)

    three = with_lr(_seeded([{2: {-8: 0.70 + d}, 8: {-8: 0.50 + 10 * d}, 32: {-8: 0.695 + d}}
                             for d in (0.0, 0.01, 0.02)]))
    from smallbatch_jax.study.analysis import batch_sizes_within_noise, within_noise
    assert within_noise(three)[8] > 0.05  # the test alone would pass m = 8
    assert batch_sizes_within_noise(three, 0.02) == [2, 32]
    assert "Within noise of the best: m = 2, 32 (" in summary_markdown(three, tolerance=0.02)
    assert "## 2. The largest m within noise of the best" in (
        text := recommend.recommendation_markdown(three, {}, 0.0, 0.02))
    assert "m = 32 (η̃ = " in text.split("## 2.")[1].split("## 3.")[0]


def test_one_batch_size_is_no_comparison_and_batch_sizes_not_run_are_said_first():
    """A budget that let one m of three run: both reports said "cannot tell with fewer than
    3 seeds per point (3 here)" of a comparison that had no other m, and neither said the
    other two were never run."""
    from smallbatch_jax.study import recommend

    one = [dict(r, lr=str(int(r["batch_size"]) * float(r["base_lr"])))
           for r in _seeded([{64: {-10: 0.66 + d, -9: 0.60 + d}} for d in (0.0, 0.01, 0.02)])]
    summary = summary_markdown(one, tolerance=0.02, not_run=[16, 4])
    assert "Within noise of the best: no other m trained to compare with m = 64." in summary
    assert "seeds per point" not in summary
    assert summary.split("\n\n")[1].startswith("**Not run yet: m = 16, 4** of the sweep's")
    report = recommend.recommendation_markdown(one, {}, 0.0, 0.02, not_run=[16, 4])
    assert "**Not run yet: m = 16, 4** of the sweep's batch sizes" in report.split("## 1.")[0]
    assert "1 batch size, 2 η̃, 3 seeds per point" in report
    assert "No other m trained to compare with m = 64." in report.split("## 3.")[0]
    assert "cannot tell.** fewer than 3 batch sizes with an optimum inside" in report
    assert "Not run yet" not in summary_markdown(one, tolerance=0.02)


def test_a_grid_over_weight_decay_is_tuned_per_point_not_averaged_as_seeds():
    """Rows of one (m, η̃) at two λ: each η̃ is scored at its best λ (not the mean of both as
    if they were seeds), the best point names its λ, and summary.md says what was swept, the
    best setting per m and how much λ matters there."""
    rows = []
    scores = {(8, -9, 0.0): 0.70, (8, -9, 5e-4): 0.80, (8, -7, 0.0): 0.60,
              (8, -7, 5e-4): NAN, (64, -9, 0.0): 0.75, (64, -9, 5e-4): 0.74,
              (64, -7, 0.0): 0.50, (64, -7, 5e-4): 0.55}
    for seed in (0, 1, 2):
        for (m, k, wd), score in scores.items():
            rows.append({"batch_size": str(m), "base_lr": str(2.0**k), "seed": str(seed),
                         "weight_decay": str(wd), "momentum": "0.0",
                         "median_test_metric": str(score + 0.001 * seed)})
    table = metric_table(rows)
    assert table[(8, 2.0**-9)] == pytest.approx(0.801)  # λ 5e-4's, not (0.70 + 0.80) / 2
    assert table[(8, 2.0**-7)] == pytest.approx(0.601)  # λ 0's: λ 5e-4 diverged there
    assert seed_statistics(rows)[(64, 2.0**-7)][2] == 3  # three seeds, not six
    assert {r["weight_decay"] for r in tuned(rows) if r["batch_size"] == "64"
            and r["base_lr"] == str(2.0**-9)} == {"0.0"}
    best = joint_best(rows)
    assert best[8][0] == {"weight_decay": 5e-4}
    # 0.801 vs 0.701, ± √2 × the seeds' standard error (0.001 / √3)
    assert best[8][1]["weight_decay"] == pytest.approx((0.10, 0.001 * math.sqrt(2 / 3)))
    assert best[64][0] == {"weight_decay": 0.0}
    assert most_important(rows, 8) == ["base_lr", "weight_decay"]  # 0.2 over η̃, 0.1 over λ
    assert most_important(rows, 64) == ["base_lr", "weight_decay"]  # 0.24 and 0.01
    text = summary_markdown(rows, 0.02)
    assert "weight_decay ∈ {0, 0.0005}" in text
    assert "| 8 | 2^-9 | 0.0005 | 0.1000 ± 0.0008 |" in text
    assert "| 64 | 2^-9 | 0 | 0.0100 ± 0.0008 |" in text
    # The reliable region over the whole grid: within 0.02 of the sweep's best (0.801), every
    # seed trained: only m = 8's best point; nothing at m = 64 (0.751 at best).
    assert reliable_region(rows, 0.02) == {8: [(2.0**-9, setting_of(rows[1]))], 64: []}
    assert "| 8 | 1 of 4 | 2^-9 | 0.0005 |" in text and "| 64 | 0 of 4 | — | — |" in text
    assert "each m's best η̃ and setting of weight_decay is chosen on the same seeds" in text
    # Whether fixing λ moves the best m: at λ = 0 it is 64, tuned (and at 5e-4) 8.
    assert ("Best m with weight_decay tuned: m = 8 (accuracy 0.8010); at weight_decay = 0: "
            "m = 64 (accuracy 0.7510); at weight_decay = 0.0005: m = 8 (accuracy 0.8010).") in text


def test_batch_sizes_that_see_fewer_examples_an_epoch_are_named():
    """digits' 1438 training examples: m = 512 trains on 2 batches an epoch, 1024 examples
    (71% of m = 2's 1438), a handicap the comparison at equal epochs does not show."""
    from smallbatch_jax.study.analysis import dropped_examples_note
    steps = {2: 719, 64: 22, 512: 2}
    rows = [row | {"steps": str(10 * steps[int(row["batch_size"])]), "epochs": "10"}
            for row in _rows({2: {-10: 0.9}, 64: {-10: 0.9}, 512: {-10: 0.8}})]
    note = dropped_examples_note(rows)
    assert note.startswith("Examples per epoch: m = 512 trains on 1024 (71%), against "
                           "m = 2's 1438")
    assert "m = 64" not in note  # 1408, 98%
    assert note in summary_markdown(rows, tolerance=0.02)
    assert dropped_examples_note([r for r in rows if r["batch_size"] != "512"]) == ""
    assert dropped_examples_note(_rows({2: {-10: 0.9}})) == ""  # (rows that do not say)


def test_batch_sizes_whose_metric_read_mostly_mid_training_epochs_are_named():
    """The README's API example at 5 epochs: the median of the last 5 read 3 epochs before
    the last decay at every m, its third epoch's score on rising curves; the summary says so
    where the rows do (`metric_epochs_before_decay`), and not for the paper's protocol."""
    from smallbatch_jax.study.analysis import metric_window_note
    read = {4: ("5", "3"), 16: ("5", "3"), 64: ("5", "2")}
    rows = [row | dict(zip(("metric_epochs", "metric_epochs_before_decay"),
                           read[int(row["batch_size"])]))
            for row in _rows({4: {-8: 0.856}, 16: {-6: 0.856}, 64: {-6: 0.838}})]
    note = metric_window_note(rows)
    assert note.startswith("At m = 4, 16 the metric's median read 3 of 5 epochs before the "
                           "learning rate's last decay: a mid-training score there")
    assert note in summary_markdown(rows, tolerance=0.02)
    assert metric_window_note([r | {"metric_epochs_before_decay": "0"} for r in rows]) == ""
    assert metric_window_note(_rows({2: {-10: 0.9}})) == ""  # (rows that do not say)
