"""The GPU check's candidate strategies: spelled, parsed, ranked.

A candidate is written "lanes/conv[/unrollN][/stepsN][@precision]" (configs/gpu_check.py
lists them): how lanes map, how convolutions are computed, scan iterations unrolled, steps
per dispatch, and the precision it is timed at. `best_candidates` ranks the timed ones over
every m, `fastest_per_batch_size` picks each m's fastest (what strategy_table.json records).
"""

import re

import numpy as np

from smallbatch_jax.engine.plan import PRECISIONS
from smallbatch_jax.engine.strategy import Strategy


def parse_candidate(spec: str) -> Strategy:
    """"lanes/conv[/unrollN][/stepsN]" → the Strategy: scan iterations unrolled N steps at a
    time, N steps per dispatch (without: the timing's steps, set by the throughput section)."""
    lanes, conv, *options = spec.split("/") + [""] * (spec.count("/") < 1)
    fields = {}
    for option in options:
        match = re.fullmatch(r"(unroll|steps)(\d+)", option)
        if not match:
            raise ValueError(f"candidate {spec!r}: expected 'lanes/conv[/unrollN][/stepsN]'")
        fields["scan_unroll" if match[1] == "unroll" else "steps_per_dispatch"] = int(match[2])
    return Strategy(lane_map=lanes, conv=conv, **fields)


def parse_candidate_spec(spec: str, precision: str) -> tuple[Strategy, str]:
    """"STRATEGY[@precision]" → (its Strategy, its precision; `precision` without a suffix),
    so that one list can time a strategy at both precisions side by side."""
    name, _, suffix = spec.partition("@")
    suffix = suffix or precision
    if suffix not in PRECISIONS:
        raise ValueError(f"candidate {spec!r}: precision {suffix!r} not in {PRECISIONS}")
    return parse_candidate(name), suffix


def best_candidates(rows: list[dict], count: int, precision: str | None = None) -> list[str]:
    """The `count` candidates (at `precision`; None: any) with the lowest mean slowdown
    against each m's fastest of them, over the m where every one of them was timed."""
    names = [n for n in rows[0]["lanes"] if all(n in row["lanes"] for row in rows)
             and precision in (None, rows[0]["lanes"][n]["precision"])]

    def slowdown(name):
        return np.mean([row["lanes"][name]["step_ms"]
                        / min(row["lanes"][n]["step_ms"] for n in names) for row in rows])

    return sorted(names, key=slowdown)[:count]


def fastest_per_batch_size(rows: list[dict], precision: str) -> dict[int, tuple[str, dict]]:
    """Per m: the name and figures of the fastest lanes at `precision`."""
    chosen = {}
    for row in rows:
        at = {n: f for n, f in row["lanes"].items() if f["precision"] == precision}
        if at:
            name = min(at, key=lambda n: at[n]["step_ms"])
            chosen[row["batch_size"]] = (name, at[name])
    return chosen
