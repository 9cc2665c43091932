"""Your own model and data, swept like the paper's: the Python API.

    import smallbatch_jax as sbj
    config = sbj.load_config("configs/default.py")
    rows = sbj.run_batch_sweep(config, "runs/mine", model=MyModule(), data=(x, y, xt, yt))
    print(sbj.recommend_batch_size(config, "runs/mine", model=MyModule(), data=(x, y, xt, yt)))

`model`: a Flax module called as `model.apply(variables, x, train=...)` (stochastic layers
draw from the 'dropout' stream, derived per lane and step like every other key), or a
factory called with the number of classes that returns one. `data`: a `Dataset`
(`make_dataset`), or the four arrays (x_train, y_train, x_test, y_test): inputs of any shape
(NHWC images, flat features, token ids; data/dataset.py), integer labels (classes) or
real-valued targets (N,) or (N, D). `objective`: what is minimized and what the sweep ranks
by, an `Objective` (objectives.py: a loss, a metric and whether higher is better) or the name
of a built-in one; default, config.objective (softmax cross-entropy and accuracy; real-valued
targets need e.g. 'regression': squared error, lower is better). Everything else
is the config's (optimizer, grid, epochs, checkpoints, execution plan) and works as for the
built-in models: finished runs are skipped on a rerun, interrupted ones resume (a rerun
whose model, objective or data changed since is refused: run/build.py's `fingerprints`).
Returns the tidy rows of results.csv; the results name the model and the data set.

Like the command line, each call first sets the process up (`set_up_process`): one XLA:CPU
device per core, over which the lanes are dealt (on a CPU; accelerators are not affected),
and JAX's persistent compilation cache (compilation_cache.py), and it logs its progress
(each epoch with an ETA, and the sweep's ETA) through absl at INFO. Switches, per call:
`cpu_cores=False` (JAX's own one CPU device), `compilation_cache=""` (off; a directory: kept
there), `progress=False` (the log level left as it is). The devices can only be chosen
before JAX starts: a process that has computed with JAX already keeps its devices, and is
told so once.
"""

import contextlib
import copy
import logging as std_logging
import time

import jax
from absl import logging

from smallbatch_jax import compilation_cache as cache
from smallbatch_jax.data import Dataset, make_dataset
from smallbatch_jax.engine.sharding import cpu_core_count, use_cpu_cores
from smallbatch_jax.models import model_name
from smallbatch_jax.objectives import OBJECTIVES, Objective, objective_named
from smallbatch_jax.run import results
from smallbatch_jax.run.train import train_and_evaluate
from smallbatch_jax.study.batch_sweep import (run_batch_sweep as _run_batch_sweep, test_run,
                                              write_recommendation)


_told_about_devices = False


def set_up_process(cpu_cores: bool = True, compilation_cache: str | None = None) -> None:
    """What the entry points do before JAX starts (experiments/entry.py), for a Python
    caller: one CPU device per core (`cpu_cores`) and the compilation cache
    (`compilation_cache`: None, JAX_COMPILATION_CACHE_DIR if set, else the default
    directory; "": off)."""
    global _told_about_devices
    from jax._src import xla_bridge  # (private: whether the devices are fixed already)

    if cpu_cores and not xla_bridge.backends_are_initialized():
        use_cpu_cores()
    elif cpu_cores and not _told_about_devices:
        cores = cpu_core_count()
        if jax.default_backend() == "cpu" and jax.local_device_count() < cores:
            _told_about_devices = True
            logging.warning(
                "JAX started before smallbatch_jax could ask for one CPU device per core: the "
                "lanes run on %d of %d cores. Call smallbatch_jax.set_up_process() (or set "
                "JAX_NUM_CPU_DEVICES=%d) before computing anything with JAX.",
                jax.local_device_count(), cores, cores)
    cache.enable(compilation_cache)


@contextlib.contextmanager
def _progress(on: bool):
    """absl's INFO lines (each epoch, the sweep's ETA) shown for the call: absl shows
    warnings only in a program that did not start through absl.app."""
    logger = logging.get_absl_logger()
    before = logger.level  # (restored as it was: NOTSET stays NOTSET)
    if on and logger.getEffectiveLevel() > std_logging.INFO:
        logger.setLevel(std_logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(before)


def _prepare(config, model, data, objective):
    """The config naming the user's model, data and objective, the data as a Dataset, and
    the objective as an Objective (None: the config's)."""
    config = copy.deepcopy(config)
    dataset = None
    with config.unlocked():
        if isinstance(objective, str):
            config.objective, objective = objective, None
        elif objective is not None:
            if not isinstance(objective, Objective):
                raise ValueError(f"objective must be an Objective or a name of {sorted(OBJECTIVES)}"
                                 f"; got {objective!r}")
            named = [name for name, known in OBJECTIVES.items() if known == objective]
            config.objective = named[0] if named else f"user:{objective.metric_name}"
        if model is not None:
            config.model = model_name(model)
        if data is not None:
            if isinstance(data, Dataset):
                dataset = data
            else:
                if not isinstance(data, (tuple, list)) or len(data) != 4:
                    raise ValueError("data must be a Dataset or the four arrays (x_train, "
                                     "y_train, x_test, y_test)")
                labels = (objective or objective_named(config.objective)).labels
                dataset = make_dataset("user", *data, standardize=config.standardize,
                                       labels=labels)
            config.dataset = dataset.name
    return config, dataset, objective


def run_lr_sweep(config, workdir: str, *, model=None, data=None, objective=None,
                 cpu_cores: bool = True, compilation_cache: str | None = None,
                 progress: bool = True) -> list[dict]:
    """One batch size (config.batch_size), the whole learning-rate grid as one program."""
    set_up_process(cpu_cores, compilation_cache)
    config, dataset, objective = _prepare(config, model, data, objective)
    with _progress(progress):
        return train_and_evaluate(config, workdir, dataset, model, objective)


def run_batch_sweep(config, workdir: str, *, model=None, data=None, objective=None,
                    task_index: int = 0, num_tasks: int = 1, cpu_cores: bool = True,
                    compilation_cache: str | None = None, progress: bool = True) -> list[dict]:
    """Every batch size of config.batch_sizes, each with the whole grid; one merged table,
    figures and summary in `workdir`."""
    set_up_process(cpu_cores, compilation_cache)
    config, dataset, objective = _prepare(config, model, data, objective)
    with _progress(progress):
        return results.typed(_run_batch_sweep(config, workdir, task_index, num_tasks,
                                              model=model, dataset=dataset,
                                              objective=objective))


def recommend_batch_size(config, workdir: str, *, model=None, data=None, objective=None,
                         budget_minutes: float = 0.0, cpu_cores: bool = True,
                         compilation_cache: str | None = None, progress: bool = True) -> str:
    """"Which batch size should I use?": runs (or resumes) the batch sweep, no new batch
    size started after `budget_minutes` (0: every one), then writes
    workdir/recommendation.md (recommend.py: the best m and η̃ with the optimizer setting to
    paste, the largest m within noise of it, the stable η̃ per m, time to target, verdicts
    on common advice). With config.validation, the recommended setting is then trained once
    on the whole training set and its test metric reported beside (config.test_run; not
    started once `budget_minutes` are spent: the next call makes it). Returns the report's
    text."""
    set_up_process(cpu_cores, compilation_cache)
    config, dataset, objective = _prepare(config, model, data, objective)
    started = time.monotonic()
    with _progress(progress):
        rows = _run_batch_sweep(config, workdir, model=model, dataset=dataset,
                                objective=objective, budget_minutes=budget_minutes)
        # (Chosen on a validation split: the choice trained for the test split, once; not
        # started once the budget is spent, like a batch size: a rerun makes it.)
        if budget_minutes and time.monotonic() - started > 60 * budget_minutes:
            logging.info("the budget of %g minutes is spent: the recommended setting's test "
                         "run is left for the next call", budget_minutes)
        else:
            test_run(config, workdir, rows, model=model, dataset=dataset, objective=objective)
    path = write_recommendation(workdir, rows, config.reliable_tolerance, config.target)
    with open(path) as f:
        return f.read()
