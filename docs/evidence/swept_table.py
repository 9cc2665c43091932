"""The tables of docs/evidence/alexnet_swept_hyperparameters.md: for each m of the studies'
kept runs (the lanes of every study directory given, joined per m), the mean ± standard
error over seeds of the median test accuracy (%) of every (value of the swept dimension, η̃)
pair, the best cell in bold, a cell where a seed diverged marked "div."; each value at its
best η̃, with Welch's p against `reference` at its own best η̃; and, at each value held fixed, the steps to the
studies' target (study/steps_to_target.py: within 5% of the best over every m and value)
with the η̃ that gets there first (`--target=0.45`: another target).

  python docs/evidence/swept_table.py weight_decay 0.0005 \
      docs/evidence/alexnet_swept_hyperparameters/weight_decay{,_upper}
"""
import glob
import math
import os
import sys

from smallbatch_jax.run.results import read_csv
from smallbatch_jax.study import steps_to_target
from smallbatch_jax.study.analysis import setting_statistics, value_in, welch_p

HYPERPARAMETER_OF = {"weight_decay": "λ", "momentum": "μ"}


def main(key: str, reference: float, study_dirs: list[str], target: float = 0.0) -> None:
    by_m, curves_by_m = {}, {}
    for study_dir in study_dirs:
        for path in glob.glob(os.path.join(study_dir, "m*", "results.csv")):
            rows = read_csv(path)
            m = int(rows[0]["batch_size"])
            # Lanes are numbered per run: a study's lane is (its directory, its number).
            for row in rows:
                row["lane"] = (study_dir, row["lane"])
            curves = read_csv(os.path.join(os.path.dirname(path), "curves.csv"))
            for row in curves:
                row["lane"] = (study_dir, row["lane"])
            by_m.setdefault(m, []).extend(rows)
            curves_by_m.setdefault(m, []).extend(curves)
    target = target or steps_to_target.default_target([row for rows in by_m.values()
                                                        for row in rows])
    for m, rows in sorted(by_m.items()):
        stats = setting_statistics(rows)
        lrs = sorted({point[1] for point in stats})
        values = sorted({value_in(point[1:], key) for point in stats})
        best = max(stats, key=lambda p: -math.inf if math.isnan(stats[p][0]) else stats[p][0])
        print(f"\nm = {m} ({len(rows)} lanes, {rows[0]['epochs']} epochs)\n")
        print(f"| {HYPERPARAMETER_OF[key]} \\ log₂ η̃ | "
              + " | ".join(f"{math.log2(lr):.0f}" for lr in lrs) + " |")
        print("|---" * (len(lrs) + 1) + "|")
        for value in values:
            cells = []
            for lr in lrs:
                point = next(p for p in stats if p[1] == lr and value_in(p[1:], key) == value)
                mean, se, _ = stats[point]
                cell = "div." if math.isnan(mean) else f"{100 * mean:.1f} ± {100 * se:.1f}"
                cells.append(f"**{cell}**" if point == best else cell)
            print(f"| {value:g} | " + " | ".join(cells) + " |")
        seeds = lambda lr, value: [float(r["median_test_metric"]) for r in rows
                                   if float(r["base_lr"]) == lr
                                   and float(r[key]) == value]
        best_lr = best[1]
        # Each value at its own best η̃ (η̃ tuned), against the reference at its own.
        own_best = {value: max((p for p in stats if value_in(p[1:], key) == value),
                               key=lambda p: -math.inf if math.isnan(stats[p][0])
                               else stats[p][0]) for value in values}
        print(f"\nbest: log₂ η̃ = {math.log2(best_lr):.0f}, {HYPERPARAMETER_OF[key]} = "
              f"{value_in(best[1:], key):g}. Each {HYPERPARAMETER_OF[key]} at its best η̃ "
              f"(Welch p against {HYPERPARAMETER_OF[key]} = {reference:g} at its own): "
              + ", ".join(
                  f"{value:g}: 2^{math.log2(own_best[value][1]):.0f} "
                  f"{100 * stats[own_best[value]][0]:.1f} ± {100 * stats[own_best[value]][1]:.1f}"
                  + ("" if value == reference else
                     f" (p = {welch_p(seeds(own_best[value][1], value), seeds(own_best[reference][1], reference)):.2f})")
                  for value in values))
        print(f"steps to {100 * target:.1f}% (epoch ends), each {HYPERPARAMETER_OF[key]} held "
              "fixed: " + ", ".join(_steps_at(rows, curves_by_m[m], key, value, target)
                                    for value in values))


def _steps_at(rows, curves, key: str, value: float, target: float) -> str:
    at = [row for row in rows if float(row[key]) == value]
    lanes = {row["lane"] for row in at}
    m = int(at[0]["batch_size"])
    found = steps_to_target.steps_to_target(
        at, {m: [c for c in curves if c["lane"] in lanes]}, target)[m]
    name = f"{HYPERPARAMETER_OF[key]} = {value:g}"
    if found["steps"] is None:
        return f"{name}: not reached"
    return f"{name}: {found['steps']} (η̃ = 2^{math.log2(found['lr']):.0f})"


if __name__ == "__main__":
    targets = [float(a.split("=", 1)[1]) for a in sys.argv[3:] if a.startswith("--target=")]
    main(sys.argv[1], float(sys.argv[2]), [a for a in sys.argv[3:] if not a.startswith("--")],
         *targets[-1:])
