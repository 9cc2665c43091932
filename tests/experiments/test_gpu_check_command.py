"""The prepared GPU check, end to end on this CPU in its tiny setting: no device minute is
ever lost to a bug in it (issue 10)."""

import json
import os
import re
import subprocess
import sys
import tarfile

from conftest import CACHE, REPO_ROOT, write_fake_cifar_npz
from smallbatch_jax.diagnostics.torch_baseline import torch_available
from smallbatch_jax.engine.strategy import read_measured_table


def test_the_tiny_check_measures_chooses_and_trains(tmp_path):
    data = write_fake_cifar_npz(str(tmp_path / "subset.npz"), num_train=64, num_test=20)
    out, work = tmp_path / "out", tmp_path / "work"
    # The check's compiled programs in a folder of the suite's compilation cache (conftest.py):
    # a second suite run on this machine compiles none of them again. The check packs that
    # folder alone, so it holds the check's programs only.
    cache = os.path.join(CACHE, "gpu_check_tiny") if CACHE else work / "cache"
    command = ["bash", "experiments/gpu_check.sh", str(out), "--config=configs/gpu_check.py:tiny",
               f"--config.data_path={data}", f"--config.workdir={work}",
               f"--config.cache_dir={cache}"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # At most 8 files: what the device tool returns.
    assert sorted(os.listdir(out)) == ["fig1.tar.gz", "fig8.tar.gz", "gpu_check.json",
                                       "gpu_check.log", "gpu_check.md", "jax_cache.tar.gz",
                                       "profiles.tar.gz", "strategy_table.json"]
    log = (out / "gpu_check.log").read_text()
    assert re.search(r"^\[ +\d+\.\d s\] m=4: lanes vmap/patches", log, re.M)  # timestamped

    record = json.loads((out / "gpu_check.json").read_text())
    assert record["machine"]["platform"] == "cpu" and record["machine"]["jax"]
    assert record["cache_files_carried"] == 0 and record["train_flops_per_example"] > 0
    rows = {row["batch_size"]: row for row in record["throughput"]["rows"]}
    assert sorted(rows) == [4, 8]
    # m = 4: every candidate and every baseline timed; m = 8: the best, and it at the other
    # precision.
    assert sorted(rows[4]["lanes"]) == ["vmap/patches", "vmap/xla"]
    best = record["throughput"]["best"][0]
    assert sorted(rows[8]["lanes"]) == sorted([best, f"{best}@default"])
    expected_methods = {"baseline", "limit", "limit_scanned"} | (
        {"torch", "torch_vmap"} if torch_available() else set())
    for row in rows.values():
        assert expected_methods <= set(row) and not row["skipped"]
        for figures in [row[name] for name in expected_methods] + list(row["lanes"].values()):
            assert figures["step_ms"] > 0 and figures["examples_lanes_per_s"] > 0
    # What the programs are made of: vmapped XLA convolutions are grouped, patches are not.
    assert rows[4]["lanes"]["vmap/xla"]["hlo"]["grouped_convolutions"] > 0
    assert rows[4]["lanes"]["vmap/patches"]["hlo"]["grouped_convolutions"] == 0
    assert rows[4]["profile"]  # a profile of the best and the reference at m = 4
    assert set(record["throughput"]["full_fig1_estimate"]["minutes"]) >= {"ours",
                                                                          "jax_sequential"}

    # The table 'auto' uses: the fastest per m, at the check's steps per dispatch.
    table = read_measured_table(str(out / "strategy_table.json"))
    assert sorted(table["choices"]) == [4, 8] and table["device"] == "cpu"
    fastest_at_4 = min(rows[4]["lanes"], key=lambda n: rows[4]["lanes"][n]["step_ms"])
    assert table["choices"][4].conv == fastest_at_4.split("/")[1]
    assert table["choices"][4].steps_per_dispatch == rows[4]["steps"]

    # §b and §c trained with it and packed their workdirs: each run's results, the merged
    # table, the figures.
    with tarfile.open(out / "fig1.tar.gz") as tar:
        names = set(tar.getnames())
    for sweep in ("grid", "precision_default", "extension"):
        assert f"fig1/{sweep}/m8/results.csv" in names and f"fig1/{sweep}/results.csv" in names
    with open(work / "fig1" / "grid" / "m8" / "config.json") as f:
        run = json.load(f)
    assert run["config"]["precision"] == "highest"
    assert run["strategy"] == vars(table["choices"][8])
    with tarfile.open(out / "fig8.tar.gz") as tar:
        assert "fig8/sweep/m8/results.csv" in tar.getnames()
    assert record["fig8"]["epochs"] == 1
    markdown = (out / "gpu_check.md").read_text()
    assert "| m | K | method | precision |" in markdown and "Estimate of the paper's" in markdown
    assert "| TFLOP/s |" in markdown

    # The compiled programs come back, for the next check on this kind of device to carry.
    with tarfile.open(out / "jax_cache.tar.gz") as tar:
        assert any(member.isfile() for member in tar.getmembers())
