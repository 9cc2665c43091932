"""plots.save (the crop measured once per figure) against the save before stop 48
(bbox_inches='tight' per file, one more draw each), interleaved, on one sweep's
results.csv: CPU seconds of write_figures, 5 repeats each.

    python docs/probes/figure_save.py WORKDIR/results.csv
"""
import os, statistics, sys, time
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from smallbatch_jax.study import plots
from smallbatch_jax.run.results import read_csv

def old_save(fig, directory, name):
    plots._typeset_tilde(fig)
    paths = [os.path.join(directory, f"{name}.{ext}") for ext in plots.FORMATS]
    for path, ext in zip(paths, plots.FORMATS):
        with plots.replacing(path) as temporary:
            fig.savefig(temporary, format=ext, dpi=plots.DPI, bbox_inches="tight")
    plt.close(fig)
    return paths

rows = read_csv(sys.argv[1])
new_save, times = plots.save, {"before": [], "now": []}
for _ in range(5):
    for label, save in (("before", old_save), ("now", new_save)):
        plots.save = save
        start = time.process_time()
        plots.write_figures(rows, f"/tmp/s48_fb_{label}", 0.02)
        times[label].append(time.process_time() - start)
for label, values in times.items():
    print(label, [round(v, 2) for v in values], "median", round(statistics.median(values), 2))
ratio = statistics.median(times["now"]) / statistics.median(times["before"])
print("ratio now/before", round(ratio, 2))
