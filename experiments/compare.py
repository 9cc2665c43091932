r"""The paper's summary figures across sweeps: best accuracy vs m (Fig 15) and the reliable η̃
range vs m (Fig 16), one curve or bar colour per finished batch sweep.

    python -m experiments.compare --workdir=runs/fig15 \
        --sweeps="AlexNet=runs/fig1,AlexNet BN=runs/fig5,ResNet-8=runs/fig2"

Writes workdir/figures/{best_metric_vs_batch_size,reliable_lr_range}.{png,svg} and
workdir/summary.md (per m, each sweep's best accuracy, its η̃ and its reliable count).
"""

from absl import app, flags

from experiments import entry
from smallbatch_jax.study.batch_sweep import report_comparison

_WORKDIR = flags.DEFINE_string("workdir", None, "Where the figures and summary are written.")
_SWEEPS = flags.DEFINE_list("sweeps", None, "label=workdir of each finished batch sweep.")
# (Bounded as config.reliable_tolerance is: a tolerance of 2 for 2 points called every η̃
# that trained reliable.)
_TOLERANCE = flags.DEFINE_float("tolerance", 0.02, "Reliable-range tolerance: accuracy ≥ "
                                "the sweep's best minus this (an error: within this share "
                                "of the best).", lower_bound=0.0, upper_bound=1.0)
flags.mark_flags_as_required(["workdir", "sweeps"])


def main():
    pairs = [item.split("=", 1) for item in _SWEEPS.value]
    sweeps = dict(pair for pair in pairs if len(pair) == 2 and all(pair))
    if len(sweeps) != len(pairs):
        raise app.UsageError(f"--sweeps={_SWEEPS.value}: give distinct label=workdir pairs")
    report_comparison(sweeps, _WORKDIR.value, _TOLERANCE.value)


if __name__ == "__main__":
    entry.run(main)
