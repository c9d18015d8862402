"""Result folders: writing them atomically, loading them, and the breakdowns people ask for.

A *run folder* holds one simulation (one sweep point):

    layers.parquet   image x layer x timestep counters and energy (columns: accelsim.columns)
    images.parquet   one row per image: prediction, label, correct, cycles, latency, energy
    mapping.parquet  which tile holds which neurons of which layer
    tiles.parquet    image x tile x layer x timestep counters (only with simulation.per_tile)
    summary.parquet  one row: accuracy, latency, energy per inference, EDP, ratios
    scenario.yaml    the fully resolved scenario of this point
    run.json         cache key, model file hash, sweep parameters, software versions

(each table also as CSV when ``outputs.csv``). A *sweep folder* holds ``sweep.parquet`` (one
row per point: the swept parameters then the summary columns), ``scenario.yaml`` and ``run.json``
of the sweep, and ``points/<key>/``, one run folder per point.

Folders are written into a temporary sibling and renamed into place, so a folder that exists is
complete: an interrupted run leaves finished points intact and nothing half-written.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from accelsim import columns as C

# -- summary columns (one row per run) ------------------------------------------------------
POINT = "point"
KEY = "key"
ACCURACY = "accuracy"
NUM_IMAGES = "images"
TIMESTEPS = "timesteps"
LATENCY_CYCLES = "latency_cycles"
LATENCY_US = "latency_us"
ENERGY_UJ = "energy_uj"
EDP = "edp_uj_us"
COMPUTE_ONLY_SNN_UJ = "compute_only_snn_uj"
COMPUTE_ONLY_ANN_UJ = "compute_only_ann_uj"
FULL_TO_COMPUTE_ONLY = "full_to_compute_only"
SPIKES = "spikes_per_inference"
DRAM_BYTES = "dram_bytes_per_inference"
COMPONENT_UJ = tuple(f"energy_{c}_uj" for c in C.ENERGY_COMPONENTS)

SUMMARY_COLUMNS = (ACCURACY, NUM_IMAGES, TIMESTEPS, LATENCY_CYCLES, LATENCY_US, ENERGY_UJ, EDP,
                   COMPUTE_ONLY_SNN_UJ, COMPUTE_ONLY_ANN_UJ, FULL_TO_COMPUTE_ONLY, SPIKES,
                   DRAM_BYTES, *COMPONENT_UJ)

TABLES = ("layers", "images", "mapping", "tiles", "summary")
RUN_FILE = "run.json"
SCENARIO_FILE = "scenario.yaml"
SWEEP_TABLE = "sweep"
POINTS_DIR = "points"

PJ_PER_UJ = 1e6


class ResultsError(ValueError):
    """A folder that is not an accelsim result folder."""


def summarise(layers: pd.DataFrame, images: pd.DataFrame, timesteps: int) -> pd.DataFrame:
    """The one-row summary of a run, per inference (mean over images).

    Energy comes from the per-image table (the chip's own total); the compute-only estimates
    are summed from the per-layer-per-timestep table, so their ratio compares the same images.
    """
    n = len(images)
    if n == 0:
        raise ValueError("cannot summarise a run without images")
    energy_uj = float(images[C.ENERGY_UJ].mean())
    latency_us = float(images[C.LATENCY_US].mean())
    snn_uj = float(layers[C.COMPUTE_ONLY_SNN].sum()) / n / PJ_PER_UJ
    ann_uj = float(layers[C.COMPUTE_ONLY_ANN].sum()) / n / PJ_PER_UJ
    row: dict[str, Any] = {
        ACCURACY: float(images[C.CORRECT].mean()),
        NUM_IMAGES: n,
        TIMESTEPS: int(timesteps),
        LATENCY_CYCLES: float(images[C.TOTAL_CYCLES].mean()),
        LATENCY_US: latency_us,
        ENERGY_UJ: energy_uj,
        EDP: energy_uj * latency_us,
        COMPUTE_ONLY_SNN_UJ: snn_uj,
        COMPUTE_ONLY_ANN_UJ: ann_uj,
        FULL_TO_COMPUTE_ONLY: energy_uj / snn_uj if snn_uj > 0 else float("nan"),
        SPIKES: float(layers[C.SPIKES_OUT].sum()) / n,
        DRAM_BYTES: float(layers[C.DRAM_READ_BYTES].sum()) / n,
    }
    for col, uj in zip(C.ENERGY_COLUMNS, COMPONENT_UJ, strict=True):
        row[uj] = float(layers[col].sum()) / n / PJ_PER_UJ
    return pd.DataFrame([row], columns=list(SUMMARY_COLUMNS))


# -- writing -------------------------------------------------------------------------------


def _write_table(df: pd.DataFrame, folder: Path, name: str, csv: bool) -> None:
    df.to_parquet(folder / f"{name}.parquet", index=False)
    if csv:
        df.to_csv(folder / f"{name}.csv", index=False)


def write_run(folder: Path, tables: Mapping[str, pd.DataFrame | None], scenario: Mapping[str, Any],
              meta: Mapping[str, Any], *, csv: bool = True) -> Path:
    """Write one run folder atomically (temporary sibling, then rename); replaces ``folder``."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name in TABLES:
            df = tables.get(name)
            if df is not None:
                _write_table(df, tmp, name, csv)
        (tmp / SCENARIO_FILE).write_text(yaml.safe_dump(dict(scenario), sort_keys=False))
        (tmp / RUN_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def write_sweep_table(folder: Path, table: pd.DataFrame, *, csv: bool = True) -> None:
    """Write ``sweep.parquet`` (and CSV), each through a temporary file and an atomic rename."""
    for suffix, writer in ((".parquet", lambda p: table.to_parquet(p, index=False)),
                           (".csv", lambda p: table.to_csv(p, index=False))):
        if suffix == ".csv" and not csv:
            continue
        target = folder / f"{SWEEP_TABLE}{suffix}"
        tmp = folder / f".tmp-{SWEEP_TABLE}-{uuid.uuid4().hex[:8]}{suffix}"
        writer(tmp)
        tmp.replace(target)


def replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst``; an existing ``dst`` is swapped out, then removed."""
    if dst.exists():
        old = dst.parent / f".old-{dst.name}-{uuid.uuid4().hex[:8]}"
        dst.rename(old)
        src.rename(dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        src.rename(dst)


def clean_temporaries(folder: Path) -> None:
    """Remove what an interrupted run left behind (``.tmp-*``, ``.old-*``)."""
    if folder.is_dir():
        for leftover in [*folder.glob(".tmp-*"), *folder.glob(".old-*")]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def read_meta(folder: Path) -> dict[str, Any] | None:
    """``run.json`` of a finished run folder, or None if the folder holds no finished run."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text())


# -- loading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Results:
    """The tables of a run or a sweep. Every table has a ``point`` column (0 for a single run)
    so that one code path serves both; ``summary`` has one row per point with the swept
    parameters as columns (named by their dotted paths)."""

    folder: Path
    summary: pd.DataFrame
    layers: pd.DataFrame
    images: pd.DataFrame
    mapping: pd.DataFrame
    tiles: pd.DataFrame | None
    parameters: tuple[str, ...] = ()
    scenarios: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    meta: tuple[dict[str, Any], ...] = field(default=(), repr=False)

    @property
    def is_sweep(self) -> bool:
        return bool(self.parameters)

    def point(self, index: int) -> Results:
        """The tables of one point of a sweep."""
        if index not in set(self.summary[POINT]):
            raise KeyError(f"no point {index} in {self.folder}; points are "
                           f"{sorted(self.summary[POINT])}")

        def pick(df: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if df is None else df[df[POINT] == index].reset_index(drop=True)

        i = list(self.summary[POINT]).index(index)
        return Results(self.folder, pick(self.summary), pick(self.layers), pick(self.images),
                       pick(self.mapping), pick(self.tiles), (), (self.scenarios[i],),
                       (self.meta[i],))


def _read_run(folder: Path) -> dict[str, Any]:
    tables: dict[str, pd.DataFrame | None] = {}
    for name in TABLES:
        path = folder / f"{name}.parquet"
        tables[name] = pd.read_parquet(path) if path.is_file() else None
    for name in ("layers", "images", "mapping", "summary"):
        if tables[name] is None:
            raise ResultsError(f"{folder} has no {name}.parquet; is it a finished accelsim run?")
    tables["scenario"] = yaml.safe_load((folder / SCENARIO_FILE).read_text())
    tables["meta"] = read_meta(folder)
    return tables


def _with_point(df: pd.DataFrame | None, point: int) -> pd.DataFrame | None:
    if df is None:
        return None
    return pd.concat([pd.DataFrame({POINT: np.full(len(df), point, dtype=np.int64)}),
                      df.reset_index(drop=True)], axis=1)


def load(folder: str | Path) -> Results:
    """Load a run folder or a sweep folder."""
    folder = Path(folder)
    sweep_path = folder / f"{SWEEP_TABLE}.parquet"
    if sweep_path.is_file():
        summary = pd.read_parquet(sweep_path)
        meta = read_meta(folder) or {}
        runs = [_read_run(folder / POINTS_DIR / key) for key in summary[KEY]]
        points = list(summary[POINT])
        parameters = tuple(meta.get("parameters", ()))
    elif (folder / "summary.parquet").is_file():
        run = _read_run(folder)
        runs, points, parameters = [run], [0], ()
        summary = _with_point(run["summary"], 0)
    else:
        raise ResultsError(f"{folder} holds neither sweep.parquet nor summary.parquet; pass the "
                           "folder that 'accelsim run' wrote (see its --out)")

    def stack(name: str) -> pd.DataFrame | None:
        parts = [_with_point(r[name], p) for r, p in zip(runs, points, strict=True)]
        parts = [p for p in parts if p is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    return Results(folder=folder, summary=summary, layers=stack("layers"),
                   images=stack("images"), mapping=stack("mapping"), tiles=stack("tiles"),
                   parameters=parameters, scenarios=tuple(r["scenario"] for r in runs),
                   meta=tuple(r["meta"] for r in runs))


# -- breakdowns (per inference: mean over the images of a point) --------------------------


def _one_point(results: Results, point: int | None) -> Results:
    if point is not None:
        return results.point(point)
    if results.summary[POINT].nunique() > 1:
        raise ValueError(f"{results.folder} is a sweep of {len(results.summary)} points; "
                         "pass point=<index> (see results.summary)")
    return results


def _layer_order(layers: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(layers[C.LAYER]))


def _per_image(layers: pd.DataFrame) -> int:
    return int(layers[C.IMAGE].nunique())


def energy_by_layer(results: Results, point: int | None = None) -> pd.DataFrame:
    """Energy per inference by layer (rows, network order) and component (columns), in µJ,
    with the compute-only SNN and ANN estimates as the last two columns."""
    layers = _one_point(results, point).layers
    n = _per_image(layers)
    cols = [*C.ENERGY_COLUMNS, C.COMPUTE_ONLY_SNN, C.COMPUTE_ONLY_ANN]
    table = layers.groupby(C.LAYER, sort=False)[cols].sum() / n / PJ_PER_UJ
    table = table.reindex(_layer_order(layers))
    table.columns = [*COMPONENT_UJ, COMPUTE_ONLY_SNN_UJ, COMPUTE_ONLY_ANN_UJ]
    return table


def latency_by_layer(results: Results, point: int | None = None) -> pd.DataFrame:
    """Cycles by layer (rows) and timestep (columns), mean over images.

    Entry (layer, t) is the chip's per-row ``cycles``: the time from the layer's last activity
    of timestep t-1 (the image's arrival for t = 1) to its last activity of t. The entries are
    durations, not times: a row sums to when the layer finished the image
    (:func:`layer_finish_cycles`), and the output layer's row sums to the mean latency.
    """
    layers = _one_point(results, point).layers
    table = layers.pivot_table(index=C.LAYER, columns=C.TIMESTEP, values=C.CYCLES,
                               aggfunc="mean", sort=False)
    return table.reindex(_layer_order(layers))


def layer_finish_cycles(results: Results, point: int | None = None) -> pd.Series:
    """When each layer finished the image, in cycles after its arrival (mean over images):
    the sum over timesteps of the layer's ``cycles``."""
    layers = _one_point(results, point).layers
    per_image = layers.groupby([C.IMAGE, C.LAYER], sort=False)[C.CYCLES].sum()
    finish = per_image.groupby(level=C.LAYER, sort=False).mean()
    return finish.reindex(_layer_order(layers)).rename("finish_cycles")


def spike_rates(results: Results, point: int | None = None) -> pd.Series:
    """Spike rate of each layer: spikes over all T / neurons, mean over images (DESIGN §2;
    it can exceed 1). The output layer does not spike and is left out."""
    layers = _one_point(results, point).layers
    per_image = layers.groupby([C.IMAGE, C.LAYER], sort=False).agg(
        spikes=(C.SPIKES_OUT, "sum"), neurons=(C.NEURONS, "first"))
    rate = (per_image["spikes"] / per_image["neurons"]).groupby(level=C.LAYER, sort=False).mean()
    order = _layer_order(layers)[:-1]
    return rate.reindex(order).rename("spike_rate")


def compute_only_ratio(results: Results, point: int | None = None) -> pd.Series:
    """Full energy / compute-only SNN estimate per layer, and for the whole network (``total``)."""
    table = energy_by_layer(results, point)
    full = table[list(COMPONENT_UJ)].sum(axis=1)
    est = table[COMPUTE_ONLY_SNN_UJ]
    ratio = full / est.where(est > 0)
    ratio.loc["total"] = full.sum() / est.sum() if est.sum() > 0 else float("nan")
    return ratio.rename("full_to_compute_only")


def pareto_front(energy: np.ndarray, latency: np.ndarray) -> np.ndarray:
    """Boolean mask of the points no other point beats in both energy and latency."""
    energy, latency = np.asarray(energy, float), np.asarray(latency, float)
    keep = np.ones(len(energy), dtype=bool)
    for i in range(len(energy)):
        dominated = (energy <= energy[i]) & (latency <= latency[i]) & \
            ((energy < energy[i]) | (latency < latency[i]))
        keep[i] = not dominated.any()
    return keep


# -- text for people ---------------------------------------------------------------------

_COMPONENT_NAMES = {"weight_sram": "weight SRAM", "neuron_update": "neuron update",
                    "dram": "DRAM", "mac": "MAC"}


def _short_param(param: str) -> str:
    return param.removeprefix("hardware.overrides.").removeprefix("simulation.")


def describe_model(scenario: Mapping[str, Any]) -> str:
    """The trained model's name, or the calibrated workload's parameters."""
    w = scenario.get("workload")
    if not w:
        return str(scenario.get("model"))
    rate = w.get("spike_rate")
    rate = "per-layer rates" if isinstance(rate, list) else f"{rate:g} spikes/neuron over T"
    return (f"calibrated workload {w.get('architecture')} w{w.get('width', 1.0):g} "
            f"({rate}, seed {w.get('seed')})")


def _describe_scenario(scenario: Mapping[str, Any], images: int) -> str:
    data = scenario.get("data", {})
    return (f"{describe_model(scenario)} on {scenario.get('hardware', {}).get('preset')}, "
            f"T={scenario.get('simulation', {}).get('timesteps')}, {images} "
            f"{data.get('set')}/{data.get('split')} images")


def format_summary(results: Results) -> str:
    """The summary as a person reads it: a labelled block for one run, a table with units in
    the headers for a sweep (one row per point)."""
    s = results.summary
    if not results.is_sweep and len(s) == 1:
        row = s.iloc[0]
        n = int(row[NUM_IMAGES])
        labelled = bool(pd.notna(row[ACCURACY]))  # a calibrated workload has no labels
        correct = int(round(row[ACCURACY] * n)) if labelled else 0
        energy = float(row[ENERGY_UJ])
        parts = sorted(((float(row[c]), name) for c, name in zip(COMPONENT_UJ, C.ENERGY_COMPONENTS,
                                                                 strict=True)), reverse=True)
        by_component = ", ".join(
            f"{_COMPONENT_NAMES.get(name, name.replace('_', ' '))} {uj:.3g} µJ "
            f"({100 * uj / energy:.0f}%)" for uj, name in parts
            if energy > 0 and uj >= 0.01 * energy)
        accuracy = (f"{100 * row[ACCURACY]:.2f} % ({correct} / {n})" if labelled
                    else "none (calibrated workload: synthetic images, no labels)")
        lines = [
            _describe_scenario(results.scenarios[0], n) if results.scenarios else f"{n} images",
            f"  accuracy                    {accuracy}",
            f"  latency per inference       {row[LATENCY_CYCLES]:,.0f} cycles = "
            f"{row[LATENCY_US]:.4g} µs",
            f"  energy per inference        {energy:.4g} µJ  (energy-delay product "
            f"{row[EDP]:.4g} µJ·µs)",
            f"    largest components        {by_component}",
            f"  compute-only estimate       SNN {row[COMPUTE_ONLY_SNN_UJ]:.4g} µJ, "
            f"ANN {row[COMPUTE_ONLY_ANN_UJ]:.4g} µJ",
            f"  full / compute-only (SNN)   {row[FULL_TO_COMPUTE_ONLY]:.3g}x",
            f"  spikes per inference        {row[SPIKES]:,.0f}",
            f"  weights from DRAM           {row[DRAM_BYTES]:,.0f} bytes per inference",
        ]
        return "\n".join(lines)
    headers = {ACCURACY: "accuracy %", LATENCY_CYCLES: "latency cycles", LATENCY_US: "latency µs",
               ENERGY_UJ: "energy µJ", EDP: "EDP µJ·µs", COMPUTE_ONLY_SNN_UJ: "c-only SNN µJ",
               COMPUTE_ONLY_ANN_UJ: "c-only ANN µJ", FULL_TO_COMPUTE_ONLY: "full/c-only"}
    if (s[DRAM_BYTES] > 0).any():
        headers[DRAM_BYTES] = "DRAM bytes"
    table = s.set_index(POINT)[[*results.parameters, *headers]].copy()
    table[ACCURACY] = 100 * table[ACCURACY]
    table.columns = [*(_short_param(p) for p in results.parameters), *headers.values()]
    with pd.option_context("display.width", 200, "display.max_columns", 40,
                           "display.float_format", "{:.4g}".format):
        first = results.scenarios[0] if results.scenarios else {}
        n = int(s[NUM_IMAGES].iloc[0])
        head = f"{len(s)} points; per inference, mean over {n} images each" + (
            f" ({describe_model(first)}, {first.get('data', {}).get('set')}/"
            f"{first.get('data', {}).get('split')})" if first else "")
        formats = {"accuracy %": "{:.1f}".format, "latency cycles": "{:,.0f}".format,
                   "DRAM bytes": "{:,.0f}".format}
        return head + "\n" + table.to_string(formatters={c: f for c, f in formats.items()
                                                         if c in table.columns})
