import math
import os

import matplotlib.pyplot as plt
import pytest

from smallbatch_jax.study import plots
from smallbatch_jax.study.analysis import bn_metric_table, context, metric_table
from test_analysis import BN_CELLS, NAN, TABLE, _bn_rows, _rows


@pytest.fixture(autouse=True)
def _close_figures():
    """The tests inspect figures the library returns unsaved; close them after each test."""
    yield
    plt.close("all")


def _lines_with_data(ax):
    return [line for line in ax.get_lines() if len(line.get_xdata())]


def test_accuracy_vs_lr_has_one_curve_per_batch_size_and_marks_divergence():
    accuracies = metric_table(_rows(TABLE))
    fig = plots.metric_vs_lr(accuracies)
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert len(curves) == len(TABLE)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"m = {m}" for m in TABLE]
    strip = fig.axes[1]  # the divergence marks: one row per m, under the curves
    crosses = [line for line in strip.get_lines() if line.get_marker() == "x"]
    diverged = sum(1 for accs in TABLE.values() for acc in accs.values() if acc != acc)
    assert sum(len(line.get_xdata()) for line in crosses) == diverged
    assert [t.get_text() for t in strip.get_yticklabels()] == [str(m) for m in TABLE]


def test_best_accuracy_and_heat_map_hold_the_tables_numbers():
    accuracies = metric_table(_rows(TABLE))
    (line,) = _lines_with_data(plots.best_metric_vs_batch_size(accuracies).axes[0])
    assert list(line.get_ydata()[:3]) == [0.71, 0.70, 0.50]
    image = plots.metric_heat_map(accuracies).axes[0].get_images()[0].get_array()
    assert image.shape == (5, 4)  # 5 η̃ × 4 m
    assert image[2, 0] == 0.71 and image.mask[4, 0]  # m = 2: η̃ = 2^-8 best, 2^-4 blank


def test_heat_map_tells_cells_not_run_from_diverged_ones():
    accuracies = metric_table(_rows(TABLE))
    ax = plots.metric_heat_map(accuracies).axes[0]
    assert "not run" not in ax.get_title() and len(ax.get_images()) == 1
    m, lr = next(key for key in accuracies if not math.isnan(accuracies[key]))
    del accuracies[m, lr]  # that η̃ was never run at that m
    ax = plots.metric_heat_map(accuracies).axes[0]
    assert "grey: not run" in ax.get_title()
    grey, values = (image.get_array() for image in ax.get_images())
    lrs, ms = sorted({l for _, l in accuracies} | {lr}), sorted({b for b, _ in accuracies})
    cell = (lrs.index(lr), ms.index(m))
    assert grey[cell] == 1.0 and values.mask[cell]
    assert grey.mask.sum() == grey.size - 1  # only that cell is grey


def test_reliable_range_plot_states_its_tolerance_and_draws_each_m():
    accuracies = metric_table(_rows(TABLE))
    ax = plots.reliable_range_vs_batch_size(accuracies, 0.06).axes[0]
    assert "best − 0.06" in ax.get_title()
    bars = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [len(line.get_xdata()) for line in bars] == [3, 3]  # m = 2 and m = 8


def test_bn_plots_hold_one_curve_per_batch_size_and_the_grids_numbers(tmp_path):
    rows = _bn_rows(BN_CELLS)
    accuracies = bn_metric_table(rows)
    ax = plots.metric_vs_bn_batch_size(accuracies).axes[0]
    curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert [list(line.get_ydata()) for line in curves][0] == [0.82, 0.78]  # m = 16
    assert len(curves) == 2
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    assert sum(len(line.get_xdata()) for line in crosses) == 1  # (64, 64) diverged
    image = plots.bn_heat_map(accuracies).axes[0].get_images()[0].get_array()
    assert image.shape == (3, 2)  # 3 m_BN × 2 m
    assert image[0, 0] == 0.82 and image.mask[2, 0] and image.mask[2, 1]
    paths = plots.write_bn_figures(rows, str(tmp_path))
    assert {os.path.basename(p) for p in paths} == {
        f"{n}.{ext}" for ext in ("png", "svg") for n in ("accuracy_vs_bn_batch_size",
                                                        "bn_heat_map")}


def test_write_figures_writes_png_and_svg(tmp_path):
    rows = [r | {"bn_batch_size": r["batch_size"]} for r in _rows(TABLE)]
    curves = {"m = 2": [{"epoch": "1", "test_metric": "0.5"}, {"epoch": "2",
                                                                "test_metric": "0.6"}]}
    paths = plots.write_figures(rows, str(tmp_path), 0.02, curves)
    names = {os.path.basename(p) for p in paths}
    assert names == {f"{n}.{ext}" for ext in ("png", "svg") for n in (
        "accuracy_vs_lr", "best_accuracy_vs_batch_size", "reliable_lr_range",
        "accuracy_heat_map", "training_curves")}
    assert all(os.path.getsize(p) > 1000 for p in paths)


def test_an_error_spanning_decades_gets_log_axes_and_figures_named_for_it(tmp_path):
    """A regression's mse: 0.3 at the best η̃ and 40 near divergence, on a linear axis the
    good end is one flat line; its figures are named for the metric, not accuracy. Accuracy
    keeps linear axes."""
    errors = {2: {-12: 0.3, -10: 0.35, -8: 40.0}, 8: {-12: 6.0, -10: 4.0, -8: NAN}}
    rows = [{**row, "metric": "mse", "higher_is_better": "False"} for row in _rows(errors)]
    table = metric_table(rows)
    assert plots.metric_vs_lr(table).axes[0].get_yscale() == "log"
    assert plots.best_metric_vs_batch_size(table).axes[0].get_yscale() == "log"
    curves = {"m = 2": [{"epoch": "1", "test_metric": "40"}, {"epoch": "2",
                                                               "test_metric": "0.3"}]}
    mse = table.ranking
    assert plots.training_curves(curves, mse).axes[0].get_yscale() == "log"
    assert plots.training_curves(curves).axes[0].get_yscale() == "linear"  # accuracy
    assert plots.metric_vs_lr(metric_table(_rows(TABLE))).axes[0].get_yscale() == "linear"
    narrow = metric_table([{**row, "metric": "mse", "higher_is_better": "False"}
                           for row in _rows({2: {-12: 0.3, -10: 0.5}})])
    assert plots.metric_vs_lr(narrow).axes[0].get_yscale() == "linear"  # < a decade
    paths = plots.write_figures(rows, str(tmp_path), 0.02, curves)
    assert {os.path.basename(p) for p in paths if p.endswith(".png")} == {
        "mse_vs_lr.png", "best_mse_vs_batch_size.png", "reliable_lr_range.png",
        "mse_heat_map.png", "training_curves.png"}


def test_comparison_figures_draw_one_curve_and_one_bar_colour_per_sweep(tmp_path):
    other = {2: {-12: 0.80, -10: 0.81}, 8: {-12: 0.85, -10: NAN}}
    tables = {"A": metric_table(_rows(TABLE)), "B": metric_table(_rows(other))}
    ax = plots.compare_best_metric(tables).axes[0]
    curves = _lines_with_data(ax)
    assert [list(line.get_ydata()) for line in curves][1] == [0.81, 0.85]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    ax = plots.compare_reliable_ranges(tables, 0.02).axes[0]
    points = [line for line in ax.get_lines() if line.get_marker() == "o"]
    # A: m = 2 (3 η̃) and m = 8 (1 η̃); B, against its own best 0.85: m = 8 (2^-12) only.
    assert [len(line.get_xdata()) for line in points] == [3, 1, 1]
    assert points[1].get_xdata()[0] < 3 < points[2].get_xdata()[0]  # side by side at m = 8
    paths = plots.write_comparison_figures(tables, str(tmp_path), 0.02)
    assert len(paths) == 4 and all(os.path.getsize(p) > 1000 for p in paths)


def test_training_curves_hold_one_line_per_chosen_run():
    curves = {"m = 2, η̃ = 2^-8": [{"epoch": "1", "test_metric": "0.5"},
                                  {"epoch": "2", "test_metric": "0.6"}],
              "m = 64, η̃ = 2^-8": [{"epoch": "1", "test_metric": "0.3"},
                                   {"epoch": "2", "test_metric": "0.4"}]}
    ax = plots.training_curves(curves).axes[0]
    lines = _lines_with_data(ax)
    assert [list(line.get_ydata()) for line in lines] == [[0.5, 0.6], [0.3, 0.4]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(curves)


def test_figures_for_a_paper_error_bars_staggered_marks_gaps_and_where(tmp_path):
    """With seeds: error bars; each m's divergence marks on their own row; a reliable range
    with a gap drawn as two bars; the model, data and optimizer in the title; 300 dpi."""
    from test_analysis import _seeded
    per_seed = [{2: {-10: 0.60 + d, -9: 0.5, -8: 0.70 + d, -6: NAN},
                 8: {-10: 0.69 + d, -9: 0.7, -8: 0.5, -6: NAN}} for d in (0.0, 0.02)]
    rows = [{**r, "model": "alexnet", "dataset": "cifar10", "optimizer": "sgd"}
            for r in _seeded(per_seed)]
    paths = plots.write_figures(rows, str(tmp_path), 0.02)
    from smallbatch_jax.study.analysis import seed_statistics
    errors = {p: se for p, (_, se, _) in seed_statistics(rows).items()}
    fig = plots.metric_vs_lr(metric_table(rows), errors, context(rows))
    ax = fig.axes[0]
    assert ax.get_title().endswith("alexnet on cifar10, sgd")
    assert len(ax.containers) == 2 and all(c.has_yerr for c in ax.containers)
    crosses = [line for line in fig.axes[1].get_lines() if line.get_marker() == "x"]
    assert len({float(line.get_ydata()[0]) for line in crosses}) == 2  # one row per m
    assert all(t == int(t) for t in fig.axes[1].get_xticks())  # integer log₂ ticks
    markers = {line.get_marker() for line in ax.get_lines() if line.get_marker() != "x"}
    assert len(markers) >= 2  # m told apart by marker too
    gap = plots.reliable_range_vs_batch_size(metric_table(rows), 0.12).axes[0]
    bars = [line for line in gap.get_lines() if line.get_marker() in ("None", "")]
    assert len(bars) == 3  # m = 2: 2^-10, 2^-8 (a gap at 2^-9), m = 8: 2^-10 … 2^-9
    from matplotlib.image import imread
    png = imread(next(p for p in paths if p.endswith("accuracy_vs_lr.png")))
    assert png.shape[1] > 1500  # 6 inches at 300 dpi (tight bounding box)


def test_the_swept_value_is_named_as_the_sweep_scales_it():
    rows = _rows(TABLE)
    assert plots.swept_symbol(rows) == "η̃"
    assert plots.swept_symbol([{**r, "lr_scaling": "none"} for r in rows]) == "η"
    fig = plots.metric_vs_lr(metric_table(rows), swept="η")
    assert fig.axes[1].get_xlabel() == "log₂ η"
    assert fig.axes[0].get_title() == "Test accuracy vs learning rate"  # not "base"
    assert "base learning rate" in plots.metric_vs_lr(metric_table(rows)).axes[0].get_title()
    for figure in (plots.reliable_range_vs_batch_size(metric_table(rows), 0.02, swept="η"),
                   plots.metric_heat_map(metric_table(rows), swept="η")):
        assert figure.axes[0].get_ylabel() == "log₂ η"
    assert plots.metric_heat_map(metric_table(rows)).axes[0].get_ylabel() == "log₂ η̃"


def test_saved_figures_typeset_the_tilde(tmp_path):
    """η̃ as Unicode draws its tilde beside the η ("ñ"): the files get mathtext's."""
    fig = plots.metric_heat_map(metric_table(_rows(TABLE)))
    plots.save(fig, str(tmp_path), "heat")
    assert fig.axes[0].get_ylabel() == r"log₂ $\tilde{\eta}$"
    svg = (tmp_path / "heat.svg").read_text()
    assert "log₂ η̃" not in svg


def test_noise_scale_figure_has_a_curve_per_m_its_error_and_the_best_m():
    """A curve per m, a band of ± one standard error around resolved estimates, the
    unresolved ones hollow (with a legend entry saying so), the best m dashed."""
    from smallbatch_jax.noise_scale import NoisePoint

    nan = float("nan")
    curves = {8: [NoisePoint(1, 10.0, 2.0, True), NoisePoint(2, 20.0, 3.0, True),
                  NoisePoint(4, 40.0, 90.0, False)],
              64: [NoisePoint(1, 12.0), NoisePoint(2, nan)]}  # (no error known: old files)
    ax = plots.noise_scale_vs_progress(curves, 8).axes[0]
    lines = _lines_with_data(ax)
    assert list(lines[0].get_xdata()) == [0.25, 0.5, 1.0]  # epochs as a fraction of training
    filled, hollow = lines[1], lines[2]
    assert list(filled.get_ydata()) == [10.0, 20.0] and filled.get_markerfacecolor() != "none"
    assert list(hollow.get_ydata()) == [40.0] and hollow.get_markerfacecolor() == "white"
    assert list(lines[-1].get_ydata()) == [8, 8]  # the best m, dashed
    (band,) = ax.collections  # m = 8's resolved points only
    top = band.get_paths()[0].vertices[:, 1]
    assert 12.0 in top and 23.0 in top and 130.0 not in top
    assert "hollow: not resolved" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_yscale() == "log"
    lost = plots.noise_scale_vs_progress({**curves, 16: [NoisePoint(1, nan)]}, 8).axes[0]
    assert "not measurable at m = 16" in [t.get_text() for t in lost.texts]
    assert "m = 16" not in [t.get_text() for t in lost.get_legend().get_texts()]


def test_the_papers_eleven_batch_sizes_have_a_colour_each():
    table = {2**k: {-12: 0.5, -10: 0.6} for k in range(1, 12)}  # m = 2 … 2048, as in Fig 1
    ax = plots.metric_vs_lr(metric_table(_rows(table))).axes[0]
    curves = [line for line in ax.get_lines() if line.get_linestyle() == "-"]
    assert len(curves) == 11
    assert len({tuple(line.get_color()) for line in curves}) == 11
    assert len({line.get_marker() for line in curves}) == 11


def test_a_grid_over_weight_decay_draws_the_best_metric_with_it_tuned_or_fixed(tmp_path):
    """One curve with λ tuned and one per fixed λ: does tuning λ move the best m?"""
    rows = []
    for m, lam, score in ((8, 0.0, 0.70), (8, 5e-4, 0.80), (64, 0.0, 0.75), (64, 5e-4, 0.60)):
        rows.append({"batch_size": str(m), "base_lr": str(2.0**-9), "seed": "0",
                     "weight_decay": str(lam), "median_test_metric": str(score)})
    paths = plots.write_figures(rows, str(tmp_path), 0.02)
    assert any(p.endswith("best_accuracy_vs_batch_size_by_weight_decay.png") for p in paths)
    fig = plots.best_metric_tuned_or_fixed(rows, "weight_decay", [0.0, 5e-4])
    ax = fig.axes[0]
    lines = {t.get_text(): line for t, line in zip(ax.get_legend().get_texts(),
                                                   _lines_with_data(ax))}
    assert list(lines["weight_decay tuned"].get_ydata()) == [0.80, 0.75]
    assert list(lines["weight_decay = 0"].get_ydata()) == [0.70, 0.75]
    assert list(lines["weight_decay = 0.0005"].get_ydata()) == [0.80, 0.60]
    # A clipping norm of 0 is no clipping, and its legend says so.
    clipped = [{("grad_clip" if k == "weight_decay" else k): v for k, v in r.items()}
               for r in rows]
    ax = plots.best_metric_tuned_or_fixed(clipped, "grad_clip", [0.0, 5e-4]).axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "grad_clip tuned", "grad_clip = 0 (none)", "grad_clip = 0.0005"]


def test_heat_maps_by_setting_show_each_m_s_two_most_important_dimensions(tmp_path):
    """η̃ × λ × μ: at m = 8 λ matters (μ not at all), at m = 64 μ does (λ not): each m's
    panel shows its own two most important dimensions, each cell the best over the third."""
    rows = []
    for m in (8, 64):
        for k in (-10, -9, -8):
            for wd in (0.0, 5e-3):
                for mu in (0.0, 0.9):
                    score = 0.8 - 0.05 * abs(k + 9) - (10 * wd if m == 8 else 0.1 * mu)
                    rows.append({"batch_size": str(m), "base_lr": str(2.0**k), "seed": "0",
                                 "weight_decay": str(wd), "momentum": str(mu),
                                 "median_test_metric": str(score)})
    fig = plots.swept_heat_maps(rows)
    eight, sixty_four = fig.axes[:2]
    assert (eight.get_ylabel(), eight.get_xlabel()) == ("log₂ η̃", "weight_decay")
    # (μ's spread there, 0.09, is larger than η̃'s, 0.05: μ goes up the side.)
    assert (sixty_four.get_ylabel(), sixty_four.get_xlabel()) == ("momentum", "log₂ η̃")
    cells = eight.get_images()[-1].get_array()
    # η̃ = 2^-9 (middle row), λ = 5e-3: 0.8 − 0.05, at its best μ (either: no effect).
    assert cells[1, 1] == 0.75 and cells[0, 0] == 0.75 and cells[1, 0] == 0.8
    paths = plots.write_figures(rows, str(tmp_path), 0.02)
    assert {os.path.basename(p) for p in paths} >= {
        "accuracy_heat_maps_by_setting.png", "best_accuracy_vs_batch_size_by_momentum.png"}
