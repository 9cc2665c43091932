import json
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO_ROOT, quick_tuning_command
from smallbatch_jax.diagnostics.benchmark import (format_table, measure, ratios,
                                                 scanned_limit_conv, scanned_ratio,
                                                 time_python_loop)
from smallbatch_jax.diagnostics.timing import Timing, synthetic_dataset
from smallbatch_jax.engine.strategy import Strategy
from smallbatch_jax.models import create_model


def test_timing_separates_compilation():
    timing = Timing(first_call_s=5.0, first_call_steps=10, step_s=(0.2, 0.1, 0.3))
    assert timing.median_step_s == 0.2
    assert timing.compile_s == 5.0 - 10 * 0.2


def test_synthetic_dataset_shapes():
    ds = synthetic_dataset((8, 8, 1), 10, 40)
    assert ds.train_images.shape == (40, 8, 8, 1) and ds.train_images.dtype == np.uint8
    assert ds.num_classes == 10


def test_python_loop_baseline_runs_every_step(tiny_digits):
    timing = time_python_loop(create_model("small_cnn_bn", 10), tiny_digits, batch_size=4,
                              num_runs=2, steps=3, repeats=2)
    assert len(timing.step_s) == 2 and all(t > 0 for t in timing.step_s)
    assert timing.first_call_steps == 1


def test_measure_gives_one_row_with_every_method():
    strategies = {"auto": Strategy(conv="patches"), "reference": Strategy()}
    row = measure("small_cnn", (8, 8, 1), 10, batch_size=2, num_lanes=3, steps=4, repeats=1,
                  strategies=strategies)
    assert (row["batch_size"], row["num_lanes"], row["steps"]) == (2, 3, 4)
    assert set(row["lanes"]) == {"auto", "reference"}
    for figures in [row["baseline"], row["limit"], row["limit_scanned"],
                    *row["lanes"].values()]:
        assert figures["examples_lanes_per_s"] > 0 and figures["step_ms"] > 0
    # The scanned limit: one model on K·m examples per step, under the convolution timed
    # for a CNN on this backend.
    scanned = row["limit_scanned"]
    assert scanned["conv"] == scanned_limit_conv(jax.default_backend(), True)
    assert np.isclose(scanned["examples_lanes_per_s"], 2 * 3 / (scanned["step_ms"] / 1e3))
    # Throughput counts every lane's examples: K·m per step of all lanes.
    auto = row["lanes"]["auto"]
    assert np.isclose(auto["examples_lanes_per_s"], 2 * 3 / (auto["step_ms"] / 1e3))


def test_scanned_limit_convolutions():
    # XLA's convolution inside a scan took 12-31x patches on a CPU: a CNN's limit there is
    # timed as patches; elsewhere as XLA's; a model without convolutions runs one program.
    assert scanned_limit_conv("cpu", True) == "patches"
    assert scanned_limit_conv("gpu", True) == "xla"
    assert scanned_limit_conv("cpu", False) == "xla"


def test_ratios_and_table():
    figures = lambda ms: {"step_ms": ms, "examples_lanes_per_s": 1e3 / ms, "compile_s": 1.0}
    row = {"batch_size": 2, "num_lanes": 13, "steps": 8, "baseline": figures(50.0),
           "limit": figures(25.0), "lanes": {"auto": figures(40.0), "reference": figures(200.0)}}
    speedup, over_limit = ratios(row, "auto")
    assert speedup == 50.0 / 40.0 and over_limit == 40.0 / 25.0
    table = format_table([row], "auto")
    assert "reference" in table and "1.25" in table and "1.60" in table
    assert "—" in table.splitlines()[-1]  # a row measured before the scanned limit
    row["limit_scanned"] = figures(20.0)
    assert scanned_ratio(row, "auto") == 2.0 and "2.00" in format_table([row], "auto")


def test_throughput_entry_point(tmp_path):
    # (Tuning's repeats one window each: this test reads what tuning records.)
    command = quick_tuning_command(
        "experiments.throughput", "--config=configs/throughput.py", f"--workdir={tmp_path}",
        "--config.model=small_cnn", "--config.image_shape=(8, 8, 1)",
        "--config.batch_sizes=(2, 4)", "--config.num_lanes=(2,)",
        "--config.examples_per_lane=8", "--config.repeats=1",
        "--config.strategies=('auto', 'tune')")
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "throughput.json").read_text())
    assert [(r["batch_size"], r["num_lanes"]) for r in record["rows"]] == [(2, 2), (4, 2)]
    assert record["rows"][0]["steps"] == 4 and record["backend"] == "cpu"
    assert "base/ours" in done.stdout
    # 'tune': the strategy tuning chose for this model (every candidate timed), beside auto.
    tune = record["rows"][0]["lanes"]["tune"]
    assert tune["tuning"]["outcome"] == "measured" and len(tune["tuning"]["timings"]) >= 4
    assert tune["strategy"] == tune["tuning"]["chosen"]


def test_markdown_table():
    figures = lambda ms: {"step_ms": ms, "examples_lanes_per_s": 1e3 / ms, "compile_s": 2.5}
    row = {"batch_size": 8, "num_lanes": 4, "steps": 32, "baseline": figures(40.0),
           "limit": figures(20.0), "lanes": {"auto": figures(32.0)}}
    from smallbatch_jax.diagnostics.benchmark import markdown_table
    lines = markdown_table([row, row], "auto").splitlines()
    assert len(lines) == 4 and lines[0].count("|") == lines[1].count("|") == lines[2].count("|")
    # (— : a row measured without the scanned limit)
    assert "| 8 | 4 | 32 | 25 | 50 | — | 31 | 1.25 | 1.60 | — | 2.5 |" == lines[2]


def test_a_diverged_lane_stops_the_timing(monkeypatch):
    # A diverged lane is frozen and, group by group, skipped: its timing would flatter the
    # lanes. At η̃ = 2^100 the small CNN diverges within the first epoch.
    from smallbatch_jax.diagnostics import benchmark, timing
    monkeypatch.setattr(timing, "timing_lr", lambda batch_size: 2.0**100)
    dataset = synthetic_dataset((8, 8, 1), 10, 16)
    with pytest.raises(RuntimeError, match="a lane diverged at m=2"):
        benchmark.lanes_runner("small_cnn", dataset, 2, 2, Strategy())


def test_the_timed_lr_holds_eta_below_the_divergence_seen_at_large_m():
    from smallbatch_jax.diagnostics.timing import BASE_LR, MAX_LR, timing_lr
    assert [timing_lr(m) for m in (2, 256)] == [BASE_LR, BASE_LR]
    assert timing_lr(512) == 2.0**-15 and timing_lr(2048) == 2.0**-17
    assert all(m * timing_lr(m) <= MAX_LR for m in (2, 8, 512, 2048, 26624))


def test_sweep_estimate_counts_each_ms_steps_at_its_widest_row():
    from smallbatch_jax.diagnostics.estimates import format_estimate, sweep_estimate
    figures = lambda ms: {"step_ms": ms, "examples_lanes_per_s": 0.0, "compile_s": 0.0}
    row = lambda m, k, ours, base: {"batch_size": m, "num_lanes": k, "steps": 2,
                                    "baseline": figures(base), "limit": figures(1.0),
                                    "lanes": {"auto": figures(ours)}}
    rows = [row(2, 4, 1.0, 1.0), row(2, 13, 36.0, 72.0), row(1024, 13, 3600.0, 3600.0)]
    estimate = sweep_estimate(rows, "auto", num_train=50_000, epochs=82)
    # m = 2: 82 · 25,000 steps of 36 ms = 20.5 h (baseline 41 h); m = 1024: 82 · 48 steps of 3.6 s.
    assert [r["num_lanes"] for r in estimate["per_m"]] == [13, 13]
    assert estimate["per_m"][0]["steps"] == 2_050_000
    assert np.isclose(estimate["per_m"][0]["ours_hours"], 20.5)
    assert np.isclose(estimate["per_m"][0]["baseline_hours"], 41.0)
    assert np.isclose(estimate["ours_hours"], 20.5 + 82 * 48 * 3.6 / 3600)
    assert "total 24.44 h ours, 44.94 h baseline" in format_estimate(estimate)


def test_the_python_loop_baseline_computes_in_bf16_when_asked():
    from smallbatch_jax.diagnostics.benchmark import _plain_train_step
    model = create_model("small_cnn", 10)
    images = jnp.zeros((4, 8, 8, 1), jnp.uint8)
    params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False)["params"]
    texts = {}
    for precision in ("highest", "bf16"):
        step, tx = _plain_train_step(model, 4, 10, precision)
        texts[precision] = step.lower(params, {}, tx.init(params), images,
                                      jnp.zeros(4, jnp.int32), 0.0, 1.0).as_text()
    assert "bf16" in texts["bf16"] and "bf16" not in texts["highest"]
