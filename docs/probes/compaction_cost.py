"""What diverged lanes cost with and without compaction (engine/trainer.py).

The README's digits grid at one m, all 13 lanes in one program (strategy.preset=reference,
the GPU's case), most of which diverge in the first steps: trained with compaction (the
default), without it, and given only the lanes that survive. Three runs per repeat,
interleaved; the training time is results.csv's wall_seconds less compile_seconds.

    python docs/probes/compaction_cost.py [--batch_size=256] [--repeats=3]

Any other run the same way: `--config` (a config file, with its argument), `--set KEY=VALUE`
(repeatable; VALUE a Python literal or a string), `--preset`, `--cpu_cores` (lanes dealt
over the CPU's cores, as the entry points do; the default is one device: one program holds
every lane). The 10-epoch AlexNet sweep of the issue, one m:

    python docs/probes/compaction_cost.py --config=configs/alexnet_cifar10.py:bn=conv \
        --set data_dir=../shared/data/cifar10_subset.npz --set epochs=10 --batch_size=256 \
        --preset=auto --cpu_cores --repeats=1
"""
import ast

import argparse
import functools
import os
import statistics
import tempfile

import smallbatch_jax as sbj
import smallbatch_jax.run.build as build
from smallbatch_jax.engine.trainer import LaneTrainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def train_seconds(config, workdir: str, compact: bool,
                  cpu_cores: bool = False) -> tuple[float, list[dict]]:
    build.LaneTrainer = functools.partial(LaneTrainer, compact=compact)
    try:
        # One device: one program holds every lane (the GPU's case); on several CPU devices
        # the reference plan shards the lanes, which compaction leaves alone.
        rows = sbj.run_lr_sweep(config, workdir, progress=False, cpu_cores=cpu_cores)
    finally:
        build.LaneTrainer = LaneTrainer
    return rows[0]["wall_seconds"] - rows[0]["compile_seconds"], rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "default.py"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--cpu_cores", action="store_true")
    args = parser.parse_args()
    config = sbj.load_config(args.config)
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass  # a string
        *sections, name = key.split(".")
        section = config
        for part in sections:
            section = section[part]
        section[name] = value
    config.batch_size = args.batch_size
    config.strategy.preset = args.preset
    config.noise_scale.num_batches = 0  # training alone
    with tempfile.TemporaryDirectory() as scratch:
        _, rows = train_seconds(config, os.path.join(scratch, "first"), True, args.cpu_cores)
        survivors = tuple(r["base_lr"] for r in rows if r["diverged_step"] < 0)
        alone = config.copy_and_resolve_references()
        alone.base_lrs = survivors
        times = {"compacted": [], "uncompacted": [], "survivors alone": []}
        for repeat in range(args.repeats):
            for name, run_config, compact in (("compacted", config, True),
                                              ("uncompacted", config, False),
                                              ("survivors alone", alone, True)):
                workdir = os.path.join(scratch, f"{name.replace(' ', '_')}{repeat}")
                times[name].append(train_seconds(run_config, workdir, compact,
                                                 args.cpu_cores)[0])
    print(f"{config.model} on {config.dataset}, m = {args.batch_size}, preset={args.preset}, "
          f"{'cpu cores' if args.cpu_cores else 'one device'}, {len(rows)} lanes of which "
          f"{len(survivors)} survive ({', '.join(f'{lr:g}' for lr in survivors)}); training "
          f"seconds (wall less compile), median of {args.repeats} interleaved repeats:")
    alone_s = statistics.median(times["survivors alone"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:16s} {median:7.2f} s  ({median / alone_s:.2f}× the survivors alone)  "
              f"{' '.join(f'{v:.2f}' for v in values)}")


if __name__ == "__main__":
    main()
