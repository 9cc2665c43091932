import json

import numpy as np
import pytest

from smallbatch_jax.train.loop import History


def test_history_survives_json_exactly():
    """A checkpoint's history (JSON) gives back the same floats, NaN included: a resumed
    run writes the same curves.csv and results.csv."""
    rng = np.random.default_rng(0)
    history = History(epoch=[1, 2], seconds=[0.1, 1 / 3],
                      train_loss=[rng.random(3), np.array([np.nan, 1e-300, 2.0 / 3])],
                      test_loss=[rng.random(3), rng.random(3)],
                      test_metric=[rng.random(3), np.array([0.5, np.nan, np.pi])])
    back = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert back.epoch == history.epoch and back.seconds == history.seconds
    for name in ("train_loss", "test_loss", "test_metric"):
        for a, b in zip(getattr(back, name), getattr(history, name)):
            assert a.dtype == np.float64
            np.testing.assert_array_equal(a, b)  # NaN == NaN here; every bit otherwise
            assert a.tobytes() == np.asarray(b, np.float64).tobytes()


def test_fit_refuses_a_history_that_does_not_match_the_state():
    from types import SimpleNamespace

    from smallbatch_jax.train.loop import fit

    state = SimpleNamespace(epoch=2)
    with pytest.raises(ValueError, match="history of 1 epochs cannot continue from a state at "
                                         "epoch 2"):
        fit(None, state, None, SimpleNamespace(steps_per_epoch=1), [0], 3,
            history=History(epoch=[1], seconds=[0.0], train_loss=[np.zeros(1)],
                            test_loss=[np.zeros(1)], test_metric=[np.zeros(1)]))
