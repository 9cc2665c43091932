"""What gradient clipping (config.grad_clip) costs per step: the README's digits run at one m,
13 lanes, without clipping and with a norm that never binds (1e6: the same updates, the
gradients' global norm computed and tested each step), interleaved, the median epoch time
after the first (compilation) epoch of each run.

    python docs/probes/clip_cost.py [--batch_size=8] [--repeats=3] [--epochs=4]
"""

import csv
import os
import statistics
import sys
import tempfile

from absl import app, flags, logging

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import smallbatch_jax as sbj  # noqa: E402

flags.DEFINE_integer("batch_size", 8, "m")
flags.DEFINE_integer("repeats", 3, "interleaved repeats of each")
flags.DEFINE_integer("epochs", 4, "epochs per run (the first is compilation's)")


def epoch_seconds(norm: float, workdir: str) -> float:
    config = sbj.load_config(os.path.join(REPO, "configs", "default.py"))
    config.batch_size, config.epochs = flags.FLAGS.batch_size, flags.FLAGS.epochs
    config.last_epochs, config.grad_clip = 1, norm
    config.noise_scale.num_batches = 0
    sbj.run_lr_sweep(config, workdir, progress=False)
    with open(os.path.join(workdir, "curves.csv")) as f:
        rows = [r for r in csv.DictReader(f) if r["lane"] == "0"]
    return statistics.median(float(r["epoch_seconds"]) for r in rows[1:])


def main(_):
    logging.set_verbosity(logging.WARNING)
    times = {"no clipping": [], "clipping (norm 1e6)": []}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(flags.FLAGS.repeats):
            for name, norm in (("no clipping", 0.0), ("clipping (norm 1e6)", 1e6)):
                times[name].append(epoch_seconds(norm, os.path.join(scratch, f"{repeat}{norm}")))
    base = statistics.median(times["no clipping"])
    for name, values in times.items():
        print(f"{name:>20}: median epoch {statistics.median(values):.3f} s "
              f"({', '.join(f'{v:.3f}' for v in values)}), "
              f"×{statistics.median(values) / base:.3f}")


if __name__ == "__main__":
    app.run(main)
