#!/bin/bash
# The zoo's throughput with strategy.preset='tune' beside 'auto' (issue 26): each model's
# lanes under both against 13 sequential jitted runs, the Python-loop limit and the scanned
# limit, K = 13, m = 2, 8, 32, interleaved repeats within each row; tuning (every candidate
# timed) before each row. Writes $ZOO_ROOT/<model>/ (default runs/zoo_tune2); then
# docs/probes/zoo_tune_table.py $ZOO_ROOT. On a GPU (docs/benchmarks.md, round 2):
#   ZOO_ROOT=runs/zoo_gpu BATCH_SIZES="(2, 8, 32, 128)" bash docs/probes/zoo_tune.sh mlp ...
#   bash docs/probes/zoo_tune.sh [model ...]
set -e
models=${@:-resnet20 plain_cnn mlp}
root=${ZOO_ROOT:-runs/zoo_tune2}
python=$(command -v python || command -v python3)
for name in $models; do
  "$python" -m experiments.throughput --config=configs/throughput.py:zoo=$name \
    --config.num_lanes="(13,)" --config.batch_sizes="${BATCH_SIZES:-(2, 8, 32)}" \
    --config.strategies="('auto','tune')" --config.sweep_epochs=0 \
    --workdir="$root/$name"
done
