"""The device runner (experiments/device_run.sh), on this CPU: any command, its log, and the
workdir's small files packed for the trip back; none of its device minutes lost to a bug."""

import subprocess
import tarfile

from conftest import REPO_ROOT


def _run(out, work, *command):
    return subprocess.run(["bash", "experiments/device_run.sh", str(out), str(work), *command],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_a_command_runs_and_its_results_come_back_without_the_large_files(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    done = _run(out, work, "python", "-m", "experiments.lr_sweep", "--config=configs/default.py",
                "--config.epochs=1", "--config.batch_size=128", f"--workdir={work / 'm128'}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["results.tar.gz", "run.log"]
    with tarfile.open(out / "results.tar.gz") as tar:
        names = sorted(tar.getnames())
    assert names == ["./m128/config.json", "./m128/curves.csv", "./m128/results.csv"]
    assert (work / "m128" / "state.msgpack").is_file()  # there, but not brought back
    assert "epoch 1/1" in (out / "run.log").read_text()


def test_a_failing_command_returns_its_status_and_what_it_wrote(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    done = _run(out, work, "bash", "-c", f"echo a,b > {work}/partial.csv; exit 3")
    assert done.returncode == 3
    with tarfile.open(out / "results.tar.gz") as tar:
        assert tar.getnames() == ["./partial.csv"]
    assert "exit 3" in (out / "run.log").read_text()
