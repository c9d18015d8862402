"""Calibrated workloads: the paper's networks without a data set or a training run.

A workload is an architecture-true network (:mod:`accelsim.model.architectures`) with seeded weights
and with each spiking layer's threshold set so that the layer fires a target number of spikes per
neuron over T. It answers "what would this network cost on that chip at that activity" before
anything is trained; it has no accuracy.

Stated choices (changing any of them changes ``CALIBRATION_VERSION``):

- Weights: Kaiming normal, fan-in mode, ReLU gain: ``N(0, 2 / fan_in)`` with ``fan_in`` the
  inputs of one output neuron (``C_in * k * k`` or the linear input size), drawn by
  ``numpy.random.default_rng`` from one child of ``SeedSequence(seed)`` per weight tensor.
- Inputs: every pixel of every channel standard normal ``N(0, 1)``, i.i.d., as if already
  normalised (the network's mean is 0 and std 1, so normalisation leaves them as they are).
  Calibration draws ``calibration_images`` of them from stream 1 of ``seed``; a scenario's
  images come from stream 2 of ``data.seed`` (:func:`synthetic_images`), so they are not the
  calibration images.
- Thresholds: layer by layer in network order (a layer's rate depends only on earlier layers),
  the threshold is bisected geometrically until the layer's rate on the calibration images
  brackets the target to a relative width of 1e-4. The spike count of a LIF neuron with soft
  reset never grows with its threshold, so the bisection converges. On more than
  ``SAMPLE`` (neuron, image) pairs the bisection uses a seeded random sample of them, then the
  whole layer runs once with the found threshold.
- Leak: one value for every layer (1.0, integrate-and-fire, by default).

The forward pass is the PyTorch SNN's (:class:`accelsim.training.torch_snn.SpikingNetwork`) in
float32,
batched over images and timesteps; the simulator's own counts agree within the tolerance the
tests state (``tests/test_workloads.py`` measures them with :func:`accelsim.run`).

A workload is deterministic in its parameters: the weights are bit-identical on any machine
(numpy's generators); the thresholds are bit-identical on one machine, and on another CPU kind,
whose float32 convolutions may sum in another order, can differ by the last bisection step
(1e-4 relative). It is cached on disk as an ordinary model file
(:mod:`accelsim.model.modelfile`, so loading it never executes code) under
``$ACCELSIM_CACHE/workloads``
(default ``~/.cache/accelsim/workloads``), named by the sha256 of its parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from accelsim.model.architectures import BUILDERS, build
from accelsim.model.network import INPUT, Architecture, Network, Shape

CALIBRATION_VERSION = 1
"""Bumped whenever the weights, inputs or bisection change, so old cache entries are not used."""
SOURCE = "calibrated workload"
"""What a result made from a workload says about its model."""
SAMPLE = 1 << 16
"""Most (neuron, image) pairs the bisection evaluates per layer."""
REL_WIDTH = 1e-4
"""The bisection stops when the threshold bracket is this narrow (relative)."""
SYNTHETIC = "synthetic"
"""The data set of a scenario run on a workload: :func:`synthetic_images`."""
CALIBRATION_STREAM, SIMULATION_STREAM = 1, 2

INPUTS: dict[str, tuple[Shape, int]] = {
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "imagenet": ((3, 224, 224), 1000),
    "mnist": ((1, 28, 28), 10),
}
"""Input shape and classes of the data sets a workload can stand in for (no image is read)."""
IMAGENET_PLANS = ("vgg16-imagenet", "resnet34")


class WorkloadError(ValueError):
    """A workload that cannot be built; the message names the parameter and the fix."""


class WorkloadSpec(BaseModel):
    """The parameters of a calibrated workload (all of them key its cache entry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    architecture: str = Field(description="architecture plan, e.g. vgg16, resnet20, "
                              "vgg16-imagenet")
    dataset: str | None = Field(None, validate_default=True,
                                description="input shape and classes of this data set: "
                                f"{', '.join(INPUTS)}; default imagenet for "
                                f"{', '.join(IMAGENET_PLANS)}, else cifar10")
    size: int | None = Field(None, ge=1, description="input H = W instead of the data set's")
    width: float = Field(1.0, gt=0, description="channel-count multiplier")
    timesteps: int = Field(5, ge=1, description="T")
    spike_rate: float | list[float] = Field(
        description="target spikes per neuron over T: one value for every spiking layer, or a "
                    "list with one value per spiking layer")
    leak: float = Field(1.0, gt=0, le=1, description="membrane leak of every spiking layer")
    seed: int = Field(0, ge=0, description="seed of the weights and the calibration images")
    calibration_images: int = Field(8, ge=1, description="synthetic images the thresholds are "
                                    "calibrated on")

    @field_validator("architecture")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in BUILDERS:
            raise ValueError(f"unknown architecture {name!r}; choose one of {sorted(BUILDERS)}")
        return name

    @field_validator("dataset")
    @classmethod
    def _known_inputs(cls, name: str | None, info: ValidationInfo) -> str:
        if name is None:  # resolved here, so that leaving it out keys the same cache entry
            return "imagenet" if info.data.get("architecture") in IMAGENET_PLANS else "cifar10"
        if name not in INPUTS:
            raise ValueError(f"unknown data set {name!r}; a workload takes the input shape of "
                             f"one of {', '.join(INPUTS)}")
        return name

    @field_validator("spike_rate")
    @classmethod
    def _positive(cls, rate: float | list[float]) -> float | list[float]:
        rates = rate if isinstance(rate, list) else [rate]
        if not rates or not all(math.isfinite(r) and r > 0 for r in rates):
            raise ValueError(f"spike rates must be finite and > 0 (spikes per neuron over T), "
                             f"got {rate!r}")
        return rate

    @property
    def inputs(self) -> str:
        assert self.dataset is not None  # resolved by the validator
        return self.dataset

    @property
    def input_shape(self) -> Shape:
        shape = INPUTS[self.inputs][0]
        return shape if self.size is None else (shape[0], self.size, self.size)

    @property
    def name(self) -> str:
        rate = (f"{self.spike_rate:g}" if not isinstance(self.spike_rate, list)
                else "per-layer")
        return f"workload-{self.architecture}-w{self.width:g}-{self.inputs}-r{rate}"

    def architecture_graph(self) -> Architecture:
        try:
            return build(self.architecture, self.input_shape, INPUTS[self.inputs][1],
                         width=self.width)
        except ValueError as exc:
            raise WorkloadError(f"architecture {self.architecture!r} does not take input "
                                f"{self.input_shape}: {exc}; choose another size") from exc

    def key(self) -> str:
        payload = {"spec": self.model_dump(mode="json"), "version": CALIBRATION_VERSION}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# -- inputs and weights --------------------------------------------------------------------------


def synthetic_images(shape: Shape, count: int, seed: int,
                     stream: int = SIMULATION_STREAM) -> np.ndarray:
    """float32 (count, *shape) standard-normal images (already normalised)."""
    rng = np.random.default_rng([seed, stream])
    return rng.standard_normal((count, *shape), dtype=np.float32)


def kaiming_weights(arch: Architecture, seed: int) -> dict[str, np.ndarray]:
    """Kaiming-normal (fan-in, ReLU gain) float32 weights, one seeded stream per tensor."""
    shapes = arch.weight_shapes()
    children = np.random.SeedSequence(seed).spawn(len(shapes))
    weights = {}
    for (name, shape), child in zip(shapes.items(), children, strict=True):
        fan_in = int(np.prod(shape[1:]))
        w = np.random.default_rng(child).standard_normal(shape, dtype=np.float32)
        weights[name] = w * np.float32(math.sqrt(2.0 / fan_in))
    return weights


# -- calibration ---------------------------------------------------------------------------------


def _targets(spec: WorkloadSpec, arch: Architecture) -> list[float]:
    names = [layer.name for layer in arch.layers if layer.kind == "spiking"]
    if not isinstance(spec.spike_rate, list):
        targets = [float(spec.spike_rate)] * len(names)
    elif len(spec.spike_rate) != len(names):
        raise WorkloadError(f"spike_rate lists {len(spec.spike_rate)} rates; {arch.name} has "
                            f"{len(names)} spiking layers ({', '.join(names)}): give one rate "
                            "per layer, or one number for all")
    else:
        targets = [float(r) for r in spec.spike_rate]
    too_high = [(n, r) for n, r in zip(names, targets, strict=True) if r >= spec.timesteps]
    if too_high:
        raise WorkloadError(f"spike_rate {too_high[0][1]:g} for layer {too_high[0][0]!r}: a "
                            f"neuron fires at most once per timestep, so the rate must be below "
                            f"T = {spec.timesteps}")
    return targets


def _lif(currents, threshold: float, leak: float, train: bool = False):
    """Spikes per column of ``currents`` (T, n) at one threshold (soft reset, ``u > v``, the
    order of :meth:`~accelsim.training.torch_snn.SpikingNetwork.forward_snn`); with ``train`` also
    the
    (T, n) float32 spikes themselves."""
    import torch

    u = torch.zeros_like(currents[0])
    count = torch.zeros_like(currents[0])
    out = torch.empty_like(currents) if train else None
    for t, current in enumerate(currents):
        u.mul_(leak).add_(current)
        fired = (u > threshold).to(u.dtype)
        count.add_(fired)
        u.sub_(fired * threshold)
        if out is not None:
            out[t] = fired
    return count, out


def _bisect(currents, target: float, leak: float, name: str) -> float:
    """The threshold at which the mean spikes per column of ``currents`` (T, n) is ``target``."""
    T = currents.shape[0]
    reach = float(currents.clamp(min=0).sum(0).max())  # no membrane exceeds it: rate 0 above
    if reach <= 0:
        raise WorkloadError(f"layer {name!r} receives no positive current, so it cannot spike; "
                            "an earlier layer is silent: raise its target rate")
    lo, hi = reach * 1e-9, reach
    top = float(_lif(currents, lo, leak)[0].mean())
    if top < target:
        raise WorkloadError(f"layer {name!r} reaches at most {top:.3g} spikes per neuron over "
                            f"T = {T} with these weights and inputs; ask for a lower rate")
    while hi / lo > 1 + REL_WIDTH:
        mid = math.sqrt(lo * hi)
        if float(_lif(currents, mid, leak)[0].mean()) > target:
            lo = mid
        else:
            hi = mid
    return hi


def calibrate(arch: Architecture, weights: dict[str, np.ndarray], targets: list[float],
              timesteps: int, leak: float, images: np.ndarray, seed: int = 0
              ) -> tuple[Architecture, dict[str, float]]:
    """Thresholds that give each spiking layer its target rate on ``images``; returns the
    architecture with thresholds and leaks written in, and the rates those thresholds give."""
    import torch
    from torch import nn

    from accelsim.training.torch_snn import SpikingNetwork

    module = SpikingNetwork(arch)
    for name, w in weights.items():
        module.weights[name.replace(".", "__")] = nn.Parameter(torch.from_numpy(w),
                                                               requires_grad=False)
    T = timesteps
    last_use = {p.source: i for i, layer in enumerate(arch.layers) for p in layer.inputs}
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    sources = {INPUT: x.repeat(T, *([1] * (x.dim() - 1)))}  # (T * B, ...), timestep-major
    layers, rates = [], {}
    spiking = iter(targets)
    with torch.no_grad():
        for i, layer in enumerate(arch.layers):
            if layer.kind == "output":
                layers.append(layer)
                continue
            current = module.current(layer, sources).reshape(T, -1)
            pairs = current.shape[1]
            sample = current if pairs <= SAMPLE else current[
                :, torch.randperm(pairs, generator=generator)[:SAMPLE]]
            v = _bisect(sample, next(spiking), leak, layer.name)
            counts, train = _lif(current, v, leak, train=True)
            rates[layer.name] = float(counts.mean())
            sources[layer.name] = train.reshape(T * len(x), *layer.shape)
            layers.append(layer.model_copy(update={"threshold": v, "leak": leak}))
            for name in [s for s, last in last_use.items() if last <= i]:
                sources.pop(name, None)
    return arch.model_copy(update={"layers": tuple(layers)}), rates


# -- building, caching, public API ------------------------------------------------------------


def cache_dir() -> Path:
    """Where workloads are cached: ``$ACCELSIM_CACHE/workloads`` or
    ``~/.cache/accelsim/workloads``."""
    root = os.environ.get("ACCELSIM_CACHE") or Path.home() / ".cache" / "accelsim"
    return Path(root).expanduser() / "workloads"


def build_workload(spec: WorkloadSpec) -> tuple[Network, dict[str, float]]:
    """Build and calibrate the workload (no cache); returns it and its calibrated rates."""
    arch = spec.architecture_graph()
    targets = _targets(spec, arch)
    weights = kaiming_weights(arch, spec.seed)
    images = synthetic_images(arch.input_shape, spec.calibration_images, spec.seed,
                              CALIBRATION_STREAM)
    arch, rates = calibrate(arch, weights, targets, spec.timesteps, spec.leak, images, spec.seed)
    channels = arch.input_shape[0] if len(arch.input_shape) == 3 else 1
    network = Network(name=spec.name, dataset=None, architecture=arch, weights=weights,
                      timesteps=spec.timesteps, input_mean=(0.0,) * channels,
                      input_std=(1.0,) * channels)
    return network, rates


def model_file(spec: WorkloadSpec) -> Path:
    """The manifest path of the workload in the cache, calibrating and saving it if absent."""
    from accelsim.model.modelfile import ModelFileError, read_manifest, save_model

    stem = cache_dir() / f"{spec.name}-{spec.key()[:16]}"
    manifest = stem.with_name(stem.name + ".json")
    if manifest.is_file():
        try:
            if read_manifest(manifest).training.get("workload") == spec.model_dump(mode="json"):
                return manifest
        except ModelFileError:
            pass  # a damaged entry is rebuilt
    network, rates = build_workload(spec)
    neurons = {layer.name: layer.neurons for layer in network.layers if layer.kind == "spiking"}
    average = sum(rates[n] * neurons[n] for n in rates) / sum(neurons.values())
    training = {"source": SOURCE, "workload": spec.model_dump(mode="json"),
                "calibration_version": CALIBRATION_VERSION,
                "weights": "Kaiming normal N(0, 2/fan_in), numpy SeedSequence(seed) per tensor",
                "inputs": "i.i.d. N(0, 1) per pixel and channel (already normalised)",
                "calibration_rates": rates}
    return save_model(stem, network, spike_rates={"average": average, "per_layer": rates},
                      training=training)


def workload(architecture: str, *, spike_rate: float | list[float], dataset: str | None = None,
             size: int | None = None, width: float = 1.0, timesteps: int = 5, leak: float = 1.0,
             seed: int = 0, calibration_images: int = 8) -> Network:
    """A calibrated workload (built once, then read from the cache); see the module docstring.

    >>> net = accelsim.workload("vgg16", dataset="cifar10", spike_rate=0.4)   # doctest: +SKIP
    >>> images = accelsim.model.workloads.synthetic_images(net.architecture.input_shape, 8, seed=0)
    """
    from accelsim.model.modelfile import load_model

    try:
        spec = WorkloadSpec(architecture=architecture, spike_rate=spike_rate, dataset=dataset,
                            size=size, width=width, timesteps=timesteps, leak=leak, seed=seed,
                            calibration_images=calibration_images)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: "
                             f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
        raise WorkloadError(f"invalid workload: {problems}") from None
    return load_model(model_file(spec))


def scenario_images(network: Network, count: int, seed: int
                    ) -> tuple[np.ndarray, None, np.ndarray]:
    """(images, labels, indices) of a scenario run on a workload: ``count`` synthetic images of
    ``data.seed``; no labels (None), so the run reports no accuracy."""
    images = synthetic_images(network.architecture.input_shape, count, seed)
    return images, None, np.arange(count, dtype=np.int64)
