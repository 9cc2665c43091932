"""Your own model and data, swept like the paper's: the Python API.

    import smallbatch_jax as sbj
    config = sbj.load_config("configs/default.py")
    rows = sbj.run_batch_sweep(config, "runs/mine", model=MyModule(), data=(x, y, xt, yt))

`model`: a Flax module called as `model.apply(variables, x, train=...)` (stochastic layers
draw from the 'dropout' stream, derived per lane and step like every other key), or a
factory called with the number of classes that returns one. `data`: a `Dataset`
(`make_dataset`), or the four arrays (x_train, y_train, x_test, y_test): inputs of any shape
(NHWC images, flat features, token ids; data/dataset.py), integer labels. Everything else
is the config's (optimizer, grid, epochs, checkpoints, execution plan) and works as for the
built-in models: finished runs are skipped on a rerun, interrupted ones resume.
Returns the tidy rows of results.csv; the results name the model and the data set.
"""

import copy

from smallbatch_jax import results
from smallbatch_jax.batch_sweep import run_batch_sweep as _run_batch_sweep
from smallbatch_jax.data import Dataset, make_dataset
from smallbatch_jax.lr_sweep import train_and_evaluate
from smallbatch_jax.models import model_name


def _prepare(config, model, data):
    """The config naming the user's model and data, and the data as a Dataset."""
    config = copy.deepcopy(config)
    dataset = None
    with config.unlocked():
        if model is not None:
            config.model = model_name(model)
        if data is not None:
            if isinstance(data, Dataset):
                dataset = data
            else:
                if not isinstance(data, (tuple, list)) or len(data) != 4:
                    raise ValueError("data must be a Dataset or the four arrays (x_train, "
                                     "y_train, x_test, y_test)")
                dataset = make_dataset("user", *data, standardize=config.standardize)
            config.dataset = dataset.name
    return config, dataset


def run_lr_sweep(config, workdir: str, *, model=None, data=None) -> list[dict]:
    """One batch size (config.batch_size), the whole learning-rate grid as one program."""
    config, dataset = _prepare(config, model, data)
    return train_and_evaluate(config, workdir, dataset, model)


def run_batch_sweep(config, workdir: str, *, model=None, data=None, task_index: int = 0,
                    num_tasks: int = 1) -> list[dict]:
    """Every batch size of config.batch_sizes, each with the whole grid; one merged table,
    figures and summary in `workdir`."""
    config, dataset = _prepare(config, model, data)
    return results.typed(_run_batch_sweep(config, workdir, task_index, num_tasks, model=model,
                                          dataset=dataset))
