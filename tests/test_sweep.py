import os

from smallbatch_jax import results, sweep
from smallbatch_jax.sweep import Run, merge_until_stable
from test_batch_sweep import _config, _fake_run, _read

RUNS = [Run("m8", {"batch_size": 8}), Run("m16", {"batch_size": 16}),
        Run("m32", {"batch_size": 32})]


def _finish(workdir, run):
    _fake_run(sweep.config_for(_config(), run), os.path.join(workdir, run.name))


def test_a_run_that_completes_during_the_merge_is_merged_too(tmp_path):
    # Two job-array tasks ending at once: while this task merges m8 and m16, the other
    # finishes m32. A single merge would leave a table without m32 if this task wrote last.
    workdir = str(tmp_path)
    for run in RUNS[:2]:
        _finish(workdir, run)
    reported = []

    def report(rows):
        reported.append(sorted({int(r["batch_size"]) for r in rows}))
        if len(reported) == 1:
            _finish(workdir, RUNS[2])  # the other task, meanwhile

    rows = merge_until_stable(workdir, RUNS, report)
    assert reported == [[8, 16], [8, 16, 32]]
    assert sorted({int(r["batch_size"]) for r in _read(tmp_path / "results.csv")}) == [8, 16, 32]
    assert len(rows) == 3 * len(_config().base_lrs)


def test_merging_an_unchanged_workdir_reports_once(tmp_path):
    _finish(str(tmp_path), RUNS[0])
    reported = []
    merge_until_stable(str(tmp_path), RUNS, reported.append)
    assert len(reported) == 1


def test_replacing_leaves_the_old_file_whole_when_writing_fails(tmp_path):
    path = tmp_path / "summary.md"
    path.write_text("old")
    try:
        with results.replacing(str(path)) as temporary:
            with open(temporary, "w") as f:
                f.write("half")
            raise OSError("disk full")
    except OSError:
        pass
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["summary.md"]
    with results.replacing(str(path)) as temporary, open(temporary, "w") as f:
        f.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["summary.md"]
