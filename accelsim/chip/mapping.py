"""Placing a network on the tiles of a chip.

Policy (deterministic, stated once here; ``hardware.mapping`` chooses it):

1. A tile holds one block of one layer: a range of output channels (units) times a range of
   rows, all columns. On ``n`` tiles a layer of ``C`` channels is cut into ``g`` *channel
   groups* (sizes differ by at most one), and each group into ``n // g`` or ``n // g + 1`` *row
   bands* (the first ``n % g`` groups get one more; row counts differ by at most one). A spike
   is one packet per tile its kernel window reaches: with ``g`` groups that is ``g`` tiles per
   band under the window. Row bands keep packets few but put all of a spike's work on the
   band's tile; channel groups share every spike's work among ``g`` tiles, wherever on the
   map the spikes fall, at ``g`` packets a spike. ``g`` is chosen per layer as the one with
   which a spike holds its busiest resource the shortest: the sender's port (``packets x
   noc.packet_cycles``) or the busiest receiving tile (its accumulate cycles for the spike,
   at least a packet's ejection); ties go to fewer packets, then to more groups. Only ``g``
   whose tiles keep their weights in SRAM, hold at most ``tile.max_neurons`` neurons and have
   bands of at least one row compete; when no ``g`` keeps the weights in SRAM, ``g = min(n,
   C)`` (fewest weights per tile; the rest spill). A layer fed only by the analog input sends
   nothing to itself: ``g = min(n, C)``, so its own spikes leave from every tile alike. Linear
   layers have one row: ``g = n``.
2. Tiles per layer. Every layer gets at least the tiles it needs to respect
   ``tile.max_neurons`` (row bands when one channel exceeds a tile).

   - ``spread``: every tile is used. The remaining tiles go, one at a time, to the layer with
     the most weight bits per tile (ties: the earlier layer) while splitting it further by
     channel lowers that; this minimises the largest per-tile weight footprint. Tiles still
     left go, one at a time, to the layer with the most neurons per tile (its work per
     timestep), until every tile is used or every band is one row.
   - ``compact``: each layer gets the fewest tiles that hold its neurons and keep its weights
     in SRAM; unused tiles stay dark (no static power). When the chip has fewer tiles than
     that, the spare tiles go as under ``spread`` (most weight bits per tile first), no layer
     beyond its fewest.

   ``mapping.tiles_per_layer`` fixes the count of the layers it names; the others share the
   tiles that remain by the policy.
3. Placement. Layers occupy consecutive tile numbers in layer order. ``spread`` lays them
   row by row (tile ``i`` at mesh row ``i // cols``, column ``i % cols``); ``compact`` lays
   them in a snake (even rows left to right, odd rows right to left), so that consecutive
   tiles, and with them a layer's last tile and its consumer's first, are always one hop
   apart.
4. A tile's weights are laid out row by row: one row per presynaptic source channel (conv) or
   source unit (linear), projections in the layer's order. Rows are kept in SRAM while they fit;
   the remaining rows are *spilled*: they stay in DRAM and are streamed on every use.

Consequences the tests check by hand. A spike of a dense layer is one packet per tile of each
consumer: on 784-512-256-10 with fc1, fc2, fc3 on 4, 1, 1 tiles (``compact`` on
``loihi-like``, whose 128 KiB hold fc2's 512 x 256 weights on one tile) every spike is one
packet; ``spread`` puts fc2 on 32 tiles and fc1's spikes become 32 packets. Under ``compact``
fc1's tile ``j`` is ``4 - j`` hops from fc2. No tile's SRAM holds more than its capacity.

A network that cannot be mapped raises :class:`MappingError` naming the layer, what it needs,
what the chip has and what would fit (tiles, neurons per tile, SRAM per tile).
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass

import numpy as np
import pandas as pd

from accelsim.chip.hardware import Hardware
from accelsim.model.network import INPUT, Layer, Network, Projection, pooled_shape
from accelsim.workflow import columns as col


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
    channel_start: np.ndarray
    """int64 (n,) per tile k: it holds channels (units) ``channel_start[k]:channel_end[k]``"""
    channel_end: np.ndarray
    row_start: np.ndarray
    """int64 (n,): and rows ``row_start[k]:row_end[k]`` of them (0:1 for a linear layer)."""
    row_end: np.ndarray
    projections: tuple[ProjectionRows, ...]
    weight_bits: np.ndarray
    """int64 (n,): weight bits each tile needs."""
    sram_bits: np.ndarray
    """int64 (n,): weight bits kept in SRAM on each tile."""

    @property
    def spilled_bits(self) -> np.ndarray:
        return self.weight_bits - self.sram_bits

    @property
    def channels(self) -> np.ndarray:
        """int64 (n,): output channels (units) per tile, whose weights it needs."""
        return self.channel_end - self.channel_start

    @property
    def neurons(self) -> np.ndarray:
        return self.channels * (self.row_end - self.row_start) * _chw(self.layer)[2]

    def neuron_tiles(self) -> tuple[np.ndarray, np.ndarray]:
        """int32 (neurons,) twice, in flat (C, H, W) order: every neuron's local tile index, and
        its index among that tile's neurons (which the tile updates in flat order)."""
        c, h, w = _chw(self.layer)
        tile = np.empty((c, h), dtype=np.int32)
        local = np.empty((c, h), dtype=np.int64)
        for k in range(len(self.tiles)):
            c0, c1 = self.channel_start[k], self.channel_end[k]
            y0, y1 = self.row_start[k], self.row_end[k]
            tile[c0:c1, y0:y1] = k
            local[c0:c1, y0:y1] = np.arange((c1 - c0) * (y1 - y0)).reshape(c1 - c0, y1 - y0)
        local = (local[:, :, None] * w + np.arange(w)[None, None, :]).astype(np.int32)
        return np.repeat(tile.reshape(-1), w), local.reshape(-1)


@dataclass(frozen=True)
class Mapping:
    """A complete placement of a network on a chip."""

    hardware: Hardware
    layers: tuple[LayerPlacement, ...]
    tile_row: np.ndarray
    """int64 (tiles,): the mesh row of every tile (policy 3)."""
    tile_col: np.ndarray
    """int64 (tiles,): its mesh column."""

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


def _chw(layer: Layer) -> tuple[int, int, int]:
    """(channels or units, rows, columns); a linear layer is (units, 1, 1)."""
    if len(layer.shape) == 3:
        return int(layer.shape[0]), int(layer.shape[1]), int(layer.shape[2])
    return int(layer.shape[0]), 1, 1


def max_tiles(layer: Layer) -> int:
    """The most tiles a layer can use: one row of one channel (one unit) per tile."""
    c, h, _ = _chw(layer)
    return c * h


def min_tiles(layer: Layer, max_neurons: int) -> int:
    """The fewest tiles that hold ``layer`` with at most ``max_neurons`` neurons per tile; 0
    when one row (one unit) is already too many."""
    c, h, w = _chw(layer)
    if h * w <= max_neurons:
        return -(-c // (max_neurons // (h * w)))
    rows = max_neurons // w
    return c * -(-h // rows) if rows else 0


def _even(total: int, parts: int) -> np.ndarray:
    """Starts of ``parts`` contiguous pieces of ``total`` whose sizes differ by at most one."""
    sizes = np.full(parts, total // parts, dtype=np.int64)
    sizes[:total % parts] += 1
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


Blocks = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def partition(layer: Layer, n: int, groups: int | None = None) -> Blocks:
    """(channel_start, channel_end, row_start, row_end) per tile of ``layer`` on ``n`` tiles in
    ``groups`` channel groups (default ``min(n, C)``), each cut into row bands (policy 1)."""
    c, h, _ = _chw(layer)
    g = min(n, c) if groups is None else groups
    ch = _even(c, g)
    bands = np.diff(_even(n, g))
    cs, ce, rs, re = [], [], [], []
    for j, k in enumerate(bands.tolist()):
        rows = _even(h, k)
        cs += [ch[j]] * k
        ce += [ch[j + 1]] * k
        rs += rows[:-1].tolist()
        re += rows[1:].tolist()
    return tuple(np.array(a, dtype=np.int64) for a in (cs, ce, rs, re))  # type: ignore[return-value]


def _groups(network: Network, layer: Layer, n: int, hw: Hardware) -> int:
    """The channel groups of ``layer`` on ``n`` tiles (policy 1)."""
    c, h, w = _chw(layer)
    if h == 1:
        return min(n, c)
    per_channel = _layer_weight_bits(network, layer, hw.tile.weight_bits) // c
    shaped = [g for g in range(1, min(n, c) + 1)
              if -(-n // g) <= h and -(-c // g) * -(-h // (n // g)) * w <= hw.tile.max_neurons]
    fitting = [g for g in shaped if -(-c // g) * per_channel <= hw.tile.weight_sram_capacity_bits]
    if not fitting:
        return min(n, c)
    return min(fitting, key=lambda g: _spike_cost(network, layer, n, g, hw))


def _spike_cost(network: Network, layer: Layer, n: int, g: int, hw: Hardware
                ) -> tuple[float, float, int]:
    """(cycles one spike holds its busiest resource, packets, -g) for ``layer`` on ``n`` tiles in
    ``g`` channel groups: the worst over its spiking conv projections (policy 1)."""
    c, h, w = _chw(layer)
    pc = hw.noc.packet_cycles
    units = hw.tile.accumulate_units
    worst = (0.0, 0.0)
    for p in layer.inputs:
        if p.source == INPUT or p.op != "conv":
            continue
        reach = -(-p.kernel // p.stride)  # output rows (columns) one spike reaches
        # g tiles per band under the window: 1 + (reach - 1) / (rows per band) bands on average
        packets = min(n, g + (min(reach, h) - 1) * n / h)
        synops = -(-c // g) * min(reach, h, -(-h // (n // g))) * min(reach, w)
        busy = max(pc, -(-synops // units) * hw.synapse_cycles["conv"])
        worst = max(worst, (max(pc * packets, busy), packets))
    return (*worst, -g)


def blocks(network: Network, layer: Layer, n: int, hw: Hardware) -> Blocks:
    """The blocks of ``layer`` on ``n`` tiles under the policy."""
    return partition(layer, n, _groups(network, layer, n, hw))


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
    channels = _chw(layer)[0]
    return sum(rows * bits * channels for rows, bits in
               (_row_shape(network, layer, p, weight_bits) for p in layer.inputs))




def _fitting_neurons(layers, available: int, fixed: dict[int, int]) -> int | None:
    """The smallest ``tile.max_neurons`` with which ``layers`` fit on ``available`` tiles."""
    free = available - sum(fixed.values())
    todo = [layer for i, layer in enumerate(layers) if i not in fixed]
    if free < len(todo):
        return None
    lo, hi = 1, max(layer.neurons for layer in todo) if todo else 1
    while lo < hi:
        mid = (lo + hi) // 2
        need = [min_tiles(layer, mid) for layer in todo]
        if all(need) and sum(need) <= free:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _allocate(network: Network, hw: Hardware, fixed: dict[int, int]) -> list[int]:
    """Tiles per layer: the neuron-limit minimum, ``fixed`` counts, then spare tiles greedily."""
    layers = network.layers
    available = hw.mesh.tiles
    cap = hw.tile.max_neurons
    if len(layers) > available:
        raise MappingError(f"network {network.name!r} has {len(layers)} layers; the chip "
                           f"{hw.name!r} has {available} tiles ({hw.mesh.rows}x{hw.mesh.cols}) "
                           "and a tile holds one layer: use a larger mesh (mesh.rows, mesh.cols)")
    counts = []
    for i, layer in enumerate(layers):
        need = min_tiles(layer, cap)
        if need == 0:
            w = _chw(layer)[2]
            raise MappingError(f"layer {layer.name!r}: one row of a channel has {w} neurons; a "
                               f"tile of {hw.name!r} holds at most tile.max_neurons={cap} and "
                               f"holds whole rows: set tile.max_neurons >= {w}")
        counts.append(fixed.get(i, need))
    if sum(counts) > available:
        worst = int(np.argmax(counts))
        why = "tiles_per_layer and " if fixed else ""
        fits = _fitting_neurons(layers, available, fixed)
        hint = (f"; it fits with tile.max_neurons >= {fits}" if fits is not None else "")
        raise MappingError(f"network {network.name!r} needs {sum(counts)} tiles ({why}"
                           f"tile.max_neurons={cap}; layer {layers[worst].name!r} alone needs "
                           f"{counts[worst]}); the chip {hw.name!r} has {available}: use a "
                           f"mesh of at least {sum(counts)} tiles{hint}")
    spare = available - sum(counts)
    bits = [_layer_weight_bits(network, layer, hw.tile.weight_bits) for layer in layers]
    compact = hw.mapping.policy == "compact"
    most = [_fewest_holding(network, layer, counts[i], hw) if compact else _chw(layer)[0]
            for i, layer in enumerate(layers)]
    fewest = [counts[i] if i in fixed else most[i] for i in range(len(layers))]
    if compact and sum(fewest) <= available:
        return fewest
    # split by channel where that lowers the largest per-tile weight footprint
    heap = [(-bits[i] / counts[i], i) for i in range(len(layers))
            if counts[i] < most[i] and i not in fixed]
    heapq.heapify(heap)
    while spare > 0 and heap:
        _, i = heapq.heappop(heap)
        counts[i] += 1
        spare -= 1
        if counts[i] < most[i]:
            heapq.heappush(heap, (-bits[i] / counts[i], i))
    if compact:
        return counts

    # row bands where that lowers the most neurons on one tile
    def load(i: int) -> int:
        c0, c1, r0, r1 = blocks(network, layers[i], counts[i], hw)
        return int(((c1 - c0) * (r1 - r0)).max())

    heap = [(-load(i), i) for i in range(len(layers))
            if counts[i] < max_tiles(layers[i]) and i not in fixed]
    heapq.heapify(heap)
    while spare > 0 and heap:
        _, i = heapq.heappop(heap)
        counts[i] += 1
        spare -= 1
        if counts[i] < max_tiles(layers[i]):
            heapq.heappush(heap, (-load(i), i))
    return counts


def _fewest_holding(network: Network, layer: Layer, least: int, hw: Hardware) -> int:
    """The fewest tiles (at least ``least``) on which ``layer``'s neurons fit and its weights
    stay in SRAM; ``least`` when no number of tiles keeps them in SRAM."""
    c, h, w = _chw(layer)
    per_channel = _layer_weight_bits(network, layer, hw.tile.weight_bits) // c
    if not 0 < per_channel <= hw.tile.weight_sram_capacity_bits:
        return least
    groups = -(-c // (hw.tile.weight_sram_capacity_bits // per_channel))
    for n in range(max(least, groups), max_tiles(layer) + 1):
        c0, c1, r0, r1 = blocks(network, layer, n, hw)
        if (int(((c1 - c0) * (r1 - r0)).max()) * w <= hw.tile.max_neurons
                and int((c1 - c0).max()) * per_channel <= hw.tile.weight_sram_capacity_bits):
            return n
    return least


def _holding_mesh(network: Network, hw: Hardware) -> str:
    """", or on a mesh of at least N tiles": the fewest tiles that keep every layer's weights
    in SRAM (empty when a single channel's weights exceed a tile's SRAM)."""
    cap = hw.tile.weight_sram_capacity_bits
    tiles = 0
    for layer in network.layers:
        least = min_tiles(layer, hw.tile.max_neurons)
        n = _fewest_holding(network, layer, least, hw)
        c0, c1, _, _ = blocks(network, layer, n, hw)
        if int((c1 - c0).max()) * (_layer_weight_bits(network, layer, hw.tile.weight_bits)
                                   // _chw(layer)[0]) > cap:
            return ""
        tiles += n
    return f", or on a mesh of at least {tiles} tiles"


def _positions(tiles: int, cols: int, snake: bool) -> tuple[np.ndarray, np.ndarray]:
    """(mesh row, mesh column) of tiles ``0..tiles-1``: row by row, or as a snake (policy 3)."""
    i = np.arange(tiles, dtype=np.int64)
    row, col_ = i // cols, i % cols
    if snake:
        col_ = np.where(row % 2 == 1, cols - 1 - col_, col_)
    return row, col_


def map_network(network: Network, hardware: Hardware,
                tiles_per_layer: MappingABC[str, int] | None = None) -> Mapping:
    """Place ``network`` on ``hardware`` (policy in the module docstring).

    ``tiles_per_layer`` fixes the tile count of the layers it names, over
    ``hardware.mapping.tiles_per_layer`` (more tiles than channels split the layer into row
    bands); the other layers follow the policy with the tiles that remain.
    """
    hw = hardware
    fixed: dict[int, int] = {}
    tiles_per_layer = {**hw.mapping.tiles_per_layer, **(tiles_per_layer or {})}
    if tiles_per_layer:
        names = [layer.name for layer in network.layers]
        for name, n in tiles_per_layer.items():
            if name not in names:
                raise MappingError(f"tiles_per_layer names layer {name!r}; the network has "
                                   f"{names}")
            layer = network.architecture.layer(name)
            c, h, _ = _chw(layer)
            if not 1 <= int(n) <= max_tiles(layer):
                raise MappingError(f"tiles_per_layer[{name!r}] = {n}: must be between 1 and "
                                   f"{max_tiles(layer)}: the layer's {c} channels/units x {h} "
                                   "rows, one row per tile at most")
            fixed[names.index(name)] = int(n)
    counts = _allocate(network, hw, fixed)
    placements = []
    next_tile = 0
    cap = hw.tile.weight_sram_capacity_bits
    for layer, n in zip(network.layers, counts, strict=True):
        c0, c1, r0, r1 = blocks(network, layer, n, hw)
        channels = c1 - c0
        most = int((channels * (r1 - r0)).max()) * _chw(layer)[2]
        if most > hw.tile.max_neurons:
            raise MappingError(f"layer {layer.name!r}: {most} neurons per tile on {n} tiles; a "
                               f"tile holds tile.max_neurons={hw.tile.max_neurons}: give the "
                               f"layer at least {min_tiles(layer, hw.tile.max_neurons)} tiles")
        free = np.full(n, cap, dtype=np.int64)
        rows_info = []
        total = np.zeros(n, dtype=np.int64)
        for p in layer.inputs:
            rows, bits = _row_shape(network, layer, p, hw.tile.weight_bits)
            row_bits = channels * bits
            in_sram = (np.minimum(rows, free // np.maximum(row_bits, 1)) if rows
                       else np.zeros(n, dtype=np.int64))
            free -= in_sram * row_bits
            total += rows * row_bits
            rows_info.append(ProjectionRows(projection=p, source=p.source, rows=rows,
                                            row_bits=row_bits, rows_in_sram=in_sram))
        sram = cap - free
        if (total > sram).any() and hw.dram is None:
            k = int(np.argmax(total))
            raise MappingError(f"layer {layer.name!r}: a tile needs {int(total[k])} weight bits "
                               f"on {n} tiles, tile.weight_sram_capacity_bits={cap} on "
                               f"{hw.name!r}, which has no DRAM to spill to: it fits with "
                               f"tile.weight_sram_capacity_bits >= {int(total.max())}"
                               f"{_holding_mesh(network, hw)}, or add DRAM")
        placements.append(LayerPlacement(
            layer=layer, tiles=np.arange(next_tile, next_tile + n, dtype=np.int64),
            channel_start=c0, channel_end=c1, row_start=r0, row_end=r1,
            projections=tuple(rows_info),
            weight_bits=total, sram_bits=sram))
        next_tile += n
    row, column = _positions(next_tile, hw.mesh.cols, hw.mapping.policy == "compact")
    return Mapping(hardware=hw, layers=tuple(placements), tile_row=row, tile_col=column)
