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
built-in models: finished runs are skipped on a rerun, interrupted ones resume.
Returns the tidy rows of results.csv; the results name the model and the data set.
"""

import copy

from smallbatch_jax.data import Dataset, make_dataset
from smallbatch_jax.models import model_name
from smallbatch_jax.objectives import OBJECTIVES, Objective, objective_named
from smallbatch_jax.run import results
from smallbatch_jax.run.train import train_and_evaluate
from smallbatch_jax.study.batch_sweep import (run_batch_sweep as _run_batch_sweep,
                                              write_recommendation)


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


def run_lr_sweep(config, workdir: str, *, model=None, data=None, objective=None) -> list[dict]:
    """One batch size (config.batch_size), the whole learning-rate grid as one program."""
    config, dataset, objective = _prepare(config, model, data, objective)
    return train_and_evaluate(config, workdir, dataset, model, objective)


def run_batch_sweep(config, workdir: str, *, model=None, data=None, objective=None,
                    task_index: int = 0, num_tasks: int = 1) -> list[dict]:
    """Every batch size of config.batch_sizes, each with the whole grid; one merged table,
    figures and summary in `workdir`."""
    config, dataset, objective = _prepare(config, model, data, objective)
    return results.typed(_run_batch_sweep(config, workdir, task_index, num_tasks, model=model,
                                          dataset=dataset, objective=objective))


def recommend_batch_size(config, workdir: str, *, model=None, data=None, objective=None,
                         budget_minutes: float = 0.0) -> str:
    """"Which batch size should I use?": runs (or resumes) the batch sweep, no new batch
    size started after `budget_minutes` (0: every one), then writes
    workdir/recommendation.md (recommend.py: the best m and η̃ with the optimizer setting to
    paste, the largest m within noise of it, the stable η̃ per m, time to target, verdicts
    on common advice). Returns the report's text."""
    config, dataset, objective = _prepare(config, model, data, objective)
    rows = _run_batch_sweep(config, workdir, model=model, dataset=dataset, objective=objective,
                            budget_minutes=budget_minutes)
    path = write_recommendation(workdir, rows, config.reliable_tolerance, config.target)
    with open(path) as f:
        return f.read()
