#!/usr/bin/env bash
# The throughput benchmark at two commits, side by side: processes alternate old, new, old,
# new, … on one machine (a shared machine's load changes over minutes; alternating spreads it
# over both), each printing its table; the medians of each commit's step times are compared.
#
#   git worktree add /tmp/old OLD_COMMIT
#   bash docs/probes/throughput_two_commits.sh /tmp/old . 2 /tmp/tp_compare
#
# Arguments: the old checkout, the new checkout, rounds (each runs both), an output folder;
# BATCH_SIZES="(32,)" to measure other m than 2 and 32.
set -euo pipefail
old=$(cd "$1" && pwd); new=$(cd "$2" && pwd); rounds=${3:-2}; out=${4:-/tmp/tp_compare}
mkdir -p "$out"
flags=(--config.batch_sizes="${BATCH_SIZES:-(2, 32)}" --config.num_lanes="(13,)"
       --config.strategies="('auto',)" --config.repeats=3 --config.sweep_epochs=0)
for round in $(seq 1 "$rounds"); do
  for side in old new; do
    tree=${!side}
    (cd "$tree" && PYTHONPATH="$tree" python -m experiments.throughput \
       --config="$tree/configs/throughput.py" --workdir="$out/$side$round" "${flags[@]}" \
       > "$out/$side$round.log" 2>&1)
    echo "$side round $round done"
  done
done
python - "$out" "$rounds" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def step_ms(side):
    times = {}
    for r in range(1, rounds + 1):
        for row in json.load(open(f"{out}/{side}{r}/throughput.json"))["rows"]:
            times.setdefault(row["batch_size"], []).append(row["lanes"]["auto"]["step_ms"])
    return times
old, new = step_ms("old"), step_ms("new")
print("| m | old step ms (median) | new step ms (median) | new / old |")
print("|---|---|---|---|")
for m in sorted(old):
    a, b = statistics.median(old[m]), statistics.median(new[m])
    print(f"| {m} | {a:.3f} ({', '.join(f'{x:.3f}' for x in old[m])}) | "
          f"{b:.3f} ({', '.join(f'{x:.3f}' for x in new[m])}) | {b / a:.3f} |")
PY
