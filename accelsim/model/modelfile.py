"""The trained-model file format: ``<stem>.safetensors`` (weights) + ``<stem>.json`` (manifest).

The weights are float32 tensors in safetensors format, named as in the architecture. The
manifest says everything else needed to simulate the model and to trust the numbers: the
architecture with each layer's trained leak and threshold, the timesteps, the data set and its
split seed, the input normalisation, accuracies and spike rates measured at training time, the
training settings and software versions, and the sha256 of the weights file.

Loading never unpickles and never imports torch: the manifest is JSON validated by pydantic and
the weights go through ``safetensors.numpy``. Every inconsistency is refused with a
:class:`ModelFileError` that names the file and the problem.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from accelsim.model.data import NATIVE_SHAPE
from accelsim.model.network import Architecture, Network, Shape

FORMAT_VERSION = 1
MANIFEST_SUFFIX = ".json"
WEIGHTS_SUFFIX = ".safetensors"


class ModelFileError(ValueError):
    """A model file cannot be written or read; the message names the file and the problem."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatasetInfo(_Frozen):
    """Which data the model was trained on, so the same test split can be rebuilt."""

    name: str | None = Field(description="data set name (see accelsim.model.data.DATASETS)")
    size: int | None = Field(None, ge=1, description="H = W after resize; None if not resized")
    split_seed: int = Field(0, description="seed of the train/test split of embedded sets")


class Normalisation(_Frozen):
    """Per-channel input normalisation applied before the first layer."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @model_validator(mode="after")
    def _check(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values, std {len(self.std)}")
        if not all(math.isfinite(m) for m in self.mean):
            raise ValueError(f"mean {self.mean} must be finite")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError(f"std {self.std} must be finite and > 0")
        return self


class Accuracies(_Frozen):
    """Test accuracies in percent after each training stage (None: stage not run)."""

    ann: float | None = Field(None, ge=0, le=100)
    converted_snn: float | None = Field(None, ge=0, le=100)
    diet_snn: float | None = Field(None, ge=0, le=100)


class SpikeRates(_Frozen):
    """Spikes over all T per neuron (may exceed 1), averaged over the test set."""

    average: float = Field(ge=0)
    per_layer: dict[str, float]

    @field_validator("per_layer")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: r for k, r in v.items() if not (math.isfinite(r) and r >= 0)}
        if bad:
            raise ValueError(f"spike rates must be finite and >= 0, got {bad}")
        return v


class Software(_Frozen):
    """Versions the model was written with."""

    python: str
    numpy: str
    torch: str | None = None
    accelsim: str


class Manifest(_Frozen):
    """The ``<stem>.json`` half of a model file."""

    format_version: Literal[1] = FORMAT_VERSION
    name: str
    architecture: Architecture
    timesteps: int = Field(ge=1)
    dataset: DatasetInfo
    normalisation: Normalisation
    input_shape: Shape
    accuracies: Accuracies = Field(default_factory=Accuracies)
    spike_rates: SpikeRates | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    software: Software
    weights: dict[str, Shape]
    weights_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    # Each check runs as a validator of the field it judges, so errors name that field.
    # ``info.data`` holds the fields declared earlier that validated; a broken architecture is
    # reported on its own.

    @field_validator("architecture")
    @classmethod
    def _trained_values(cls, arch: Architecture) -> Architecture:
        for layer in arch.layers:
            if layer.kind != "spiking":
                continue
            if not (math.isfinite(layer.leak) and 0.0 <= layer.leak <= 1.0):
                raise ValueError(f"layer {layer.name!r}: leak {layer.leak} must be in [0, 1] "
                                 "(training clamps it to <= 1)")
            if not (math.isfinite(layer.threshold) and layer.threshold > 0):
                raise ValueError(f"layer {layer.name!r}: threshold {layer.threshold} must be "
                                 "finite and > 0")
        return arch

    @field_validator("normalisation")
    @classmethod
    def _one_value_per_channel(cls, norm: Normalisation, info: ValidationInfo) -> Normalisation:
        arch = info.data.get("architecture")
        if arch is not None:
            channels = arch.input_shape[0] if len(arch.input_shape) == 3 else 1
            if len(norm.mean) != channels:
                raise ValueError(f"{len(norm.mean)} value(s) per statistic, the input has "
                                 f"{channels} channel(s)")
        return norm

    @field_validator("input_shape")
    @classmethod
    def _same_input(cls, shape: Shape, info: ValidationInfo) -> Shape:
        arch = info.data.get("architecture")
        if arch is not None and tuple(shape) != tuple(arch.input_shape):
            raise ValueError(f"input_shape {tuple(shape)} differs from the architecture's "
                             f"{arch.input_shape}")
        return shape

    @field_validator("spike_rates")
    @classmethod
    def _known_layers(cls, rates: SpikeRates | None, info: ValidationInfo) -> SpikeRates | None:
        arch = info.data.get("architecture")
        if rates is not None and arch is not None:
            unknown = sorted(set(rates.per_layer) - {layer.name for layer in arch.layers})
            if unknown:
                raise ValueError(f"per_layer names unknown layers {unknown}")
        return rates

    @field_validator("weights")
    @classmethod
    def _architecture_shapes(cls, weights: dict[str, Shape],
                             info: ValidationInfo) -> dict[str, Shape]:
        arch = info.data.get("architecture")
        if arch is None:
            return weights
        expected = arch.weight_shapes()
        listed = {k: tuple(v) for k, v in weights.items()}
        if listed != expected:
            missing = sorted(set(expected) - set(listed))
            extra = sorted(set(listed) - set(expected))
            wrong = {k: (listed[k], expected[k]) for k in set(listed) & set(expected)
                     if listed[k] != expected[k]}
            raise ValueError(f"weights do not match the architecture: missing {missing}, "
                             f"unexpected {extra}, shape (listed, needed) {wrong}")
        return weights


# -- paths ---------------------------------------------------------------------------------------

def model_paths(path: str | Path) -> tuple[Path, Path]:
    """(manifest, weights) paths for a stem, a ``.json`` or a ``.safetensors`` path."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder; pass a model file (<stem>.json or "
                             "<stem>.safetensors) or its stem")
    if path.suffix in (MANIFEST_SUFFIX, WEIGHTS_SUFFIX):
        path = path.with_suffix("")
    return (path.with_name(path.name + MANIFEST_SUFFIX),
            path.with_name(path.name + WEIGHTS_SUFFIX))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- writing -------------------------------------------------------------------------------------


def _finite_float32(arr: np.ndarray, what: str, fix: str) -> np.ndarray:
    """``arr`` as contiguous float32, refused if any value is NaN or infinite."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ModelFileError(f"{what} holds {bad} NaN/inf value(s); {fix}")
    return arr

def save_model(stem: str | Path, network: Network, *, accuracies: dict[str, float] | None = None,
               spike_rates: dict | None = None, training: dict | None = None,
               dataset_split_seed: int = 0) -> Path:
    """Write ``<stem>.safetensors`` and ``<stem>.json``; return the manifest path.

    Both files are written to temporary names and renamed into place, so an interrupted save
    never leaves a manifest that describes other weights.
    """
    from safetensors.numpy import save_file

    json_path, st_path = model_paths(stem)
    tensors = {}
    for name, w in network.weights.items():
        arr = np.asarray(w)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ModelFileError(f"{st_path}: weight {name!r} has dtype {arr.dtype}; "
                                 "weights must be real numbers")
        tensors[name] = _finite_float32(arr, f"{st_path}: weight {name!r}",
                                        "training diverged, fix it before saving")
    fields = _manifest_fields(network, accuracies, spike_rates, training, dataset_split_seed,
                              tensors)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    st_tmp = st_path.with_name(st_path.name + ".tmp")
    json_tmp = json_path.with_name(json_path.name + ".tmp")
    try:
        # Validate everything except the hash before writing a byte.
        Manifest.model_validate({**fields, "weights_sha256": "0" * 64})
        save_file(tensors, str(st_tmp), metadata={"format": "accelsim", "name": network.name})
        manifest = Manifest.model_validate({**fields, "weights_sha256": sha256_file(st_tmp)})
        text = manifest.model_dump_json(indent=2)
        json_tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(st_tmp, st_path)
        os.replace(json_tmp, json_path)
    except ValidationError as e:
        raise ModelFileError(f"{json_path}: cannot write the manifest: "
                             f"{_describe(e)}") from e
    except ValueError as e:  # pydantic serialisation of a value JSON cannot hold
        raise ModelFileError(f"{json_path}: cannot write the manifest: {e}; the 'training' "
                             "dict may hold only JSON values (str, numbers, lists, dicts)") from e
    finally:
        for tmp in (st_tmp, json_tmp):
            tmp.unlink(missing_ok=True)
    return json_path


def _manifest_fields(network: Network, accuracies, spike_rates, training, split_seed,
                     tensors: dict[str, np.ndarray]) -> dict[str, Any]:
    arch = network.architecture
    return {
        "format_version": FORMAT_VERSION,
        "name": network.name,
        "architecture": arch,
        "timesteps": network.timesteps,
        "dataset": {"name": network.dataset, "size": _resized_to(network.dataset, arch),
                    "split_seed": split_seed},
        "normalisation": {"mean": network.input_mean, "std": network.input_std},
        "input_shape": arch.input_shape,
        "accuracies": accuracies or {},
        "spike_rates": spike_rates,
        "training": _plain(training or {}),
        "software": _software(),
        "weights": {name: tuple(a.shape) for name, a in tensors.items()},
    }


def _resized_to(dataset: str | None, arch: Architecture) -> int | None:
    """H = W of the network input if it differs from the data set's native size, else None."""
    shape = arch.input_shape
    if dataset not in NATIVE_SHAPE or len(shape) != 3 or shape[1] != shape[2]:
        return None
    return None if shape[1] == NATIVE_SHAPE[dataset][1] else int(shape[1])


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in the training record become plain JSON values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def _software() -> dict[str, str | None]:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    return {"python": platform.python_version(), "numpy": np.__version__,
            "torch": version("torch"), "accelsim": version("accelsim") or "unknown"}


# -- reading -------------------------------------------------------------------------------------

def read_manifest(path: str | Path) -> Manifest:
    """Read and validate ``<stem>.json`` (the weights file is not touched)."""
    json_path, _ = model_paths(path)
    if not json_path.is_file():
        raise ModelFileError(f"{json_path}: manifest not found; a model is <stem>.json + "
                             "<stem>.safetensors as written by save_model (pass the stem or "
                             "either file)")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{json_path}: not a text file ({e}); is it the manifest?") from e
    except json.JSONDecodeError as e:
        raise ModelFileError(f"{json_path}: invalid JSON at line {e.lineno} column {e.colno}: "
                             f"{e.msg}") from e
    if not isinstance(data, dict):
        raise ModelFileError(f"{json_path}: the manifest must be a JSON object, got "
                             f"{type(data).__name__}")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelFileError(f"{json_path}: format_version {version!r} is not supported; this "
                             f"accelsim reads format_version {FORMAT_VERSION}")
    try:
        return Manifest.model_validate(data)
    except ValidationError as e:
        raise ModelFileError(f"{json_path}: invalid manifest: {_describe(e)}") from e


def load_model(path: str | Path) -> Network:
    """Read a model file (stem, ``.json`` or ``.safetensors``) into a checked :class:`Network`."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    json_path, st_path = model_paths(path)
    manifest = read_manifest(json_path)
    if not st_path.is_file():
        raise ModelFileError(f"{st_path}: weights file not found (the manifest {json_path.name} "
                             "is there); copy both files of the model together")
    try:
        tensors = load_file(str(st_path))
    except (SafetensorError, OSError, ValueError, TypeError) as e:
        raise ModelFileError(f"{st_path}: not a valid safetensors file, truncated or corrupt "
                             f"({type(e).__name__}: {e}); re-save or re-copy the model") from e
    actual = sha256_file(st_path)
    if actual != manifest.weights_sha256:
        raise ModelFileError(f"{st_path}: weights file does not match the manifest (sha256 "
                             f"{actual}, {json_path.name} says {manifest.weights_sha256}); the "
                             "two files come from different saves: re-save the model")
    expected = {name: tuple(shape) for name, shape in manifest.weights.items()}
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise ModelFileError(f"{st_path}: tensors missing {missing}, unexpected {extra} "
                             f"compared with {json_path.name}")
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected.items():
        arr = tensors[name]
        if not np.issubdtype(arr.dtype, np.floating):
            raise ModelFileError(f"{st_path}: tensor {name!r} has dtype {arr.dtype}; weights "
                                 "must be floating point (float32)")
        if tuple(arr.shape) != shape:
            raise ModelFileError(f"{st_path}: tensor {name!r} has shape {tuple(arr.shape)}, "
                                 f"{json_path.name} and the architecture say {shape}")
        weights[name] = _finite_float32(arr, f"{st_path}: tensor {name!r}",
                                        "the model is unusable: retrain or re-save it")
    try:
        return Network(name=manifest.name, dataset=manifest.dataset.name,
                       architecture=manifest.architecture, weights=weights,
                       timesteps=manifest.timesteps, input_mean=manifest.normalisation.mean,
                       input_std=manifest.normalisation.std)
    except ValidationError as e:
        raise ModelFileError(f"{json_path}: does not describe a valid network: "
                             f"{_describe(e)}") from e


def _describe(error: ValidationError) -> str:
    """One line per problem, each naming the field path, the message and the value."""
    parts = []
    for err in error.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "value_error":  # our own checks already quote the values
            parts.append(f"field {loc!r}: {msg}" if loc else msg)
            continue
        value = repr(err.get("input"))
        if len(value) > 80:
            value = value[:77] + "..."
        parts.append(f"field {loc!r}: {msg} (got {value})")
    return "; ".join(parts)
