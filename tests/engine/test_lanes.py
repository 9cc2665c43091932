import numpy as np

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
