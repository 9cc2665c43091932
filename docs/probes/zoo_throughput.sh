#!/bin/bash
# The throughput benchmark over the model zoo (smallbatch_jax/diagnostics/zoo.py): each
# model's lanes ('auto') against 13 sequential jitted runs and the packing limit, K = 13,
# m = 2, 8, 32, 128, interleaved repeats within each row. Writes runs/zoo/<model>/.
#   bash docs/probes/zoo_throughput.sh [model ...]
set -e
models=${@:-alexnet resnet20 plain_cnn plain_cnn_project_layers plain_cnn_bn mlp token_cnn}
for name in $models; do
  python -m experiments.throughput --config=configs/throughput.py:zoo=$name \
    --config.num_lanes="(13,)" --config.strategies="('auto',)" --config.sweep_epochs=0 \
    --workdir=runs/zoo/$name
done
