"""The hardware-neutral description of a DIET-SNN.

This is the one thing every part of accelsim knows about a network: the PyTorch trainer builds
its modules from it, the numba core runs it event by event, and the chip model maps it onto tiles.
It imports neither torch nor numba.

A network is an ordered list of *layers* (neuron populations). Each layer sums the currents of
one or more *projections* from earlier layers (or from the analog ``input``):

    I_l[t] = b_l + sum_p  op_p( pool_p( o_source(p)[t] ) )

- ``op`` is ``conv``, ``linear`` (the source is flattened in C, H, W order) or ``identity`` (a
  ResNet shortcut: the source's spikes are added as they are); projections carry no bias.
- ``b_l`` is the layer's optional *bias* (the ``bias`` tensor, one value per output channel of a
  (C, H, W) layer or per unit of an (N,) layer): a constant current added at every timestep, as
  a NIR ``Affine`` or a ``Conv2d(bias=True)`` adds it. The DIET-SNN itself has none.
- ``pool`` is a non-overlapping average pool (kernel = stride = pool) applied to the source's
  spikes first. It is linear, so hardware folds it into the weights (each spike adds W / pool**2).

A ``spiking`` layer is a LIF population with one scalar leak and one scalar threshold and soft
reset; the final ``output`` layer only accumulates (docs/design.md §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

INPUT = "input"
"""Name of the analog image source (direct input encoding)."""

Shape = tuple[int, ...]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Projection(_Frozen):
    """One synaptic projection into a layer."""

    source: str
    op: Literal["conv", "linear", "identity"]
    weight: str | None = Field(None, description="weight tensor name; None for identity")
    pool: int = Field(1, ge=1, description="average-pool size applied to the source first")
    kernel: int = Field(1, ge=1)
    stride: int = Field(1, ge=1)
    padding: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _weight_matches_op(self) -> Projection:
        if (self.op == "identity") != (self.weight is None):
            raise ValueError(f"projection from {self.source!r}: op {self.op!r} "
                             "needs a weight name (conv, linear) or none (identity)")
        return self


class Layer(_Frozen):
    """A neuron population: ``spiking`` (LIF) or the accumulate-only ``output``."""

    name: str
    kind: Literal["spiking", "output"]
    shape: Shape = Field(description="(C, H, W) for conv layers, (N,) for linear layers")
    inputs: tuple[Projection, ...] = Field(min_length=1)
    leak: float = Field(1.0, description="membrane leak lambda (<= 1); 1.0 for the output layer")
    threshold: float = Field(1.0, gt=0, description="firing threshold v; unused by the output")
    bias: str | None = Field(None, description="bias tensor name: a constant current every "
                                               "timestep, one value per output channel (conv) or "
                                               "unit; None: no bias")

    @property
    def neurons(self) -> int:
        return int(np.prod(self.shape))


class Architecture(_Frozen):
    """The layer graph without trained numbers: what an architecture builder produces."""

    name: str
    input_shape: Shape
    num_classes: int
    layers: tuple[Layer, ...]

    @model_validator(mode="after")
    def _check_graph(self) -> Architecture:
        shapes: dict[str, Shape] = {INPUT: self.input_shape}
        for i, layer in enumerate(self.layers):
            if layer.name in shapes:
                raise ValueError(f"layer name {layer.name!r} is used twice")
            is_last = i == len(self.layers) - 1
            if (layer.kind == "output") != is_last:
                raise ValueError(f"layer {layer.name!r}: exactly the last layer must be 'output'")
            for p in layer.inputs:
                if p.source not in shapes:
                    raise ValueError(f"layer {layer.name!r} reads {p.source!r}, "
                                     "which is not an earlier layer or 'input'")
                out = projected_shape(shapes[p.source], p, self.weight_shape_of(layer, p))
                if out != layer.shape:
                    raise ValueError(f"layer {layer.name!r}: projection from {p.source!r} gives "
                                     f"shape {out}, layer has {layer.shape}")
            shapes[layer.name] = layer.shape
        weights = {p.weight for layer in self.layers for p in layer.inputs}
        biases = [layer.bias for layer in self.layers if layer.bias is not None]
        shared = sorted((weights & set(biases)) | {b for b in biases if biases.count(b) > 1})
        if shared:
            raise ValueError(f"bias name {shared[0]!r} is also a weight or another layer's bias; "
                             "give each bias its own name, e.g. '<layer>.bias'")
        if self.layers[-1].shape != (self.num_classes,):
            raise ValueError(f"output layer shape {self.layers[-1].shape} != ({self.num_classes},)")
        return self

    def source_shape(self, name: str) -> Shape:
        if name == INPUT:
            return self.input_shape
        return self.layer(name).shape

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def weight_shape_of(self, layer: Layer, p: Projection) -> Shape | None:
        """Shape of the weight tensor of projection ``p`` into ``layer`` (torch layout)."""
        if p.op == "identity":
            return None
        src = pooled_shape(self.source_shape(p.source), p.pool)
        if p.op == "conv":
            return (layer.shape[0], src[0], p.kernel, p.kernel)
        return (layer.neurons, int(np.prod(src)))

    def weight_shapes(self) -> dict[str, Shape]:
        """Every tensor the network needs (projection weights and layer biases), by name."""
        shapes: dict[str, Shape] = {}
        for layer in self.layers:
            for p in layer.inputs:
                if p.weight is not None:
                    shapes[p.weight] = self.weight_shape_of(layer, p)  # type: ignore[assignment]
            if layer.bias is not None:
                shapes[layer.bias] = (layer.shape[0],)
        return shapes


class Network(_Frozen):
    """An architecture with its trained weights, leaks and thresholds, ready to simulate."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str = Field("network", description="model name, e.g. 'mnist5k-vgg9'")
    dataset: str | None = Field(None, description="data set it was trained on, e.g. 'mnist5k'")
    architecture: Architecture
    weights: Mapping[str, np.ndarray]
    timesteps: int = Field(5, ge=1, description="T the model was trained for")
    input_mean: tuple[float, ...] = Field(description="per-channel normalisation mean")
    input_std: tuple[float, ...] = Field(description="per-channel normalisation std")

    @model_validator(mode="after")
    def _check_weights(self) -> Network:
        expected = self.architecture.weight_shapes()
        missing = sorted(set(expected) - set(self.weights))
        extra = sorted(set(self.weights) - set(expected))
        if missing or extra:
            raise ValueError(f"weights missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            if tuple(self.weights[name].shape) != shape:
                raise ValueError(f"weight {name!r} has shape {tuple(self.weights[name].shape)}, "
                                 f"the architecture needs {shape}")
        return self

    @property
    def layers(self) -> tuple[Layer, ...]:
        return self.architecture.layers


def pooled_shape(shape: Shape, pool: int) -> Shape:
    if pool == 1:
        return shape
    if len(shape) != 3 or shape[1] % pool or shape[2] % pool:
        raise ValueError(f"cannot average-pool shape {shape} by {pool}")
    return (shape[0], shape[1] // pool, shape[2] // pool)


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def projected_shape(source: Shape, p: Projection, weight_shape: Shape | None) -> Shape:
    """Shape of the current a projection delivers."""
    src = pooled_shape(source, p.pool)
    if p.op == "identity":
        return src
    assert weight_shape is not None
    if p.op == "linear":
        return (weight_shape[0],)
    if len(src) != 3:
        raise ValueError(f"conv projection from {p.source!r} needs a (C, H, W) source, got {src}")
    h = conv_output_size(src[1], p.kernel, p.stride, p.padding)
    w = conv_output_size(src[2], p.kernel, p.stride, p.padding)
    return (weight_shape[0], h, w)
