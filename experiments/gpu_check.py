r"""The prepared accelerator check (configs/gpu_check.py says what it measures).

On the device machine, through the wrapper that installs what travelled with the tree:

    bash experiments/gpu_check.sh OUTDIR

Here, in seconds, the same code on a tiny setting (the test suite runs it):

    python -m experiments.gpu_check --config=configs/gpu_check.py:tiny --outdir=/tmp/check \
        --config.data_path=PATH.npz

Writes OUTDIR/gpu_check.json, gpu_check.md, lowering_table.json and the sweeps' archives.
"""

from absl import app, flags
from ml_collections import config_flags

from smallbatch_jax.gpu_check import run_gpu_check

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to the config file.",
                                          lock_config=True)
_OUTDIR = flags.DEFINE_string("outdir", None, "Where the files that come back are written.")
flags.mark_flags_as_required(["config", "outdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # One device on purpose (no use_cpu_cores): the check times all lanes in one program.
    run_gpu_check(_CONFIG.value, _OUTDIR.value)


if __name__ == "__main__":
    app.run(main)
