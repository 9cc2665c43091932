"""A study: many runs in one workdir (a sweep over m, or over m × m_BN) and the answer read
from their table.

- sweep.py: the runs of a grid, trained, resumed, split over tasks, merged into one table;
- batch_sweep.py, bn_sweep.py: the paper's two studies and their reports;
- analysis.py, steps_to_target.py, recommend.py: what the table says (best m and η̃,
  reliable ranges, noise between seeds, time to a target, verdicts);
- plots.py: the figures.
"""
