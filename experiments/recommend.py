r""""Which batch size should I use?": the batch sweep of a config, then the answer with its
evidence in workdir/recommendation.md (smallbatch_jax/study/recommend.py).

    python -m experiments.recommend --config=configs/default.py --workdir=runs/recommend
    python -m experiments.recommend --config=configs/alexnet_cifar10.py:bn=conv \
        --config.data_dir=../shared/data/cifar10_subset.npz --config.num_seeds=3 \
        --workdir=runs/recommend_alexnet_bn --budget_minutes=90

Re-running resumes: finished batch sizes are skipped, an interrupted one continues from its
checkpoint. `--budget_minutes` starts no new batch size once the sweep has trained that long
(the report then covers those that finished; a rerun adds the rest). Use
`--config.num_seeds=3` (seeds are extra lanes of the same program): with fewer seeds per point
no difference can be tested, and the report says "cannot tell" where it would need one.
With `--config.validation=0.1` the sweep chooses on a tenth of the training set held out and
never reads the test split; the recommended setting is then trained once on the whole
training set and its test metric reported beside (`workdir/test_run/`).
"""

from absl import flags

from experiments import entry
from smallbatch_jax.api import recommend_batch_size

CONFIG = entry.config_flag()
WORKDIR = entry.workdir_flag("Where the sweep's results and recommendation.md are written.")
CACHE = entry.compilation_cache_flag()
BUDGET = flags.DEFINE_float("budget_minutes", 0.0, "Start no new batch size after this many "
                            "minutes of training (0: run every one).", lower_bound=0.0)

if __name__ == "__main__":
    entry.run(lambda: print(recommend_batch_size(CONFIG.value, WORKDIR.value,
                                                 budget_minutes=BUDGET.value)), cpu_cores=True,
              compilation_cache=CACHE)
