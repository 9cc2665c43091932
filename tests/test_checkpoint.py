import jax.numpy as jnp
import numpy as np

from smallbatch_jax.checkpoint import restore_state, save_state
from smallbatch_jax.lanes import LaneGrid
from smallbatch_jax.models import create_model
from smallbatch_jax.strategy import Strategy
from smallbatch_jax.train import LaneStep, LaneTrainer, plan_for


def test_state_round_trip(tiny_digits, tmp_path):
    trainer = LaneTrainer(LaneStep(create_model("small_cnn_bn", 10), batch_size=8,
                                   image_shape=tiny_digits.image_shape),
                          plan_for(Strategy(), 2))
    grid = LaneGrid((0,), (0.1, 0.2), 0.0, 0.0, 0.0)
    state = trainer.init(jnp.asarray(grid.seeds), grid.hparams())
    state = state.replace(step=jnp.int32(17), epoch=jnp.int32(2),
                          lanes=state.lanes.replace(diverged=jnp.array([False, True])))
    save_state(tmp_path / "state.msgpack", state)
    template = trainer.init(jnp.asarray((9,)), grid.hparams())
    restored = restore_state(tmp_path / "state.msgpack", template)
    assert int(restored.step) == 17 and int(restored.epoch) == 2
    np.testing.assert_array_equal(restored.lanes.diverged, [False, True])
    np.testing.assert_array_equal(restored.lanes.params["Conv_0"]["kernel"],
                                  state.lanes.params["Conv_0"]["kernel"])
    assert not (tmp_path / "state.msgpack.tmp").exists()
