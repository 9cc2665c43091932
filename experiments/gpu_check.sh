#!/usr/bin/env bash
# The GPU check in one command, on the device machine (docs/benchmarks.md, "On a GPU"):
#
#     bash experiments/gpu_check.sh OUTDIR [--config=FILE] [--config.key=value ...]
#
# Installs the wheels carried in .carry/ (experiments/gpu_carry.sh puts ml-collections there,
# with the CIFAR-10 subset) without network, then runs experiments.gpu_check with
# configs/gpu_check.py, its output also in OUTDIR/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash experiments/gpu_check.sh OUTDIR [flags]}
shift
mkdir -p "$out"
log=gpu_check.log  # (into the log: the device tool returns at most 8 files, the check writes 8)
source experiments/carry_env.sh
config=--config=configs/gpu_check.py
for arg in "$@"; do
  case $arg in --config=*) config=;; esac  # the caller names the config (e.g. its :tiny)
done
python3 -m experiments.gpu_check $config --outdir="$out" "$@" 2>&1 | tee -a "$out/gpu_check.log"
