"""strategy.preset='tune' (engine/tune.py): the candidates, the share of the run it may
take, the cache on disk, and a run that tunes, caches and resumes with its strategy."""

import csv
import dataclasses
import json
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from smallbatch_jax.engine import DeviceBatches, LaneStep, LaneTrainer, make_plan, plan_for
from smallbatch_jax.engine import tune as tune_module
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.strategy import PRESETS, Strategy, StrategyChoice
from smallbatch_jax.engine.tune import (StrategyCache, StrategyTimer, Timed, Tuning,
                                        cache_key, candidates, has_convolutions,
                                        model_fingerprint, step_flops, tune)
from smallbatch_jax.models import create_model
from smallbatch_jax.models.conv import conv_layer
from conftest import REPO_ROOT, parse, stopping_fit

AUTO = Strategy(conv="patches", lanes_per_program=4)


def test_candidates_start_with_auto_and_repeat_nothing():
    found = candidates(AUTO, "cpu", 13, 2, has_conv=True)
    assert found[0] == AUTO and len(found) == len(set(found)) >= 6
    assert PRESETS["sequential"] in found and Strategy(conv="patches") in found
    # On a CPU a CNN's vmapped lanes take patches: XLA's convolution, vmapped, is grouped
    # (7-31x slower on every zoo CNN); it is timed one lane per program ('sequential').
    assert not any(s.lane_map == "vmap" and s.conv == "xla" for s in found)
    # One lane per program with its steps scanned (a small model's cache-friendly shape).
    assert Strategy(conv="patches", lanes_per_program=1) in found
    # Without convolutions the conv variants are one program: only XLA's is timed.
    plain = candidates(AUTO, "cpu", 13, 2, has_conv=False)
    assert {s.conv for s in plain} == {"xla"} and Strategy() in plain
    assert plain[0] == dataclasses.replace(AUTO, conv="xla")
    # A group as large as the grid is the grid in one program: not timed twice.
    small = candidates(Strategy(conv="patches"), "cpu", 3, 1, has_conv=True)
    assert all(s.lanes_per_program < 3 for s in small) and len(small) == len(set(small))
    gpu = candidates(Strategy(), "gpu", 13, 1, has_conv=True)
    assert gpu[0] == Strategy() and {s.conv for s in gpu} == {"xla", "patches", "shifted"}


def test_candidates_time_the_other_way_of_handing_the_lanes_their_batch():
    # A dense model: 'auto' copies the batch per lane; every vmapped candidate does, and
    # folding the lanes into the first layer (one shared batch) is timed second.
    dense_auto = Strategy(conv="xla", lanes_per_program=4, shared_batch=False)
    dense = candidates(dense_auto, "cpu", 13, 2, has_conv=False)
    assert dense[0] == dense_auto
    assert dense[1] == dataclasses.replace(dense_auto, shared_batch=True)
    assert all(not s.shared_batch for s in dense[2:] if s.lane_map == "vmap")
    assert all(s.shared_batch for s in dense if s.lane_map != "vmap")
    # A CNN on a CPU: copies were measured slower there, not timed; elsewhere they are.
    assert all(s.shared_batch for s in candidates(AUTO, "cpu", 13, 2, has_conv=True))
    gpu = candidates(Strategy(), "gpu", 13, 1, has_conv=True)
    assert gpu[1] == Strategy(shared_batch=False)
    assert sum(not s.shared_batch for s in gpu) == 1
    # With several seeds each lane has its seed's batch either way: one program, timed once.
    seeds = candidates(dense_auto, "cpu", 13, 2, has_conv=False, num_seeds=3)
    assert all(s.shared_batch for s in seeds) and len(seeds) == len(dense) - 1


def test_a_kernel_of_rank_three_or_more_is_a_convolution():
    assert has_convolutions({"params": {"Conv_0": {"kernel": jnp.zeros((3, 3, 1, 4))}}})
    assert not has_convolutions({"params": {"Dense_0": {"kernel": jnp.zeros((4, 2)),
                                                        "bias": jnp.zeros(2)}}})


class FakeTimer:
    """A timer whose candidates take given ms per step and seconds, instantly; side by side
    (the run-off), the ms of `side_by_side` where given, else the same."""

    def __init__(self, run_steps, times, side_by_side=None):
        self.run_steps, self.times, self.timed, self.calls = run_steps, times, [], []
        self.side_by_side, self.runoffs = side_by_side or {}, []

    def time(self, plan, window_steps=32, give_up_ms=math.inf):
        self.timed.append(plan.strategy)
        self.calls.append((window_steps, give_up_ms))
        ms, seconds = self.times[plan.strategy]
        return Timed(plan.strategy, ms, seconds, "" if not math.isnan(ms) else "failed")

    def time_side_by_side(self, plans, window_steps):
        self.runoffs.append(([p.strategy for p in plans], window_steps))
        return [Timed(p.strategy, self.side_by_side.get(p.strategy, self.times[p.strategy][0]),
                      1.0) for p in plans]


def _plans(strategies):
    return [plan_for(s, 4) for s in strategies]


STRATEGIES = [Strategy(conv="patches"), Strategy(), PRESETS["sequential"]]


def test_tuning_keeps_the_fastest_and_stays_within_its_share_of_the_run():
    times = {STRATEGIES[0]: (2.0, 3.0), STRATEGIES[1]: (1.0, 3.0),
             STRATEGIES[2]: (math.nan, 3.0)}
    # A long run (3 s per candidate ≪ 10% of 1000 s): all timed, the fastest chosen, a
    # candidate that fails is recorded and passed over.
    timer = FakeTimer(run_steps=1_000_000, times=times)
    tuning = tune(_plans(STRATEGIES), timer, share=0.1)
    assert timer.timed == STRATEGIES and tuning.outcome == "measured"
    assert tuning.chosen == STRATEGIES[1] and tuning.timings[2].error == "failed"
    # The first at full windows; then windows of ~0.5 s at the fastest pace (2 ms → 250
    # steps, capped at 32; 1 ms: 32), given up after one window 1.5× slower than it.
    assert timer.calls == [(32, math.inf), (32, 3.0), (32, 1.5)]
    # A run of 2 s at the first candidate's speed: the next candidate's ~3 s would pass
    # 10% of it, so the first (auto's) is kept and the log says why.
    timer = FakeTimer(run_steps=1000, times=times)
    tuning = tune(_plans(STRATEGIES), timer, share=0.1)
    assert timer.timed == STRATEGIES[:1] and tuning.outcome == "short"
    assert tuning.chosen == STRATEGIES[0] and "past 10%" in tuning.note
    # 60 s: the second fits in 10% (3 + 3 ≤ 6), the third not (6 + 3 > 6).
    timer = FakeTimer(run_steps=30_000, times=times)
    tuning = tune(_plans(STRATEGIES), timer, share=0.1)
    assert timer.timed == STRATEGIES[:2] and tuning.outcome == "partial"
    # Known timings (a cache's, of a tuning that stopped) are not timed again.
    timer = FakeTimer(run_steps=30_000, times=times)
    tuning = tune(_plans(STRATEGIES), timer, share=0.1, known=tuning.timings)
    assert timer.timed == STRATEGIES[2:] and tuning.outcome == "measured"
    assert [t.strategy for t in tuning.timings] == STRATEGIES
    # Within 5% of the fastest, the first ('auto''s choice) is kept: timing noise does not
    # pick between equals.
    close = {STRATEGIES[0]: (1.04, 3.0), STRATEGIES[1]: (1.0, 3.0),
             STRATEGIES[2]: (0.5, 3.0)}
    assert tune(_plans(STRATEGIES[:2]), FakeTimer(10**6, close), 0.1).chosen == STRATEGIES[0]
    assert tune(_plans(STRATEGIES), FakeTimer(10**6, close), 0.1).chosen == STRATEGIES[2]
    with pytest.raises(ValueError, match="no candidate strategy ran"):
        tune(_plans(STRATEGIES[2:]), FakeTimer(10**6, times), share=0.1)


def test_the_fastest_few_are_timed_again_side_by_side_and_decide():
    """Timed one after another, B (1.0 ms) beat A (1.2) and C (1.25); side by side, A is the
    fastest: A is chosen. D (2.0) is beyond RUNOFF_WITHIN of the fastest: not timed again."""
    a, b, c, d = (Strategy(lanes_per_program=n) for n in (1, 2, 3, 0))
    times = {a: (1.2, 3.0), b: (1.0, 3.0), c: (1.25, 3.0), d: (2.0, 3.0)}
    timer = FakeTimer(10**9, times, side_by_side={a: 0.9, b: 1.1, c: 1.2})
    tuning = tune(_plans([d, a, b, c]), timer, share=0.1)
    assert timer.runoffs == [([b, a, c], 32)]  # fastest first; windows of ~0.5 s at 1 ms
    assert tuning.chosen == a and tuning.outcome == "measured"
    assert {t.strategy: t.ms_per_step for t in tuning.timings} == {d: 2.0, a: 0.9, b: 1.1,
                                                                   c: 1.2}
    assert {t.strategy: t.seconds for t in tuning.timings} == {d: 3.0, a: 4.0, b: 4.0,
                                                               c: 4.0}
    assert "3 fastest timed again side by side" in tuning.note
    assert "lanes_per_program=1: 1.200 → 0.900" in tuning.note
    # The run-off decides between its contenders only: side by side all three ran slower
    # than E, timed alone at 1.26 ms but fourth within RUNOFF_WITHIN (RUNOFF_SIZE = 3), and
    # one of them is chosen, not E.
    e = Strategy(lanes_per_program=4)
    timer = FakeTimer(10**9, times | {e: (1.26, 3.0)},
                      side_by_side={a: 1.5, b: 1.3, c: 1.6})
    tuning = tune(_plans([d, a, b, c, e]), timer, share=0.1)
    assert timer.runoffs == [([b, a, c], 32)] and tuning.chosen == b
    # 'auto''s choice (the first, A) is kept within KEEP_FIRST_WITHIN of the run-off's
    # fastest when it ran in the run-off; left out of it (fourth), it is not.
    ran = {e: 1.2, b: 1.25, a: 1.24}
    timer = FakeTimer(10**9, times | {e: (1.0, 3.0)}, side_by_side=ran)
    assert tune(_plans([a, b, e, c, d]), timer, share=0.1).chosen == a
    timer = FakeTimer(10**9, times | {e: (1.0, 3.0), c: (1.1, 3.0)},
                      side_by_side={e: 1.2, b: 1.25, c: 1.3})
    tuning = tune(_plans([a, b, e, c, d]), timer, share=0.1)
    assert timer.runoffs == [([b, e, c], 32)] and tuning.chosen == e
    # Within the share only: 4 candidates cost 12 s, a run-off of 3 another ~9 s; a run of
    # 150 s (at 1 ms a step) allows 15.
    timer = FakeTimer(150_000, times, side_by_side={a: 0.9})
    tuning = tune(_plans([d, a, b, c]), timer, share=0.1)
    assert timer.runoffs == [] and tuning.chosen == b and tuning.outcome == "measured"
    # A run-off that fails (e.g. out of memory with three candidates' lanes held) leaves the
    # first timings standing.
    timer = FakeTimer(10**9, times)

    def fails(plans, window_steps):
        raise RuntimeError("RESOURCE_EXHAUSTED")

    timer.time_side_by_side = fails
    tuning = tune(_plans([d, a, b, c]), timer, share=0.1)
    assert tuning.chosen == b and "side by side" not in tuning.note


def test_the_cache_stores_timings_by_what_decides_them(tmp_path):
    devices = jax.local_devices()
    key = cache_key("abc", 8, 13, 1, "default", False, 0, devices)
    assert key["jax"] == jax.__version__ and key["backend"] == "cpu"
    cache = StrategyCache(str(tmp_path / "sub" / "tuned.json"))
    assert cache.get(key) is None
    tuning = Tuning("measured", STRATEGIES[1],
                    (Timed(STRATEGIES[0], 2.0, 3.0), Timed(STRATEGIES[1], 1.0, 3.0),
                     Timed(STRATEGIES[2], math.nan, 1.0, "OOM")))
    cache.put(key, tuning)
    back = cache.get(key)
    assert back.chosen == STRATEGIES[1] and back.outcome == "measured"
    assert back.timings[:2] == tuning.timings[:2] and back.timings[2].error == "OOM"
    assert math.isnan(back.timings[2].ms_per_step)
    assert cache.get({**key, "batch_size": 16}) is None  # another m: another entry
    (tmp_path / "sub" / "tuned.json").write_text("not json")
    assert cache.get(key) is None  # unreadable: tuned again, not an error


def test_fingerprints_tell_models_apart_and_ignore_values():
    a = {"params": {"Dense_0": {"kernel": jnp.zeros((4, 2))}}}
    b = {"params": {"Dense_0": {"kernel": jnp.ones((4, 2))}}}
    c = {"params": {"Dense_0": {"kernel": jnp.zeros((4, 3))}}}
    assert model_fingerprint("m", a) == model_fingerprint("m", b)
    assert model_fingerprint("m", a) != model_fingerprint("m", c)
    assert model_fingerprint("m", a) != model_fingerprint("other input", a)


def test_a_real_tuning_times_each_candidate_then_reads_the_cache(tiny_digits, tmp_path):
    """On this process's one CPU device, the tiny digits data, a small CNN: timed once
    (every candidate, a long run), then read from the cache: no trainer is built."""
    built = []
    grid = LaneGrid(seeds=(0,), base_lrs=(0.01, 0.1, 1.0), weight_decay=0.0,
                    warmup_fraction=0.0, momentum=0.0)
    source = DeviceBatches(tiny_digits, 8, 40)

    def trainer_for(plan):
        built.append(plan.strategy)
        step = LaneStep(create_model("small_cnn", 10, conv=conv_layer(plan.strategy.conv)), 8,
                        tiny_digits.image_shape, conv=plan.strategy.conv)
        return LaneTrainer(step, plan, compact=False)

    timer = StrategyTimer(trainer_for, jnp.asarray([0], jnp.int32), grid.hparams(), source,
                          run_steps=10**9)
    choice = StrategyChoice("tune", tune_cache=str(tmp_path / "tuned.json"))
    kwargs = dict(timer=timer, model_fingerprint="small_cnn", has_conv=True, num_seeds=1)
    plan = make_plan(choice, grid.num_lanes, 8, **kwargs)
    expected = candidates(StrategyChoice("auto").resolve(8, 3, "cpu", 1), "cpu", 3, 1, True)
    assert built[:len(expected)] == expected and plan.tuning.outcome == "measured"
    runoff = built[len(expected):]  # the fastest few, timed again side by side (if close)
    assert len(runoff) <= 3 and len(set(runoff)) == len(runoff) and set(runoff) <= set(expected)
    assert (len(runoff) >= 2) == ("side by side" in plan.tuning.note)
    fastest = min(plan.tuning.timings, key=lambda t: t.ms_per_step)
    first = plan.tuning.timings[0]
    assert plan.strategy == (first.strategy if first.ms_per_step <= 1.05 * fastest.ms_per_step
                             else fastest.strategy)
    assert all(t.ms_per_step > 0 for t in plan.tuning.timings)
    stored = json.loads((tmp_path / "tuned.json").read_text())
    assert len(stored) == 1 and list(stored.values())[0]["key"]["batch_size"] == 8
    built.clear()
    again = make_plan(choice, grid.num_lanes, 8, **kwargs)
    assert built == [] and again.strategy == plan.strategy
    assert again.tuning.outcome == "cached"
    # A resumed run keeps the strategy it started with, whatever the cache says.
    resumed = make_plan(choice, grid.num_lanes, 8, resumed=PRESETS["sequential"], **kwargs)
    assert built == [] and resumed.strategy == PRESETS["sequential"]
    assert resumed.tuning.outcome == "resumed"
    # Other presets are not tuned; 'tune' cannot be without a timer.
    assert make_plan(StrategyChoice("patches"), 3, 8, **kwargs).tuning is None
    with pytest.raises(ValueError, match="needs a timer"):
        make_plan(choice, grid.num_lanes, 8)


def test_a_tuned_run_records_its_timings_and_resumes_with_its_strategy(tmp_path, monkeypatch,
                                                                       caplog):
    from smallbatch_jax.run import train as lr_sweep

    # (A run of seconds: tuned all the same here, the pre-check's threshold at 0.)
    monkeypatch.setattr(tune_module, "CANDIDATE_SECONDS", {"cpu": 0.0, "gpu": 0.0})

    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.epochs, config.batch_size, config.base_lrs = 2, 64, (2.0**-9, 2.0**-7)
        config.strategy.preset = "tune"
        config.strategy.tune_share = 1.0
        config.strategy.tune_cache = str(tmp_path / "tuned.json")
    real_fit = lr_sweep.fit
    monkeypatch.setattr(lr_sweep, "fit", stopping_fit(after_epoch=1))
    with pytest.raises(KeyboardInterrupt):
        lr_sweep.train_and_evaluate(config, str(tmp_path / "run"))
    monkeypatch.setattr(lr_sweep, "fit", real_fit)
    record = json.loads((tmp_path / "run" / "config.json").read_text())
    assert record["tuning"]["outcome"] in ("measured", "partial", "short")
    assert record["tuning"]["chosen"] == record["strategy"]
    assert all(t["ms_per_step"] > 0 for t in record["tuning"]["timings"])
    # Whatever the cache says now, the resumed run keeps the strategy it started with, and
    # config.json the record of how it was chosen (a resumed run's files are a straight one's).
    (tmp_path / "tuned.json").write_text("{}")
    with caplog.at_level("INFO"):
        lr_sweep.train_and_evaluate(config, str(tmp_path / "run"))
    resumed = json.loads((tmp_path / "run" / "config.json").read_text())
    assert resumed["strategy"] == record["strategy"]
    assert resumed["tuning"] == record["tuning"]
    assert "the strategy this run started with" in caplog.text
    # Tuning compiled its candidates before the first epoch: the wall time the run reports
    # counts that time too, so that what compiling took is a part of it.
    with open(tmp_path / "run" / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert 0 < float(row["compile_seconds"]) <= float(row["wall_seconds"])
    # The recorded strategy given by hand reproduces the tuned run bit for bit (the README's
    # way to rerun a tuned result elsewhere: strategies agree only within float rounding).
    with config.unlocked():
        config.strategy.update(preset="manual", **record["strategy"])
    lr_sweep.train_and_evaluate(config, str(tmp_path / "manual"))
    timing = ("wall_seconds", "compile_seconds")
    read = lambda run: [{k: v for k, v in r.items() if k not in timing}
                        for r in csv.DictReader(open(tmp_path / run / "results.csv"))]
    assert read("manual") == read("run")
    assert ((tmp_path / "manual" / "state.msgpack").read_bytes()
            == (tmp_path / "run" / "state.msgpack").read_bytes())


def test_a_slow_model_gets_short_windows_and_slow_candidates_one_window(tiny_digits):
    """After a first candidate at 200 ms per step, windows of 0.5 s / 200 ms = 3 steps; at
    1.4 s per step (ResNet-20's lanes at m = 32 here), of one step, so that a candidate 80×
    slower costs two steps, not eight; a real candidate far slower than a tiny threshold is
    timed on one window."""
    times = {STRATEGIES[0]: (200.0, 3.0), STRATEGIES[1]: (300.0, 3.0),
             STRATEGIES[2]: (100.0, 3.0)}
    timer = FakeTimer(run_steps=10**9, times=times)
    tune(_plans(STRATEGIES), timer, share=0.1)
    assert timer.calls == [(32, math.inf), (3, 300.0), (3, 300.0)]
    times = {STRATEGIES[0]: (1400.0, 3.0), STRATEGIES[1]: (110_000.0, 3.0)}
    timer = FakeTimer(run_steps=10**9, times=times)
    tune(_plans(STRATEGIES[:2]), timer, share=0.1)
    assert timer.calls == [(32, math.inf), (1, 2100.0)]
    grid = LaneGrid(seeds=(0,), base_lrs=(0.01,), weight_decay=0.0, warmup_fraction=0.0,
                    momentum=0.0)
    step = LaneStep(create_model("small_cnn", 10), 8, tiny_digits.image_shape)
    windows = []

    def trainer_for(plan):
        trainer = LaneTrainer(step, plan, compact=False)
        epoch = trainer.train_epoch

        def counted(*args, **kwargs):
            windows.append(args[2].steps_per_epoch)
            return epoch(*args, **kwargs)

        trainer.train_epoch = counted
        return trainer

    real = StrategyTimer(trainer_for, jnp.asarray([0], jnp.int32), grid.hparams(),
                         DeviceBatches(tiny_digits, 8, 40), run_steps=100)
    given_up = real.time(plan_for(Strategy(), 1), window_steps=4, give_up_ms=1e-6)
    assert windows == [4, 4] and given_up.ms_per_step > 0  # compiling, then one timed
    windows.clear()
    kept = real.time(plan_for(Strategy(), 1), window_steps=4)
    assert len(windows) >= 2 + 3 and kept.ms_per_step > 0  # then 3 repeats of ≥ 0.25 s


def test_side_by_side_the_candidates_take_turns(tiny_digits):
    """The run-off with real trainers: each plan started and compiled once, then 3 rounds in
    which each runs its windows in turn."""
    grid = LaneGrid(seeds=(0,), base_lrs=(0.01, 0.1), weight_decay=0.0, warmup_fraction=0.0,
                    momentum=0.0)
    step = LaneStep(create_model("small_cnn", 10), 8, tiny_digits.image_shape)
    built, windows = [], []

    def trainer_for(plan):
        built.append(plan.strategy)
        trainer = LaneTrainer(step, plan, compact=False)
        epoch = trainer.train_epoch

        def counted(*args, **kwargs):
            windows.append(plan.strategy.lanes_per_program)
            return epoch(*args, **kwargs)

        trainer.train_epoch = counted
        return trainer

    timer = StrategyTimer(trainer_for, jnp.asarray([0], jnp.int32), grid.hparams(),
                          DeviceBatches(tiny_digits, 8, 40), run_steps=100)
    plans = [plan_for(Strategy(lanes_per_program=n), 2) for n in (0, 1)]
    timed = timer.time_side_by_side(plans, window_steps=4)
    assert built == [p.strategy for p in plans]
    assert [t.strategy for t in timed] == built and all(t.ms_per_step > 0 for t in timed)
    assert windows[:4] == [0, 0, 1, 1]  # each compiled and timed once
    rounds = windows[4:]  # then each in turn: the same number of windows per round
    assert len(rounds) % 3 == 0 and rounds[0] == 0 and rounds[-1] == 1
    per_round = len(rounds) // 3
    assert rounds == rounds[:per_round] * 3


def test_auto_tunes_where_nothing_was_measured_on_the_model(tmp_path):
    auto = StrategyChoice("auto")
    # CPU: the rules are a fallback, not a measurement of the model at hand: every model
    # tunes, the reduced AlexNet they were measured on included (re-measured, they are no
    # longer its fastest at m = 8 and 16: docs/benchmarks.md).
    assert auto.tunes("alexnet", True, "cpu") and auto.tunes("mine:net", False, "cpu")
    assert auto.tunes("resnet20", True, "cpu") and auto.tunes("small_cnn", True, "cpu")
    assert auto.tunes("alexnet_bn", True, "cpu") and auto.tunes("alexnet", False, "cpu")
    # A GPU: the packaged table was measured on the reduced AlexNet without BN; a user's
    # model named like it is another network.
    assert not auto.tunes("alexnet", True, "gpu") and auto.tunes("alexnet", False, "gpu")
    assert auto.tunes("resnet32", True, "gpu") and auto.tunes("alexnet_bn", True, "gpu")
    assert auto.tunes("alexnet", True, "tpu")  # no table for this backend
    table = tmp_path / "table.json"
    table.write_text(json.dumps({"model": "resnet32", "choices": {"8": {}}}))
    mine = StrategyChoice("auto", table=str(table))
    assert not mine.tunes("resnet32", True, "gpu") and mine.tunes("alexnet", True, "gpu")
    # A table given on a CPU is what 'auto' reads there (choose_strategy): it decides.
    assert not mine.tunes("resnet32", True, "cpu") and mine.tunes("alexnet", True, "cpu")
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"model": "mine:net", "choices": {"8": {}}}))
    assert not StrategyChoice("auto", table=str(users)).tunes("mine:net", False, "cpu")
    assert StrategyChoice("tune").tunes("alexnet", True, "cpu")
    assert not StrategyChoice("patches").tunes("mine:net", False, "gpu")


def test_a_run_too_short_to_repay_tuning_is_not_tuned_nor_timed(tmp_path, tiny_digits,
                                                                 monkeypatch):
    """Judged before compiling: 10 steps of a small CNN take milliseconds even at the
    machine's best; 'auto''s choice is kept, nothing is timed or cached, and the record
    says why. The same run with a billion steps is tuned."""
    # (How long each candidate is timed is not this test's subject: one window a repeat.)
    monkeypatch.setattr(tune_module, "MIN_REPEAT_SECONDS", 0.0)
    grid = LaneGrid(seeds=(0,), base_lrs=(0.01, 0.1), weight_decay=0.0, warmup_fraction=0.0,
                    momentum=0.0)
    step = LaneStep(create_model("small_cnn", 10), 8, tiny_digits.image_shape)
    variables = jax.eval_shape(step.init_variables, jax.random.key(0))
    flops = step_flops(step, variables)
    assert 1e5 < flops < 1e9  # (a few MFLOPs a step at m = 8)
    built = []

    def trainer_for(plan):
        built.append(plan.strategy)
        return LaneTrainer(step, plan, compact=False)

    choice = StrategyChoice("tune", tune_cache=str(tmp_path / "tuned.json"))
    for run_steps, tuned in ((10, False), (10**9, True)):
        timer = StrategyTimer(trainer_for, jnp.asarray([0], jnp.int32), grid.hparams(),
                              DeviceBatches(tiny_digits, 8, 40), run_steps=run_steps,
                              flops_per_step=2 * flops)
        plan = make_plan(choice, 2, 8, timer=timer, model_fingerprint="x", has_conv=True,
                         num_seeds=1)
        if not tuned:
            assert plan.tuning.outcome == "skipped" and "too short" in plan.tuning.note
            assert built == [] and not (tmp_path / "tuned.json").exists()
            assert plan.strategy == StrategyChoice("auto").resolve(8, 2, "cpu", 1)
    assert built and plan.tuning.outcome == "measured"


def test_auto_tunes_a_built_in_model_in_a_run_long_enough(tmp_path, monkeypatch):
    """The default run's small_cnn under 'auto', in a run long enough to repay tuning (the
    pre-check's threshold at 0 here): measured, not 'auto''s rule taken on trust."""
    from smallbatch_jax.run.build import create_run, prepare

    monkeypatch.setattr(tune_module, "CANDIDATE_SECONDS", {"cpu": 0.0, "gpu": 0.0})
    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.epochs, config.batch_size, config.base_lrs = 1, 32, (2.0**-9, 2.0**-7)
        config.strategy.tune_cache = str(tmp_path / "tuned.json")
    assert config.strategy.preset == "auto" and config.model == "small_cnn"
    run = create_run(prepare(config))
    assert run.plan.tuning.outcome in ("measured", "partial", "short")
    assert run.plan.tuning.timings and (tmp_path / "tuned.json").exists()


class _Dense(nn.Module):
    """A user's model without convolutions."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        return nn.Dense(10)(nn.relu(nn.Dense(32)(x.reshape((x.shape[0], -1)))))


@pytest.mark.parametrize("model,has_conv", [(None, True), (_Dense(), False)])
def test_a_short_run_keeps_autos_choice_for_the_model_it_has(model, has_conv):
    """'auto''s choice on a CPU above m = 16 depends on the model's convolutions: one lane
    per program for a CNN, every lane in one vmapped program for a user's dense model, each
    lane with its copy of the batch. 'auto' would tune both (on a CPU it tunes every model);
    a run this short keeps 'auto''s choice and says why."""
    from smallbatch_jax.run.build import create_run, prepare

    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.epochs, config.batch_size, config.base_lrs = 1, 32, (2.0**-9, 2.0**-7)
    run = create_run(prepare(config, model=model))
    assert run.plan.tuning.outcome == "skipped" and "too short" in run.plan.tuning.note
    assert run.plan.strategy == (PRESETS["sequential"] if has_conv
                                 else Strategy(shared_batch=False))
