r"""The figures and summary of a sweep's workdir (also drawn at the end of every sweep): a
batch sweep's, or a ghost-BN sweep's (recognised by several m_BN at one m).

    python -m experiments.plot --workdir=runs/sweep
    python -m experiments.plot --workdir=runs/sweep --tolerance=0.01 \
        --curves="8:0.00390625,64:0.00390625"
    python -m experiments.plot --workdir=runs/sweep --merge=runs/more_seeds/results.csv

Reads workdir/results.csv (and sweep_config.json for the reliable-range tolerance unless
--tolerance is given); writes workdir/figures/*.png|svg and workdir/summary.md, and
workdir/recommendation.md where there is one (experiments.recommend's workdir). --curves adds
the training curves (Fig 4) of the listed m:η̃ pairs from workdir/m{m}/curves.csv. --merge
first adds other tables of the same study (more seeds, run elsewhere) to workdir/results.csv
(results.merge_tables: a lane held twice, or another model, is refused), so that the summary
gives standard errors over all the seeds; or more η̃, beyond a grid's edge.
"""

import os

from absl import app, flags

from experiments import entry
from smallbatch_jax.run import results
from smallbatch_jax.run.directory import SweepDirectory
from smallbatch_jax.study import bn_sweep
from smallbatch_jax.study.batch_sweep import report, run_directory, write_recommendation

_WORKDIR = flags.DEFINE_string("workdir", None, "A batch sweep's workdir.")
# (Bounded as config.reliable_tolerance is: a tolerance of 2 for 2 points called every η̃
# that trained reliable.)
_TOLERANCE = flags.DEFINE_float("tolerance", None, "Reliable-range tolerance in [0, 1], e.g. "
                                "0.02 for 2 points of accuracy (default: the sweep config's "
                                "reliable_tolerance).", lower_bound=0.0, upper_bound=1.0)
_CURVES = flags.DEFINE_list("curves", [], "m:η̃ pairs whose training curves to draw.")
_MERGE = flags.DEFINE_list("merge", [], "results.csv files of the same study (more seeds) "
                           "merged into workdir/results.csv first.")
flags.mark_flags_as_required(["workdir"])


def main():
    workdir = _WORKDIR.value
    sweep = SweepDirectory(workdir)
    rows = sweep.read_results() if sweep.has_results() or not _MERGE.value else []
    if _MERGE.value:
        rows = results.merge_tables([rows] + [results.read_raw(p) for p in _MERGE.value])
        os.makedirs(workdir, exist_ok=True)
        sweep.write_results(rows, results.columns_of(rows))
    if len({(r["batch_size"], r["bn_batch_size"]) for r in rows}) > len(
            {r["batch_size"] for r in rows}):  # several m_BN at one m: a ghost-BN sweep
        if _CURVES.value:
            raise app.UsageError("--curves is for a batch sweep's workdir")
        bn_sweep.report(workdir, rows)
        return
    saved = sweep.saved_config() or {}
    tolerance = _TOLERANCE.value
    if tolerance is None:
        if "reliable_tolerance" not in saved:
            raise app.UsageError(f"no {sweep.CONFIG} in {workdir} to take the reliable-range "
                                 "tolerance from: give --tolerance")
        tolerance = saved["reliable_tolerance"]
    curves = {}
    for pair in _CURVES.value:
        m, lr = pair.split(":")
        run_curves = run_directory(workdir, int(m)).read_curves()
        if run_curves is None:
            raise app.UsageError(f"--curves={pair}: no curves.csv of m = {m} in {workdir}")
        curves[f"m = {m}, η̃ = {results.lr_text(float(lr))}"] = [
            r for r in run_curves if float(r["base_lr"]) == float(lr)]
    report(workdir, rows, tolerance, curves, target=saved.get("target", 0.0))
    if os.path.isfile(sweep.file(sweep.RECOMMENDATION)):
        # (a recommend run's workdir: its answer is of these rows too, not of the table
        # before a merge)
        path = write_recommendation(workdir, rows, tolerance, saved.get("target", 0.0))
        print(f"Wrote {path}")


if __name__ == "__main__":
    entry.run(main)
