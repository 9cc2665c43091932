#!/usr/bin/env bash
# What the GPU check needs that the device machine lacks, in the ignored folder .carry/
# (name it in the device tool's `carry`): the ml-collections wheel (pure Python; absl-py and
# PyYAML are there), the orbax-checkpoint wheel the tests ran with (pure Python; the device
# has its dependencies, tensorstore included, but an orbax of unknown version), filelock (the
# tuned strategies' cache, engine/tune.py; pure Python) and the
# CIFAR-10 subset from ../shared (never committed).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .carry
python3 -m pip download -q --no-deps --only-binary=:all: --dest .carry "ml-collections==1.1.0" \
  "orbax-checkpoint==$(python3 -c 'import importlib.metadata as m; print(m.version("orbax-checkpoint"))')" \
  "filelock==$(python3 -c 'import importlib.metadata as m; print(m.version("filelock"))')"
cp ../shared/data/cifar10_subset.npz .carry/
ls -la .carry
