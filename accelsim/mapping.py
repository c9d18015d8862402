"""Placing a network on the tiles of a chip.

Policy (deterministic, stated once here):

1. Each layer's neurons are partitioned by *output channel* (conv) or *unit* (linear) into
   contiguous blocks whose sizes differ by at most one; a tile holds one block of one layer.
2. Every layer gets at least the tiles it needs to respect ``tile.max_neurons``. The remaining
   tiles go, one at a time, to the layer with the most weight bits per tile (ties: the earlier
   layer), until every tile is used or no layer can be split further (one channel per tile).
   This minimises the largest per-tile weight footprint.
3. Layers occupy consecutive tile numbers in layer order; tile ``i`` sits at mesh row
   ``i // cols``, column ``i % cols``.
4. A tile's weights are laid out row by row: one row per presynaptic source channel (conv) or
   source unit (linear), projections in the layer's order. Rows are kept in SRAM while they fit;
   the remaining rows are *spilled*: they stay in DRAM and are streamed on every use.

A network that cannot be mapped raises :class:`MappingError` naming the layer, what it needs and
what the chip has.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass

import numpy as np
import pandas as pd

from accelsim import columns as col
from accelsim.hardware import Hardware
from accelsim.network import Layer, Network, Projection, pooled_shape


class MappingError(ValueError):
    """The network does not fit the chip."""


@dataclass(frozen=True)
class ProjectionRows:
    """Weight rows of one projection on the tiles of its layer."""

    projection: Projection
    source: str
    rows: int
    """Rows (presynaptic channels or units); 0 for identity projections."""
    row_bits: np.ndarray
    """int64 (tiles,): bits of one row on each tile of the layer."""
    rows_in_sram: np.ndarray
    """int64 (tiles,): rows of this projection kept in SRAM on each tile (the rest spill)."""


@dataclass(frozen=True)
class LayerPlacement:
    """Where one layer lives."""

    layer: Layer
    tiles: np.ndarray
    """int64 (n,): global tile ids."""
    block_start: np.ndarray
    """int64 (n + 1,): the tile k holds channels/units ``block_start[k]:block_start[k+1]``."""
    neurons_per_channel: int
    projections: tuple[ProjectionRows, ...]
    weight_bits: np.ndarray
    """int64 (n,): weight bits each tile needs."""
    sram_bits: np.ndarray
    """int64 (n,): weight bits kept in SRAM on each tile."""

    @property
    def spilled_bits(self) -> np.ndarray:
        return self.weight_bits - self.sram_bits

    @property
    def neurons(self) -> np.ndarray:
        return np.diff(self.block_start) * self.neurons_per_channel

    def neuron_tile(self) -> np.ndarray:
        """int64 (neurons,): local tile index of every neuron (CHW flat order)."""
        return np.repeat(np.arange(len(self.tiles)), self.neurons)


@dataclass(frozen=True)
class Mapping:
    """A complete placement of a network on a chip."""

    hardware: Hardware
    layers: tuple[LayerPlacement, ...]

    def placement(self, name: str) -> LayerPlacement:
        for p in self.layers:
            if p.layer.name == name:
                return p
        raise KeyError(name)

    @property
    def tiles_used(self) -> int:
        return sum(len(p.tiles) for p in self.layers)

    def table(self) -> pd.DataFrame:
        """One row per layer: tiles, first tile, and the worst tile's load."""
        cap = self.hardware.tile.weight_sram_capacity_bits
        return pd.DataFrame({
            col.LAYER: [p.layer.name for p in self.layers],
            col.TILES: np.array([len(p.tiles) for p in self.layers], dtype=np.int64),
            col.FIRST_TILE: np.array([p.tiles[0] for p in self.layers], dtype=np.int64),
            col.NEURONS_PER_TILE: np.array([p.neurons.max() for p in self.layers],
                                           dtype=np.int64),
            col.WEIGHT_BITS_PER_TILE: np.array([p.weight_bits.max() for p in self.layers],
                                               dtype=np.int64),
            col.SRAM_UTILISATION: np.array([p.sram_bits.max() / cap for p in self.layers]),
            col.SPILLED_BYTES: np.array([int(p.spilled_bits.sum()) // 8 for p in self.layers],
                                        dtype=np.int64),
        })


def _channels(layer: Layer) -> tuple[int, int]:
    """(channels or units, neurons per channel)."""
    if len(layer.shape) == 3:
        return int(layer.shape[0]), int(layer.shape[1] * layer.shape[2])
    return int(layer.shape[0]), 1


def _row_shape(network: Network, layer: Layer, p: Projection, weight_bits: int
               ) -> tuple[int, int]:
    """(rows, bits per row per output channel) of a projection's weights."""
    if p.op == "identity":
        return 0, 0
    src = pooled_shape(network.architecture.source_shape(p.source), p.pool)
    if p.op == "conv":
        return int(src[0]), p.kernel * p.kernel * weight_bits
    return int(np.prod(src)), weight_bits


def _layer_weight_bits(network: Network, layer: Layer, weight_bits: int) -> int:
    channels, _ = _channels(layer)
    return sum(rows * bits * channels for rows, bits in
               (_row_shape(network, layer, p, weight_bits) for p in layer.inputs))


def _allocate(network: Network, hw: Hardware, fixed: dict[int, int]) -> list[int]:
    """Tiles per layer: the neuron-limit minimum, ``fixed`` counts, then spare tiles greedily."""
    layers = network.layers
    available = hw.mesh.tiles
    if len(layers) > available:
        raise MappingError(f"network {network.name!r} has {len(layers)} layers; the chip "
                           f"{hw.name!r} has {available} tiles ({hw.mesh.rows}x{hw.mesh.cols}) "
                           "and a tile holds one layer: use a larger mesh (mesh.rows, mesh.cols)")
    counts = []
    for layer in layers:
        channels, per_channel = _channels(layer)
        if per_channel > hw.tile.max_neurons:
            raise MappingError(f"layer {layer.name!r}: one channel has {per_channel} neurons; a "
                               f"tile of {hw.name!r} holds at most tile.max_neurons="
                               f"{hw.tile.max_neurons}")
        fit = hw.tile.max_neurons // per_channel
        counts.append(fixed.get(len(counts), -(-channels // fit)))
    if sum(counts) > available:
        worst = int(np.argmax(counts))
        why = "tiles_per_layer and " if fixed else ""
        raise MappingError(f"network {network.name!r} needs {sum(counts)} tiles ({why}"
                           f"tile.max_neurons={hw.tile.max_neurons}; layer "
                           f"{layers[worst].name!r} alone needs {counts[worst]}); the chip "
                           f"{hw.name!r} has {available}")
    bits = [_layer_weight_bits(network, layer, hw.tile.weight_bits) for layer in layers]
    heap = [(-bits[i] / counts[i], i) for i in range(len(layers))
            if counts[i] < _channels(layers[i])[0] and i not in fixed]
    heapq.heapify(heap)
    spare = available - sum(counts)
    while spare > 0 and heap:
        _, i = heapq.heappop(heap)
        counts[i] += 1
        spare -= 1
        if counts[i] < _channels(layers[i])[0]:
            heapq.heappush(heap, (-bits[i] / counts[i], i))
    return counts


def map_network(network: Network, hardware: Hardware,
                tiles_per_layer: MappingABC[str, int] | None = None) -> Mapping:
    """Place ``network`` on ``hardware`` (policy in the module docstring).

    ``tiles_per_layer`` fixes the tile count of the layers it names; the other layers follow the
    policy with the tiles that remain.
    """
    hw = hardware
    fixed: dict[int, int] = {}
    if tiles_per_layer:
        names = [layer.name for layer in network.layers]
        for name, n in tiles_per_layer.items():
            if name not in names:
                raise MappingError(f"tiles_per_layer names layer {name!r}; the network has "
                                   f"{names}")
            channels, _ = _channels(network.architecture.layer(name))
            if not 1 <= int(n) <= channels:
                raise MappingError(f"tiles_per_layer[{name!r}] = {n}: must be between 1 and "
                                   f"the layer's {channels} channels/units")
            fixed[names.index(name)] = int(n)
    counts = _allocate(network, hw, fixed)
    placements = []
    next_tile = 0
    cap = hw.tile.weight_sram_capacity_bits
    for layer, n in zip(network.layers, counts, strict=True):
        channels, per_channel = _channels(layer)
        sizes = np.full(n, channels // n, dtype=np.int64)
        sizes[:channels % n] += 1
        block_start = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        if sizes.max() * per_channel > hw.tile.max_neurons:
            raise MappingError(f"layer {layer.name!r}: {int(sizes.max()) * per_channel} neurons "
                               f"per tile on {n} tiles; a tile holds tile.max_neurons="
                               f"{hw.tile.max_neurons}: give the layer more tiles")
        free = np.full(n, cap, dtype=np.int64)
        rows_info = []
        total = np.zeros(n, dtype=np.int64)
        for p in layer.inputs:
            rows, bits = _row_shape(network, layer, p, hw.tile.weight_bits)
            row_bits = sizes * bits
            in_sram = (np.minimum(rows, free // np.maximum(row_bits, 1)) if rows
                       else np.zeros(n, dtype=np.int64))
            free -= in_sram * row_bits
            total += rows * row_bits
            rows_info.append(ProjectionRows(projection=p, source=p.source, rows=rows,
                                            row_bits=row_bits, rows_in_sram=in_sram))
        sram = cap - free
        if (total > sram).any() and hw.dram is None:
            k = int(np.argmax(total))
            raise MappingError(f"layer {layer.name!r}: a tile needs {int(total[k])} weight bits, "
                               f"tile.weight_sram_capacity_bits={cap} on {hw.name!r}, which has "
                               "no DRAM to spill to: give the layer more tiles or the tiles "
                               "more SRAM")
        placements.append(LayerPlacement(
            layer=layer, tiles=np.arange(next_tile, next_tile + n, dtype=np.int64),
            block_start=block_start, neurons_per_channel=per_channel,
            projections=tuple(rows_info), weight_bits=total, sram_bits=sram))
        next_tile += n
    return Mapping(hardware=hw, layers=tuple(placements))
