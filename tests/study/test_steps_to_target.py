"""Steps to a target on hand-made curves."""

import math

import pytest

from smallbatch_jax.study import plots
from smallbatch_jax.study.steps_to_target import (default_target, first_reaching, markdown,
                                                  mean_curves, steps_to_target)

NAN = float("nan")


def _curves(per_lr, seeds=1):
    """per_lr: {η̃: [metric after epoch 1, 2, …]} (the same for every seed)."""
    return [{"epoch": str(e + 1), "lane": "0", "seed": str(s), "base_lr": str(lr),
             "test_metric": str(v)}
            for s in range(seeds) for lr, values in per_lr.items() for e, v in enumerate(values)]


def _row(m, steps_per_epoch, epochs=4, seconds=100.0, best=0.8, **extra):
    return {"batch_size": m, "base_lr": 0.001, "median_test_metric": best, "epochs": epochs,
            "steps": steps_per_epoch * epochs, "wall_seconds": seconds, **extra}


def test_the_first_epoch_at_the_target_and_the_mean_over_seeds():
    assert first_reaching([(1, 0.5), (2, 0.7), (3, 0.9)], 0.7, True) == 2
    assert first_reaching([(1, 0.5), (2, NAN)], 0.7, True) is None
    assert first_reaching([(1, 2.0), (2, 0.4)], 0.5, False) == 2  # lower is better
    rows = _curves({0.5: [0.2, 0.6]}) + [
        {"epoch": "2", "lane": "1", "seed": "1", "base_lr": "0.5", "test_metric": "0.8"},
        {"epoch": "1", "lane": "1", "seed": "1", "base_lr": "0.5", "test_metric": "nan"}]
    curves = mean_curves(rows)
    assert math.isnan(curves[0.5][0][1]) and curves[0.5][1] == (2, pytest.approx(0.7))


def test_fewest_steps_over_the_grid_per_m_and_wall_time_at_the_measured_speed():
    # m = 2: 100 steps/epoch, η̃ 2^-8 reaches 0.7 at epoch 2, 2^-6 at epoch 3 → 200 steps.
    # m = 8: 25 steps/epoch, reaches at epoch 3 → 75 steps (perfect scaling would be 50).
    # m = 32: never.
    curves = {2: _curves({2.0**-8: [0.5, 0.72, 0.8, 0.8], 2.0**-6: [0.4, 0.6, 0.7, 0.8]}),
              8: _curves({2.0**-8: [0.3, 0.6, 0.71, 0.75]}),
              32: _curves({2.0**-8: [0.3, 0.4, 0.5, 0.6]})}
    rows = [_row(2, 100, seconds=40.0), _row(8, 25, seconds=20.0), _row(32, 6, best=0.6)]
    found = steps_to_target(rows, curves, target=0.7)
    assert found[2] == {"steps": 200, "examples": 400, "seconds": pytest.approx(20.0),
                        "lr": 2.0**-8, "interval": 100}
    assert found[8]["steps"] == 75 and found[8]["seconds"] == pytest.approx(15.0)
    assert found[32]["steps"] is None
    text = markdown(found, 0.7, "accuracy")
    assert "| 2 | 2^-8 | 200 | 400 | 20 s | 100 steps |" in text
    assert "| 32 | — | not reached | — | — | 6 steps |" in text
    ax = plots.steps_to_target_vs_batch_size(found, 0.7, "accuracy").axes[0]
    measured, perfect = ax.get_lines()[:2]
    assert list(measured.get_ydata()) == [200, 75] and list(perfect.get_ydata()) == [200, 50]
    # Each point bounded below by the step after the evaluation before it (epochs: 100 and
    # 25 steps at m = 2 and 8), where the target was not reached yet.
    (bars,) = ax.collections
    assert [[tuple(p) for p in segment] for segment in bars.get_segments()] == [
        [(2, 101), (2, 200)], [(8, 51), (8, 75)]]


def _evaluations(per_lr, steps, seeds=1):
    """per_lr: {η̃: [metric after each of `steps`]} as evaluations.csv rows."""
    return [{"step": str(step), "epoch": "0", "lane": "0", "seed": str(s), "base_lr": str(lr),
             "test_metric": str(v)}
            for s in range(seeds) for lr, values in per_lr.items()
            for step, v in zip(steps, values)]


def test_evaluations_inside_epochs_time_the_target_to_their_step():
    """With 4 evaluations per 100-step epoch, a target first reached a quarter into the
    second epoch is timed at step 125, not at the epoch's end (200), and the table says the
    evaluations were 25 steps apart."""
    steps = [25, 50, 75, 100, 125, 150, 175, 200]
    evaluations = {2: _evaluations({2.0**-8: [0.1, 0.2, 0.3, 0.5, 0.71, 0.72, 0.72, 0.73]},
                                   steps, seeds=2),
                   8: _curves({2.0**-8: [0.3, 0.71]})}  # per epoch only: 25 steps each
    rows = [_row(2, 100, epochs=2, seconds=40.0), _row(8, 25, epochs=2, seconds=20.0)]
    found = steps_to_target(rows, evaluations, target=0.7)
    assert found[2]["steps"] == 125 and found[2]["interval"] == 25
    assert found[2]["seconds"] == pytest.approx(25.0)  # 40 s / 200 steps × 125
    assert found[8]["steps"] == 50 and found[8]["interval"] == 25
    assert "| 2 | 2^-8 | 125 | 250 | 25 s | 25 steps |" in markdown(found, 0.7, "accuracy")


def test_the_default_target_is_within_five_percent_of_the_best_in_its_direction():
    assert default_target([_row(2, 10, best=0.8), _row(8, 10, best=0.6)]) == pytest.approx(0.76)
    lower = [_row(2, 10, best=0.5, metric="mse", higher_is_better=False),
             _row(8, 10, best=0.4, metric="mse", higher_is_better=False)]
    assert default_target(lower) == pytest.approx(0.42)
    curves = {2: _curves({0.1: [0.9, 0.45, 0.41]})}
    assert steps_to_target(lower, curves, 0.42)[2]["steps"] == 30  # ≤ where lower is better
    # A metric below 0 (a log-likelihood, higher is better; a loss that can be negative,
    # lower is better): the target lies on the worse side of the best, which 0.95 × best
    # (-1.9 for a best of -2) and 1.05 × best (-2.1) did not: no run could reach it.
    negative = [_row(2, 10, best=-2.0, metric="loglik"), _row(8, 10, best=-3.0, metric="loglik")]
    assert default_target(negative) == pytest.approx(-2.1)
    assert default_target([dict(r, higher_is_better=False) for r in negative]) == (
        pytest.approx(-2.85))


def test_the_default_target_is_measured_from_a_constant_predictions_score():
    """97% of the test labels in one class: 0.95 × a best of 0.99 (0.9405) lies below what
    predicting that class scores (0.97), and every m reached it at its first evaluation, the
    largest m (the fewest steps per epoch) first. From the constant prediction: 95% of the
    way from 0.97 to 0.99."""
    imbalanced = [_row(2, 10, best=0.99, baseline_test_metric=0.97),
                  _row(8, 10, best=0.98, baseline_test_metric=0.97)]
    assert default_target(imbalanced) == pytest.approx(0.989)
    # A regression: 5% of the way back from its best error (0.2) to the training mean's (1.0).
    mse = [_row(2, 10, best=0.2, metric="mse", higher_is_better=False, baseline_test_metric=1.0)]
    assert default_target(mse) == pytest.approx(0.24)
    # A best that does not beat the baseline (nothing learned): the rule of |best| (the
    # report refuses to recommend anyway).
    assert default_target([_row(2, 10, best=0.97, baseline_test_metric=0.97)]) == (
        pytest.approx(0.9215))
    # A target no better than the constant prediction (a user's config.target): said.
    from smallbatch_jax.objectives import ACCURACY
    from smallbatch_jax.study.steps_to_target import baseline_note
    note = baseline_note(0.95, 0.97, ACCURACY)
    assert note.startswith("The target, 0.9500, is no better than what a constant prediction "
                           "scores (0.9700)")
    assert baseline_note(0.98, 0.97, ACCURACY) == "" == baseline_note(0.95, NAN, ACCURACY)
    found = {2: {"steps": 10, "examples": 20, "seconds": 1.0, "lr": 0.1, "interval": 10}}
    assert markdown(found, 0.95, "accuracy", caution=note).rstrip().endswith(note)


def test_the_figure_of_a_target_no_m_reached_says_so(tmp_path):
    found = {2: {"steps": None, "examples": None, "seconds": None, "lr": None}}
    fig = plots.steps_to_target_vs_batch_size(found, 0.9, "accuracy")
    assert "no m reached the target" in [t.get_text() for t in fig.axes[0].texts]
    assert all(p.endswith(("png", "svg")) for p in plots.save(fig, str(tmp_path), "s"))


def test_wall_time_to_target_is_at_the_median_epochs_speed_without_the_compilation():
    """The first epoch of a process pays the compilation (30 s here against 2 s for the
    others): the time to target is at the median epoch's speed, 2 s per 100 steps, not at
    the run's 36 s over 400 steps."""
    curves = _curves({2.0**-8: [0.5, 0.72, 0.8, 0.8]})
    for row in curves:
        row["epoch_seconds"] = "30.0" if row["epoch"] == "1" else "2.0"
    found = steps_to_target([_row(2, 100, seconds=36.0)], {2: curves}, target=0.7)
    assert found[2]["steps"] == 200 and found[2]["seconds"] == pytest.approx(4.0)
    # From evaluations.csv (no epoch times), the speed comes from the m's curves.csv.
    evaluations = _evaluations({2.0**-8: [0.5, 0.6, 0.72, 0.8]}, [50, 100, 150, 200])
    found = steps_to_target([_row(2, 100, seconds=36.0)], {2: evaluations}, 0.7, {2: curves})
    assert found[2]["steps"] == 150 and found[2]["seconds"] == pytest.approx(3.0)
    # Without epoch times: the run's wall seconds per step.
    found = steps_to_target([_row(2, 100, seconds=36.0)], {2: evaluations}, 0.7)
    assert found[2]["seconds"] == pytest.approx(150 * 36.0 / 400)
    # Two epochs: the median of 30 and 2 s was 16 s, half the compilation counted in a time
    # said to exclude it (a 2-epoch CIFAR run: 27 s to target where its second epoch's
    # speed gives 14 s); the first epoch is left out where there are others.
    two = [row for row in curves if row["epoch"] in ("1", "2")]
    found = steps_to_target([_row(2, 100, epochs=2, seconds=32.0)], {2: two}, target=0.7)
    assert found[2]["steps"] == 200 and found[2]["seconds"] == pytest.approx(4.0)
    one = [row for row in curves if row["epoch"] == "1"]  # (one epoch: all there is)
    assert steps_to_target([_row(2, 100, epochs=1, seconds=30.0)], {2: one},
                           target=0.5)[2]["seconds"] == pytest.approx(30.0)
