#!/usr/bin/env bash
# Issue 13's evidence run: the reduced AlexNet batch sweep of docs/evidence/alexnet_nobn_study.md
# (CIFAR-10 subset, no BN, no augmentation, 10 epochs, λ = 5e-4 as L2) with Adam instead of
# SGD, β₂ fixed at 0.999 against β₂ per example (0.999 at m = 128, β₂(m) = 0.999^(m/128):
# Marek et al. 2025). The swept value is Adam's η itself (lr_scaling 'none'), 2^-18 … 2^-6.
# Interleaved per m (small m first, both rules) so that a cut-off run still compares the rules
# at the smallest m; every run is resumable: run this script again to continue.
#   [RULES="fixed per_example"] [DATA=FILE] bash docs/evidence/alexnet_adam_study.sh [RUNS_DIR] [M ...]
# (M: the batch sizes to train, default all. At m = 128 = m_ref both rules give β₂ = 0.999:
# the two runs there must agree, a check of the rule's plumbing. DATA: the subset's path,
# e.g. .carry/cifar10_subset.npz on the device machine; docs/benchmarks.md, "On a GPU".)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-runs}"
shift || true
ms="${*:-2 4 8 16 32 64 128 256}"
rules="${RULES:-fixed per_example}"
lrs="($(python -c 'print(", ".join(repr(2.0**k) for k in range(-18, -5)))'))"
common=(--config=configs/alexnet_cifar10.py:bn=none
        --config.data_dir="${DATA:-../shared/data/cifar10_subset.npz}" --config.epochs=10
        --config.optimizer=adam "--config.base_lrs=$lrs" --config.adam.beta2=0.999
        --config.adam.beta2_batch_size=128)
for m in $ms; do
  for rule in $rules; do
    python -m experiments.batch_sweep "${common[@]}" --config.adam.beta2_rule=$rule \
        "--config.batch_sizes=($m,)" --workdir="$runs/study_alexnet_adam_$rule"
  done
done
for rule in $rules; do  # the merged tables, figures and summaries: these m and every m done before
  workdir="$runs/study_alexnet_adam_$rule"
  done_ms=$(ls -d "$workdir"/m*/results.csv 2>/dev/null | sed 's|.*/m\([0-9]*\)/results.csv|\1|' || true)
  merged="($(echo $ms $done_ms | tr ' ' '\n' | sort -nu | paste -sd, -),)"
  python -m experiments.batch_sweep "${common[@]}" --config.adam.beta2_rule=$rule \
      "--config.batch_sizes=$merged" --workdir="$workdir"
done
