#!/usr/bin/env bash
# Any command of this repository on the device machine (docs/benchmarks.md, "On a GPU"),
# e.g. a study script:
#
#     bash experiments/device_run.sh OUTDIR WORKDIR COMMAND [ARGS ...]
#
# Installs the wheels carried in .carry/ without network (carry_env.sh), runs COMMAND with
# its output also in OUTDIR/run.log, then packs what WORKDIR holds for people and figures
# (every .csv, .md and .json, figures' .png and .svg; no checkpoints or final states, which
# are large) into OUTDIR/results.tar.gz: the few files the device tool brings back. Exits
# with COMMAND's status; the results are packed either way (a run cut off by its timeout
# still returns what it finished).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash experiments/device_run.sh OUTDIR WORKDIR COMMAND [ARGS ...]}
work=${2:?usage: bash experiments/device_run.sh OUTDIR WORKDIR COMMAND [ARGS ...]}
shift 2
mkdir -p "$out" "$work"
out=$(cd "$out" && pwd) work=$(cd "$work" && pwd)
log=run.log
source experiments/carry_env.sh
pack() {
  (cd "$work" && find . -type f \( -name '*.csv' -o -name '*.md' -o -name '*.json' \
      -o -path '*/figures/*.png' -o -path '*/figures/*.svg' \) -not -path '*/checkpoints/*' \
      -print0 | tar --null -czf "$out/results.tar.gz" -T -) \
    || echo "packing $work failed" | tee -a "$out/$log"
}
trap pack EXIT
echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$out/$log"
"$@" 2>&1 | tee -a "$out/$log"
status=${PIPESTATUS[0]}
echo "[$(date -u +%H:%M:%S)] exit $status" | tee -a "$out/$log"
exit "$status"
