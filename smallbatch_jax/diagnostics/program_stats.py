"""What a compiled program costs and is made of: the model's training FLOPs per example
(XLA's count, on the CPU), the HLO's grouped convolutions, library calls, fusions and loops,
and a profiler trace summarized by kernel and by HLO op.

With a step time, the FLOPs say how far a lowering is from the device's arithmetic rate; the
HLO and the profile say where the time goes (the GPU check records all three per candidate).
"""

import gzip
import json
import math
import os
import re

import jax
import jax.numpy as jnp
import optax

FLOPS_BATCH_SIZE = 8


def train_flops_per_example(model, image_shape, num_classes: int, device=None) -> float:
    """The model's forward and backward floating-point operations per training example, as
    XLA:CPU counts them (cost analysis of the gradient of the summed loss): with the step
    time, how far a lowering is from the device's arithmetic rate. Counted on the CPU
    (`device`: the first CPU device unless given) because XLA:GPU's count leaves out the
    convolutions it hands to cuDNN (reduced AlexNet: 3.0 MFLOP per example on an H100,
    against 60.5)."""
    cost = training_gradient_program(model, image_shape, num_classes, device).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) / FLOPS_BATCH_SIZE


def training_gradient_program(model, image_shape, num_classes: int, device=None):
    """The gradient of the summed loss over FLOPS_BATCH_SIZE examples, compiled on `device`
    (the first CPU device unless given) whatever the default device: every argument is
    given as a shape placed there (a count needs no values: initializing the model eagerly
    took most of the count's 8 s on a CPU). (Closing over arrays made under
    `jax.default_device` left the arguments uncommitted: the GPU compiled it, and its count
    came back in runs 3, 5 and 6 of docs/gpu/2026-11-26-h100.)"""
    m = FLOPS_BATCH_SIZE
    device = device or jax.devices("cpu")[0]
    on_device = jax.sharding.SingleDeviceSharding(device)
    placed = lambda shape: jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=on_device)
    images = placed(jax.ShapeDtypeStruct((m,) + tuple(image_shape), jnp.float32))
    labels = placed(jax.ShapeDtypeStruct((m,), jnp.int32))
    variables = jax.tree.map(placed, jax.eval_shape(
        lambda: model.init(jax.random.key(0), jnp.zeros((1,) + tuple(image_shape)),
                           train=False)))
    params, others = variables["params"], {k: v for k, v in variables.items() if k != "params"}

    def loss(params, others, images, labels):
        logits = model.apply({**others, "params": params}, images, train=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum()

    return jax.jit(jax.grad(loss)).lower(params, others, images, labels).compile()


def hlo_stats(text: str) -> dict:
    """What a compiled program is made of, counted in its HLO text: where grouped
    convolutions, library calls, kernels (fusions) and loops come from."""
    groups = [int(g) for g in re.findall(r"feature_group_count=(\d+)", text)]
    return {
        "convolutions": len(re.findall(r"\bconvolution\(", text)),
        "grouped_convolutions": sum(g > 1 for g in groups),
        "cudnn_calls": len(re.findall(r'custom_call_target="__cudnn', text)),
        "cublas_calls": len(re.findall(r'custom_call_target="__cublas', text)),
        "dots": len(re.findall(r"\bdot\(", text)),
        "fusions": len(re.findall(r"=\s*\S+\s+fusion\(", text)),
        "while_loops": len(re.findall(r"\bwhile\(", text)),
    }


def profile_summary(trace_dir: str, top: int = 12) -> dict:
    """A jax.profiler trace (its perfetto_trace.json.gz) summarized: per device (or, without
    one, per host) process, the busy time (union of its events) and the events with the most
    total time. On a GPU, the 'Stream' threads hold the kernels and 'XLA Ops' the HLO ops they
    come from; both are summarized, never added together."""
    paths = [os.path.join(root, f) for root, _, files in os.walk(trace_dir) for f in files
             if f == "perfetto_trace.json.gz"]
    if not paths:
        return {"error": f"no perfetto_trace.json.gz under {trace_dir}"}
    with gzip.open(sorted(paths)[-1], "rt") as f:
        events = json.load(f)["traceEvents"]
    processes = {e["pid"]: e["args"]["name"] for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e.get("tid")): e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    device_pids = [pid for pid, name in processes.items() if name.startswith("/device:")]
    pids = device_pids or list(processes)

    def summarize(selected):
        totals, intervals = {}, []
        for e in selected:
            totals[e["name"]] = totals.get(e["name"], 0.0) + e["dur"]
            intervals.append((e["ts"], e["ts"] + e["dur"]))
        busy, end = 0.0, -math.inf
        for a, b in sorted(intervals):
            if b > end:
                busy += b - max(a, end)
                end = b
        ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
        return {"events": len(selected), "busy_ms": busy / 1e3,
                "span_ms": (max(b for _, b in intervals) - min(a for a, _ in intervals)) / 1e3
                if intervals else 0.0,
                "top": [{"name": name[:120], "total_ms": t / 1e3} for name, t in ranked]}

    summary = {}
    for pid in pids:
        timed = [e for e in events if e.get("ph") == "X" and e.get("pid") == pid and "dur" in e]
        by_thread = {}
        for e in timed:
            by_thread.setdefault(threads.get((pid, e.get("tid")), ""), []).append(e)
        streams = [e for name, es in by_thread.items() if name.startswith("Stream") for e in es]
        ops = by_thread.get("XLA Ops", [])
        summary[processes[pid]] = {
            "kernels": summarize(streams or timed),
            **({"hlo_ops": summarize(ops)} if ops else {}),
        }
    return summary
