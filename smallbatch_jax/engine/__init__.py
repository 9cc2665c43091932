"""The training engine: K lanes at once, in small parts (docs/architecture.md follows a run through them):

- step.py: one lane's math (init, SGD step, evaluation), written for one lane;
- programs.py: those compiled for K lanes and many steps (map over lanes, loop over steps);
- batches.py: where batches come from (device-resident, or streamed from the host);
- plan.py: how the lanes execute, decided once (strategy, devices, groups of lanes, lanes per
  program under a memory budget, dispatches, precision, donation);
- trainer.py: the epoch of every group of lanes on its device, and evaluation;
- loop.py: the epoch loop, its history and hooks;
- lanes.py: the grid of lanes and their traced hyperparameters;
- strategy.py: the execution strategies and how 'auto' picks one;
- tune.py: strategy.preset='tune': the strategies timed for the model at hand, cached
  (plan.py calls it);
- sharding.py: lanes over several devices;
- augment.py: the paper's augmentation, inside the compiled step.
"""

from smallbatch_jax.engine.batches import (DeviceBatches, DeviceData, StreamedBatches,
                                           batch_source, put_on_device)
from smallbatch_jax.engine.loop import History, fit
from smallbatch_jax.engine.plan import ExecutionPlan, make_plan, plan_for
from smallbatch_jax.engine.programs import Programs
from smallbatch_jax.engine.state import LaneState, TrainState
from smallbatch_jax.engine.step import LaneStep, cross_entropy, standardize
from smallbatch_jax.engine.trainer import LaneTrainer

__all__ = ["DeviceBatches", "DeviceData", "ExecutionPlan", "History", "LaneState", "LaneStep",
           "LaneTrainer", "Programs", "StreamedBatches", "TrainState", "batch_source",
           "cross_entropy", "fit", "make_plan", "plan_for", "put_on_device", "standardize"]
