#!/bin/bash
# The zoo's throughput with strategy.preset='tune' beside 'auto' (issue 26): each model's
# lanes under both against 13 sequential jitted runs, the Python-loop limit and the scanned
# limit, K = 13, m = 2, 8, 32, interleaved repeats within each row; tuning (every candidate
# timed) before each row. Writes runs/zoo_tune2/<model>/; then docs/probes/zoo_tune_table.py.
#   bash docs/probes/zoo_tune.sh [model ...]
set -e
models=${@:-resnet20 plain_cnn mlp}
for name in $models; do
  python -m experiments.throughput --config=configs/throughput.py:zoo=$name \
    --config.num_lanes="(13,)" --config.batch_sizes="(2, 8, 32)" \
    --config.strategies="('auto','tune')" --config.sweep_epochs=0 \
    --workdir=runs/zoo_tune2/$name
done
