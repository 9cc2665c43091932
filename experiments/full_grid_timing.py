r"""The paper's whole Fig 1 grid timed at full size on synthetic data (configs/full_grid_timing.py):

    python -m experiments.full_grid_timing --config=configs/full_grid_timing.py \
        --workdir=runs/full_grid --budget_minutes=8

Writes full_grid.json and full_grid.md to the workdir after every (precision, m); rerun to go
on. On a lent GPU: `bash experiments/device_run.sh $OUT runs/full_grid python -m
experiments.full_grid_timing --config=configs/full_grid_timing.py --workdir=runs/full_grid
--budget_minutes=8` (docs/benchmarks.md, "On a GPU").
"""

from absl import flags

from experiments import entry
from smallbatch_jax.diagnostics.full_grid import time_full_grid

CONFIG = entry.config_flag()
WORKDIR = entry.workdir_flag("Where full_grid.json and full_grid.md are written.")
BUDGET = flags.DEFINE_float("budget_minutes", 0.0, "Start no new (precision, m) after this "
                            "many minutes (0: every one).", lower_bound=0.0)

if __name__ == "__main__":
    entry.run(lambda: time_full_grid(CONFIG.value, WORKDIR.value, BUDGET.value),
              cpu_cores=True)
