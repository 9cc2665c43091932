r"""The prepared accelerator check (configs/gpu_check.py says what it measures).

On the device machine, through the wrapper that installs what travelled with the tree:

    bash experiments/gpu_check.sh OUTDIR

Here, in seconds, the same code on a tiny setting (the test suite runs it):

    python -m experiments.gpu_check --config=configs/gpu_check.py:tiny --outdir=/tmp/check \
        --config.data_path=PATH.npz

Writes OUTDIR/gpu_check.json, gpu_check.md, strategy_table.json and the sweeps' archives.
"""

from absl import flags

from experiments import entry
from smallbatch_jax.diagnostics.gpu_check import run_gpu_check

CONFIG = entry.config_flag()
OUTDIR = flags.DEFINE_string("outdir", None, "Where the files that come back are written.")
flags.mark_flags_as_required(["outdir"])

if __name__ == "__main__":
    # One device on purpose (no cpu_cores): the check times all lanes in one program.
    entry.run(lambda: run_gpu_check(CONFIG.value, OUTDIR.value))
