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
if compgen -G ".carry/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/gpu_check_site .carry/*.whl || exit 1
  export PYTHONPATH=/tmp/gpu_check_site${PYTHONPATH:+:$PYTHONPATH}
  # The carried Orbax was tested with this machine's jax, not necessarily with the device's:
  # if it does not import there, fall back to the device's own.
  if ! python3 -c "import orbax.checkpoint" 2> /tmp/gpu_check_orbax.log; then
    # (into the log: the device tool returns at most 8 files, and the check writes 8)
    echo "the carried orbax-checkpoint does not import; using the device's:" | tee "$out/gpu_check.log"
    tail -3 /tmp/gpu_check_orbax.log | tee -a "$out/gpu_check.log"
    rm -rf /tmp/gpu_check_site/orbax /tmp/gpu_check_site/orbax_checkpoint-*
  fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
config=--config=configs/gpu_check.py
for arg in "$@"; do
  case $arg in --config=*) config=;; esac  # the caller names the config (e.g. its :tiny)
done
python3 -m experiments.gpu_check $config --outdir="$out" "$@" 2>&1 | tee -a "$out/gpu_check.log"
