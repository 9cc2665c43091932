"""The user's own model and data: through the Python API and the command line."""

import json
import os
import re
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

import smallbatch_jax as sbj
from conftest import REPO_ROOT
from smallbatch_jax.data import make_dataset
from smallbatch_jax.run import results

MLP_SOURCE = '''
import flax.linen as nn

class MLP(nn.Module):
    """A flat-feature classifier with Dropout (a Flax module built with the class count)."""
    num_classes: int = 3

    @nn.compact
    def __call__(self, x, train):
        x = nn.relu(nn.Dense(32)(x))
        x = nn.Dropout(0.3, deterministic=not train)(x)
        return nn.Dense(self.num_classes)(x)
'''
namespace = {}
exec(MLP_SOURCE, namespace)
MLP = namespace["MLP"]


class SmallCNN(nn.Module):
    """A user's CNN on NHWC images: its own nn.Conv (no conv factory)."""

    @nn.compact
    def __call__(self, x, train):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


def _features(n=600, f=12, classes=3, seed=0):
    """A learnable flat-feature problem: the class is the argmax of 3 linear scores."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f)).astype(np.float32)
    y = np.argmax(x @ rng.normal(size=(f, classes)), axis=1)
    return x[:n - 200], y[:n - 200], x[n - 200:], y[n - 200:]


def _config(**overrides):
    config = sbj.load_config(os.path.join(REPO_ROOT, "configs", "default.py"))
    config.epochs, config.batch_size, config.base_lrs = 2, 16, (2.0**-8, 2.0**-5)
    config.update(overrides)
    return config


def test_the_package_names_its_api_and_a_single_run_imports_no_study():
    """`import smallbatch_jax` gives every API name (imported on first use), and a single
    run's process does not pay for the study's SciPy and Matplotlib (~2 s of every start)."""
    assert set(sbj.__all__) <= set(dir(sbj))
    constants = ("CLASSIFICATION", "REGRESSION", "IGNORED_LABEL")
    assert all(callable(getattr(sbj, name)) or name in constants for name in sbj.__all__)
    with pytest.raises(AttributeError, match="no attribute 'run_sweep'"):
        sbj.run_sweep  # noqa: B018
    check = ("import sys, experiments.lr_sweep; "
             "print(sorted(m for m in ('scipy', 'matplotlib', 'smallbatch_jax.api') "
             "if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"


def test_the_readme_example_runs(tmp_path):
    """The README's example, as a user pastes it (its workdir moved to a temporary one)."""
    readme = open(os.path.join(REPO_ROOT, "README.md")).read()
    example = re.search(r"<!-- readme-example -->\n```python\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) <= 15
    code = example.replace('"runs/mine"', repr(str(tmp_path / "mine")))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = results.read_csv(str(tmp_path / "mine" / "results.csv"))
    assert {r["batch_size"] for r in rows} == {4, 16, 64}
    assert {r["optimizer"] for r in rows} == {"adam"} and rows[0]["dataset"] == "user"
    assert rows[0]["model"] == "__main__:MLP"
    assert max(r["median_test_metric"] for r in rows) > 0.5  # 4 classes: chance is 0.25
    assert (tmp_path / "mine" / "summary.md").is_file()


@pytest.mark.parametrize("preset", ["auto", "reference", "patches", "patches_grouped",
                                    "sequential"])
def test_a_dropout_mlp_on_flat_features_runs_under_every_plan(tmp_path, preset):
    """Models without convolutions take every plan (convolution-free presets fall back to
    XLA's own layers); lanes with Dropout are exact: a lane of the grid equals that lane run
    alone, and a rerun in a new workdir gives the same numbers."""
    config = _config(base_lrs=(2.0**-8, 2.0**-6, 2.0**-4))
    config.strategy.preset = preset
    data = _features()
    rows = sbj.run_lr_sweep(config, str(tmp_path / "grid"), model=MLP(), data=data)
    assert all(r["model"].endswith(":MLP") and r["dataset"] == "user" for r in rows)
    assert all(np.isfinite(r["final_train_loss"]) for r in rows)
    assert max(r["final_test_metric"] for r in rows) > 0.6
    alone = sbj.run_lr_sweep(_config(base_lrs=(2.0**-6,), strategy=config.strategy),
                             str(tmp_path / "alone"), model=MLP(), data=data)
    np.testing.assert_allclose(alone[0]["final_train_loss"], rows[1]["final_train_loss"],
                               rtol=1e-5)
    if preset == "auto":
        again = sbj.run_lr_sweep(config, str(tmp_path / "again"), model=MLP(), data=data)
        assert [r["final_train_loss"] for r in again] == [r["final_train_loss"] for r in rows]
        # Dropout is on in training: without it, training goes differently.
        class NoDropout(MLP):
            @nn.compact
            def __call__(self, x, train):
                return super().__call__(x, False)
        plain = sbj.run_lr_sweep(config, str(tmp_path / "plain"), model=NoDropout(), data=data)
        assert plain[1]["final_train_loss"] != rows[1]["final_train_loss"]


def test_a_users_cnn_on_images_and_a_factory(tmp_path, digits):
    data = (digits.train_images, digits.train_labels, digits.test_images, digits.test_labels)
    rows = sbj.run_batch_sweep(_config(batch_sizes=(32, 64), base_lrs=(2.0**-4, 2.0**-2)),
                               str(tmp_path), data=data,
                               model=lambda num_classes: SmallCNN())
    assert {r["batch_size"] for r in rows} == {32, 64}
    assert max(r["median_test_metric"] for r in rows) > 0.3


def test_token_ids_pass_untouched_to_the_model(tmp_path, monkeypatch):
    class Bag(nn.Module):
        @nn.compact
        def __call__(self, tokens, train):
            assert jax.numpy.issubdtype(tokens.dtype, jax.numpy.integer)
            return nn.Dense(2)(nn.Embed(50, 8)(tokens).mean(axis=1))

    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, (500, 6))
    labels = (tokens < 25).sum(axis=1) > 3  # more small ids than large
    dataset = make_dataset("bag", tokens[:400], labels[:400].astype(int), tokens[400:],
                           labels[400:].astype(int))
    assert dataset.input_kind == "tokens" and dataset.mean is None
    rows = sbj.run_lr_sweep(_config(optimizer="adam", base_lrs=(1e-2,)), str(tmp_path),
                            model=Bag(), data=dataset)
    assert rows[0]["dataset"] == "bag" and rows[0]["final_test_metric"] > 0.6
    # Re-running the same call: the finished run is skipped, its rows returned.
    from smallbatch_jax.run import train as lr_sweep
    monkeypatch.setattr(lr_sweep, "create_run", lambda *a: pytest.fail("trained again"))
    again = sbj.run_lr_sweep(_config(optimizer="adam", base_lrs=(1e-2,)), str(tmp_path),
                             model=Bag(), data=dataset)
    assert again[0]["final_test_metric"] == rows[0]["final_test_metric"]


def _token_chain(rng, num=600, length=9, vocabulary=12):
    """Sequences whose next token is (3t + 1) mod 12 four times in five, else random."""
    tokens = np.zeros((num, length), np.int64)
    tokens[:, 0] = rng.integers(0, vocabulary, num)
    for t in range(1, length):
        follows = (3 * tokens[:, t - 1] + 1) % vocabulary
        tokens[:, t] = np.where(rng.random(num) < 0.8, follows,
                                rng.integers(0, vocabulary, num))
    return tokens


def test_next_token_prediction_with_labels_per_position(tmp_path):
    """A language model's set-up: (N, T) token ids in, the next token at each position as
    the label, (batch, T, vocabulary) logits out; an example's loss and accuracy are the
    means over its positions. On a chain whose next token is (3t + 1) mod 12 four times in
    five, a per-position model reaches ~0.8 (the chain allows 0.82; the majority token scores
    0.245 at every position); a model giving one prediction per sequence is refused, naming
    the positions."""
    rng = np.random.default_rng(0)
    tokens = _token_chain(rng)
    data = (tokens[:500, :-1], tokens[:500, 1:], tokens[500:, :-1], tokens[500:, 1:])

    class NextToken(nn.Module):
        pooled: bool = False

        @nn.compact
        def __call__(self, tokens, train):
            h = nn.relu(nn.Dense(32)(nn.Embed(12, 16)(tokens)))
            return nn.Dense(12)(h.mean(axis=1) if self.pooled else h)

    rows = sbj.run_lr_sweep(_config(base_lrs=(2.0**-6, 2.0**-4)), str(tmp_path / "lm"),
                            model=NextToken(), data=data)
    assert all(0.2 < r["baseline_test_metric"] < 0.3 for r in rows)
    assert max(r["final_test_metric"] for r in rows) > 0.75
    with pytest.raises(ValueError, match=r"the model needs \(batch, 8, 12\) outputs, one per "
                                         r"class at each of the labels' positions \(8,\)"):
        sbj.run_lr_sweep(_config(), str(tmp_path / "pooled"), model=NextToken(pooled=True),
                         data=data)


def test_positions_labelled_ignored_are_left_out_of_the_loss_and_the_accuracy(tmp_path, caplog):
    """Sentences of 3 to 8 tokens padded to 8, their labels at the padding -100 (PyTorch's
    ignore_index, as Hugging Face's collators give them): trained and scored on the words
    alone, without a warning (0.81; the chain allows ~0.82). The padding scored as a class of
    its own instead (id 12) lifts the accuracy to 0.86, which the predictable pad buys, and is
    warned of (-100 was refused before: "labels must lie in [0, 12)")."""
    rng = np.random.default_rng(0)
    tokens = _token_chain(rng)
    words = np.arange(8) < rng.integers(3, 9, 600)[:, None]
    inputs = np.where(words, tokens[:, :-1], 12)  # (a pad id in the inputs, as a tokenizer's)
    labels = np.where(words, tokens[:, 1:], sbj.IGNORED_LABEL)
    split = lambda y: (inputs[:500], y[:500], inputs[500:], y[500:])

    class NextToken(nn.Module):
        @nn.compact
        def __call__(self, tokens, train):
            return nn.Dense(12)(nn.relu(nn.Dense(32)(nn.Embed(13, 16)(tokens))))

    config = _config(base_lrs=(2.0**-6, 2.0**-4))
    with caplog.at_level("WARNING"):
        rows = sbj.run_lr_sweep(config, str(tmp_path / "ignored"), model=NextToken(),
                                data=split(labels))
    assert "padding" not in caplog.text
    best = max(r["final_test_metric"] for r in rows)
    assert 0.7 < best < 0.85
    # The baseline: the majority word, scored on the words alone.
    test = labels[500:]
    majority = np.argmax(np.bincount(labels[:500][labels[:500] >= 0]))
    expected = np.mean([np.mean(y[y >= 0] == majority) for y in test])
    assert all(r["baseline_test_metric"] == pytest.approx(expected) for r in rows)

    class WithPad(nn.Module):  # (the pad as a 13th class: the accuracy the padding lifts)
        @nn.compact
        def __call__(self, tokens, train):
            return nn.Dense(13)(nn.relu(nn.Dense(32)(nn.Embed(13, 16)(tokens))))

    with caplog.at_level("WARNING"):
        padded = sbj.run_lr_sweep(config, str(tmp_path / "pad"), model=WithPad(),
                                  data=split(np.where(words, tokens[:, 1:], 12)))
    assert "padding?" in caplog.text
    assert max(r["final_test_metric"] for r in padded) > best + 0.03  # (0.856 against 0.806)


def test_a_flax_nnx_module_class_trains_as_lanes(tmp_path, caplog):
    """Flax's NNX API: the Module class is given (its __init__ takes rngs, and num_classes);
    the lanes build it per seed through nnx.bridge.ToLinen, its BatchNorm statistics carried
    as 'batch_stats', its Dropout drawing from the lanes' stream. A module already built (a
    raw TypeError deep in a dot_general before) is refused, saying what to give; so is an
    nnx.Dropout called without deterministic=not train, which through the bridge evaluated
    with a fixed half of the units dropped, without an error."""
    from flax import nnx

    class NNXMLP(nnx.Module):
        def __init__(self, rngs, num_classes=3, rate=0.2):
            self.hidden = nnx.Linear(12, 32, rngs=rngs)
            self.norm = nnx.BatchNorm(32, rngs=rngs)
            self.drop = nnx.Dropout(rate, rngs=rngs)
            self.out = nnx.Linear(32, num_classes, rngs=rngs)

        def __call__(self, x, train=False):
            h = nnx.relu(self.norm(self.hidden(x), use_running_average=not train))
            return self.out(self.drop(h, deterministic=not train))

    config, data = _config(num_seeds=2, base_lrs=(2.0**-5,)), _features()
    with caplog.at_level("WARNING"):
        rows = sbj.run_lr_sweep(config, str(tmp_path / "nnx"), model=NNXMLP, data=data)
    # Its layers are checked as Linen's are: BatchNorm's default momentum, 0.99, after the
    # 25 steps before the metric's first evaluation.
    assert ("BatchNorm running statistics (momentum 0.99; nnx.BatchNorm(32)) still hold "
            "78% of their initial values") in caplog.text
    assert rows[0]["model"].endswith("NNXMLP") and max(r["final_test_metric"]
                                                       for r in rows) > 0.8
    assert rows[0]["final_train_loss"] != rows[1]["final_train_loss"]  # seeds: own weights
    recorded = json.load(open(tmp_path / "nnx" / "config.json"))
    assert recorded["config"]["model"] == rows[0]["model"]  # (not nnx.bridge's wrapper)
    # Its Dropout trains: without it, training goes otherwise.
    class Plain(NNXMLP):
        def __init__(self, rngs, num_classes=3):
            super().__init__(rngs, num_classes, rate=0.0)

    plain = sbj.run_lr_sweep(config, str(tmp_path / "plain"), model=Plain, data=data)
    assert plain[0]["final_train_loss"] != rows[0]["final_train_loss"]
    for given, what in ((NNXMLP(nnx.Rngs(0)), r"model .*NNXMLP is a flax.nnx Module already "
                                               r"built, with its own weights"),
                        (lambda n: NNXMLP(nnx.Rngs(0), n), r"returned a flax.nnx Module")):
        with pytest.raises(ValueError, match=what + r".*give the NNX Module class itself"):
            sbj.run_lr_sweep(config, str(tmp_path / "built"), model=given, data=data)

    class NoTrain(nnx.Module):
        def __init__(self, rngs):
            self.out = nnx.Linear(12, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(x)

    with pytest.raises(ValueError, match=r"takes no `train` argument"):
        sbj.run_lr_sweep(config, str(tmp_path / "no_train"), model=NoTrain, data=data)

    class Idle(NNXMLP):  # (deterministic=True whatever train)
        def __call__(self, x, train=False):
            return self.out(self.drop(nnx.relu(self.hidden(x)), deterministic=True))

    class Rescaling(NNXMLP):  # (written for raw 0–255 inputs)
        def __call__(self, x, train=False):
            return super().__call__(x / 255.0, train)

    caplog.clear()
    with caplog.at_level("WARNING"):
        sbj.run_lr_sweep(config, str(tmp_path / "idle"), model=Idle, data=data)
        sbj.run_lr_sweep(config, str(tmp_path / "rescaling"), model=Rescaling, data=data)
    assert "Dropout nnx.Dropout(0.2) drop nothing in training" in caplog.text
    assert "its first layer, nnx.Linear, receives inputs of standard deviation 0.0039" \
        in caplog.text

    class DropsInEvaluation(NNXMLP):  # (deterministic=not train forgotten)
        def __call__(self, x, train=False):
            return self.out(self.drop(nnx.relu(self.hidden(x))))

    with pytest.raises(ValueError, match=r"draws random numbers when evaluated .* an "
                                         r"nnx.Dropout called without deterministic=not train"):
        sbj.run_lr_sweep(config, str(tmp_path / "drops"), model=DropsInEvaluation, data=data)

    class Sized(nnx.Module):  # (an argument the lanes cannot give: wrapped by the user)
        def __init__(self, din, rngs):
            self.out = nnx.Linear(din, 3, rngs=rngs)

        def __call__(self, x, train=False):
            return self.out(x)

    with pytest.raises(ValueError, match=r"its __init__ needs din besides rngs; give "
                                         r"nnx.bridge.ToLinen\(Sized, kwargs=\{'din': …\}\)"):
        sbj.run_lr_sweep(config, str(tmp_path / "sized"), model=Sized, data=data)
    sized = sbj.run_lr_sweep(config, str(tmp_path / "sized"), data=data,
                             model=nnx.bridge.ToLinen(Sized, kwargs={"din": 12}))
    assert sized[0]["model"].endswith("Sized")
    assert not (tmp_path / "built").exists() and not (tmp_path / "no_train").exists()


def test_the_command_line_takes_a_model_path_and_an_npz(tmp_path):
    (tmp_path / "mymodels.py").write_text(MLP_SOURCE)
    np.savez(tmp_path / "data.npz", **dict(zip(
        ("train_images", "train_labels", "test_images", "test_labels"), _features())))
    command = [sys.executable, "-m", "experiments.lr_sweep", "--config=configs/default.py",
               "--config.model=mymodels:MLP", "--config.dataset=npz",
               f"--config.data_dir={tmp_path / 'data.npz'}", "--config.epochs=2",
               "--config.batch_size=16", "--config.base_lrs=(0.00390625, 0.015625)",
               f"--workdir={tmp_path / 'run'}"]
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = results.read_csv(str(tmp_path / "run" / "results.csv"))
    assert rows[0]["model"] == "mymodels:MLP" and rows[0]["dataset"] == "npz"
    assert max(r["final_test_metric"] for r in rows) > 0.6


@pytest.mark.parametrize("model,message", [
    ("nosuchpackage.models:MLP", "cannot import 'nosuchpackage.models'"),
    ("json:nosuchthing", "json has no attribute 'nosuchthing'"),
    ("json:dumps", "returned str, not a Flax module"),
    ("resnet", r"model='resnet' is unknown; allowed: \[.*'alexnet'.*package.module:attribute"),
])
def test_a_bad_model_path_says_what_failed(tmp_path, model, message):
    config = _config(model=model)
    with pytest.raises(ValueError, match=message):
        sbj.run_lr_sweep(config, str(tmp_path / "run"), data=_features())
    assert not (tmp_path / "run").exists() or model == "json:dumps"


@pytest.mark.parametrize("change,message", [
    (lambda d: (d[0], d[1].astype(float), d[2], d[3]), "train labels must be integers"),
    (lambda d: (d[0], d[1] - 1, d[2], d[3]), r"train labels must lie in \[0, 3\)"),
    (lambda d: (d[0], d[1][:-1], d[2], d[3]), "one label each"),
    (lambda d: (d[0], d[1], d[2][:, :5], d[3]), r"train and test inputs differ in shape"),
    (lambda d: (d[0][:, 0], d[1], d[2][:, 0], d[3]), r"inputs must be \(N, \.\.\.\)"),
])
def test_bad_arrays_say_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        make_dataset("user", *change(_features()), num_classes=3, labels="classes")


def test_real_valued_labels_under_a_classification_objective_name_the_fix(tmp_path):
    x, y, xt, yt = _features()
    with pytest.raises(ValueError, match="labels must be integers.*config.objective='regression'"):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(),
                         data=(x, y.astype(np.float32), xt, yt.astype(np.float32)))
    # A Dataset of targets (inferred from float labels) against the default objective:
    targets = make_dataset("user", x, y.astype(np.float32), xt, yt.astype(np.float32))
    assert targets.label_kind == "targets" and targets.num_classes == 1
    with pytest.raises(ValueError, match="config.objective='classification' is invalid.*"
                                         "one for targets, e.g. 'regression' .*"
                                         "real-valued targets.*needs classes"):
        sbj.run_lr_sweep(_config(), str(tmp_path / "run"), model=MLP(), data=targets)
    assert not (tmp_path / "run").exists()


def test_augmentation_is_for_images_only(tmp_path):
    with pytest.raises(ValueError, match="config.augment=True .*inputs are features"):
        sbj.run_lr_sweep(_config(augment=True), str(tmp_path), model=MLP(), data=_features())
    # Nor for labels per position (a segmentation's masks): the images would move, not them.
    rng = np.random.default_rng(0)
    images, masks = rng.normal(size=(40, 8, 8, 3)), rng.integers(0, 2, (40, 8, 8))
    with pytest.raises(ValueError, match=r"config.augment=True is invalid; allowed: False for "
                                         r"user's labels per position \(8, 8\): the "
                                         r"augmentation crops and flips the images, not"):
        sbj.run_lr_sweep(_config(augment=True), str(tmp_path), model=MLP(),
                         data=(images[:30], masks[:30], images[30:], masks[30:]))
    assert not os.path.exists(tmp_path / "config.json")


def test_a_regression_with_a_lower_is_better_metric_end_to_end(tmp_path):
    """Real-valued targets, squared error and its test mean (lower is better): the rows name
    the metric and its direction, the summary's best is the smallest error, and the batch
    sweep's figures are written."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)).astype(np.float32)
    y = (x @ rng.normal(size=6) + 0.1 * rng.normal(size=500)).astype(np.float32)
    config = _config(batch_sizes=(8, 32), base_lrs=(2.0**-12, 2.0**-9, 2.0**-6))
    rows = sbj.run_batch_sweep(config, str(tmp_path / "sweep"), model=MLP(num_classes=1),
                               data=(x[:400], y[:400], x[400:], y[400:]),
                               objective=sbj.REGRESSION)
    assert {(r["metric"], r["higher_is_better"]) for r in rows} == {("mse", False)}
    errors = {(r["batch_size"], r["base_lr"]): r["median_test_metric"] for r in rows
              if np.isfinite(r["median_test_metric"])}  # (the largest η diverge)
    assert len(errors) >= 4 and all(v >= 0 for v in errors.values())
    best = min(errors, key=errors.get)
    assert errors[best] < 0.5 * np.var(y[400:])  # learned: well below predicting the mean
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert (f"Best: m = {best[0]}, η̃ = 2^{np.log2(best[1]):g}, mse {errors[best]:.4f}"
            in summary), summary
    assert "mse ≤ best + 0.02·|best|" in summary and "lower is better" in summary
    assert (tmp_path / "sweep" / "figures" / "mse_vs_lr.png").is_file()  # named for it
    assert not (tmp_path / "sweep" / "figures" / "accuracy_vs_lr.png").exists()
    config_json = (tmp_path / "sweep" / "m8" / "config.json").read_text()
    assert '"objective": "regression"' in config_json


def test_a_regression_on_targets_far_from_unit_scale_trains_and_reports_their_units(tmp_path):
    """scikit-learn's diabetes (targets of mean 152, std 77; shipped, no download): with its
    targets used as they are, nearly every lane blew up at the η̃ that suit unit-scale
    targets, and a finite loss of 5e16 counted as trained. Standardized (the default), the
    lanes train; the reported mse is in the targets' units, better than predicting their
    mean; and no lane is reported with an error a blow-up would give."""
    from sklearn.datasets import load_diabetes

    x, y = (a.astype(np.float32) for a in load_diabetes(return_X_y=True))
    data = (x[:350], y[:350], x[350:], y[350:])
    lrs = tuple(2.0**k for k in (-12, -10, -8, -6))
    config = _config(batch_size=8, epochs=2, base_lrs=lrs)
    rows = sbj.run_lr_sweep(config, str(tmp_path / "standardized"), model=MLP(num_classes=1),
                            data=data, objective=sbj.REGRESSION)
    errors = [r["median_test_metric"] for r in rows]
    assert np.isfinite(errors).all(), errors
    assert min(errors) < 0.75 * np.var(y[350:])  # learned, in the targets' units
    assert min(errors) > 0.2 * np.var(y[350:])  # (not standardized units: σ² = 5900× less)
    config = _config(batch_size=8, epochs=2, base_lrs=lrs + (2.0**-4, 2.0**-2),
                     standardize=False)
    rows = sbj.run_lr_sweep(config, str(tmp_path / "raw"), model=MLP(num_classes=1),
                            data=data, objective=sbj.REGRESSION)
    diverged = [r for r in rows if r["diverged_step"] >= 0]
    assert diverged and all(np.isnan(r["median_test_metric"]) for r in diverged)
    assert all(r["median_test_metric"] < 10 * np.var(y) for r in rows
               if np.isfinite(r["median_test_metric"]))


def test_a_user_objective_by_import_path_and_its_errors(tmp_path):
    config = _config(objective="smallbatch_jax.objectives:REGRESSION")
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(120, 4)).astype(np.float32), rng.normal(size=120).astype(np.float32)
    rows = sbj.run_lr_sweep(config, str(tmp_path / "run"), model=MLP(num_classes=1),
                            data=(x[:100], y[:100], x[100:], y[100:]))
    assert rows[0]["metric"] == "mse" and rows[0]["higher_is_better"] is False
    for objective, message in [("nope", r"config.objective='nope' is unknown"),
                               ("json:dumps", "is a function, not a smallbatch_jax.Objective")]:
        with pytest.raises(ValueError, match=message):
            sbj.run_lr_sweep(_config(objective=objective), str(tmp_path / "bad"), model=MLP(),
                             data=_features())


def test_from_python_the_api_sets_the_process_up_like_the_command_line(tmp_path):
    """A fresh Python process: the lanes dealt over one CPU device per core, the compiled
    programs kept in the cache, each epoch logged with its ETA (absl shows only warnings in
    a program that did not start through absl.app)."""
    script = MLP_SOURCE + f'''
import json, numpy as np, smallbatch_jax as sbj
from sklearn.datasets import make_classification
x, y = make_classification(300, 8, n_informative=4, n_classes=3, random_state=0)
x = x.astype(np.float32)
config = sbj.load_config({os.path.join(REPO_ROOT, "configs", "default.py")!r})
config.epochs, config.batch_size, config.base_lrs = 2, 16, (2.0**-8, 2.0**-6, 2.0**-4)
sbj.run_lr_sweep(config, {str(tmp_path / "run")!r}, model=MLP(),
                 data=(x[:200], y[:200], x[200:], y[200:]),
                 compilation_cache={str(tmp_path / "cache")!r})
'''
    env = {k: v for k, v in os.environ.items()
           if k not in ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS") and not k.startswith("JAX_")}
    done = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    cores = len(os.sched_getaffinity(0))
    assert len(recorded["provenance"]["devices"]) == cores
    assert any((tmp_path / "cache").iterdir())  # programs kept
    assert "epoch 1/2" in done.stderr and "ETA" in done.stderr


def test_a_process_whose_jax_started_first_is_told_once(caplog, monkeypatch):
    from smallbatch_jax import api

    monkeypatch.setattr(api, "_told_about_devices", False)
    with caplog.at_level("WARNING"):
        sbj.set_up_process()
        sbj.set_up_process()
    cores = len(os.sched_getaffinity(0))
    told = caplog.text.count("JAX started before smallbatch_jax could ask")
    assert told == (1 if cores > jax.local_device_count() else 0)


def test_a_grid_over_learning_rate_and_weight_decay_from_python(tmp_path):
    """η̃ × λ as lanes of each m's program: results.csv holds every lane's λ, summary.md the
    joint best per m; sweeping what the optimizer has not is refused before any compute."""
    config = _config(batch_sizes=(8, 32), base_lrs=(2.0**-8, 2.0**-5))
    config.sweep.weight_decay = (0.0, 5e-3)
    rows = sbj.run_batch_sweep(config, str(tmp_path / "sweep"), model=MLP(), data=_features())
    assert len(rows) == 2 * 2 * 2
    assert sorted((r["batch_size"], r["base_lr"], r["weight_decay"]) for r in rows) == sorted(
        (m, lr, wd) for m in (8, 32) for lr in (2.0**-8, 2.0**-5) for wd in (0.0, 5e-3))
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert "weight_decay ∈ {0, 0.005}" in summary and "spread over weight_decay" in summary
    config = _config()
    config.sweep.momentum = (0.0, 0.9)  # plain SGD has none
    with pytest.raises(ValueError, match=r"config.sweep.momentum=\(0.0, 0.9\).*optimizer='sgd'"):
        sbj.run_lr_sweep(config, str(tmp_path / "refused"), model=MLP(), data=_features())
    assert not (tmp_path / "refused").exists()
    config = _config()
    config.sweep.weight_decay = (0.0, -1e-4)
    with pytest.raises(ValueError, match="config.sweep.weight_decay"):
        sbj.run_lr_sweep(config, str(tmp_path / "refused"), model=MLP(), data=_features())


def test_a_grid_over_gradient_clipping_norms_from_python(tmp_path):
    """config.sweep.grad_clip: norms as lanes beside η̃ (0: that lane unclipped), each lane's
    norm in results.csv and the recommended setting stated with it; a run that does not clip
    leaves the column blank (as tables from before it: they merge); a negative norm is
    refused before any compute, and a run saved before the key existed is still finished."""
    config = _config(batch_size=8, base_lrs=(2.0**-5,))
    config.sweep.grad_clip = (0.0, 0.05)
    rows = sbj.run_lr_sweep(config, str(tmp_path / "clip"), model=MLP(), data=_features())
    assert [r["grad_clip"] for r in rows] == [0.0, 0.05]
    assert rows[0]["final_train_loss"] != rows[1]["final_train_loss"]
    unclipped = sbj.run_lr_sweep(_config(batch_size=8, base_lrs=(2.0**-5,)),
                                 str(tmp_path / "plain"), model=MLP(), data=_features())
    assert unclipped[0]["grad_clip"] == ""
    # (The unclipped lane of the clipping program trains as the program without clipping.)
    assert unclipped[0]["final_train_loss"] == pytest.approx(rows[0]["final_train_loss"],
                                                             rel=1e-5)
    from smallbatch_jax.study.recommend import optimizer_setting
    table = [dict(r, median_test_metric=v) for r, v in zip(rows, (0.5, 0.9))]
    assert "gradients clipped to global norm 0.05" in optimizer_setting(table, 8, 2.0**-5)
    config = _config()
    config.grad_clip = -1.0
    with pytest.raises(ValueError, match=r"config.grad_clip=-1.0.*a global norm > 0, or 0"):
        sbj.run_lr_sweep(config, str(tmp_path / "refused"), model=MLP(), data=_features())
    config = _config()
    config.sweep.grad_clip = (0.0, -0.5)
    with pytest.raises(ValueError, match=r"config.sweep.grad_clip"):
        sbj.run_lr_sweep(config, str(tmp_path / "refused"), model=MLP(), data=_features())
    assert not (tmp_path / "refused").exists()
    # A run saved before grad_clip was a key: its config.json without it is the same run.
    saved = json.loads((tmp_path / "plain" / "config.json").read_text())
    del saved["config"]["grad_clip"], saved["config"]["sweep"]["grad_clip"]
    (tmp_path / "plain" / "config.json").write_text(json.dumps(saved))
    again = sbj.run_lr_sweep(_config(batch_size=8, base_lrs=(2.0**-5,)),
                             str(tmp_path / "plain"), model=MLP(), data=_features())
    assert again[0]["final_train_loss"] == unclipped[0]["final_train_loss"]


def test_a_non_product_design_of_explicit_points(tmp_path):
    """sweep.points: (λ, μ) ∈ {(5e-3, 0.9), (0, 0.5)}, crossed with η̃ (not the four of the
    product); results.csv holds exactly those settings; malformed points are refused before
    any compute, naming what is wrong."""
    config = _config(batch_sizes=(8,), base_lrs=(2.0**-8, 2.0**-5))
    config.optimizer, config.momentum = "momentum", 0.9
    config.sweep.points = ({"weight_decay": 5e-3, "momentum": 0.9},
                           {"weight_decay": 0.0, "momentum": 0.5})
    rows = sbj.run_batch_sweep(config, str(tmp_path / "points"), model=MLP(), data=_features())
    assert sorted((r["base_lr"], r["weight_decay"], r["momentum"]) for r in rows) == sorted(
        (lr, wd, mu) for lr in (2.0**-8, 2.0**-5) for wd, mu in ((5e-3, 0.9), (0.0, 0.5)))
    for points, why in [
            (({"base_lr": 0.1},), "η̃ is always the grid of base_lrs"),
            (({"weight_decay": 0.0}, {"momentum": 0.9}), "the same keys"),
            (({"weight_decay": 0.0}, {"weight_decay": 0.0}), "distinct settings"),
            (({"weight_decay": -1.0},), "numbers >= 0"),
            ((0.1, 0.2), "a tuple of settings")]:
        config.sweep.points = points
        with pytest.raises(ValueError, match=why):
            sbj.run_lr_sweep(config, str(tmp_path / "refused"), model=MLP(), data=_features())
    config.sweep.points = ({"weight_decay": 0.0},)
    config.sweep.weight_decay = (0.0, 5e-4)
    with pytest.raises(ValueError, match="where sweep.points sets weight_decay"):
        sbj.run_lr_sweep(config, str(tmp_path / "refused"), model=MLP(), data=_features())
    config = _config()
    config.sweep.points = ({"momentum": 0.9},)  # plain SGD has none
    with pytest.raises(ValueError, match="no momentum for optimizer='sgd'"):
        sbj.run_lr_sweep(config, str(tmp_path / "refused"), model=MLP(), data=_features())
    assert not (tmp_path / "refused").exists()


def test_a_rerun_after_the_model_or_data_changed_is_refused_not_answered_with_old_results(
        tmp_path, monkeypatch):
    """config.model names a user's model by its class, config.dataset a user's data as
    'user': a notebook rerun in the same workdir with the hidden width, the data or the
    metric changed returned the finished run's results as the new ones' ("finished already;
    nothing to train", at INFO). Their digests are recorded with the config now."""
    import jax.numpy as jnp
    import optax

    from smallbatch_jax.objectives import Objective
    from smallbatch_jax.run import train

    class Net(nn.Module):
        hidden: int = 8

        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(3)(nn.relu(nn.Dense(self.hidden)(x)))

    loss = optax.softmax_cross_entropy_with_integer_labels
    accuracy = Objective(loss, lambda o, y: (jnp.argmax(o, -1) == y).astype(jnp.float32))
    config, data, workdir = _config(epochs=1), _features(n=300), str(tmp_path)
    rows = sbj.run_lr_sweep(config, workdir, model=Net(), data=data, objective=accuracy)
    # (A user's objective gives no baseline: its metric of the class frequencies stands in.)
    from smallbatch_jax.objectives import majority_class_accuracy
    assert float(rows[0]["baseline_test_metric"]) == pytest.approx(
        majority_class_accuracy(data[1], data[3]))
    # The best constant prediction on the test split: its own most frequent class.
    assert float(rows[0]["best_constant_test_metric"]) == pytest.approx(
        np.bincount(data[3]).max() / len(data[3]))
    recorded = json.load(open(tmp_path / "config.json"))["config"]["fingerprints"]
    assert set(recorded) == {"model", "model_structure", "data", "objective"}
    monkeypatch.setattr(train, "create_run", lambda *a: pytest.fail("trained again"))
    same = sbj.run_lr_sweep(config, workdir, model=Net(), data=_features(n=300),
                            objective=accuracy)
    assert [r["final_train_loss"] for r in same] == [r["final_train_loss"] for r in rows]
    top_2 = Objective(loss, lambda o, y: (jnp.argsort(o, -1)[:, -2:] == y[:, None]).any(-1)
                      .astype(jnp.float32))  # (named 'accuracy' too)
    changed = {"model": dict(model=Net(hidden=16), data=data, objective=accuracy),
               "data": dict(model=Net(), data=_features(n=300, seed=1), objective=accuracy),
               "objective": dict(model=Net(), data=data, objective=top_2)}
    for what, given in changed.items():
        with pytest.raises(ValueError, match=rf"differing keys: .*fingerprints\.{what}: .*"
                                             r"digests of the model, objective or data you gave"):
            sbj.run_lr_sweep(config, workdir, **given)
    # A width set outside the model's class (a helper module's, read at call time) changed
    # neither its repr nor its source: the 2-wide run's results came back as a 64-wide one's.
    # The shapes of its variables and the sources of the modules it calls are digested too.
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.relu(nn.Dense(Block.width)(x))

    class Stacked(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(3)(Block()(x))

    monkeypatch.undo()  # (training again)
    Block.width = 2
    sbj.run_lr_sweep(config, str(tmp_path / "helper"), model=Stacked(), data=data)
    Block.width = 64
    with pytest.raises(ValueError, match=r"differing keys: fingerprints\.model_structure: "):
        sbj.run_lr_sweep(config, str(tmp_path / "helper"), model=Stacked(), data=data)


def test_a_validation_split_is_chosen_on_and_the_test_split_never_read(tmp_path):
    """config.validation holds a share of the training set out and every evaluation reads
    it: with the test split's labels all wrong (shifted by one class), the rows still show
    the accuracy a learnable problem gets, and say where they were measured; a rerun in
    the same workdir on the test split is another run, refused naming the key. Every m of a
    sweep holds out the same split (the second m once held out of the first's training part:
    fewer steps, a smaller split)."""
    x, y, xt, yt = _features(n=600)
    data = (x, y, xt, (yt + 1) % 3)  # every test label wrong
    config = _config(epochs=4, base_lrs=(2.0**-5, 2.0**-3), validation=0.25,
                     batch_sizes=(16, 8))
    rows = sbj.run_batch_sweep(config, str(tmp_path), model=MLP(), data=data)
    assert not (tmp_path / "test_run").exists()  # (only the recommendation trains for it)
    assert {r["evaluated_on"] for r in rows} == {"validation"}
    assert min(max(r["median_test_metric"] for r in rows if r["batch_size"] == m)
               for m in (8, 16)) > 0.7
    held = sum(round(0.25 * np.sum(y == c)) for c in range(3))  # stratified per class
    assert {(r["batch_size"], r["steps"]) for r in rows} == {
        (m, 4 * ((len(y) - held) // m)) for m in (8, 16)}
    # The constant prediction's score is the validation split's, from the kept training part.
    from smallbatch_jax.data import hold_out, make_dataset
    from smallbatch_jax.objectives import majority_class_accuracy
    split = hold_out(make_dataset("user", *data), 0.25)
    assert [r["baseline_test_metric"] for r in rows] == pytest.approx(
        [majority_class_accuracy(split.train_labels, split.test_labels)] * len(rows))
    with pytest.raises(ValueError, match=r"validation: 0\.25 → 0\.0"):
        sbj.run_batch_sweep(_config(epochs=4, base_lrs=(2.0**-5, 2.0**-3), batch_sizes=(16, 8)),
                            str(tmp_path), model=MLP(), data=data)
    # The recommendation then trains its choice on the whole training set for the test split
    # (whose labels are all wrong here: a low figure is the test split read), once; not once
    # its budget is spent (the sweep's batch sizes were all done: a call that only reports).
    cut = sbj.recommend_batch_size(config, str(tmp_path), model=MLP(), data=data,
                                   budget_minutes=1e-9)
    assert "On the test split" not in cut and not (tmp_path / "test_run").exists()
    text = sbj.recommend_batch_size(config, str(tmp_path), model=MLP(), data=data)
    (tested,) = (tmp_path / "test_run").iterdir()
    test_rows = results.read_csv(tested / "results.csv")
    m = int(re.search(r"\*\*m = (\d+), η̃", text).group(1))
    assert {(r["evaluated_on"], r["batch_size"], r["steps"]) for r in test_rows} == {
        ("test", m, 4 * (len(y) // m))}
    assert [r["baseline_test_metric"] for r in test_rows] == pytest.approx(
        [majority_class_accuracy(y, (yt + 1) % 3)] * len(test_rows))
    figure = re.search(r"\*\*On the test split\*\*, the setting trained once on the whole "
                       r"training set \(test_run/; the test split read this once\): accuracy "
                       r"([0-9.]+); on the validation split it was chosen on: ([0-9.]+)\.", text)
    assert float(figure.group(1)) == pytest.approx(test_rows[0]["median_test_metric"], abs=1e-4)
    assert float(figure.group(1)) < 0.3 < 0.7 < float(figure.group(2))
    assert "The test figure below is this setting trained once more on the whole" in text
    assert sbj.recommend_batch_size(config, str(tmp_path), model=MLP(), data=data) == text
    # Redrawn by experiments.plot, the report keeps its test figure (read from test_run/).
    from smallbatch_jax.study.batch_sweep import write_recommendation
    rewritten = write_recommendation(str(tmp_path), results.read_raw(tmp_path / "results.csv"),
                                     config.reliable_tolerance)
    assert open(rewritten).read() == text


def test_a_users_own_validation_split_is_evaluated_on_and_trained_on_at_zero(tmp_path):
    """make_dataset(..., validation=...) from the API: config.validation > 0 trains on the
    rest and evaluates on that split; 0 trains on all of it (as the test run does)."""
    x, y, xt, yt = _features(n=600)
    data = sbj.make_dataset("mine", x[:300], y[:300], xt, yt, validation=(x[300:], y[300:]))
    held = sbj.run_lr_sweep(_config(epochs=1, validation=0.1), str(tmp_path / "held"),
                            model=MLP(), data=data)
    assert {(r["evaluated_on"], r["steps"]) for r in held} == {("validation", 300 // 16)}
    whole = sbj.run_lr_sweep(_config(epochs=1), str(tmp_path / "whole"), model=MLP(), data=data)
    assert {(r["evaluated_on"], r["steps"]) for r in whole} == {("test", 400 // 16)}


def test_a_process_in_jax_64_bit_mode_trains_the_same_lanes(tmp_path):
    """A notebook with jax_enable_x64 on (common in scientific code) failed in the first
    epoch: the lanes' divergence step, int32 in the state, came back int64 from the step
    ("the input carry component ... has type int32[1] but the corresponding output carry
    component has type int64[1]"). The same run now trains, to the same numbers (a model
    without dropout: a dropout model's masks are drawn otherwise in 64-bit mode)."""
    import jax

    class Dense(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(3)(nn.relu(nn.Dense(32)(x)))

    data = _features(n=300)
    plain = sbj.run_lr_sweep(_config(), str(tmp_path / "x32"), model=Dense(), data=data)
    with jax.enable_x64(True):
        wide = sbj.run_lr_sweep(_config(), str(tmp_path / "x64"), model=Dense(), data=data)
    assert [r["final_train_loss"] for r in wide] == [r["final_train_loss"] for r in plain]
