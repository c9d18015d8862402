"""Figures of a run or a sweep (matplotlib, no display needed: figures are built without pyplot,
so nothing depends on a GUI backend or on global figure state).

Every ``plot_*`` function takes :class:`accelsim.workflow.results.Results`, draws into ``ax`` (or a
new
figure) and returns the figure; :func:`make_plots` picks the figures that fit a result folder
and writes each as PNG and SVG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from accelsim.workflow import columns as C
from accelsim.workflow import results as R
from accelsim.workflow.columns import ENERGY_COMPONENTS, component_label, short_param

COMPONENT_COLOURS = dict(zip(ENERGY_COMPONENTS, ("#4c72b0", "#8172b2", "#dd8452", "#ccb974",
                                                 "#55a868", "#937860", "#64b5cd", "#c44e52",
                                                 "#8c8c8c"),
                             strict=True))


def _axes(ax: Axes | None, size: tuple[float, float] = (7.0, 4.2)) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def value_text(param: str, value: object) -> str:
    """A swept value as a person reads it: bit capacities of 8 KiB or more in KiB."""
    if param.endswith("capacity_bits") and isinstance(value, int | np.integer) and \
            value >= 8 * 8192 and value % 8192 == 0:
        return f"{int(value) // 8192} KiB"
    return str(value)


def _title(results: R.Results, point: int | None) -> str:
    scenario = results.scenarios[0] if point is None else \
        results.scenarios[list(results.summary[C.POINT]).index(point)]
    text = f"{R.describe_model(scenario)} on {scenario['hardware']['preset']}, " \
           f"T={scenario['simulation']['timesteps']}, {scenario['data']['images']} images"
    if point is not None and results.is_sweep:
        row = results.summary[results.summary[C.POINT] == point].iloc[0]
        text += " (" + ", ".join(f"{short_param(p)}={row[p]}" for p in results.parameters) + ")"
    return text


def plot_energy_breakdown(results: R.Results, point: int | None = None,
                          ax: Axes | None = None) -> Figure:
    """Energy per inference by layer, stacked by component, with the compute-only SNN estimate
    (the paper's formula) as a hatched bar beside each layer and the full / compute-only ratio
    written above each pair."""
    fig, ax = _axes(ax, (9.0, 4.6))
    table = R.energy_by_layer(results, point)
    x = np.arange(len(table))
    width = 0.4
    bottom = np.zeros(len(table))
    for comp, col in zip(ENERGY_COMPONENTS, C.COMPONENT_UJ, strict=True):
        values = table[col].to_numpy()
        ax.bar(x - width / 2, values, width, bottom=bottom, label=component_label(comp),
               color=COMPONENT_COLOURS[comp])
        bottom += values
    estimate = table[C.COMPUTE_ONLY_SNN_UJ].to_numpy()
    ax.bar(x + width / 2, estimate, width, facecolor="white", edgecolor="black", hatch="//",
           label="compute-only\nestimate (SNN)")
    for i, (full, est) in enumerate(zip(bottom, estimate, strict=True)):
        if est > 0:
            ax.annotate(f"×{full / est:.0f}" if full / est >= 10 else f"×{full / est:.1f}",
                        (x[i], max(full, est)), textcoords="offset points", xytext=(0, 2),
                        ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1.08 * max(float(bottom.max(initial=0)), float(estimate.max(initial=0)), 1e-12))
    ax.set_xticks(x, list(table.index), rotation=45 if len(table) > 8 else 0, ha="right"
                  if len(table) > 8 else "center")
    ax.set_ylabel("energy per inference (µJ)")
    ax.set_xlabel("layer (×N: full energy / compute-only estimate)")
    ax.set_title(f"Energy by layer: full model vs compute-only\n{_title(results, point)}",
                 fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_spike_rates(results: R.Results, point: int | None = None,
                     ax: Axes | None = None) -> Figure:
    """Spike rate of each spiking layer (spikes over all T per neuron)."""
    fig, ax = _axes(ax)
    rates = R.spike_rates(results, point)
    x = np.arange(len(rates))
    ax.bar(x, rates.to_numpy(), color="#4c72b0")
    ax.set_xticks(x, list(rates.index), rotation=45 if len(rates) > 8 else 0,
                  ha="right" if len(rates) > 8 else "center")
    ax.set_ylabel("spikes per neuron over T")
    ax.set_xlabel("layer")
    ax.set_title(f"Spike rate per layer\n{_title(results, point)}", fontsize=10)
    return fig


def plot_latency(results: R.Results, point: int | None = None, ax: Axes | None = None) -> Figure:
    """When each layer finished the image, as one horizontal bar per layer split into its
    timesteps: segment t is the layer's ``cycles`` of timestep t (from its last activity of
    t-1 to its last activity of t), so the bar ends when the layer finished (mean over images).
    """
    table = R.latency_by_layer(results, point)
    fig, ax = _axes(ax, (8.0, 1.2 + 0.36 * max(4, table.shape[0])))
    values = table.to_numpy(dtype=float)
    y = np.arange(values.shape[0])
    left = np.zeros(values.shape[0])
    colours = _timestep_colours(values.shape[1])
    for j, t in enumerate(table.columns):
        ax.barh(y, values[:, j], left=left, color=colours[j], edgecolor="white", linewidth=0.5,
                label=f"t={t}")
        left += np.nan_to_num(values[:, j])
    for i, end in enumerate(left):
        ax.annotate(f"{end:,.0f}", (end, y[i]), textcoords="offset points", xytext=(3, 0),
                    va="center", fontsize=7)
    ax.set_yticks(y, list(table.index))
    ax.invert_yaxis()  # network order, top to bottom
    ax.set_xlim(0, 1.12 * max(float(left.max(initial=0)), 1.0))
    unit = R.time_unit(results, point)
    ax.set_xlabel(f"{unit} since the image arrived (segment t: timestep t)")
    ax.set_ylabel("layer")
    ax.legend(title="timestep", fontsize=8, title_fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.set_title(f"When each layer finished the image, by timestep\n{_title(results, point)}",
                 fontsize=10)
    return fig


def _timestep_colours(n: int) -> list[tuple[float, ...]]:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.15 + 0.7 * j / max(n - 1, 1)) for j in range(n)]


def _point_label(row: pd.Series, parameters: Sequence[str]) -> str:
    return ", ".join(f"{short_param(p)}={value_text(p, row[p])}" for p in parameters)


def plot_pareto(results: R.Results, ax: Axes | None = None) -> Figure:
    """Energy vs latency of every sweep point; the Pareto front (no point better in both)
    is joined and labelled, and so are the dominated points when there are at most 8."""
    fig, ax = _axes(ax, (7.5, 5.0))
    s = results.summary
    front = R.pareto_front(s[C.ENERGY_UJ].to_numpy(), s[C.LATENCY_US].to_numpy())
    ax.scatter(s[C.LATENCY_US][~front], s[C.ENERGY_UJ][~front], color="#8c8c8c",
               label="dominated", zorder=2)
    f = s[front].sort_values(C.LATENCY_US)
    ax.plot(f[C.LATENCY_US], f[C.ENERGY_UJ], "-o", color="#c44e52", label="Pareto front",
            zorder=3)
    spills = s[s[C.DRAM_BYTES] > 0] if C.DRAM_BYTES in s else s.iloc[:0]
    if len(spills):
        ax.scatter(spills[C.LATENCY_US], spills[C.ENERGY_UJ], s=140, facecolors="none",
                   edgecolors="#4c72b0", linewidths=1.2, label="weights spill to DRAM",
                   zorder=4)
    _log_if_wide(ax, s[C.LATENCY_US], "x")
    _log_if_wide(ax, s[C.ENERGY_UJ], "y")
    ax.margins(0.12)
    for _, row in f.iterrows():
        _label(ax, _point_label(row, results.parameters), row[C.LATENCY_US], row[C.ENERGY_UJ],
               5)
    if len(s) <= 8:
        for _, row in s[~front].iterrows():
            _label(ax, _point_label(row, results.parameters), row[C.LATENCY_US],
                   row[C.ENERGY_UJ], -10, color="#555555")
    ax.set_xlabel("latency per inference (µs)")
    ax.set_ylabel("energy per inference (µJ)")
    ax.set_title(f"Energy vs latency across {len(s)} points "
                 f"({int(s[C.NUM_IMAGES].iloc[0])} images each)", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _label(ax: Axes, text: str, x: float, y: float, dy: float, color: str = "black") -> None:
    """Annotate a point to its right, or to its left in the right half of the axes so that
    the text stays inside the figure."""
    ax.autoscale_view()  # the limits are computed lazily; the side depends on them
    right_half = (ax.transScale + ax.transLimits).transform((x, y))[0] > 0.5
    ax.annotate(text, (x, y), textcoords="offset points", xytext=(-5 if right_half else 5, dy),
                ha="right" if right_half else "left", fontsize=7, color=color)


def _number(value: float) -> str:
    """3 significant digits, without an exponent below a million."""
    return f"{value:,.0f}" if 100 <= abs(value) < 1e6 else f"{value:.3g}"


def _log_if_wide(ax: Axes, values: pd.Series, axis: str) -> None:
    """Log scale when the values span more than a factor of 20 (and are positive)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size and v.min() > 0 and v.max() / v.min() > 20:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def plot_edp_heatmap(results: R.Results, x: str, y: str, ax: Axes | None = None) -> Figure:
    """Energy-delay product over two swept parameters (minimum over any other parameters)."""
    fig, ax = _axes(ax, (6.5, 4.8))
    table = results.summary.pivot_table(index=y, columns=x, values=C.EDP, aggfunc="min")
    values = table.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    wide = finite.size and finite.min() > 0 and finite.max() / finite.min() > 20
    image = ax.imshow(values, origin="lower", aspect="auto", cmap="magma_r",
                      norm=LogNorm() if wide else None)
    ax.set_xticks(np.arange(values.shape[1]), [value_text(x, v) for v in table.columns])
    ax.set_yticks(np.arange(values.shape[0]), [value_text(y, v) for v in table.index])
    ax.set_xlabel(short_param(x))
    ax.set_ylabel(short_param(y))
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8,
                color="white" if np.isfinite(v) and image.norm(v) > 0.5 else "black")
    fig.colorbar(image, ax=ax, label="energy × delay (µJ·µs)" + (", log scale" if wide else ""))
    others = [p for p in results.parameters if p not in (x, y)]
    note = f"\n(best over {', '.join(short_param(p) for p in others)})" if others else ""
    ax.set_title(f"Energy-delay product per inference, lower is better{note}", fontsize=10)
    return fig


def plot_accuracy_vs_energy(results: R.Results, by: str | None = None,
                            ax: Axes | None = None) -> Figure:
    """Accuracy vs energy per inference across a sweep (e.g. over timesteps), one line per
    value of ``by`` (e.g. the model), each point labelled with the other parameters."""
    fig, ax = _axes(ax, (7.0, 4.5))
    s = results.summary
    groups = [(None, s)] if by is None else list(s.groupby(by, sort=False))
    labels = [p for p in results.parameters if p != by]
    for value, g in groups:
        g = g.sort_values(C.ENERGY_UJ)
        ax.plot(g[C.ENERGY_UJ], 100 * g[C.ACCURACY], "-o",
                label=None if by is None else f"{short_param(by)}={value_text(by, value)}")
    _log_if_wide(ax, s[C.ENERGY_UJ], "x")
    ax.margins(x=0.12, y=0.08)
    for _, g in groups:
        g = g.sort_values(C.ENERGY_UJ)
        for k, (_, row) in enumerate(g.iterrows()):
            _label(ax, _point_label(row, labels), row[C.ENERGY_UJ], 100 * row[C.ACCURACY],
                   -11 if k % 2 == 0 else 5)
    ax.set_xlabel("energy per inference (µJ)")
    ax.set_ylabel(f"accuracy (%), {int(s[C.NUM_IMAGES].iloc[0])} images per point")
    where = ""
    if results.scenarios:
        sc = results.scenarios[0]
        where = f"\n{R.describe_model(sc)} on {sc['hardware']['preset']}"
    ax.set_title(f"Accuracy vs energy per inference{where}", fontsize=10)
    if by is not None:
        ax.legend(fontsize=8, frameon=False)
    return fig


def plot_sweep_energy(results: R.Results, ax: Axes | None = None) -> Figure:
    """One bar per sweep point: energy per inference stacked by component, the compute-only
    SNN estimate hatched beside it, and the latency written above (compares presets)."""
    s = results.summary
    fig, ax = _axes(ax, (3.0 + 1.5 * max(3, len(s)), 4.8))
    x = np.arange(len(s))
    width = 0.4
    bottom = np.zeros(len(s))
    for comp, col in zip(ENERGY_COMPONENTS, C.COMPONENT_UJ, strict=True):
        values = s[col].to_numpy(dtype=float)
        ax.bar(x - width / 2, values, width, bottom=bottom, label=component_label(comp),
               color=COMPONENT_COLOURS[comp])
        bottom += values
    estimate = s[C.COMPUTE_ONLY_SNN_UJ].to_numpy(dtype=float)
    ax.bar(x + width / 2, estimate, width, facecolor="white", edgecolor="black", hatch="//",
           label="compute-only\nestimate (SNN)")
    for i, (_, row) in enumerate(s.iterrows()):
        accuracy = f"\n{100 * row[C.ACCURACY]:.1f} %" if pd.notna(row[C.ACCURACY]) else ""
        ax.annotate(f"{row[C.ENERGY_UJ]:.3g} µJ\n{_number(row[C.LATENCY_US])} µs{accuracy}",
                    (x[i] - width / 2, bottom[i]),
                    textcoords="offset points", xytext=(0, 2), ha="center", va="bottom",
                    fontsize=7)
    ax.set_ylim(0, 1.25 * max(float(bottom.max(initial=0)), 1e-12))
    params = list(results.parameters)
    ticks = ["\n".join(value_text(p, row[p]) if len(params) == 1 else
                       f"{short_param(p)}={value_text(p, row[p])}" for p in params)
             for _, row in s.iterrows()]
    ax.set_xticks(x, ticks, fontsize=8)
    ax.set_xlabel(", ".join(short_param(p) for p in params) if len(params) == 1 else "sweep point")
    ax.set_ylabel("energy per inference (µJ)")
    shown = "energy, latency, accuracy" if s[C.ACCURACY].notna().any() else "energy, latency"
    ax.set_title(f"Energy per inference by component\n(above each bar: {shown} on "
                 f"{int(s[C.NUM_IMAGES].iloc[0])} images)", fontsize=10)
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def _swept(results: R.Results) -> list[str]:
    """Parameters that take more than one value, in sweep order."""
    return [p for p in results.parameters if results.summary[p].nunique() > 1]


def best_point(results: R.Results, tolerance: float = 0.01) -> int:
    """The sweep point the breakdown figures show: the lowest energy-delay product among the
    points within ``tolerance`` (a fraction) of the best accuracy, so that a cheap point that
    no longer classifies (e.g. too few timesteps) is not the one shown."""
    s = results.summary
    if s[C.ACCURACY].notna().any():  # a calibrated workload has no accuracy: EDP alone
        s = s[s[C.ACCURACY] >= s[C.ACCURACY].max() - tolerance - 1e-12]
    return int(s.loc[s[C.EDP].idxmin(), C.POINT])


def _heatmap_pair(results: R.Results, swept: Sequence[str]) -> tuple[str, str] | None:
    """The first two numeric swept parameters that vary independently (every combination
    was simulated); parameters zipped together fill only a diagonal and are skipped."""
    s = results.summary
    numeric = [p for p in swept if pd.api.types.is_numeric_dtype(s[p])]
    for i, x in enumerate(numeric):
        for y in numeric[i + 1:]:
            if len(s[[x, y]].drop_duplicates()) == s[x].nunique() * s[y].nunique():
                return x, y
    return None


def plot_ann_ratios(results: R.Results, point: int | None = None,
                    ax: Axes | None = None) -> Figure:
    """Per layer, SNN / ANN energy as the compute-only estimate has it (x) against the full
    chip model (y), both on log axes; the diagonal is where the two agree, the horizontal line
    where the SNN and the ANN cost the same on the chip."""
    from accelsim.chip.ann import by_layer

    fig, ax = _axes(ax, (6.4, 5.0))
    table = by_layer(R._one_point(results, point).layers)
    layers = table.drop(index="total").dropna()
    ax.scatter(layers[C.SNN_TO_ANN_COMPUTE_ONLY], layers[C.SNN_TO_ANN_ENERGY], color="#4c72b0",
               label="layer")
    for name, row in layers.iterrows():
        ax.annotate(str(name), (row[C.SNN_TO_ANN_COMPUTE_ONLY], row[C.SNN_TO_ANN_ENERGY]),
                    textcoords="offset points", xytext=(4, 3), fontsize=8)
    total = table.loc["total"]
    ax.scatter([total[C.SNN_TO_ANN_COMPUTE_ONLY]], [total[C.SNN_TO_ANN_ENERGY]], marker="*",
               s=160, color="#c44e52", label="whole network")
    values = pd.concat([table[C.SNN_TO_ANN_COMPUTE_ONLY], table[C.SNN_TO_ANN_ENERGY]]).dropna()
    lo, hi = float(values.min()) / 2, float(values.max()) * 2
    ax.plot([lo, hi], [lo, hi], ls=":", color="grey", label="full-system = compute-only")
    ax.axhline(1.0, ls="--", color="black", lw=0.8, label="SNN = ANN on the chip")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("SNN / ANN energy, compute-only estimate")
    ax.set_ylabel("SNN / ANN energy, full chip model")
    ax.set_title(_title(results, point), fontsize=9)
    ax.legend(fontsize=8)
    return fig


def figures(results: R.Results) -> dict[str, Callable[[], Figure]]:
    """Every figure that fits the results, by file name (each drawn when called): breakdowns
    of a run (or of the sweep point :func:`best_point` picks), and for a sweep the Pareto plot,
    the EDP heatmap over the first two independently swept numeric parameters, for up to 12
    points the per-point energy bars, and, when timesteps are swept, accuracy vs energy."""
    point = best_point(results) if results.is_sweep else None
    out: dict[str, Callable[[], Figure]] = {
        "energy_breakdown": lambda: plot_energy_breakdown(results, point),
        "spike_rates": lambda: plot_spike_rates(results, point),
        "latency": lambda: plot_latency(results, point)}
    if C.ANN_ENERGY in results.layers:
        out["ann_ratios"] = lambda: plot_ann_ratios(results, point)
    if not results.is_sweep:
        return out
    swept = _swept(results)
    if len(results.summary) > 1:
        out["pareto"] = lambda: plot_pareto(results)
    if 1 < len(results.summary) <= 12:
        out["sweep_energy"] = lambda: plot_sweep_energy(results)
    pair = _heatmap_pair(results, swept)
    if pair is not None:
        out["edp_heatmap"] = lambda: plot_edp_heatmap(results, *pair)
    timesteps = [p for p in swept if p.endswith("timesteps")]
    if timesteps:
        others = [p for p in swept if p not in timesteps]
        out["accuracy_vs_energy"] = lambda: plot_accuracy_vs_energy(
            results, by=others[0] if others else None)
    return out


def make_plots(results: R.Results, out: str | Path | None = None) -> list[Path]:
    """Draw :func:`figures` and write each as PNG and SVG: into ``out``, or into the result
    folder's ``figures/`` (recorded in its manifest). Returns the files written."""
    return R.save_figures(figures(results), Path(out) if out is not None else None,
                          results=results.folder)
