#!/bin/bash
# Issue 13: what `pip install .` costs before and after TensorFlow became an extra. A fresh
# venv per variant, no pip cache: the install's wall time and the venv's size.
#   git archive 1b0ca7d | (mkdir -p /tmp/inst/before && tar -x -C /tmp/inst/before)
#   git archive 735cdab | (mkdir -p /tmp/inst/after && tar -x -C /tmp/inst/after)
#   bash docs/probes/install_size.sh
for v in before after; do
  python -m venv /tmp/inst/venv_$v
  start=$(date +%s.%N)
  /tmp/inst/venv_$v/bin/pip install --no-cache-dir -q /tmp/inst/$v > /tmp/inst/$v.log 2>&1
  rc=$?
  end=$(date +%s.%N)
  size=$(du -sm /tmp/inst/venv_$v | cut -f1)
  echo "$v rc=$rc seconds=$(echo "$end - $start" | bc) venv_MiB=$size"
done
