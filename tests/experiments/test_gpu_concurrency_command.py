"""The concurrency check end to end on this CPU in its tiny setting, through the device
wrapper it runs under there: no device minute lost to a bug in it (issue 10)."""

import json
import subprocess
import tarfile

from conftest import REPO_ROOT, write_fake_cifar_npz

CONCURRENT = "--xla_gpu_command_buffer_scheduling_mode=CONCURRENT"


def test_the_tiny_check_times_grids_alone_and_together_per_variant(tmp_path):
    data = write_fake_cifar_npz(str(tmp_path / "subset.npz"), num_train=64, num_test=20)
    out, work = tmp_path / "out", tmp_path / "work"
    variants = f"('default=','concurrent={CONCURRENT}','broken=--xla_no_such_flag=1')"
    command = ["bash", "experiments/device_run.sh", str(out), str(work), "python3", "-m",
               "experiments.gpu_concurrency", "--config=configs/gpu_concurrency.py:tiny",
               f"--config.data_path={data}", f"--outdir={work}", f"--config.variants={variants}"]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    record = json.loads((work / "concurrency.json").read_text())
    assert list(record["variants"]) == ["default", "concurrent"]
    # A variant that cannot start (XLA refuses an unknown flag) is reported, not fatal.
    assert list(record["failed"]) == ["broken"] and "no_such_flag" in record["failed"]["broken"]
    for name, flags in (("default", ""), ("concurrent", CONCURRENT)):
        variant = record["variants"][name]
        assert variant["machine"]["xla_flags"] == flags  # each process got its own flags
        # Each program of all grids trains each grid as alone.
        assert variant["same_training"] == {"together": True, "interleaved": True}
        assert [g["batch_size"] for g in variant["grids"]] == [2, 4]
        assert [g["steps"] for g in variant["grids"]] == [4, 2]  # 8 examples per lane
        assert variant["round_steps"] == [2, 1]
        assert set(variant["ms"]) == {"m2", "m4", "queued", "together", "interleaved"}
        assert all(ms > 0 for ms in variant["ms"].values())
        assert len(variant["ms_repeats"]["together"]) == 2
        assert variant["sum_alone_ms"] == variant["ms"]["m2"] + variant["ms"]["m4"]
        assert variant["speedup_ideal"] >= 1.0
    table = (work / "concurrency.md").read_text()
    assert "| default | `(none)` |" in table and f"| concurrent | `{CONCURRENT}` |" in table
    assert "- broken: exit" in table
    # What the device tool brings back: the log and the packed results.
    with tarfile.open(out / "results.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"./concurrency.json", "./concurrency.md", "./variants/default.json"} <= names
    assert "[" in (out / "run.log").read_text()
