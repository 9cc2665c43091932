"""The zoo's throughput table in Markdown, from runs/zoo/<model>/throughput.json
(docs/probes/zoo_throughput.sh writes them).

    python docs/probes/zoo_table.py [runs/zoo]
"""

import json
import os
import sys

from smallbatch_jax.diagnostics.zoo import ZOO


def rows(root: str):
    """(model name, its input shape and kind, a row of its throughput.json) for every zoo
    model measured under `root`, in the zoo's order."""
    for name, (_, shape, kind) in ZOO.items():
        path = os.path.join(root, name, "throughput.json")
        if os.path.isfile(path):
            with open(path) as f:
                for row in json.load(f)["rows"]:
                    yield name, shape, kind, row


def main(root: str = "runs/zoo") -> None:
    print("| model | input | m | K | baseline | limit | ours (auto) | base/ours | ours/limit "
          "| strategy |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, shape, kind, row in rows(root):
        ours = row["lanes"]["auto"]
        strategy = ours["strategy"]
        plan = (f"{strategy['lane_map']}/{strategy['conv']}, "
                f"{strategy['lanes_per_program'] or 'all'} per program, "
                f"{'' if strategy.get('shared_batch', True) else 'a batch per lane, '}"
                f"{ours['devices']} device(s)")
        print(f"| {name} | {kind} {tuple(shape)} | {row['batch_size']} | "
              f"{row['num_lanes']} | {row['baseline']['examples_lanes_per_s']:.0f} | "
              f"{row['limit']['examples_lanes_per_s']:.0f} | "
              f"{ours['examples_lanes_per_s']:.0f} | "
              f"{row['baseline']['step_ms'] / ours['step_ms']:.2f} | "
              f"{ours['step_ms'] / row['limit']['step_ms']:.2f} | {plan} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
