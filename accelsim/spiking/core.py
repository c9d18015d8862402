"""The spiking core's data: a network flattened into the tables the numba kernels read, the call
that runs them, and what a run yields (spike trains, counts, outputs).

Both arithmetics share it: :mod:`accelsim.spiking.functional` fills the tables with float64 values,
:mod:`accelsim.spiking.quantize` with the integers of the fixed-point arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from accelsim.model.network import INPUT, Network, Shape
from accelsim.spiking import kernels as k
from accelsim.workflow import columns as col


@dataclass(frozen=True)
class SpikeTrain:
    """The spikes one layer emitted for one image."""

    offsets: np.ndarray
    """int64 (T+1,): the spikes of timestep t (0-based) are ``indices[offsets[t]:offsets[t+1]]``."""
    indices: np.ndarray
    """int32 flat neuron indices in (C, H, W) order, ascending within a timestep."""

    @property
    def timesteps(self) -> int:
        return len(self.offsets) - 1

    def at(self, t: int) -> np.ndarray:
        """Indices of the spikes of timestep ``t`` (0-based)."""
        return self.indices[self.offsets[t]:self.offsets[t + 1]]

    def counts(self) -> np.ndarray:
        """Spikes per timestep, int64 (T,)."""
        return np.diff(self.offsets)


@dataclass(frozen=True)
class FunctionalResult:
    """What :func:`run` returns; the type never depends on the flags."""

    predictions: np.ndarray
    """int64 (images,): argmax of the output-layer sum over T."""
    output: np.ndarray
    """float64 (images, classes): the output-layer sum over T (the logits)."""
    counts: pd.DataFrame
    """One row per image x layer x timestep (timestep 1..T), columns FUNCTIONAL_COUNTS."""
    spikes: list[dict[str, SpikeTrain]] | None
    """Per image, per spiking layer name, its spike train; None unless ``record_spikes``."""


@dataclass(frozen=True)
class CoreTables:
    """A network flattened into the integer/float tables the kernels read."""

    layers: np.ndarray       # int64 (L, N_LAYER_COLS)
    leaks: np.ndarray        # (L,) float64 leak, or int64 fixed-point leak multiplier
    thresholds: np.ndarray   # (L,) float64, or int64 in membrane units
    projs: np.ndarray        # int64 (P, N_PROJ_COLS), grouped by target layer
    proj_start: np.ndarray   # int64 (L+1,)
    weights: np.ndarray      # all projections' kernel-layout weights concatenated (an identity
                             # projection holds its one increment); float32 values stored
                             # as float32 (else float64), or int64
    bias: np.ndarray         # (state size,) each neuron's bias (HWC, at its layer's offset), 0
                             # where a layer has none; float64 or int64: the state's dtype,
                             # which picks the arithmetic
    names: tuple[str, ...]
    spiking: tuple[bool, ...]
    rec_size: int            # spike-record slots per image (T * spiking neurons)
    leak_shift: int = 0      # fixed point: leak(u) = (u * leak) >> leak_shift
    leak_truncate: bool = False  # fixed point: round that quotient toward zero, not down
    lo: float | int = -np.inf  # membrane saturation bounds (none in float)
    hi: float | int = np.inf


def _chw(shape: Shape) -> tuple[int, int, int]:
    """A layer or source shape as (C, H, W); a flat (N,) population is (N, 1, 1)."""
    if len(shape) == 3:
        return int(shape[0]), int(shape[1]), int(shape[2])
    if len(shape) == 1:
        return int(shape[0]), 1, 1
    raise ValueError(f"shape {shape} is neither (C, H, W) nor (N,)")


def kernel_layout(op: str, w: np.ndarray) -> np.ndarray:
    """Torch-layout weights in the kernels' (flat) layout: conv (C_out, C_in, k, k) ->
    (C_in, k, k, C_out) with the column taps reversed (see :mod:`accelsim.spiking.kernels`);
    linear (out, in) -> (in, out)."""
    w = np.asarray(w)
    w = w.transpose(1, 2, 3, 0)[:, :, ::-1, :] if op == "conv" else w.T
    return np.ascontiguousarray(w).ravel()


def kernel_weights(op: str, w: np.ndarray, pool: int) -> np.ndarray:
    """Torch-layout weights to the kernels' layout, with the average pool's 1/pool**2 folded in."""
    w = kernel_layout(op, np.asarray(w, dtype=np.float64))
    return w / float(pool * pool) if pool > 1 else w


def _narrowest(weights: np.ndarray) -> np.ndarray:
    """The float64 weights as float32 when every one is a float32 value (trained weights are):
    the kernels widen each exactly before adding it, so the sums are the same, and half the
    bytes stream through the caches (at paper scale the weights outgrow them)."""
    narrow = weights.astype(np.float32)
    return narrow if np.array_equal(narrow, weights) else weights


def build_tables(network: Network, timesteps: int,
                 weights: dict[str, np.ndarray] | None = None) -> CoreTables:
    """Flatten ``network`` for the kernels; ``weights`` (torch layout) overrides the network's."""
    arch = network.architecture
    src_weights = network.weights if weights is None else weights
    index = {layer.name: i for i, layer in enumerate(arch.layers)}
    n_layers = len(arch.layers)
    layers = np.zeros((n_layers, k.N_LAYER_COLS), dtype=np.int64)
    leaks = np.zeros(n_layers)
    thresholds = np.ones(n_layers)
    projs: list[list[int]] = []
    proj_start = np.zeros(n_layers + 1, dtype=np.int64)
    chunks: list[np.ndarray] = []
    biases: list[tuple[int, np.ndarray]] = []
    w_off = 0
    off = 0
    rec_off = 0
    for i, layer in enumerate(arch.layers):
        c, h, w = _chw(layer.shape)
        n = layer.neurons
        is_output = layer.kind == "output"
        # a constant current: from the analog input (once per image) and the bias
        has_const = layer.bias is not None or any(p.source == INPUT for p in layer.inputs)
        layers[i] = (c, h, w, n, int(is_output), off, rec_off, int(has_const))
        if layer.bias is not None:  # per channel, repeated at every (H, W) position (HWC)
            biases.append((off, np.tile(np.asarray(src_weights[layer.bias], np.float64), h * w)))
        off += n
        if not is_output:
            rec_off += n * timesteps
        leaks[i] = layer.leak
        thresholds[i] = layer.threshold
        proj_start[i] = len(projs)
        for p in layer.inputs:
            sc, sh, sw = _chw(arch.source_shape(p.source))
            if p.source == INPUT and p.pool > 1:
                raise ValueError(f"layer {layer.name!r}: average pooling of the analog input "
                                 f"(pool={p.pool}) is not supported; pool the images beforehand "
                                 "and remove the pool from the projection")
            op = {"conv": k.OP_CONV, "linear": k.OP_LINEAR, "identity": k.OP_IDENTITY}[p.op]
            source = -1 if p.source == INPUT else index[p.source]
            projs.append([i, source, op, p.pool, p.kernel, p.stride, p.padding, sc, sh, sw,
                          w_off])
            if p.weight is not None:
                kw = kernel_weights(p.op, src_weights[p.weight], p.pool)
            else:
                kw = np.array([1.0 / (p.pool * p.pool)])
            chunks.append(kw)
            w_off += kw.size
    proj_start[n_layers] = len(projs)
    all_weights = _narrowest(np.concatenate(chunks) if chunks else np.zeros(0))
    bias = np.zeros(off)
    for start, values in biases:
        bias[start:start + values.size] = values
    return CoreTables(
        layers=layers, leaks=leaks, thresholds=thresholds,
        projs=np.asarray(projs, dtype=np.int64).reshape(-1, k.N_PROJ_COLS),
        proj_start=proj_start, weights=all_weights, bias=bias,
        names=tuple(layer.name for layer in arch.layers),
        spiking=tuple(layer.kind == "spiking" for layer in arch.layers),
        rec_size=rec_off)


def counts_frame(counts: np.ndarray, names: tuple[str, ...]) -> pd.DataFrame:
    """(images, T, layers, N_COUNTS) counts to the tidy table, ordered image, layer, timestep."""
    n_images, timesteps, n_layers, _ = counts.shape
    per = counts.transpose(0, 2, 1, 3).reshape(-1, k.N_COUNTS)
    frame = pd.DataFrame({
        col.IMAGE: np.repeat(np.arange(n_images, dtype=np.int64), n_layers * timesteps),
        col.LAYER: np.tile(np.repeat(np.asarray(names, dtype=object), timesteps), n_images),
        col.TIMESTEP: np.tile(np.arange(1, timesteps + 1, dtype=np.int64), n_images * n_layers),
        col.SPIKES_IN: per[:, k.C_SPIKES_IN],
        col.SPIKES_OUT: per[:, k.C_SPIKES_OUT],
        col.NEURONS: per[:, k.C_NEURONS],
        col.SYNAPTIC_OPS: per[:, k.C_SYNOPS],
        col.MACS: per[:, k.C_MACS],
        col.NEURON_UPDATES: per[:, k.C_UPDATES],
        col.ACTIVE_NEURON_UPDATES: per[:, k.C_ACTIVE],
    })
    return frame[list(col.FUNCTIONAL_COUNTS)]


def spike_trains(tables: CoreTables, rec: np.ndarray, rec_n: np.ndarray
                 ) -> list[dict[str, SpikeTrain]]:
    """Cut the kernels' spike records into one :class:`SpikeTrain` per image and spiking layer."""
    trains = []
    for i in range(rec.shape[0]):
        per_layer = {}
        for li, name in enumerate(tables.names):
            if not tables.spiking[li]:
                continue
            offsets = np.zeros(rec_n.shape[2] + 1, dtype=np.int64)
            np.cumsum(rec_n[i, li], out=offsets[1:])
            start = tables.layers[li, k.L_REC_OFF]
            indices = rec[i, start:start + offsets[-1]].copy()
            per_layer[name] = SpikeTrain(offsets=offsets, indices=indices)
        trains.append(per_layer)
    return trains


RECORD_CHUNK = 64
"""Images per kernel call when recording spikes (bounds the record buffer's memory)."""


def _call(tables: CoreTables, x: np.ndarray, T: int, record: bool, counts: np.ndarray,
          output: np.ndarray, rec: np.ndarray, rec_n: np.ndarray) -> None:
    k.run_images(x, T, tables.layers, tables.leaks, tables.leak_shift, tables.thresholds,
                 tables.lo, tables.hi, tables.projs, tables.proj_start, tables.weights,
                 k.default_blocks(x.shape[0]), record, counts, output, rec, rec_n,
                 tables.bias, tables.leak_truncate, k.split_images(x.shape[0]))


def run_tables(tables: CoreTables, x: np.ndarray, T: int,
               record_spikes: bool) -> FunctionalResult:
    """Run flat images ``x`` through prepared tables (float64 or int64 arithmetic).

    ``output`` has the biases' dtype: float64 sums, or int64 membranes in fixed point.
    """
    n_images = x.shape[0]
    n_layers = tables.layers.shape[0]
    n_classes = int(tables.layers[-1, k.L_N])
    counts = np.zeros((n_images, T, n_layers, k.N_COUNTS), dtype=np.int64)
    output = np.zeros((n_images, n_classes), dtype=tables.bias.dtype)
    trains: list[dict[str, SpikeTrain]] | None = None
    if record_spikes:
        trains = []
        for lo in range(0, n_images, RECORD_CHUNK):
            hi = min(n_images, lo + RECORD_CHUNK)
            rec = np.zeros((hi - lo, tables.rec_size), dtype=np.int32)
            rec_n = np.zeros((hi - lo, n_layers, T), dtype=np.int64)
            _call(tables, x[lo:hi], T, True, counts[lo:hi], output[lo:hi], rec, rec_n)
            trains.extend(spike_trains(tables, rec, rec_n))
    elif n_images:
        rec = np.zeros((1, 0), dtype=np.int32)
        rec_n = np.zeros((1, n_layers, T), dtype=np.int64)
        _call(tables, x, T, False, counts, output, rec, rec_n)
    predictions = np.argmax(output, axis=1).astype(np.int64) if n_images else np.zeros(
        0, dtype=np.int64)
    return FunctionalResult(predictions=predictions, output=output,
                            counts=counts_frame(counts, tables.names), spikes=trains)
