"""Training K lanes at once, in small parts (docs/architecture.md follows a run through them):

- step.py: one lane's math (init, SGD step, evaluation), written for one lane;
- programs.py: those compiled for K lanes and many steps (map over lanes, loop over steps);
- batches.py: where batches come from (device-resident, or streamed from the host);
- plan.py: how the lanes execute, decided once (strategy, devices, lanes per program under a
  memory budget, precision, donation);
- lane_groups.py: groups of lanes and their devices;
- trainer.py: the epoch of every group, and evaluation;
- loop.py: the epoch loop, its history and hooks.
"""

from smallbatch_jax.train.batches import (DeviceBatches, DeviceData, StreamedBatches,
                                          batch_source, put_on_device)
from smallbatch_jax.train.loop import History, fit
from smallbatch_jax.train.plan import ExecutionPlan, make_plan, plan_for
from smallbatch_jax.train.programs import Programs
from smallbatch_jax.train.state import LaneState, TrainState
from smallbatch_jax.train.step import LaneStep, cross_entropy, standardize
from smallbatch_jax.train.trainer import LaneTrainer

__all__ = ["DeviceBatches", "DeviceData", "ExecutionPlan", "History", "LaneState", "LaneStep",
           "LaneTrainer", "Programs", "StreamedBatches", "TrainState", "batch_source",
           "cross_entropy", "fit", "make_plan", "plan_for", "put_on_device", "standardize"]
