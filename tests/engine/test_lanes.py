import numpy as np
import pytest

from smallbatch_jax.engine.lanes import LaneGrid, tree_index, tree_stack


def test_lanes_are_seed_major():
    grid = LaneGrid(seeds=(5, 6), base_lrs=(0.5, 0.25, 0.125), weight_decay=1e-4,
                    warmup_fraction=0.05, momentum=0.0)
    assert grid.num_lanes == 6
    assert grid.lanes() == [(5, 0.5), (5, 0.25), (5, 0.125), (6, 0.5), (6, 0.25), (6, 0.125)]
    hp = grid.hparams()
    np.testing.assert_allclose(hp.base_lr, [0.5, 0.25, 0.125] * 2)
    np.testing.assert_array_equal(hp.seed_index, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(hp.weight_decay, 1e-4)
    np.testing.assert_allclose(hp.warmup_fraction, 0.05)
    assert hp.base_lr.shape == hp.momentum.shape == (6,)


def test_stack_and_index_round_trip():
    trees = [{"w": np.full((2, 3), i), "b": np.array(i)} for i in range(4)]
    stacked = tree_stack(trees)
    assert stacked["w"].shape == (4, 2, 3)
    for i, tree in enumerate(trees):
        np.testing.assert_array_equal(tree_index(stacked, i)["w"], tree["w"])
        np.testing.assert_array_equal(tree_index(stacked, i)["b"], tree["b"])


def test_any_hyperparameter_swept_makes_the_product_grid_in_a_defined_order():
    """Seeds, then η̃, then the other swept values in LaneGrid.SWEPT's order; a tuple of one
    value is not swept."""
    grid = LaneGrid(seeds=(0, 1), base_lrs=(0.5, 0.25), weight_decay=(0.0, 5e-4, 5e-3),
                    warmup_fraction=(0.1,), momentum=(0.0, 0.9))
    assert grid.num_lanes == 2 * 2 * 3 * 2
    assert grid.swept == {"weight_decay": (0.0, 5e-4, 5e-3), "momentum": (0.0, 0.9)}
    settings = grid.settings()
    assert [(s["seed"], s["base_lr"], s["weight_decay"], s["momentum"])
            for s in settings[:7]] == [
        (0, 0.5, 0.0, 0.0), (0, 0.5, 0.0, 0.9), (0, 0.5, 5e-4, 0.0), (0, 0.5, 5e-4, 0.9),
        (0, 0.5, 5e-3, 0.0), (0, 0.5, 5e-3, 0.9), (0, 0.25, 0.0, 0.0)]
    hp = grid.hparams()
    np.testing.assert_allclose(hp.weight_decay[:6], [0, 0, 5e-4, 5e-4, 5e-3, 5e-3], rtol=1e-6)
    np.testing.assert_allclose(hp.momentum[:4], [0, 0.9, 0, 0.9], rtol=1e-6)
    np.testing.assert_allclose(hp.warmup_fraction, 0.1)
    np.testing.assert_array_equal(hp.seed_index, [0] * 12 + [1] * 12)
    assert len({hp.base_lr.shape, hp.weight_decay.shape, hp.epsilon.shape}) == 1


def test_explicit_points_are_crossed_with_the_learning_rates_and_the_seeds():
    """A non-product design: (λ, μ) ∈ {(5e-4, 0.9), (0, 0)} (not the 4 of the product),
    crossed with 2 η̃, 2 seeds and a swept warm-up; lanes in the documented order."""
    points = ((("momentum", 0.9), ("weight_decay", 5e-4)),
              (("momentum", 0.0), ("weight_decay", 0.0)))
    grid = LaneGrid(seeds=(0, 1), base_lrs=(0.1, 0.2), weight_decay=1.0,
                    warmup_fraction=(0.0, 0.05), momentum=0.5, points=points)
    settings = grid.settings()
    assert grid.num_lanes == len(settings) == 2 * 2 * 2 * 2
    assert [(s["seed"], s["base_lr"], s["warmup_fraction"], s["weight_decay"], s["momentum"])
            for s in settings[:4]] == [(0, 0.1, 0.0, 5e-4, 0.9), (0, 0.1, 0.0, 0.0, 0.0),
                                       (0, 0.1, 0.05, 5e-4, 0.9), (0, 0.1, 0.05, 0.0, 0.0)]
    assert {(s["weight_decay"], s["momentum"]) for s in settings} == {(5e-4, 0.9), (0.0, 0.0)}
    assert grid.swept == {"weight_decay": (5e-4, 0.0), "momentum": (0.9, 0.0),
                          "warmup_fraction": (0.0, 0.05)}
    hparams = grid.hparams()
    assert list(hparams.momentum[:4]) == pytest.approx([0.9, 0.0, 0.9, 0.0])
    assert list(hparams.seed_index) == [0] * 8 + [1] * 8
