"""The GPU check's parts that decide things: candidates, the choice, the estimate, and the
summaries of compiled programs and profiles."""

import gzip
import json
import os
import subprocess
import sys
import textwrap

import pytest
from flax import linen as nn

from smallbatch_jax.diagnostics.candidates import (best_candidates, fastest_per_batch_size,
                                                   parse_candidate, parse_candidate_spec)
from smallbatch_jax.diagnostics.estimates import (full_sweep_estimate, interpolated_ms,
                                                  run_seconds)
from smallbatch_jax.diagnostics.machine import pack, unpack_cache
from smallbatch_jax.diagnostics.program_stats import (hlo_stats, profile_summary,
                                                      train_flops_per_example)
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_candidates_parse_to_strategies():
    assert parse_candidate("vmap/xla") == Strategy()
    assert parse_candidate("map/shifted") == Strategy(lane_map="map", conv="shifted")
    assert parse_candidate("vmap/xla/unroll8") == Strategy(scan_unroll=8)
    assert parse_candidate("vmap/xla/steps1/unroll2") == Strategy(steps_per_dispatch=1,
                                                                  scan_unroll=2)
    for bad in ("vmap", "vmap/xla/8", "pmap/xla", "vmap/fft", "vmap/xla/steps"):
        with pytest.raises(ValueError):
            parse_candidate(bad)


def test_a_candidate_may_name_its_precision():
    assert parse_candidate_spec("vmap/patches", "highest") == (Strategy(conv="patches"),
                                                               "highest")
    assert parse_candidate_spec("vmap/patches@default", "highest") == (
        Strategy(conv="patches"), "default")
    with pytest.raises(ValueError):
        parse_candidate_spec("vmap/patches@tf32", "highest")


class _Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


def test_training_flops_per_example_are_xlas_count_of_the_network():
    # A linear classifier on 8×8×1 inputs: 640 multiply-adds forward, 640 more for the
    # weights' gradient (the input's is never needed), plus the loss's few dozen operations.
    flops = train_flops_per_example(_Linear(), (8, 8, 1), 10)
    assert 2 * 2 * 640 <= flops <= 2 * 2 * 640 + 200
    assert train_flops_per_example(create_model("small_cnn", 10), (8, 8, 1), 10) > 10 * flops


# Two CPU devices, the default one the second: as on a GPU machine, where the default device
# is not the one the count must be compiled on.
COUNT_OFF_THE_DEFAULT_DEVICE = textwrap.dedent("""
    import json
    import jax
    jax.config.update("jax_default_device", jax.devices()[1])
    from smallbatch_jax.diagnostics.program_stats import training_gradient_program
    from smallbatch_jax.models import create_model

    program = training_gradient_program(create_model("small_cnn", 10), (8, 8, 1), 10)
    devices = {str(d) for s in jax.tree.leaves(program.input_shardings) for d in s.device_set}
    print("RESULT" + json.dumps({"devices": sorted(devices), "first": str(jax.devices()[0]),
                                 "default": str(jax.devices()[1])}))
""")


def test_the_flop_count_compiles_on_the_cpu_whatever_the_default_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", COUNT_OFF_THE_DEFAULT_DEVICE], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    assert out["devices"] == [out["first"]] and out["first"] != out["default"]


def test_a_returned_compilation_cache_unpacks_into_the_next_checks_cache(tmp_path):
    cache = tmp_path / "check1" / "jax_cache"
    (cache / "sub").mkdir(parents=True)
    (cache / "program-a").write_bytes(b"compiled a")
    (cache / "sub" / "program-b").write_bytes(b"compiled b")
    assert pack(str(cache), str(tmp_path / "jax_cache.tar.gz"))
    fresh = tmp_path / "check2" / "cache"
    assert unpack_cache(str(tmp_path / "jax_cache.tar.gz"), str(fresh)) == 2
    assert (fresh / "program-a").read_bytes() == b"compiled a"
    assert (fresh / "sub" / "program-b").read_bytes() == b"compiled b"
    assert unpack_cache(str(tmp_path / "missing.tar.gz"), str(fresh)) == 0


def _row(m, lanes, baseline=10.0, torch=None):
    row = {"batch_size": m, "baseline": {"step_ms": baseline}, "limit": {"step_ms": 1.0},
           "lanes": {name: {"step_ms": ms, "precision": precision}
                     for name, (ms, precision) in lanes.items()}}
    if torch:
        row["torch"] = {"step_ms": torch}
    return row


def test_best_candidates_rank_by_mean_slowdown_over_every_m():
    rows = [_row(2, {"a": (1.0, "highest"), "b": (2.0, "highest"), "c": (1.5, "highest")}),
            _row(8, {"a": (4.0, "highest"), "b": (2.0, "highest"), "c": (2.2, "highest")})]
    # Slowdowns: a (1 + 2)/2 = 1.5, b (2 + 1)/2 = 1.5, c (1.5 + 1.1)/2 = 1.3.
    assert best_candidates(rows, 2)[0] == "c"
    # A candidate the budget skipped at some m does not compete.
    rows[1]["lanes"].pop("c")
    assert set(best_candidates(rows, 2)) == {"a", "b"}
    # At one precision: the other one's candidates neither compete nor set the pace.
    rows = [_row(2, {"a": (1.0, "default"), "a@highest": (0.5, "highest"), "b": (2.0, "default")}),
            _row(8, {"a": (3.0, "default"), "a@highest": (0.5, "highest"), "b": (2.0, "default")})]
    assert best_candidates(rows, 1) == ["a@highest"]
    assert best_candidates(rows, 2, "default") == ["a", "b"]


def test_the_fastest_per_m_is_taken_at_one_precision():
    rows = [_row(2, {"a": (1.0, "highest"), "a@default": (0.5, "default"), "b": (2.0, "highest")}),
            _row(8, {"a@default": (0.5, "default")})]
    chosen = fastest_per_batch_size(rows, "highest")
    assert {m: name for m, (name, _) in chosen.items()} == {2: "a"}


def test_step_times_are_interpolated_in_log_log():
    measured = {2: 1.0, 8: 4.0}
    assert interpolated_ms(measured, 4) == pytest.approx(2.0)
    assert interpolated_ms(measured, 8) == 4.0
    assert interpolated_ms(measured, 32) == pytest.approx(16.0)  # ∝ m beyond the last
    assert interpolated_ms(measured, 1) == 1.0  # latency-bound below the first


def test_the_full_fig1_estimate_sums_every_m():
    rows = [_row(m, {"a": (1.0, "highest")}, baseline=10.0, torch=100.0)
            for m in (2, 2048)]
    estimate = full_sweep_estimate(rows, "highest")["minutes"]
    steps = sum(82 * (50_000 // 2**k) for k in range(1, 12))  # every step costs 1 ms
    assert estimate["ours"] == pytest.approx(steps / 6e4)
    assert estimate["jax_sequential"] == pytest.approx(10 * steps / 6e4)
    assert estimate["torch_sequential"] == pytest.approx(100 * steps / 6e4)


def test_one_measured_m_gives_no_full_fig1_estimate():
    # m = 2's steps cannot be read from m = 512's time alone.
    rows = [_row(512, {"a": (25.0, "highest")}, baseline=38.0)]
    assert full_sweep_estimate(rows, "highest")["minutes"] == {}
    rows.append(_row(2048, {"a": (95.0, "highest")}))
    del rows[-1]["baseline"]
    estimate = full_sweep_estimate(rows, "highest")
    assert set(estimate["minutes"]) == {"ours"}  # the baseline is still at one m only
    assert estimate["from_batch_sizes"] == {"ours": [512, 2048]}


def test_hlo_stats_count_what_matters():
    text = """
  %convolution.1 = f32[2,8,8,6] convolution(%a, %b), window={size=3x3}, feature_group_count=3
  %convolution.2 = f32[2,8,8,6] convolution(%a, %c), window={size=3x3}
  %cc = (f32[1]) custom-call(%x), custom_call_target="__cudnn$convForward", feature_group_count=13
  %g = f32[4,4] custom-call(%x), custom_call_target="__cublas$gemm"
  %fusion.3 = f32[4] fusion(%x), kind=kLoop
  %dot.4 = f32[4,4] dot(%x, %y)
  %while.5 = (s32[]) while(%t), condition=%c, body=%b
"""
    assert hlo_stats(text) == {"convolutions": 2, "grouped_convolutions": 2, "cudnn_calls": 1,
                               "cublas_calls": 1, "dots": 1, "fusions": 1, "while_loops": 1}


def test_profile_summary_reads_a_gpu_trace(tmp_path):
    """A trace shaped as the profiler writes one on a GPU: kernels on a stream, the HLO ops
    they come from on 'XLA Ops'; busy time is the union of the kernels."""
    events = [
        {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
        {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
        {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name",
         "args": {"name": "Stream #13(Compute)"}},
        {"ph": "M", "pid": 2, "tid": 8, "name": "thread_name", "args": {"name": "XLA Ops"}},
        {"ph": "X", "pid": 1, "tid": 1, "ts": 0, "dur": 500, "name": "python"},
        {"ph": "X", "pid": 2, "tid": 7, "ts": 0, "dur": 100, "name": "cudnn_conv"},
        {"ph": "X", "pid": 2, "tid": 7, "ts": 50, "dur": 100, "name": "cudnn_conv"},
        {"ph": "X", "pid": 2, "tid": 7, "ts": 300, "dur": 100, "name": "gemm"},
        {"ph": "X", "pid": 2, "tid": 8, "ts": 0, "dur": 150, "name": "convolution.1"},
    ]
    path = tmp_path / "plugins" / "profile" / "run"
    path.mkdir(parents=True)
    with gzip.open(path / "perfetto_trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)
    summary = profile_summary(str(tmp_path))
    assert list(summary) == ["/device:GPU:0"]  # the host is left out when a device is there
    kernels = summary["/device:GPU:0"]["kernels"]
    assert kernels["busy_ms"] == pytest.approx(0.25) and kernels["span_ms"] == pytest.approx(0.4)
    assert kernels["top"][0] == {"name": "cudnn_conv", "total_ms": pytest.approx(0.2)}
    assert summary["/device:GPU:0"]["hlo_ops"]["top"][0]["name"] == "convolution.1"
    assert "error" in profile_summary(str(tmp_path / "empty"))


def test_run_seconds_from_step_times():
    from smallbatch_jax.diagnostics.estimates import COMPILE_SECONDS, EVALUATION_FACTOR

    assert run_seconds({}, 8, 100, 82) == 0.0  # nothing measured: nothing expected
    assert run_seconds({8: 2.0}, 8, 100, 10) == pytest.approx(
        EVALUATION_FACTOR * 10 * 100 * 2e-3 + COMPILE_SECONDS)
    # Half the lanes: half the steps' time, the same compilation.
    assert run_seconds({8: 2.0}, 8, 100, 10, lane_fraction=0.5) == pytest.approx(
        EVALUATION_FACTOR * 5 * 100 * 2e-3 + COMPILE_SECONDS)


def test_fig8_plans_the_epochs_that_fit_with_compilation_and_evaluation():
    """Run 8 (docs/gpu/2026-11-27-h100) planned 39 epochs from the timed epochs alone, with
    every m's expected time 0, so its last m started without the time to finish and was cut
    off. With its figures the plan now leaves each m's compilation and evaluation room, and
    what every m is expected to take fits the time left."""
    from smallbatch_jax.diagnostics.estimates import COMPILE_SECONDS, fig8_plan

    timed = {8: 3.70, 32: 2.55, 128: 2.16, 512: 2.06}  # s per epoch, run 8's timing
    epochs, expected = fig8_plan(timed, seconds_left=452.0, max_epochs=82)
    assert 1 <= epochs < 39
    assert all(expected[m] > epochs * timed[m] + COMPILE_SECONDS for m in timed)
    assert sum(expected.values()) <= 452.0
    # What run 8 spent per m at this length (its median epoch × epochs + its first epoch's
    # excess, from its log) fits what was expected.
    spent = {8: 3.9 * epochs + 25.5, 32: 2.8 * epochs + 13.3, 128: 2.5 * epochs + 14.6,
             512: 2.5 * epochs + 11.3}
    assert all(spent[m] <= expected[m] for m in timed)
    assert fig8_plan(timed, seconds_left=452.0, max_epochs=10)[0] == 10
    assert fig8_plan(timed, seconds_left=100.0, max_epochs=82)[0] == 0  # compiling alone


def test_pack_leaves_out_states_and_refuses_what_would_not_come_back(tmp_path):
    import tarfile

    (tmp_path / "sweep" / "m8").mkdir(parents=True)
    (tmp_path / "sweep" / "m8" / "results.csv").write_text("a,b\n")
    (tmp_path / "sweep" / "m8" / "state.msgpack").write_bytes(b"x" * 1000)
    assert pack(str(tmp_path / "sweep"), str(tmp_path / "sweep.tar.gz"))
    with tarfile.open(tmp_path / "sweep.tar.gz") as tar:
        assert "sweep/m8/results.csv" in tar.getnames()
        assert "sweep/m8/state.msgpack" not in tar.getnames()
    (tmp_path / "sweep" / "m8" / "big.bin").write_bytes(__import__("os").urandom(300_000))
    assert not pack(str(tmp_path / "sweep"), str(tmp_path / "big.tar.gz"), max_mib=0.1)
    assert not (tmp_path / "big.tar.gz").exists()


def test_a_sweep_run_again_skips_what_finished_and_what_does_not_fit(tmp_path, monkeypatch):
    """sweep_until: finished m are skipped (a rerun of the check resumes), an m whose expected
    time does not fit the budget is skipped and said so, the rest trains and is packed; a
    workdir whose finished runs are of another config is refused and said so."""
    import os
    import tarfile

    from conftest import REPO_ROOT
    from smallbatch_jax.config_args import sibling_config
    from smallbatch_jax.diagnostics import gpu_check_figures
    from smallbatch_jax.diagnostics.timing import Budget, Clock
    from smallbatch_jax.run.directory import RunDirectory
    from smallbatch_jax.study import sweep

    trained = []

    def fake_run(spec, workdir):
        trained.append(spec.batch_size)
        os.makedirs(workdir)
        RunDirectory(workdir).write_config({"config": spec.config})
        with open(os.path.join(workdir, "results.csv"), "w") as f:
            f.write("batch_size,base_lr,median_test_metric\n")
    monkeypatch.setattr(sweep, "train", fake_run)
    monkeypatch.setattr(sweep, "merge_until_stable", lambda *args: [])
    monkeypatch.setattr(gpu_check_figures, "merge_until_stable", lambda *args: [])
    config = sibling_config(os.path.join(REPO_ROOT, "configs", "x.py"), "default")
    config.batch_sizes = (2, 8, 32)
    clock = Clock(deadline_minutes=10)
    budget = Budget(clock, minutes=1)
    workdir, archive = str(tmp_path / "fig1" / "grid"), str(tmp_path / "fig1.tar.gz")
    finished, = sweep.prepare_runs(config, [sweep.Run("m2", {"batch_size": 2})])
    fake_run(finished, os.path.join(workdir, "m2"))  # finished before
    trained.clear()
    done = gpu_check_figures.sweep_until(config, workdir, budget, clock, archive, "Fig 1",
                                         seconds=lambda m: 1e6 if m == 32 else 1.0)
    assert trained == [8]
    assert list(done["wall_seconds"]) == ["m8"] and done["skipped"][0].startswith("m32")
    with tarfile.open(archive) as tar:
        assert "fig1/grid/m8/results.csv" in tar.getnames()
    config.epochs = 3  # another config: its results would be merged with the others
    done = gpu_check_figures.sweep_until(config, workdir, budget, clock, archive, "Fig 1")
    assert trained == [8] and "another config" in done["refused"]


def test_a_candidate_whose_lanes_diverge_is_dropped_and_the_check_goes_on(monkeypatch):
    """A candidate diverging at its first dispatch or during the timed repeats is reported in
    the row's 'diverged', never timed or chosen; the other candidates are timed as usual."""
    import os

    from conftest import REPO_ROOT
    from smallbatch_jax.config_args import load_config
    from smallbatch_jax.diagnostics import gpu_check_throughput as throughput
    from smallbatch_jax.diagnostics.gpu_check_markdown import markdown
    from smallbatch_jax.diagnostics.timing import Budget, Clock, LaneDiverged, synthetic_dataset

    calls = []

    def fake_lanes_runner(run_config, dataset, num_lanes, timed_steps):
        conv = run_config.strategy.conv
        calls.append(conv)
        if conv == "patches":  # diverges at once
            raise LaneDiverged("a lane diverged")
        repeats = []

        def run():
            repeats.append(1)
            if conv == "shifted" and len(repeats) == 2:  # diverges in its second repeat
                raise LaneDiverged("a lane diverged")
            return 1e-3
        return (0.5, timed_steps, run), {"steps_per_dispatch": timed_steps, "program_mib": 1.0,
                                         "hlo": hlo_stats("")}

    monkeypatch.setattr(throughput, "lanes_runner", fake_lanes_runner)
    config = load_config(os.path.join(REPO_ROOT, "configs", "gpu_check.py") + ":tiny")
    config.throughput.baselines = False
    config.throughput.repeats = 3
    candidates = {spec: (parse_candidate(spec), "highest")
                  for spec in ("vmap/patches", "vmap/xla", "vmap/shifted")}
    clock = Clock(deadline_minutes=10)
    row = throughput.measure_row(config, synthetic_dataset((8, 8, 1), 10, 16), 4, candidates,
                                 Budget(clock, minutes=5), clock, profile_dir=None)
    assert calls == ["patches", "xla", "shifted"]
    assert row["diverged"] == ["vmap/patches", "vmap/shifted"]
    assert list(row["lanes"]) == ["vmap/xla"] and row["lanes"]["vmap/xla"]["step_ms"] == 1.0
    assert "| 4 | | diverged (dropped): vmap/patches, vmap/shifted |" in markdown(
        {"machine": {"device_kind": "cpu", "jax": "", "jaxlib": "", "date": "", "platform": "",
                     "num_devices": 1}, "config": config.to_dict(),
         "throughput": {"rows": [row]}})


def test_each_batch_size_gets_an_equal_share_of_what_is_left(monkeypatch, tmp_path):
    """The throughput section's budget is split over the m still to measure: a slow first m
    cannot leave the others without a candidate. Time is faked: each compile takes 1 s."""
    import os
    import types

    from conftest import REPO_ROOT
    from smallbatch_jax.config_args import load_config
    from smallbatch_jax.diagnostics import gpu_check_throughput as throughput, timing
    from smallbatch_jax.diagnostics.timing import Clock, synthetic_dataset

    now = [0.0]
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    compiled = []

    def fake_lanes_runner(run_config, dataset, num_lanes, timed_steps):
        compiled.append((run_config.batch_size, run_config.strategy.conv))
        now[0] += 1.0
        return (0.5, timed_steps, lambda: 1e-3), {"steps_per_dispatch": timed_steps,
                                                  "program_mib": 1.0,
                                                  "hlo": hlo_stats("")}

    monkeypatch.setattr(throughput, "lanes_runner", fake_lanes_runner)
    monkeypatch.setattr(throughput, "pack", lambda *args: True)
    config = load_config(os.path.join(REPO_ROOT, "configs", "gpu_check.py") + ":tiny")
    tp = config.throughput
    tp.baselines, tp.num_best, tp.profile_batch_sizes = False, 1, ()
    tp.batch_sizes_all, tp.batch_sizes_best = (2, 4, 8), (16,)
    tp.candidates = ("vmap/patches", "vmap/xla", "vmap/shifted")
    tp.budget_minutes = 6.5 / 60  # 6.5 s: 1.625 s per m at first
    clock = Clock(deadline_minutes=10)
    record = {"machine": {"device_kind": "cpu", "date": ""}}
    throughput.throughput_section(config, synthetic_dataset((8, 8, 1), 10, 16), clock, record,
                                  str(tmp_path), save=lambda: None)
    # m = 2: 1.625 s, two compiles (the second begins at 1 s); m = 4: 4.5 s left, 1.5 each:
    # two; m = 8: 2.5 s left, 1.25: two; m = 16: 0.5 s left: one (of the best and its
    # other precision).
    assert [m for m, _ in compiled] == [2, 2, 4, 4, 8, 8, 16]
    assert [row["skipped"] for row in record["throughput"]["rows"]] == [
        ["vmap/shifted"]] * 3 + [["vmap/patches@default"]]
