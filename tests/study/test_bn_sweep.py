import os

import pytest

from smallbatch_jax.run import results
from smallbatch_jax.study import sweep
from smallbatch_jax.study.bn_sweep import bn_runs, run_bn_sweep
from test_analysis import _rows
from test_batch_sweep import _fake_run, _read
from conftest import REPO_ROOT, parse


def _config(**overrides):
    config = parse(f"--config={REPO_ROOT}/configs/default.py")
    with config.unlocked():
        config.model = "small_cnn_bn"
        config.batch_sizes = (8, 16, 64)
        config.bn_batch_sizes = (4, 16, 64)
        config.base_lrs = (2.0**-10, 2.0**-8)
        for key, value in overrides.items():
            config[key] = value
    return config


def _earlier_sweep(path, table):
    """A finished batch sweep's results.csv: table as in test_analysis._rows."""
    os.makedirs(path, exist_ok=True)
    rows = [{field: "" for field in results.SUMMARY_FIELDS} | row for row in _rows(table)]
    results.write_csv(os.path.join(path, "results.csv"), rows, results.SUMMARY_FIELDS)
    return str(path)


def test_runs_pair_every_m_with_each_bn_batch_size_that_divides_it():
    runs = bn_runs(_config())
    assert [run.name for run in runs] == ["m8_mbn4", "m16_mbn4", "m16_mbn16", "m64_mbn4",
                                         "m64_mbn16", "m64_mbn64"]
    assert runs[2].overrides == {"batch_size": 16, "bn_batch_size": 16,
                                 "base_lrs": (2.0**-10, 2.0**-8)}


def test_lr_per_m_from_an_earlier_batch_sweep_or_given(tmp_path):
    earlier = _earlier_sweep(tmp_path / "fig8", {
        8: {-10: 0.7, -8: 0.8}, 16: {-10: 0.75, -8: 0.6}, 64: {-10: 0.5, -8: float("nan")}})
    runs = bn_runs(_config(lr_from=earlier))
    assert {run.name: run.overrides["base_lrs"] for run in runs} == {
        "m8_mbn4": (2.0**-8,), "m16_mbn4": (2.0**-10,), "m16_mbn16": (2.0**-10,),
        "m64_mbn4": (2.0**-10,), "m64_mbn16": (2.0**-10,), "m64_mbn64": (2.0**-10,)}
    given = bn_runs(_config(lr_per_batch_size=((8, 0.5), (16, 0.25), (64, 0.125))))
    assert [run.overrides["base_lrs"] for run in given] == [(0.5,), (0.25,), (0.25,)] + [
        (0.125,)] * 3


@pytest.mark.parametrize("overrides,match", [
    (dict(lr_per_batch_size=((8, 0.5), (16, 0.25))), r"no η̃ for batch sizes \[64\]"),
    (dict(lr_per_batch_size=((8, 0.5),), lr_from="x"), "both set"),
    (dict(lr_from="/nonexistent"), "no results.csv there"),
    (dict(bn_batch_sizes=(32,), batch_sizes=(8, 16)), "divides any m"),
    (dict(bn_batch_sizes=(4, 4)), "config.bn_batch_sizes=.*distinct"),
    (dict(batch_sizes=()), "config.batch_sizes=.*non-empty"),
])
def test_bad_sweeps_fail_before_anything_runs(tmp_path, monkeypatch, overrides, match):
    monkeypatch.setattr(sweep, "train", _fake_run)
    with pytest.raises(ValueError, match=match):
        run_bn_sweep(_config(**overrides), str(tmp_path / "sweep"))
    assert not (tmp_path / "sweep").exists()


def test_an_earlier_sweep_where_every_lr_failed_at_some_m_is_refused(tmp_path):
    earlier = _earlier_sweep(tmp_path / "fig8", {8: {-10: 0.7}, 16: {-10: 0.7},
                                                 64: {-10: float("nan")}})
    with pytest.raises(ValueError, match=r"no η̃ for batch sizes \[64\] \(every η̃ diverged"):
        bn_runs(_config(lr_from=earlier))


def test_an_earlier_sweep_that_learned_nothing_at_some_m_gives_no_lr_there(tmp_path):
    """At m = 64 no η̃ beat a constant prediction (0.1): its "best" η̃ is noise's, and the
    ghost-BN study would have been trained at it."""
    import csv
    earlier = _earlier_sweep(tmp_path / "fig8", {8: {-10: 0.7}, 16: {-10: 0.7},
                                                 64: {-10: 0.1, -8: 0.09}})
    path = tmp_path / "fig8" / "results.csv"
    rows = [r | {"baseline_test_metric": "0.1"} for r in csv.DictReader(open(path))]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(ValueError, match=r"at m = 64 no η̃ beat a constant prediction \(always "
                                         r"predicting .* 0\.1000"):
        bn_runs(_config(lr_from=earlier))
    assert [r.overrides["base_lrs"] for r in bn_runs(_config(lr_from=earlier,
                                                             batch_sizes=(8, 16)))][0] == (
        2.0**-10,)


def test_a_config_without_the_bn_keys_is_refused():
    """Every config built on configs/common.py has them; a hand-made one may not."""
    config = parse(f"--config={REPO_ROOT}/configs/alexnet_cifar10.py:bn=all")
    with config.unlocked():
        del config["bn_batch_sizes"]
    with pytest.raises(ValueError, match="no .*bn_batch_sizes"):
        bn_runs(config)


def test_sweep_merges_one_table_and_skips_complete_runs(tmp_path, monkeypatch):
    trained = []
    monkeypatch.setattr(sweep, "train",
                        lambda spec, workdir: trained.append(
                            (spec.batch_size, spec.model.bn_batch_size or 0))
                        or _fake_run(spec, workdir))
    config = _config(lr_per_batch_size=((8, 0.5), (16, 0.25), (64, 0.125)))
    rows = run_bn_sweep(config, str(tmp_path))
    assert trained == [(8, 4), (16, 4), (16, 16), (64, 4), (64, 16), (64, 64)]
    table = _read(tmp_path / "results.csv")
    assert len(rows) == len(table) == 6
    assert (tmp_path / "figures" / "bn_heat_map.png").is_file()
    assert "| 64 | 2^-3 |" in (tmp_path / "summary.md").read_text()
    trained.clear()
    os.remove(tmp_path / "m16_mbn16" / "results.csv")
    run_bn_sweep(config, str(tmp_path))
    assert trained == [(16, 16)]


def test_an_earlier_sweep_of_another_model_data_optimizer_or_grid_is_refused(tmp_path):
    """config.lr_from took any workdir's best η̃: a CIFAR-100 sweep's for a CIFAR-10 study,
    another model's, or an η̃ best at a λ the ghost-BN sweep does not use."""
    table = {8: {-10: 0.7, -8: 0.8}, 16: {-10: 0.75, -8: 0.6}, 64: {-10: 0.5, -8: 0.4}}

    def earlier(name, **columns):
        path = _earlier_sweep(tmp_path / name, table)
        rows = results.read_raw(os.path.join(path, "results.csv"))
        results.write_csv(os.path.join(path, "results.csv"), [r | columns for r in rows],
                          results.SUMMARY_FIELDS)
        return path

    same = dict(model="small_cnn_bn", dataset="digits", optimizer="sgd", lr_scaling="linear")
    assert bn_runs(_config(lr_from=earlier("same", **same)))[0].overrides["base_lrs"] == (
        2.0**-8,)
    for key, other in (("dataset", "cifar100"), ("model", "small_cnn"),
                       ("optimizer", "momentum-nesterov"), ("lr_scaling", "sqrt")):
        with pytest.raises(ValueError, match=rf"is a sweep of another {key} \['{other}'\] "
                                             r"\(this sweep: .*: its best η̃ are not this"):
            bn_runs(_config(lr_from=earlier(key, **same | {key: other})))
    # η̃ chosen on the test split, for a study that holds a validation split out (and back).
    with pytest.raises(ValueError, match=r"another evaluated_on \['test'\] \(this sweep: "
                                         r"'validation'\)"):
        bn_runs(_config(lr_from=earlier("same", **same), validation=0.1))
    with pytest.raises(ValueError, match=r"another evaluated_on \['validation'\]"):
        bn_runs(_config(lr_from=earlier("held", **same | {"evaluated_on": "validation"})))
    rows = results.read_raw(os.path.join(earlier("swept", **same), "results.csv"))
    results.write_csv(os.path.join(tmp_path, "swept", "results.csv"),
                      [r | {"weight_decay": wd} for wd in ("0.0", "0.005") for r in rows],
                      results.SUMMARY_FIELDS)
    with pytest.raises(ValueError, match=r"sweeps \['weight_decay'\] besides η̃"):
        bn_runs(_config(lr_from=str(tmp_path / "swept")))
