"""What one more lane costs in one vmapped program (why compaction's buckets matter).

Digits, m = 256, `strategy.preset=reference` on one CPU device, 8 epochs, 5, 6 and 8 stable
η̃ (the extra lanes copies of 2^-8, nudged), twice each, alternating: the median epoch after
the first (curves.csv's epoch_seconds).

    python docs/probes/lane_count_cost.py
"""

import csv
import os
import statistics
import tempfile

import smallbatch_jax as sbj

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    config = sbj.load_config(os.path.join(REPO, "configs", "default.py"))
    config.batch_size, config.epochs = 256, 8
    config.strategy.preset = "reference"
    config.noise_scale.num_batches = 0
    lrs = (2.0**-12, 2.0**-11, 2.0**-10, 2.0**-9, 2.0**-8)
    grids = {5: lrs, 6: lrs + (2.0**-8 * 1.0001,),
             8: lrs + tuple(2.0**-8 * (1 + k * 1e-4) for k in (1, 2, 3))}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(2):
            for lanes, grid in grids.items():
                config.base_lrs = grid
                workdir = os.path.join(scratch, f"{lanes}_{repeat}")
                sbj.run_lr_sweep(config, workdir, progress=False, cpu_cores=False)
                seconds = {int(r["epoch"]): float(r["epoch_seconds"])
                           for r in csv.DictReader(open(os.path.join(workdir, "curves.csv")))}
                median = statistics.median(v for e, v in seconds.items() if e > 1)
                print(f"{lanes} lanes: median epoch {median:.3f} s", flush=True)


if __name__ == "__main__":
    main()
