r"""Throughput of K lanes against K sequential runs and one model on K·m examples.

    python -m experiments.throughput --config=configs/throughput.py --workdir=runs/throughput
    python -m experiments.throughput --config=configs/throughput.py --workdir=runs/tp \
        --config.batch_sizes="(2,)" --config.num_lanes="(13,)" --config.strategies="('auto',)"

Prints the table and writes throughput.json to the workdir.
"""

from experiments import entry
from smallbatch_jax.diagnostics.benchmark import run_throughput

CONFIG = entry.config_flag()
WORKDIR = entry.workdir_flag("Where throughput.json is written.")

if __name__ == "__main__":
    entry.run(lambda: run_throughput(CONFIG.value, WORKDIR.value), cpu_cores=True)
