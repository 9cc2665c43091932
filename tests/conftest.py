"""Shared fixtures: small real data, so tests compile and run in seconds on a CPU.

Most of the suite's time is XLA compiling, and many tests (the preemption tests above all)
run the same programs in several processes. JAX's persistent compilation cache, shared by
every test process and subprocess of the suite (through the environment, set before JAX
starts), compiles each program once. It changes nothing a test checks: the cache returns
the executable XLA would compile. Set SMALLBATCH_TEST_XLA_CACHE="" to turn it off.
"""

import glob
import importlib.util
import os
import sys
import tempfile

CACHE = os.environ.setdefault("SMALLBATCH_TEST_XLA_CACHE", os.path.join(
    tempfile.gettempdir(), "smallbatch_jax_test_xla_cache"))
if CACHE:
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 2**30))

# Tuned strategies (engine/tune.py) in a directory of this test session, not the user's.
os.environ.setdefault("SMALLBATCH_JAX_CACHE", tempfile.mkdtemp(prefix="smallbatch_tune_"))

import numpy as np  # noqa: E402 (after the environment JAX reads)
import pytest  # noqa: E402
from absl import flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from smallbatch_jax.data import load_digits, make_dataset  # noqa: E402

# JAX started here, with its one CPU device, in every test process: the API would otherwise
# ask for one device per core (api.set_up_process) in whichever process a test of it runs
# first, and the tests after it would run on other devices depending on the order.
# Subprocesses (the entry points, the API's own test) start JAX afresh.
import jax  # noqa: E402

jax.devices()

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CIFAR10_SUBSET = os.path.join(REPO_ROOT, "..", "shared", "data", "cifar10_subset.npz")


@pytest.fixture(scope="session")
def digits():
    return load_digits()


@pytest.fixture(scope="session")
def tiny_digits(digits):
    """64 training and 40 test digits: a few steps per epoch."""
    return make_dataset("digits", digits.train_images[:64], digits.train_labels[:64],
                        digits.test_images[:40], digits.test_labels[:40], 10)


def write_fake_cifar_npz(path, num_train=24, num_test=10, num_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    np.savez(path,
             train_images=rng.integers(0, 256, (num_train, 32, 32, 3), dtype=np.uint8),
             train_labels=rng.integers(0, num_classes, num_train),
             test_images=rng.integers(0, 256, (num_test, 32, 32, 3), dtype=np.uint8),
             test_labels=rng.integers(0, num_classes, num_test))
    return path


# Configs of experiments.lr_sweep; configs/throughput.py belongs to experiments.throughput
# (tested in tests/diagnostics/test_benchmark.py), configs/gpu_check.py to experiments.gpu_check
# (tests/experiments/test_gpu_check_command.py), configs/gpu_concurrency.py to
# experiments.gpu_concurrency (tests/diagnostics/test_concurrent_grids.py),
# configs/full_grid_timing.py to experiments.full_grid_timing (tests/diagnostics/test_full_grid.py).
OTHER_ENTRY_POINTS = {"throughput.py", "gpu_check.py", "gpu_concurrency.py",
                      "full_grid_timing.py"}
CONFIG_FILES = sorted(p for p in glob.glob(os.path.join(REPO_ROOT, "configs", "*.py"))
                      if os.path.basename(p) not in OTHER_ENTRY_POINTS)


def _variants(path):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # A config with arguments lists one per figure it reproduces in VARIANTS.
    return [f"{path}:{arg}" for arg in getattr(module, "VARIANTS", {}).values()] or [path]


ALL_CONFIGS = [arg for path in CONFIG_FILES for arg in _variants(path)]


def parse(*argv):
    """The config as `--config=... --config.key=value` on a command line would give it."""
    argv = ["prog", *argv]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True,
                                    sys_argv=argv)
    values(argv)
    return values.config


def shared_across_workers(tmp_path_factory, name, make):
    """A directory `name` that `make(directory)` fills once per test session, shared by every
    pytest-xdist worker (the first to ask makes it while the others wait; a failed `make`
    leaves nothing, and the next to ask tries again); returns its path. For an expensive
    run (a training subprocess) that several tests read and none modifies."""
    import fcntl
    import shutil

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # every worker's base temporary directory's parent: shared
    directory, done = base / name, base / f"{name}.done"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir()
            try:
                make(directory)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            done.touch()
    return directory


def quick_tuning_command(module: str, *args: str) -> list[str]:
    """`python -m module args` with tuning's timed repeats one window each
    (engine/tune.py's MIN_REPEAT_SECONDS = 0), as the in-process tuning tests monkeypatch
    it: for an entry point's test that checks what tuning measured and recorded, not how
    long a repeat lasts (tests/engine/test_tune.py times real repeats)."""
    script = ("import runpy, sys\n"
              "from smallbatch_jax.engine import tune\n"
              "tune.MIN_REPEAT_SECONDS = 0\n"
              "sys.argv = sys.argv[1:]\n"
              "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")
    return [sys.executable, "-c", script, module, *args]


def stopping_fit(after_epoch):
    """run.train.fit that stops the run (as a preemption would) after `after_epoch`."""
    from smallbatch_jax.run import train as lr_sweep

    real_fit = lr_sweep.fit

    def fit(*args, on_epoch_end, **kwargs):
        def hook(epoch, history, state):
            on_epoch_end(epoch, history, state)
            if epoch == after_epoch:
                raise KeyboardInterrupt("preempted")
        return real_fit(*args, on_epoch_end=hook, **kwargs)

    return fit
