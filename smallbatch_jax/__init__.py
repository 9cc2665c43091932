"""smallbatch_jax: which batch size, which learning rate? (Masters & Luschi, 2018, in JAX).

The Python API (smallbatch_jax/api.py): `load_config`, `run_lr_sweep`, `run_batch_sweep`,
`recommend_batch_size`, `make_dataset`, `set_up_process`; the command lines are
experiments/*.py.

The API's names are imported on first use (PEP 562): importing any module of the package
runs this file, and the API pulls in the study's statistics and figures (SciPy, Matplotlib:
~2 s), which a single run (`experiments.lr_sweep`) never uses.
"""

import importlib

_HOMES = {
    "recommend_batch_size": "smallbatch_jax.api",
    "run_batch_sweep": "smallbatch_jax.api",
    "run_lr_sweep": "smallbatch_jax.api",
    "set_up_process": "smallbatch_jax.api",
    "load_config": "smallbatch_jax.config_args",
    "Dataset": "smallbatch_jax.data",
    "IGNORED_LABEL": "smallbatch_jax.data",
    "make_dataset": "smallbatch_jax.data",
    "CLASSIFICATION": "smallbatch_jax.objectives",
    "REGRESSION": "smallbatch_jax.objectives",
    "Objective": "smallbatch_jax.objectives",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'smallbatch_jax' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # (looked up once)
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOMES))
