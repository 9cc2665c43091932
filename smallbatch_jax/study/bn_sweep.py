"""SGD batch m × BatchNorm batch m_BN: the paper's ghost-BN study (Figs 13 and 14).

`run_bn_sweep(config, workdir)` is what `python -m experiments.bn_sweep` runs. For every m
in `config.batch_sizes` and every m_BN in `config.bn_batch_sizes` that divides m, one
lr_sweep program with batch_size = m and bn_batch_size = m_BN, into
`workdir/m{m}_mbn{m_BN}/` (sweep.py: one merged results.csv, re-runs skip what is complete,
`task_index`/`num_tasks` split the runs over machines). Figures (accuracy vs m_BN per m,
the m × m_BN heat map) and summary.md are written from the merged table.

Which η̃ each m trains with (the paper uses the best η̃ of the m_BN = m sweep at that m),
in this order:
- `config.lr_from`: an earlier batch_sweep workdir; its best η̃ at each m (analysis.py);
- `config.lr_per_batch_size`: ((m, η̃), …) given by hand (the paper's Fig 14: 2⁻¹⁰ for
  m = 256–1024, 2⁻⁹ for m = 2048);
- otherwise the whole `config.base_lrs` grid at every (m, m_BN), and each cell reports its
  best η̃.
"""

import math

from smallbatch_jax.run.build import optimizer_of
from smallbatch_jax.run.directory import SweepDirectory
from smallbatch_jax.run.results import baseline_text, split_of
from smallbatch_jax.study import analysis, plots
from smallbatch_jax.study.sweep import Run, run_sweep, write_summary


def best_lrs_from(workdir: str, config) -> dict[int, float]:
    """{m: the best η̃ at m} of the batch sweep in `workdir` (m where every η̃ failed left
    out), which must be of the config's model, data set, optimizer, η̃'s meaning (its
    lr_scaling) and evaluation split (config.validation: η̃ chosen on the test split would
    leak it into a study that holds a validation split out), and sweep η̃ alone: another's
    best η̃ would be taken without a word (a CIFAR-100 sweep's for a CIFAR-10 study, or an η̃
    best at a λ this study does not use)."""
    sweep = SweepDirectory(workdir)
    if not sweep.has_results():
        raise ValueError(f"config.lr_from={workdir!r}: no {sweep.RESULTS} there; give the "
                         "workdir of a finished experiments.batch_sweep")
    rows = sweep.read_results()
    optimizer = optimizer_of(config)
    ours = {"model": config.model, "dataset": config.dataset,
            "optimizer": optimizer.name + ("-nesterov" if optimizer.nesterov else ""),
            "lr_scaling": optimizer.scaling,
            "evaluated_on": "validation" if config.validation else "test"}
    theirs = lambda r, key: split_of(r) if key == "evaluated_on" else r.get(key)
    differ = [f"{key} {sorted({str(theirs(r, key)) for r in rows})} (this sweep: {value!r})"
              for key, value in ours.items()
              if any(theirs(r, key) not in (None, "") and str(theirs(r, key)) != str(value)
                     for r in rows)]
    if differ:
        raise ValueError(f"config.lr_from={workdir!r} is a sweep of another "
                         + "; ".join(differ) + ": its best η̃ are not this sweep's. Give "
                         "the batch sweep of this config, or config.lr_per_batch_size")
    swept = analysis.swept_besides_lr(rows)
    if swept:
        raise ValueError(f"config.lr_from={workdir!r} sweeps {sorted(swept)} besides η̃: its "
                         "best η̃ at each m is at that m's best setting of them, which this "
                         "sweep does not use. Give config.lr_per_batch_size")
    best = analysis.best_per_batch_size(analysis.metric_table(rows))
    # An m whose best does not beat a constant prediction has no best η̃, only noise's.
    learned_nothing = [m for m in analysis.batch_sizes_at_baseline(rows)
                       if m in config.batch_sizes]
    if learned_nothing:
        raise ValueError(f"config.lr_from={workdir!r}: at m = "
                         f"{', '.join(map(str, learned_nothing))} no η̃ beat a constant "
                         f"prediction ({baseline_text(rows)}): its best η̃ there is noise. "
                         "Drop them from config.batch_sizes, or give config.lr_per_batch_size")
    return {m: lr for m, (lr, _) in best.items() if not math.isnan(lr)}


BN_SWEEP_KEYS = ("bn_batch_sizes", "lr_from", "lr_per_batch_size")


def lrs_per_batch_size(config) -> dict[int, tuple[float, ...]]:
    """The η̃ each m of the sweep trains with (see the module docstring)."""
    if config.lr_from and config.lr_per_batch_size:
        raise ValueError("config.lr_from and config.lr_per_batch_size are both set; give one")
    if config.lr_from:
        chosen, source = (best_lrs_from(config.lr_from, config),
                          f"config.lr_from={config.lr_from!r}")
    elif config.lr_per_batch_size:
        chosen = {int(m): float(lr) for m, lr in config.lr_per_batch_size}
        source = f"config.lr_per_batch_size={config.lr_per_batch_size!r}"
    else:
        return {m: tuple(config.base_lrs) for m in config.batch_sizes}
    missing = [m for m in config.batch_sizes if m not in chosen]
    if missing:
        raise ValueError(f"{source} has no η̃ for batch sizes {missing} (every η̃ diverged "
                         "there, or they were not run); drop them from config.batch_sizes")
    return {m: (chosen[m],) for m in config.batch_sizes}


def bn_runs(config) -> list[Run]:
    """One run per (m, m_BN) with m_BN dividing m, m-major."""
    missing = [key for key in BN_SWEEP_KEYS if key not in config]
    if missing:
        raise ValueError(f"the config has no {missing}: a ghost-BN sweep needs a config that "
                         "lists them (configs/ghost_bn_cifar.py, configs/resnet50_imagenet.py, "
                         "configs/default.py)")
    for key in ("batch_sizes", "bn_batch_sizes"):
        values = tuple(config[key])
        if not values or len(set(values)) != len(values) or not all(
                isinstance(v, int) and v > 0 for v in values):
            raise ValueError(f"config.{key}={config[key]!r} is invalid; allowed: a non-empty "
                             "tuple of distinct positive integers")
    lrs = lrs_per_batch_size(config)
    runs = [Run(f"m{m}_mbn{b}", {"batch_size": m, "bn_batch_size": b, "base_lrs": lrs[m]})
            for m in config.batch_sizes for b in config.bn_batch_sizes if m % b == 0]
    if not runs:
        raise ValueError(f"no m_BN of config.bn_batch_sizes={config.bn_batch_sizes!r} divides "
                         f"any m of config.batch_sizes={config.batch_sizes!r}")
    return runs


def run_bn_sweep(config, workdir: str, task_index: int = 0, num_tasks: int = 1) -> list[dict]:
    """Runs this task's unfinished (m, m_BN), merges, reports; returns the merged rows."""
    return run_sweep(config, bn_runs(config), workdir, lambda rows: report(workdir, rows),
                     task_index, num_tasks)


def report(workdir: str, rows) -> None:
    """The figures (workdir/figures/) and summary.md of the rows; printed summary too."""
    paths = plots.write_bn_figures(rows, SweepDirectory(workdir).file(SweepDirectory.FIGURES))
    write_summary(workdir, analysis.bn_summary_markdown(rows), paths)
