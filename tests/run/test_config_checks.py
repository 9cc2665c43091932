import os
import re

import pytest
from ml_collections import ConfigDict

from conftest import ALL_CONFIGS, REPO_ROOT, parse
from smallbatch_jax.engine.strategy import PRESETS, Strategy, choose_strategy
from smallbatch_jax.run.config_checks import check_config, strategy_choice
from smallbatch_jax.run.train import train_and_evaluate

def test_there_are_configs():
    assert len(ALL_CONFIGS) >= 4


@pytest.mark.parametrize("config_arg", ALL_CONFIGS, ids=os.path.basename)
def test_every_config_loads_and_passes_the_checks(config_arg):
    config = parse(f"--config={config_arg}")
    check_config(config)


def test_command_line_overrides_apply():
    config = parse(f"--config={REPO_ROOT}/configs/default.py", "--config.batch_size=16",
                   "--config.base_lrs=(0.5, 0.25)", "--config.warmup=0.05",
                   "--config.strategy.steps_per_dispatch=4", "--config.model=small_cnn_bn")
    assert config.batch_size == 16 and tuple(config.base_lrs) == (0.5, 0.25)
    assert config.warmup == 0.05 and config.strategy.steps_per_dispatch == 4
    assert config.model == "small_cnn_bn"


def test_unknown_keys_are_rejected():
    with pytest.raises(Exception, match="learning_rate"):
        parse(f"--config={REPO_ROOT}/configs/default.py", "--config.learning_rate=0.1")


BAD_INPUTS = [
    ("model", "vgg", "config.model='vgg'.*allowed.*alexnet"),
    ("dataset", "imagenet21k", "config.dataset='imagenet21k'.*allowed.*digits"),
    ("dataset", "mine.npz", r"a file is given as --config.dataset=npz "
                            r"--config.data_dir=mine\.npz"),
    ("batch_size", 0, "config.batch_size=0.*positive integer"),
    ("batch_size", -4, "config.batch_size=-4"),
    ("batch_size", 100_000, "config.batch_size=100000.*at most the 1438 training examples"),
    ("bn_batch_size", 3, "config.bn_batch_size=3.*divisor of batch_size=8"),
    ("bn_batch_size", -2, "config.bn_batch_size=-2"),
    ("base_lrs", (), r"config.base_lrs=\(\).*non-empty"),
    ("base_lrs", (0.1, 0.0), "config.base_lrs=.*positive finite"),
    ("base_lrs", (0.1, -1.0), "config.base_lrs=.*positive finite"),
    ("base_lrs", (float("nan"),), "config.base_lrs=.*positive finite"),
    ("epochs", 0, "config.epochs=0.*positive integer"),
    ("epochs", -3, "config.epochs=-3"),
    ("warmup", 1.0, r"config.warmup=1.0.*\[0, 1\)"),
    ("warmup", -0.1, "config.warmup=-0.1"),
    ("weight_decay", -1e-4, "config.weight_decay"),
    ("momentum", 1.0, "config.momentum=1.0"),
    ("momentum", 0.9, r"config.momentum=0.9 .*0 for optimizer='sgd'.*optimizer='momentum'"),
    ("optimizer", "lamb", r"config.optimizer='lamb'.*'sgd', 'momentum', 'adam', 'adamw'"),
    ("lr_scaling", "cubic", r"config.lr_scaling='cubic'.*'linear', 'sqrt', 'none'"),
    ("nesterov", True, r"config.nesterov=True .*with optimizer='momentum'"),
    ("adam.beta2", 1.0, r"config.adam.beta2=1.0 .*\(0, 1\)"),
    ("adam.beta2_rule", "steps", r"config.adam.beta2_rule='steps'.*per_example"),
    ("adam.beta2_batch_size", 0, r"config.adam.beta2_batch_size=0"),
    ("num_seeds", 0, "config.num_seeds=0"),
    ("lr_decay_points", (0.5, 1.5), "config.lr_decay_points"),
    ("eval_batch_size", 0, "config.eval_batch_size=0"),
    ("last_epochs", 0, "config.last_epochs=0"),
    ("evals_per_epoch", 0, "config.evals_per_epoch=0.*positive integer"),
    ("evals_per_epoch", 500, "config.evals_per_epoch=500.*at most the 179 steps of an epoch "
                             "at m = 8"),
    ("memory_budget_gb", -1.0, "config.memory_budget_gb=-1.0"),
    ("precision", "tf32", "config.precision='tf32'.*allowed.*highest"),
    ("validation", 1.0, r"config.validation=1.0 .*in \[0, 1\) to hold out"),
    ("validation", -0.1, r"config.validation=-0.1 "),
    ("validation", 0.999, r"config.validation=0.999 of its 1438 training examples holds out "
                          r"1438 and keeps 0: both must be at least one"),
    # An accuracy target in percent: never reached, every m "not reached" without a word.
    ("target", 94.0, r"config.target=94.0 .*an accuracy in \[0, 1\], e.g. 0.94 for 94%"),
    ("target", -0.5, r"config.target=-0.5 "),
]


@pytest.mark.parametrize("key,value,message", BAD_INPUTS, ids=[f"{k}={v}" for k, v, _ in BAD_INPUTS])
def test_bad_input_raises_before_any_compute(tmp_path, key, value, message):
    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    *parents, last = key.split(".")
    with config.unlocked():
        node = config
        for parent in parents:
            node = node[parent]
        node[last] = value
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match=message):
        train_and_evaluate(config, str(workdir))
    assert not workdir.exists()  # nothing was written, nothing was trained


@pytest.mark.parametrize("key,value", [("preset", "fastest"), ("lane_map", "pmap"),
                                       ("conv", "fft"), ("step_loop", "while")])
def test_bad_strategy_raises(key, value):
    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    config.strategy[key] = value
    if key != "preset":
        config.strategy.preset = "manual"
    with pytest.raises(ValueError, match=f"config.strategy.{key}"):
        check_config(config)


def test_a_field_that_auto_would_ignore_raises_before_any_compute(tmp_path):
    """`--config.strategy.lanes_per_program=4` with preset 'auto' used to do nothing."""
    config = parse(f"--config={REPO_ROOT}/configs/default.py",
                   "--config.strategy.lanes_per_program=4")
    with pytest.raises(ValueError, match="strategy.lanes_per_program=4 is set.*'manual'"):
        train_and_evaluate(config, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_missing_measured_strategy_table_raises(tmp_path):
    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    config.strategy.table = str(tmp_path / "nowhere.json")
    with pytest.raises(ValueError, match="config.strategy.table=.*nowhere.json.*measured"):
        train_and_evaluate(config, str(tmp_path / "run"))


def test_a_streamed_data_set_refuses_what_its_pipeline_cannot_do(tmp_path):
    """ImageNet's host pipeline standardizes on the device with the data set's statistics
    and augments on the host: standardize=False (once silently ignored) and augment=True
    are refused before its data are looked for; so is a validation split held out of it."""
    for key, value, message in (("standardize", False, "config.standardize=False.*streamed"),
                                ("augment", True, "config.augment=True.*host pipeline"),
                                ("validation", 0.1, r"config.validation=0.1 .*0 for "
                                                    r"imagenet2012 \(streamed")):
        config = parse(f"--config={REPO_ROOT}/configs/resnet50_imagenet.py")
        with config.unlocked():
            config[key] = value
        with pytest.raises(ValueError, match=message):
            train_and_evaluate(config, str(tmp_path / "run"))
        assert not (tmp_path / "run").exists()


def test_precision_bf16_passes_and_an_unknown_precision_names_the_allowed_ones():
    config = parse(f"--config={REPO_ROOT}/configs/default.py", "--config.precision=bf16")
    assert config.precision == "bf16"
    check_config(config)
    config.precision = "fp8"
    with pytest.raises(ValueError, match=r"config.precision='fp8'.*allowed.*"
                                         r"\('default', 'high', 'highest', 'bf16'\)"):
        check_config(config)


def _section(**fields):
    return ConfigDict({"preset": "auto", "table": "", **Strategy().__dict__, **fields})


def test_fields_with_another_preset_than_manual_conflict():
    """A field set while a preset chooses the fields would be silently ignored: it raises."""
    with pytest.raises(ValueError, match="strategy.lanes_per_program=4 is set.*'manual'"):
        strategy_choice(_section(lanes_per_program=4))
    with pytest.raises(ValueError, match="strategy.conv='patches' is set"):
        strategy_choice(_section(preset="sequential", conv="patches"))
    manual = strategy_choice(_section(preset="manual", lanes_per_program=4))
    assert manual.fields.lanes_per_program == 4
    with pytest.raises(ValueError, match="config.strategy.preset='fastest'"):
        strategy_choice(_section(preset="fastest"))
    with pytest.raises(ValueError, match="config.strategy.lane_map='pmap'"):
        strategy_choice(_section(preset="manual", lane_map="pmap"))


def test_the_config_names_the_strategy():
    resolved = lambda m, backend, **fields: strategy_choice(_section(**fields)).resolve(
        m, 13, backend, 1)
    assert resolved(2, "cpu") == choose_strategy("cpu", 2)
    assert resolved(2, "cpu", preset="sequential") == PRESETS["sequential"]
    manual = resolved(2, "gpu", preset="manual", conv="shifted", scan_unroll=2)
    assert manual == Strategy(conv="shifted", scan_unroll=2)


def test_the_share_is_checked():
    for share in (0, -0.1, 1.5, "0.1", True):
        with pytest.raises(ValueError, match="tune_share"):
            strategy_choice(_section(preset="tune", tune_share=share))
    assert strategy_choice(_section(preset="tune", tune_share=0.25)).tune_share == 0.25


@pytest.mark.parametrize("model, message", [
    ("alexnet", r"which has no BatchNorm \(alexnet_bn, alexnet_bn_conv have it\)"),
    ("resnet8_nobn", r"which has no BatchNorm \(resnet8 has it\)"),
    ("smallbatch_jax.diagnostics.zoo:plain_cnn_bn", r"yours normalizes as it is written"),
])
def test_ghost_batch_norm_is_refused_where_it_would_not_apply(model, message):
    """m_BN < m reaches the built-in models' BatchNorm only: a model without BatchNorm, or a
    user's (whose nn.BatchNorm normalizes the whole batch), would train with m_BN = m while
    results.csv said m_BN: refused, naming the key."""
    from smallbatch_jax.run.build import prepare

    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.model, config.batch_size, config.bn_batch_size = model, 16, 4
        config.dataset = "digits"
    with pytest.raises(ValueError, match=r"config\.bn_batch_size=4 is invalid; allowed: 0 for "
                       rf"model {re.escape(model)}\W.*" + message):
        prepare(config)
    with config.unlocked():
        config.bn_batch_size = 16  # = m: the whole batch, what every model does
    assert prepare(config).model.bn_batch_size == 16


def _user_features(n: int = 60, features: int = 8, classes: int = 4):
    """A user's small data set of flat features (the last 10 examples its test split)."""
    import numpy as np

    from smallbatch_jax.data import make_dataset

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, features)).astype(np.float32), rng.integers(0, classes, n)
    return make_dataset("user", x[:n - 10], y[:n - 10], x[n - 10:], y[n - 10:])


def _user_config(**overrides):
    """The default config naming a user's data set, at m = 8."""
    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.dataset, config.batch_size = "user", 8
        config.update(overrides)
    return config


def test_a_classifier_that_ends_in_a_softmax_is_refused():
    """The loss applies its own softmax: a user's model returning probabilities would train
    on the softmax of probabilities (0.49 and 0.64 accuracy where its logits gave 0.85 and
    0.94 on a 4-class toy), a wrong answer without an error. Log-probabilities are fine."""
    import flax.linen as nn

    from smallbatch_jax.run.build import prepare

    class Classifier(nn.Module):
        last: str = "logits"

        @nn.compact
        def __call__(self, x, train):
            logits = nn.Dense(4)(nn.relu(nn.Dense(16)(x)))
            return {"logits": logits, "softmax": nn.softmax(logits),
                    "log_softmax": nn.log_softmax(logits)}[self.last]

    data, config = _user_features(), _user_config()
    with pytest.raises(ValueError, match=r"outputs look like probabilities .* without the "
                                         r"softmax \(log-softmax is fine\)"):
        prepare(config, data, model=Classifier("softmax"))
    for fine in ("logits", "log_softmax"):
        assert prepare(config, data, model=Classifier(fine)).model.user is not None


def test_a_user_objective_must_give_one_value_per_example():
    """A metric returning the batch's mean accuracy (shape ()) was summed once per test
    example, the last batch's padding included: 0.826 where the same accuracy per example
    gave 0.883 (digits), with no error; a (batch, 1) would broadcast against the mask."""
    import flax.linen as nn
    import jax.numpy as jnp
    import numpy as np
    import optax

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.objectives import REGRESSION, Objective
    from smallbatch_jax.run.build import prepare

    class Net(nn.Module):
        outputs: int = 4

        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(self.outputs)(x)

    data, config = _user_features(), _user_config()
    loss = optax.softmax_cross_entropy_with_integer_labels
    correct = lambda o, y: (jnp.argmax(o, -1) == y).astype(jnp.float32)
    assert prepare(config, data, model=Net(), objective=Objective(loss, correct, "acc"))
    for metric, shape in ((lambda o, y: correct(o, y).mean(), r"\(\)"),
                          (lambda o, y: correct(o, y)[:, None], r"\(8, 1\)")):
        with pytest.raises(ValueError, match=rf"the objective's metric \(acc\) returns {shape} "
                           r"for a batch of 8; it must return one value per example, shape "
                           r"\(8,\).* \(jnp.argmax\(outputs, -1\) == labels\)"):
            prepare(config, data, model=Net(), objective=Objective(loss, metric, "acc"))
    with pytest.raises(ValueError, match=r"the objective's loss returns \(\) for .*"
                                         r"softmax_cross_entropy_with_integer_labels"):
        prepare(config, data, model=Net(), objective=Objective(
            lambda o, y: loss(o, y).mean(), correct, "acc"))
    with pytest.raises(ValueError, match=r"the objective's metric cannot take the model's "
                                         r"outputs \(8, 4\) and labels \(8,\) \(TypeError"):
        prepare(config, data, model=Net(), objective=Objective(
            loss, lambda o, y: o @ jnp.ones((3,)) + y, "acc"))
    # A regression objective of the user's, on (N, 2) targets: per example, passes.
    rng = np.random.default_rng(1)
    targets = make_dataset("user", data.train_images, rng.normal(size=(50, 2)),
                           data.test_images, rng.normal(size=(10, 2)), labels="targets")
    mine = Objective(REGRESSION.loss, REGRESSION.metric, "sse", False, "targets")
    assert prepare(config, targets, model=Net(2), objective=mine)


def test_a_model_that_drops_out_when_evaluated_is_told_how_to_fix_it():
    """nn.Dropout(deterministic=False) failed with Flax's bare "Dropout_0 needs PRNG for
    'dropout'", read as the tool not giving the stream; it is the evaluation that has none."""
    import flax.linen as nn

    from smallbatch_jax.run.build import prepare

    class Net(nn.Module):
        always: bool = True

        @nn.compact
        def __call__(self, x, train):
            x = nn.Dropout(0.5, deterministic=not (train or self.always))(nn.Dense(8)(x))
            return nn.Dense(4)(x)

    data, config = _user_features(), _user_config()
    with pytest.raises(ValueError, match=r"draws random numbers when evaluated \(train=False: "
                                         r".*give nn.Dropout deterministic=not train"):
        prepare(config, data, model=Net())
    assert prepare(config, data, model=Net(always=False))


def test_augmenting_channels_first_images_is_refused():
    """(N, 3, 16, 16) images (a PyTorch loader's layout) were warned of, then augmented as
    (H, W, C) = (3, 16, 16): 3 rows cropped out of 11 padded ones, flipped along the height."""
    import flax.linen as nn
    import numpy as np

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.build import prepare

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(4)(x.reshape(len(x), -1))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3, 16, 16)).astype(np.float32), rng.integers(0, 4, 40)
    config = _user_config(augment=True)
    with pytest.raises(ValueError, match=r"config\.augment=True is invalid; allowed: False for "
                       r"user's images of shape \(3, 16, 16\) .* x\.transpose\(0, 2, 3, 1\)"):
        prepare(config, make_dataset("user", x[:30], y[:30], x[30:], y[30:]), model=Net())
    x = x.transpose(0, 2, 3, 1)
    assert prepare(config, make_dataset("user", x[:30], y[:30], x[30:], y[30:]), model=Net())


def test_a_model_with_non_finite_outputs_before_any_step_is_refused():
    """Token ids up to 59 into nn.Embed(50, …): JAX reads the ids out of range as NaN, every
    lane was reported diverged at step 0, and the report asked for a smaller η̃."""
    import flax.linen as nn
    import numpy as np

    from smallbatch_jax.data import make_dataset
    from smallbatch_jax.run.build import prepare

    class Bag(nn.Module):
        vocab: int = 50

        @nn.compact
        def __call__(self, x, train):
            return nn.Dense(2)(nn.Embed(self.vocab, 4)(x).mean(1))

    rng = np.random.default_rng(0)
    x = rng.integers(0, 60, size=(40, 6))
    x[:, 0] = 0  # (the largest id in one example only, beyond the first two)
    x[:, 1:] = np.minimum(x[:, 1:], 40)
    x[17, 3] = 59
    y = rng.integers(0, 2, 40)
    data, config = make_dataset("user", x[:30], y[:30], x[30:], y[30:]), _user_config()
    with pytest.raises(ValueError, match=r"non-finite outputs at initialization, on training "
                       r"examples, before any step .* ids span \[0, 59\]: an embedding needs "
                       r"at least 60 rows"):
        prepare(config, data, model=Bag())
    assert prepare(config, data, model=Bag(vocab=60))
