"""What a reader needs to rerun a result: the software and its versions, the project's commit,
the XLA flags, the devices. Written into every run's config.json."""

import importlib.metadata
import os
import platform
import subprocess

import jax

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "ml-dtypes", "orbax-checkpoint",
            "ml-collections")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The host CPU's model name ("Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"), or ''
    where the system does not say."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def device_name(devices) -> str:
    """What a run's times were measured on, as results rows name it: the device kind and
    count, e.g. "NVIDIA H100 80GB HBM3 ×1", or for CPU devices the CPU's model ("cpu (Intel(R)
    Xeon(R) …) ×2"). Times measured on different ones are not compared (study/analysis.py:
    timing_caveat): a sweep's tasks may run on different hosts."""
    if not devices:
        return ""
    kind = devices[0].device_kind
    if devices[0].platform == "cpu" and cpu_model():
        kind = f"{kind} ({cpu_model()})"
    return f"{kind} ×{len(devices)}"


def git_commit(directory: str | None = None) -> str | None:
    """The commit of the checkout this package runs from ("…-dirty" when tracked files have
    changed since), or None outside a git checkout."""
    directory = directory or os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", directory, "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        changed = subprocess.run(["git", "-C", directory, "status", "--porcelain",
                                  "--untracked-files=no"], capture_output=True, text=True,
                                 timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if changed.stdout.strip() else "")


# The commit of the code this process runs, read when it loads the package (run/train.py
# imports this module at start). A study runs for hours in one process; a commit made
# meanwhile in its checkout changes nothing it computes, but a commit read per run named it
# (issue 27's study 1: m = 256 recorded the commit of a new divergence test it did not run).
COMMIT_AT_START = git_commit()


def provenance(devices) -> dict:
    """The record; "commit" is the code this process runs (COMMIT_AT_START), and
    "checkout_now" is added when the checkout has moved on since (a commit or an edit)."""
    record = {"python": platform.python_version(), "packages": package_versions(),
              "commit": COMMIT_AT_START, "xla_flags": os.environ.get("XLA_FLAGS", ""),
              "backend": jax.default_backend(), "devices": [str(d) for d in devices],
              "device": device_name(devices)}
    now = git_commit()
    if now != COMMIT_AT_START:
        record["checkout_now"] = now
    return record
