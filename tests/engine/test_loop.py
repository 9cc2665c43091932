import json

import numpy as np
import pytest

from smallbatch_jax.engine.loop import History


def test_history_survives_json_exactly():
    """A checkpoint's history (JSON) gives back the same floats, NaN included: a resumed
    run writes the same curves.csv and results.csv."""
    rng = np.random.default_rng(0)
    history = History(epoch=[1, 2], seconds=[0.1, 1 / 3],
                      train_loss=[rng.random(3), np.array([np.nan, 1e-300, 2.0 / 3])],
                      test_loss=[rng.random(3), rng.random(3)],
                      test_metric=[rng.random(3), np.array([0.5, np.nan, np.pi])],
                      grad_sq_small=[rng.random(3), rng.random(3)],
                      grad_sq_big=[np.array([np.nan, 1e-30, 2.0]), rng.random(3)],
                      within_step=[3, 7], within_test_metric=[rng.random(3), rng.random(3)],
                      within_test_loss=[np.array([np.nan, 0.1, 0.2]), rng.random(3)])
    back = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert back.epoch == history.epoch and back.seconds == history.seconds
    assert back.within_step == [3, 7]
    for name in History.ARRAYS:
        for a, b in zip(getattr(back, name), getattr(history, name)):
            assert a.dtype == np.float64
            np.testing.assert_array_equal(a, b)  # NaN == NaN here; every bit otherwise
            assert a.tobytes() == np.asarray(b, np.float64).tobytes()


def test_a_history_saved_before_the_noise_probe_reads_without_it():
    old = History(epoch=[1], seconds=[0.5], train_loss=[np.zeros(2)], test_loss=[np.zeros(2)],
                  test_metric=[np.ones(2)]).to_dict()
    for name in ("grad_sq_small", "grad_sq_big", "within_step", "within_test_metric",
                 "within_test_loss"):
        del old[name]
    back = History.from_dict(old)
    assert back.grad_sq_small == [] and back.grad_sq_big == [] and back.epoch == [1]
    assert back.within_step == [] and back.within_test_metric == []


def test_fit_refuses_a_history_that_does_not_match_the_state():
    from types import SimpleNamespace

    from smallbatch_jax.engine.loop import fit

    state = SimpleNamespace(epoch=2)
    with pytest.raises(ValueError, match="history of 1 epochs cannot continue from a state at "
                                         "epoch 2"):
        fit(None, state, None, SimpleNamespace(steps_per_epoch=1), [0], 3,
            history=History(epoch=[1], seconds=[0.0], train_loss=[np.zeros(1)],
                            test_loss=[np.zeros(1)], test_metric=[np.zeros(1)]))
