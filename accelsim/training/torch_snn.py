"""The PyTorch DIET-SNN: one module that runs any layer graph as an ANN or as a spiking network.

This is the training side of the contract in docs/design.md §2 and the independent reference
the event-driven core is proven against. No delay between layers: the spikes a layer emits at
timestep t are the next layer's input at the same t.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection

SURROGATE_SCALE = 0.3


class SpikeFunction(torch.autograd.Function):
    """Heaviside spike ``u > v`` with the DIET-SNN surrogate 0.3 * max(0, 1 - |z|), z = u/v - 1.

    The forward pass compares ``u > v`` directly (not ``z > 0``) so that it agrees bit for bit with
    the event-driven core; the backward pass carries gradients to the membrane and threshold.
    """

    @staticmethod
    def forward(ctx, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        ctx.save_for_backward(u, v)
        return (u > v).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: D102
        u, v = ctx.saved_tensors
        z = u / v - 1.0
        g = grad * SURROGATE_SCALE * torch.clamp(1.0 - z.abs(), min=0.0)
        grad_u = g / v
        grad_v = (g * (-u / (v * v))).sum().reshape(v.shape)
        return grad_u, grad_v


def spike(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return SpikeFunction.apply(u, v)


def _key(name: str) -> str:
    """ParameterDict keys may not contain dots."""
    return name.replace(".", "__")


@dataclass
class SnnOutput:
    """What a spiking forward pass yields."""

    logits: torch.Tensor
    """Output-layer membrane after T steps, i.e. the sum of its input currents over T."""
    spike_counts: torch.Tensor | None = None
    """(batch, spiking layers, T) spikes emitted per layer and timestep, when recorded."""
    input_currents: dict[str, list[torch.Tensor]] | None = None
    """Per layer, the input current at every timestep, when recorded (conversion needs it)."""


class SpikingNetwork(nn.Module):
    """Weights, one leak and one threshold per spiking layer, over an :class:`Architecture`."""

    def __init__(self, architecture: Architecture, seed: int | None = None):
        super().__init__()
        self.architecture = architecture
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.weights = nn.ParameterDict()
        biases = {layer.bias for layer in architecture.layers}
        for name, shape in architecture.weight_shapes().items():
            w = torch.zeros(shape)  # a bias starts at zero
            if name not in biases:
                # Kaiming-uniform for ReLU, as for the bias-free ANN the SNN is converted from.
                bound = float(np.sqrt(6.0 / int(np.prod(shape[1:]))))
                w.uniform_(-bound, bound, generator=generator)
            self.weights[_key(name)] = nn.Parameter(w)
        self.leak = nn.ParameterDict()
        self.threshold = nn.ParameterDict()
        for layer in self.spiking_layers:
            self.leak[_key(layer.name)] = nn.Parameter(torch.tensor(float(layer.leak)))
            self.threshold[_key(layer.name)] = nn.Parameter(torch.tensor(float(layer.threshold)))

    # -- conversion to and from the hardware-neutral description ---------------------------

    @classmethod
    def from_network(cls, network: Network) -> SpikingNetwork:
        module = cls(network.architecture)
        with torch.no_grad():
            for name, w in network.weights.items():
                module.weights[_key(name)].copy_(torch.from_numpy(np.asarray(w)))
        return module

    def trained_architecture(self) -> Architecture:
        """The architecture with this module's current leaks and thresholds written in."""
        layers = []
        for layer in self.architecture.layers:
            if layer.kind == "spiking":
                layer = layer.model_copy(update={
                    "leak": self.leak[_key(layer.name)].detach().item(),
                    "threshold": self.threshold[_key(layer.name)].detach().item(),
                })
            layers.append(layer)
        return self.architecture.model_copy(update={"layers": tuple(layers)})

    def weight_arrays(self) -> dict[str, np.ndarray]:
        return {name: self.weights[_key(name)].detach().cpu().float().numpy().copy()
                for name in self.architecture.weight_shapes()}

    @property
    def spiking_layers(self) -> list[Layer]:
        return [layer for layer in self.architecture.layers if layer.kind == "spiking"]

    @torch.no_grad()
    def clamp_leak_(self) -> None:
        """Keep every leak <= 1 (applied after each optimiser step)."""
        for p in self.leak.values():
            p.clamp_(max=1.0)

    # -- forward passes ---------------------------------------------------------------------

    def project(self, p: Projection, source: torch.Tensor) -> torch.Tensor:
        if p.pool > 1:
            source = F.avg_pool2d(source, p.pool)
        if p.op == "identity":
            return source
        w = self.weights[_key(p.weight)]  # type: ignore[arg-type]
        if p.op == "conv":
            return F.conv2d(source, w, stride=p.stride, padding=p.padding)
        return F.linear(source.flatten(1), w)

    def current(self, layer: Layer, sources: dict[str, torch.Tensor]) -> torch.Tensor:
        total = self.project(layer.inputs[0], sources[layer.inputs[0].source])
        for p in layer.inputs[1:]:
            total = total + self.project(p, sources[p.source])
        if layer.bias is not None:  # one value per channel (C, H, W) or unit
            b = self.weights[_key(layer.bias)]
            total = total + b.reshape((-1,) + (1,) * (len(layer.shape) - 1))
        return total

    def forward_ann(self, x: torch.Tensor, dropout: float = 0.0) -> torch.Tensor:
        """The ANN the SNN is converted from: same graph, ReLU activations (and the layers'
        biases, if any; the DIET-SNN has none)."""
        acts = {INPUT: x}
        out = x
        for layer in self.architecture.layers:
            out = self.current(layer, acts)
            if layer.kind == "spiking":
                out = F.dropout(F.relu(out), dropout, self.training)
            acts[layer.name] = out
        return out

    def forward_snn(self, x: torch.Tensor, timesteps: int, dropout: float = 0.0,
                    record: bool = False, record_currents: bool = False,
                    until: str | None = None) -> SnnOutput:
        """Run T timesteps with direct input encoding; returns the summed output current.

        ``until`` runs only the layers up to and including that one (conversion needs nothing
        after the layer it converts); ``logits`` is then that layer's membrane.
        """
        layers = self.architecture.layers
        if until is not None:
            layers = layers[: [layer.name for layer in layers].index(until) + 1]
        membranes: dict[str, torch.Tensor | float] = {layer.name: 0.0 for layer in layers}
        masks: dict[str, torch.Tensor] = {}
        counts = []
        currents: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in layers}
        first_currents: dict[str, torch.Tensor] = {}
        for _ in range(timesteps):
            spikes = {INPUT: x}
            step_counts = []
            for layer in layers:
                if all(p.source == INPUT for p in layer.inputs):
                    # The analog input is the same every timestep: compute its current once.
                    if layer.name not in first_currents:
                        first_currents[layer.name] = self.current(layer, spikes)
                    current = first_currents[layer.name]
                else:
                    current = self.current(layer, spikes)
                if record_currents:
                    currents[layer.name].append(current.detach())
                if layer.kind == "output":
                    membranes[layer.name] = membranes[layer.name] + current
                    continue
                key = _key(layer.name)
                v = self.threshold[key]
                u = self.leak[key] * membranes[layer.name] + current
                o = spike(u, v)
                membranes[layer.name] = u - v * o
                if record:
                    step_counts.append(o.detach().flatten(1).sum(1))
                if self.training and dropout > 0:
                    if layer.name not in masks:  # one mask per forward pass, reused every step
                        masks[layer.name] = F.dropout(torch.ones_like(o), dropout, True)
                    o = o * masks[layer.name]
                spikes[layer.name] = o
            if record:
                counts.append(torch.stack(step_counts, dim=1))
        logits = membranes[layers[-1].name]
        assert isinstance(logits, torch.Tensor)
        return SnnOutput(
            logits=logits,
            spike_counts=torch.stack(counts, dim=2) if record else None,
            input_currents=currents if record_currents else None,
        )
