"""The break-even spike rate: where the SNN's full-system energy equals the ANN's on the same chip.

For every point of the scenario (one per hardware preset), the model's thresholds are all scaled
by each factor of ``--scales`` (a lower threshold: more spikes), the SNN is simulated on the
point's images, and its energy is compared with the ANN it was converted from, run on the same
chip (:mod:`accelsim.chip.ann`; the ANN does not depend on the thresholds). Per preset, per layer
and
for the whole network, the break-even rate is where SNN energy, interpolated linearly between
the two measured rates that bracket the ANN's energy, meets it (marked extrapolated where no
measured pair brackets it). Rates are given two ways:

- spikes per neuron per timestep: the layer's *input* spikes / (input neurons x T) (whole
  network: all spikes / (all spiking neurons x T));
- spikes per synapse per inference: synaptic operations / the dense ANN's multiply-accumulates
  of the same layer (each MAC is one synapse used once), i.e. how often a synapse sees a spike
  in one inference (whole network: summed over the layers fed by spikes).

The first layer (fed by the analog image) has no input spikes and is left out of the per-layer
rates; its energy is in the whole network's.

    .venv/bin/python analysis/break_even.py                    # scenarios/break-even.yaml

writes ``points.csv`` and ``break_even.csv`` in the scenario's output folder, the figure
``docs/figures/break-even.png`` (``--figure``), and prints the table as markdown.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from accelsim.chip import ann
from accelsim.chip.simulation import simulate
from accelsim.model.modelfile import sha256_file
from accelsim.model.network import INPUT
from accelsim.workflow import columns as C
from accelsim.workflow import points as P
from accelsim.workflow.runner import select_images

ROOT = Path(__file__).resolve().parents[1]
SCALES = (0.3, 0.4, 0.5, 0.7, 1.0, 1.4, 2.0, 3.0)
TOTAL = "network"


def scaled(network, factor: float):
    """``network`` with every spiking layer's threshold multiplied by ``factor``."""
    layers = tuple(layer.model_copy(update={"threshold": layer.threshold * factor})
                   if layer.kind == "spiking" else layer for layer in network.architecture.layers)
    return network.model_copy(update={"architecture": network.architecture.model_copy(
        update={"layers": layers})})


def layer_rows(network, res, ann_layers: pd.DataFrame, T: int) -> list[dict]:
    """Per spike-fed layer and for the whole network: SNN energy, input rates, ANN energy."""
    n = res.images[C.IMAGE].nunique()
    snn = res.layers.groupby(C.LAYER, sort=False)[[C.ENERGY, C.SYNAPTIC_OPS, C.SPIKES_OUT]].sum()
    ann_g = ann_layers.groupby(C.LAYER, sort=False)[[C.ENERGY, C.MACS]].sum()
    rows = []
    spiking = [layer for layer in network.layers if layer.kind == "spiking"]
    for layer in network.layers:
        sources = [p.source for p in layer.inputs if p.source != INPUT]
        if not sources:
            continue
        spikes = sum(snn.loc[s, C.SPIKES_OUT] for s in dict.fromkeys(sources))
        neurons = sum(network.architecture.layer(s).neurons for s in dict.fromkeys(sources))
        rows.append({C.LAYER: layer.name,
                     "snn_energy_uj": snn.loc[layer.name, C.ENERGY] / n / 1e6,
                     "ann_energy_uj": ann_g.loc[layer.name, C.ENERGY] / n / 1e6,
                     "spikes_per_neuron_per_timestep": spikes / n / (neurons * T),
                     "spikes_per_synapse_per_inference": (snn.loc[layer.name, C.SYNAPTIC_OPS]
                                                          / ann_g.loc[layer.name, C.MACS])})
    fed = [r[C.LAYER] for r in rows]
    rows.append({
        C.LAYER: TOTAL,
        "snn_energy_uj": snn[C.ENERGY].sum() / n / 1e6,
        "ann_energy_uj": ann_g[C.ENERGY].sum() / n / 1e6,
        "spikes_per_neuron_per_timestep": (snn.loc[[s.name for s in spiking], C.SPIKES_OUT].sum()
                                           / n / (sum(s.neurons for s in spiking) * T)),
        "spikes_per_synapse_per_inference": (snn.loc[fed, C.SYNAPTIC_OPS].sum()
                                             / ann_g.loc[fed, C.MACS].sum()),
    })
    return rows


def crossing(x: np.ndarray, y: np.ndarray, target: float) -> tuple[float, bool]:
    """Where energy ``y`` reaches ``target`` as a function of rate ``x``: linear interpolation
    between the two measured points that bracket it (True), else the straight line through the
    two measured points nearest to it, extrapolated (False)."""
    order = np.argsort(x)
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    for i in range(len(x) - 1):
        if (y[i] - target) * (y[i + 1] - target) <= 0 and y[i] != y[i + 1]:
            return float(x[i] + (target - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i])), True
    i = 0 if target < y[0] else len(x) - 2
    if len(x) < 2 or y[i + 1] == y[i]:
        return float("nan"), False
    return float(x[i] + (target - y[i]) * (x[i + 1] - x[i]) / (y[i + 1] - y[i])), False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenario", nargs="?", default=str(ROOT / "scenarios/break-even.yaml"))
    ap.add_argument("--scales", default=",".join(map(str, SCALES)),
                    help="threshold factors, comma separated")
    ap.add_argument("--images", type=int, help="test images per point (default: the scenario's)")
    ap.add_argument("--figure", default=str(ROOT / "docs/figures/break-even.png"))
    args = ap.parse_args()
    scales = [float(s) for s in args.scales.split(",")]
    settings = {"data.images": args.images} if args.images else None
    scenario, path = P.load(args.scenario, settings)
    points = P.resolve(scenario, path)
    out = ROOT / scenario.outputs.dir if not Path(scenario.outputs.dir).is_absolute() else Path(
        scenario.outputs.dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    started = time.perf_counter()
    for point in points:
        network = P.cached_network(str(point.model_path), sha256_file(point.model_path))
        hw = P.hardware_of(point.scenario)
        preset = point.scenario.hardware.preset
        T = point.scenario.simulation.timesteps or network.timesteps
        x, labels, _ = select_images(point, network)
        ann_net, weights = ann.network_for(point.model_path, network, hw)
        ann_res = ann.simulate_ann(ann_net, x, labels, hw)
        ann_acc = float(ann_res.images[C.CORRECT].mean()) if weights else float("nan")
        for factor in scales:
            res = simulate(network=scaled(network, factor), images=x, labels=labels,
                           hardware=hw, timesteps=T)
            acc = float(res.images[C.CORRECT].mean())
            for r in layer_rows(network, res, ann_res.layers, T):
                rows.append({"preset": preset, "threshold_scale": factor, "accuracy": acc,
                             "ann_accuracy": ann_acc, **r})
            print(f"{preset:>20} x{factor:<4}: accuracy {100 * acc:5.1f} %, SNN "
                  f"{rows[-1]['snn_energy_uj']:8.2f} uJ vs ANN {rows[-1]['ann_energy_uj']:7.2f} "
                  f"uJ at {rows[-1]['spikes_per_neuron_per_timestep']:.4f} spikes/neuron/step",
                  flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "points.csv", index=False)
    found = []
    for (preset, layer), g in table.groupby(["preset", C.LAYER], sort=False):
        target = float(g["ann_energy_uj"].iloc[0])
        r_n, inside = crossing(g["spikes_per_neuron_per_timestep"].to_numpy(),
                               g["snn_energy_uj"].to_numpy(), target)
        r_s, _ = crossing(g["spikes_per_synapse_per_inference"].to_numpy(),
                          g["snn_energy_uj"].to_numpy(), target)
        shipped = g[g["threshold_scale"] == 1.0]
        found.append({"preset": preset, C.LAYER: layer, "ann_energy_uj": target,
                      "break_even_spikes_per_neuron_per_timestep": r_n,
                      "break_even_spikes_per_synapse_per_inference": r_s,
                      "inside_measured_range": inside,
                      "shipped_spikes_per_neuron_per_timestep": float(
                          shipped["spikes_per_neuron_per_timestep"].iloc[0])
                      if len(shipped) else float("nan"),
                      "shipped_snn_to_ann_energy": float(
                          shipped["snn_energy_uj"].iloc[0] / target) if len(shipped) else
                      float("nan")})
    result = pd.DataFrame(found)
    result.to_csv(out / "break_even.csv", index=False)
    print(f"\n{len(points)} presets x {len(scales)} threshold scales, {points[0].images} images "
          f"each, {time.perf_counter() - started:.0f} s; wrote {out}/points.csv, break_even.csv\n")
    show = result.copy()
    print("| preset | layer | ANN µJ | break-even spikes/neuron/timestep | "
          "spikes/synapse/inference | shipped model: spikes/neuron/timestep | shipped SNN/ANN |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for _, r in show.iterrows():
        mark = "" if r["inside_measured_range"] else " (extrapolated)"
        print(f"| {r['preset']} | {r[C.LAYER]} | {r['ann_energy_uj']:.2f} | "
              f"{r['break_even_spikes_per_neuron_per_timestep']:.4f}{mark} | "
              f"{r['break_even_spikes_per_synapse_per_inference']:.4f} | "
              f"{r['shipped_spikes_per_neuron_per_timestep']:.4f} | "
              f"{r['shipped_snn_to_ann_energy']:.2f}x |")
    figure(table, result).savefig(args.figure, dpi=110)
    print(f"\nwrote {args.figure}")


def figure(table: pd.DataFrame, result: pd.DataFrame) -> Figure:
    """Whole-network SNN energy against spike rate per preset, the ANN as a dashed line of the
    same colour, the break-even rate marked."""
    fig = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax = fig.add_subplot()
    colours = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")
    whole = table[table[C.LAYER] == TOTAL]
    for colour, (preset, g) in zip(colours, whole.groupby("preset", sort=False), strict=False):
        g = g.sort_values("spikes_per_neuron_per_timestep")
        ax.plot(g["spikes_per_neuron_per_timestep"], g["snn_energy_uj"], "o-", color=colour,
                label=f"SNN on {preset}")
        ax.axhline(g["ann_energy_uj"].iloc[0], ls="--", color=colour, lw=1,
                   label=f"ANN on {preset}")
        shipped = g[g["threshold_scale"] == 1.0]
        ax.plot(shipped["spikes_per_neuron_per_timestep"], shipped["snn_energy_uj"], "*",
                ms=14, color=colour)
        r = result[(result["preset"] == preset) & (result[C.LAYER] == TOTAL)].iloc[0]
        if np.isfinite(r["break_even_spikes_per_neuron_per_timestep"]):
            ax.axvline(r["break_even_spikes_per_neuron_per_timestep"], ls=":", color=colour,
                       lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("spikes per neuron per timestep (whole network)")
    ax.set_ylabel("energy per inference, µJ")
    ax.set_title("mnist5k VGG9, T=5: SNN (thresholds scaled) vs the ANN on the same chip; "
                 "★ shipped thresholds, dotted: break-even", fontsize=8)
    ax.legend(fontsize=7, ncol=2)
    return fig


if __name__ == "__main__":
    main()
