"""Measurements of the library itself, beside the main path: how fast the lanes train and
how an accelerator runs them.

- benchmark.py: the trainer under each strategy against K sequential runs and the packing
  limit (experiments/throughput.py);
- gpu_check.py: the prepared accelerator check (experiments/gpu_check.sh);
- concurrent_grids.py: grids of several m in one program (experiments/gpu_concurrency.py);
- torch_baseline.py: the same training in PyTorch, for comparison.
"""
