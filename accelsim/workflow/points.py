"""Sweep points: every simulation a scenario asks for, with its defaults resolved from the model
and the hardware preset, checked before any work starts, and keyed for the cache.

The cache key of a point is the sha256 of its resolved scenario (without names, outputs and
execution settings, which do not change results), the model manifest (which holds the sha256
of the weights), the accelsim version and a digest of accelsim's own source (a checkout whose
code changed computes anew instead of serving results of the code before).
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from accelsim.model import workloads as W
from accelsim.model.modelfile import sha256_file
from accelsim.workflow.discovery import available_models, find_model, model_candidates
from accelsim.workflow.problems import Locator
from accelsim.workflow.scenario import Problem, Scenario, ScenarioError, apply_settings, flatten
from accelsim.workflow.scenario import load as load_scenario

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


@functools.cache
def source_digest() -> str:
    """sha256 of the package's Python source: the version number stays the same while the
    code is edited, and a result cached by other code must not be served as this code's."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(scenario: Scenario, model_manifest_sha: str) -> str:
    """sha256 of what determines a point's results."""
    content = scenario.model_dump(mode="json", exclude=set(_KEY_EXCLUDES))
    content.pop("model")
    payload = {"scenario": content, "model": model_manifest_sha,
               "accelsim": versions()["accelsim"], "source": source_digest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# -- what points are made of (cached per process: workers reuse them across tasks) ----------


@functools.lru_cache(maxsize=4)
def cached_network(path: str, sha: str) -> Any:
    """The model at ``path``; ``sha`` (of the file) keys the cache so an edited file reloads."""
    from accelsim.model.modelfile import load_model

    return load_model(path)


@functools.lru_cache(maxsize=4)
def cached_split(name: str, split: str, root: str | None, size: int | None, seed: int) -> Any:
    from accelsim.model.data import load_images

    return load_images(name, split, root=root, size=size, seed=seed)


def split_seed(point: Point) -> int:
    from accelsim.model.modelfile import read_manifest

    return read_manifest(point.model_path).dataset.split_seed


def hardware_of(scenario: Scenario) -> Any:
    from accelsim.chip.hardware import load_hardware

    return load_hardware(scenario.hardware.preset, flatten(scenario.hardware.overrides) or None)


# -- resolving and checking ----------------------------------------------------------------


def load(scenario: Scenario | str | Path, settings: Mapping[str, Any] | None = None
         ) -> tuple[Scenario, Path | None]:
    """A scenario object (``settings`` applied) and the file it came from (None for an object)."""
    if isinstance(scenario, Scenario):
        if settings:
            scenario = Scenario.model_validate(
                apply_settings(scenario.model_dump(mode="json"), settings))
        return scenario, None
    return load_scenario(scenario, settings), Path(scenario)


def resolve(scenario: Scenario, scenario_path: str | Path | None = None) -> list[Point]:
    """Every point of the scenario with defaults filled from the model and the hardware preset,
    checked against them. Raises :class:`ScenarioError` naming each problem."""
    from accelsim.model import data as D
    from accelsim.model.modelfile import ModelFileError

    path = Path(scenario_path) if scenario_path is not None else None
    scenario_dir = path.resolve().parent if path is not None else None
    problems: list[Problem] = []
    points: list[Point] = []
    for index, (params, sc) in enumerate(scenario.points()):
        where = Locator(path, params)
        try:
            model_path = (W.model_file(sc.workload) if sc.workload is not None
                          else find_model(sc.model, scenario_dir))
        except W.WorkloadError as exc:
            problems.append(where("workload", str(exc)))
            continue
        if model_path is None:
            tried = ", ".join(str(p) for p in model_candidates(sc.model, scenario_dir))
            problems.append(where("model", f"no model file {sc.model!r} (looked for {tried}); "
                                  f"models in trained_models/: {available_models(scenario_dir)}"))
            continue
        try:
            network = cached_network(str(model_path), sha256_file(model_path))
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
            hardware = hardware_of(resolved)
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
        if resolved.simulation.arithmetic == "fixed":
            from accelsim.spiking.quantize import Quantization, check_tile

            try:
                check_tile(resolved.simulation.quantization or Quantization(), hardware.tile)
            except ValueError as exc:
                problems.append(where("simulation.quantization", str(exc)))
                continue
        from accelsim.chip.ann import fingerprint

        key = cache_key(resolved, sha256_file(model_path) + fingerprint(model_path))
        points.append(Point(index, params, resolved, model_path, key))
    if problems:
        raise ScenarioError(list(dict.fromkeys(problems)))  # one line per distinct problem
    return points


def _check_mapping(network: Any, hardware: Any) -> str | None:
    """Why the network cannot be mapped onto the hardware, or None if it can."""
    from accelsim.chip.mapping import MappingError, map_network

    try:
        map_network(network, hardware)
    except MappingError as exc:
        return f"the network cannot be mapped onto this hardware: {exc}"
    return None


def check(scenario: Scenario | str | Path, settings: Mapping[str, Any] | None = None
          ) -> list[Point]:
    """Validate a scenario (file or object) without simulating: schema, model file, data,
    hardware, mapping and the number of images available. Raises :class:`ScenarioError`.
    ``accelsim run`` calls this before it submits any task."""
    return check_loaded(*load(scenario, settings))


def check_loaded(scenario: Scenario, path: Path | None) -> list[Point]:
    """:func:`check` of a loaded scenario (``path``: its file, for locating problems)."""
    points = resolve(scenario, path)
    problems = []
    where = Locator(path)
    for point in (p for p in points if p.scenario.workload is None):  # workloads: no data set
        d = point.scenario.data
        try:
            available = len(cached_split(d.set, d.split, d.root, None, split_seed(point)))
        except ValueError as exc:
            problems.append(where("data", str(exc)))
            continue
        if d.images > available:
            problems.append(where("data.images", f"{d.images} images asked, the {d.split} split "
                                  f"of {d.set!r} has {available}; ask for at most {available}"))
    if problems:
        raise ScenarioError(list(dict.fromkeys(problems)))
    return points
