import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smallbatch_jax.engine import LaneStep, LaneTrainer, plan_for
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model
from smallbatch_jax.optim import Optimizer
from smallbatch_jax.run.checkpoint import restore_state, save_state, state_digest


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


# ------------------------------------------------------------------ RunCheckpoints (Orbax)


_INITIAL_STATES = {}


def _momentum_state(tiny_digits, step):
    """A real TrainState with BN statistics and momentum buffers, at `step`. (The initial
    state is made once per image shape: each new trainer traced and loaded its init
    program again, ~1 s a call, five calls a test.)"""
    shape = tuple(tiny_digits.image_shape)
    if shape not in _INITIAL_STATES:
        trainer = LaneTrainer(LaneStep(create_model("small_cnn_bn", 10), batch_size=8,
                                       image_shape=shape, optimizer=Optimizer("momentum")),
                              plan_for(Strategy(), 2))
        grid = LaneGrid((0,), (0.1, 0.2), 0.0, 0.0, 0.9)
        _INITIAL_STATES[shape] = trainer.init(jnp.asarray(grid.seeds), grid.hparams())
    state = _INITIAL_STATES[shape]
    return state.replace(step=jnp.int32(step), epoch=jnp.int32(step // 8),
                         lanes=state.lanes.replace(diverged=jnp.array([False, True])))


def _assert_trees_equal(a, b):
    import jax
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.asarray(x).dtype == np.asarray(y).dtype
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_checkpoints_round_trip_and_keep_the_newest(tiny_digits, tmp_path):
    from smallbatch_jax.run.checkpoint import RunCheckpoints

    checkpoints = RunCheckpoints(str(tmp_path / "ck"), keep=2)
    assert checkpoints.restore_latest(_momentum_state(tiny_digits, 0)) is None
    states = {step: _momentum_state(tiny_digits, step) for step in (8, 16, 24)}
    for step, state in states.items():
        # A different state per step, so that restoring the wrong one would show.
        state = state.replace(lanes=state.lanes.replace(
            diverged_step=jnp.array([step, -1], jnp.int32)))
        states[step] = state
        checkpoints.save(state, {"history": {"epoch": [1, 2]}, "wall_seconds": 1.5,
                                 "nan": float("nan")})
    assert checkpoints.steps() == [16, 24]
    target = _momentum_state(tiny_digits, 0)
    state, progress = checkpoints.restore_latest(target)
    _assert_trees_equal(state, states[24])
    assert progress["history"] == {"epoch": [1, 2]} and progress["wall_seconds"] == 1.5
    assert np.isnan(progress["nan"])
    seen = []
    checkpoints.restore_latest(target, check=seen.append)
    assert seen[0]["state_sha256"] == state_digest(states[24])
    checkpoints.close()


def _damage(directory, how):
    """Damages every array file of one checkpoint (its OCDBT data files)."""
    files = [os.path.join(root, name) for root, _, names in os.walk(directory)
             for name in names if "/d/" in os.path.join(root, name)]
    assert files, os.listdir(directory)
    for path in files:
        data = bytearray(open(path, "rb").read())
        if how == "truncate":
            data = data[:len(data) // 2]
        else:  # a flipped byte in the middle: still a well-formed file of the same size
            data[len(data) // 2] ^= 0xFF
        open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_checkpoint_is_never_trained_from(tiny_digits, tmp_path, how, caplog):
    from smallbatch_jax.run.checkpoint import RunCheckpoints

    checkpoints = RunCheckpoints(str(tmp_path / "ck"), keep=2)
    older, newer = _momentum_state(tiny_digits, 8), _momentum_state(tiny_digits, 16)
    newer = newer.replace(lanes=newer.lanes.replace(
        params=jax.tree.map(lambda x: x + 1, newer.lanes.params)))
    checkpoints.save(older, {})
    checkpoints.save(newer, {})
    _damage(tmp_path / "ck" / "16", how)
    with caplog.at_level("WARNING"):
        state, _ = checkpoints.restore_latest(_momentum_state(tiny_digits, 0))
    _assert_trees_equal(state, older)  # the previous one, not the damaged one
    assert "ck/16 cannot be read" in caplog.text
    # The damaged one is gone: training on from the older one saves that step again.
    assert checkpoints.steps() == [8]
    checkpoints.save(newer, {})
    _assert_trees_equal(checkpoints.restore_latest(_momentum_state(tiny_digits, 0))[0], newer)
    _damage(tmp_path / "ck" / "16", how)
    _damage(tmp_path / "ck" / "8", how)
    with pytest.raises(ValueError, match=r"no checkpoint .* can be read: .*ck/16 .*ck/8"):
        checkpoints.restore_latest(_momentum_state(tiny_digits, 0))
    checkpoints.close()


def test_a_damaged_array_is_reported_in_one_line(tiny_digits, tmp_path, caplog):
    """One array file of the newest checkpoint cut short: one warning line (TensorStore's
    error carries a multi-line spec of the store)."""
    from smallbatch_jax.run.checkpoint import RunCheckpoints

    checkpoints = RunCheckpoints(str(tmp_path / "ck"), keep=2)
    older = _momentum_state(tiny_digits, 8)
    checkpoints.save(older, {})
    checkpoints.save(_momentum_state(tiny_digits, 16), {})
    files = [os.path.join(root, name) for root, _, names in os.walk(tmp_path / "ck" / "16")
             for name in names if "/d/" in os.path.join(root, name)]
    largest = max(files, key=os.path.getsize)
    data = open(largest, "rb").read()
    open(largest, "wb").write(data[:len(data) // 2])
    with caplog.at_level("WARNING"):
        state, _ = checkpoints.restore_latest(_momentum_state(tiny_digits, 0))
    _assert_trees_equal(state, older)
    warnings = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0] and len(warnings[0]) < 500
    checkpoints.close()


class _Suspend:
    def __await__(self):
        yield


def _abandoned_coroutine(filename):
    """A coroutine defined in `filename`, suspended, that raises when it is collected: what
    Python reports as "Exception ignored in: <coroutine ...>"."""
    namespace = {"Suspend": _Suspend}
    exec(compile("async def read():\n    try:\n        await Suspend()\n"
                 "    finally:\n        raise ValueError('abandoned')\n", filename, "exec"),
         namespace)
    coroutine = namespace["read"]()
    coroutine.send(None)
    return coroutine


def test_orbax_reads_abandoned_by_a_failed_restore_are_not_printed(monkeypatch):
    """In a digits run whose newest checkpoint had one array file cut short, Orbax's other
    concurrent reads were collected raising, each printed by Python with ~60 lines of
    TensorStore spec (190 lines after the one warning). While a state is read, those of
    Orbax's coroutines are logged at --verbosity=1 instead; anything else passes through."""
    import gc
    import sys

    from smallbatch_jax.run.checkpoint import _orbax_abandoned_reads_quiet

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.object.__qualname__))
    orbax_file = os.path.join(os.sep, "site-packages", "orbax", "checkpoint", "read.py")
    with _orbax_abandoned_reads_quiet():
        abandoned = _abandoned_coroutine(orbax_file)
        mine = _abandoned_coroutine(os.path.join(os.sep, "mine", "read.py"))
        del abandoned, mine
    assert seen == ["read"]  # the user's own, not Orbax's
    abandoned = _abandoned_coroutine(orbax_file)
    del abandoned
    gc.collect()
    assert seen == ["read", "read"]  # outside a restore, Python's report as usual


def test_a_checkpoint_refused_by_the_check_is_not_skipped(tiny_digits, tmp_path):
    """A config mismatch is the command's fault: it stops, rather than falling back."""
    from smallbatch_jax.run.checkpoint import RunCheckpoints

    checkpoints = RunCheckpoints(str(tmp_path / "ck"))
    checkpoints.save(_momentum_state(tiny_digits, 8), {"config": {"seed": 0}})

    def check(progress):
        raise ValueError(f"differs: {progress['config']}")

    with pytest.raises(ValueError, match="differs: {'seed': 0}"):
        checkpoints.restore_latest(_momentum_state(tiny_digits, 0), check=check)
    assert checkpoints.newest_progress()["config"] == {"seed": 0}
    checkpoints.close()
    # Opened with the check, both reads apply it (a run refuses before anything compiles).
    checked = RunCheckpoints(str(tmp_path / "ck"), check=check)
    with pytest.raises(ValueError, match="differs: {'seed': 0}"):
        checked.newest_progress()
    with pytest.raises(ValueError, match="differs: {'seed': 0}"):
        checked.restore_latest(_momentum_state(tiny_digits, 0))
    assert checked.steps() == [8]  # (refused, not removed as unreadable)
    checked.close()


def test_a_full_disk_during_a_save_is_an_os_error_and_leaves_nothing_half(tiny_digits,
                                                                          tmp_path, monkeypatch):
    import errno

    from smallbatch_jax.run.checkpoint import RunCheckpoints

    checkpoints = RunCheckpoints(str(tmp_path / "ck"))
    checkpoints.save(_momentum_state(tiny_digits, 8), {})
    original = checkpoints.manager.save

    def full(step, *args, **kwargs):  # as TensorStore reports it
        os.makedirs(tmp_path / "ck" / f"{step}.orbax-checkpoint-tmp-1", exist_ok=True)
        raise ValueError("RESOURCE_EXHAUSTED: Error writing local file: No space left on "
                         "device [os_error_code='28']")

    monkeypatch.setattr(checkpoints.manager, "save", full)
    with pytest.raises(OSError) as raised:
        checkpoints.save(_momentum_state(tiny_digits, 16), {})
    assert raised.value.errno == errno.ENOSPC
    assert sorted(os.listdir(tmp_path / "ck")) == ["8"]
    monkeypatch.setattr(checkpoints.manager, "save", original)
    checkpoints.close()


def _progress_file(directory):
    """The JSON file of a checkpoint's progress item."""
    files = [os.path.join(root, name) for root, _, names in os.walk(directory)
             for name in names if root.endswith(os.sep + "progress") and name == "metadata"]
    assert len(files) == 1, files
    return files[0]


@pytest.mark.parametrize("how", ["missing", "flipped-digit"])
def test_a_damaged_progress_is_never_resumed_from_and_is_removed(tiny_digits, tmp_path, how,
                                                                caplog):
    """A progress item that cannot be read (its file missing) or that reads back other than
    saved (a flipped digit of the history: outside the state's digest) is skipped for the
    older checkpoint and removed, so that saving that step again works."""
    from smallbatch_jax.run.checkpoint import RunCheckpoints

    checkpoints = RunCheckpoints(str(tmp_path / "ck"), keep=2)
    older, newer = _momentum_state(tiny_digits, 8), _momentum_state(tiny_digits, 16)
    checkpoints.save(older, {"history": {"train_loss": [[0.5, 0.25]]}})
    checkpoints.save(newer, {"history": {"train_loss": [[0.5, 0.25], [0.375, 0.125]]}})
    path = _progress_file(tmp_path / "ck" / "16")
    if how == "missing":
        os.remove(path)
    else:
        text = open(path).read()
        assert "0.375" in text
        open(path, "w").write(text.replace("0.375", "0.395"))
    with caplog.at_level("WARNING"):
        # As a run does: the newest progress (its config checked), then the restore.
        checkpoints.newest_progress()
        state, progress = checkpoints.restore_latest(_momentum_state(tiny_digits, 0))
    _assert_trees_equal(state, older)
    assert progress["history"] == {"train_loss": [[0.5, 0.25]]}
    assert caplog.text.count("ck/16 cannot be read") == 1  # said once
    assert checkpoints.steps() == [8]
    checkpoints.save(newer, {"history": {}})  # the step saved again: no StepAlreadyExists
    assert checkpoints.steps() == [8, 16]
    # Damaged again, the new one is said again.
    os.remove(_progress_file(tmp_path / "ck" / "16"))
    caplog.clear()
    with caplog.at_level("WARNING"):
        checkpoints.restore_latest(_momentum_state(tiny_digits, 0))
    assert caplog.text.count("ck/16 cannot be read") == 1
    checkpoints.close()


def test_orbax_storage_errors_leave_the_one_line_message_alone():
    """A full disk: each of Orbax's writing threads logged the error with its traceback
    (~270 lines) before the save raised it as one clear line. Those records are dropped
    unless --verbosity=1; Orbax's other errors and everything else pass."""
    import logging as std_logging

    from absl import logging as absl_logging

    from smallbatch_jax.run.checkpoint import _orbax_quiet

    def record(path, level, message):
        return std_logging.LogRecord("absl", level, path, 1, message, None, None)

    orbax = "/site-packages/orbax/checkpoint/_src/futures/future.py"
    full = ("_SignalingThread.run() raised an exception: RESOURCE_EXHAUSTED: Error writing "
            "... Failed to write 291297 bytes to file 18: No space left on device")
    assert not _orbax_quiet(record(orbax, std_logging.ERROR, full))
    assert not _orbax_quiet(record(orbax, std_logging.INFO, "Saving checkpoint"))
    assert _orbax_quiet(record(orbax, std_logging.ERROR, "a bug of Orbax's"))
    assert _orbax_quiet(record("/work/smallbatch_jax/run/train.py", std_logging.ERROR, full))
    logger = absl_logging.get_absl_logger()
    level = logger.level  # (restored as it was: set_verbosity would pin it at WARNING and
    try:                  # hide the INFO lines later tests in this process read)
        absl_logging.set_verbosity(1)
        assert _orbax_quiet(record(orbax, std_logging.ERROR, full))
    finally:
        logger.setLevel(level)


def test_a_checkpoint_saved_before_the_loss_limit_resumes_without_one(tiny_digits, tmp_path,
                                                                       caplog):
    """A run killed under the code before lanes had a `loss_limit`, resumed after the
    upgrade: its checkpoint (no such leaf) was taken for damaged, deleted, and the run
    refused. Now it is read in its own structure and resumes with no limit, said so."""
    from smallbatch_jax.engine.state import legacy_of
    from smallbatch_jax.run.checkpoint import RunCheckpoints

    state = _momentum_state(tiny_digits, 16)
    checkpoints = RunCheckpoints(str(tmp_path / "ck"))
    checkpoints.save(legacy_of(state), {"history": {}, "config": {}})
    with caplog.at_level("WARNING"):
        restored, _ = checkpoints.restore_latest(state.replace(step=jnp.int32(0)))
    assert "saved before lanes had a loss limit" in caplog.text
    assert int(restored.step) == 16 and np.isinf(np.asarray(restored.lanes.loss_limit)).all()
    _assert_trees_equal(legacy_of(restored), legacy_of(state))
    assert checkpoints.steps() == [16]  # kept
    checkpoints.close()
