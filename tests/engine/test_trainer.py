import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from smallbatch_jax.engine import DeviceBatches, LaneStep, LaneTrainer, fit, plan_for
from smallbatch_jax.engine.lanes import LaneGrid, tree_index
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model
from smallbatch_jax.models.conv import conv_layer
from smallbatch_jax.optim import Optimizer
from smallbatch_jax.run.checkpoint import restore_state, save_state

EPOCHS = 2
EVAL_BATCH = 16


def _grid(base_lrs, seeds=(0,), weight_decay=5e-4):
    return LaneGrid(seeds=tuple(seeds), base_lrs=tuple(base_lrs), weight_decay=weight_decay,
                    warmup_fraction=0.0, momentum=0.0)


def _trainer(dataset, model="small_cnn_bn", batch_size=8, num_seeds=1, strategy=Strategy(),
             bn_batch_size=None, augment=False, precision="default", num_lanes=3,
             optimizer=Optimizer()):
    """A trainer on one device (the plan's devices do not depend on `num_lanes` there)."""
    lane_step = LaneStep(create_model(model, 10, bn_batch_size, conv_layer(strategy.conv)),
                         batch_size=batch_size, image_shape=dataset.image_shape,
                         optimizer=optimizer)
    plan = plan_for(strategy, num_lanes, precision=precision, devices=jax.local_devices()[:1])
    return LaneTrainer(lane_step, plan, num_seeds=num_seeds, augment=augment)


def _source(trainer, dataset):
    return DeviceBatches(dataset, trainer.lane_step.batch_size, EVAL_BATCH)


def _run(trainer, dataset, grid, epochs=EPOCHS):
    state, hparams, source = trainer.start(jnp.asarray(grid.seeds), grid.hparams(),
                                           _source(trainer, dataset))
    return fit(trainer, state, hparams, source, grid.seeds, epochs)


def _placed(trainer, dataset):
    return _source(trainer, dataset).place(jax.device_put)


def _steps_per_epoch(trainer, dataset):
    return _source(trainer, dataset).steps_per_epoch


def _assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_steps_per_epoch_drops_the_remainder(tiny_digits):
    assert DeviceBatches(tiny_digits, 8, EVAL_BATCH).steps_per_epoch == 8
    assert DeviceBatches(tiny_digits, 10, EVAL_BATCH).steps_per_epoch == 6


@pytest.mark.parametrize("model", ["small_cnn", "small_cnn_bn"])
def test_a_vmapped_lane_equals_a_single_lane_run(tiny_digits, model):
    base_lrs = (2.0**-8, 2.0**-6, 2.0**-4)
    many_state, many = _run(_trainer(tiny_digits, model), tiny_digits, _grid(base_lrs))
    one_state, one = _run(_trainer(tiny_digits, model), tiny_digits, _grid(base_lrs[1:2]))
    _assert_trees_close(tree_index(many_state.lanes, 1), tree_index(one_state.lanes, 0))
    for name in ("train_loss", "test_loss", "test_metric"):
        np.testing.assert_allclose(np.stack(getattr(many, name))[:, 1],
                                   np.stack(getattr(one, name))[:, 0], rtol=1e-5, atol=1e-6)
    # The lanes did learn something different from each other.
    assert not np.allclose(np.stack(many.train_loss)[:, 0], np.stack(many.train_loss)[:, 2])


def test_a_diverging_lane_is_frozen_and_the_others_are_untouched(tiny_digits):
    trainer = _trainer(tiny_digits, "small_cnn")
    with_huge, history = _run(trainer, tiny_digits, _grid((2.0**-8, 2.0**12, 2.0**-6)))
    replaced, _ = _run(trainer, tiny_digits, _grid((2.0**-8, 2.0**-7, 2.0**-6)))
    without, _ = _run(_trainer(tiny_digits, "small_cnn"), tiny_digits, _grid((2.0**-8, 2.0**-6)))

    diverged = np.asarray(with_huge.lanes.diverged)
    step = int(with_huge.lanes.diverged_step[1])
    np.testing.assert_array_equal(diverged, [False, True, False])
    steps_per_epoch = _steps_per_epoch(trainer, tiny_digits)
    assert 0 <= step < EPOCHS * steps_per_epoch
    np.testing.assert_array_equal(np.asarray(with_huge.lanes.diverged_step)[[0, 2]], -1)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(with_huge.lanes.params))
    # Its measurements are NaN from the epoch it diverged in; the others' are numbers.
    accuracy = np.stack(history.test_metric)
    assert np.isnan(accuracy[step // steps_per_epoch:, 1]).all()
    assert np.isfinite(accuracy[:, [0, 2]]).all()
    # The healthy lanes are bit-identical to a run where the diverging lane is replaced by a
    # healthy one (same program), and to a run without it (a program with fewer lanes).
    for lane in (0, 2):
        _assert_trees_equal(tree_index(with_huge.lanes, lane), tree_index(replaced.lanes, lane))
    _assert_trees_equal(tree_index(with_huge.lanes, 0), tree_index(without.lanes, 0))
    _assert_trees_equal(tree_index(with_huge.lanes, 2), tree_index(without.lanes, 1))


def test_the_diverged_step_is_the_first_non_finite_update(tiny_digits):
    """Step by step (one step per dispatch): the flag flips at the recorded step, and the
    lane keeps the weights it had before that step."""
    trainer = _trainer(tiny_digits, "small_cnn",
                       strategy=Strategy(step_loop="unrolled", steps_per_dispatch=1))
    grid = _grid((2.0**12,))
    hparams, source = grid.hparams(), _placed(trainer, tiny_digits)
    state = trainer.init(jnp.asarray(grid.seeds), hparams)
    seeds = jnp.asarray(grid.seeds)
    lanes = state.lanes
    one_step_dispatches = [1] * source.steps_per_epoch
    for step, (_, dispatch) in enumerate(source.epoch(seeds, 0, one_step_dispatches,
                                                      lambda tree: tree)):
        before = lanes
        lanes, _ = trainer.programs.train(lanes, hparams, dispatch, seeds, jnp.int32(step),
                                          jnp.int32(100), num_steps=1)
        if bool(lanes.diverged[0]):
            break
    else:
        pytest.fail("η̃ = 2^12 did not diverge within an epoch")
    assert int(lanes.diverged_step[0]) == step
    _assert_trees_equal(before.params, lanes.params)


def test_a_group_of_diverged_lanes_is_no_longer_run(tiny_digits):
    """Lanes in groups of one: once a lane has diverged its program is not dispatched again;
    it stays exactly as frozen, and the healthy lanes train on as before."""
    one_lane_groups = Strategy(lane_map="unrolled", step_loop="unrolled", steps_per_dispatch=1,
                               lanes_per_program=1)
    trainer = _trainer(tiny_digits, "small_cnn", strategy=one_lane_groups)
    dispatched = []
    train = trainer.programs.train

    def counting_train(lanes, hparams, *args, **kwargs):
        dispatched.append(float(hparams.base_lr[0]))
        return train(lanes, hparams, *args, **kwargs)

    trainer.programs.train = counting_train
    per_epoch, states = [], []

    def on_epoch_end(epoch, history, state):
        per_epoch.append(sorted(dispatched))
        states.append(state)
        dispatched.clear()

    grid = _grid((2.0**-8, 2.0**12, 2.0**-6))
    state, hparams, source = trainer.start(jnp.asarray(grid.seeds), grid.hparams(),
                                           _source(trainer, tiny_digits))
    after_two, history = fit(trainer, state, hparams, source, grid.seeds, epochs=2,
                             on_epoch_end=on_epoch_end)
    after_one = states[0]
    assert bool(after_one.lanes.diverged[1])  # in the first epoch
    steps = source.steps_per_epoch
    assert per_epoch[0] == sorted([2.0**-8, 2.0**12, 2.0**-6] * steps)
    assert per_epoch[1] == sorted([2.0**-8, 2.0**-6] * steps)
    _assert_trees_equal(tree_index(after_two.lanes, 1), tree_index(after_one.lanes, 1))
    assert np.isnan(history.test_metric[1][1])
    assert np.isfinite(history.test_metric[1][[0, 2]]).all()
    # The healthy lanes: the same as a run that never had the diverging lane.
    without, _ = _run(_trainer(tiny_digits, "small_cnn", strategy=one_lane_groups), tiny_digits,
                      _grid((2.0**-8, 2.0**-6)))
    _assert_trees_equal(tree_index(after_two.lanes, 0), tree_index(without.lanes, 0))
    _assert_trees_equal(tree_index(after_two.lanes, 2), tree_index(without.lanes, 1))


@pytest.mark.parametrize("strategy", [Strategy(), Strategy(conv="patches", lanes_per_program=3),
                                      Strategy(lane_map="map", steps_per_dispatch=3)],
                         ids=["one_program", "groups_of_3", "map"])
def test_diverged_lanes_are_compacted_out_of_the_program(tiny_digits, strategy):
    """After the first epoch the 5 diverging lanes (η̃ = 2^10 … 2^14) are left out: the 3
    live lanes of the one 8-lane program run as a program of 3 lanes (groups of 3: of 1
    each); the frozen lanes stay exactly as they froze. The live lanes' weights, losses and
    metrics: bit for bit the uncompacted run's where each lane is computed by a program of
    its own shape (lane_map='map'); under vmap XLA computes the lanes as one batched
    product whose tiling and summation order depend on the number of lanes (7e-9 apart
    after 3 epochs here), so there within the rounding the strategy test accepts."""
    lrs = (2.0**-9, 2.0**10, 2.0**11, 2.0**12, 2.0**-7, 2.0**13, 2.0**14, 2.0**-10)
    live = [0, 4, 7]

    def run(compact):
        trainer = _trainer(tiny_digits, "small_cnn", strategy=strategy, num_lanes=len(lrs))
        trainer.compact = compact
        sizes = []
        train = trainer.programs.train

        def sizing_train(lanes, *args, **kwargs):
            sizes.append(int(lanes.diverged.shape[0]))
            return train(lanes, *args, **kwargs)

        trainer.programs.train = sizing_train
        state, history = _run(trainer, tiny_digits, _grid(lrs), epochs=3)
        return state, history, sizes

    state, history, sizes = run(compact=True)
    full_state, full_history, full_sizes = run(compact=False)
    assert np.asarray(state.lanes.diverged).tolist() == [i not in live for i in range(8)]
    first_epoch = len(full_sizes) // 3
    assert sizes[:first_epoch] == full_sizes[:first_epoch]
    assert set(sizes[first_epoch:]) == ({1} if strategy.lanes_per_program else {3})
    frozen = np.array([i for i in range(8) if i not in live])
    _assert_trees_equal(jax.tree.map(lambda x: x[frozen], state.lanes),
                        jax.tree.map(lambda x: x[frozen], full_state.lanes))
    if strategy.lane_map == "map":
        _assert_trees_equal(state.lanes, full_state.lanes)
        for name in ("train_loss", "test_loss", "test_metric"):
            np.testing.assert_array_equal(np.stack(getattr(history, name)),
                                          np.stack(getattr(full_history, name)))
    else:  # as test_every_strategy_gives_the_reference_results
        _assert_trees_close(state.lanes, full_state.lanes, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(np.stack(history.test_metric),
                                   np.stack(full_history.test_metric))
        np.testing.assert_allclose(np.stack(history.train_loss),
                                   np.stack(full_history.train_loss), rtol=1e-5)


def test_a_lane_of_a_grid_over_weight_decay_and_momentum_equals_its_single_lane_run(tiny_digits):
    """η̃ × λ × μ as lanes of one program: each lane trains as it would alone, and a grid of
    the same size over other hyperparameters reuses the compiled program."""
    trainer = _trainer(tiny_digits, "small_cnn", num_lanes=8,
                       optimizer=Optimizer("momentum"))
    grid = LaneGrid(seeds=(0,), base_lrs=(2.0**-9, 2.0**-7), weight_decay=(0.0, 5e-3),
                    warmup_fraction=0.0, momentum=(0.0, 0.9))
    state, history = _run(trainer, tiny_digits, grid)
    traces = dict(trainer.traces)
    other = LaneGrid(seeds=(0,), base_lrs=tuple(2.0**-k for k in range(6, 14)),
                     weight_decay=1e-4, warmup_fraction=0.0, momentum=0.5)
    _run(trainer, tiny_digits, other)
    assert dict(trainer.traces) == traces  # 8 lanes either way: not compiled again
    for lane in (1, 6):  # (2^-9, λ 0, μ 0.9) and (2^-7, λ 5e-3, μ 0)
        setting = grid.settings()[lane]
        alone_grid = LaneGrid(seeds=(0,), base_lrs=(setting["base_lr"],),
                              weight_decay=setting["weight_decay"], warmup_fraction=0.0,
                              momentum=setting["momentum"])
        alone = _trainer(tiny_digits, "small_cnn", num_lanes=1,
                         optimizer=Optimizer("momentum"))
        alone_state, alone_history = _run(alone, tiny_digits, alone_grid)
        _assert_trees_close(tree_index(state.lanes, lane), tree_index(alone_state.lanes, 0),
                            rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.stack(history.train_loss)[:, lane],
                                   np.stack(alone_history.train_loss)[:, 0], rtol=1e-5)


@pytest.mark.parametrize("optimizer", [Optimizer(), Optimizer("adam")], ids=["sgd", "adam"])
def test_a_new_grid_of_the_same_size_does_not_recompile(tiny_digits, optimizer):
    trainer = _trainer(tiny_digits, optimizer=optimizer)
    _, first = _run(trainer, tiny_digits, _grid((2.0**-8, 2.0**-6)), epochs=1)
    traces = dict(trainer.traces)
    _, second = _run(trainer, tiny_digits, _grid((2.0**-5, 2.0**-3), weight_decay=1e-4), epochs=2)
    assert dict(trainer.traces) == traces == {"init": 1, "train": 1, "evaluate": 1}
    assert trainer.programs.train._cache_size() == 1
    assert not np.allclose(first.train_loss[0], second.train_loss[0])


STABLE_GRID = (2.0**-9, 2.0**-7, 2.0**-6)


@pytest.fixture(scope="module")
def reference_run(tiny_digits):
    return _run(_trainer(tiny_digits), tiny_digits, _grid(STABLE_GRID))


@pytest.mark.parametrize("strategy", [
    Strategy(conv="patches"),
    Strategy(lane_map="unrolled"),
    Strategy(lane_map="unrolled", conv="patches", steps_per_dispatch=3),
    Strategy(step_loop="unrolled", steps_per_dispatch=3),  # 8 steps/epoch: dispatches 3, 3, 2
    Strategy(steps_per_dispatch=5, scan_unroll=2),
    Strategy(lane_map="unrolled", step_loop="unrolled", steps_per_dispatch=4),
    Strategy(conv="patches", lanes_per_program=2),  # groups of 2 and 1 lanes
    Strategy(lane_map="unrolled", step_loop="unrolled", steps_per_dispatch=1,
             lanes_per_program=1),
    Strategy(conv="shifted"),
    Strategy(lane_map="map"),
    Strategy(lane_map="map", conv="patches", steps_per_dispatch=3, scan_unroll=2),
    Strategy(conv="shifted", lanes_per_program=2, steps_per_dispatch=3),
    Strategy(shared_batch=False),  # one seed's batch copied per lane
    Strategy(conv="patches", lanes_per_program=2, shared_batch=False),
])
def test_every_strategy_gives_the_reference_results(tiny_digits, reference_run, strategy):
    """Same computation, other XLA programs: equal up to float rounding (a separate and a
    grouped convolution sum in different orders), which 16 steps grow to ~1e-6. The lanes are
    in the stable range of η̃: at the edge of stability (η̃ = 2⁻³, η = 1 here) training
    amplifies any rounding difference, whichever program computes it."""
    reference_state, reference = reference_run
    state, history = _run(_trainer(tiny_digits, strategy=strategy), tiny_digits,
                          _grid(STABLE_GRID))
    _assert_trees_close(state.lanes, reference_state.lanes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.stack(history.test_metric), np.stack(reference.test_metric))
    np.testing.assert_allclose(np.stack(history.train_loss), np.stack(reference.train_loss),
                               rtol=1e-5)


class UserCNN(nn.Module):
    """A user's CNN, written with plain nn.Conv (no convolution factory)."""

    @nn.compact
    def __call__(self, x, train):
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        x = nn.relu(nn.Conv(16, (3, 3), strides=2)(x))
        return nn.Dense(10)(x.mean(axis=(1, 2)))


def _user_cnn_run(dataset, strategy):
    lane_step = LaneStep(UserCNN(), batch_size=8, image_shape=dataset.image_shape,
                         conv=strategy.conv)
    plan = plan_for(strategy, 3, devices=jax.local_devices()[:1])
    return _run(LaneTrainer(lane_step, plan), dataset, _grid(STABLE_GRID))


@pytest.mark.parametrize("strategy", [
    Strategy(conv="patches"),
    Strategy(conv="shifted", lanes_per_program=2, steps_per_dispatch=3),
    Strategy(lane_map="unrolled", conv="patches", steps_per_dispatch=3),
    Strategy(lane_map="map", conv="patches"),
])
def test_a_users_nn_conv_model_gives_the_reference_results_under_every_strategy(tiny_digits,
                                                                                strategy):
    """Its nn.Conv layers compute through the plan's convolution (models/conv.py:
    follow_plan): the same training as XLA's convolutions, up to the rounding the built-in
    models' strategy test accepts."""
    reference_state, reference = _user_cnn_run(tiny_digits, Strategy())
    state, history = _user_cnn_run(tiny_digits, strategy)
    _assert_trees_close(state.lanes, reference_state.lanes, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.stack(history.test_metric), np.stack(reference.test_metric))
    np.testing.assert_allclose(np.stack(history.train_loss), np.stack(reference.train_loss),
                               rtol=1e-5)


@pytest.mark.parametrize("strategy", [Strategy(), Strategy(steps_per_dispatch=2)],
                         ids=["epoch_per_dispatch", "2_steps_per_dispatch"])
def test_evaluations_inside_epochs_leave_training_unchanged(tiny_digits, reference_run,
                                                            strategy):
    """Cutting each 8-step epoch at steps 3 and 5 (3 evaluations per epoch) trains the same
    lanes; the evaluation after step 3 is that of the lanes trained 3 steps, and the
    per-epoch measurements are the uncut run's."""
    reference_state, reference = reference_run
    trainer = _trainer(tiny_digits, strategy=strategy)
    grid = _grid(STABLE_GRID)
    state, hparams, source = trainer.start(jnp.asarray(grid.seeds), grid.hparams(),
                                           _source(trainer, tiny_digits))
    state, history = fit(trainer, state, hparams, source, grid.seeds, EPOCHS,
                         evals_per_epoch=3)
    assert source.steps_per_epoch == 8 and history.within_step == [3, 5, 11, 13]
    _assert_trees_close(state.lanes, reference_state.lanes, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(history.test_metric), np.stack(reference.test_metric))

    fresh, hparams, source = trainer.start(jnp.asarray(grid.seeds), grid.hparams(),
                                           _source(trainer, tiny_digits))
    _, dispatch = next(source.epoch(jnp.asarray(grid.seeds), 0, [3, 5], jax.device_put))
    lanes, _ = trainer.programs.train(fresh.lanes, hparams, dispatch, jnp.asarray(grid.seeds),
                                      np.int32(0), np.int32(EPOCHS * 8), num_steps=3)
    metric, loss = trainer.evaluate(lanes, source)
    np.testing.assert_allclose(history.within_test_metric[0], metric)
    np.testing.assert_allclose(history.within_test_loss[0], loss, rtol=1e-5)
    assert not np.allclose(history.within_test_loss[0], reference.test_loss[0])


def test_evaluation_points_cut_an_epoch_into_near_equal_parts():
    from smallbatch_jax.engine.plan import evaluation_points

    assert evaluation_points(8, 1) == [8]
    assert evaluation_points(8, 3) == [3, 5, 8]
    assert evaluation_points(2542, 4) == [636, 1271, 1906, 2542]
    with pytest.raises(ValueError, match="between 1 and the epoch's 8 steps"):
        evaluation_points(8, 9)


def test_precision_is_traced_into_the_programs(tiny_digits):
    """'highest' marks every matrix product and convolution of the training program; the
    default leaves the backend's precision (no marks). On CPU both are float32: same run."""
    texts = {}
    for precision in ("default", "highest"):
        trainer = _trainer(tiny_digits, "small_cnn", precision=precision)
        source = _placed(trainer, tiny_digits)
        hparams = _grid(STABLE_GRID).hparams()
        seeds = jnp.zeros(1, jnp.int32)
        state = trainer.init(seeds, hparams)
        _, dispatch = next(source.epoch(seeds, 0, [2], lambda tree: tree))
        texts[precision] = trainer.programs.train.lower(
            state.lanes, hparams, dispatch, seeds, 0, 8, num_steps=2).as_text()
    assert "HIGHEST" not in texts["default"]
    assert texts["highest"].count("HIGHEST") >= 4  # 2 convolutions, 2 dense layers, forward
    with pytest.raises(ValueError, match="precision='tf32'"):
        _trainer(tiny_digits, precision="tf32")


def test_seeds_set_initial_weights_and_data_order(tiny_digits):
    grid = _grid((2.0**-6, 2.0**-4), seeds=(3, 4))
    trainer = _trainer(tiny_digits, num_seeds=2)
    hparams = grid.hparams()
    initial = trainer.init(jnp.asarray(grid.seeds), hparams).lanes.params
    # Lane order is seed-major: lanes 0, 1 have seed 3 and lanes 2, 3 seed 4.
    _assert_trees_equal(tree_index(initial, 0), tree_index(initial, 1))
    kernel = lambda lane: initial["Conv_0"]["kernel"][lane]
    assert not np.allclose(kernel(0), kernel(2))
    permutations = _source(trainer, tiny_digits).permutations
    orders = permutations(jnp.asarray(grid.seeds), 0, num_train=tiny_digits.num_train)
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], permutations(jnp.asarray(grid.seeds), 1,
                                                      num_train=tiny_digits.num_train)[0])
    np.testing.assert_array_equal(np.sort(orders[0]), np.arange(tiny_digits.num_train))
    # A lane of a two-seed program equals the one-seed program of its seed: within the
    # rounding the strategy tests accept, since XLA tiles a 4-lane batched product unlike a
    # 1-lane one (1.2e-5 apart on an AVX-512 Xeon, 2026-12-06; another seed's weights differ
    # at the weights' own scale).
    state, history = _run(trainer, tiny_digits, grid)
    alone_state, alone = _run(_trainer(tiny_digits), tiny_digits, _grid((2.0**-4,), seeds=(4,)))
    _assert_trees_close(tree_index(state.lanes, 3), tree_index(alone_state.lanes, 0),
                        rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.stack(history.test_metric)[:, 3],
                               np.stack(alone.test_metric)[:, 0])


def test_ghost_batch_norm_changes_training(tiny_digits):
    grid = _grid((2.0**-6,))
    whole, _ = _run(_trainer(tiny_digits), tiny_digits, grid, epochs=1)
    ghost, _ = _run(_trainer(tiny_digits, bn_batch_size=2), tiny_digits, grid, epochs=1)
    assert not np.allclose(whole.lanes.params["Conv_0"]["kernel"],
                           ghost.lanes.params["Conv_0"]["kernel"])


@pytest.mark.parametrize("augment", [False, True])
def test_resuming_from_a_checkpoint_continues_exactly(tiny_digits, tmp_path, augment):
    """Data order and augmentation are functions of (seed, epoch or step): nothing random
    is lost at an epoch boundary."""
    grid = _grid((2.0**-7, 2.0**-5))
    straight, straight_history = _run(_trainer(tiny_digits, augment=augment), tiny_digits, grid,
                                      epochs=3)

    trainer = _trainer(tiny_digits, augment=augment)
    fresh, hparams, source = trainer.start(jnp.asarray(grid.seeds), grid.hparams(),
                                           _source(trainer, tiny_digits))
    template = trainer.init(jnp.asarray(grid.seeds), hparams)  # `fresh` is used up by fit
    # Stop after epoch 1 of a 3-epoch run (fit's schedule spans `epochs`), save, restore.
    halfway, _ = fit(trainer, fresh, hparams, source, grid.seeds, epochs=3,
                     on_epoch_end=lambda epoch, h, s: save_state(tmp_path / f"e{epoch}", s))
    restored = restore_state(str(tmp_path / "e1"), template)
    assert int(restored.epoch) == 1 and int(restored.step) == source.steps_per_epoch
    resumed, resumed_history = fit(trainer, restored, hparams, source, grid.seeds, epochs=3)
    assert resumed_history.epoch == [2, 3]
    _assert_trees_equal(resumed.lanes, straight.lanes)
    np.testing.assert_array_equal(np.stack(resumed_history.test_metric),
                                  np.stack(straight_history.test_metric)[1:])


def test_augmentation_is_reproducible_and_changes_training(tiny_digits):
    grid = _grid((2.0**-7,))
    plain, _ = _run(_trainer(tiny_digits), tiny_digits, grid, epochs=1)
    augmented, _ = _run(_trainer(tiny_digits, augment=True), tiny_digits, grid, epochs=1)
    again, _ = _run(_trainer(tiny_digits, augment=True), tiny_digits, grid, epochs=1)
    _assert_trees_equal(augmented.lanes, again.lanes)
    assert not np.allclose(plain.lanes.params["Conv_0"]["kernel"],
                           augmented.lanes.params["Conv_0"]["kernel"])


def test_evaluation_is_never_augmented(tiny_digits):
    grid = _grid((2.0**-7, 2.0**-5))
    state, _ = _run(_trainer(tiny_digits), tiny_digits, grid, epochs=1)
    plain_trainer = _trainer(tiny_digits)
    source = _placed(plain_trainer, tiny_digits)
    plain = plain_trainer.evaluate(state.lanes, source)
    augmented = _trainer(tiny_digits, augment=True).evaluate(state.lanes, source)
    for x, y in zip(plain, augmented, strict=True):
        np.testing.assert_array_equal(x, y)


def _streamed(trainer, dataset):
    """`dataset` as a host stream that yields the device path's batches in its order."""
    from smallbatch_jax.data import StreamedDataset
    from smallbatch_jax.data.imagenet import pad_batch

    permutations = _source(trainer, dataset).permutations

    def train_batches(seed, epoch, batch_size):
        order = np.asarray(permutations(jnp.asarray([seed]), epoch,
                                        num_train=dataset.num_train))[0]
        for b in range(len(order) // batch_size):
            indices = order[b * batch_size:(b + 1) * batch_size]
            yield dataset.train_images[indices], dataset.train_labels[indices]

    def test_batches(batch_size):
        for start in range(0, dataset.num_test, batch_size):
            end = start + batch_size
            yield pad_batch(dataset.test_images[start:end], dataset.test_labels[start:end],
                            batch_size)

    return StreamedDataset("streamed", dataset.num_train, dataset.num_test,
                           dataset.image_shape, dataset.num_classes, dataset.mean, dataset.std,
                           train_batches, test_batches)


def test_streamed_batches_train_like_device_resident_data(tiny_digits):
    """The host-stream path (ImageNet's) computes what the device-resident path computes
    when it is fed the same batches: several dispatches per epoch, every group of lanes."""
    from smallbatch_jax.engine import StreamedBatches

    grid = _grid(STABLE_GRID)
    # Groups of one lane, dispatches of 3, 3 and 2 steps: two programs.
    strategy = Strategy(conv="patches", lanes_per_program=1, steps_per_dispatch=3)
    trainer = _trainer(tiny_digits, strategy=strategy, augment=True)
    resident_state, resident = _run(trainer, tiny_digits, grid)
    resident_traces = trainer.traces["train"]
    state, hparams, stream = trainer.start(
        jnp.asarray(grid.seeds), grid.hparams(),
        StreamedBatches(_streamed(trainer, tiny_digits), 8, EVAL_BATCH))
    streamed_state, streamed = fit(trainer, state, hparams, stream, grid.seeds, EPOCHS)
    _assert_trees_close(streamed_state.lanes, resident_state.lanes, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(streamed.test_metric), np.stack(resident.test_metric))
    np.testing.assert_allclose(np.stack(streamed.train_loss), np.stack(resident.train_loss),
                               rtol=1e-5)
    assert resident_traces == 2 and trainer.traces["train"] == 2 + 2  # one per length
