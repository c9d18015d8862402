"""Run a scenario: resolve it, check it, simulate every sweep point on Dask, write results.

Work is cut into tasks of (sweep point, batch of images). Tasks run on a ``dask.distributed``
cluster (a local one by default, or the scheduler at an address) or in this process
(``scheduler="serial"``). Each worker loads the model, the images and the hardware itself, so
only small descriptions travel. When every batch of a point is back, the point is assembled
and written atomically into ``points/<key>/`` (or the run folder itself for a scenario without
a sweep).

The cache key of a point is the sha256 of its resolved scenario (without names, outputs and
execution settings, which do not change results), the model manifest (which holds the sha256
of the weights) and the accelsim version. A point whose folder exists with that key is skipped,
so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from accelsim import columns as C
from accelsim import results as R
from accelsim import workloads as W
from accelsim.scenario import (
    DEFAULT_RESULTS,
    Problem,
    Scenario,
    ScenarioError,
    SimulationSpec,
    apply_settings,
    field_line,
    flatten,
)
from accelsim.scenario import load as load_scenario

MODELS_DIR = "trained_models"
SERIAL = "serial"
"""``scheduler`` value that runs every task in this process, without Dask."""

DATASET_INDEX = "dataset_index"
"""Column added to the per-image table: the image's index within its data set split."""

_KEY_EXCLUDES = ("name", "description", "sweep", "outputs", "execution")


@dataclass(frozen=True)
class Point:
    """One simulation of a scenario: a sweep point with every default resolved."""

    index: int
    params: dict[str, Any]
    scenario: Scenario
    model_path: Path
    key: str

    @property
    def images(self) -> int:
        return self.scenario.data.images


# -- resolving -----------------------------------------------------------------------------


def model_candidates(model: str, scenario_dir: Path | None = None) -> list[Path]:
    """Where ``model`` may be: as a path (cwd, then the scenario's folder), then as a name in
    ``trained_models/`` (cwd, the scenario's parent, the source checkout)."""
    stem = model[:-5] if model.endswith(".json") else model
    bases = [Path.cwd()] + ([scenario_dir] if scenario_dir else [])
    found = [b / f"{stem}.json" for b in bases]
    roots = [Path.cwd()] + ([scenario_dir.parent] if scenario_dir else []) + \
        [Path(__file__).resolve().parents[1]]
    found += [r / MODELS_DIR / f"{stem}.json" for r in roots]
    return list(dict.fromkeys(p.resolve() for p in found))


def find_model(model: str, scenario_dir: Path | None = None) -> Path | None:
    return next((p for p in model_candidates(model, scenario_dir) if p.is_file()), None)


def _available_models(scenario_dir: Path | None) -> list[str]:
    names: set[str] = set()
    for p in model_candidates("x", scenario_dir)[-3:]:
        if p.parent.is_dir():
            names.update(q.stem for q in p.parent.glob("*.json"))
    return sorted(names)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> dict[str, str]:
    """Software versions recorded with every run."""
    return dict(_versions())


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    """Looked up once per process: reading package metadata costs milliseconds per package."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("accelsim", "numpy", "numba", "simpy", "pandas", "pyarrow", "torch",
                    "pydantic", "dask", "distributed"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return tuple(out.items())


def cache_key(scenario: Scenario, model_manifest_sha: str) -> str:
    """sha256 of what determines a point's results."""
    content = scenario.model_dump(mode="json", exclude=set(_KEY_EXCLUDES))
    content.pop("model")
    payload = {"scenario": content, "model": model_manifest_sha,
               "accelsim": versions()["accelsim"]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class _Locator:
    """Builds :class:`Problem` objects that point into the scenario file."""

    def __init__(self, path: Path | None, params: Mapping[str, Any] | None = None):
        self.path, self.params = path, dict(params or {})

    def __call__(self, field: str, message: str) -> Problem:
        name = str(self.path) if self.path else "<scenario>"
        swept = [p for p in self.params if p == field or p.startswith(field + ".")
                 or field.startswith(p + ".")]
        if swept:
            message += f" (sweep point {', '.join(f'{p}={self.params[p]!r}' for p in swept)})"
        line = None
        if self.path is not None:
            loc: list[Any] = field.split(".")
            if field.startswith("hardware.overrides."):
                dotted = ["hardware", "overrides", field.removeprefix("hardware.overrides.")]
                line = field_line(self.path, dotted)
                if line == field_line(self.path, ["hardware", "overrides"]):
                    line = None
            line = line or field_line(self.path, loc)
        return Problem(name, line, field, message)


def resolve(scenario: Scenario, scenario_path: str | Path | None = None) -> list[Point]:
    """Every point of the scenario with defaults filled from the model and the hardware preset,
    checked against them. Raises :class:`ScenarioError` naming each problem."""
    from accelsim import data as D
    from accelsim.modelfile import ModelFileError

    path = Path(scenario_path) if scenario_path is not None else None
    scenario_dir = path.resolve().parent if path is not None else None
    problems: list[Problem] = []
    points: list[Point] = []
    for index, (params, sc) in enumerate(scenario.points()):
        where = _Locator(path, params)
        try:
            model_path = (W.model_file(sc.workload) if sc.workload is not None
                          else find_model(sc.model, scenario_dir))
        except W.WorkloadError as exc:
            problems.append(where("workload", str(exc)))
            continue
        if model_path is None:
            tried = ", ".join(str(p) for p in model_candidates(sc.model, scenario_dir))
            problems.append(where("model", f"no model file {sc.model!r} (looked for {tried}); "
                                  f"models in trained_models/: {_available_models(scenario_dir)}"))
            continue
        try:
            network = _cached_network(str(model_path), _sha256(model_path))
        except ModelFileError as exc:
            problems.append(where("model", str(exc)))
            continue
        dataset = W.SYNTHETIC if sc.workload is not None else sc.data.set or network.dataset
        if dataset is None:
            problems.append(where("data.set", f"model {sc.model!r} does not name its data set; "
                                  f"set data.set to one of {', '.join(D.DATASETS)}"))
            continue
        if dataset not in (*D.DATASETS, W.SYNTHETIC):
            problems.append(where("data.set", f"unknown data set {dataset!r}; choose one of "
                                  f"{', '.join(D.DATASETS)}"))
            continue
        shape = tuple(network.architecture.input_shape)
        native = D.NATIVE_SHAPE.get(dataset, shape)
        if len(shape) != 3 or shape[0] != native[0] or shape[1] != shape[2]:
            problems.append(where(
                "data.set", f"model {network.name!r} takes input of shape {shape} but data set "
                f"{dataset!r} has {native[0]}-channel images {native}; use a data set with "
                f"{shape[0]} channel(s) (the model was trained on {network.dataset!r})"))
            continue
        sim = sc.simulation
        resolved = sc.model_copy(update={
            "data": sc.data.model_copy(update={"set": dataset}),
            "simulation": sim.model_copy(update={"timesteps": sim.timesteps or network.timesteps}),
        })
        try:
            hardware = _hardware(resolved)
        except (ValueError, KeyError, FileNotFoundError) as exc:
            named = [k for k in resolved.hardware.overrides if k in str(exc)]
            field = (f"hardware.overrides.{named[0]}" if named else "hardware.overrides"
                     if resolved.hardware.overrides else "hardware.preset")
            problems.append(where(field, str(exc)))
            continue
        if resolved.simulation.schedule is None:
            resolved = resolved.model_copy(update={"simulation": resolved.simulation.model_copy(
                update={"schedule": hardware.schedule.kind})})
        problem = _check_mapping(network, hardware)
        if problem:
            problems.append(where("hardware", problem))
            continue
        key = cache_key(resolved, _sha256(model_path))
        points.append(Point(index, params, resolved, model_path, key))
    if problems:
        raise ScenarioError(list(dict.fromkeys(problems)))  # one line per distinct problem
    return points


def _check_mapping(network: Any, hardware: Any) -> str | None:
    """Why the network cannot be mapped onto the hardware, or None if it can."""
    from accelsim.mapping import MappingError, map_network

    try:
        map_network(network, hardware)
    except MappingError as exc:
        return f"the network cannot be mapped onto this hardware: {exc}"
    return None


def check(path: str | Path, settings: Mapping[str, Any] | None = None) -> list[Point]:
    """Validate a scenario file without simulating: schema, model file, data, hardware,
    mapping and the number of images available. Raises :class:`ScenarioError`."""
    scenario = load_scenario(path, settings)
    points = resolve(scenario, path)
    problems = []
    where = _Locator(Path(path))
    for point in (p for p in points if p.scenario.workload is None):  # workloads: no data set
        d = point.scenario.data
        try:
            available = len(_cached_split(d.set, d.split, d.root, None, _split_seed(point)))
        except ValueError as exc:
            problems.append(where("data", str(exc)))
            continue
        if d.images > available:
            problems.append(where("data.images", f"{d.images} images asked, the {d.split} split "
                                  f"of {d.set!r} has {available}; ask for at most {available}"))
    if problems:
        raise ScenarioError(problems)
    return points


# -- worker side -------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _cached_network(path: str, sha: str) -> Any:
    from accelsim.modelfile import load_model

    return load_model(path)


@functools.lru_cache(maxsize=4)
def _cached_split(name: str, split: str, root: str | None, size: int | None, seed: int) -> Any:
    from accelsim.data import load_images

    return load_images(name, split, root=root, size=size, seed=seed)


def _split_seed(point: Point) -> int:
    from accelsim.modelfile import read_manifest

    return read_manifest(point.model_path).dataset.split_seed


def _hardware(scenario: Scenario) -> Any:
    from accelsim.hardware import load_hardware

    return load_hardware(scenario.hardware.preset, flatten(scenario.hardware.overrides) or None)


def select_images(point: Point, network: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(normalised images, labels, indices into the split) of a point: ``data.images`` drawn
    without replacement by ``data.seed`` from the split the model was *not* trained on when
    ``split: test``; resized to the model's input and normalised with its mean and std."""
    from accelsim.data import normalise

    d = point.scenario.data
    if point.scenario.workload is not None:
        return W.scenario_images(network, d.images, d.seed)
    size = int(network.architecture.input_shape[1])
    imageset = _cached_split(d.set, d.split, d.root, size, _split_seed(point))
    available = len(imageset)
    if d.images > available:
        raise ValueError(f"data.images = {d.images} but the {d.split} split of {d.set!r} has "
                         f"{available} images; ask for at most {available}")
    order = np.random.default_rng(d.seed).permutation(available)[: d.images]
    images = normalise(imageset.images[order], network.input_mean, network.input_std)
    return images, imageset.labels[order], order


def simulate_batch(point: Point, start: int, stop: int) -> dict[str, pd.DataFrame | None]:
    """Simulate images ``start:stop`` of a point (runs on a worker). Image numbers in the
    returned tables count from 0 over the whole point."""
    network = _cached_network(str(point.model_path), _sha256(point.model_path))
    images, labels, order = select_images(point, network)
    result = _simulate(network, images[start:stop], labels[start:stop],
                       _hardware(point.scenario), point.scenario.simulation)
    layers = _shift_images(result.layers, start, stop)
    per_image = _shift_images(result.images, start, stop)
    per_image.insert(1, DATASET_INDEX, order[per_image[C.IMAGE].to_numpy()])
    tiles = _shift_images(result.tiles, start, stop) if point.scenario.simulation.per_tile \
        else None
    return {"layers": layers, "images": per_image, "mapping": _table(result.mapping),
            "tiles": tiles}


def _simulate(network: Any, images: np.ndarray, labels: np.ndarray, hardware: Any,
              sim: SimulationSpec) -> Any:
    from accelsim.chip import simulate

    quantization = None
    if sim.quantization is not None:
        from accelsim.quantize import Quantization

        quantization = Quantization(**sim.quantization.model_dump())
    return simulate(network, images, labels, hardware=hardware, timesteps=sim.timesteps,
                    mode=sim.mode, schedule=sim.schedule, arithmetic=sim.arithmetic,
                    quantization=quantization, per_tile=sim.per_tile)


def _table(obj: Any) -> pd.DataFrame:
    if isinstance(obj, pd.DataFrame):
        return obj
    for attr in ("table", "to_frame", "to_dataframe"):
        if callable(getattr(obj, attr, None)):
            return getattr(obj, attr)()
    raise TypeError(f"cannot turn a {type(obj).__name__} mapping into a table")


def _shift_images(df: pd.DataFrame, start: int, stop: int) -> pd.DataFrame:
    df = df.copy()
    ids = df[C.IMAGE].to_numpy()
    if len(ids) and (ids.min() < 0 or ids.max() >= stop - start):
        raise ValueError(f"simulate returned image numbers {ids.min()}..{ids.max()} for a batch "
                         f"of {stop - start} images")
    df[C.IMAGE] = ids + start
    return df


def assemble(point: Point, batches: Sequence[dict[str, pd.DataFrame | None]]
             ) -> dict[str, pd.DataFrame | None]:
    """The tables of a point from its batches (in image order) plus its summary row."""
    def cat(name: str) -> pd.DataFrame | None:
        parts = [b[name] for b in batches if b[name] is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    layers, images = cat("layers"), cat("images")
    assert layers is not None and images is not None
    summary = R.summarise(layers, images, point.scenario.simulation.timesteps or 0)
    if point.scenario.workload is not None:
        summary[R.ACCURACY] = float("nan")  # a calibrated workload has no labels
    return {"layers": layers, "images": images, "mapping": batches[0]["mapping"],
            "tiles": cat("tiles"), "summary": summary}


# -- driving -------------------------------------------------------------------------------


def _batches(point: Point, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, point.images)) for s in range(0, point.images, size)]


def _point_dir(out: Path, point: Point, sweep: bool) -> Path:
    return out / R.POINTS_DIR / point.key[:16] if sweep else out


def _is_done(folder: Path, key: str) -> bool:
    meta = R.read_meta(folder)
    return meta is not None and meta.get("key") == key


def _meta(point: Point, wall_s: float) -> dict[str, Any]:
    return {"key": point.key, "point": point.index, "params": point.params,
            "model_source": W.SOURCE if point.scenario.workload is not None else "trained model",
            "model_path": str(point.model_path), "model_manifest_sha256": _sha256(
                point.model_path), "wall_s": round(wall_s, 3), "versions": versions()}


@dataclass(frozen=True)
class RunReport:
    """What :func:`run` did."""

    folder: Path
    points: int
    simulated: int
    cached: int


def _check_out(out: Path, sweep: bool) -> None:
    if not out.exists() or not any(out.iterdir()):
        return
    if sweep and (out / "summary.parquet").exists():
        raise ScenarioError([Problem(str(out), None, "outputs.dir", "holds a single run, not a "
                                     "sweep; pass another --out")])
    if not sweep and (out / R.POINTS_DIR).exists():
        raise ScenarioError([Problem(str(out), None, "outputs.dir", "holds a sweep, not a "
                                     "single run; pass another --out")])
    known = {R.RUN_FILE, R.SCENARIO_FILE, R.POINTS_DIR, "figures"}
    ours = all(p.name in known or p.name.startswith((".tmp-", ".old-")) or
               p.stem in (*R.TABLES, R.SWEEP_TABLE) for p in out.iterdir())
    if not ours:
        raise ScenarioError([Problem(str(out), None, "outputs.dir", "exists and holds files "
                                     "that accelsim did not write; pass an empty or new --out")])


def run(scenario: Scenario | str | Path, *, settings: Mapping[str, Any] | None = None,
        out: str | Path | None = None, scheduler: str | None = None, client: Any = None,
        workers: int | None = None, progress: bool = True,
        on_point: Callable[[Point], None] | None = None) -> RunReport:
    """Simulate every point of a scenario and write its result folder.

    ``scheduler``: None starts a local Dask cluster with ``execution.workers`` workers (or
    ``workers``), ``"serial"`` runs in this process, anything else is a scheduler address. A
    ready ``client`` (``dask.distributed.Client``) takes precedence. ``on_point`` is called
    after each point is written.
    """
    if isinstance(scenario, Scenario):
        path = None
        if settings:
            scenario = Scenario.model_validate(
                apply_settings(scenario.model_dump(mode="json"), settings))
    else:
        path = Path(scenario)
        scenario = load_scenario(path, settings)
    points = resolve(scenario, path)
    sweep = scenario.sweep is not None
    folder = Path(out or scenario.outputs.dir or DEFAULT_RESULTS / scenario.name).resolve()
    _check_out(folder, sweep)
    folder.mkdir(parents=True, exist_ok=True)
    R.clean_temporaries(folder)
    if sweep:
        R.clean_temporaries(folder / R.POINTS_DIR)
    todo = [p for p in points if not _is_done(_point_dir(folder, p, sweep), p.key)]
    size = scenario.execution.batch_images
    tasks = [(p, s, e) for p in todo for s, e in _batches(p, size)]
    total = sum(p.images for p in todo)
    bar = tqdm(total=total, unit="img", desc=scenario.name, disable=not progress or not todo)
    pending: dict[int, dict[int, dict[str, Any]]] = {p.index: {} for p in todo}
    started = {p.index: time.perf_counter() for p in todo}
    by_index = {p.index: p for p in todo}

    def finished(point: Point, start: int, tables: dict[str, Any]) -> None:
        pending[point.index][start] = tables
        bar.update(tables["images"].shape[0])
        if len(pending[point.index]) == len(_batches(point, size)):
            batches = [pending[point.index][s] for s in sorted(pending[point.index])]
            R.write_run(_point_dir(folder, point, sweep), assemble(point, batches),
                        point.scenario.model_dump(mode="json"),
                        _meta(point, time.perf_counter() - started[point.index]),
                        csv=scenario.outputs.csv)
            del pending[point.index]
            if on_point is not None:
                on_point(point)

    try:
        if tasks:
            _execute(tasks, finished, by_index, scheduler=scheduler, client=client,
                     workers=workers or scenario.execution.workers)
    finally:
        bar.close()
    if sweep:
        _write_sweep(folder, scenario, points)
    return RunReport(folder, len(points), len(todo), len(points) - len(todo))


def _execute(tasks: list[tuple[Point, int, int]], finished: Callable[..., None],
             by_index: Mapping[int, Point], *, scheduler: str | None, client: Any,
             workers: int) -> None:
    if client is None and scheduler == SERIAL:
        for point, start, stop in tasks:
            finished(point, start, simulate_batch(point, start, stop))
        return
    from dask.distributed import Client, LocalCluster, as_completed

    own_cluster = own_client = None
    if client is None:
        if scheduler is None:
            # silence_logs: a nanny that waits for a worker to exit logs a warning at close;
            # the run is already complete then, and the warning only confuses the reader.
            # Each worker's numba kernels get their share of the cores, not all of them:
            # workers that each spawn a full thread pool only fight over the same cores.
            share = max(1, (os.cpu_count() or 1) // workers)
            own_cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.ERROR,
                                       env={"NUMBA_NUM_THREADS": str(share)})
            own_client = Client(own_cluster)
        else:
            own_client = Client(scheduler)
        client = own_client
    futures = {}
    try:
        for point, start, stop in tasks:
            fut = client.submit(simulate_batch, point, start, stop, pure=False,
                                key=f"accelsim-{point.key[:16]}-{start}")
            futures[fut] = (point.index, start)
        for fut in as_completed(list(futures)):
            index, start = futures[fut]
            finished(by_index[index], start, fut.result())
    finally:
        for fut in futures:
            fut.cancel()
        if own_client is not None:
            own_client.close()
        if own_cluster is not None:
            own_cluster.close()


def _write_sweep(folder: Path, scenario: Scenario, points: Iterable[Point]) -> None:
    rows = []
    for point in points:
        run_dir = _point_dir(folder, point, True)
        summary = pd.read_parquet(run_dir / "summary.parquet").iloc[0].to_dict()
        rows.append({R.POINT: point.index, R.KEY: point.key[:16], **point.params, **summary})
    table = pd.DataFrame(rows)
    R.write_sweep_table(folder, table, csv=scenario.outputs.csv)
    (folder / R.SCENARIO_FILE).write_text(_yaml(scenario.model_dump(mode="json")))
    meta = {"parameters": list(scenario.sweep.parameters) if scenario.sweep else [],
            "points": len(table), "versions": versions()}
    (folder / R.RUN_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _yaml(data: Mapping[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(dict(data), sort_keys=False)
