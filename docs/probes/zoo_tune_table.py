"""The zoo's table with strategy.preset='tune' beside 'auto', in Markdown, from
runs/zoo_tune2/<model>/throughput.json (docs/probes/zoo_tune.sh writes them).

    python docs/probes/zoo_tune_table.py [runs/zoo_tune2]

Ratios of step times within a row (interleaved repeats): base/X > 1, the lanes under X beat
13 sequential jitted runs; X/scan: the lanes' step time over the scanned packing limit's
(one model on K·m examples in the lanes' program shape); tune/auto speed-up = auto's step
time over tune's.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo_table  # noqa: E402  (the probe beside this one)


def _short(strategy: dict) -> str:
    lanes = strategy["lanes_per_program"] or "all"
    copies = "" if strategy.get("shared_batch", True) else "/copies"  # (a batch per lane)
    return f"{strategy['lane_map']}/{strategy['conv']}/{lanes}{copies}"


def main(root: str = "runs/zoo_tune2") -> None:
    print("| model | m | base/auto | base/tune | tune vs auto | auto/scan | tune/scan | "
          "auto | tune's choice | tuning s (candidates) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, _, _, row in zoo_table.rows(root):
        auto, tune = row["lanes"]["auto"], row["lanes"]["tune"]
        base = row["baseline"]["step_ms"]
        scan = row.get("limit_scanned", {}).get("step_ms")
        over = lambda x: "—" if scan is None else f"{x['step_ms'] / scan:.2f}"
        tuning = tune.get("tuning")
        cost = ("—" if tuning is None else
                f"{tuning['seconds']:.0f} ({len(tuning['timings'])})")
        print(f"| {name} | {row['batch_size']} | {base / auto['step_ms']:.2f} | "
              f"{base / tune['step_ms']:.2f} | {auto['step_ms'] / tune['step_ms']:.2f}× | "
              f"{over(auto)} | {over(tune)} | {_short(auto['strategy'])} | "
              f"{_short(tune['strategy'])} | {cost} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
