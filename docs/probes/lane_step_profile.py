"""Exploration (issue 26, docs/benchmarks.md "One batch for every lane, or a copy each"): where
the time of K vmapped lanes' training program goes, per HLO instruction. The zoo model's K
lanes at m, all in one program on one CPU device, S steps per dispatch, `shared_batch` as
given; a few dispatches under `jax.profiler.trace`, whose per-thunk events are summed by
name, per step of all lanes. Read with the program's HLO (`--hlo FILE` writes it).

Usage: taskset -c 0 python docs/probes/lane_step_profile.py [MODEL] [M] [K] [shared|copies]
       (default mlp 2 13 shared) [--hlo FILE]
"""
import collections
import glob
import gzip
import json
import sys
import tempfile

import jax
import numpy as np

from smallbatch_jax.diagnostics import timing, zoo
from smallbatch_jax.engine.strategy import Strategy

args = [a for a in sys.argv[1:] if not a.startswith("--hlo")]
hlo_path = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--hlo=")), None)
name, m, k, batch = (args + ["mlp", "2", "13", "shared"][len(args):])[:4]
m, k, steps, dispatches = int(m), int(k), 64, 5
model, shape, kind = zoo.ZOO[name]
data = timing.synthetic_dataset(shape, 10, m * steps, input_kind=kind)
strategy = Strategy(conv="patches", steps_per_dispatch=steps, shared_batch=batch == "shared")
config = timing.common_run_config(model, m, strategy)
(_, _, run), info = timing.lanes_runner(config, data, k, steps)
if hlo_path:
    timed = timing.timed_lanes(config, data, k)
    arguments = (timed.state.lanes, timed.hparams, timed.dispatch(steps), timed.seeds,
                 np.int32(0), timed.total_steps)
    with open(hlo_path, "w") as f:
        f.write(timed.trainer.programs.train.lower(*arguments, num_steps=steps)
                .compile().as_text())
run()
with tempfile.TemporaryDirectory() as directory:
    with jax.profiler.trace(directory, create_perfetto_trace=True):
        for _ in range(dispatches):
            run()
    trace = json.load(gzip.open(glob.glob(f"{directory}/**/*.trace.json.gz",
                                          recursive=True)[0]))
events = trace["traceEvents"] if isinstance(trace, dict) else trace
total, count = collections.Counter(), collections.Counter()
for event in events:
    if event.get("ph") == "X":
        total[event["name"]] += event.get("dur", 0)
        count[event["name"]] += 1
print(f"{name} m={m} K={k} batch {batch}, jax {jax.__version__}: µs per step of all lanes "
      f"(calls per step), the largest HLO instructions")
for event, micros in total.most_common(60):
    if event.startswith(("$", "ThunkExecutor", "PjitFunction", "Common")):
        continue  # (Python frames and the executor's own spans)
    print(f"{micros / (dispatches * steps):9.1f}  ({count[event] / (dispatches * steps):4.1f})  "
          f"{event}")
