"""Run a scenario: check it, simulate every sweep point batch by batch, write its results.

Work is cut into tasks of (sweep point, batch of images) that :mod:`accelsim.workflow.execution`
runs in
this process, on a local Dask cluster or at a scheduler's address. Each task loads the model,
the images and the hardware itself, so only small descriptions travel. When every batch of a
point is back, :mod:`accelsim.workflow.results` writes the point's run folder atomically
(``points/<key>/``
of a sweep folder, or the folder itself for a scenario without a sweep). A point whose folder
holds its cache key (:mod:`accelsim.workflow.points`) and matches its checksums is not simulated
again,
so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from accelsim.chip import ann as A
from accelsim.model import workloads as W
from accelsim.model.modelfile import sha256_file
from accelsim.workflow import columns as C
from accelsim.workflow import execution as E
from accelsim.workflow import points as P
from accelsim.workflow import results as R
from accelsim.workflow.execution import SERIAL, SchedulerError
from accelsim.workflow.points import Point, check, resolve
from accelsim.workflow.scenario import DEFAULT_RESULTS, Scenario, SimulationSpec

__all__ = ["DATASET_INDEX", "SERIAL", "Interrupted", "Point", "RunReport", "SchedulerError",
           "check", "resolve", "run", "select_images", "simulate_batch"]

DATASET_INDEX = "dataset_index"
"""Column added to the per-image table: the image's index within its data set split."""

PROGRESS_IMAGES = 25
"""A task simulates its images this many at a time and reports progress after each group:
about one step a second on the quickstart. Smaller groups cost speed (the fast chip runs the
images of a group in parallel; 25 instead of 50 costs about a quarter more time)."""


# -- one task (runs on a worker) -----------------------------------------------------------


def select_images(point: Point, network: Any
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(normalised images, labels, indices into the split) of a point: ``data.images`` drawn
    without replacement by ``data.seed`` from the split the model was *not* trained on when
    ``split: test``; resized to the model's input and normalised with its mean and std. A
    calibrated workload's images are synthetic and have no labels (None)."""
    from accelsim.model.data import normalise

    d = point.scenario.data
    if point.scenario.workload is not None:
        return W.scenario_images(network, d.images, d.seed)
    size = int(network.architecture.input_shape[1])
    imageset = P.cached_split(d.set, d.split, d.root, size, P.split_seed(point))
    available = len(imageset)
    if d.images > available:
        raise ValueError(f"data.images = {d.images} but the {d.split} split of {d.set!r} has "
                         f"{available} images; ask for at most {available}")
    order = np.random.default_rng(d.seed).permutation(available)[: d.images]
    images = normalise(imageset.images[order], network.input_mean, network.input_std)
    return images, imageset.labels[order], order


def simulate_batch(point: Point, start: int, stop: int, topic: str | None = None
                   ) -> dict[str, pd.DataFrame | None]:
    """Simulate images ``start:stop`` of a point, a few at a time so that progress shows
    (``topic``: see :func:`accelsim.workflow.execution.report_progress`). Image numbers in the
    returned
    tables count from 0 over the whole point."""
    network = P.cached_network(str(point.model_path), sha256_file(point.model_path))
    images, labels, order = select_images(point, network)
    hardware = P.hardware_of(point.scenario)
    searched = _searched(point, network, images, hardware)
    if searched is not None:
        hardware = searched.hardware
    ann_network, ann_weights = A.network_for(point.model_path, network, hardware)
    parts = []
    for first in range(start, stop, PROGRESS_IMAGES):
        last = min(first + PROGRESS_IMAGES, stop)
        batch_labels = None if labels is None else labels[first:last]  # workloads: none
        result = _simulate(network, images[first:last], batch_labels, hardware,
                           point.scenario.simulation)
        result = A.beside(result, A.simulate_ann(
            ann_network, images[first:last], batch_labels, hardware,
            schedule=point.scenario.simulation.schedule), weights=ann_weights)
        parts.append((first, last, result))
        E.report_progress(topic, last - first)

    def table(name: str) -> pd.DataFrame:
        return pd.concat([_shift_images(getattr(r, name), a, b) for a, b, r in parts],
                         ignore_index=True)

    per_image = table("images")
    per_image.insert(1, DATASET_INDEX, order[per_image[C.IMAGE].to_numpy()])
    tiles = table("tiles") if point.scenario.simulation.per_tile else None
    return {"layers": table("layers"), "images": per_image, "mapping": parts[0][2].mapping,
            "tiles": tiles, "search": None if searched is None else _search_row(searched)}


_SEARCHES: dict[str, Any] = {}
"""The mapping search of each point this process ran (by point key): every batch of a point
simulates the same choice, and pays for the search once per process."""


def _searched(point: Point, network: Any, images: np.ndarray, hardware: Any) -> Any:
    """The point's :func:`accelsim.chip.mapping_search.search` result, or None without one."""
    from accelsim.chip.mapping_search import search

    spec = point.scenario.mapping_search
    if spec is None:
        return None
    if point.key not in _SEARCHES:
        sim = point.scenario.simulation
        _SEARCHES[point.key] = search(
            network, images[:spec.images], hardware, objective=spec.objective,
            rounds=spec.rounds, timesteps=sim.timesteps, mode=sim.mode, schedule=sim.schedule,
            arithmetic=sim.arithmetic, quantization=sim.quantization)
    return _SEARCHES[point.key]


def _search_row(found: Any) -> dict[str, Any]:
    """The summary columns of a mapping search."""
    return {C.MAPPING_POLICY: found.policy, C.MAPPING_TILES: found.tiles,
            C.SEARCH_OBJECTIVE: found.objective, C.SEARCH_DEFAULT: found.default,
            C.SEARCH_BEST: found.best, C.SEARCH_GAIN: found.gain,
            C.SEARCH_CANDIDATES: len(found.candidates)}


def _simulate(network: Any, images: np.ndarray, labels: np.ndarray, hardware: Any,
              sim: SimulationSpec) -> Any:
    from accelsim.chip.simulation import simulate

    return simulate(network, images, labels, hardware=hardware, timesteps=sim.timesteps,
                    mode=sim.mode, schedule=sim.schedule, arithmetic=sim.arithmetic,
                    quantization=sim.quantization, per_tile=sim.per_tile)


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
        summary[C.ACCURACY] = float("nan")  # a calibrated workload has no labels
    if batches[0].get("search") is not None:
        for name, value in batches[0]["search"].items():
            summary[name] = value
    return {"layers": layers, "images": images, "mapping": batches[0]["mapping"],
            "tiles": cat("tiles"), "summary": summary}


# -- a whole run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RunReport:
    """What :func:`run` did."""

    folder: Path
    points: int
    simulated: int
    cached: int


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the points finished before it are kept."""

    def __init__(self, done: int, total: int):
        self.done, self.total = done, total
        super().__init__(f"interrupted after {done} of {total} points; re-run the same command "
                         "to resume")


def _batches(point: Point, size: int) -> list[tuple[int, int]]:
    return [(s, min(s + size, point.images)) for s in range(0, point.images, size)]


def _time_unit(point: Point) -> str:
    clock = P.hardware_of(point.scenario).clock
    return f"time units of {clock.time_unit_ns:g} ns" if clock.asynchronous else "cycles"


def _meta(point: Point, wall_s: float) -> dict[str, Any]:
    return {"key": point.key, "point": point.index, "params": point.params,
            "model_source": W.SOURCE if point.scenario.workload is not None else "trained model",
            "model_path": str(point.model_path),
            "model_manifest_sha256": sha256_file(point.model_path), "wall_s": round(wall_s, 3),
            "time_unit": _time_unit(point), "versions": P.versions()}


def _say(message: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)


def run(scenario: Scenario | str | Path, *, settings: dict[str, Any] | None = None,
        out: str | Path | None = None, scheduler: str | None = None, client: Any = None,
        workers: int | None = None, progress: bool = True,
        on_point: Callable[[Point], None] | None = None) -> RunReport:
    """Simulate every point of a scenario and write its result folder.

    Everything ``accelsim validate`` checks is checked first, and the result folder and the
    scheduler are checked before anything is written. ``scheduler``: None starts a local Dask
    cluster with ``execution.workers`` workers (or ``workers``), ``"serial"`` runs in this
    process, anything else is a scheduler address. A ready ``client``
    (``dask.distributed.Client``) takes precedence. ``on_point`` is called after each point is
    written. Ctrl-C raises :class:`Interrupted` (a ``KeyboardInterrupt``) after the points
    already finished are saved.
    """
    scenario, path = P.load(scenario, settings)
    points = P.check_loaded(scenario, path)
    sweep = scenario.sweep is not None
    folder = Path(out or scenario.outputs.dir or DEFAULT_RESULTS / scenario.name).resolve()
    R.check_folder(folder, R.SWEEP if sweep else R.RUN)
    todo = []
    for point in points:
        done, problem = R.cached(R.point_folder(folder, point.key, sweep), point.key)
        if problem:
            _say(f"point {point.index}: {problem}")
        if not done:
            todo.append(point)
    size = scenario.execution.batch_images
    tasks = [(p, s, e) for p in todo for s, e in _batches(p, size)]
    ex = scenario.execution
    written = len(points) - len(todo)
    pending: dict[int, dict[int, dict[str, Any]]] = {p.index: {} for p in todo}
    started = {p.index: time.perf_counter() for p in todo}

    def finished(task: tuple[Any, ...], tables: dict[str, Any]) -> None:
        nonlocal written
        point, start, _ = task
        pending[point.index][start] = tables
        if len(pending[point.index]) == len(_batches(point, size)):
            batches = [pending[point.index][s] for s in sorted(pending[point.index])]
            R.write_run(R.point_folder(folder, point.key, sweep), assemble(point, batches),
                        point.scenario.model_dump(mode="json"),
                        _meta(point, time.perf_counter() - started[point.index]),
                        csv=scenario.outputs.csv)
            del pending[point.index]
            written += 1
            if on_point is not None:
                on_point(point)

    bar = None
    try:
        with E.connect(scheduler if tasks else SERIAL, client, workers=workers or ex.workers,
                       connect_timeout=ex.connect_timeout_s,
                       no_workers_timeout=ex.no_workers_timeout_s) as dask_client:
            R.create(folder)
            R.clean_temporaries(folder)
            if sweep:
                R.clean_temporaries(folder / R.POINTS_DIR)
                R.start_sweep(folder, {"parameters": list(scenario.sweep.parameters),
                                       "versions": P.versions()})
            elif todo:
                R.begin(folder)
            bar = E.Progress(sum(p.images for p in todo), scenario.name, progress)
            E.execute(dask_client, simulate_batch, tasks, finished, bar,
                      no_workers_timeout=ex.no_workers_timeout_s,
                      address=scheduler or "the local cluster")
    except KeyboardInterrupt:
        raise Interrupted(written, len(points)) from None
    finally:
        if bar is not None:
            bar.close()
    if sweep:
        R.write_sweep(folder, [(p.index, p.key, p.params) for p in points],
                      scenario.model_dump(mode="json"),
                      {"parameters": list(scenario.sweep.parameters), "versions": P.versions()},
                      csv=scenario.outputs.csv)
    return RunReport(folder, len(points), len(todo), len(points) - len(todo))
