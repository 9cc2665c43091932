#!/usr/bin/env bash
# Issue 27's evidence runs on the CIFAR-10 subset (5,085 training, 1,017 test images), each
# resumable (run this script again to continue where it stopped):
# 1. the paper's Fig 6 network (reduced AlexNet, BN after the convolutions), plain SGD,
#    η̃ ∈ 2^-14 … 2^-8 (every second power) × λ ∈ {0, 5e-4, 5e-3} at m ∈ {4, 32, 256},
#    3 seeds, 6 epochs: does tuning λ change the recommended m, and how far is the paper's
#    λ = 5e-4 from the best λ at each m?
# 2. the same network, heavy-ball SGD with μ ∈ {0, 0.9} (μ = 0: plain SGD) × η̃ ∈ 2^-14 …
#    2^-6 (every second power) at m ∈ {8, 128}, λ = 5e-4, 3 seeds, 6 epochs: does momentum
#    help most at large batch sizes (Shallue et al. 2019)?
# 3. (weight_decay_upper) study 1 at m = 4 continued above its grid, η̃ ∈ {2^-6, 2^-4}: there
#    study 1's best η̃ was its largest for every λ. Its lanes join study 1's (a lane trains as
#    it would alone: tests/engine/test_trainer.py), docs/evidence/swept_table.py reads both.
# 4. (momentum_lower) study 2 at m = 128 continued below its grid, η̃ = 2^-16: there momentum's
#    best η̃ was study 2's smallest, 2^-14.
#   [DATA=FILE] [BUDGET=minutes] bash docs/evidence/alexnet_swept_hyperparameters.sh [RUNS_DIR] [weight_decay|momentum|weight_decay_upper|momentum_lower ...]
# Longer than a session on a 2-core CPU (m = 4 alone: ~1 h), and a new checkout has no runs/:
# every finished batch size's run (config.json, curves.csv, results.csv; not its weights) is
# kept in docs/evidence/alexnet_swept_hyperparameters/<study>/m<m>/ to be committed, and
# copied back into the workdir before a study starts, so that the sweep skips it.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-runs}"
shift || true
studies="${*:-weight_decay momentum weight_decay_upper momentum_lower}"
kept=docs/evidence/alexnet_swept_hyperparameters

restore() {  # finished runs kept in the repository -> the workdir
  local run
  for run in "$kept/$1"/m*/; do
    [ -f "$run/results.csv" ] || continue
    mkdir -p "$2/$(basename "$run")"
    [ -f "$2/$(basename "$run")/results.csv" ] || cp "$run"/*.* "$2/$(basename "$run")/"
  done
}
keep() {  # finished runs of the workdir -> the repository (small files only)
  local run
  for run in "$2"/m*/; do
    [ -f "$run/results.csv" ] || continue
    mkdir -p "$kept/$1/$(basename "$run")"
    cp "$run"/config.json "$run"/curves.csv "$run"/results.csv "$kept/$1/$(basename "$run")/"
  done
}
trap 'for study in $studies; do keep "$study" "$runs/fig6_$study"; done' EXIT
trap 'exit 143' TERM INT  # (the EXIT trap runs when the study is stopped, too)
common=(--config=configs/alexnet_cifar10.py:bn=conv
        --config.data_dir="${DATA:-../shared/data/cifar10_subset.npz}" --config.num_seeds=3
        --config.epochs=6 --budget_minutes="${BUDGET:-0}")
for study in $studies; do
  restore "$study" "$runs/fig6_$study"
  case $study in
    weight_decay)
      python -m experiments.recommend "${common[@]}" --config.batch_sizes="(4, 32, 256)" \
          --config.base_lrs="2^-14:2^-8:2" --config.sweep.weight_decay="(0, 5e-4, 5e-3)" \
          --workdir="$runs/fig6_weight_decay" ;;
    momentum)
      python -m experiments.recommend "${common[@]}" --config.batch_sizes="(8, 128)" \
          --config.base_lrs="2^-14:2^-6:2" --config.optimizer=momentum --config.momentum=0.9 \
          --config.sweep.momentum="(0, 0.9)" --workdir="$runs/fig6_momentum" ;;
    weight_decay_upper)
      python -m experiments.recommend "${common[@]}" --config.batch_sizes="(4,)" \
          --config.base_lrs="2^-6:2^-4:2" --config.sweep.weight_decay="(0, 5e-4, 5e-3)" \
          --workdir="$runs/fig6_weight_decay_upper" ;;
    momentum_lower)
      python -m experiments.recommend "${common[@]}" --config.batch_sizes="(128,)" \
          --config.base_lrs="2^-16" --config.optimizer=momentum --config.momentum=0.9 \
          --config.sweep.momentum="(0, 0.9)" --workdir="$runs/fig6_momentum_lower" ;;
    *) echo "unknown study: $study" >&2; exit 2 ;;
  esac
done
