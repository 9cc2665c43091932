import re

import numpy as np
import pytest

from smallbatch_jax.data.dataset import channel_mean_std, hold_out, make_dataset


def test_channel_statistics_match_numpy_in_any_chunking():
    images = np.random.default_rng(0).integers(0, 256, (37, 5, 4, 3), dtype=np.uint8)
    pixels = images.reshape(-1, 3).astype(np.float64)
    for chunk in (1, 8, 37, 1000):
        mean, std = channel_mean_std(images, chunk=chunk)
        np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(std, pixels.std(axis=0), rtol=1e-9)


def test_non_finite_inputs_are_refused_when_the_data_set_is_made():
    """A NaN feature made every lane 'diverge' at its first step, blaming the learning rate."""
    x = np.ones((10, 3), np.float32)
    x[4, 1] = np.nan
    with pytest.raises(ValueError, match=r"train inputs hold 1 non-finite value"):
        make_dataset("nan", x, np.zeros(10, int), np.ones((4, 3), np.float32), np.zeros(4, int))


def test_training_labels_of_one_class_are_refused():
    """Labels read from a wrong column, all 0: trained and reported at accuracy 1.0 for every
    setting, and so for every m."""
    x = np.ones((10, 3), np.float32)
    with pytest.raises(ValueError, match=r"every training label is 0: a classifier has "
                                         r"nothing to learn from one class"):
        make_dataset("one", x, np.zeros(10, int), x[:4], np.arange(4) % 2)
    make_dataset("two", x, np.arange(10) % 2, x[:4], np.zeros(4, int))  # (a test split may)


def test_channels_first_images_are_named(caplog):
    """A PyTorch loader's (N, C, H, W) read as (N, H, W, C) would be 3 pixels high with 16
    channels, standardized per column: it trains without an error, so it is named."""
    rng = np.random.default_rng(0)
    make = lambda shape: make_dataset("mine", rng.integers(0, 255, (20,) + shape, np.uint8),
                                      rng.integers(0, 3, 20), rng.integers(0, 255, (5,) + shape,
                                                                           np.uint8),
                                      rng.integers(0, 3, 5))
    with caplog.at_level("WARNING"):
        make((16, 16, 3))
        make((8, 8, 1))
    assert "channels-first" not in caplog.text
    with caplog.at_level("WARNING"):
        make((3, 16, 16))
    assert "(20, 3, 16, 16) look channels-first" in caplog.text
    assert "x.transpose(0, 2, 3, 1)" in caplog.text


def test_integer_inputs_are_token_ids_and_negative_ones_are_named(caplog):
    """Integer features are not standardized (they are taken as token ids): the log says so,
    warns where they cannot be ids (negative), and ids beyond int32 are refused."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 20)
    make = lambda x: make_dataset("mine", x[:16], labels[:16], x[16:], labels[16:])
    with caplog.at_level("INFO"):
        tokens = make(rng.integers(0, 50, (20, 7)))
    assert tokens.input_kind == "tokens" and tokens.mean is None
    assert "integer inputs (16, 7) are taken as token ids in [0, 49]" in caplog.text
    assert "negative" not in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        make(rng.integers(-30, 30, (20, 7)))
    assert "hold negative values (down to -30)" in caplog.text
    assert "x.astype(np.float32)" in caplog.text
    with pytest.raises(ValueError, match=r"beyond int32"):
        make(np.full((20, 7), 2**40, np.int64))
    # Grayscale images without their channel axis (MNIST as keras loads it, uint8 (N, 28,
    # 28)): taken as token ids, unstandardized; warned, with the axis to add. With it, images.
    caplog.clear()
    pixels = rng.integers(0, 256, (20, 6, 6)).astype(np.uint8)
    with caplog.at_level("WARNING"):
        assert make(pixels).input_kind == "tokens"
    assert "integer inputs of shape (16, 6, 6) are taken as token ids" in caplog.text
    assert "add their channel axis, x[..., None]" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        images = make(pixels[..., None])
    assert images.input_kind == "images" and images.mean is not None and not caplog.text


@pytest.mark.parametrize("labels, kind, message", [
    (np.array(["cat", "dog", "bird"] * 20), None,
     r"labels are <U4, not numbers; class names\? .* np.unique\(y, return_inverse=True\)"),
    (np.eye(3, dtype=np.int64)[np.arange(60) % 3], "classes",
     r"got \(50, 8\) and \(50, 3\); the labels look one-hot: pass y.argmax\(-1\)"),
    ((np.arange(60) % 3).astype(np.float64), "classes",
     r"got float64 of whole values: pass y.astype\(int\)"),
    (np.arange(60) % 2 == 0, "classes", r"got bool of whole values: pass y.astype\(int\)"),
])
def test_labels_in_a_common_wrong_form_are_refused_with_the_conversion(labels, kind, message):
    """Class names failed inside NumPy ("could not convert string to float: 'cat'");
    one-hot, whole-valued float and boolean labels were refused without saying the fix."""
    x = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        make_dataset("user", x[:50], labels[:50], x[50:], labels[50:], labels=kind)
    # Not one-hot, not whole: the message stays as it was.
    with pytest.raises(ValueError) as refused:
        make_dataset("user", x[:50], np.full(50, 0.5), x[50:], np.full(10, 0.5),
                     labels="classes")
    assert "astype" not in str(refused.value) and "one-hot" not in str(refused.value)


def test_inputs_that_are_not_numbers_are_refused_with_the_conversion():
    """An object array (a DataFrame of mixed columns) was taken as features and failed later
    on the device; one holding a string failed inside NumPy."""
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=60), rng.integers(0, 5, 60)]).astype(object)
    y = rng.integers(0, 3, 60)
    with pytest.raises(ValueError, match=r"train inputs are object, not numbers .* "
                                         r"x\.astype\(np\.float32\)"):
        make_dataset("user", x[:50], y[:50], x[50:], y[50:])
    x = x.astype(np.float32)
    assert make_dataset("user", x[:50], y[:50], x[50:], y[50:]).input_kind == "features"


def test_a_held_out_validation_split_is_a_fixed_stratified_share_of_training_only():
    """config.validation: per class round(fraction × its count) of the training examples,
    the same draw every time, disjoint from what is kept; the test split dropped; the
    standardization statistics the kept examples'."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], [200, 50, 10])  # imbalanced: a plain draw could miss class 2
    x = rng.normal(size=(len(y), 4)).astype(np.float32) + y[:, None]
    x[:, 0] = np.arange(len(y))  # each example's index, to find it again
    data = make_dataset("mine", x, y, rng.normal(size=(30, 4)).astype(np.float32),
                        np.zeros(30, int))
    split = hold_out(data, 0.2)
    assert split.evaluated_on == "validation" and data.evaluated_on == "test"
    assert np.bincount(split.test_labels).tolist() == [40, 10, 2]
    held, kept = split.test_images[:, 0].astype(int), split.train_images[:, 0].astype(int)
    assert not set(held) & set(kept) and sorted(set(held) | set(kept)) == list(range(len(y)))
    np.testing.assert_array_equal(y[held], split.test_labels)
    np.testing.assert_array_equal(hold_out(data, 0.2).test_images, split.test_images)
    np.testing.assert_allclose(split.mean, x[kept].mean(axis=0), rtol=1e-5)
    assert split.fingerprint != data.fingerprint
    unscaled = hold_out(data.unstandardized(), 0.2)
    assert unscaled.mean is None and unscaled.std is None


def test_a_held_out_split_of_targets_keeps_them_raw_where_they_were():
    rng = np.random.default_rng(1)
    x, t = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(100, 5, size=(50, 2))
    data = make_dataset("reg", x, t, x[:5], t[:5])
    split = hold_out(data, 0.1)
    assert len(split.test_labels) == 5 and split.label_kind == "targets"
    np.testing.assert_allclose(split.target_mean, split.train_labels.mean(axis=0), rtol=1e-5)
    assert hold_out(data.raw_targets(), 0.1).target_mean is None


@pytest.mark.parametrize("fraction, message", [
    (0.0, r"must lie in \(0, 1\)"), (1.0, r"must lie in \(0, 1\)"),
    (0.01, r"holds out 0 and keeps 20: both must be at least one")])
def test_a_validation_fraction_that_holds_out_nothing_or_everything_is_refused(
        fraction, message):
    x = np.ones((20, 2), np.float32)
    data = make_dataset("tiny", x, np.arange(20) % 2, x[:4], np.zeros(4, int))
    with pytest.raises(ValueError, match=message):
        hold_out(data, fraction)


def test_a_test_split_that_is_the_training_data_is_named(caplog):
    """data=(x, y, x, y) trained and reported the fit to the training data as the test metric,
    without a word; a few copies (discrete inputs) are not warned of."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    with caplog.at_level("WARNING"):
        make_dataset("mine", x, y, x[:10], y[:10])
    assert ("mine: 10 of the 10 test inputs (100%) are exact copies of training inputs"
            in caplog.text)
    assert "config.validation" in caplog.text
    caplog.clear()
    fresh = rng.normal(size=(10, 3)).astype(np.float32)
    with caplog.at_level("WARNING"):
        make_dataset("mine", x, y, np.concatenate([x[:5], fresh[5:]]), y[:10])
    assert "exact copies" not in caplog.text  # (half: not more than half)
    # A training set that repeats itself by nature is not named again, as a test split's,
    # when a validation split is held out of it (at every run).
    with caplog.at_level("WARNING"):
        hold_out(make_dataset("mine", np.tile(x[:4], (10, 1)), y, fresh, y[:10]), 0.2)
    assert "exact copies" not in caplog.text


def test_a_users_own_validation_split_is_held_out_as_given(caplog):
    """Grouped or time-ordered data leak through a random draw (near-copies on both sides):
    the user's split joins the training set and is what a run with config.validation holds
    out, exactly, whatever the fraction; the statistics are then the rest's."""
    rng = np.random.default_rng(2)
    x, xv = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(7, 3)).astype(np.float32) + 5
    y, yv = rng.integers(0, 2, 40), rng.integers(0, 2, 7)
    data = make_dataset("mine", x, y, x[:4] + 9, y[:4], validation=(xv, yv))
    assert data.num_train == 47 and data.validation_indices.tolist() == list(range(40, 47))
    np.testing.assert_allclose(data.mean, np.concatenate([x, xv]).mean(axis=0), rtol=1e-5)
    for fraction in (0.1, 0.5):
        split = hold_out(data, fraction)
        np.testing.assert_array_equal(split.test_images, xv)
        np.testing.assert_array_equal(split.train_images, x)
        assert split.validation_indices is None and split.evaluated_on == "validation"
    np.testing.assert_allclose(hold_out(data, 0.1).mean, x.mean(axis=0), rtol=1e-5)
    assert data.fingerprint != make_dataset("mine", np.concatenate([x, xv]),
                                            np.concatenate([y, yv]), x[:4] + 9, y[:4]).fingerprint
    with pytest.raises(ValueError, match=r"the validation split must be like the training one"):
        make_dataset("mine", x, y, x[:4], y[:4], validation=(xv[:, :2], yv))
    with caplog.at_level("WARNING"):
        make_dataset("mine", x, y, x[:4] + 9, y[:4], validation=(x[:5], y[:5]))
    assert "mine: 5 of the 5 validation inputs (100%) are exact copies" in caplog.text


def test_an_npz_file_may_carry_its_own_validation_split(tmp_path):
    from smallbatch_jax.data.dataset import load_npz

    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 3, 30)
    arrays = dict(train_images=x[:20], train_labels=y[:20], test_images=x[20:25] + 9,
                  test_labels=y[20:25])
    np.savez(tmp_path / "plain.npz", **arrays)
    assert load_npz(str(tmp_path / "plain.npz")).validation_indices is None
    np.savez(tmp_path / "own.npz", **arrays, validation_images=x[25:],
             validation_labels=y[25:])
    split = hold_out(load_npz(str(tmp_path / "own.npz")), 0.1)
    np.testing.assert_array_equal(split.test_images, x[25:])
    np.savez(tmp_path / "half.npz", **arrays, validation_images=x[25:])
    with pytest.raises(ValueError, match=r"validation_images without its pair"):
        load_npz(str(tmp_path / "half.npz"))


def test_a_channel_constant_in_training_is_centered_not_scaled_and_its_test_values_named(caplog):
    """A one-hot category absent from the training split and present in the test split: its
    std 0 was floored at 1e-8, and its test values became 1e8 after standardizing."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    x[:, 0] = 0.0
    x[50:, 0] = 1.0
    y = rng.integers(0, 2, 60)
    with caplog.at_level("WARNING"):
        data = make_dataset("mine", x[:50], y[:50], x[50:], y[50:])
    assert data.std[0] == 1.0 and data.mean[0] == 0.0 and np.all(data.std[1:] != 1.0)
    assert np.abs((data.test_images - data.mean) / data.std).max() < 10
    assert "input channel(s) 0 (last axis) hold one value throughout the training split but " \
           "other values in the test split" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # constant in both splits: centered, nothing to say
        make_dataset("mine", x[:50], y[:50], np.where(np.arange(4) == 0, 0.0, x[50:]), y[50:])
    assert not caplog.text


def test_a_test_split_scaled_otherwise_than_the_training_split_is_named(caplog):
    """Pixels divided by 255 in the test split only: standardized with the training split's
    statistics, every test input sits near one value, and a user MLP on digits so split read
    0.18 where it reads 0.91 (the same run, the splits alike)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (100, 8, 8, 3)).astype(np.uint8)
    y = rng.integers(0, 3, 100)
    with caplog.at_level("WARNING"):
        make_dataset("mine", x[:80], y[:80], x[80:].astype(np.float32) / 255, y[80:])
    assert ("mine: the test inputs are not on the training inputs' scale in channel(s) 0, 1, 2 "
            "(last axis)") in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        make_dataset("mine", x[:80], y[:80], x[80:], y[80:])  # alike
        make_dataset("mine", x[:80], y[:80], x[80:] // 2 + 64, y[80:])  # half the spread
    assert not caplog.text


def test_class_labels_per_position_make_a_data_set():
    """Next-token prediction, tagging: (N, T) integer labels, one class per position; the
    same positions in both splits; a validation split drawn at random (no stratification by
    one class per example); no augmentation (it would move the inputs, not their labels)."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 12, (60, 9))
    data = make_dataset("tokens", tokens[:50, :-1], tokens[:50, 1:], tokens[50:, :-1],
                        tokens[50:, 1:])
    assert data.label_kind == "classes" and data.num_classes == 12
    assert data.train_labels.shape == (50, 8) and data.train_labels.dtype == np.int32
    with pytest.raises(ValueError, match=r"train and test labels differ in shape per example: "
                                         r"\(8,\) and \(7,\)"):
        make_dataset("tokens", tokens[:50, :-1], tokens[:50, 1:], tokens[50:, :-1],
                     tokens[50:, 2:])
    held = hold_out(data, 0.2)
    assert held.num_test == 10 and held.test_labels.shape == (10, 8)
    with pytest.raises(ValueError, match=r"every training label is 3"):
        make_dataset("tokens", tokens[:50], np.full((50, 8), 3), tokens[50:],
                     tokens[50:, :8])


def test_labels_per_position_may_mark_positions_not_to_score():
    """-100 (PyTorch's ignore_index) at padded positions is taken, not counted as a class;
    it is refused where nothing would be scored (labels one per example; an example of
    padding only), and another negative label is refused naming -100."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 12, (60, 9))
    labels = np.where(np.arange(8) < rng.integers(2, 9, 60)[:, None], tokens[:, 1:], -100)
    data = make_dataset("tokens", tokens[:50, :-1], labels[:50], tokens[50:, :-1], labels[50:])
    assert data.num_classes == 12 and (data.train_labels == -100).any()
    with pytest.raises(ValueError, match=r"2 train label\(s\) are -100 .* drop those examples"):
        make_dataset("one", tokens[:50], np.r_[[-100, -100], tokens[2:50, 0]], tokens[50:],
                     tokens[50:, 0])
    empty = labels.copy()
    empty[7] = -100
    with pytest.raises(ValueError, match=r"1 train example\(s\) have every label -100 "
                                         r"\(first: example 7\)"):
        make_dataset("tokens", tokens[:50, :-1], empty[:50], tokens[50:, :-1], labels[50:])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 12\); they span \[-1, 11\] "
                                         r"\(positions not to score, per position only: -100\)"):
        make_dataset("tokens", tokens[:50, :-1], np.where(labels == -100, -1, labels)[:50],
                     tokens[50:, :-1], labels[50:])


def test_next_token_labels_left_unshifted_are_named(caplog):
    """Labels = the input token ids (the shift x[:, 1:] forgotten): copying the input scores
    1 everywhere. Warned of; not for shifted labels."""
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 12, (60, 9))
    with caplog.at_level("WARNING"):
        make_dataset("lm", tokens[:50, :-1], tokens[:50, 1:], tokens[50:, :-1], tokens[50:, 1:])
    assert not caplog.text
    with caplog.at_level("WARNING"):
        make_dataset("lm", tokens[:50], tokens[:50], tokens[50:], tokens[50:])
    assert ("lm: the labels equal the input token ids at 100% of their positions: the inputs "
            "themselves, not the next tokens?") in caplog.text
    # Padding marked -100 (here a third of the positions) is not counted against it.
    caplog.clear()
    padded = np.where(np.arange(9) < 6, tokens, -100)
    with caplog.at_level("WARNING"):
        make_dataset("lm", tokens[:50], padded[:50], tokens[50:], padded[50:])
    assert "at 100% of their positions" in caplog.text
    assert "pass x[:, :-1] as the inputs and x[:, 1:] as the labels" in caplog.text


def test_several_input_arrays_are_refused_with_the_fix():
    """A dict of input arrays was refused as "inputs of dtype object (a DataFrame's mixed
    columns?)"; a tuple of two (N, F) arrays was stacked into one input (2, N, F) and refused
    for its count of examples."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)).astype(np.float32), rng.integers(0, 3, 20)
    for several, shown in (({"image": x, "extra": x[:, :2]}, "a dict of 2 array(s) (image: "
                            "(16, 4), extra: (16, 2))"),
                           ((x, x), "a tuple of 2 array(s) (0: (16, 4), 1: (16, 4))")):
        with pytest.raises(ValueError, match=re.escape(
                f"mine: the train inputs are {shown}; the lanes pass the model one array of "
                "inputs, (N, ...): join them into one")):
            make_dataset("mine", {k: v[:16] for k, v in several.items()} if isinstance(
                several, dict) else tuple(v[:16] for v in several), y[:16], x[16:], y[16:])
    # A list of one array per example is one input array.
    data = make_dataset("mine", list(x[:16]), y[:16], list(x[16:]), y[16:])
    assert data.train_images.shape == (16, 4)


def test_labels_given_as_a_column_are_refused_with_the_fix():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20, 4)).astype(np.float32), rng.integers(0, 3, (20, 1))
    with pytest.raises(ValueError, match=r"the labels are a column \(as keras loads CIFAR\): "
                                         r"pass y\.ravel\(\)"):
        make_dataset("mine", x[:16], y[:16], x[16:], y[16:])
