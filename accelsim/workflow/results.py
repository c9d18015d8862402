"""Result folders: the only code that writes into one, and the code that reads them back.

A *run folder* holds one simulation (one sweep point):

    layers.parquet   image x layer x timestep counters and energy (columns:
    accelsim.workflow.columns)
    images.parquet   one row per image: prediction, label, correct, cycles, latency, energy
    mapping.parquet  which tile holds which neurons of which layer
    tiles.parquet    image x tile x layer x timestep counters (only with simulation.per_tile)
    summary.parquet  one row: accuracy, latency, energy per inference, C.EDP, ratios
    scenario.yaml    the fully resolved scenario of this point
    run.json         the manifest: status, cache key, time unit, software versions, and the
                     sha256 of every file accelsim wrote here

(each table also as CSV when ``outputs.csv``). A *sweep folder* holds ``sweep.parquet`` (one
row per point: the swept parameters then the summary columns), ``scenario.yaml`` and ``run.json``
of the sweep, and ``points/<key>/``, one run folder per point. Figures go to ``figures/``.

Guarantees:
- accelsim writes only into a new or empty folder or one whose every file its manifest lists;
  anything else there is refused by name, never replaced or deleted.
- A run folder is written into a temporary sibling and renamed into place, so a folder that
  exists is complete; its tables are checked against their sha256 before they are reused or
  read, and a mismatch is reported (and the point simulated again by ``run``).
- A sweep folder is marked ``running`` (its sweep table and figures removed) before any point is
  simulated and ``complete`` when its table is written: :func:`load` refuses a running one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from accelsim.model.modelfile import sha256_file
from accelsim.workflow import columns as C

TABLES = ("layers", "images", "mapping", "tiles", "summary")
SUMMARY_TABLE = "summary"
SWEEP_TABLE = "sweep"
RUN_FILE = "run.json"
SCENARIO_FILE = "scenario.yaml"
POINTS_DIR = "points"
FIGURES_DIR = "figures"
PARQUET, CSV = ".parquet", ".csv"
_TEMPORARY = (".tmp-", ".old-")

RUNNING, COMPLETE, LEGACY = "running", "complete", "legacy"
RUN, SWEEP = "run", "sweep"
_LEGACY_FIGURES = ("energy_breakdown", "spike_rates", "latency", "pareto", "sweep_energy",
                   "edp_heatmap", "accuracy_vs_energy")
_LEGACY_FILES = [*(f"{name}{suffix}" for name in (*TABLES, SWEEP_TABLE)
                   for suffix in (PARQUET, CSV)), SCENARIO_FILE,
                 *(f"{FIGURES_DIR}/{name}{suffix}" for name in _LEGACY_FIGURES
                   for suffix in (".png", ".svg"))]
"""What a result folder written before manifests existed owns: the names accelsim writes."""

PJ_PER_UJ = 1e6


class ResultsError(ValueError):
    """A result folder that cannot be read, written or trusted."""


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
        C.ACCURACY: float(images[C.CORRECT].mean()),
        C.NUM_IMAGES: n,
        C.TIMESTEPS: int(timesteps),
        C.LATENCY_CYCLES: float(images[C.TOTAL_CYCLES].mean()),
        C.LATENCY_US: latency_us,
        C.ENERGY_UJ: energy_uj,
        C.EDP: energy_uj * latency_us,
        C.COMPUTE_ONLY_SNN_UJ: snn_uj,
        C.COMPUTE_ONLY_ANN_UJ: ann_uj,
        C.FULL_TO_COMPUTE_ONLY: energy_uj / snn_uj if snn_uj > 0 else float("nan"),
        C.SPIKES: float(layers[C.SPIKES_OUT].sum()) / n,
        C.DRAM_BYTES: float(layers[C.DRAM_READ_BYTES].sum()) / n,
    }
    for col, uj in zip(C.ENERGY_COLUMNS, C.COMPONENT_UJ, strict=True):
        row[uj] = float(layers[col].sum()) / n / PJ_PER_UJ
    from accelsim.chip.ann import summary_columns

    row.update(summary_columns(images, row))
    return pd.DataFrame([row], columns=list(C.SUMMARY_COLUMNS))


# -- the manifest (run.json) ---------------------------------------------------------------


def read_meta(folder: Path) -> dict[str, Any] | None:
    """``run.json`` of a result folder, or None if there is none (or it is not a manifest).

    A folder written before manifests existed (a ``run.json`` without ``files``) is ``legacy``:
    it owns exactly the files accelsim names (not every file with a table's stem), and none of
    them is trusted, so its points are simulated again."""
    path = Path(folder) / RUN_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if "files" not in meta and ("key" in meta or "parameters" in meta):
        return {**meta, "status": LEGACY, "kind": RUN if "key" in meta else SWEEP,
                "files": {name: "" for name in _LEGACY_FILES if (Path(folder) / name).is_file()}}
    return meta if isinstance(meta.get("files"), dict) else None


def _write_meta(folder: Path, meta: Mapping[str, Any]) -> None:
    tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}-{RUN_FILE}"
    tmp.write_text(json.dumps(dict(meta), indent=2, default=str) + "\n")
    tmp.replace(folder / RUN_FILE)


def mismatches(folder: Path, meta: Mapping[str, Any] | None = None) -> list[str]:
    """The data files of a result folder that are missing or differ from their recorded sha256
    (figures are not data and are not checked)."""
    meta = meta if meta is not None else read_meta(folder)
    if meta is None:
        return [RUN_FILE]
    bad = []
    for name, digest in meta["files"].items():
        if name.startswith(FIGURES_DIR + "/"):
            continue
        path = folder / name
        if not path.is_file() or sha256_file(path) != digest:
            bad.append(name)
    return bad


def cached(folder: Path, key: str) -> tuple[bool, str | None]:
    """Whether ``folder`` holds the finished run of cache key ``key``, and, when it holds that
    run but its files do not match their checksums, what is wrong."""
    meta = read_meta(folder)
    if meta is None or meta.get("key") != key or meta.get("status") != COMPLETE:
        return False, None
    bad = mismatches(folder, meta)
    if bad:
        return False, (f"{', '.join(bad)} in {folder} do(es) not match the sha256 recorded in "
                       f"{RUN_FILE}; simulating the point again")
    return True, None


def _listing(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def foreign_files(folder: Path) -> list[str]:
    """What lies in a result folder that its manifests do not list (paths relative to it)."""
    return _foreign(Path(folder), "")


def _foreign(folder: Path, prefix: str) -> list[str]:
    meta = read_meta(folder)
    owned = set(meta["files"]) | {RUN_FILE} if meta else set()
    found: list[str] = []
    for entry in sorted(folder.iterdir()):
        rel = entry.name
        if rel.startswith(_TEMPORARY):
            continue
        if entry.is_dir() and not entry.is_symlink():
            if meta and rel == POINTS_DIR and meta.get("kind") == SWEEP:
                for child in sorted(entry.iterdir()):
                    if child.name.startswith(_TEMPORARY):
                        continue
                    if child.is_dir() and read_meta(child) is not None:
                        found += _foreign(child, f"{prefix}{rel}/{child.name}/")
                    else:
                        found.append(f"{prefix}{rel}/{child.name}")
            else:
                found += [f"{prefix}{p.relative_to(folder).as_posix()}"
                          for p in sorted(entry.rglob("*")) if not p.is_dir()
                          and p.relative_to(folder).as_posix() not in owned]
                if not any(entry.iterdir()) and not meta:
                    found.append(f"{prefix}{rel}/")
        elif rel not in owned:
            found.append(prefix + rel)
    return found


def check_folder(folder: Path, kind: str) -> None:
    """Refuse (:class:`ResultsError`) a result folder a run of ``kind`` (``run`` or ``sweep``)
    may not write: a file, an unwritable place, the other kind of result, or a folder holding
    files accelsim did not write. Nothing is created or changed."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"{folder} is a file, not a folder; pass a folder to --out "
                           "(outputs.dir)")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ResultsError(f"cannot create {folder}: {existing} is a file; pass another --out "
                           "(outputs.dir)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ResultsError(f"cannot write to {existing} (no permission); pass a folder you can "
                           "write to as --out (outputs.dir)")
    if existing != folder or not any(folder.iterdir()):
        return
    meta = read_meta(folder)
    if meta is not None and meta.get("kind") not in (None, kind):
        raise ResultsError(f"{folder} holds a {meta.get('kind')}, not a {kind}; pass another "
                           "--out (outputs.dir)")
    foreign = foreign_files(folder)
    if foreign:
        raise ResultsError(
            f"{folder} holds files accelsim did not write ({_listing(foreign)}); it replaces "
            f"only the files its {RUN_FILE} lists. Move them away, or pass another --out "
            "(outputs.dir)")


def create(folder: Path) -> None:
    """Make a result folder (and its parents), as a :class:`ResultsError` if that fails."""
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create {folder}: {exc.strerror or exc}; pass a folder you "
                           "can write to as --out (outputs.dir)") from None


# -- writing -------------------------------------------------------------------------------


def _write_table(df: pd.DataFrame, folder: Path, name: str, csv: bool) -> list[str]:
    df.to_parquet(folder / f"{name}{PARQUET}", index=False)
    if not csv:
        return [f"{name}{PARQUET}"]
    df.to_csv(folder / f"{name}{CSV}", index=False)
    return [f"{name}{PARQUET}", f"{name}{CSV}"]


def write_run(folder: Path, tables: Mapping[str, pd.DataFrame | None], scenario: Mapping[str, Any],
              meta: Mapping[str, Any], *, csv: bool = True) -> Path:
    """Write one run folder atomically (temporary sibling, then rename); replaces ``folder``,
    which must hold nothing but what accelsim wrote (see :func:`check_folder`)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        written = []
        for name in TABLES:
            df = tables.get(name)
            if df is not None:
                written += _write_table(df, tmp, name, csv)
        (tmp / SCENARIO_FILE).write_text(yaml.safe_dump(dict(scenario), sort_keys=False))
        written.append(SCENARIO_FILE)
        files = {name: sha256_file(tmp / name) for name in written}
        _write_meta(tmp, {"status": COMPLETE, "kind": RUN, **meta, "files": files})
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def begin(folder: Path) -> None:
    """Mark a result folder as being rewritten: its manifest says ``running`` (so it is not
    read as current), and its sweep table and figures, which describe the old run, go."""
    folder = Path(folder)
    meta = read_meta(folder)
    if meta is None:
        return
    files = dict(meta["files"])
    for name in list(files):
        if name.startswith((SWEEP_TABLE + ".", FIGURES_DIR + "/")):
            (folder / name).unlink(missing_ok=True)
            del files[name]
    if (folder / FIGURES_DIR).is_dir() and not any((folder / FIGURES_DIR).iterdir()):
        (folder / FIGURES_DIR).rmdir()
    _write_meta(folder, {**meta, "status": RUNNING, "files": files})


def point_folder(folder: Path, key: str, sweep: bool) -> Path:
    """Where a point's run folder lives: ``points/<key[:16]>`` of a sweep, the folder itself
    for a single run."""
    return Path(folder) / POINTS_DIR / key[:16] if sweep else Path(folder)


def write_sweep(folder: Path, points: Iterable[tuple[int, str, Mapping[str, Any]]],
                scenario: Mapping[str, Any], meta: Mapping[str, Any], *, csv: bool = True) -> None:
    """Write the sweep table (one row per ``(index, key, params)`` point: the swept values, then
    the point's summary), the sweep's scenario and its manifest, marked complete."""
    folder = Path(folder)
    rows = []
    for index, key, params in points:
        summary = pd.read_parquet(point_folder(folder, key, True) / f"{SUMMARY_TABLE}{PARQUET}")
        head = pd.DataFrame({C.POINT: [index], C.KEY: [key[:16]],
                             **{p: [v] for p, v in params.items()}})
        rows.append(pd.concat([head, summary.reset_index(drop=True)], axis=1))
    table = pd.concat(rows, ignore_index=True)  # column by column: integers stay integers
    old = read_meta(folder)
    files = {k: v for k, v in (old["files"] if old else {}).items()
             if k.startswith(FIGURES_DIR + "/")}
    for suffix in (PARQUET, CSV) if csv else (PARQUET,):
        name = f"{SWEEP_TABLE}{suffix}"
        tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}-{name}"
        (table.to_parquet if suffix == PARQUET else table.to_csv)(tmp, index=False)
        files[name] = sha256_file(tmp)
        tmp.replace(folder / name)
    (folder / SCENARIO_FILE).write_text(yaml.safe_dump(dict(scenario), sort_keys=False))
    files[SCENARIO_FILE] = sha256_file(folder / SCENARIO_FILE)
    _write_meta(folder, {"status": COMPLETE, "kind": SWEEP, **meta, "points": len(table),
                         "files": files})


def start_sweep(folder: Path, meta: Mapping[str, Any]) -> None:
    """Before the points of a sweep run: its manifest exists and says ``running``."""
    if read_meta(folder) is None:
        _write_meta(Path(folder), {"status": RUNNING, "kind": SWEEP, **meta, "files": {}})
    else:
        begin(folder)


def save_figures(figures: Mapping[str, Callable[[], Any]], folder: Path | None = None, *,
                 results: Path | None = None) -> list[Path]:
    """Draw each figure (``name`` -> a function returning a matplotlib figure) and write it as
    ``name.png`` and ``name.svg``: into ``folder``, or into ``figures/`` of the result folder
    ``results``, whose manifest then lists them (a figure file there that accelsim did not
    write is refused before anything is drawn, never replaced)."""
    target = Path(folder) if folder is not None else Path(results) / FIGURES_DIR
    if target.exists() and not target.is_dir():
        raise ResultsError(f"{target} is a file, not a folder; pass a folder to --out")
    meta = read_meta(results) if results is not None else None
    names = [f"{name}{suffix}" for name in figures for suffix in (".png", ".svg")]
    if meta is not None and folder is None:
        foreign = [f"{FIGURES_DIR}/{n}" for n in names if (target / n).exists()
                   and f"{FIGURES_DIR}/{n}" not in meta["files"]]
        if foreign:
            raise ResultsError(f"{results} holds figures accelsim did not write "
                               f"({_listing(foreign)}); move them away, or pass --out")
    create(target)
    written = []
    try:
        for name, draw in figures.items():
            fig = draw()
            for suffix, kwargs in ((".png", {"dpi": 150}), (".svg", {})):
                path = target / f"{name}{suffix}"
                fig.savefig(path, **kwargs)
                written.append(path)
    except OSError as exc:
        raise ResultsError(f"cannot write figures to {target}: {exc.strerror or exc}; pass a "
                           "folder you can write to as --out") from None
    if meta is not None and folder is None:
        files = dict(meta["files"])
        files.update({f"{FIGURES_DIR}/{p.name}": sha256_file(p) for p in written})
        _write_meta(Path(results), {**meta, "files": files})
    return written


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
    """Remove what an interrupted run left behind: ``.tmp-*`` and ``.old-*`` in ``folder``, and
    beside it those of ``folder`` itself (``.tmp-<name>-*``)."""
    folder = Path(folder)
    leftovers = [p for prefix in _TEMPORARY
                 for p in folder.parent.glob(f"{prefix}{folder.name}-*")]
    if folder.is_dir():
        leftovers += [p for prefix in _TEMPORARY for p in folder.glob(f"{prefix}*")]
    for leftover in leftovers:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


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
        if index not in set(self.summary[C.POINT]):
            raise KeyError(f"no point {index} in {self.folder}; points are "
                           f"{sorted(self.summary[C.POINT])}")

        def pick(df: pd.DataFrame | None) -> pd.DataFrame | None:
            return None if df is None else df[df[C.POINT] == index].reset_index(drop=True)

        i = list(self.summary[C.POINT]).index(index)
        return Results(self.folder, pick(self.summary), pick(self.layers), pick(self.images),
                       pick(self.mapping), pick(self.tiles), (), (self.scenarios[i],),
                       (self.meta[i],))


def _trusted(folder: Path) -> dict[str, Any]:
    """The manifest of a finished result folder whose data files match their checksums."""
    meta = read_meta(folder)
    if meta is None:
        raise ResultsError(f"{folder} holds no accelsim results ({RUN_FILE} missing or not "
                           "an accelsim manifest); pass the folder that 'accelsim run' wrote "
                           "(see its --out)")
    if meta.get("status") == LEGACY:
        raise ResultsError(f"{folder} was written by an older accelsim, without checksums; "
                           "re-run the command that wrote it to simulate it again")
    if meta.get("status") != COMPLETE:
        raise ResultsError(f"{folder} holds an unfinished run (interrupted, or still running); "
                           "re-run the command that wrote it to finish it")
    bad = mismatches(folder, meta)
    if bad:
        raise ResultsError(f"{_listing(bad)} in {folder} do(es) not match the sha256 recorded "
                           f"in {RUN_FILE} (changed or damaged since accelsim wrote it); re-run "
                           "the command that wrote it to simulate it again")
    return meta


def _read_run(folder: Path) -> dict[str, Any]:
    meta = _trusted(folder)
    if meta.get("kind") != RUN:
        raise ResultsError(f"{folder} holds a {meta.get('kind')}, not a run")
    tables: dict[str, Any] = {}
    for name in TABLES:
        path = folder / f"{name}{PARQUET}"
        tables[name] = pd.read_parquet(path) if f"{name}{PARQUET}" in meta["files"] else None
    tables["scenario"] = yaml.safe_load((folder / SCENARIO_FILE).read_text())
    tables["meta"] = meta
    return tables


def _with_point(df: pd.DataFrame | None, point: int) -> pd.DataFrame | None:
    if df is None:
        return None
    return pd.concat([pd.DataFrame({C.POINT: np.full(len(df), point, dtype=np.int64)}),
                      df.reset_index(drop=True)], axis=1)


def load(folder: str | Path) -> Results:
    """Load a run folder or a sweep folder, checked against its manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ResultsError(f"{folder} is not a folder; pass the folder that 'accelsim run' "
                           "wrote (see its --out)")
    meta = _trusted(folder)
    if meta.get("kind") == SWEEP:
        summary = pd.read_parquet(folder / f"{SWEEP_TABLE}{PARQUET}")
        runs = [_read_run(folder / POINTS_DIR / key) for key in summary[C.KEY]]
        points = list(summary[C.POINT])
        parameters = tuple(meta.get("parameters", ()))
    else:
        run = _read_run(folder)
        runs, points, parameters = [run], [0], ()
        summary = _with_point(run["summary"], 0)

    def stack(name: str) -> pd.DataFrame | None:
        parts = [_with_point(r[name], p) for r, p in zip(runs, points, strict=True)]
        parts = [p for p in parts if p is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    return Results(folder=folder, summary=summary, layers=stack("layers"),
                   images=stack("images"), mapping=stack("mapping"), tiles=stack("tiles"),
                   parameters=parameters, scenarios=tuple(r["scenario"] for r in runs),
                   meta=tuple(r["meta"] for r in runs))


def time_unit(results: Results, point: int | None = None) -> str:
    """What the ``cycles`` columns count: ``cycles``, or the time unit of an asynchronous
    preset (recorded in ``run.json`` when the point was simulated)."""
    i = 0 if point is None else list(results.summary[C.POINT]).index(point)
    return results.meta[i].get("time_unit", "cycles") if results.meta else "cycles"


# -- breakdowns (per inference: mean over the images of a point) --------------------------


def _one_point(results: Results, point: int | None) -> Results:
    if point is not None:
        return results.point(point)
    if results.summary[C.POINT].nunique() > 1:
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
    table.columns = [*C.COMPONENT_UJ, C.COMPUTE_ONLY_SNN_UJ, C.COMPUTE_ONLY_ANN_UJ]
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
    """Spike rate of each layer: spikes over all T / neurons, mean over images (docs/design.md §2;
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
    full = table[list(C.COMPONENT_UJ)].sum(axis=1)
    est = table[C.COMPUTE_ONLY_SNN_UJ]
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


def _ann_lines(row: pd.Series) -> list[str]:
    """The ANN on the same chip, beside the SNN (absent from results written before it)."""
    if not pd.notna(row.get(C.SNN_TO_ANN_ENERGY)):
        return []
    acc = row[C.ANN_ACCURACY]
    return [f"  ANN on the same chip        {row[C.ANN_ENERGY_UJ]:.4g} µJ, "
            f"{row[C.ANN_LATENCY_US]:.4g} µs, accuracy "
            + (f"{100 * acc:.2f} %" if pd.notna(acc) else "n/a (no ANN weights shipped)"),
            f"  SNN / ANN energy            full-system {row[C.SNN_TO_ANN_ENERGY]:.3g}x, "
            f"compute-only {row[C.SNN_TO_ANN_COMPUTE_ONLY]:.3g}x "
            f"(latency {row[C.SNN_TO_ANN_LATENCY]:.3g}x)"]


def _search_lines(row: pd.Series) -> list[str]:
    """What a mapping search chose and gained (nothing without one)."""
    if C.SEARCH_GAIN not in row or pd.isna(row[C.SEARCH_GAIN]):
        return []
    return [f"  mapping (searched)          {row[C.MAPPING_POLICY]}: {row[C.MAPPING_TILES]}",
            f"    {row[C.SEARCH_OBJECTIVE]} on the sample    {row[C.SEARCH_BEST]:.4g} vs "
            f"{row[C.SEARCH_DEFAULT]:.4g} with the default mapping "
            f"({100 * row[C.SEARCH_GAIN]:.1f} % lower; {row[C.SEARCH_CANDIDATES]} mappings "
            "tried)"]


def format_summary(results: Results) -> str:
    """The summary as a person reads it: a labelled block for one run, a table with units in
    the headers for a sweep (one row per point)."""
    s = results.summary
    if not results.is_sweep and len(s) == 1:
        row = s.iloc[0]
        n = int(row[C.NUM_IMAGES])
        labelled = bool(pd.notna(row[C.ACCURACY]))  # a calibrated workload has no labels
        correct = int(round(row[C.ACCURACY] * n)) if labelled else 0
        energy = float(row[C.ENERGY_UJ])
        parts = sorted(((float(row[c]), name) for c, name in
                        zip(C.COMPONENT_UJ, C.ENERGY_COMPONENTS, strict=True)), reverse=True)
        by_component = ", ".join(
            f"{C.component_label(name)} {uj:.3g} µJ "
            f"({100 * uj / energy:.0f}%)" for uj, name in parts
            if energy > 0 and uj >= 0.01 * energy)
        accuracy = (f"{100 * row[C.ACCURACY]:.2f} % ({correct} / {n})" if labelled
                    else "none (calibrated workload: synthetic images, no labels)")
        lines = [
            _describe_scenario(results.scenarios[0], n) if results.scenarios else f"{n} images",
            f"  accuracy                    {accuracy}",
            f"  latency per inference       {row[C.LATENCY_CYCLES]:,.0f} cycles = "
            f"{row[C.LATENCY_US]:.4g} µs",
            f"  energy per inference        {energy:.4g} µJ  (energy-delay product "
            f"{row[C.EDP]:.4g} µJ·µs)",
            f"    largest components        {by_component}",
            f"  compute-only estimate       SNN {row[C.COMPUTE_ONLY_SNN_UJ]:.4g} µJ, "
            f"ANN {row[C.COMPUTE_ONLY_ANN_UJ]:.4g} µJ",
            f"  full / compute-only (SNN)   {row[C.FULL_TO_COMPUTE_ONLY]:.3g}x",
            *_ann_lines(row),
            f"  spikes per inference        {row[C.SPIKES]:,.0f}",
            f"  weights from DRAM           {row[C.DRAM_BYTES]:,.0f} bytes per inference",
            *_search_lines(row),
        ]
        return "\n".join(lines)
    headers = {C.ACCURACY: "accuracy %", C.LATENCY_CYCLES: "latency cycles",
               C.LATENCY_US: "latency µs", C.ENERGY_UJ: "energy µJ", C.EDP: "EDP µJ·µs",
               C.COMPUTE_ONLY_SNN_UJ: "c-only SNN µJ", C.COMPUTE_ONLY_ANN_UJ: "c-only ANN µJ",
               C.FULL_TO_COMPUTE_ONLY: "full/c-only"}
    if C.SNN_TO_ANN_ENERGY in s and s[C.SNN_TO_ANN_ENERGY].notna().any():
        headers.update({C.ANN_ENERGY_UJ: "ANN µJ", C.SNN_TO_ANN_ENERGY: "SNN/ANN full",
                        C.SNN_TO_ANN_COMPUTE_ONLY: "SNN/ANN c-only"})
    if (s[C.DRAM_BYTES] > 0).any():
        headers[C.DRAM_BYTES] = "DRAM bytes"
    if C.SEARCH_GAIN in s:
        headers.update({C.MAPPING_POLICY: "mapping", C.SEARCH_GAIN: "search gain"})
    table = s.set_index(C.POINT)[[*results.parameters, *headers]].copy()
    table[C.ACCURACY] = 100 * table[C.ACCURACY]
    table.columns = [*(C.short_param(p) for p in results.parameters), *headers.values()]
    with pd.option_context("display.width", 200, "display.max_columns", 40,
                           "display.float_format", "{:.4g}".format):
        first = results.scenarios[0] if results.scenarios else {}
        n = int(s[C.NUM_IMAGES].iloc[0])
        head = f"{len(s)} points; per inference, mean over {n} images each" + (
            f" ({describe_model(first)}, {first.get('data', {}).get('set')}/"
            f"{first.get('data', {}).get('split')})" if first else "")
        formats = {"accuracy %": "{:.1f}".format, "latency cycles": "{:,.0f}".format,
                   "DRAM bytes": "{:,.0f}".format}
        return head + "\n" + table.to_string(formatters={c: f for c, f in formats.items()
                                                         if c in table.columns})
