"""The GPU check's record for people: gpu_check.md, from gpu_check.json's record.

The machine; per m and method the throughput, step time, arithmetic rate, compile time and
what the program is made of; the fastest lanes per m against the targets; the estimate of
the paper's whole Fig 1 grid; the profiles; and the sweeps' progress.
"""

import json

from smallbatch_jax.diagnostics.candidates import fastest_per_batch_size


def _speed(figures: dict | None) -> str:
    return "" if not figures else f"{figures['examples_lanes_per_s']:.0f}"


def _tflops(figures: dict, flops_per_example: float | None) -> str:
    """The arithmetic rate achieved: the model's training FLOPs per example × examples/s."""
    if not flops_per_example:
        return ""
    return f"{figures['examples_lanes_per_s'] * flops_per_example / 1e12:.3g}"


def markdown(record: dict) -> str:
    """The check for people: machine, throughput per m and method, the choice, the targets,
    the estimate, profiles, and the sweeps' progress."""
    machine = record["machine"]
    lines = [f"# GPU check: {machine['device_kind']}", "",
             f"jax {machine['jax']} (jaxlib {machine['jaxlib']}), {machine['date']}, "
             f"{machine['platform']} × {machine['num_devices']}"
             + (f"; PyTorch {machine['torch']['torch']}" if "torch" in machine else "")
             + f"; {record.get('elapsed_s', 0):.0f} s so far."
             + (f" The model's training step: {record['train_flops_per_example'] / 1e6:.1f} "
                "MFLOP per example (XLA's count)." if record.get("train_flops_per_example")
                else ""), ""]
    section = record.get("throughput", {})
    if section.get("rows"):
        lines += ["## Throughput (examples·lanes/s, medians of interleaved repeats)", "",
                  "| m | K | method | precision | examples·lanes/s | step ms | TFLOP/s | "
                  "compile s | program MiB | grouped convs | convs | cuDNN | cuBLAS | "
                  "fusions | loops |", "|" + "---|" * 15]
        flops = record.get("train_flops_per_example")
        for row in section["rows"]:
            for name in ("baseline", "limit", "limit_scanned", "torch", "torch_vmap"):
                if name in row:
                    f = row[name]
                    lines.append(f"| {row['batch_size']} | {row['num_lanes']} | {name} | | "
                                 f"{_speed(f)} | {f['step_ms']:.2f} | {_tflops(f, flops)} | "
                                 f"{f['compile_s']:.1f} | | | | | | | |")
            for name, f in row["lanes"].items():
                if "step_ms" not in f:
                    continue
                h = f["hlo"]
                lines.append(
                    f"| {row['batch_size']} | {row['num_lanes']} | lanes {name} | "
                    f"{f['precision']} | {_speed(f)} | {f['step_ms']:.2f} | "
                    f"{_tflops(f, flops)} | {f['compile_s']:.1f} | {f['program_mib'] or 0:.0f} | "
                    f"{h['grouped_convolutions']} | {h['convolutions']} | {h['cudnn_calls']} | "
                    f"{h['cublas_calls']} | {h['fusions']} | {h['while_loops']} |")
            if row["skipped"]:
                lines.append(f"| {row['batch_size']} | | skipped (budget): "
                             f"{', '.join(row['skipped'])} | | | | | | | | | | | | |")
            if row.get("diverged"):
                lines.append(f"| {row['batch_size']} | | diverged (dropped): "
                             f"{', '.join(row['diverged'])} | | | | | | | | | | | | |")
        lines += ["", "## Fastest lanes per m against the targets", "",
                  "| m | fastest | ours/JAX sequential (≥ 3 at m ≤ 8) | "
                  "ours/PyTorch eager (≥ 10 at m ≤ 8) | ours/PyTorch vmapped | "
                  "ours/limit time (≤ 1.3) | ours/scanned limit time | device peak MiB |",
                  "|---|---|---|---|---|---|---|---|"]
        precision = record["config"]["precision"]
        for m, (name, f) in fastest_per_batch_size(section["rows"], precision).items():
            row = next(r for r in section["rows"] if r["batch_size"] == m)
            ratio = lambda name: (f"{row[name]['step_ms'] / f['step_ms']:.2f}" if name in row
                                  else "not measured")
            memory = row.get("device_memory_mib") or {}
            over = lambda limit: (f"{f['step_ms'] / row[limit]['step_ms']:.2f}"
                                  if limit in row else "not measured")
            lines.append(f"| {m} | {name} | {ratio('baseline')} | {ratio('torch')} | "
                         f"{ratio('torch_vmap')} | "
                         f"{over('limit')} | {over('limit_scanned')} | "
                         f"{memory.get('peak_bytes_in_use', float('nan')):.0f} |")
        estimate = section.get("full_fig1_estimate")
        if estimate and not estimate["minutes"]:
            lines += ["", "No estimate of the paper's whole Fig 1 grid: it needs step times "
                      "at two m or more."]
        elif estimate:
            lines += ["", f"Estimate of the paper's whole Fig 1 grid ({estimate['epochs']} "
                      f"epochs × {estimate['num_train']} images × m = 2 … 2048, 13 η̃; "
                      "training only, from the step times above): " + ", ".join(
                          f"{name} {minutes:.1f} min"
                          for name, minutes in estimate["minutes"].items()) + "."]
        profiles = [(row["batch_size"], name, p) for row in section["rows"]
                    for name, p in row.get("profile", {}).items()]
        if profiles:
            lines += ["", "## Profiles (one repeat)", ""]
        for m, name, summary in profiles:
            for process, parts in summary.items():
                if not isinstance(parts, dict):
                    continue
                kernels = parts["kernels"]
                lines.append(f"- m={m}, {name}, {process}: busy {kernels['busy_ms']:.1f} of "
                             f"{kernels['span_ms']:.1f} ms; top: " + "; ".join(
                                 f"{t['name'][:60]} {t['total_ms']:.2f} ms"
                                 for t in kernels["top"][:6]))
    for name in ("fig1", "fig8"):
        if name in record:
            lines += ["", f"## {name}", "", "```", json.dumps(record[name], indent=1,
                                                              default=str), "```"]
    return "\n".join(lines) + "\n"
