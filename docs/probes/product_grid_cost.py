"""A grid over several hyperparameters against one over η̃ alone, the same number of lanes.

Digits, m = 8, heavy-ball momentum, 27 lanes either way: η̃ × λ × μ = 3 × 3 × 3 against 27
η̃ (λ and μ fixed). Each run in a fresh process without the persistent compilation cache,
alternating, `repeats` times: its compile seconds (JAX's own events) and its training
seconds per lane-step (the median epoch after the first, from curves.csv's epoch_seconds,
over the epoch's steps × 27), every lane kept in its program to the end (no compaction: the
grids diverge differently).

    python docs/probes/product_grid_cost.py [--repeats=3] [--epochs=2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Both grids in the stable range, so that no group of lanes stops (a group whose lanes all
# diverged is skipped) and the same programs are compared.
GRIDS = {
    "27 η̃": dict(base_lrs=[2.0**(-14 + 5 * k / 26) for k in range(27)], sweep={}),
    "3 η̃ × 3 λ × 3 μ": dict(base_lrs=[2.0**-13, 2.0**-11, 2.0**-9],
                            sweep={"weight_decay": (0.0, 5e-4, 5e-3),
                                   "momentum": (0.0, 0.5, 0.9)}),
}
RUN = """
import functools, json, sys, smallbatch_jax as sbj
import smallbatch_jax.run.build as build
from smallbatch_jax.engine.trainer import LaneTrainer
# Every lane runs to the end, diverged or not: the programs compared, not how many lanes
# of each grid diverge (lane compaction would leave those out).
build.LaneTrainer = functools.partial(LaneTrainer, compact=False)
grid, epochs_run, workdir = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
config = sbj.load_config({config!r})
config.batch_size, config.epochs, config.optimizer = 8, epochs_run, "momentum"
config.momentum, config.base_lrs = 0.9, tuple(grid["base_lrs"])
config.noise_scale.num_batches = 0
for key, values in grid["sweep"].items():
    config.sweep[key] = tuple(values)
rows = sbj.run_lr_sweep(config, workdir, compilation_cache="", progress=False)
import csv, os, statistics
epochs = {{}}
for row in csv.DictReader(open(os.path.join(workdir, "curves.csv"))):
    epochs[int(row["epoch"])] = float(row["epoch_seconds"])
epoch_s = statistics.median(v for e, v in epochs.items() if e > 1)
print(json.dumps({{"lanes": len(rows), "diverged": sum(r["diverged"] for r in rows),
                  "steps_per_epoch": rows[0]["steps"] // epochs_run,
                  "epoch": epoch_s, "compile": rows[0]["compile_seconds"]}}))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    script = RUN.format(config=os.path.join(REPO, "configs", "default.py"))
    results = {name: [] for name in GRIDS}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for i, (name, grid) in enumerate(GRIDS.items()):
                done = subprocess.run(
                    [sys.executable, "-c", script, json.dumps(grid), str(args.epochs),
                     os.path.join(scratch, f"{i}_{repeat}")],
                    capture_output=True, text=True, check=True)
                results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"digits, m = 8, 27 lanes, {args.epochs} epochs, median of {args.repeats} "
          "alternating fresh processes (no compilation cache):")
    base = None
    for name, runs in results.items():
        compile_s = statistics.median(r["compile"] for r in runs)
        per_lane_step = statistics.median(r["epoch"] / (r["steps_per_epoch"] * r["lanes"])
                                          for r in runs)
        base = base or per_lane_step
        print(f"  {name:18s} compile {compile_s:5.1f} s   {1e3 * per_lane_step:.3f} ms per "
              f"lane-step ({per_lane_step / base:.2f}× the first)   lanes {runs[0]['lanes']}, "
              f"diverged {max(r['diverged'] for r in runs)}")


if __name__ == "__main__":
    main()
