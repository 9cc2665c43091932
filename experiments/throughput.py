r"""Throughput of K lanes against K sequential runs and one model on K·m examples.

    python -m experiments.throughput --config=configs/throughput.py --workdir=runs/throughput
    python -m experiments.throughput --config=configs/throughput.py --workdir=runs/tp \
        --config.batch_sizes="(2,)" --config.num_lanes="(13,)" --config.lowerings="('auto',)"

Prints the table and writes throughput.json to the workdir.
"""

from absl import app, flags
from ml_collections import config_flags

from smallbatch_jax.benchmark import run_throughput
from smallbatch_jax.sharding import use_cpu_cores

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to the config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where throughput.json is written.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    use_cpu_cores()  # Before JAX starts: on a CPU, small programs split lanes over cores.
    run_throughput(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
