"""A run: one batch size m, its whole learning-rate grid as lanes of one program, in one
directory.

- build.py: the config read once into the run's typed pieces (`create_run`);
- train.py: `train_and_evaluate`, which wires those pieces and loops;
- directory.py: the run directory, which owns every file name, "finished", the lock, and
  the config comparison that resuming rests on;
- config_checks.py: the config and the data checked before any compute;
- checkpoint.py: checkpoints while a run trains, the final state;
- results.py: per-lane rows, the paper's metric, the tables a run writes;
- provenance.py: what a reader needs to rerun it.
"""
