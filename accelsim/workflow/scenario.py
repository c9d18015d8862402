"""Scenario files: what to simulate (model, data, hardware, simulation, sweep, outputs).

A scenario is a YAML file validated into frozen pydantic models that refuse unknown keys. Errors
name the file, the line, the field and what would be valid, because a researcher edits these
files by hand and a bare pydantic traceback does not say where the mistake is.

Dotted paths address fields everywhere: ``--set simulation.timesteps=3`` on the command line, and
the keys of ``sweep.grid`` / ``sweep.zip`` (``hardware.overrides.tile.accumulate_units``).
Hardware overrides are themselves dotted paths into the preset, so a path that starts with
``hardware.overrides.`` continues into the preset's fields.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from accelsim.chip.mapping_search import SearchSpec
from accelsim.model.workloads import SYNTHETIC, WorkloadSpec
from accelsim.spiking.quantize import Quantization
from accelsim.workflow import yamlfile

OVERRIDES = ("hardware", "overrides")
"""Path of the hardware overrides: keys below it are dotted paths into the hardware preset."""

DEFAULT_RESULTS = Path("results")
"""Folder that receives ``<scenario name>/`` when ``outputs.dir`` is not given."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataSpec(_Frozen):
    """Which images to run. Images are resized to the model's input size and normalised with
    the model's mean and std."""

    set: str | None = Field(None, description="data set name; default: the model's data set")
    split: Literal["train", "test"] = Field("test", description="which split to draw from")
    images: int = Field(100, ge=1, description="number of images to simulate")
    seed: int = Field(0, ge=0, description="seed of the image draw")
    root: str | None = Field(None, description="folder of user-supplied data sets (CIFAR, MNIST)")


class HardwareSpec(_Frozen):
    """A hardware preset and field overrides (dotted paths into the preset)."""

    preset: str = Field("45nm-generic", description="preset name or path to a preset YAML")
    overrides: dict[str, Any] = Field(default_factory=dict,
                                      description="preset field -> value, dotted paths")

    @field_validator("overrides", mode="before")
    @classmethod
    def _flatten(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return flatten(value)
        return value


class SimulationSpec(_Frozen):
    """How to simulate."""

    timesteps: int | None = Field(None, ge=1, description="T; default: the model's T")
    mode: Literal["fast", "reference"] = Field("fast", description="simulation backend")
    schedule: Literal["barrier", "pipelined"] | None = Field(
        None, description="timestep schedule; default: the preset's")
    arithmetic: Literal["float", "fixed"] = Field("float", description="number format")
    quantization: Quantization | None = Field(None, description="widths for fixed arithmetic")
    per_tile: bool = Field(False, description="also record the per-tile table")

    @model_validator(mode="after")
    def _quantization_needs_fixed(self) -> SimulationSpec:
        if self.quantization is not None and self.arithmetic != "fixed":
            raise ValueError("quantization is given but arithmetic is 'float'; "
                             "set simulation.arithmetic: fixed, or remove quantization")
        return self


class SweepSpec(_Frozen):
    """Points of a sweep: the cartesian product of ``grid`` lists, times the ``zip`` lists
    advanced together (all ``zip`` lists have the same length)."""

    grid: dict[str, list[Any]] = Field(default_factory=dict,
                                       description="dotted path -> values (cartesian product)")
    zip: dict[str, list[Any]] = Field(default_factory=dict,
                                      description="dotted path -> values (advanced together)")

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        for group in ("grid", "zip"):
            for path, values in getattr(self, group).items():
                if not values:
                    raise ValueError(f"sweep.{group}.{path} is an empty list; give at least "
                                     "one value")
                head = path.split(".")[0]
                if head in ("sweep", "outputs", "execution", "name", "description"):
                    raise ValueError(f"sweep.{group}.{path}: '{head}' cannot be swept; sweep "
                                     "model, workload.*, data.*, hardware.*, or simulation.*")
                repeated = [v for i, v in enumerate(values) if v in values[:i]]
                if group == "grid" and repeated:
                    raise ValueError(f"sweep.grid.{path} lists {repeated[0]!r} more than once; "
                                     "give each value once")
        both = sorted(set(self.grid) & set(self.zip))
        if both:
            raise ValueError(f"{both} appear in both sweep.grid and sweep.zip; keep one")
        lengths = {path: len(v) for path, v in self.zip.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"sweep.zip lists must have the same length, got {lengths}")
        rows = list(zip(*self.zip.values(), strict=True))
        repeated_rows = [r for i, r in enumerate(rows) if r in rows[:i]]
        if repeated_rows:
            point = ", ".join(f"{p}={v!r}" for p, v in zip(self.zip, repeated_rows[0],
                                                           strict=True))
            raise ValueError(f"sweep.zip gives the point {point} more than once; give each "
                             "point once")
        return self

    @property
    def parameters(self) -> tuple[str, ...]:
        return (*self.grid, *self.zip)

    def points(self) -> Iterator[dict[str, Any]]:
        """Every point as ``{path: value}``, grid-major, in file order."""
        zipped = list(zip(*self.zip.values(), strict=True)) if self.zip else [()]
        for values in itertools.product(*self.grid.values()):
            for z in zipped:
                yield dict(zip((*self.grid, *self.zip), (*values, *z), strict=True))


class OutputSpec(_Frozen):
    """Where and what to write."""

    dir: str | None = Field(None, description="result folder; default results/<name>")
    csv: bool = Field(True, description="also write CSV copies of the tables")
    plots: bool = Field(True, description="write the figures after the run")


class ExecutionSpec(_Frozen):
    """How to spread the work; never changes the results (not part of the cache key)."""

    batch_images: int = Field(50, ge=1, description="images per task")
    workers: int = Field(1, ge=1, description="workers of the local Dask cluster (one already "
                         "runs the kernels on every core)")
    connect_timeout_s: float = Field(10.0, gt=0, description="seconds to wait for a Dask "
                                     "scheduler (--scheduler ADDRESS) to answer")
    no_workers_timeout_s: float = Field(60.0, gt=0, description="seconds a Dask scheduler may "
                                        "have no workers before the run stops")


class Scenario(_Frozen):
    """One scenario file."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                      description="scenario name (letters, digits, _ . -)")
    description: str = ""
    model: str | None = Field(description="model name in trained_models/ or path to its "
                              ".json; or give workload instead")
    workload: WorkloadSpec | None = Field(None, description="a calibrated workload instead of "
                                          "a trained model (accelsim.model.workloads)")
    data: DataSpec = Field(default_factory=DataSpec)
    hardware: HardwareSpec = Field(default_factory=HardwareSpec)
    simulation: SimulationSpec = Field(default_factory=SimulationSpec)
    mapping_search: SearchSpec | None = Field(
        None, description="search the mapping (policy, tiles per layer) on a sample of the "
        "point's images first, and simulate with the choice (accelsim.chip.mapping_search)")
    sweep: SweepSpec | None = None
    outputs: OutputSpec = Field(default_factory=OutputSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)

    @model_validator(mode="before")
    @classmethod
    def _workload_stands_for_model(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("workload") is not None and "model" not in data:
            return {**data, "model": None}
        return data

    @model_validator(mode="after")
    def _one_model_source(self) -> Scenario:
        if (self.model is None) == (self.workload is None):
            raise ValueError("give exactly one of 'model' (a trained model) and 'workload' (a "
                             "calibrated workload, e.g. workload: {architecture: vgg16, "
                             "spike_rate: 0.4})")
        if self.workload is not None and (self.data.set not in (None, SYNTHETIC) or
                                          self.data.root):
            raise ValueError("a workload runs on synthetic standard-normal images: remove "
                             "data.set and data.root (data.images and data.seed still apply)")
        return self

    def point(self, params: Mapping[str, Any]) -> Scenario:
        """This scenario without its sweep, with ``params`` (dotted path -> value) applied."""
        raw = self.model_dump(mode="json")
        raw["sweep"] = None
        raw = apply_settings(raw, params)
        return Scenario.model_validate(raw)

    def points(self) -> list[tuple[dict[str, Any], Scenario]]:
        """(parameters, point scenario) for every point; one empty-parameter point if no sweep."""
        if self.sweep is None:
            return [({}, self.point({}))]
        return [(p, self.point(p)) for p in self.sweep.points()]


# -- errors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario, located in its file."""

    file: str
    line: int | None  # 1-based
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field or '<top level>'}: {self.message}"


class ScenarioError(ValueError):
    """A scenario that cannot run; ``problems`` says where and why."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# -- dotted paths --------------------------------------------------------------------------


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"tile": {"queue_depth": 4}}`` -> ``{"tile.queue_depth": 4}`` (values kept as is)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _nest_overrides(raw: dict[str, Any]) -> None:
    """Turn dotted override keys into nested mappings so that paths can be set into them."""
    hw = raw.get("hardware")
    if isinstance(hw, dict) and isinstance(hw.get("overrides"), Mapping):
        nested: dict[str, Any] = {}
        for path, value in flatten(hw["overrides"]).items():
            _set_path(nested, path.split("."), value, path)
        hw["overrides"] = nested


def _set_path(tree: dict[str, Any], keys: list[str], value: Any, full: str) -> None:
    node = tree
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise KeyError(f"{full}: '{'.'.join(keys[:i + 1])}' is a value, not a section")
        node = child
    node[keys[-1]] = value


def apply_settings(raw: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw scenario mapping with every ``dotted.path: value`` set."""
    out = copy.deepcopy(dict(raw))
    _nest_overrides(out)
    for path, value in settings.items():
        keys = path.split(".")
        if not all(keys):
            raise KeyError(f"{path!r} is not a dotted path like 'simulation.timesteps'")
        if keys[0] == "sweep" and len(keys) > 3:  # sweep keys are dotted paths themselves
            keys = [*keys[:2], ".".join(keys[2:])]
        _set_path(out, keys, value, path)
    return out


def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=3", "c=fast"]`` -> ``{"a.b": 3, "c": "fast"}``, values read as YAML scalars."""
    settings: dict[str, Any] = {}
    for item in items:
        path, sep, text = item.partition("=")
        if not sep or not path.strip():
            raise ValueError(f"--set {item!r}: write it as dotted.path=value, "
                             "e.g. --set simulation.timesteps=3")
        try:
            value = yamlfile.load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {item!r}: the value {text.strip()!r} is not valid YAML "
                             f"({yamlfile.error_message(exc)}); quote it, e.g. "
                             f"--set '{path.strip()}=\"...\"'") from None
        settings[path.strip()] = value
    return settings


# -- loading -------------------------------------------------------------------------------


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """1-based line of the YAML node at ``loc`` (or of its deepest existing parent)."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if k.value == str(key):
                    line = k.start_mark.line + 1
                    node = v
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and \
                key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _model_at(loc: Sequence[Any]) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc[:-1]``."""
    model: type[BaseModel] | None = Scenario
    for key in loc[:-1]:
        if model is None or not isinstance(key, str) or key not in model.model_fields:
            return None
        annotation = model.model_fields[key].annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        model = next((c for c in candidates
                      if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def _explain(error: Mapping[str, Any]) -> str:
    loc = error["loc"]
    kind = error["type"]
    if kind == "extra_forbidden":
        owner = _model_at(loc)
        valid = sorted(owner.model_fields) if owner is not None else []
        return f"unknown field {loc[-1]!r}; valid fields here: {', '.join(valid)}"
    if kind == "missing":
        return "is required"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return message


def _problems(error: ValidationError, file: str, root: yaml.Node | None,
              settings: Mapping[str, Any]) -> list[Problem]:
    problems = []
    for e in error.errors():
        loc = tuple(k for k in e["loc"] if not (isinstance(k, str) and k.startswith("function")))
        field = ".".join(str(k) for k in loc)
        from_set = next((p for p in settings if field == p or field.startswith(p + ".")), None)
        if from_set is not None:
            problems.append(Problem(file, None, field,
                                    f"{_explain(e)} (from --set {from_set}=...)"))
        else:
            problems.append(Problem(file, _line_of(root, loc), field, _explain(e)))
    return problems


def parse(text: str, file: str = "<string>",
          settings: Mapping[str, Any] | None = None) -> Scenario:
    """Validate scenario YAML ``text``; ``settings`` are dotted-path overrides (``--set``)."""
    settings = dict(settings or {})
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yamlfile.load(text)
    except yamlfile.DuplicateKeyError as exc:
        line = yamlfile.error_line(exc)
        raise ScenarioError([Problem(file, line, _field_at(root, line),
                                     yamlfile.error_message(exc))]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(file, yamlfile.error_line(exc), "", "not valid YAML: "
                                     f"{yamlfile.error_message(exc)}")]) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ScenarioError([Problem(file, 1, "", "a scenario is a mapping of fields "
                                     "(name, model, data, hardware, ...), "
                                     f"got a {type(raw).__name__}")])
    try:
        raw = apply_settings(raw, settings)
    except KeyError as exc:
        raise ScenarioError([Problem(file, None, "", f"--set {exc.args[0]}")]) from exc
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_problems(exc, file, root, settings)) from None
    if scenario.sweep is not None:
        _check_sweep_points(scenario, file, root)
    return scenario


def _field_at(node: yaml.Node | None, line: int | None, prefix: str = "") -> str:
    """Dotted path of the mapping key written at ``line`` (1-based), or ``""``."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            path = f"{prefix}{k.value}"
            if k.start_mark.line + 1 == line:
                return path
            found = _field_at(v, line, path + ".")
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            found = _field_at(v, line, f"{prefix.rstrip('.')}[{i}].")
            if found:
                return found
    return ""


def _check_sweep_points(scenario: Scenario, file: str, root: yaml.Node | None) -> None:
    """Every swept value must give a valid scenario; name the sweep entry that does not."""
    assert scenario.sweep is not None
    problems = []
    for group in ("grid", "zip"):
        for path, values in getattr(scenario.sweep, group).items():
            for i, value in enumerate(values):
                try:
                    scenario.point({path: value})
                except (ValidationError, KeyError) as exc:
                    msg = (exc.errors()[0]["msg"] if isinstance(exc, ValidationError)
                           else str(exc.args[0]))
                    if isinstance(exc, ValidationError) and \
                            exc.errors()[0]["type"] == "extra_forbidden":
                        msg = f"{path!r} is not a scenario field ({_explain(exc.errors()[0])})"
                    problems.append(Problem(file, _line_of(root, ("sweep", group, path, i)),
                                            f"sweep.{group}.{path}[{i}]",
                                            f"{msg} (got {value!r})"))
    if problems:
        raise ScenarioError(problems)


def load(path: str | Path, settings: Mapping[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario file (schema only; :func:`accelsim.workflow.runner.check` also
    checks the model, data and hardware)."""
    path = Path(path)
    if path.is_dir():
        raise ScenarioError([Problem(str(path), None, "", "is a folder; pass a scenario YAML "
                                     "file")])
    if not path.is_file():
        raise ScenarioError([Problem(str(path), None, "", "no such scenario file")])
    try:
        text = yamlfile.read_text(path)
    except ValueError as exc:
        raise ScenarioError([Problem(str(path), None, "", str(exc).removeprefix(f"{path}: "))]
                            ) from None
    return parse(text, str(path), settings)


def field_line(path: str | Path, loc: Sequence[Any]) -> int | None:
    """1-based line of field ``loc`` in scenario file ``path`` (None if unknown)."""
    try:
        root = yaml.compose(Path(path).read_text(), Loader=yaml.SafeLoader)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    return _line_of(root, loc)
