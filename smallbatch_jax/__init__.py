"""smallbatch_jax: which batch size, which learning rate? (Masters & Luschi, 2018, in JAX).

The Python API (smallbatch_jax/api.py): `load_config`, `run_lr_sweep`, `run_batch_sweep`,
`recommend_batch_size`, `make_dataset`, `set_up_process`; the command lines are
experiments/*.py.
"""

from smallbatch_jax.api import (recommend_batch_size, run_batch_sweep, run_lr_sweep,
                                set_up_process)
from smallbatch_jax.config_args import load_config
from smallbatch_jax.data import Dataset, make_dataset
from smallbatch_jax.objectives import CLASSIFICATION, REGRESSION, Objective

__all__ = ["CLASSIFICATION", "Dataset", "Objective", "REGRESSION", "load_config", "make_dataset",
           "recommend_batch_size", "run_batch_sweep", "run_lr_sweep", "set_up_process"]
