"""A model that does not fit the data fails before anything is written or compiled, with
what to change (it used to train to the end and report every lane as diverged, or fail deep
inside a convolution)."""

import dataclasses
import re

import flax.linen as nn
import jax
import numpy as np
import pytest

import smallbatch_jax as sbj
from conftest import REPO_ROOT


class MLP(nn.Module):
    outputs: int = 4

    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(self.outputs)(nn.relu(nn.Dense(16)(x)))


class NoTrainArgument(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(x)


class OwnNoiseStream(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        if train:  # a stream of its own: the lanes give 'dropout' only
            x = x + 0.1 * jax.random.normal(self.make_rng("noise"), x.shape)
        return nn.Dense(4)(x)


class BatchStatisticsAlways(nn.Module):
    @nn.compact
    def __call__(self, x, train):  # (use_running_average=not train forgotten)
        return nn.Dense(4)(nn.BatchNorm(use_running_average=False)(nn.Dense(8)(x)))


class OwnCollection(nn.Module):
    @nn.compact
    def __call__(self, x, train):  # a running mean of its own, in a collection of its own
        mean = self.variable("stats", "mean", lambda: jax.numpy.zeros(x.shape[-1]))
        if train and not self.is_initializing():
            mean.value = 0.9 * mean.value + 0.1 * x.mean(0)
        return nn.Dense(4)(x - mean.value)


class DictOutputs(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return {"logits": nn.Dense(4)(x)}


class CNN(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(4)(nn.Conv(8, (3, 3))(x).mean((1, 2)))


def _data(num_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 20)).astype(np.float32)
    y = rng.integers(0, num_classes, 120)
    return x[:100], y[:100], x[100:], y[100:]


def _config(**overrides):
    config = sbj.load_config(f"{REPO_ROOT}/configs/default.py")
    config.batch_size, config.epochs, config.base_lrs = 16, 1, (2.0**-6,)
    for key, value in overrides.items():
        config[key] = value
    return config


def _whole_numbered_targets():
    """Targets of a regression stored as whole numbers (prices in a CSV): int64 labels."""
    x, _, xt, _ = _data()
    whole = lambda inputs: np.round(inputs[:, 0] * 50 + 150).astype(np.int64)
    return x, whole(x), xt, whole(xt)


@pytest.mark.parametrize("model,data,message", [
    (MLP(outputs=3), _data(), r"outputs of shape \[\(2, 3\)\].*4 classes.*\(batch, 4\)"),
    (NoTrainArgument(), _data(), r"takes no `train` argument.*add `train: bool`"),
    (CNN(), _data(), r"cannot take user's inputs of shape \(20,\) per example \(features.*"
                     r"a Flax module of yours, `--config.model=package.module:attribute` or "
                     r"smallbatch_jax.api's `model=`"),
    (MLP(outputs=2), (_data()[0], _data()[1].astype(np.float32), _data()[2],
                      _data()[3].astype(np.float32)),
     r"outputs of shape \[\(2, 2\)\].*1 component"),
    (MLP(outputs=4), tuple(a + 1 if i % 2 else a for i, a in enumerate(_data())),
     r"5 classes: the model needs \(batch, 5\).*no example has label 0: if yours start at 1, "
     "subtract 1"),
    (MLP(outputs=3), tuple(np.array([0, 2, 5])[a % 3] if i % 2 else a
                           for i, a in enumerate(_data(num_classes=3))),
     r"user has 6 classes: the model needs \(batch, 6\) outputs, one per class \(the labels "
     r"take 3 distinct values, 0, 2, 5: if they are codes rather than class indices, number "
     r"them 0 … 2, np.unique\(y, return_inverse=True\)\[1\]"),
    (OwnNoiseStream(), _data(),
     r"draws from a random stream the lanes do not give.*\"noise\".*self.make_rng\('dropout'\)"),
    (BatchStatisticsAlways(), _data(),
     r"updates its variables when evaluated.*use_running_average=not train"),
    (OwnCollection(), _data(), r"updates variables in training that the lanes do not carry "
                               r"\(.*collection \"stats\" is immutable.*keep running "
                               r"statistics of your own there \(self.variable\('batch_stats'"),
    (DictOutputs(), _data(), r"returns a dict of \{'logits': \(2, 4\)\}; the built-in "
                             r"objectives take one array of outputs"),
    (nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(4)]), _data(),
     r"passes `train` on to a layer that does not take it \(.*'train'\).*"
     r"nn.Sequential hands that to its first layer. Wrap it"),
    # Whole-numbered targets (a CSV's prices) with a regression's one output, and one logit
    # for two classes, under the default cross-entropy: the cause named.
    (MLP(outputs=1), _whole_numbered_targets(),
     r"the model needs \(batch, \d+\) outputs, one per class \(the labels are integers, \d+ "
     r"distinct values, read as class indices: if they are the numeric targets of a "
     r"regression, give objective=sbj.REGRESSION or --config.objective=regression\)"),
    (MLP(outputs=1), _data(num_classes=2),
     r"2 classes: the model needs \(batch, 2\) outputs, one per class \(one logit for two "
     r"classes: the built-in cross-entropy takes one per class; return 2, or give your own "
     r"objective, e.g. optax.sigmoid_binary_cross_entropy\)"),
], ids=["too-few-outputs", "no-train-argument", "flat-features-to-a-cnn", "regression-width",
        "labels-from-1", "label-codes", "own-random-stream", "batch-statistics-in-evaluation",
        "own-collection", "dict-outputs", "a-sequential", "whole-numbered-targets",
        "one-logit-for-two-classes"])
def test_a_model_that_does_not_fit_the_data_fails_before_anything_is_written(
        tmp_path, model, data, message):
    objective = "regression" if data[1].dtype == np.float32 else None
    with pytest.raises(ValueError, match=message):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=model, data=data,
                         objective=objective)
    assert not (tmp_path / "run").exists()


def test_a_user_objective_decides_its_own_output_width(tmp_path):
    """A binary logistic loss on one output: not refused for having 1 output for 2 classes."""
    import jax.numpy as jnp
    import optax

    logistic = sbj.Objective(
        loss=lambda out, y: optax.sigmoid_binary_cross_entropy(out[:, 0], y),
        metric=lambda out, y: ((out[:, 0] > 0) == (y > 0)).astype(jnp.float32),
        metric_name="accuracy", labels="classes")
    x, y, xt, yt = _data(num_classes=2)
    rows = sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(outputs=1),
                            data=(x, y, xt, yt), objective=logistic)
    assert len(rows) == 1
    # Its baseline: the constant its loss prefers on the training labels, which predicts
    # their most frequent class (objectives.fitted_constant).
    majority = np.bincount(y).argmax()
    assert rows[0]["baseline_test_metric"] == pytest.approx(np.mean(yt == majority))


def test_test_classes_unseen_in_training_are_named(tmp_path, caplog):
    x, y, xt, yt = _data()
    y = np.where(y == 3, 0, y)  # class 3 only in the test split
    with caplog.at_level("WARNING"):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(), data=(x, y, xt, yt))
    assert "test classes [3] never occur in the training split" in caplog.text
    # A validation split that took a class's only example says so, as a validation split.
    from smallbatch_jax.data import hold_out, make_dataset
    from smallbatch_jax.run.config_checks import check_labels
    caplog.clear()
    y[0] = 3  # the one example of class 3, held out with 60% of each class
    with caplog.at_level("WARNING"):
        check_labels(hold_out(make_dataset("mine", x, y, xt, yt), 0.6))
    assert "mine: validation classes [3] never occur in the training split" in caplog.text


def test_an_evaluated_split_too_small_for_the_tolerance_is_named(caplog):
    """14 examples move the accuracy by 0.071 each, against a reliable-range tolerance of
    0.02: ranges and comparisons would rest on single examples."""
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_labels
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 4)).astype(np.float32), np.arange(120) % 3
    with caplog.at_level("WARNING"):
        check_labels(make_dataset("mine", x[:106], y[:106], x[106:], y[106:]), 0.02)
    assert ("mine: the test split holds 14 examples: its accuracy moves in steps of 0.071, "
            "coarser than half the reliable-range tolerance (0.02)") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_labels(make_dataset("mine", x[:10], y[:10], x[10:], y[10:]), 0.02)  # 110
        check_labels(make_dataset("mine", x[:106], y[:106], x[106:], y[106:]))  # no tolerance
    assert "moves in steps" not in caplog.text
    # Labels per position: 14 sequences of 8 positions are 112 scored ones; with 7 of each 8
    # marked -100 (not scored), 14 again.
    tokens = rng.integers(0, 3, (120, 8))
    padded = np.where(np.arange(8) < 1, tokens, -100)
    with caplog.at_level("WARNING"):
        check_labels(make_dataset("seq", tokens[:106], tokens[:106], tokens[106:],
                                  tokens[106:]), 0.02)
    assert "moves in steps" not in caplog.text
    with caplog.at_level("WARNING"):
        check_labels(make_dataset("seq", tokens[:106], padded[:106], tokens[106:],
                                  padded[106:]), 0.02)
    assert "seq: the test split holds 14 examples: its accuracy moves in steps of 0.071" \
        in caplog.text


class DenseBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.BatchNorm(use_running_average=not train)(nn.Dense(16)(x))
        return nn.Dense(4)(nn.relu(x))


class KeywordBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x, train):  # (its input by keyword)
        h = nn.BatchNorm()(x=nn.Dense(16)(x), use_running_average=not train)
        return nn.Dense(4)(nn.relu(h))


class ConvBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.BatchNorm()(nn.Conv(4, (3, 3))(x), use_running_average=not train)
        return nn.Dense(4)(nn.relu(x).mean(axis=(1, 2)))


def test_batch_norm_over_one_value_per_feature_is_named(caplog):
    """BatchNorm after a dense layer at m = 1 (or m_BN = 1) outputs its bias whatever the
    input: the run trains without an error and reports a model that ignores its inputs. After
    a convolution it normalizes over the positions too, and is fine at m = 1."""
    from smallbatch_jax.data import load_digits, make_dataset
    from smallbatch_jax.models import create_model
    from smallbatch_jax.objectives import CLASSIFICATION
    from smallbatch_jax.run.config_checks import check_model

    features = make_dataset("features", *_data())
    rng = np.random.default_rng(0)
    images = make_dataset("images", rng.normal(size=(20, 6, 6, 1)).astype(np.float32),
                          np.arange(20) % 4, rng.normal(size=(8, 6, 6, 1)).astype(np.float32),
                          np.arange(8) % 4)
    checked = lambda model, data, m, mbn=0, built_in=False: check_model(
        model, data, CLASSIFICATION, "mine", m, mbn, built_in)
    with caplog.at_level("WARNING"):
        checked(DenseBatchNorm(), features, 1)
    assert ("model mine at m = 1: BatchNorm BatchNorm_0 (input (1, 16)) normalizes over one "
            "value per feature") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        checked(KeywordBatchNorm(), features, 1)
    assert "BatchNorm_0 (input (1, 16)) normalizes over one value" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        checked(DenseBatchNorm(), features, 2)
        checked(ConvBatchNorm(), images, 1)
    assert "normalizes over one value" not in caplog.text
    with caplog.at_level("WARNING"):  # the project's ghost BN, m_BN = 1 after its dense layer
        checked(create_model("small_cnn_bn", 10, bn_batch_size=1), load_digits(), 8, 1, True)
    assert ("model mine at m = 8, m_BN = 1: BatchNorm GhostBatchNorm_2 (input (8, 64))"
            in caplog.text)


class FrozenBatchNorm(nn.Module):
    @nn.compact
    def __call__(self, x, train):  # (use_running_average=not train forgotten: True always)
        return nn.Dense(4)(nn.relu(nn.BatchNorm(use_running_average=True)(nn.Dense(16)(x))))


class IdleDropout(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(4)(nn.Dropout(0.5, deterministic=True)(nn.relu(nn.Dense(16)(x))))


class Dropping(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        x = nn.Dropout(0.5)(nn.relu(nn.Dense(16)(x)), deterministic=not train)
        return nn.Dense(4)(nn.Dropout(0.0, deterministic=True)(x))  # (rate 0: none)


def _set_up_warnings(caplog, models) -> str:
    """The warnings check_model gives at m = 8 for each (model, data, built_in)."""
    from smallbatch_jax.objectives import CLASSIFICATION
    from smallbatch_jax.run.config_checks import check_model
    caplog.clear()
    with caplog.at_level("WARNING"):
        for model, data, built_in in models:
            check_model(model, data, CLASSIFICATION, "mine", 8, built_in=built_in)
    return caplog.text


def test_layers_that_do_nothing_in_training_are_named(caplog):
    """A BatchNorm given use_running_average=True in training too: its averages never move
    from mean 0, variance 1, and it does not normalize (a digits CNN with two: 0.904 at
    m = 8 where normalizing its batches gave 0.950). A Dropout given deterministic=True
    drops nothing (a digits MLP's results equal the model's without it, bit for bit).
    Both trained without a word."""
    from smallbatch_jax.data import load_digits, make_dataset
    from smallbatch_jax.models import create_model

    features = make_dataset("features", *_data())
    assert ("model mine: BatchNorm BatchNorm_0 normalize with their running averages in "
            "training (use_running_average=True while train=True)") in _set_up_warnings(
                caplog, [(FrozenBatchNorm(), features, False)])
    assert ("model mine: Dropout Dropout_0 drop nothing in training (deterministic=True while "
            "train=True)") in _set_up_warnings(caplog, [(IdleDropout(), features, False)])
    fine = _set_up_warnings(caplog, [(DenseBatchNorm(), features, False),
                                     (Dropping(), features, False)] + [
        (create_model(name, 10), load_digits(), True)
        for name in ("small_cnn_bn", "alexnet_bn", "alexnet", "resnet8")])
    assert "running averages in training" not in fine and "drop nothing" not in fine


def test_batch_norm_statistics_that_still_hold_their_start_at_the_evaluation_are_named(caplog):
    """Evaluation reads BatchNorm's running averages, which start at mean 0 and variance 1 and
    keep momentum^steps of it: Flax's default 0.99 keeps 74% after 30 steps (digits at
    m = 256, the metric's first evaluation of a 10-epoch run), and the model evaluated is not
    the one trained. The project's 0.9 keeps 4% there."""
    from smallbatch_jax.data import load_digits, make_dataset
    from smallbatch_jax.models import create_model
    from smallbatch_jax.objectives import CLASSIFICATION
    from smallbatch_jax.run.config_checks import check_model

    features = make_dataset("features", *_data())
    checked = lambda model, data, steps, built_in=False: check_model(
        model, data, CLASSIFICATION, "mine", 4, 0, built_in, steps_before_metric=steps)
    with caplog.at_level("WARNING"):
        checked(DenseBatchNorm(), features, 30)
    assert ("model mine at m = 4: BatchNorm running statistics (momentum 0.99; BatchNorm_0) "
            "still hold 74% of their initial values (mean 0, variance 1) at the first "
            "evaluation the metric reads, after 30 steps") in caplog.text
    assert "Give BatchNorm momentum 0.9 (4.2% left), or more epochs" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # the project's 0.9 after 5 steps: more epochs
        checked(create_model("small_cnn_bn", 10), load_digits(), 5, True)
    assert "still hold 59%" in caplog.text and "Give it more epochs" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        checked(DenseBatchNorm(), features, 600)  # 0.99^600: 0.2%
        checked(create_model("small_cnn_bn", 10), load_digits(), 30, True)  # 0.9^30: 4%
        checked(DenseBatchNorm(), features, None)
    assert "running statistics" not in caplog.text


def test_a_metric_window_reaching_back_before_the_last_decay_is_warned_of(caplog):
    """The median over the last 5 of 5 epochs reads epochs 1–3, before the decay at 75%: the
    README's example at 5 epochs tied m = 4 and 16 at their third epochs' scores (0.856) where
    m = 16 ended higher (0.872 against 0.862). The paper's 5 of 82 all follow the decay."""
    from ml_collections import ConfigDict

    from smallbatch_jax.run.config_checks import check_metric_window

    config = lambda **kw: ConfigDict(dict(dict(
        epochs=5, last_epochs=5, lr_decay_points=(0.5, 0.75), lr_decay_factor=0.1,
        batch_size=4), **kw))
    with caplog.at_level("WARNING"):
        check_metric_window(config(), 625)
    assert ("m = 4: the metric is the median over the last 5 epochs, and 3 of them (epochs "
            "1–3) are evaluated before the learning rate's last decay (at epoch 3.749 of 5)"
            in caplog.text)
    assert "Set last_epochs to at most 2 (the epochs after it), or train longer" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_metric_window(config(epochs=2), 10)  # 1 of 2: the median halves the two
    assert "1 of them (epoch 1) is evaluated" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_metric_window(config(last_epochs=2), 625)  # epochs 4 and 5, both after it
        check_metric_window(config(epochs=82), 5)  # the paper's
        check_metric_window(config(epochs=15), 179)  # the README's recommendation: 1 of 5
        check_metric_window(config(epochs=10), 625)  # 2 of 5: the median follows the decay
        check_metric_window(config(lr_decay_points=()), 625)  # no decay
        check_metric_window(config(lr_decay_factor=1.0), 625)
        check_metric_window(config(epochs=1), 10)
    assert "last decay" not in caplog.text


class OwnWeights(nn.Module):
    """Weights of its own names: nothing is called 'kernel', what weight decay covers."""

    @nn.compact
    def __call__(self, x, train):
        w1 = self.param("w1", nn.initializers.lecun_normal(), (x.shape[-1], 16))
        w2 = self.param("w2", nn.initializers.lecun_normal(), (16, 4))
        return nn.relu(x @ w1) @ w2


class TokenClassifier(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(4)(nn.Embed(50, 8)(x).mean(1))


class Attention(nn.Module):
    """Attention's biases have two axes, (heads, features): biases, not weight matrices."""

    @nn.compact
    def __call__(self, x, train):
        h = nn.Dense(16)(x)[:, None, :]
        return nn.Dense(4)((h + nn.SelfAttention(num_heads=2)(h))[:, 0])


@pytest.mark.parametrize("key,value", [
    ("weight_decay", 5e-4), ("sweep.weight_decay", (0.0, 0.05)),
    ("sweep.points", ({"weight_decay": 0.0, "warmup": 0.0},
                      {"weight_decay": 5e-3, "warmup": 0.1}))])
def test_weight_decay_on_a_model_without_kernels_is_refused(tmp_path, key, value):
    """A model whose weights are its own `self.param('w1', …)` had no weight decay at any λ:
    a sweep over λ read the same at every value (digits, m = 16, λ ∈ {0, 0.05}: "spread over
    weight_decay 0.0000") and its rows recorded a λ never applied."""
    config = _config(weight_decay=0.0)
    section, _, name = key.rpartition(".")
    (config[section] if section else config)[name] = value
    message = (rf"config.{key}: a weight decay up to {max(_decays(value)):g}, but model "
               r".*OwnWeights has no parameter named 'kernel'.*its weights: w1 \(20×16\), w2 "
               r"\(16×4\)\): every λ would train the same model")
    with pytest.raises(ValueError, match=message):
        sbj.run_lr_sweep(config, str(tmp_path / "run"), model=OwnWeights(), data=_data())
    assert not (tmp_path / "run").exists()


def _decays(value):
    if isinstance(value, float):
        return [value]
    return [p["weight_decay"] if isinstance(p, dict) else p for p in value]


def test_weights_outside_weight_decay_are_named(caplog):
    """Weight decay takes the kernels only: an embedding table beside them trains without
    it, said with its size; every built-in model's weight matrices are kernels."""
    from smallbatch_jax.models import MODELS, create_model
    from smallbatch_jax.run.config_checks import check_weight_decay

    variables = lambda model, shape, dtype="float32": jax.eval_shape(
        lambda x: model.init(jax.random.key(0), x, train=False),
        jax.ShapeDtypeStruct((2, *shape), dtype))
    with caplog.at_level("WARNING"):
        check_weight_decay("mine", variables(TokenClassifier(), (6,), "int32")["params"], 5e-4)
    assert ("model mine: weight decay (λ up to 0.0005) covers its parameters named 'kernel' "
            "(32 weights), not Embed_0/embedding (50×8) (400 weights), which train without "
            "it") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_weight_decay("mine", variables(TokenClassifier(), (6,), "int32")["params"], 0.0)
        check_weight_decay("mine", variables(OwnWeights(), (20,))["params"], 0.0)
        check_weight_decay("mine", variables(MLP(), (20,))["params"], 5e-4)
        check_weight_decay("mine", variables(Attention(), (20,))["params"], 5e-4)
        for name in MODELS:
            shape = (224, 224, 3) if "50" in name else (32, 32, 3)
            check_weight_decay(name, variables(create_model(name, 10), shape)["params"], 1e-4)
    assert "weight decay" not in caplog.text


def _mae(outputs, targets):
    import jax.numpy as jnp
    return jnp.abs(outputs.reshape(targets.shape) - targets)


def _log_likelihood(logits, labels):
    import optax
    return -optax.softmax_cross_entropy_with_integer_labels(logits, labels)


@pytest.mark.parametrize("objective,regression,message", [
    (sbj.Objective(sbj.REGRESSION.loss, _mae, labels="targets", scaled_targets=True), True,
     r"metric \('accuracy', higher_is_better=True\) scores a perfect prediction 0 and a "
     r"constant one .* higher is worse for it, and the sweep would name its worst settings "
     r"best. Give the Objective higher_is_better=False"),
    (sbj.Objective(sbj.CLASSIFICATION.loss, _log_likelihood, "log-likelihood", False), False,
     r"metric \('log-likelihood', higher_is_better=False\) scores a perfect prediction "
     r"-0.1054 and a constant one -1.371 on 100 training examples: lower is worse for it"),
    (sbj.Objective(sbj.REGRESSION.loss, _mae, higher_is_better=False, labels="targets"), True,
     r"named 'accuracy' with higher_is_better=False"),
    (sbj.Objective(_log_likelihood, sbj.CLASSIFICATION.metric), False,
     r"the objective's loss is -0.1054 for a perfect prediction and -1.371 for a constant "
     r"one on 100 training examples: the lanes minimize it, and would train away from the "
     r"data \(a log-likelihood or an accuracy needs its sign turned"),
    (sbj.Objective(lambda out, t: -_mae(out, t), _mae, "mae", False, "targets",
                   scaled_targets=True), True, r"the objective's loss is 0 for a perfect")],
    ids=["an-error-maximized", "a-likelihood-minimized", "an-error-named-accuracy",
         "a-likelihood-as-the-loss", "a-negated-error-as-the-loss"])
def test_a_metric_ranked_the_wrong_way_is_refused(tmp_path, objective, regression, message):
    """An error metric left at Objective's default higher_is_better=True was maximized: on
    scikit-learn's diabetes (an MLP, m = 8 and 32, 5 η̃, 6 epochs) the recommendation named
    m = 32 at the grid's smallest η̃, the least trained, "accuracy 48.37" (its mean absolute
    error; the best setting's: 41.1) and asked to extend the grid below it."""
    x, y, xt, yt = _data()
    if regression:
        y, yt = (x[:, 0] * 50 + 150).astype(np.float32), (xt[:, 0] * 50 + 150).astype(np.float32)
    model = MLP(outputs=1 if regression else 4)
    with pytest.raises(ValueError, match=message):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=model, data=(x, y, xt, yt),
                         objective=objective)
    assert not (tmp_path / "run").exists()


def test_a_binary_classifiers_metric_ranked_the_wrong_way_is_refused(tmp_path):
    """One logit for two classes under a sigmoid cross-entropy: no perfect or constant
    prediction was built for it, and an error rate left at higher_is_better=True passed
    unchecked. The outputs the loss itself calls perfect and constant stand in."""
    import jax.numpy as jnp
    import optax

    logistic = lambda out, y: optax.sigmoid_binary_cross_entropy(out[:, 0], y.astype(float))
    error = sbj.Objective(logistic, lambda out, y: ((out[:, 0] > 0) != (y > 0)).astype(
        jnp.float32), "error")
    with pytest.raises(ValueError, match=r"metric \('error', higher_is_better=True\) scores a "
                                         r"perfect prediction 0 and a constant one 0\.4"):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(outputs=1),
                         data=_data(num_classes=2), objective=error)
    assert not (tmp_path / "run").exists()


def test_raw_targets_far_from_unit_scale_under_a_users_objective_are_named(caplog):
    """A user's squared error (scaled_targets=False, the default) on diabetes' targets (mean
    152, spread 77) diverged at 11 of 12 (m, η̃): the answer was the targets' scale. Warned
    of; not for standardized targets, nor for multi-hot ones."""
    import jax.numpy as jnp
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_raw_target_scale

    x, _, xt, _ = _data()
    squared = sbj.Objective(sbj.REGRESSION.loss, sbj.REGRESSION.metric, "sse", False,
                            "targets")
    far = make_dataset("mine", x, x[:, 0] * 77 + 152, xt, xt[:, 0] * 77 + 152)
    with caplog.at_level("WARNING"):
        check_raw_target_scale(squared, far.raw_targets())
    assert ("mine: the objective's targets reach it as they are (scaled_targets=False), of "
            "mean 1") in caplog.text and "give the Objective scaled_targets=True" in caplog.text
    caplog.clear()
    hot = (x[:, :3] > 1).astype(np.float32), (xt[:, :3] > 1).astype(np.float32)
    multi = sbj.Objective(lambda o, t: jnp.sum(o - t, -1), lambda o, t: jnp.sum(o - t, -1),
                          "x", False, "targets")
    with caplog.at_level("WARNING"):
        check_raw_target_scale(dataclasses.replace(squared, scaled_targets=True), far)
        check_raw_target_scale(multi, make_dataset("mine", x, hot[0], xt, hot[1]).raw_targets())
    assert "reach it as they are" not in caplog.text


def test_a_metric_ranked_the_wrong_way_is_found_in_data_sorted_by_class():
    """Training labels sorted by class (np.concatenate of each class's examples): the first
    256 were all one class, where a constant prediction scores as a perfect one, and an error
    metric maximized passed unseen. The examples read are spread over the training split."""
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_directions

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1200, 4)).astype(np.float32), np.repeat(np.arange(4), 300)
    data = make_dataset("sorted", x, y, x[::10], y[::10])
    error = sbj.Objective(sbj.CLASSIFICATION.loss, lambda o, t: (o.argmax(-1) != t) * 1.0)
    with pytest.raises(ValueError, match=r"higher is worse for it"):
        check_directions(error, jax.ShapeDtypeStruct((2, 4), np.float32), data)


def test_losses_and_metrics_going_their_own_way_pass_the_direction_check():
    """Either direction of the metric, either label kind; one logit for two classes (its
    perfect and constant predictions the ones its loss prefers)."""
    import jax.numpy as jnp
    import optax

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_directions

    x, y, xt, yt = _data()
    classes = make_dataset("mine", x, y, xt, yt)
    binary = make_dataset("mine", x, y % 2, xt, yt % 2)
    targets = make_dataset("mine", x, x[:, 0] * 3, xt, xt[:, 0] * 3)
    shaped = lambda *shape: jax.ShapeDtypeStruct((2, *shape), np.float32)
    for objective, data, width in [
            (sbj.CLASSIFICATION, classes, 4), (sbj.REGRESSION, targets, 1),
            (sbj.Objective(sbj.CLASSIFICATION.loss, _log_likelihood, "log-likelihood"),
             classes, 4),
            (sbj.Objective(sbj.REGRESSION.loss, _mae, "mae", False, "targets"), targets, 1),
            (sbj.Objective(lambda o, t: optax.sigmoid_binary_cross_entropy(o[:, 0], t),
                           lambda o, t: ((o[:, 0] > 0) == (t > 0)).astype(jnp.float32)),
             binary, 1),
            (sbj.Objective(lambda o, t: optax.sigmoid_binary_cross_entropy(o[:, 0], t),
                           lambda o, t: jnp.abs(jax.nn.sigmoid(o[:, 0]) - t), "error", False),
             binary, 1),
            # A per-example metric that is 0 for most of a noisy prediction's examples.
            (sbj.Objective(sbj.REGRESSION.loss, lambda o, t: (jnp.abs(o.reshape(t.shape) - t)
                                                              < 1e-3).astype(jnp.float32),
                           "within 0.001", True, "targets"), targets, 1),
            # Label smoothing of 0.5 (a confident prediction's loss is not near 0 there).
            (sbj.Objective(lambda o, t: optax.softmax_cross_entropy(
                o, optax.smooth_labels(jax.nn.one_hot(t, 4), 0.5)), sbj.CLASSIFICATION.metric),
             classes, 4)]:
        check_directions(objective, shaped(width), data)


def test_the_direction_check_takes_labels_per_position():
    """Next-token labels (N, T): the perfect prediction puts the labelled token's logit high
    at each position; a user's per-token cross-entropy and accuracy pass, their error rate
    left at higher_is_better=True is refused."""
    import jax.numpy as jnp
    import optax

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_directions

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 7, (120, 6))
    data = make_dataset("tokens", tokens[:100, :-1], tokens[:100, 1:], tokens[100:, :-1],
                        tokens[100:, 1:])
    outputs = jax.ShapeDtypeStruct((2, 5, 7), np.float32)
    per_token = lambda o, y: optax.softmax_cross_entropy_with_integer_labels(o, y).mean(-1)
    right = lambda o, y: (o.argmax(-1) == y).mean(-1)
    check_directions(sbj.Objective(per_token, right, "token accuracy"), outputs, data)
    check_directions(sbj.CLASSIFICATION, outputs, data)
    with pytest.raises(ValueError, match=r"metric \('token error', higher_is_better=True\) "
                                         r"scores a perfect prediction 0 and a constant one"):
        check_directions(sbj.Objective(per_token, lambda o, y: 1.0 - right(o, y),
                                       "token error"), outputs, data)


def test_a_users_objective_must_leave_out_the_positions_labelled_ignored(caplog):
    """Labels -100 at the padding reach a user's objective as they are. optax's cross-entropy
    of them unmasked is NaN there (every lane then "diverged" at step 0, unexplained), one
    indexing with clipping trains on the last class there, and an accuracy of argmax ==
    labels counts them as misses: the first two refused, the third warned of, naming the
    mask; the masked ones (and the built-in objective) pass."""
    import jax.numpy as jnp
    import optax

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_directions

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 7, (120, 6))
    labels = np.where(np.arange(5) < rng.integers(2, 6, 120)[:, None], tokens[:, 1:], -100)
    data = make_dataset("tokens", tokens[:100, :-1], labels[:100], tokens[100:, :-1],
                        labels[100:])
    outputs = jax.ShapeDtypeStruct((2, 5, 7), np.float32)
    counted = lambda y: y != -100
    masked = lambda v, y: jnp.where(counted(y), v, 0).sum(-1) / counted(y).sum(-1)
    loss = lambda o, y: masked(optax.softmax_cross_entropy_with_integer_labels(
        o, jnp.where(counted(y), y, 0)), y)
    right = lambda o, y: masked((o.argmax(-1) == y).astype(jnp.float32), y)
    with caplog.at_level("WARNING"):
        check_directions(sbj.Objective(loss, right, "token accuracy"), outputs, data)
        check_directions(sbj.CLASSIFICATION, outputs, data)
    assert "IGNORED_LABEL" not in caplog.text
    unmasked = lambda o, y: optax.softmax_cross_entropy_with_integer_labels(o, y).mean(-1)
    with pytest.raises(ValueError, match=r"the objective's loss is not finite on \d+ of \d+ "
                                         r"training examples holding labels -100 .* counted = "
                                         r"labels != -100"):
        check_directions(sbj.Objective(unmasked, right, "token accuracy"), outputs, data)
    clipped = lambda o, y: -jnp.take_along_axis(jax.nn.log_softmax(o), y[..., None], -1,
                                                mode="clip")[..., 0].mean(-1)
    with pytest.raises(ValueError, match=r"the objective's loss changes with the outputs at "
                                         r"the positions labelled -100"):
        check_directions(sbj.Objective(clipped, right, "token accuracy"), outputs, data)
    with caplog.at_level("WARNING"):
        check_directions(sbj.Objective(loss, lambda o, y: (o.argmax(-1) == y).mean(-1),
                                       "token accuracy"), outputs, data)
    assert re.search(r"the objective's metric \(token accuracy\) of a perfect prediction "
                     r"changes when the positions labelled -100 .* are labelled as predicted "
                     r"instead \(0\.\d+ against 1 on average\): does it count them, as "
                     r"misses\?", caplog.text)


def test_sequences_padded_at_their_end_are_named_under_the_built_in_objective(caplog):
    """Sentences of 5 to 20 tokens padded with id 0 to 20: 40% of the label positions are
    padding, which the built-in loss and accuracy count as words (predicting the pad is the
    easiest accuracy there is). Warned of, with the way out; not for unpadded sequences, nor
    under a user's objective (which may mask the padding itself)."""
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_labels

    rng = np.random.default_rng(0)
    words = rng.integers(1, 12, (100, 20))
    lengths = rng.integers(5, 21, 100)
    padded = np.where(np.arange(20) < lengths[:, None], words, 0)
    data = lambda labels: make_dataset("sentences", words[:80], labels[:80], words[80:],
                                       labels[80:])
    masked = sbj.Objective(sbj.CLASSIFICATION.loss, sbj.CLASSIFICATION.metric)
    with caplog.at_level("WARNING"):
        check_labels(data(words), objective=sbj.CLASSIFICATION)
        check_labels(data(padded), objective=masked)
    assert "padding" not in caplog.text
    with caplog.at_level("WARNING"):
        check_labels(data(padded), objective=sbj.CLASSIFICATION)
    assert re.search(r"sentences: 4\d% of the label positions are runs of id 0 at the end of "
                     r"a sequence \(in \d+ of 80 sequences\): padding\? .* Set the labels at "
                     r"the padded positions to -100 .* Give your own "
                     r"Objective whose loss and metric average over the positions where "
                     r"labels != 0", caplog.text)
    # Padding marked -100 (left out by the built-in objective) is neither warned of nor
    # taken for a class the training split lacks.
    caplog.clear()
    marked = np.where(np.arange(20) < lengths[:, None], words, -100)
    with caplog.at_level("WARNING"):
        check_labels(data(marked), objective=sbj.CLASSIFICATION)
        check_labels(make_dataset("sentences", words[:80], words[:80], words[80:],
                                  marked[80:]), objective=sbj.CLASSIFICATION)
    assert "padding" not in caplog.text and "never occur" not in caplog.text


def test_target_components_of_unlike_spreads_are_named(caplog):
    """Two targets, one in [-1, 1] and one of spread ~1000: the built-in regression trains on
    them standardized but its test mse sums them in their units, so every choice follows the
    second. Warned of; not for components alike, one component, or a user's objective."""
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_labels

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4)).astype(np.float32)
    unlike = np.stack([np.tanh(x[:, 0]), 1000 * x[:, 1]], 1)
    data = lambda y: make_dataset("mine", x[:150], y[:150], x[150:], y[150:])
    with caplog.at_level("WARNING"):
        check_labels(data(unlike), objective=sbj.REGRESSION)
    assert re.search(r"mine: the targets' components spread from 0\.\d+ \(component 0\) to "
                     r"\d+ \(component 1\), \d+× apart; the test mse sums their squared errors "
                     r"in these units .* follows the widest", caplog.text)
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_labels(data(x[:, :2] * [1.0, 3.0]), objective=sbj.REGRESSION)
        check_labels(data(1000 * x[:, 1]), objective=sbj.REGRESSION)
        check_labels(data(unlike), objective=sbj.Objective(
            sbj.REGRESSION.loss, sbj.REGRESSION.metric, "mse", False, "targets"))
    assert "components spread" not in caplog.text


def test_integer_features_reaching_a_dense_layer_are_named(caplog):
    """Integer inputs that are not images pass as token ids, unstandardized (said at INFO,
    which Python does not show): a DataFrame's ages, incomes and hours (up to 150,000) as
    int64 into a user MLP diverged in every lane (2 m × 6 η̃), and the report asked for a
    smaller η̃. A dense layer computing with them is named; an nn.Embed looking them up is
    not."""
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.objectives import CLASSIFICATION
    from smallbatch_jax.run.config_checks import check_model

    rng = np.random.default_rng(0)
    counts = rng.integers(10, 50, (40, 6))
    data = lambda x: make_dataset("mine", x[:30], np.arange(30) % 4, x[30:], np.arange(10) % 4)
    with caplog.at_level("WARNING"):
        check_model(MLP(), data(counts), CLASSIFICATION, "mine", 4, built_in=False)
    assert ("model mine: its layer Dense_1 computes with the integer inputs themselves "
            "(shape (6,), values 10 … 49), which are taken as token ids and passed "
            "unstandardized. If they are numeric features (counts, ages, amounts), pass "
            "x.astype(np.float32)") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_model(TokenClassifier(), data(counts), CLASSIFICATION, "mine", 4, built_in=False)
        check_model(MLP(), data(counts.astype(np.float32)), CLASSIFICATION, "mine", 4,
                    built_in=False)
    assert "integer inputs" not in caplog.text


class PositiveHead(nn.Module):
    """A regression head for positive targets (prices, counts): right in the targets' units,
    unable to reach the standardized targets below their mean."""

    @nn.compact
    def __call__(self, x, train):
        return nn.relu(nn.Dense(1)(nn.relu(nn.Dense(16)(x))))


def test_a_regression_head_that_cannot_reach_standardized_targets_is_refused(tmp_path):
    """Scikit-learn's diabetes, a user MLP ending in a ReLU: best test mse 4394 against 2654
    without the ReLU (m = 8 and 32, 6 η̃, 10 epochs), without a word: the targets it learns
    are standardized, about half of them negative."""
    import dataclasses

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.objectives import REGRESSION
    from smallbatch_jax.run.config_checks import check_model

    x, _, xt, _ = _data()
    y, yt = (x[:, 0] * 50 + 150).astype(np.float32), (xt[:, 0] * 50 + 150).astype(np.float32)
    with pytest.raises(ValueError, match=(
            r"model .*PositiveHead: its outputs are all ≥ 0 at initialization on 64 training "
            r"examples \(an output activation: ReLU, softplus, exp\?\), but it learns the "
            r"targets standardized, \(y − μ\)/σ, and \d+% of them lie on the other side of 0")):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=PositiveHead(),
                         data=(x, y, xt, yt), objective="regression")
    assert not (tmp_path / "run").exists()
    data = make_dataset("mine", x, y, xt, yt)
    check_model(MLP(outputs=1), data, REGRESSION, "mine", 4, built_in=False)  # no activation
    raw = dataclasses.replace(REGRESSION, scaled_targets=False)  # the targets in their units
    check_model(PositiveHead(), data.raw_targets(), raw, "mine", 4, built_in=False)
    check_model(ZeroHead(), data, REGRESSION, "mine", 4, built_in=False)  # all 0: no sign


class ZeroHead(nn.Module):
    """A last layer initialized at zero (a common start): every initial output is 0."""

    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(1, kernel_init=nn.initializers.zeros)(nn.relu(nn.Dense(16)(x)))


class RescalingCNN(nn.Module):
    """Written for raw pixels: it divides by 255 itself."""
    scale: float = 255.0

    @nn.compact
    def __call__(self, x, train):
        return nn.Dense(4)(nn.relu(nn.Conv(4, (3, 3))(x / self.scale)).mean((1, 2)))


def test_a_model_that_rescales_its_standardized_inputs_is_named(caplog):
    """Digits' gray levels 0–255 into a user CNN that divides by 255: every m ended at 0.1385
    accuracy at best (its training loss barely moved: 2.3019 against log 10 = 2.3026), the
    grid's smallest η̃ recommended; without the division 0.874."""
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.objectives import CLASSIFICATION
    from smallbatch_jax.run.config_checks import check_model

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 6, 6, 1)).astype(np.uint8)
    data = make_dataset("mine", images[:30], np.arange(30) % 4, images[30:], np.arange(10) % 4)
    checked = lambda model, data: check_model(model, data, CLASSIFICATION, "mine", 4,
                                              built_in=False)
    with caplog.at_level("WARNING"):
        checked(RescalingCNN(), data)
    assert re.search(r"model mine: its first layer, Conv_0, receives inputs of standard "
                     r"deviation 0.0039\d, though the inputs reach the model standardized "
                     r"\(std 1 per channel\): does the model rescale them itself", caplog.text)
    caplog.clear()
    with caplog.at_level("WARNING"):
        checked(RescalingCNN(scale=2.0), data)  # (x * 2 − 1 and the like: within 10×)
        checked(CNN(), data)
        checked(RescalingCNN(), data.unstandardized())  # raw values, as it was written for
    assert "first layer" not in caplog.text
    # What the check keeps of a model's layers: the first one's input, the others' dtypes
    # (a deep model's activations on 64 examples would be kept whole otherwise).
    from smallbatch_jax.run.config_checks import initial_outputs
    found = []
    initial_outputs(RescalingCNN(), data, found)
    assert [layer for layer, _ in found] == ["Conv_0", "Dense_0"]
    assert found[0][1].shape == (30, 6, 6, 1) and found[1][1].shape == ()


def test_a_batch_statistic_broadcast_to_every_example_is_refused(tmp_path):
    """A batch's accuracy broadcast to each example passes the shape test ((batch,)) but is
    summed over the test set with the last batch's padding masked out: a user MLP on digits
    (m = 16, 3 epochs, evaluation batches of 256 over 397 test examples) reported 0.7505 where
    its accuracy was 0.8942."""
    import jax.numpy as jnp

    batch_accuracy = lambda out, y: jnp.full(y.shape, jnp.mean(jnp.argmax(out, -1) == y))
    objective = sbj.Objective(sbj.CLASSIFICATION.loss, batch_accuracy)
    with pytest.raises(ValueError, match=(
            r"the objective's metric \('accuracy'\) gives all 100 training examples the same "
            r"value, .* for a prediction perfect on half of them and constant on the rest: a "
            r"statistic of the whole batch broadcast to each example\?")):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(), data=_data(),
                         objective=objective)
    assert not (tmp_path / "run").exists()


def test_an_objective_coupling_the_examples_of_a_batch_is_refused(tmp_path):
    """A squared error of (batch, 1) outputs against (batch,) targets, as PyTorch's MSELoss
    warns of, broadcasts to (batch, batch): every output against every target, one value per
    example (the shape check passes). On scikit-learn's diabetes the direction check refused
    it as a log-likelihood whose sign to turn, which, followed, trains on the negated
    error. A metric scored against the rest of the batch (in-batch retrieval, a contrastive
    set-up) depends on the evaluation batches and their padding. Both refused, named."""
    import jax.numpy as jnp

    x, _, xt, _ = _data()
    y, yt = (x[:, 0] * 2 + 1).astype(np.float32), (xt[:, 0] * 2 + 1).astype(np.float32)
    broadcast = lambda out, t: jnp.mean(jnp.square(out - t), axis=-1)
    for loss, metric, what in ((broadcast, sbj.REGRESSION.metric, "loss"),
                               (sbj.REGRESSION.loss, broadcast, "metric")):
        with pytest.raises(ValueError, match=(
                rf"the objective's {what} gives an example a value that depends on the other "
                r"examples of its batch: 50 of 50 examples changed .* Outputs of shape "
                r"\(batch, 1\) against labels of shape \(batch,\) broadcast to \(batch, "
                r"batch\) .*\(outputs\.reshape\(labels\.shape\)\)")):
            sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(outputs=1),
                             data=(x, y, xt, yt), objective=sbj.Objective(
                                 loss, metric, "mse", False, "targets", scaled_targets=True))
    # A contrastive loss: each example's outputs scored at the labels of the whole batch, the
    # example's own position the target.
    contrastive = lambda out, y: -jnp.diagonal(jax.nn.log_softmax(out[:, y], axis=1))
    with pytest.raises(ValueError, match=(
            r"loss gives an example a value that depends on the other examples of its batch: "
            r"\d+ of 50 examples changed when the rest of the batch was replaced. The lanes "
            r".*\(a contrastive loss\)")):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(), data=_data(),
                         objective=sbj.Objective(contrastive, sbj.CLASSIFICATION.metric))
    assert not (tmp_path / "run").exists()


def test_the_objective_checks_of_a_large_vocabulary_stay_small():
    """Next-token classification over 30,000 classes: the direction check's perfect
    prediction was np.eye(C)[y] (C² = 900 million values, 7.2 GB) and a user objective's
    baseline broadcast the constant prediction over the whole test split at once."""
    import tracemalloc

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.objectives import constant_metric
    from smallbatch_jax.run.config_checks import check_directions

    classes = 30_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = rng.integers(0, classes, 300)
    y[0] = classes - 1
    data = make_dataset("tokens", x[:200], y[:200], x[200:], y[200:], num_classes=classes)
    user = sbj.Objective(sbj.CLASSIFICATION.loss, sbj.CLASSIFICATION.metric)
    tracemalloc.start()
    check_directions(user, jax.ShapeDtypeStruct((2, classes), np.float32), data)
    baseline = constant_metric(user, data.train_labels, data.test_labels, "classes", classes,
                               (classes,))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 400 * 2**20, peak
    assert baseline == pytest.approx(np.mean(data.test_labels == np.bincount(
        data.train_labels, minlength=classes).argmax()))


class AttentionOverTheBatch(nn.Module):
    """Attention on (batch, features): Flax takes the batch axis as the sequence."""

    @nn.compact
    def __call__(self, x, train):
        h = nn.Dense(16)(x)
        return nn.Dense(4)(h + nn.SelfAttention(num_heads=2)(h))


class BatchCentred(nn.Module):
    @nn.compact
    def __call__(self, x, train):
        h = nn.relu(nn.Dense(16)(x))
        return nn.Dense(4)(h - h.mean(0))


@pytest.mark.parametrize("model", [AttentionOverTheBatch(), BatchCentred()],
                         ids=["attention-over-the-batch", "batch-centred"])
def test_a_model_mixing_the_examples_it_evaluates_is_refused(tmp_path, model):
    """Attention over (batch, features) inputs (make_classification, 4 classes, Adam, 6
    epochs) was reported at m = 64 with accuracy 0.772 where its trained weights score 0.454
    on each test example alone: the metric was one of how the test split was batched, and
    every m trained another function."""
    message = (r"its outputs for an example depend on the other examples evaluated with it "
               r"\(train=False\): the outputs of 32 examples changed by up to .* when the 32 "
               r"examples beside them were replaced.* give it \(batch, length, features\), "
               r"e\.g\. x\[:, None, :\]")
    with pytest.raises(ValueError, match=message):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=model, data=_data())
    assert not (tmp_path / "run").exists()


def test_models_that_evaluate_each_example_alone_pass_the_mixing_check():
    """Float rounding is no mixing: BatchNorm evaluated with its running statistics,
    attention over a sequence axis, and a bfloat16 model (whose outputs on this CPU differed
    by 0.0015 of their magnitude between a batch of 32 and one of 64)."""
    import jax.numpy as jnp
    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.config_checks import check_examples_independent, initial_outputs

    class BFloat16(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            for _ in range(6):
                x = nn.gelu(nn.Dense(512, dtype=jnp.bfloat16)(x))
            return nn.Dense(4, dtype=jnp.bfloat16)(x)

    data = make_dataset("mine", *_data())
    for model in (DenseBatchNorm(), Attention(), BFloat16(), MLP()):
        first_half, layers = [], []
        outputs = initial_outputs(model, data, layers, first_half)
        check_examples_independent(outputs, first_half, "mine", layers)
