import subprocess

import jax

from conftest import REPO_ROOT
from smallbatch_jax.run import provenance as provenance_module
from smallbatch_jax.run.provenance import git_commit, provenance


def test_provenance_names_versions_commit_flags_and_devices(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_gpu_deterministic_ops=true")
    record = provenance(jax.local_devices())
    assert record["packages"]["jax"] == jax.__version__
    assert all(record["packages"][name] for name in ("jaxlib", "flax", "optax", "numpy",
                                                      "orbax-checkpoint"))
    assert record["xla_flags"] == "--xla_gpu_deterministic_ops=true"
    assert record["devices"] == [str(d) for d in jax.local_devices()]
    assert record["python"].count(".") == 2
    assert record["device"] == provenance_module.device_name(jax.local_devices())
    head = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:  # a git checkout (CI's clean clone is one)
        assert record["commit"].startswith(head.stdout.strip())
    else:
        assert record["commit"] is None


def test_a_runs_device_is_named_by_kind_count_and_for_cpus_their_model(monkeypatch):
    class Device:
        def __init__(self, platform, kind):
            self.platform, self.device_kind = platform, kind

    gpus = [Device("gpu", "NVIDIA H100 80GB HBM3")] * 2
    assert provenance_module.device_name(gpus) == "NVIDIA H100 80GB HBM3 ×2"
    monkeypatch.setattr(provenance_module, "cpu_model", lambda: "Xeon 8481C")
    assert provenance_module.device_name([Device("cpu", "cpu")]) == "cpu (Xeon 8481C) ×1"
    monkeypatch.setattr(provenance_module, "cpu_model", lambda: "")
    assert provenance_module.device_name([Device("cpu", "cpu")]) == "cpu ×1"
    assert provenance_module.device_name([]) == ""


def test_outside_a_checkout_there_is_no_commit(tmp_path):
    assert git_commit(str(tmp_path)) is None


def test_the_commit_is_the_code_the_process_started_with(monkeypatch):
    """A commit made while a long study runs must not be recorded as the code it ran."""
    assert "checkout_now" not in provenance(jax.local_devices())  # nothing moved
    monkeypatch.setattr(provenance_module, "git_commit", lambda directory=None: "later")
    record = provenance(jax.local_devices())
    assert record["commit"] == provenance_module.COMMIT_AT_START != "later"
    assert record["checkout_now"] == "later"
