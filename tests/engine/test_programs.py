import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallbatch_jax.engine import DeviceBatches, LaneStep, plan_for
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.programs import Programs, loop_steps, map_lanes
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model
from smallbatch_jax.noise_scale import NoiseProbe


@pytest.mark.parametrize("lane_map", ["vmap", "unrolled", "map"])
def test_map_lanes_matches_vmap(lane_map):
    def fn(tree, shared, scalar):
        return {"y": tree["a"] * shared + scalar, "z": tree["b"].sum()}, scalar * 2

    tree = {"a": jnp.arange(12.0).reshape(3, 4), "b": jnp.ones((3, 2))}
    shared = jnp.linspace(0, 1, 4)
    scalars = jnp.array([1.0, 2.0, 3.0])
    expected = jax.vmap(fn, in_axes=(0, None, 0))(tree, shared, scalars)
    got = map_lanes(fn, (0, None, 0), lane_map)(tree, shared, scalars)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(expected), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("step_loop,scan_unroll", [("scan", 1), ("scan", 3), ("unrolled", 1)])
def test_loop_steps_runs_every_step_in_order(step_loop, scan_unroll):
    body = lambda carry, i: (carry[0] * 2 + i, carry[1] + 1)
    loop = lambda c: loop_steps(body, c, 7, step_loop, scan_unroll)
    value, count = jax.jit(loop)((jnp.int32(1), jnp.int32(0)))
    expected = 1
    for i in range(7):
        expected = expected * 2 + i
    assert int(value) == expected and int(count) == 7


# precision='bf16' (engine/plan.py): the model in bfloat16, its state in float32.
BF16_GRID = LaneGrid(seeds=(0,), base_lrs=(2.0**-8, 2.0**-7, 2.0**-6), weight_decay=5e-4,
                     warmup_fraction=0.0, momentum=0.0)


def _programs(dataset, precision):
    lane_step = LaneStep(create_model("small_cnn_bn", 10), batch_size=8,
                         image_shape=dataset.image_shape)
    plan = plan_for(Strategy(), 3, precision=precision, devices=jax.local_devices()[:1])
    return Programs(lane_step, plan)


def _test_loss(programs, lanes, source):
    return sum(np.asarray(programs.evaluate(lanes, batch)[1])
               for batch in source.test_batches()) / source.num_test


def _train_two_epochs(programs, dataset):
    """Every lane's state after two epochs of one-step dispatches, its loss at each step,
    and its test loss before and after."""
    source = DeviceBatches(dataset, 8, 16).place(jax.device_put)
    hparams, seeds = BF16_GRID.hparams(), jnp.asarray(BF16_GRID.seeds)
    lanes = programs.init(seeds, hparams).lanes
    before = _test_loss(programs, lanes, source)
    steps = source.steps_per_epoch
    losses = []
    for epoch in range(2):
        for i, (_, dispatch) in enumerate(source.epoch(seeds, epoch, [1] * steps,
                                                       lambda tree: tree)):
            lanes, loss = programs.train(lanes, hparams, dispatch, seeds,
                                         jnp.int32(epoch * steps + i), jnp.int32(2 * steps),
                                         num_steps=1)
            losses.append(np.asarray(loss))
    return lanes, np.stack(losses), before, _test_loss(programs, lanes, source)


def test_bf16_precision_trains_close_to_float32_with_float32_state(tiny_digits):
    runs = {p: _train_two_epochs(_programs(tiny_digits, p), tiny_digits)
            for p in ("default", "bf16")}
    (f_lanes, f_losses, f_before, f_after), (b_lanes, b_losses, b_before, b_after) = (
        runs["default"], runs["bf16"])
    by_epoch = lambda losses: losses.reshape(2, -1, 3).mean(axis=1)  # (epoch, lane)
    # It trains: every lane's test loss falls, and so does its mean training loss from the
    # first epoch to the second.
    assert (b_after < b_before).all()
    assert (by_epoch(b_losses)[1] < by_epoch(b_losses)[0]).all()
    # Parameters, optimizer state and BatchNorm statistics stay float32.
    for tree in (b_lanes.params, b_lanes.batch_stats):
        assert {str(x.dtype) for x in jax.tree.leaves(tree)} == {"float32"}
    assert {str(x.dtype) for x in jax.tree.leaves(b_lanes.opt_state)} <= {"float32", "int32"}
    assert not b_lanes.diverged.any()
    # Close to float32, not equal. The first step's loss and the initial test loss are one
    # forward pass at the same weights: within 1% (measured: 0.2% and 0.1%; bfloat16 rounds
    # to 2⁻⁹ ≈ 0.2%). Over 16 steps at m = 8 the runs drift apart (small-batch training
    # amplifies any difference; measured up to 7% in an epoch's mean training loss, 11% in
    # the final test loss of 40 examples): each epoch's mean training loss within 10%, a
    # bound that tells the learning rates apart (neighbours differ by more than 25% here).
    assert not np.array_equal(b_losses, f_losses)
    np.testing.assert_allclose(b_losses[0], f_losses[0], rtol=0.01)
    np.testing.assert_allclose(b_before, f_before, rtol=0.01)
    np.testing.assert_allclose(by_epoch(b_losses), by_epoch(f_losses), rtol=0.1)
    last = by_epoch(f_losses)[-1]
    assert (np.abs(np.diff(last)) / last[1:] > 0.25).all()


def test_bf16_programs_compute_in_bfloat16_and_default_ones_do_not(tiny_digits):
    """The lowered training, evaluation and noise-probe programs: at 'bf16' the model's
    convolutions and matrix products take bfloat16 operands (the probe's moments of the
    float32 gradients stay float32), with no precision marks; at 'default' no bfloat16 at
    all."""
    source = DeviceBatches(tiny_digits, 8, 16).place(jax.device_put)
    hparams, seeds = BF16_GRID.hparams(), jnp.asarray(BF16_GRID.seeds)
    probe_batch = source.probe_batch(seeds, 0, NoiseProbe(batch_size=8, num_batches=4))
    texts = {}
    for precision in ("default", "bf16"):
        programs = _programs(tiny_digits, precision)
        lanes = jax.eval_shape(programs.init, seeds, hparams).lanes
        _, dispatch = next(source.epoch(seeds, 0, [2], lambda tree: tree))
        texts[precision] = {
            "train": programs.train.lower(lanes, hparams, dispatch, seeds, 0, 8,
                                          num_steps=2).as_text(),
            "evaluate": programs.evaluate.lower(lanes, next(source.test_batches())).as_text(),
            "probe": programs.probe.lower(lanes, hparams, probe_batch).as_text()}
    for name, text in texts["bf16"].items():
        lines = text.splitlines()
        convolutions = [line for line in lines if "stablehlo.convolution" in line]
        products = [line for line in lines if "stablehlo.dot_general" in line]
        bf16 = [line for line in convolutions + products if "xbf16>" in line]
        # small_cnn_bn: 2 convolutions and 2 dense layers in the forward pass alone.
        assert len(bf16) >= 4, name
        assert all("xbf16>" in line for line in convolutions), name
        if name != "probe":
            assert bf16 == convolutions + products, name
        assert "HIGHEST" not in text, name
        assert "bf16" not in texts["default"][name], name
