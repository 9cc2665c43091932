"""The prepared accelerator check: measure every candidate strategy, choose, then train Fig 1.

`run_gpu_check(config, outdir)` is what `python -m experiments.gpu_check` runs (configs/
gpu_check.py says what each section does). Device time is scarce (minutes per session), so:
- one deadline for the whole check, a budget per section, and candidates in priority order:
  what does not fit is skipped and said so, never silently;
- every figure lands in `outdir` as soon as it is measured (gpu_check.json and .md
  rewritten after each row or run; the sweeps' workdirs packed after each run), so a check
  cut off by its timeout still returns what it did, and every log line carries the seconds
  since the start;
- JAX's persistent compilation cache is on, and §a's lanes are built exactly as §b's sweep
  builds them (run.build.create_run, the same data shapes and steps per dispatch), so §b
  reuses §a's compiled programs, and a rerun on the same machine recompiles nothing.

Where the time goes is recorded, not guessed: per candidate, the compiled program's memory
and its HLO (grouped convolutions, cuDNN and cuBLAS calls, fusions, loops), and at a few m a
profile of one repeat summarized by kernel and by HLO op (program_stats.py).

Read top to bottom, `run_gpu_check` is the whole check; each section is its own module:
gpu_check_throughput.py (§a, the candidates timed and chosen), gpu_check_figures.py (§b Fig 1
and §c Fig 8, trained while the time lasts), gpu_check_markdown.py (gpu_check.md).
"""

import json
import os

import jax

from smallbatch_jax import compilation_cache
from smallbatch_jax.diagnostics.gpu_check_figures import fig1_section, fig8_section
from smallbatch_jax.diagnostics.gpu_check_markdown import markdown
from smallbatch_jax.diagnostics.gpu_check_throughput import throughput_section
from smallbatch_jax.diagnostics.machine import (CACHE_ARCHIVE, carried_cifar10,
                                                machine_description, pack, unpack_cache)
from smallbatch_jax.diagnostics.program_stats import train_flops_per_example
from smallbatch_jax.diagnostics.timing import Clock
from smallbatch_jax.diagnostics.torch_baseline import settings as torch_settings, torch_available
from smallbatch_jax.models import create_model
from smallbatch_jax.run import results

RECORD, TABLE = "gpu_check.json", "gpu_check.md"


def run_gpu_check(config, outdir: str) -> dict:
    """All three sections under the config's deadline; returns the record (also in
    outdir/gpu_check.json, with outdir/gpu_check.md for people)."""
    clock = Clock(config.deadline_minutes)
    os.makedirs(outdir, exist_ok=True)
    os.makedirs(config.workdir, exist_ok=True)  # a rerun skips the sweeps' finished runs
    compilation_cache.enable(config.cache_dir, min_compile_seconds=0.0)
    record = {"machine": machine_description(), "config": config.to_dict(),
              "cache_files_carried": unpack_cache(config.cache_archive, config.cache_dir)}
    if config.throughput.torch and torch_available():
        import torch

        record["machine"]["torch"] = torch_settings(
            "cuda" if torch.cuda.is_available() else "cpu")

    def save():
        record["elapsed_s"] = clock.elapsed()
        with results.replacing(os.path.join(outdir, RECORD)) as temporary, \
                open(temporary, "w") as f:
            json.dump(record, f, indent=1, default=str)
        with results.replacing(os.path.join(outdir, TABLE)) as temporary, \
                open(temporary, "w") as f:
            f.write(markdown(record))

    def pack_cache():
        # For the next check on this kind of device (carried back as config.cache_archive).
        if config.cache_dir and not pack(config.cache_dir, os.path.join(outdir, CACHE_ARCHIVE)):
            clock.log(f"the compilation cache is over {CACHE_ARCHIVE}'s size limit"
                      + (": the one packed earlier stays" if os.path.isfile(
                          os.path.join(outdir, CACHE_ARCHIVE)) else ": not returned"))

    clock.log(f"{record['machine']['device_kind']} ({record['machine']['platform']}), "
              f"jax {jax.__version__}; deadline {config.deadline_minutes} min; "
              f"{record['cache_files_carried']} compiled programs carried")
    save()
    dataset = carried_cifar10(config.data_path, clock.log,
                              "§a on random images of its shapes, §b and §c skipped")
    record["train_flops_per_example"] = train_flops_per_example(
        create_model(config.throughput.model, dataset.num_classes), dataset.image_shape,
        dataset.num_classes)
    table_path = throughput_section(config, dataset, clock, record, outdir, save)
    pack_cache()
    if not os.path.isfile(config.data_path):
        record["fig1"] = record["fig8"] = {"skipped": f"no data at {config.data_path}"}
    else:
        fig1_section(config, table_path, clock, record, outdir, save)
        if clock.left() > 0:
            fig8_section(config, table_path, clock, record, outdir, save)
        else:
            record["fig8"] = {"skipped": "no minutes left"}
    pack_cache()
    save()
    clock.log(f"done; wrote {sorted(os.listdir(outdir))}")
    return record
