"""The recommendation's verdicts, each on tables built to make it true, false and
undecidable, and the report's parts."""

import math
import shlex

from smallbatch_jax.study import recommend
from smallbatch_jax.study.recommend import CANNOT_TELL, FALSE, TRUE

NAN = float("nan")
# Three seeds' offsets: a spread of ±0.005 around each cell's value (standard error 0.003).
SPREAD = (-0.005, 0.0, 0.005)


def _rows(table, seeds=SPREAD, **columns):
    """{m: {log2 η̃: accuracy}} → results rows, one per seed (accuracy + the seed's offset;
    NaN stays NaN: diverged)."""
    return [{"batch_size": str(m), "base_lr": str(2.0**k), "seed": str(i),
             "median_test_metric": str(acc + offset), "lr": str(m * 2.0**k), **columns}
            for m, accs in table.items() for k, acc in accs.items()
            for i, offset in enumerate(seeds)]


def test_32_is_best_true_false_and_undecidable():
    assert recommend.verdict_32_is_best(_rows(
        {8: {-10: 0.60, -8: 0.70, -6: 0.65}, 32: {-10: 0.75, -8: 0.80, -6: 0.70}})).answer == TRUE
    false = recommend.verdict_32_is_best(_rows(
        {8: {-10: 0.60, -8: 0.80, -6: 0.65}, 32: {-10: 0.70, -8: 0.72, -6: 0.60}}))
    assert false.answer == FALSE and "p = 0.00" in false.because
    within = recommend.verdict_32_is_best(_rows(
        {8: {-10: 0.60, -8: 0.802, -6: 0.65}, 32: {-10: 0.70, -8: 0.80, -6: 0.60}}))
    assert within.answer == CANNOT_TELL and "is not significantly below the best" in within.because
    one_seed = recommend.verdict_32_is_best(_rows(
        {8: {-10: 0.60, -8: 0.80}, 32: {-10: 0.70, -8: 0.72}}, seeds=(0.0,)))
    assert one_seed.answer == CANNOT_TELL
    assert "1 seed per point, fewer than 3: no test (run with num_seeds ≥ 3)" in one_seed.because
    # Two seeds are no test either, and the reason says two (it once said "one seed", and
    # asked for num_seeds ≥ 2 of a run that had them).
    two_seeds = recommend.verdict_32_is_best(_rows(
        {8: {-10: 0.60, -8: 0.80}, 32: {-10: 0.70, -8: 0.72}}, seeds=(-0.005, 0.005)))
    assert two_seeds.answer == CANNOT_TELL
    assert "2 seeds per point, fewer than 3: no test" in two_seeds.because
    assert recommend.verdict_32_is_best(_rows({8: {-8: 0.8}})).because == "m = 32 was not run"


def test_linear_scaling_true_false_and_undecidable():
    # The best η̃ is 2^-8 at every m: linear scaling of η = m·η̃ holds.
    same = {m: {-10: 0.6, -8: 0.8, -6: 0.6} for m in (4, 16, 64)}
    assert recommend.verdict_linear_scaling(_rows(same)).answer == TRUE
    # The best η̃ halves with each doubling... here a factor 4 per 4× m, sharp optima: the
    # seeds reject a common η̃.
    moving = {4: {-10: 0.6, -8: 0.6, -6: 0.8, -4: 0.6},
              16: {-10: 0.6, -8: 0.8, -6: 0.6, -4: 0.6},
              64: {-12: 0.6, -10: 0.8, -8: 0.6, -6: 0.6}}
    assert recommend.verdict_linear_scaling(_rows(moving)).answer == FALSE
    # The best η̃ moves, but the seeds are too noisy to reject one η̃ for every m.
    noisy = {m: {k: v for k, v in accs.items()} for m, accs in moving.items()}
    verdict = recommend.verdict_linear_scaling(_rows(noisy, seeds=(-0.3, 0.0, 0.3)))
    assert verdict.answer == CANNOT_TELL and "more seeds" in verdict.because
    # An optimum at the grid's edge is a bound: no verdict.
    edge = {4: {-8: 0.8, -6: 0.6}, 16: {-8: 0.6, -6: 0.8}}
    assert "edge" in recommend.verdict_linear_scaling(_rows(edge)).because


def test_linear_scaling_is_judged_on_eta_over_m_whatever_the_sweep_scales():
    """A sweep of Adam's η itself (lr_scaling 'none'): the same best η at every m is η/m
    falling with m, linear scaling rejected; a best η ∝ m is linear scaling."""
    def adam_rows(best_log2_eta):  # {m: log2 of the best η}, a sharp optimum there
        return [{"batch_size": str(m), "base_lr": str(2.0**k), "lr": str(2.0**k),
                 "lr_scaling": "none", "seed": str(i),
                 "median_test_metric": str((0.8 if k == best else 0.6) + offset)}
                for m, best in best_log2_eta.items() for k in range(-12, -1, 2)
                for i, offset in enumerate(SPREAD)]
    fixed_eta = recommend.verdict_linear_scaling(adam_rows({4: -8, 16: -8, 64: -8}))
    assert fixed_eta.answer == FALSE and "m = 64: 2^-14" in fixed_eta.because  # η/m
    # Named η/m, not η̃: the report writes the swept η as η̃ (its best at m = 64 is 2^-8).
    assert "best η/m m = 4: 2^-10, m = 16: 2^-12, m = 64: 2^-14" in fixed_eta.because
    assert "η̃" not in fixed_eta.because + fixed_eta.claim
    proportional = adam_rows({4: -8, 16: -6, 64: -4})  # η/m = 2^-10 at every m
    assert recommend.verdict_linear_scaling(proportional).answer == TRUE
    apart = recommend.verdict_linear_scaling(adam_rows({4: -8, 8192: -8}))  # no common η/m
    assert apart.answer == CANNOT_TELL and "share no value" in apart.because
    note = recommend.recommendation_markdown(proportional, {}, 0.7, 0.02)
    assert "The swept value, written η̃ below, is η itself (lr_scaling 'none')" in note


def test_update_noise_verdict_follows_the_trend_of_best_lr_squared_times_m():
    def sweep(best_log2_lr):
        # Interior optima at the given η̃ per m.
        return {m: {k - 2: 0.5, k: 0.8, k + 2: 0.5} for m, k in best_log2_lr.items()}

    # η̃* ∝ 1/m: η̃*²·m ∝ 1/m falls with m, the small batches' updates are the noisier.
    assert recommend.verdict_small_batches_noisier(
        _rows(sweep({2: -6, 8: -8, 32: -10, 128: -12}))).answer == TRUE
    # η̃* constant: η̃*²·m ∝ m, the large batches' updates are the noisier.
    assert recommend.verdict_small_batches_noisier(
        _rows(sweep({2: -8, 8: -8, 32: -8, 128: -8}))).answer == FALSE
    # η̃* ∝ 1/√m-ish with scatter: no trend.
    assert recommend.verdict_small_batches_noisier(
        _rows(sweep({2: -8, 8: -10, 32: -10, 128: -12}))).answer == CANNOT_TELL
    # Grid points that line up exactly (p = 0) over a change no larger than the grid's
    # resolution: a factor 2 grid, η̃* halving per doubling of m over m = 2 … 8 is a
    # 4× fall of η̃*²·m, which one grid step at each end could make or hide.
    unit = lambda best: {m: {k - 1: 0.5, k: 0.8, k + 1: 0.5} for m, k in best.items()}
    within = recommend.verdict_small_batches_noisier(_rows(unit({2: -5, 4: -6, 8: -7})))
    assert within.answer == CANNOT_TELL and "within the grid's resolution (4×" in within.because
    assert recommend.verdict_small_batches_noisier(
        _rows(unit({2: -5, 4: -6, 8: -7, 16: -8}))).answer == TRUE  # 8×: beyond it
    # η̃*²·m the same at every m (η̃* halving per 4× m): no spread to fit, no "± nan (p = nan)".
    flat = recommend.verdict_small_batches_noisier(_rows(unit({2: -3, 8: -4, 32: -5})))
    assert flat.answer == CANNOT_TELL and "nan" not in flat.because
    assert "slope +0.00 in log₂–log₂: a change of 1× over the m run" in flat.because
    # An m run at a single η̃ has no optimum inside a grid (nor a grid step to know it to).
    single = recommend.verdict_small_batches_noisier(_rows({2: {-8: 0.7}, 8: {-8: 0.6},
                                                            32: {-8: 0.7}}))
    assert single.answer == CANNOT_TELL and "fewer than 3 batch sizes" in single.because
    # Not SGD on summed gradients: the argument does not apply.
    adam = _rows(sweep({2: -6, 8: -8, 32: -10}), optimizer="adam", lr_scaling="none")
    assert "SGD" in recommend.verdict_small_batches_noisier(adam).because


def test_larger_batches_train_faster_from_time_to_target():
    def found(seconds):
        return {m: {"steps": None if s is None else 10, "examples": None, "lr": 2.0**-8,
                    "seconds": math.nan if s is None else s} for m, s in seconds.items()}

    rows = _rows({8: {-8: 0.8}})
    assert recommend.verdict_larger_train_faster(rows, found({8: 30.0, 64: 10.0})).answer == TRUE
    verdict = recommend.verdict_larger_train_faster(rows, found({8: 30.0, 64: 10.0, 512: None}))
    assert verdict.answer == FALSE and "never reached" in verdict.because
    assert recommend.verdict_larger_train_faster(
        rows, found({8: 10.0, 64: 30.0})).answer == FALSE
    # 2% apart: timing noise, not a verdict.
    assert recommend.verdict_larger_train_faster(
        rows, found({8: 10.0, 64: 10.2})).answer == CANNOT_TELL
    assert recommend.verdict_larger_train_faster(rows, found({8: 10.0})).answer == CANNOT_TELL
    # A time is known to one evaluation interval. m = 8 evaluated once an epoch of 719 steps
    # and reaching the target at its first (30 s): it may have taken a tenth of that, and the
    # largest m's 10 s does not show it faster (it read *true*). Where m = 8 needed 10
    # evaluations (its time at least 27 s), it does.
    def bounded(steps8, interval8):
        return {8: {"steps": steps8, "examples": None, "lr": 2.0**-8, "seconds": 30.0,
                    "interval": interval8},
                64: {"steps": 22, "examples": None, "lr": 2.0**-8, "seconds": 10.0,
                     "interval": 2}}
    coarse = recommend.verdict_larger_train_faster(rows, bounded(719, 719))
    assert coarse.answer == CANNOT_TELL and "evaluations are too far apart" in coarse.because
    assert "m = 8 reached the target between 0 and 30 s" in coarse.because
    assert recommend.verdict_larger_train_faster(rows, bounded(7190, 719)).answer == TRUE
    # A target no better than a constant prediction is reached without learning (the largest
    # m first: the fewest steps to its first evaluation): no verdict on it.
    imbalanced = _rows({8: {-8: 0.99}}, baseline_test_metric="0.97")
    trivial = recommend.verdict_larger_train_faster(imbalanced, found({8: 30.0, 64: 10.0}),
                                                    target=0.94)
    assert trivial.answer == CANNOT_TELL and "no better than what a constant prediction" in (
        trivial.because)
    assert recommend.verdict_larger_train_faster(imbalanced, found({8: 30.0, 64: 10.0}),
                                                 target=0.98).answer == TRUE
    # Timed on different devices (a sweep's tasks on two hosts): not compared.
    hosts = [r | {"device": "cpu ×2" if r["batch_size"] == "8" else "NVIDIA H100 ×1"}
             for r in _rows({8: {-8: 0.8}, 64: {-8: 0.8}})]
    verdict = recommend.verdict_larger_train_faster(hosts, found({8: 30.0, 64: 10.0}))
    assert verdict.answer == CANNOT_TELL and "timed on different devices" in verdict.because
    text = recommend.recommendation_markdown(
        [r | {"wall_seconds": "30" if r["batch_size"] == "8" else "10"} for r in hosts],
        found({8: 30.0, 64: 10.0}), 0.7, 0.02)
    assert "its training took" not in text and "timed on different devices" in text


def test_the_report_recommends_the_best_point_and_its_setting():
    table = {4: {-10: 0.70, -8: 0.80, -6: NAN}, 16: {-10: 0.78, -8: 0.70, -6: NAN},
             64: {-12: 0.60, -10: 0.75, -8: NAN}}
    rows = _rows(table, optimizer="sgd", lr_scaling="linear", weight_decay="0.0005",
                 epochs="10")
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02, where="cnn on digits, sgd")
    assert "**m = 4, η̃ = 2^-8**: accuracy 0.8000 ± 0.0029 (n = 3)" in text
    assert "sgd learning rate 0.015625 (= m·η̃ = 4 × 2^-8, on the batch-mean loss)" in text
    # m = 16 (0.78) is significantly below 0.80 with these seeds, and so is m = 64 ...
    assert "m = 4 itself: no larger m is within noise" in text
    # ... but at 0.799 m = 16 is within noise, and the report names it.
    table[16][-10] = 0.799
    close = recommend.recommendation_markdown(_rows(table), {}, 0.0, 0.02)
    section_2 = close.split("## 2.")[1].split("## 3.")[0]
    assert "\n\nm = 16 (η̃ = 2^-10" in section_2 and "a larger one may be" not in section_2
    # The training times beside it leave compilation out where the rows measured it.
    timed = [r | {"wall_seconds": {"4": "23", "16": "21", "64": "9"}[r["batch_size"]],
                  "compile_seconds": {"4": "3", "16": "6", "64": "2"}[r["batch_size"]]}
             for r in _rows(table)]
    assert ("its training took 15 s against 20 s at m = 4 (this sweep's program, every η̃, "
            "compilation excluded)") in recommend.recommendation_markdown(timed, {}, 0.0, 0.02)
    # Short times keep two digits (a binary study's read "0 s against 0 s").
    short = [r | {"wall_seconds": {"4": "0.84", "16": "0.31", "64": "0.2"}[r["batch_size"]],
                  "compile_seconds": "0"} for r in _rows(table)]
    assert ("its training took 0.31 s against 0.84 s at m = 4"
            in recommend.recommendation_markdown(short, {}, 0.0, 0.02))
    # Within noise at the largest m run: larger ones were not tried.
    table[64][-10] = 0.799
    section_2 = recommend.recommendation_markdown(_rows(table), {}, 0.0, 0.02).split("## 2.")[1]
    assert "\n\nm = 64 (η̃ = 2^-10" in section_2
    assert "; the largest m run here: a larger one may be within noise too" in section_2
    table[64][-10] = 0.75
    # Seeds that scatter widely pass the test without being as good: not within noise.
    table[16][-10] = 0.70
    wide = recommend.recommendation_markdown(_rows(table, seeds=(-0.3, 0.0, 0.3)), {}, 0.0,
                                             0.02)
    assert "m = 4 itself: no larger m is within noise" in wide
    # The stable range shows the diverged η̃ as missing from 'trains'.
    assert "| 4 | 2^-8 | 0.8000 ± 0.0029 (n = 3) | 2^-10 … 2^-8 | 2^-8 |" in text
    assert text.count("- **\"") == 4  # the four verdicts


def test_a_best_m_at_the_edge_of_the_sweep_is_said_to_be_a_bound():
    """A sweep of m = 4, 16, 64 whose best was 4 recommended m = 4 without a word that
    m = 2 was never tried (for η̃ at its grid's edge the report said so)."""
    section_1 = lambda table, **columns: recommend.recommendation_markdown(
        _rows(table, **columns), {}, 0.0, 0.02).split("## 2.")[0]
    smallest = section_1({4: {-8: 0.80}, 16: {-8: 0.70}, 64: {-8: 0.60}})
    assert ("m = 4 is the smallest batch size run here: a smaller one may do better still; "
            "add it to `batch_sizes` to know.") in smallest
    largest = section_1({4: {-8: 0.60}, 16: {-8: 0.70}, 64: {-8: 0.80}})
    assert "m = 64 is the largest batch size run here: a larger one may do" in largest
    assert "batch size run here" not in section_1({4: {-8: 0.6}, 16: {-8: 0.8}, 64: {-8: 0.7}})
    # A smaller m that ran and diverged at every η̃: its grid is what to extend.
    diverged = section_1({2: {-8: NAN}, 4: {-8: 0.80}, 16: {-8: 0.70}})
    assert ("m = 4 is the smallest batch size that trained here; m = 2 diverged at every η̃ "
            "of the grid") in diverged and "extend `base_lrs` below" in diverged
    # Full-batch training (one step per epoch) has no larger m; m = 1 no smaller one.
    assert "largest" not in section_1({4: {-8: 0.6}, 64: {-8: 0.8}}, steps="10", epochs="10")
    assert "smallest" not in section_1({1: {-8: 0.8}, 4: {-8: 0.6}})
    assert "batch size run here" not in section_1({4: {-8: 0.8}})  # one m: no sweep


def test_a_grid_that_is_not_of_powers_of_two_is_reported_as_given():
    rows = [row | {"base_lr": str(lr), "lr": str(lr)} for lr in (3e-4, 1e-3, 3e-3)
            for row in _rows({8: {0: 0.9 - abs(math.log10(lr) + 3) / 10}})]
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    assert "**m = 8, η̃ = 0.001**" in text and "| 8 | 0.001 | 0.9000 ± 0.0029 (n = 3) | 0.0003 … 0.003 |" in text
    assert "2^-" not in text


def test_the_report_puts_the_measured_noise_scale_beside_the_best_m():
    rows = _rows({4: {-10: 0.70, -8: 0.80}, 16: {-10: 0.78, -8: 0.70}})
    nan = float("nan")
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02,
                                             noise_scales={4: (31.4, 4.2), 16: (nan, nan)})
    assert "m = 4: 31.4 ± 4.2, m = 16: not measurable. The best m found by training: 4." in text
    assert "Not measurable: in the last epochs the estimate of |G|² was not resolved" in text
    # (Not "near convergence" alone: a 2-epoch CIFAR run at 0.34 accuracy had B ≈ 300 ± 300
    # from a probe of 100 examples.)
    assert "the probe's batches are small next to a noise scale this large" in text
    assert "`config.noise_scale.batch_size`, `num_batches`, `max_fraction`" in text
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02, noise_scales={4: (31.4, nan)})
    assert "m = 4: 31.4. The best m found by training: 4.\n" in text
    assert "noise scale B_simple" not in recommend.recommendation_markdown(rows, {}, 0.0, 0.02)


def test_a_timing_verdict_says_what_its_times_rest_on_and_shows_short_times():
    """'m = 8 is 13.18× faster (0 s vs 1 s)': short times were printed as 0 s, and the
    verdict did not say what the times were."""
    rows = _rows({8: {-8: 0.8}, 64: {-8: 0.8}})
    found = {8: {"steps": 10, "seconds": 0.07}, 64: {"steps": 5, "seconds": 0.92}}
    verdict = recommend.verdict_larger_train_faster(rows, found)
    assert verdict.answer == FALSE
    assert "m = 8: 0.07 s, m = 64: 0.92 s" in verdict.because
    assert "seconds per step of m's program in its median epoch" in verdict.because
    assert "compilation excluded" in verdict.because


def _grid_rows(score, batch_sizes=(8, 64), log2_lrs=range(-12, -5), weight_decays=(0.0, 5e-4,
               5e-3), seeds=SPREAD):
    """Rows of a grid over m × η̃ × λ (config.sweep.weight_decay), each point's score
    `score(m, log2 η̃, λ)` + each seed's offset."""
    return [{"batch_size": str(m), "base_lr": str(2.0**k), "seed": str(i), "lr": str(m * 2.0**k),
             "weight_decay": str(wd), "momentum": "0.0",
             "median_test_metric": str(score(m, k, wd) + offset)}
            for m in batch_sizes for k in log2_lrs for wd in weight_decays
            for i, offset in enumerate(seeds)]


def test_tuning_a_hyperparameter_moves_the_best_batch_size_or_not():
    # λ = 5e-4: m = 8 best (0.80); λ = 0: m = 64 best (0.75 against m = 8's 0.60); tuned,
    # m = 8 (0.80) beats m = 64 (0.75): which m is best depends on λ.
    def moving(m, k, wd):
        peak = {(8, 5e-4): 0.80, (64, 5e-4): 0.70, (8, 0.0): 0.60, (64, 0.0): 0.75,
                (8, 5e-3): 0.65, (64, 5e-3): 0.62}[(m, wd)]
        return peak - 0.05 * abs(k + 9)
    verdict = recommend.verdict_tuning_moves_best_m(_grid_rows(moving), "weight_decay")
    assert verdict.answer == TRUE, verdict.because
    assert "best m = 8 with weight_decay tuned; at weight_decay = 0: m = 64" in verdict.because
    # m = 8 best at every λ: false.
    steady = lambda m, k, wd: (0.8 if m == 8 else 0.7) - 100 * wd - 0.05 * abs(k + 9)
    assert recommend.verdict_tuning_moves_best_m(_grid_rows(steady), "weight_decay"
                                                 ).answer == FALSE
    # m = 8 best at every λ, but m = 64 within noise of it at λ = 0 (0.002 below): which m
    # is best there is not resolved, and "the same m" is no answer: cannot tell.
    unresolved = lambda m, k, wd: (steady(m, k, wd) if wd else
                                   (0.602 if m == 8 else 0.60) - 0.05 * abs(k + 9))
    verdict = recommend.verdict_tuning_moves_best_m(_grid_rows(unresolved), "weight_decay")
    assert verdict.answer == CANNOT_TELL, verdict.because
    assert "at weight_decay = 0, not significantly below its best m: m = 64 (p = " in verdict.because
    # Both m alike at every λ: the same best m by the tie-break alone.
    tied = lambda m, k, wd: 0.8 - 0.05 * abs(k + 9)
    assert recommend.verdict_tuning_moves_best_m(_grid_rows(tied), "weight_decay"
                                                 ).answer == CANNOT_TELL
    # The change within noise (m = 64 at λ = 0 only 0.002 above m = 8): cannot tell.
    close = lambda m, k, wd: moving(m, k, wd) if wd else (0.602 if m == 64 else 0.60) - 0.05 * abs(k + 9)
    verdict = recommend.verdict_tuning_moves_best_m(_grid_rows(close), "weight_decay")
    assert verdict.answer == CANNOT_TELL and "the change is not significant" in verdict.because
    # One or two seeds: no test, whatever the point estimates.
    for seeds in ((0.0,), (-0.005, 0.005)):
        verdict = recommend.verdict_tuning_moves_best_m(_grid_rows(moving, seeds=seeds),
                                                        "weight_decay")
        assert verdict.answer == CANNOT_TELL and "seeds" in verdict.because
    # One batch size: it is "the best at every λ" with no rival; that answers nothing (a
    # sweep of one m said "false" here).
    for score in (steady, moving):
        verdict = recommend.verdict_tuning_moves_best_m(_grid_rows(score, batch_sizes=(8,)),
                                                        "weight_decay")
        assert verdict.answer == CANNOT_TELL, verdict.because
        assert "fewer than 2 batch sizes" in verdict.because


def test_the_best_learning_rate_moves_with_weight_decay_or_not():
    # η·λ coupling: the best η̃ is 2^-8 at λ = 5e-4 and 2^-11 at λ = 5e-3 (10× λ, ~3.3 powers
    # of 2 smaller), at both m.
    coupled = lambda m, k, wd: 0.8 - 0.05 * abs(k - (-8 if wd <= 5e-4 else -11))
    verdict = recommend.verdict_lr_moves_with_weight_decay(_grid_rows(coupled))
    assert verdict.answer == TRUE, verdict.because
    assert "m = 8: 2^-8 → 2^-11" in verdict.because and "3.3 powers of 2" in verdict.because
    # The same best η̃ at every λ, smaller η̃ significantly worse: the coupling is rejected.
    fixed = lambda m, k, wd: 0.8 - 0.05 * abs(k + 8)
    assert recommend.verdict_lr_moves_with_weight_decay(_grid_rows(fixed)).answer == FALSE
    # Moving down at one m, up at the other: cannot tell.
    mixed = lambda m, k, wd: 0.8 - 0.05 * abs(k - (-8 if wd <= 5e-4 else (-11 if m == 8 else -7)))
    assert recommend.verdict_lr_moves_with_weight_decay(_grid_rows(mixed)).answer == CANNOT_TELL
    # Two seeds: a clear shift of the point estimates, but no test.
    two = recommend.verdict_lr_moves_with_weight_decay(_grid_rows(coupled, seeds=(-0.005, 0.005)))
    assert two.answer == CANNOT_TELL and "no test" in two.because
    # One λ > 0 beside λ = 0: nothing to compare.
    only = recommend.verdict_lr_moves_with_weight_decay(
        _grid_rows(coupled, weight_decays=(0.0, 5e-4)))
    assert only.answer == CANNOT_TELL and "fewer than two λ > 0" in only.because


def test_the_report_gives_the_verdicts_of_each_swept_hyperparameter():
    # m = 8 best at every λ, by 0.1 (before, both m scored alike: "false" was the tie-break's
    # answer, now "cannot tell": test_tuning_a_hyperparameter_moves_the_best_batch_size_or_not).
    rows = _grid_rows(lambda m, k, wd: (0.8 if m == 8 else 0.7)
                      - 0.05 * abs(k - (-8 if wd <= 5e-4 else -11)))
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    verdicts = text.split("## 5.")[1]
    assert "tuning weight decay λ as well changes the best batch size\": false" in verdicts
    assert "the best η̃ moves with the weight decay λ" in verdicts and "\": true." in verdicts
    assert "tuning" not in recommend.recommendation_markdown(
        _rows({8: {-8: 0.8, -6: 0.7}}), {}, 0.0, 0.02).split("## 5.")[1]


def test_the_setting_to_paste_states_each_swept_hyperparameter_at_its_best_even_at_zero():
    """A sweep of λ and μ (momentum SGD) whose best is λ = 0, μ = 0: the setting said
    neither ("weight decay" only when > 0), and a reader pasting μ and λ from their own
    config (0.9, 5e-4) ran a setting that was not the best."""
    rows = [row | {"optimizer": "momentum", "momentum": mu, "warmup": "0.0"}
            for mu in ("0.0", "0.9")
            for row in _grid_rows(lambda m, k, wd: (0.8 if (m, wd) == (8, 0.0) else 0.7)
                                  - 0.05 * abs(k + 8) - (0.1 if mu == "0.9" else 0.0))]
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    assert "**m = 8, η̃ = 2^-8, weight_decay = 0, momentum = 0**" in text
    setting = text.split("Setting: ")[1].split("\n")[0]
    assert "momentum 0," in setting
    assert ("weight decay 0 (as this sweep applies it: to the convolution and dense kernels "
            "only, not to biases or normalization parameters)") in setting
    assert "warm-up" not in setting  # neither swept nor used
    # A warm-up the sweep used is part of the setting, swept or not.
    warm = [row | {"warmup": "0.05"} for row in rows]
    assert "warm-up over the first 0.05 of training" in recommend.optimizer_setting(
        warm, 8, 2.0**-8)
    # Not swept and 0: not stated, as before.
    plain = _rows({8: {-8: 0.8}}, optimizer="sgd", weight_decay="0.0", warmup="0.0")
    assert recommend.optimizer_setting(plain, 8, 2.0**-8) == (
        "batch size 8, sgd learning rate 0.03125 (= m·η̃ = 8 × 2^-8, on the batch-mean loss)")


def test_hyperparameters_swept_together_as_points_get_one_verdict_that_names_them_all():
    """sweep.points ({λ: 0, μ: 0}, {λ: 5e-4, μ: 0.9}): λ and μ go one to one, so "tuning λ
    changes the best m" and "tuning μ changes the best m" were two verdicts on one
    comparison, each crediting its own key, and the η·λ coupling was judged on λ alone."""
    def score(m, k, wd):  # λ = 5e-4 (with μ = 0.9): m = 8 best; λ = 0 (μ = 0): m = 64
        peak = {(8, 5e-4): 0.80, (64, 5e-4): 0.70, (8, 0.0): 0.60, (64, 0.0): 0.75}[(m, wd)]
        return peak - 0.05 * abs(k + 9)
    rows = [row | {"momentum": "0.9" if float(row["weight_decay"]) else "0.0"}
            for row in _grid_rows(score, weight_decays=(0.0, 5e-4))]
    assert recommend.swept_together(rows) == [("weight_decay", "momentum")]
    verdicts = recommend.recommendation_markdown(rows, {}, 0.0, 0.02).split("## 5.")[1]
    assert verdicts.count("as well changes the best batch size") == 1
    assert ("tuning weight decay λ and momentum μ (swept together: their values go one to "
            "one) as well changes the best batch size\": true") in verdicts
    assert "at weight_decay = 0 (momentum = 0): m = 64, 0.0005 (momentum = 0.9): m = 8" in verdicts
    assert ("λ was swept together with momentum μ (their values go one to one): a move of the "
            "best η̃ with λ cannot be told from one with them") in verdicts
    # Swept as a product (every λ with every μ), each gets its own verdict.
    product = [row | {"momentum": mu} for mu in ("0.0", "0.9")
               for row in _grid_rows(score, weight_decays=(0.0, 5e-4))]
    assert recommend.swept_together(product) == [("weight_decay",), ("momentum",)]
    assert recommend.recommendation_markdown(product, {}, 0.0, 0.02).count(
        "as well changes the best batch size") == 2


def test_the_learning_rates_within_noise_of_the_recommended_are_within_the_tolerance():
    """Seeds that scatter widely pass the test without being as good: at a recommended m = 4
    (a user CNN on digits, 3 seeds), 2^-2 read 0.9333 against the best's 0.9722 and was
    listed "within noise of it", where the report's own rule for the m adds the tolerance."""
    rows = [{"batch_size": "4", "base_lr": str(2.0**k), "seed": str(i),
             "median_test_metric": str(v), "lr": str(4 * 2.0**k)}
            for k, seeds in {-6: (0.931, 0.9619, 0.9381), -4: (0.9571, 0.9762, 0.9833),
                             -2: (0.9071, 0.9571, 0.9357), -3: (0.955, 0.97, 0.965)}.items()
            for i, v in enumerate(seeds)]
    assert recommend.lrs_within_noise(rows, 4) == [2.0**-6, 2.0**-4, 2.0**-3, 2.0**-2]
    assert recommend.lrs_within_noise(rows, 4, tolerance=0.02) == [2.0**-4, 2.0**-3]
    report = recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    assert ("η̃ within noise of it at m = 4 (not significantly worse, Welch p ≥ 0.05, and "
            "within 0.02 of it): 2^-4 … 2^-3.") in report


def test_two_seeds_are_not_a_test_of_which_learning_rates_are_within_noise():
    # With two seeds every other η̃ would have come out "significantly worse" (no p-value).
    two = _rows({8: {-10: 0.79, -8: 0.80, -6: 0.79}}, seeds=(-0.005, 0.005))
    assert recommend.lrs_within_noise(two, 8) is None
    three = _rows({8: {-10: 0.799, -8: 0.80, -6: 0.70}})
    assert recommend.lrs_within_noise(three, 8) == [2.0**-10, 2.0**-8]
    # The report says so with the seeds it had: error bars, no test; never "one seed".
    report = recommend.recommendation_markdown(
        _rows({8: {-10: 0.79, -8: 0.80, -6: 0.79}, 32: {-10: 0.7, -8: 0.75, -6: 0.7}},
              seeds=(-0.005, 0.005)), {}, 0.0, 0.02)
    assert "one seed" not in report and "≥ 2" not in report
    assert "Uncertainty: 2 seeds per point, so no test of the η̃ within noise" in report
    assert "0.8000 ± 0.0050 (n = 2)" in report


def test_when_every_run_diverged_the_report_says_where_to_extend_the_grid():
    rows = _rows({64: {2: NAN, 3: NAN}, 128: {2: NAN, 3: NAN}})
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    assert ("Every run diverged: no recommendation. The smallest η̃ of the grid, 2^2, "
            "diverged too: extend `base_lrs` below it.") in text


def test_when_every_lane_diverged_at_its_first_step_the_report_blames_no_learning_rate():
    """Step 0's loss and gradients are the initial weights', whatever η̃: a lower η̃, which
    the report asked for, could not help (a loss that is NaN at initialization did this)."""
    from smallbatch_jax.study.analysis import summary_markdown

    rows = [dict(r, diverged_step="0") for r in _rows({64: {2: NAN, 3: NAN}, 8: {2: NAN}})]
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    assert ("Every run diverged: no recommendation. Every lane at its first step, whose loss "
            "and gradients are those of the initial weights at every η̃") in text
    assert "extend `base_lrs`" not in text
    assert "not the learning rate" in summary_markdown(rows, 0.02)
    rows[0]["diverged_step"] = "40"  # one lane trained 40 steps first: the grid may be to blame
    rows[0]["diverged_step"] = ""  # (a table from before the column: no claim, no error)
    assert "extend `base_lrs` below it" in recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    assert "extend `base_lrs` below it" in recommend.recommendation_markdown(rows, {}, 0.0, 0.02)


def test_the_report_says_on_which_split_the_setting_was_chosen_and_what_its_number_is_worth():
    """Chosen and scored on the test split (the paper's way), the best of many settings is
    flattered by the choice: said, with the way out (config.validation). Chosen on a held-out
    validation split: said everywhere the metric is named, with how to get a test figure."""
    table = {4: {-10: 0.70, -8: 0.80}, 16: {-10: 0.78, -8: 0.70}}
    on_test = recommend.recommendation_markdown(_rows(table), {}, 0.0, 0.02)
    assert "Chosen and scored on the test split (the paper's protocol): the best of 4 " \
           "settings, its number is flattered by the choice" in on_test
    assert "the score is the median test accuracy" in on_test
    held = recommend.recommendation_markdown(_rows(table, evaluated_on="validation"), {},
                                             0.0, 0.02)
    assert "the score is the median validation accuracy" in held
    assert "Chosen on the validation split (`config.validation`: held out of the training " \
           "set); the test split took no part in this sweep" in held
    assert ("config, a new workdir and `--config.validation=0 --config.batch_size=4 "
            "--config.base_lrs=2^-8` (from Python: `run_lr_sweep` with the config so set).") in held
    assert "test split (the paper's protocol)" not in held
    single = recommend.recommendation_markdown(_rows({4: {-8: 0.8}}, seeds=(0.0,)), {}, 0.0, 0.02)
    assert "Scored on the test split (the paper's protocol); no choice was made" in single


def test_the_flags_that_train_the_chosen_setting_for_the_test_split_clear_the_other_sweeps(
        tmp_path):
    """Pasted after the sweep's own config, they must train the recommended point alone: the
    other swept hyperparameters at their best and their sweeps cleared (else the run would
    sweep them again, on the test split), β₂ as used at m, an η̃ that is no power of 2 as it
    is."""
    from smallbatch_jax.study.recommend import test_run_flags

    rows = _rows({8: {-8: 0.8, -6: 0.7}}, weight_decay="0.0") + _rows(
        {8: {-8: 0.9, -6: 0.6}}, weight_decay="0.0005")
    assert test_run_flags(rows, 8, 2.0**-8) == (
        "--config.validation=0 --config.batch_size=8 --config.base_lrs=2^-8 "
        "--config.weight_decay=0.0005 --config.sweep.weight_decay='()' "
        "--config.sweep.points='()'")
    adam = [r | {"base_lr": "0.0003", "beta2": b2, "beta1": "0.9", "optimizer": "adam"}
            for b2, r in zip(("0.99", "0.999"), _rows({8: {-8: 0.8}}, seeds=(0.0,)) * 2)]
    adam[1]["median_test_metric"] = "0.9"
    assert test_run_flags(adam, 8, 0.0003) == (
        "--config.validation=0 --config.batch_size=8 --config.base_lrs='(0.0003,)' "
        "--config.adam.beta2=0.999 --config.sweep.beta2='()' --config.adam.beta2_rule=fixed "
        "--config.sweep.points='()'")
    # Adam's β₁ is swept as sweep.momentum and set as adam.beta1.
    from smallbatch_jax.study.recommend import test_run_overrides
    beta1 = [r | {"beta1": b1, "beta2": "0.999", "optimizer": "adam"}
             for b1, r in zip(("0.8", "0.9"), _rows({8: {-8: 0.8}}, seeds=(0.0,)) * 2)]
    beta1[0]["median_test_metric"] = "0.9"
    assert test_run_overrides(beta1, 8, 2.0**-8) == {
        "validation": 0.0, "batch_size": 8, "base_lrs": (2.0**-8,), "adam.beta1": 0.8,
        "sweep.momentum": (), "sweep.points": ()}
    # The flags parse, and the config they give, from a sweep's config file, sweeps the one
    # point (no other lanes).
    from conftest import REPO_ROOT, parse
    from smallbatch_jax.config_args import expand_lr_grids
    from smallbatch_jax.run.build import lane_grid
    default = f"{REPO_ROOT}/configs/default.py"
    (tmp_path / "sweep.py").write_text(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('d', {default!r})\n"
        "d = importlib.util.module_from_spec(spec); spec.loader.exec_module(d)\n"
        "def get_config():\n"
        "    config = d.get_config()\n"
        "    config.sweep.weight_decay = (0.0, 0.0005)\n"
        "    return config\n")
    assert lane_grid(parse(f"--config={tmp_path / 'sweep.py'}")).num_lanes == 26
    config = parse(f"--config={tmp_path / 'sweep.py'}",
                   *shlex.split(test_run_flags(rows, 8, 2.0**-8)))  # (as a shell splits them)
    expand_lr_grids(config)
    assert config.validation == 0 and lane_grid(config).num_lanes == 1


def test_points_tied_at_the_best_are_named_and_the_choice_among_them_said_to_be_the_rule():
    """A saturated metric (every seed at accuracy 1.0 at several points) ranks nothing: the
    recommendation picked the smallest m by the tie rule, as if the data had."""
    table = {4: {-10: 0.70, -8: 0.80}, 16: {-10: 0.80, -8: 0.70}}
    text = recommend.recommendation_markdown(_rows(table), {}, 0.0, 0.02)
    assert ("2 points tie at the best accuracy, 0.8000: (m = 4, η̃ = 2^-8), (m = 16, η̃ = "
            "2^-10); the recommendation among them is the tie rule's (the smaller m, then "
            "η̃), not the data's.") in text
    assert "at its ceiling" not in text
    table[16][-10] = table[4][-8] = 1.0
    saturated = recommend.recommendation_markdown(_rows(table, seeds=(0.0, 0.0, 0.0)), {}, 0.0,
                                                  0.02)
    assert "2 points tie at the best accuracy, 1.0000" in saturated
    assert "The metric is at its ceiling on the evaluation split" in saturated
    table[16][-10] = 0.79
    assert "tie at the best" not in recommend.recommendation_markdown(_rows(table), {}, 0.0, 0.02)


def test_a_constant_prediction_of_another_class_than_the_training_majority_is_no_learning():
    """Training and test splits with other class shares (the training split's most frequent
    class 30% of the test split, another 50% of it): a model that learned nothing and
    outputs that other class throughout scores 0.50, above the training majority's 0.30,
    and was recommended. The best constant prediction fitted to the test split's labels is
    the bar (`best_constant_test_metric`); rows from before that column keep the baseline."""
    from smallbatch_jax.run import results
    from smallbatch_jax.study.analysis import summary_markdown

    dead = _rows({8: {-10: 0.5, -8: 0.5}, 32: {-10: 0.5, -8: 0.48}}, seeds=(0.0, 0.0, 0.0),
                 baseline_test_metric="0.3", best_constant_test_metric="0.5")
    assert results.constant_bar(dead) == 0.5
    text = recommend.recommendation_markdown(dead, {}, 0.0, 0.02)
    assert ("**No setting beat a constant prediction**: always predicting the training "
            "split's most frequent class scores accuracy 0.3000 on the test split, and the best "
            "constant prediction there (fitted to the test split's own labels) 0.5000, and the "
            "best of this sweep (m = 8, η̃ = 2^-10) scores 0.5000") in text
    assert recommend.recommended_point(dead) is None
    assert "**not beaten by any setting**" in summary_markdown(dead, 0.02)
    learned = _rows({8: {-10: 0.8, -8: 0.5}, 32: {-10: 0.5, -8: 0.48}}, seeds=(0.0, 0.0, 0.0),
                    baseline_test_metric="0.3", best_constant_test_metric="0.5")
    assert recommend.recommended_point(learned) == (8, 2.0**-10)
    assert "At m = 32 no η̃ beat the baseline" in summary_markdown(learned, 0.02)
    # An error: the lower of the two is the bar; without the column, the baseline.
    mse = _rows({8: {-10: 0.9}}, seeds=(0.0,), metric="mse", higher_is_better="False",
                baseline_test_metric="1.0", best_constant_test_metric="0.8")
    assert results.constant_bar(mse) == 0.8
    assert recommend.recommended_point(mse) is None
    old = _rows({8: {-10: 0.5}}, seeds=(0.0,), baseline_test_metric="0.3")
    assert results.constant_bar(old) == 0.3 and recommend.recommended_point(old) == (8, 2.0**-10)


def test_a_study_that_does_not_beat_a_constant_prediction_recommends_nothing():
    """Imbalanced classes (90% of one) and a model that learned nothing: every lane predicts
    the majority class, and the ranking of m and η̃ is a ranking of noise. It was recommended
    ("m = 8, η̃ = 2^-10: accuracy 0.9000") without a word."""
    from smallbatch_jax.study.analysis import summary_markdown

    flat = _rows({8: {-10: 0.9, -8: 0.9}, 32: {-10: 0.9, -8: 0.88}}, seeds=(0.0, 0.0, 0.0),
                 baseline_test_metric="0.9")
    text = recommend.recommendation_markdown(flat, {}, 0.0, 0.02)
    assert ("**No setting beat a constant prediction**: always predicting the training "
            "split's most frequent class scores accuracy 0.9000 on the test split, and the best "
            "of this sweep (m = 8, η̃ = 2^-10) scores 0.9000") in text
    assert "## 1. Recommended" not in text and "no recommendation" in text
    assert recommend.recommended_point(flat) is None  # (so no test run trains it)
    assert "**not beaten by any setting**" in summary_markdown(flat, 0.02)
    # Beaten: stated, and the m where nothing beat it named.
    beaten = _rows({8: {-10: 0.95, -8: 0.9}, 32: {-10: 0.9, -8: 0.88}},
                   baseline_test_metric="0.9")
    text = recommend.recommendation_markdown(beaten, {}, 0.0, 0.02)
    assert recommend.recommended_point(beaten) == (8, 2.0**-10)
    assert ("Baseline: always predicting the training split's most frequent class scores "
            "accuracy 0.9000 on the test split.\n") in text
    assert "At m = 32 no η̃ beat the baseline" in text
    summary = summary_markdown(beaten, 0.02)
    assert "not beaten" not in summary and "At m = 32 no η̃ beat the baseline" in summary
    # Beaten on the mean, not significantly over three seeds (one-sided t-test): a warning.
    barely = _rows({8: {-10: 0.902}, 32: {-10: 0.9}}, seeds=(-0.01, 0.0, 0.012),
                   baseline_test_metric="0.9")
    assert "are not significantly better (one-sided t-test, p = 0." in (
        recommend.recommendation_markdown(barely, {}, 0.0, 0.02))
    # A regression: its direction, the training mean's error.
    mse = _rows({8: {-10: 2.0, -8: 1.0}}, seeds=(0.0,), baseline_test_metric="1.0",
                metric="mse", higher_is_better="False")
    text = recommend.recommendation_markdown(mse, {}, 0.0, 0.02)
    assert ("always predicting the training split's mean target scores mse 1.0000" in text
            and "No setting beat" in text)
    # A test split of one class, the training split's most frequent: a constant prediction is
    # perfect there, and the split (not the runs) is to blame.
    one_class = _rows({8: {-10: 1.0}, 32: {-10: 0.98}}, seeds=(0.0,), baseline_test_metric="1.0")
    text = recommend.recommendation_markdown(one_class, {}, 0.0, 0.02)
    assert "**The evaluation cannot tell settings apart**" in text
    assert "learned nothing" not in text and recommend.recommended_point(one_class) is None
    # Rows without the column (a user's objective, older files): as before.
    assert "Baseline" not in recommend.recommendation_markdown(
        _rows({8: {-10: 0.9}}), {}, 0.0, 0.02)


def test_the_report_names_the_batch_sizes_whose_metric_read_mostly_mid_training_epochs():
    """As summary.md does (analysis.metric_window_note): a 5-epoch study's median of the last
    5 read 3 epochs before the last decay at every m."""
    rows = _rows({4: {-8: 0.80}, 16: {-8: 0.70}}, metric_epochs="5",
                 metric_epochs_before_decay="3")
    text = recommend.recommendation_markdown(rows, {}, 0.0, 0.02)
    assert ("At m = 4, 16 the metric's median read 3 of 5 epochs before the learning rate's "
            "last decay") in text
    clean = _rows({4: {-8: 0.80}, 16: {-8: 0.70}}, metric_epochs="5",
                  metric_epochs_before_decay="0")
    assert "last decay" not in recommend.recommendation_markdown(clean, {}, 0.0, 0.02)
