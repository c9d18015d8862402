"""Independent oracles for the tests: the fixed-point arithmetic of :mod:`accelsim.spiking.quantize`
recomputed with dense PyTorch operations (imports torch; never on the simulator's path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.model.network import INPUT
from accelsim.spiking.quantize import QuantisedNetwork


@dataclass(frozen=True)
class ReferenceOutput:
    """What :func:`reference_forward` yields."""

    output: np.ndarray                    # float64 (images, classes): integer membrane * unit
    predictions: np.ndarray               # int64 (images,)
    spike_counts: dict[str, np.ndarray]   # per spiking layer, int64 (images, T)
    spikes: dict[str, list[np.ndarray]]   # per spiking layer, per t, bool (images, neurons)

    def spike_indices(self, layer: str, image: int, t: int) -> np.ndarray:
        return np.flatnonzero(self.spikes[layer][t][image]).astype(np.int32)


def reference_forward(qnet: QuantisedNetwork, images: np.ndarray,
                      timesteps: int) -> ReferenceOutput:
    """The fixed arithmetic with dense PyTorch ops on float64 tensors holding integers."""
    import torch
    import torch.nn.functional as F

    net = qnet.network
    x = torch.from_numpy(qnet.quantise_input(images).astype(np.float64))
    w = {name: torch.from_numpy(v.astype(np.float64)) for name, v in qnet.weights.items()}
    lo, hi = float(qnet.lo), float(qnet.hi)
    scale = float(2 ** qnet.quantization.leak_bits)
    rounding = torch.trunc if qnet.quantization.truncates else torch.floor
    membranes: dict[str, torch.Tensor | float] = {la.name: 0.0 for la in net.layers}
    spikes: dict[str, list[np.ndarray]] = {la.name: [] for la in net.layers
                                           if la.kind == "spiking"}
    with torch.no_grad():
        for _ in range(timesteps):
            out = {INPUT: x}
            for layer in net.layers:
                current: torch.Tensor | float = 0.0
                for j, p in enumerate(layer.inputs):
                    src = out[p.source]
                    if p.pool > 1:  # sum pool: each spike adds its integer weight once
                        src = F.avg_pool2d(src, p.pool, divisor_override=1)
                    if p.op == "identity":
                        term = src * float(qnet.increments[(layer.name, j)])
                    elif p.op == "conv":
                        term = F.conv2d(src, w[p.weight], stride=p.stride, padding=p.padding)
                    else:
                        term = F.linear(src.flatten(1), w[p.weight])
                    current = current + term
                if layer.bias is not None:  # one value per channel (C, H, W) or unit
                    b = torch.from_numpy(qnet.biases[layer.name].astype(np.float64))
                    current = current + b.reshape((-1,) + (1,) * (len(layer.shape) - 1))
                if layer.kind == "output":
                    membranes[layer.name] = torch.clamp(membranes[layer.name] + current, lo, hi)
                    continue
                u = membranes[layer.name]
                leaked = (rounding(u * float(qnet.leaks[layer.name]) / scale)
                          if isinstance(u, torch.Tensor) else 0.0)
                u = leaked + current
                u = torch.clamp(u, lo, hi)
                o = (u > qnet.thresholds[layer.name]).to(torch.float64)
                membranes[layer.name] = u - qnet.thresholds[layer.name] * o
                out[layer.name] = o
                spikes[layer.name].append(o.flatten(1).numpy() > 0)
    last = membranes[net.layers[-1].name]
    assert isinstance(last, torch.Tensor)
    integer = last.numpy()
    return ReferenceOutput(
        output=integer * qnet.units[net.layers[-1].name],
        predictions=np.argmax(integer, axis=1).astype(np.int64),
        spike_counts={n: np.stack([s.sum(1) for s in v], axis=1).astype(np.int64)
                      for n, v in spikes.items()},
        spikes=spikes)
