"""Measurements of the library itself, beside the main path: how fast the lanes train and
how an accelerator runs them.

The commands' modules:
- benchmark.py: the trainer under each strategy against K sequential runs and the packing
  limit (experiments/throughput.py);
- gpu_check.py: the prepared accelerator check (experiments/gpu_check.sh), with its sections
  gpu_check_throughput.py (§a), gpu_check_figures.py (§b, §c) and gpu_check_markdown.py;
- concurrent_grids.py: grids of several m in one program (experiments/gpu_concurrency.py);
- full_grid.py: the paper's whole Fig 1 grid timed at full size on synthetic data
  (experiments/full_grid_timing.py);
- torch_baseline.py: the same training in PyTorch (eager sequential runs, and the torch.func
  vmapped grid), for comparison.

What they share:
- timing.py: the clock and budgets, interleaved repeats, and K timed lanes built as a run
  builds them;
- machine.py: the machine described, the carried data, archives to and from the device;
- candidates.py: the candidate strategies parsed and ranked;
- program_stats.py: FLOPs per example, what a compiled program is made of, profiles;
- estimates.py: what a run or a whole sweep should take, from measured step times.
"""
