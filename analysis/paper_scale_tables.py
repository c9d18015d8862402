"""Run the paper-scale scenarios and print the README's tables (markdown) from their results.

    NUMBA_NUM_THREADS=2 .venv/bin/python analysis/paper_scale_tables.py \\
        [paper-cifar-vgg16 paper-cifar-resnet20 paper-spike-rate paper-imagenet-vgg16]

Each scenario runs into results/<name>/ (a finished point is not simulated again). Every number
is per inference, the mean over the scenario's synthetic images; the spike rate is the
simulator's own count (spikes over T per neuron, mean over the spiking layers' neurons).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from accelsim.workflow import columns as C
from accelsim.workflow import results as R
from accelsim.workflow import runner

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ("paper-cifar-vgg16", "paper-cifar-resnet20", "paper-spike-rate")


def _largest(row: pd.Series, k: int = 3) -> str:
    parts = sorted(((float(row[c]), n) for c, n in zip(C.COMPONENT_UJ, C.ENERGY_COMPONENTS,
                                                       strict=True)), reverse=True)[:k]
    return ", ".join(f"{C.component_label(n)} {uj:,.0f} µJ" for uj, n in parts
                     if uj > 0)


def _rate(res: R.Results, point: int) -> float:
    """Spikes over T per spiking neuron, all spiking layers together (simulator's counts)."""
    layers = res.point(point).layers
    spiking = layers[layers[C.LAYER] != layers[C.LAYER].iloc[-1]]
    per_image = spiking.groupby(C.IMAGE)[C.SPIKES_OUT].sum()
    neurons = spiking.groupby(C.LAYER, sort=False)[C.NEURONS].first().sum()
    return float(per_image.mean() / neurons)


def chips_table(res: R.Results) -> str:
    lines = ["| preset (mesh) | latency | energy | compute-only SNN | compute-only ANN | "
             "full / compute-only | DRAM | largest components |", "|---" * 8 + "|"]
    for _, row in res.summary.iterrows():
        sc = res.scenarios[list(res.summary[C.POINT]).index(row[C.POINT])]
        overrides = sc["hardware"]["overrides"]
        where = f"`{sc['hardware']['preset']}`" + (
            f" ({overrides['mesh.rows']}×{overrides['mesh.cols']})" if "mesh.rows" in overrides
            else "")
        lines.append(f"| {where} | {row[C.LATENCY_US]:,.0f} µs | {row[C.ENERGY_UJ]:,.0f} µJ | "
                     f"{row[C.COMPUTE_ONLY_SNN_UJ]:,.0f} µJ | "
                     f"{row[C.COMPUTE_ONLY_ANN_UJ]:,.0f} µJ | {row[C.FULL_TO_COMPUTE_ONLY]:.1f}× | "
                     f"{row[C.DRAM_BYTES] / 1e6:,.1f} MB | {_largest(row)} |")
    return "\n".join(lines)


def rate_table(res: R.Results) -> str:
    lines = ["| target rate | measured rate | latency | energy | compute-only SNN | "
             "full / compute-only SNN | compute-only ANN | full SNN / compute-only ANN | "
             "largest components |", "|---|---|---|---|---|---|---|---|---|"]
    for _, row in res.summary.iterrows():
        lines.append(f"| {row['workload.spike_rate']:g} | {_rate(res, int(row[C.POINT])):.2f} | "
                     f"{row[C.LATENCY_US]:,.0f} µs | {row[C.ENERGY_UJ]:,.0f} µJ | "
                     f"{row[C.COMPUTE_ONLY_SNN_UJ]:,.1f} µJ | {row[C.FULL_TO_COMPUTE_ONLY]:.1f}× | "
                     f"{row[C.COMPUTE_ONLY_ANN_UJ]:,.0f} µJ | "
                     f"{row[C.ENERGY_UJ] / row[C.COMPUTE_ONLY_ANN_UJ]:.2f}× | {_largest(row)} |")
    return "\n".join(lines)


def layer_table(res: R.Results, point: int = 0) -> str:
    energy = R.energy_by_layer(res, point)
    full = energy[list(C.COMPONENT_UJ)].sum(axis=1)
    finish = R.layer_finish_cycles(res, point)
    rates = R.spike_rates(res, point)
    lines = ["| layer | spike rate | energy | compute-only SNN | full / compute-only | "
             "finished at (cycles) |", "|---|---|---|---|---|---|"]
    for layer in energy.index:
        rate = f"{rates[layer]:.2f}" if layer in rates.index else "—"
        est = energy.loc[layer, C.COMPUTE_ONLY_SNN_UJ]
        ratio = f"{full[layer] / est:.1f}×" if est > 0 else "—"
        lines.append(f"| {layer} | {rate} | {full[layer]:,.1f} µJ | {est:,.2f} µJ | {ratio} | "
                     f"{finish[layer]:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(DEFAULT))
    args = parser.parse_args(argv)
    for name in args.scenarios:
        report = runner.run(ROOT / "scenarios" / f"{name}.yaml", out=ROOT / "results" / name)
        res = R.load(report.folder)
        print(f"\n### {name}\n")
        print(R.format_summary(res))
        print()
        print(rate_table(res) if "workload.spike_rate" in res.parameters else chips_table(res))
        print(f"\nper layer, point 0 ({res.scenarios[0]['hardware']['preset']}):\n")
        print(layer_table(res, 0))


if __name__ == "__main__":
    main()
