"""What a sweep should take, from measured step times.

- The GPU check: step times interpolated between the measured m (`interpolated_ms`), the
  paper's whole Fig 1 grid (`full_sweep_estimate`), one run's wall time with its compilation
  and evaluation (`run_seconds`, `expected_seconds`), and the epochs of Fig 8 that fit the
  time left (`fig8_plan`).
- The throughput benchmark: a sweep over the measured m alone (`sweep_estimate`,
  `format_estimate`).
"""

import math

from smallbatch_jax.diagnostics.candidates import fastest_per_batch_size

# The full data set the estimate is for: the paper's Fig 1 on all of CIFAR-10.
FULL_NUM_TRAIN, FULL_EPOCHS, FULL_BATCH_SIZES = 50_000, 82, tuple(2**k for k in range(1, 12))


def interpolated_ms(measured: dict[int, float], m: int) -> float:
    """Step time at m from the measured m around it, linear in log m – log time; below the
    smallest measured m the same as there (small steps are latency-bound), above the largest
    proportional to m (large ones are compute-bound)."""
    if m in measured:
        return measured[m]
    below, above = [x for x in measured if x < m], [x for x in measured if x > m]
    if not below:
        return measured[min(above)]
    if not above:
        return measured[max(below)] * m / max(below)
    a, b = max(below), min(above)
    t = math.log(m / a) / math.log(b / a)
    return math.exp((1 - t) * math.log(measured[a]) + t * math.log(measured[b]))


def full_sweep_estimate(rows: list[dict], precision: str) -> dict:
    """The paper's whole Fig 1 grid (13 η̃ × m = 2 … 2048 × 82 epochs × 50,000 images) from
    the measured step times (interpolated between measured m; training only), for ours, the
    JAX sequential baseline and, where measured, PyTorch eager sequential runs; only for a
    series measured at two m or more."""
    series = {"ours": {m: f["step_ms"] for m, (_, f) in
                       fastest_per_batch_size(rows, precision).items()},
              "jax_sequential": {r["batch_size"]: r["baseline"]["step_ms"] for r in rows
                                 if "baseline" in r},
              "torch_sequential": {r["batch_size"]: r["torch"]["step_ms"] for r in rows
                                   if "torch" in r}}
    estimate = {"num_train": FULL_NUM_TRAIN, "epochs": FULL_EPOCHS, "minutes": {},
                "from_batch_sizes": {}}
    for name, measured in series.items():
        # One m says nothing about how the step time changes over three decades of m (a
        # check of m = 512 alone "estimated" m = 2's steps at m = 512's time: 28 hours).
        if len(measured) >= 2:
            estimate["from_batch_sizes"][name] = sorted(measured)
            estimate["minutes"][name] = sum(
                FULL_EPOCHS * (FULL_NUM_TRAIN // m) * interpolated_ms(measured, m)
                for m in FULL_BATCH_SIZES) / 6e4
    return estimate


# What a sweep run spends beyond its training steps, measured on an H100 (runs 5 and 8,
# docs/gpu): compiling its programs and the first epoch's other excess, 11–26 s per new
# program at TF32 (the timing's programs are not the sweep's, so the cache does not help);
# evaluating the test set each epoch, 5–21% of an epoch's training steps (more at large m,
# whose epochs are short).
COMPILE_SECONDS = 30.0
EVALUATION_FACTOR = 1.2


def run_seconds(measured_ms: dict[int, float], batch_size: int, steps_per_epoch: int,
                epochs: int, lane_fraction: float = 1.0) -> float:
    """A run's expected wall time from §a's step times (of `lane_fraction` as many lanes as
    the run has: fewer lanes cost less), evaluation and compilation included; 0 without a
    measurement."""
    if not measured_ms:
        return 0.0
    steps_seconds = (lane_fraction * epochs * steps_per_epoch
                     * interpolated_ms(measured_ms, batch_size) / 1e3)
    return EVALUATION_FACTOR * steps_seconds + COMPILE_SECONDS


def expected_seconds(rows, precision: str, num_train: int, epochs: int, lane_fraction: float):
    """m → a sweep run's expected seconds, from §a's fastest lanes at `precision` (measured
    at every m; another precision's run costs about the same at small m, where steps are
    latency-bound), scaled by the run's share of §a's lanes."""
    measured = {m: f["step_ms"] for m, (_, f) in fastest_per_batch_size(rows, precision).items()}
    return lambda m: run_seconds(measured, m, num_train // m, epochs, lane_fraction)


def fig8_plan(epoch_seconds: dict[int, float], seconds_left: float,
              max_epochs: int) -> tuple[int, dict[int, float]]:
    """The epochs (the same at every m, as the paper compares m) that fit `seconds_left`
    when each m's epoch takes its timed `epoch_seconds` plus evaluation, and each m's run
    compiles anew; and each m's expected seconds at that length (sweep_until skips an m
    whose time is not left rather than have it cut off)."""
    compiling = COMPILE_SECONDS * len(epoch_seconds)
    per_epoch = EVALUATION_FACTOR * sum(epoch_seconds.values())
    epochs = int(min(max_epochs, max(seconds_left - compiling, 0.0) // per_epoch))
    return epochs, {m: EVALUATION_FACTOR * epochs * seconds + COMPILE_SECONDS
                    for m, seconds in epoch_seconds.items()}


def sweep_estimate(rows: list[dict], ours: str, num_train: int, epochs: int) -> dict:
    """The training time of a batch-size sweep from measured step times (e.g. the paper's
    Fig 1: 82 epochs of 50,000 images at every m of 2 … 2048): per measured m, at the most
    lanes measured for it, epochs · ⌊num_train / m⌋ steps of ours and of the baseline
    (K sequential runs). Evaluation and compilation are not included."""
    widest = {}
    for row in rows:
        if row["num_lanes"] >= widest.get(row["batch_size"], {"num_lanes": 0})["num_lanes"]:
            widest[row["batch_size"]] = row
    per_m = []
    for m, row in sorted(widest.items()):
        steps = epochs * (num_train // m)
        per_m.append({"batch_size": m, "num_lanes": row["num_lanes"], "steps": steps,
                      "ours_hours": steps * row["lanes"][ours]["step_ms"] / 3.6e6,
                      "baseline_hours": steps * row["baseline"]["step_ms"] / 3.6e6})
    return {"num_train": num_train, "epochs": epochs, "per_m": per_m,
            "ours_hours": sum(r["ours_hours"] for r in per_m),
            "baseline_hours": sum(r["baseline_hours"] for r in per_m)}


def format_estimate(estimate: dict) -> str:
    lines = [f"Sweep estimate: {estimate['epochs']} epochs of {estimate['num_train']} examples "
             "at each m below (training only)",
             "    m    K      steps   ours (h)  baseline (h)"]
    lines += [f"{r['batch_size']:5d} {r['num_lanes']:4d} {r['steps']:10d} {r['ours_hours']:10.2f} "
              f"{r['baseline_hours']:13.2f}" for r in estimate["per_m"]]
    lines.append(f"total {estimate['ours_hours']:.2f} h ours, {estimate['baseline_hours']:.2f} h "
                 "baseline")
    return "\n".join(lines)
