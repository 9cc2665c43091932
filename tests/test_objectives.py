"""The built-in objectives' values, and how a config names one."""

import jax.numpy as jnp
import numpy as np
import pytest

from smallbatch_jax.objectives import (CLASSIFICATION, REGRESSION, Objective, accuracy,
                                       objective_named, squared_error)


def test_squared_error_per_example_for_scalar_and_vector_targets():
    outputs = jnp.array([[1.0], [2.0], [0.5]])  # a model's (batch, 1) outputs
    np.testing.assert_allclose(squared_error(outputs, jnp.array([0.0, 2.0, 1.5])),
                               [1.0, 0.0, 1.0])
    vectors = jnp.array([[1.0, 1.0], [0.0, 3.0]])
    np.testing.assert_allclose(squared_error(vectors, jnp.array([[0.0, 0.0], [0.0, 1.0]])),
                               [2.0, 4.0])


def test_positions_labelled_ignored_are_left_out_of_an_examples_means():
    """Labels per position at -100 (padding, PyTorch's ignore_index): an example's loss and
    accuracy are the means over its other positions, and the majority-class baseline is
    scored alike; labels without -100 give their plain means."""
    import optax

    from smallbatch_jax.data import IGNORED_LABEL
    from smallbatch_jax.objectives import constant_metric, majority_class_accuracy

    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
    labels = np.asarray(rng.integers(0, 4, (3, 5)))
    labels[0, 3:], labels[2, 1:] = IGNORED_LABEL, IGNORED_LABEL
    counted = labels != IGNORED_LABEL
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits,
                                                                np.where(counted, labels, 0))
    expected = [np.asarray(per_token)[i][counted[i]].mean() for i in range(3)]
    np.testing.assert_allclose(CLASSIFICATION.loss(logits, jnp.asarray(labels)), expected,
                               rtol=1e-6)
    hits = np.argmax(logits, -1) == labels
    np.testing.assert_allclose(CLASSIFICATION.metric(logits, jnp.asarray(labels)),
                               [hits[i][counted[i]].mean() for i in range(3)])
    assert np.isfinite(CLASSIFICATION.loss(logits, jnp.asarray(labels))).all()

    train = np.array([[2, 2, -100], [1, 1, 1]])  # (1 is the majority of the counted labels)
    test = np.array([[1, -100, -100], [2, 1, 0]])
    assert majority_class_accuracy(train, test) == pytest.approx((1 + 1 / 3) / 2)
    assert constant_metric(Objective(CLASSIFICATION.loss, accuracy), train, test, "classes",
                           3, (3, 3)) == pytest.approx((1 + 1 / 3) / 2)


def test_classification_per_position_is_the_mean_over_an_examples_positions():
    """Labels per position (next-token prediction): (batch, T, C) logits, (batch, T) labels;
    an example's loss and accuracy are its positions' means, and labels one per example give
    the values they gave before, bit for bit."""
    import optax

    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(3, 5, 4)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 4, (3, 5)))
    per_token = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    np.testing.assert_allclose(CLASSIFICATION.loss(logits, labels), per_token.mean(-1),
                               rtol=1e-6)
    np.testing.assert_array_equal(CLASSIFICATION.metric(logits, labels), np.mean(
        np.argmax(logits, -1) == labels, -1, dtype=np.float32))
    flat, ids = logits[:, 0], labels[:, 0]
    np.testing.assert_array_equal(CLASSIFICATION.loss(flat, ids),
                                  optax.softmax_cross_entropy_with_integer_labels(flat, ids))
    # The baseline of a constant prediction: the majority class at every position.
    from smallbatch_jax.objectives import constant_metric, majority_class_accuracy

    train, test = np.array([[2, 2, 0], [2, 1, 2]]), np.array([[2, 0, 2], [1, 1, 1]])
    assert majority_class_accuracy(train, test) == 2 / 6
    assert constant_metric(Objective(CLASSIFICATION.loss, accuracy), train, test, "classes",
                           3, (3, 3)) == pytest.approx(2 / 6)


def test_a_masking_objectives_baseline_is_the_constant_it_prefers():
    """A per-token cross-entropy and accuracy that leave the padding (id 0) out, on padded
    sentences: the class frequencies' logits predict the pad, 0 accuracy where it counts,
    and a model at chance (0.094) was recommended against that baseline. The constant the
    loss prefers (one class's logits at every position) predicts a word: the baseline is the
    better of the two, the share of the most frequent word."""
    import jax
    import optax

    from smallbatch_jax.objectives import constant_metric

    rng = np.random.default_rng(0)
    words, lengths = rng.integers(1, 12, (600, 20)), rng.integers(4, 21, 600)
    labels = np.where(np.arange(20) < lengths[:, None], words, 0)
    train, test = labels[:500], labels[500:]
    counted = lambda y: (y != 0).astype(jnp.float32)
    masked = lambda values, y: (values * counted(y)).sum(-1) / counted(y).sum(-1)
    objective = Objective(
        lambda o, y: masked(optax.softmax_cross_entropy_with_integer_labels(o, y), y),
        lambda o, y: masked((o.argmax(-1) == y).astype(jnp.float32), y), "token accuracy")
    per_word = [float(np.mean(masked(jax.numpy.asarray(test == k, jnp.float32), test)))
                for k in range(1, 12)]  # the score of predicting word k everywhere
    baseline = constant_metric(objective, train, test, "classes", 12, (20, 12))
    assert min(abs(baseline - score) for score in per_word) < 1e-6 and baseline > 0.07
    bar = constant_metric(objective, test, test, "classes", 12, (20, 12))
    assert bar == pytest.approx(max(per_word), abs=1e-6)  # not a constant per position


def test_accuracy_and_the_directions():
    logits = jnp.array([[0.1, 2.0], [3.0, 0.0], [0.0, 1.0]])
    np.testing.assert_array_equal(accuracy(logits, jnp.array([1, 1, 1])), [1.0, 0.0, 1.0])
    assert CLASSIFICATION.higher_is_better and CLASSIFICATION.labels == "classes"
    assert not REGRESSION.higher_is_better and REGRESSION.labels == "targets"
    assert objective_named("regression") is REGRESSION
    assert objective_named("smallbatch_jax.objectives:CLASSIFICATION") is CLASSIFICATION


def test_a_bad_objective_says_what_is_wrong():
    with pytest.raises(ValueError, match="labels='ids'"):
        Objective(squared_error, squared_error, labels="ids")
    with pytest.raises(ValueError, match=r"allowed: \['classification', 'regression'\]"):
        objective_named("mse")
    with pytest.raises(ValueError, match="cannot import 'nowhere'"):
        objective_named("nowhere:THING")
    with pytest.raises(ValueError, match="has no attribute 'NOPE'"):
        objective_named("smallbatch_jax.objectives:NOPE")


def test_targets_are_standardized_only_where_the_objective_allows_it():
    """A multi-label cross-entropy on multi-hot targets trained on standardized ones (-0.5,
    1.8) and thresholded logits mapped back to the targets' units: 0.70 label accuracy where
    the raw targets gave 0.96, without an error. Only a regression in the targets' units
    (REGRESSION, or an Objective with scaled_targets=True) gets standardized targets."""
    import os

    import flax.linen as nn
    import optax

    import smallbatch_jax as sbj
    from conftest import REPO_ROOT
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.objectives import REGRESSION, Objective
    from smallbatch_jax.run.build import prepare

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 3)) > 0.5).astype(np.float32)
    data = make_dataset("user", x[:50], y[:50], x[50:], y[50:], labels="targets")
    assert data.target_mean is not None  # (made before the objective is known)
    config = sbj.load_config(os.path.join(REPO_ROOT, "configs", "default.py"))
    with config.unlocked():
        config.dataset, config.batch_size = "user", 8

    class Net(nn.Module):
        @nn.compact
        def __call__(self, inputs, train):
            return nn.Dense(3)(inputs)

    multi_label = Objective(lambda o, t: optax.sigmoid_binary_cross_entropy(o, t).mean(-1),
                            lambda o, t: ((o > 0) == (t > 0.5)).astype(jnp.float32).mean(-1),
                            "label_accuracy", True, "targets")
    spec = prepare(config, data, Net(), multi_label)
    assert spec.dataset.target_mean is None
    np.testing.assert_array_equal(spec.dataset.scaled_targets(y[:50]), y[:50])
    for scaled in (REGRESSION, Objective(REGRESSION.loss, REGRESSION.metric, "mse", False,
                                         "targets", scaled_targets=True)):
        assert prepare(config, data, Net(), scaled).dataset.target_mean is not None


def test_the_baselines_are_what_a_constant_prediction_scores():
    from smallbatch_jax.objectives import majority_class_accuracy, mean_target_squared_error

    # 7 of 10 training labels are class 2: predicting 2 always is right on 3 of 5 test labels.
    train, test = np.array([2, 2, 0, 2, 1, 2, 2, 2, 0, 2]), np.array([2, 0, 2, 1, 2])
    assert majority_class_accuracy(train, test) == 0.6
    assert CLASSIFICATION.baseline is majority_class_accuracy
    # Equally frequent classes: the smaller id, as argmax picks among equal logits.
    assert majority_class_accuracy(np.array([3, 1, 3, 1]), np.array([1, 1, 3])) == 2 / 3
    # Targets: the squared error of the training mean (1.0; per component (1, 2)), summed over
    # a target's components, averaged over the test examples.
    assert mean_target_squared_error(np.array([0.0, 2.0]), np.array([1.0, 3.0])) == 2.0
    vectors = mean_target_squared_error(np.array([[0.0, 2.0], [2.0, 2.0]]),
                                        np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert vectors == (0.0 + 0.0 + 4.0 + 4.0) / 2
    assert REGRESSION.baseline is mean_target_squared_error
    assert Objective(squared_error, squared_error).baseline is None  # a user's: not known


def test_a_users_objective_gets_the_baseline_of_the_same_constant_prediction():
    """A user's Objective gives no baseline: its own metric of the training split's class
    frequencies (argmax: the most frequent class) or mean target stands in, the built-in
    baselines' numbers where the metric is theirs; NaN for outputs it cannot be built for.
    Without it a study that learned nothing under a user's objective was recommended (a
    log-likelihood loss without its minus: 0.025 accuracy on 10 classes)."""
    from smallbatch_jax.objectives import (constant_metric, majority_class_accuracy,
                                           mean_target_squared_error)

    user = lambda metric: Objective(CLASSIFICATION.loss, metric)
    train, test = np.array([2, 2, 0, 2, 1, 2, 2, 2, 0, 2]), np.array([2, 0, 2, 1, 2])
    assert constant_metric(user(accuracy), train, test, "classes", 3, (3,)) == \
        majority_class_accuracy(train, test) == 0.6
    tie = np.array([3, 1, 3, 1])
    assert constant_metric(user(accuracy), tie, np.array([1, 1, 3]), "classes", 4, (4,)) == \
        pytest.approx(2 / 3)
    # The cross-entropy of the class frequencies: the test labels' cross-entropy with them.
    nll = constant_metric(user(CLASSIFICATION.loss), train, test, "classes", 3, (3,))
    assert nll == pytest.approx(-np.mean(np.log([0.7, 0.2, 0.7, 0.1, 0.7])), rel=1e-5)
    vectors = np.array([[0.0, 2.0], [2.0, 2.0]]), np.array([[1.0, 2.0], [3.0, 4.0]])
    assert constant_metric(user(squared_error), *vectors, "targets", 2, (2,)) == \
        mean_target_squared_error(*vectors) == 4.0
    assert constant_metric(user(squared_error), np.array([0.0, 2.0]), np.array([1.0, 3.0]),
                           "targets", 1, (1,)) == 2.0
    assert np.isnan(constant_metric(user(accuracy), train, test, "classes", 3, (1,)))
    assert np.isnan(constant_metric(user(squared_error), *vectors, "targets", 2, (4,)))


def test_outputs_without_a_built_constant_get_the_constant_their_loss_prefers():
    """One logit for two classes under a sigmoid cross-entropy (the common binary set-up)
    had no baseline: a study on noise labels, 80% of them 1, was recommended at accuracy
    0.8267 with nothing to say that always predicting 1 scores 0.825. The constant that
    minimizes the objective's own loss on the training labels stands in: the log-odds of
    the share of 1s there; a Gaussian likelihood's, the labels' mean and log-variance."""
    import optax
    from smallbatch_jax.objectives import constant_metric, fitted_constant

    rng = np.random.default_rng(0)
    train, test = (rng.random(1000) < 0.8).astype(int), (rng.random(200) < 0.8).astype(int)
    logistic = Objective(
        lambda out, y: optax.sigmoid_binary_cross_entropy(out[:, 0], y.astype(jnp.float32)),
        lambda out, y: ((out[:, 0] > 0) == (y > 0)).astype(jnp.float32))
    share = train.mean()
    assert fitted_constant(logistic, train, (1,)) == pytest.approx([np.log(share / (1 - share))],
                                                                   abs=1e-4)
    assert constant_metric(logistic, train, test, "classes", 2, (1,)) == pytest.approx(
        test.mean())
    targets = rng.normal(3.0, 2.0, 1000).astype(np.float32)
    gaussian = Objective(
        lambda out, y: 0.5 * (out[:, 1] + (y - out[:, 0]) ** 2 / jnp.exp(out[:, 1])),
        lambda out, y: (y - out[:, 0]) ** 2, "mse", False, "targets")
    assert fitted_constant(gaussian, targets, (2,)) == pytest.approx(
        [targets.mean(), np.log(targets.var())], abs=1e-3)
    # Multi-label logits on multi-hot targets: the mean target (0.15) passed as logits
    # predicted every label present (0.159 label accuracy on noise labels) where the
    # constant the loss prefers predicts them absent, as a model that learned nothing did.
    hot = (rng.random((1000, 5)) < 0.15).astype(np.float32)
    multi = Objective(lambda out, y: optax.sigmoid_binary_cross_entropy(out, y).mean(-1),
                      lambda out, y: ((out > 0) == (y > 0.5)).astype(jnp.float32).mean(-1),
                      "label accuracy", True, "targets")
    assert constant_metric(multi, hot[:800], hot[800:], "targets", 5, (5,)) == pytest.approx(
        1 - hot[800:].mean())
    # Targets in their own units (scikit-learn's diabetes: mean 152, spread 77): a mean
    # absolute error's constant is their median (fitted from 0, it reached only 26 of 141).
    from sklearn.datasets import load_diabetes
    diabetes = load_diabetes(return_X_y=True)[1].astype(np.float32)
    absolute = Objective(lambda out, y: jnp.abs(out[:, 0] - y), lambda out, y: jnp.abs(
        out[:, 0] - y), "mae", False, "targets")
    assert fitted_constant(absolute, diabetes, (1,)) == pytest.approx([np.median(diabetes)],
                                                                      abs=1.0)
    # A loss whose outputs of that shape are not finite, or do not fit it: none.
    assert fitted_constant(Objective(CLASSIFICATION.loss, accuracy), np.array([0, 2, 1]),
                           (1,)) is None
    assert fitted_constant(Objective(squared_error, squared_error), np.ones((4, 2)), (4,)) is None


def test_beating_a_baseline_goes_in_the_metrics_direction_past_float32_rounding():
    from smallbatch_jax.objectives import ACCURACY, Metric
    assert ACCURACY.beats(0.91, 0.9) and not ACCURACY.beats(0.9, 0.9)
    assert not ACCURACY.beats(0.90000004, 0.9)  # float32's mean of a constant prediction
    assert not ACCURACY.beats(0.89, 0.9) and not ACCURACY.beats(float("nan"), 0.9)
    mse = Metric("mse", False)
    assert mse.beats(0.5, 1.0) and not mse.beats(1.0, 1.0) and not mse.beats(1.5, 1.0)
    assert not mse.beats(0.99999, 1.0)
