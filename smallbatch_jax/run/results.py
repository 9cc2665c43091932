"""Per-lane results: the paper's metric, the tables a run writes and prints.

The paper's metric (§3.1, after Goyal et al.) is the median test accuracy over the last 5
epochs, evaluated once per epoch. With another objective (objectives.py) it is the median of
that objective's test metric: the columns say `median_test_metric`, and `metric` and
`higher_is_better` say which and in which direction, and `evaluated_on` on which split: 'test',
or 'validation' where the run held one out of the training set (config.validation: the
test_* columns then hold the validation split's values). A lane that diverged has NaN
measurements from that epoch on, so its metric is NaN whenever it diverged within the last
epochs; `diverged` and `diverged_step` say when. `baseline_test_metric` is the metric a
constant prediction scores on the same split (objectives.Objective.baseline: the training
split's most frequent class, or its mean target; blank where not known), the same in every
row of a run; `best_constant_test_metric` is the best a constant prediction scores there,
fitted to that split's own labels (its most frequent class, its mean target): a model that
learned nothing and outputs one class throughout can beat the training split's most
frequent class where the splits' class shares differ, never this. A lane must beat both
(`constant_bar`) to have learned anything from its inputs.
`metric_epochs` is how many epochs the median read, `metric_epochs_before_decay` how many of
them were evaluated before the learning rate's last decay (0 in the paper's 5 of 82: where
half or more were, the median can be a mid-training score, config_checks.check_metric_window).
"""

import collections
import contextlib
import csv
import math
import os

import numpy as np

from smallbatch_jax import noise_scale
from smallbatch_jax.engine.lanes import LaneGrid
from smallbatch_jax.engine.loop import History
from smallbatch_jax.objectives import ACCURACY, CLASSIFICATION, Metric, Objective
from smallbatch_jax.optim import Optimizer

SUMMARY_FIELDS = (
    "model", "dataset", "optimizer", "metric", "higher_is_better", "evaluated_on",
    "lane", "seed", "base_lr", "log2_base_lr", "lr", "batch_size", "bn_batch_size",
    "weight_decay", "warmup", "momentum", "lr_scaling", "beta1", "beta2", "epsilon",
    "grad_clip", "epochs",
    "steps",
    "median_test_metric", "metric_epochs", "metric_epochs_before_decay", "final_test_metric",
    "baseline_test_metric", "best_constant_test_metric", "final_test_loss",
    "final_train_loss",
    "diverged", "diverged_step", "diverged_epoch", "wall_seconds", "compile_seconds",
    "device",
)
# A results row's hyperparameters besides η̃ (config.sweep may sweep any of them; blank
# where the optimizer has none).
HYPERPARAMETER_COLUMNS = ("weight_decay", "momentum", "beta1", "beta2", "epsilon", "warmup",
                          "grad_clip")
CURVE_FIELDS = ("epoch", "lane", "seed", "base_lr", "train_loss", "test_loss", "test_metric",
                "epoch_seconds", "grad_sq_small", "grad_sq_big", "noise_scale",
                "noise_scale_se", "noise_scale_resolved")
# evaluations.csv (a run with evals_per_epoch > 1): every evaluation, inside epochs and at
# their ends, per lane; `epoch` is fractional (steps / steps per epoch).
EVALUATION_FIELDS = ("step", "epoch", "lane", "seed", "base_lr", "test_loss", "test_metric")
# Columns of files written before the metric was configurable, read under today's names.
LEGACY_NAMES = {"median_test_accuracy": "median_test_metric",
                "final_test_accuracy": "final_test_metric", "test_accuracy": "test_metric"}


def metric_of(rows: list[dict]) -> Metric:
    """The metric (name and direction) of results rows; the paper's accuracy for rows that
    do not say (files from before the metric was configurable). Rows of different metrics
    or directions cannot be ranked together: ValueError."""
    found = {Metric(r.get("metric") or "accuracy",
                    r.get("higher_is_better") in (True, "True", "", None)) for r in rows}
    if len(found) > 1:
        raise ValueError(f"results of different metrics cannot be compared: {sorted(found)}")
    return found.pop() if found else ACCURACY


def evaluated_on(rows: list[dict]) -> str:
    """The split results rows were evaluated on: 'test' (also for rows from before the column),
    or 'validation'. Rows of both cannot be ranked together (a choice made on one split and
    a number read on the other): ValueError."""
    found = {split_of(row) for row in rows}
    if len(found) > 1:
        raise ValueError(f"results evaluated on different splits cannot be compared: "
                         f"{sorted(found)} (config.validation)")
    return found.pop() if found else "test"


def baseline_of(rows: list[dict], column: str = "baseline_test_metric") -> float:
    """The metric of a constant prediction on the split results rows were evaluated on
    (`baseline_test_metric`, or `column`); NaN where the rows do not say (an objective
    without one, rows from before the column) or say different things (tables of other data
    merged)."""
    found = set()
    for row in rows:
        value = row.get(column)
        found.add(math.nan if value in (None, "") else float(value))
    if len(found) != 1 or any(math.isnan(v) for v in found):
        return math.nan
    return found.pop()


def constant_bar(rows: list[dict]) -> float:
    """What a lane must beat to have learned anything from its inputs: the better of the
    rows' baseline and the best constant prediction fitted to the evaluated split
    (`best_constant_test_metric`; the baseline alone in rows from before that column); NaN
    where neither is known."""
    metric = metric_of(rows)
    known = [v for v in (baseline_of(rows), baseline_of(rows, "best_constant_test_metric"))
             if not math.isnan(v)]
    return metric.best(known) if known else math.nan


def baseline_text(rows: list[dict]) -> str:
    """What the rows' baseline is and scores, e.g. "always predicting the training split's
    most frequent class scores accuracy 0.9000 on the test split"; '' where not known."""
    baseline = baseline_of(rows)
    if math.isnan(baseline):
        return ""
    metric = metric_of(rows)
    what = {"accuracy": "always predicting the training split's most frequent class",
            "mse": "always predicting the training split's mean target"}.get(
                metric.name, "always predicting the constant output the loss prefers on the "
                "training split")
    split = evaluated_on(rows)
    text = f"{what} scores {metric.name} {baseline:.4f} on the {split} split"
    bar = constant_bar(rows)
    if bar != baseline:
        text += (f", and the best constant prediction there (fitted to the {split} split's own "
                 f"labels) {bar:.4f}")
    return text


def split_of(row: dict) -> str:
    """A results row's `evaluated_on`; 'test' where the row is from before the column."""
    return row.get("evaluated_on") or "test"


def median_last(values: np.ndarray, last: int) -> np.ndarray:
    """Median over the last `last` rows of (epochs, K) values; NaN where any of them is NaN."""
    window = np.asarray(values)[-last:]
    return np.where(np.isnan(window).any(axis=0), np.nan, np.median(window, axis=0))


def summarize(history: History, grid: LaneGrid, *, batch_size: int, bn_batch_size: int,
              steps_per_epoch: int, diverged_step: np.ndarray, last_epochs: int,
              wall_seconds: float = math.nan, compile_seconds: float = math.nan,
              model: str = "", dataset: str = "",
              optimizer: Optimizer = Optimizer(),
              objective: Objective = CLASSIFICATION,
              evaluated_on: str = "test", baseline: float = math.nan,
              best_constant: float = math.nan, device: str = "",
              epochs_before_decay: int = 0) -> list[dict]:
    """One row per lane (see SUMMARY_FIELDS). `wall_seconds`: the run's time (all
    lanes together, evaluation included, its set-up, tuning and compilation too), of which
    `compile_seconds` was compiling (run/compile_time.py: measured, not inferred). `lr` is η
    (optim.Optimizer.learning_rate); `momentum` is μ (blank for Adam); `beta1`, `beta2` and
    `epsilon` are Adam's (blank for SGD); `evaluated_on`: the split the run evaluated on
    (data/dataset.py: EVALUATION_SPLITS); `baseline`: a constant prediction's metric there
    (NaN: not known, written blank), `best_constant` the best one fitted to that split's
    labels (the same); `device`: what the times were measured on
    (run/provenance.py: device_name); `metric_epochs`: how many epochs the median read
    (`last_epochs`, or every epoch of a shorter run), `epochs_before_decay` of them evaluated
    before the learning rate's last decay (optim.epochs_before_last_decay; 0 in the paper's
    protocol, where the median measures where training ends)."""
    adam = optimizer.name in ("adam", "adamw")
    name = optimizer.name + ("-nesterov" if optimizer.nesterov else "")
    metric = np.stack(history.test_metric)
    median = median_last(metric, last_epochs)
    rows = []
    for lane, setting in enumerate(grid.settings()):
        seed, base_lr = setting["seed"], setting["base_lr"]
        step = int(diverged_step[lane])
        rows.append({
            "model": model,
            "dataset": dataset,
            "optimizer": name,
            "metric": objective.metric_name,
            "higher_is_better": objective.higher_is_better,
            "evaluated_on": evaluated_on,
            "lane": lane,
            "seed": seed,
            "base_lr": base_lr,
            "log2_base_lr": math.log2(base_lr),
            "lr": optimizer.learning_rate(base_lr, batch_size),
            "batch_size": batch_size,
            "bn_batch_size": bn_batch_size,
            "weight_decay": setting["weight_decay"],
            "warmup": setting["warmup_fraction"],
            "momentum": "" if adam else setting["momentum"],
            "lr_scaling": optimizer.scaling,
            "beta1": setting["momentum"] if adam else "",
            "beta2": setting["beta2"] if adam else "",
            "epsilon": setting["epsilon"] if adam else "",
            # (Blank where the run does not clip: as tables from before the column.)
            "grad_clip": setting["grad_clip"] if optimizer.clip else "",
            "epochs": history.epoch[-1],
            "steps": history.epoch[-1] * steps_per_epoch,
            "median_test_metric": float(median[lane]),
            "metric_epochs": min(last_epochs, len(history.epoch)),
            "metric_epochs_before_decay": epochs_before_decay,
            "final_test_metric": float(metric[-1, lane]),
            "baseline_test_metric": "" if math.isnan(baseline) else baseline,
            "best_constant_test_metric": "" if math.isnan(best_constant) else best_constant,
            "final_test_loss": float(history.test_loss[-1][lane]),
            "final_train_loss": float(history.train_loss[-1][lane]),
            "diverged": step >= 0,
            "diverged_step": step,
            "diverged_epoch": step // steps_per_epoch + 1 if step >= 0 else -1,
            "wall_seconds": wall_seconds,
            "compile_seconds": compile_seconds,
            "device": device,
        })
    return rows


@contextlib.contextmanager
def replacing(path: str):
    """Yields a temporary path beside `path` to write; renamed onto `path` when the block
    ends without error. A reader (or a sweep deciding what is complete) never sees half a
    file, and processes writing the same file at once leave one whole copy."""
    temporary = f"{path}.tmp{os.getpid()}"
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_csv(path: str, rows: list[dict], fields) -> None:
    with replacing(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def typed(rows: list[dict]) -> list[dict]:
    """Rows read from a CSV (strings), numbers and booleans converted back."""
    def value(text):
        if not isinstance(text, str):
            return text
        if text in ("True", "False"):
            return text == "True"
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    return [{k: value(v) for k, v in row.items()} for row in rows]


def read_raw(path: str) -> list[dict]:
    """Rows of a CSV file as strings (written back, they are the same text), older files'
    column names as today's (LEGACY_NAMES)."""
    with open(path, newline="") as f:
        return [{LEGACY_NAMES.get(k, k): v for k, v in row.items()} for row in csv.DictReader(f)]


def merge_tables(tables: list[list[dict]]) -> list[dict]:
    """The rows of several results tables of one study (more seeds run another day or on
    another machine) as one table. A lane two rows both hold (the same m, m_BN, η̃, seed and
    other hyperparameters: HYPERPARAMETER_COLUMNS, which a study may sweep too) would count
    twice, and tables of different models, data sets, optimizers, meanings of η̃
    (lr_scaling), lengths (epochs, or steps at one m: another training set), metrics, metric
    windows (last_epochs: medians of other epochs) or evaluation splits do not belong
    together (seeds of a 10-epoch run would be averaged with a 30-epoch run's): ValueError for
    either."""
    merged, seen = [], {}
    for index, rows in enumerate(tables):
        for row in rows:
            setting = tuple(float(row[k]) if row.get(k) not in (None, "") else None
                            for k in HYPERPARAMETER_COLUMNS)
            key = (int(row["batch_size"]), int(row.get("bn_batch_size") or row["batch_size"]),
                   float(row["base_lr"]), int(row["seed"]), setting)
            if key in seen:
                others = ", ".join(f"{k} = {v:g}" for k, v in zip(HYPERPARAMETER_COLUMNS,
                                                                   setting) if v is not None)
                raise ValueError(f"tables {seen[key]} and {index} both hold the lane m = "
                                 f"{key[0]}, m_BN = {key[1]}, η̃ = {key[2]:g}, seed {key[3]}"
                                 + (f" ({others})" if others else ""))
            seen[key] = index
            merged.append(row)
    # Seeds of one m with another number of steps trained on another training set (another
    # config.validation, another file) or for another length: not seeds of the same point.
    steps = collections.defaultdict(set)
    for row in merged:
        if row.get("steps") not in (None, ""):
            steps[int(row["batch_size"])].add(int(float(row["steps"])))
    for m, counts in sorted(steps.items()):
        if len(counts) > 1:
            raise ValueError(f"tables of different training sets or lengths cannot be merged: "
                             f"m = {m} trained {sorted(counts)} steps (config.validation, the "
                             "data, or epochs differ)")
    splits = {split_of(row) for row in merged}  # (rows without the column: the test split)
    if len(splits) > 1:
        raise ValueError(f"tables evaluated on different splits cannot be merged: "
                         f"{sorted(splits)} (config.validation)")
    # A constant prediction scores the same on the same data: a different score is other
    # labels (another file of the same size under the same name).
    baselines = {float(row["baseline_test_metric"]) for row in merged
                 if row.get("baseline_test_metric") not in (None, "")}
    if len(baselines) > 1:
        raise ValueError(f"tables of different data cannot be merged: a constant prediction "
                         f"scores {', '.join(f'{b:.4f}' for b in sorted(baselines))} on their "
                         "evaluation splits")
    for field, what in (("model", "models"), ("dataset", "datasets"),
                        ("optimizer", "optimizers"), ("lr_scaling", "lr_scalings"),
                        ("epochs", "lengths (epochs)"), ("metric", "metrics"),
                        ("metric_epochs", "metric windows (last_epochs)")):
        values = {str(row.get(field)) for row in merged} - {"None", ""}
        if len(values) > 1:
            raise ValueError(f"tables of different {what} cannot be merged: {sorted(values)}")
    return merged


def columns_of(rows: list[dict]) -> list[str]:
    """Every column of `rows`, in the order first seen (tables written before a column
    existed lack it)."""
    return list(dict.fromkeys(key for row in rows for key in row))


def read_csv(path: str) -> list[dict]:
    """Rows as `write_csv` wrote them, numbers and booleans converted back (older files'
    column names as today's: LEGACY_NAMES)."""
    return typed(read_raw(path))


def curve_rows(history: History, grid: LaneGrid, probe=None) -> list[dict]:
    """Per epoch and lane: losses, test metric, the epoch's seconds and, where the run probed
    the gradient noise with `probe` (noise_scale.NoiseProbe), the probe's mean |G_small|²,
    |G_big|² and the smoothed noise scale B_simple with its standard error and whether it
    was resolved (NaN and False where not measured; noise_scale.noise_scale_curves)."""
    probed = probe is not None and len(history.grad_sq_small) == len(history.epoch)
    noise = (noise_scale.noise_scale_curves(history.grad_sq_small, history.grad_sq_big,
                                            probe, history.grad_sq_left_out)
             if probed else None)
    rows = []
    for i, epoch in enumerate(history.epoch):
        for lane, (seed, base_lr) in enumerate(grid.lanes()):
            rows.append({
                "epoch": epoch, "lane": lane, "seed": seed, "base_lr": base_lr,
                "train_loss": float(history.train_loss[i][lane]),
                "test_loss": float(history.test_loss[i][lane]),
                "test_metric": float(history.test_metric[i][lane]),
                "epoch_seconds": history.seconds[i],
                "grad_sq_small": float(history.grad_sq_small[i][lane]) if probed else math.nan,
                "grad_sq_big": float(history.grad_sq_big[i][lane]) if probed else math.nan,
                "noise_scale": float(noise.scale[i][lane]) if probed else math.nan,
                "noise_scale_se": float(noise.scale_se[i][lane]) if probed else math.nan,
                "noise_scale_resolved": bool(noise.resolved[i][lane]) if probed else False,
            })
    return rows


def evaluation_rows(history: History, grid: LaneGrid, steps_per_epoch: int) -> list[dict]:
    """Per evaluation (inside epochs and at their ends, in order of step) and lane: the step
    after which it was made, the fractional epoch, the test loss and metric."""
    points = [(step, history.within_test_loss[i], history.within_test_metric[i])
              for i, step in enumerate(history.within_step)]
    points += [(epoch * steps_per_epoch, history.test_loss[i], history.test_metric[i])
               for i, epoch in enumerate(history.epoch)]
    return [{"step": step, "epoch": step / steps_per_epoch, "lane": lane, "seed": seed,
             "base_lr": base_lr, "test_loss": float(loss[lane]), "test_metric": float(metric[lane])}
            for step, loss, metric in sorted(points, key=lambda p: p[0])
            for lane, (seed, base_lr) in enumerate(grid.lanes())]


def lr_text(lr: float) -> str:
    """A learning rate as a power of 2 where it is one, or half of one ('2^-8', '2^-6.5'),
    else as a number ('0.003'): a grid of 1e-3, 3e-3, … reads as it was given, not as
    2^-8.38082."""
    if not (math.isfinite(lr) and lr > 0):
        return f"{lr:g}"
    halves = 2 * math.log2(lr)
    if abs(halves - round(halves)) < 1e-9:
        return f"2^{round(halves) / 2:g}"
    return f"{lr:.3g}"


def format_table(rows: list[dict], last_epochs: int) -> str:
    """The per-lane table printed at the end of a run: the swept value (η̃ for the paper's
    linear scaling) and η."""
    scaling = rows[0].get("lr_scaling", "linear") if rows else "linear"
    swept, eta = {"linear": ("η̃", "η = m·η̃"), "sqrt": ("s", "η = √m·s"),
                  "none": ("η", "η")}[scaling]
    metric = metric_of(rows)
    name, higher, short = metric.name, metric.higher_is_better, metric.short
    # The other hyperparameters the grid sweeps (config.sweep): a column each.
    others = [key for key in HYPERPARAMETER_COLUMNS
              if len({str(r.get(key, "")) for r in rows}) > 1]
    lines = [f"{'seed':>4} {swept:>8} {eta:>10} " + "".join(f"{key:>13} " for key in others)
             + f"{f'median {short} (last {last_epochs})':>21} "
             f"{f'final {short}':>9} {'train loss':>10}  diverged"
             + ("" if higher else f"   ({name}: lower is better)")
             + ("" if evaluated_on(rows) == "test" else
                "   (on the validation split held out of the training set)")]
    base_lrs = [lr_text(float(r["base_lr"])) for r in rows]
    baseline_words, bar = baseline_text(rows), constant_bar(rows)
    best = metric.best([r["median_test_metric"] for r in rows])
    beaten = metric.beats(best, bar)
    for r, base_lr in zip(rows, base_lrs):
        marker = " *" if r["median_test_metric"] == best else ""
        diverged = f"step {r['diverged_step']}" if r["diverged"] else "-"
        lines.append(
            f"{r['seed']:>4} {base_lr:>8} {r['lr']:>10.4g} "
            + "".join(f"{float(r[key]):>13.4g} " for key in others)
            + f"{r['median_test_metric']:>21.4f} {r['final_test_metric']:>9.4f} "
            f"{r['final_train_loss']:>10.4f}  {diverged}{marker}")
    if baseline_words:
        lines.append(f"Baseline: {baseline_words}" + ("." if beaten else
                                                       "; no lane beat it: none learned from "
                                                       "its inputs."))
    return "\n".join(lines)
