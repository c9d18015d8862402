"""Figures render from real result folders and contain the artists they promise."""

from __future__ import annotations

import pytest
from matplotlib.collections import PathCollection
from matplotlib.image import AxesImage
from scenario_support import save_tiny_model, use_fake_chip, write_scenario

from accelsim.workflow import columns as C
from accelsim.workflow import plots as P
from accelsim.workflow import results as R
from accelsim.workflow import runner
from accelsim.workflow.columns import ENERGY_COMPONENTS

SWEEP = """\
name: sweep
model: tiny
data: {images: 6}
sweep:
  grid:
    hardware.overrides.tile.accumulate_units: [1, 4]
    simulation.timesteps: [1, 2, 3]
"""


@pytest.fixture(scope="module")
def sweep_results(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    use_fake_chip(mp)
    tmp = tmp_path_factory.mktemp("plots")
    (tmp / "trained_models").mkdir()
    save_tiny_model(tmp / "trained_models")
    with mp.context() as m:
        m.chdir(tmp)
        runner.run(write_scenario(tmp, SWEEP), out=tmp / "out", scheduler=runner.SERIAL,
                   progress=False)
    mp.undo()
    return R.load(tmp / "out")


def test_energy_breakdown_stacks_every_component_beside_the_estimate(sweep_results):
    fig = P.plot_energy_breakdown(sweep_results, point=0)
    ax = fig.axes[0]
    n_layers = len(R.energy_by_layer(sweep_results, 0))
    assert len(ax.patches) == n_layers * (len(ENERGY_COMPONENTS) + 1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "compute-only\nestimate (SNN)" in labels and "weight SRAM" in labels
    # one ratio label per layer with a non-zero estimate
    estimate = R.energy_by_layer(sweep_results, 0)[C.COMPUTE_ONLY_SNN_UJ]
    assert len([t for t in ax.texts if t.get_text().startswith("×")]) == (estimate > 0).sum()
    tops = {}
    for bar in ax.patches[: n_layers * len(ENERGY_COMPONENTS)]:
        x = round(bar.get_x(), 6)
        tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    totals = R.energy_by_layer(sweep_results, 0)[list(C.COMPONENT_UJ)].sum(axis=1)
    assert sorted(tops.values()) == pytest.approx(sorted(totals))


def test_spike_rates_and_latency(sweep_results):
    fig = P.plot_spike_rates(sweep_results, point=1)
    rates = R.spike_rates(sweep_results, 1)
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx(list(rates))
    fig = P.plot_latency(sweep_results, point=1)
    table = R.latency_by_layer(sweep_results, 1)
    bars = fig.axes[0].patches
    assert len(bars) == table.size  # one segment per layer and timestep, timestep-major
    widths = [b.get_width() for b in bars]
    assert widths == pytest.approx(list(table.to_numpy().T.ravel()))
    ends = [b.get_x() + b.get_width() for b in bars[-len(table):]]
    assert ends == pytest.approx(list(R.layer_finish_cycles(sweep_results, 1)))


def test_pareto_marks_and_labels_the_front(sweep_results):
    fig = P.plot_pareto(sweep_results)
    ax = fig.axes[0]
    s = sweep_results.summary
    front = R.pareto_front(s[C.ENERGY_UJ], s[C.LATENCY_US])
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "Pareto front"]
    assert len(line.get_xdata()) == front.sum()
    (dominated,) = [c for c in ax.collections
                    if isinstance(c, PathCollection) and c.get_label() == "dominated"]
    assert len(dominated.get_offsets()) == (~front).sum()
    # 6 points: the front and the dominated points are all labelled, front first
    assert len(ax.texts) == len(s) and "accumulate_units=" in ax.texts[0].get_text()


def test_sweep_energy_stacks_components_per_point(sweep_results):
    fig = P.plot_sweep_energy(sweep_results)
    ax = fig.axes[0]
    s = sweep_results.summary
    assert len(ax.patches) == len(s) * (len(ENERGY_COMPONENTS) + 1)
    tops = {}
    for bar in ax.patches[: len(s) * len(ENERGY_COMPONENTS)]:
        x = round(bar.get_x(), 6)
        tops[x] = max(tops.get(x, 0.0), bar.get_y() + bar.get_height())
    assert [tops[k] for k in sorted(tops)] == pytest.approx(
        list(s[list(C.COMPONENT_UJ)].sum(axis=1)))
    assert len(ax.texts) == len(s) and " µJ\n" in ax.texts[0].get_text()


def test_heatmap_skips_parameters_zipped_together():
    from dataclasses import replace

    import pandas as pd

    zipped = pd.DataFrame({"a": [1, 2, 3], "b": [10, 20, 30], "c": [5, 5, 7]})
    results = R.Results(folder=None, summary=zipped, layers=None, images=None, mapping=None,
                        tiles=None, parameters=("a", "b", "c"))
    assert P._heatmap_pair(results, ["a", "b"]) is None
    grid = zipped.iloc[[0, 1, 2, 0]].assign(c=[5, 5, 5, 7]).reset_index(drop=True)
    grid = pd.concat([grid, grid.iloc[[1, 2]].assign(c=7)], ignore_index=True)
    assert P._heatmap_pair(replace(results, summary=grid), ["a", "b", "c"]) == ("a", "c")


def test_edp_heatmap_and_accuracy_vs_energy(sweep_results):
    units = "hardware.overrides.tile.accumulate_units"
    fig = P.plot_edp_heatmap(sweep_results, units, "simulation.timesteps")
    (image,) = [a for a in fig.axes[0].get_children() if isinstance(a, AxesImage)]
    assert image.get_array().shape == (3, 2) and len(fig.axes[0].texts) == 6
    s = sweep_results.summary
    best = s[(s[units] == 4) & (s["simulation.timesteps"] == 1)][C.EDP].iloc[0]
    assert image.get_array()[0, 1] == pytest.approx(best)
    fig = P.plot_accuracy_vs_energy(sweep_results, by=units)
    assert len(fig.axes[0].get_lines()) == 2


def test_make_plots_writes_png_and_svg(sweep_results, tmp_path):
    written = P.make_plots(sweep_results, tmp_path)
    names = {p.name for p in written}
    for stem in ("energy_breakdown", "spike_rates", "latency", "pareto", "edp_heatmap",
                 "accuracy_vs_energy"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert all(p.stat().st_size > 1000 for p in written)
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_best_point_is_the_lowest_edp_among_the_accurate_points():
    import pandas as pd

    summary = pd.DataFrame({C.POINT: [0, 1, 2, 3], C.ACCURACY: [0.11, 0.985, 0.99, 0.97],
                            C.EDP: [1.0, 9.0, 5.0, 2.0]})
    results = R.Results(folder=None, summary=summary, layers=None, images=None, mapping=None,
                        tiles=None, parameters=("x",))
    # point 0 is cheapest but useless; points 1 and 2 are within 1 pp of 0.99, 2 is cheaper
    assert P.best_point(results) == 2
    assert P.best_point(results, tolerance=0.05) == 3 and P.best_point(results, 1.0) == 0
