r"""Grids of several m in one program, under several XLA flag settings
(configs/gpu_concurrency.py says what it measures; smallbatch_jax/diagnostics/concurrent_grids.py how).

On the device machine, with the carried wheels:

    bash experiments/device_run.sh $OUT /tmp/concurrency python3 -m experiments.gpu_concurrency \
        --config=configs/gpu_concurrency.py --outdir=/tmp/concurrency

Here, in seconds (the test suite runs it):

    python -m experiments.gpu_concurrency --config=configs/gpu_concurrency.py:tiny \
        --outdir=/tmp/concurrency

Writes OUTDIR/concurrency.json, concurrency.md and variants/NAME.json. With --variant, runs
that one variant in this process (what the check runs in a child process per variant).
"""

import sys

from absl import flags

from experiments import entry
from smallbatch_jax.diagnostics.concurrent_grids import run_check, run_variant

CONFIG = entry.config_flag()
OUTDIR = flags.DEFINE_string("outdir", None, "Where the files that come back are written.")
VARIANT = flags.DEFINE_string("variant", None, "Run this one variant here (internal).")
flags.mark_flags_as_required(["outdir"])

if __name__ == "__main__":
    # This command again, one variant per child process (its flags as given, plus --variant).
    child = [sys.executable, "-m", "experiments.gpu_concurrency", *sys.argv[1:]]
    entry.run(lambda: run_variant(CONFIG.value, OUTDIR.value, VARIANT.value) if VARIANT.value
              else run_check(CONFIG.value, OUTDIR.value, child))
