"""Plain-numpy oracles for the spiking-core kernels: dense, loop-by-loop, obviously right.

Everything here uses torch's (C, H, W) layout and the definitions of docs/design.md §2 directly
(pool the spike map, then convolve), never the event-driven formulation under test.
"""

from __future__ import annotations

import functools

import numpy as np


def spike_map(indices: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """0/1 float map of the given flat CHW indices."""
    dense = np.zeros(int(np.prod(shape)))
    dense[np.asarray(indices, dtype=np.int64)] = 1.0
    return dense.reshape(shape)


def avg_pool(x: np.ndarray, pool: int) -> np.ndarray:
    """Non-overlapping average pool of a (C, H, W) map."""
    if pool == 1:
        return x
    c, h, w = x.shape
    out = np.zeros((c, h // pool, w // pool))
    for ci in range(c):
        for y in range(h // pool):
            for xx in range(w // pool):
                out[ci, y, xx] = x[ci, y * pool:(y + 1) * pool, xx * pool:(xx + 1) * pool].mean()
    return out


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def conv(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation of (C_in, H, W) by (C_out, C_in, k, k), zero padding, no bias."""
    c_in, h, wd = x.shape
    c_out, _, k, _ = w.shape
    ho, wo = conv_out_size(h, k, stride, padding), conv_out_size(wd, k, stride, padding)
    out = np.zeros((c_out, ho, wo))
    for co in range(c_out):
        for oy in range(ho):
            for ox in range(wo):
                total = 0.0
                for ci in range(c_in):
                    for ky in range(k):
                        for kx in range(k):
                            y, xx = oy * stride - padding + ky, ox * stride - padding + kx
                            if 0 <= y < h and 0 <= xx < wd:
                                total += w[co, ci, ky, kx] * x[ci, y, xx]
                out[co, oy, ox] = total
    return out


def conv_real_taps(c_in: int, h: int, w: int, c_out: int, kernel: int, stride: int,
                   padding: int) -> int:
    """MACs of a dense conv counting only taps that land inside the input (not on padding)."""
    ones = np.ones((c_in, h, w))
    return int(conv(ones, np.ones((c_out, c_in, kernel, kernel)), stride, padding).sum())


def conv_fanout(c_in: int, h: int, w: int, c_out: int, kernel: int, stride: int,
                padding: int) -> np.ndarray:
    """(C_in, H, W): how many (target neuron, tap) pairs each input cell reaches.

    Walks every output neuron's taps and credits the input cell each real tap lands on.
    """
    ho, wo = conv_out_size(h, kernel, stride, padding), conv_out_size(w, kernel, stride, padding)
    plane = np.zeros((h, w), dtype=np.int64)
    for oy in range(ho):
        for ox in range(wo):
            for ky in range(kernel):
                for kx in range(kernel):
                    y, xx = oy * stride - padding + ky, ox * stride - padding + kx
                    if 0 <= y < h and 0 <= xx < w:
                        plane[y, xx] += c_out
    return np.broadcast_to(plane, (c_in, h, w)).copy()


def pooled_fanout(fanout_pooled: np.ndarray, pool: int) -> np.ndarray:
    """Fan-out of each unpooled source cell: that of the pooled cell it falls in."""
    return np.repeat(np.repeat(fanout_pooled, pool, axis=1), pool, axis=2)


def lif(membrane: np.ndarray, current: np.ndarray, leak: float,
        threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One LIF step over CHW-ordered flat arrays: returns (new membrane, spike flat indices)."""
    u = leak * membrane + current
    fired = u > threshold
    u = u - threshold * fired
    return u, np.flatnonzero(fired)


def chw_to_hwc(x: np.ndarray) -> np.ndarray:
    """A (C, H, W) map as the kernels' channel-last flat layout."""
    return x.transpose(1, 2, 0).flatten()  # always a copy


def calibrated_network(arch_name: str, input_shape: tuple[int, ...], width: float, seed: int,
                       images: np.ndarray, timesteps: int = 5, num_classes: int = 10):
    """A random-weight network whose thresholds keep every layer spiking (test stand-in).

    Layer by layer, as in conversion: the threshold is half the 99th percentile of the layer's
    input current on ``images`` with the earlier layers already set; leaks are drawn in [0.8, 1].
    """
    import torch

    from accelsim.model.architectures import build
    from accelsim.model.network import Network
    from accelsim.training.torch_snn import SpikingNetwork

    rng = np.random.default_rng(seed)
    arch = build(arch_name, input_shape, num_classes, width=width)
    weights = SpikingNetwork(arch, seed=seed).weight_arrays()
    layers = list(arch.layers)
    x = torch.from_numpy(np.asarray(images, dtype=np.float64))
    for i, layer in enumerate(layers):
        if layer.kind != "spiking":
            continue
        arch = arch.model_copy(update={"layers": tuple(layers)})
        net = Network(architecture=arch, weights=weights, input_mean=(0.0,), input_std=(1.0,))
        with torch.no_grad():
            out = SpikingNetwork.from_network(net).double().forward_snn(
                x, timesteps, record_currents=True)
        current = torch.stack(out.input_currents[layer.name]).numpy()
        threshold = max(float(np.percentile(current, 99)) * 0.5, 1e-3)
        layers[i] = layer.model_copy(update={"threshold": threshold,
                                             "leak": float(rng.uniform(0.8, 1.0))})
    arch = arch.model_copy(update={"layers": tuple(layers)})
    return Network(name=f"random-{arch_name}", architecture=arch, weights=weights,
                   input_mean=(0.0,), input_std=(1.0,), timesteps=timesteps)


def with_biases(net, seed: int, scale: float):
    """``net`` with a bias ``<layer>.bias`` on every layer: normal values times ``scale`` times
    the layer's threshold (the output layer's is 1)."""
    from accelsim.model.network import Architecture

    rng = np.random.default_rng(seed)
    layers, weights = [], dict(net.weights)
    for layer in net.layers:
        name = f"{layer.name}.bias"
        weights[name] = (rng.normal(size=layer.shape[0]) * scale * layer.threshold).astype(
            np.float32)
        layers.append(layer.model_copy(update={"bias": name}))
    arch = Architecture.model_validate({**net.architecture.model_dump(), "layers": [
        la.model_dump() for la in layers]})
    return type(net)(**{**dict(net), "architecture": arch, "weights": weights})


def assert_spikes_equal_reference(result, ref, timesteps: int) -> None:
    """Every spike train of a fixed-point ``run`` (``record_spikes``) equals the dense integer
    reference's, image by image and step by step, and the run spiked at all."""
    np.testing.assert_array_equal(result.output, ref.output)
    total = 0
    for i, trains in enumerate(result.spikes):
        for name, train in trains.items():
            for t in range(timesteps):
                np.testing.assert_array_equal(train.at(t), ref.spike_indices(name, i, t))
            total += len(train.indices)
    assert total > 0


def model_params(paths: list) -> list:
    """Shipped model files as test parameters; a model whose kernel weights are stored as
    float64 (some weight is no float32 value, e.g. folded by a 7x7 average pool) is ``slow``:
    running it compiles the kernels a second time (a minute), and the slow run checks it."""
    import pytest

    return [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if _wide_tables(p) else [])
            for p in paths]


@functools.cache
def _wide_tables(path) -> bool:
    """Whether the model at ``path`` keeps float64 kernel weights (once per session: several
    test modules ask at collection)."""
    from accelsim.model.modelfile import load_model
    from accelsim.spiking.core import build_tables

    return build_tables(load_model(path), 1).weights.dtype == np.float64
