"""Flat per-tile and per-connection tables of a mapped network (what both modes read).

Built once per (network, hardware, mapping): for every spiking layer with consumers, a fan-out
table over (source neuron class, destination tile) giving the synaptic operations the spike causes
on that tile (in total and per synapse kind), the weight bits it fetches from SRAM and from DRAM,
and the tile's service cycles for it (each synapse kind at its own accumulate latency); for
every tile its coordinates, neurons and neuron-update cycles. With ``first_layer: bias`` the
analog input needs no MAC phase: a host computes it and loads it as the neurons' bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accelsim.hardware import SYNAPSE_KINDS, Hardware
from accelsim.mapping import LayerPlacement, Mapping
from accelsim.network import INPUT, Network, Projection, pooled_shape


def ceil_div(a, b):
    """Integer ceiling division for scalars and int arrays."""
    return -(-a // b)


@dataclass(frozen=True)
class FanOut:
    """Packets of one source layer: per source neuron, one column per destination tile.

    Source neurons whose spikes cost the same on every destination (in a conv layer, those
    whose kernel window is clipped alike and whose weight rows spill alike) share a *class*, so
    the per-connection tables are (classes, destinations): a handful of rows that stay in cache.
    """

    dest_tiles: np.ndarray   # int64 (D,) global tile ids, consumer layers in network order
    dest_layer: np.ndarray   # int64 (D,) consumer layer index of each column
    neuron_class: np.ndarray  # int64 (N,) the class of each source neuron
    synops: np.ndarray       # int64 (classes, D)
    sram_bits: np.ndarray    # int64 (classes, D)
    dram_bits: np.ndarray    # int64 (classes, D)
    service: np.ndarray      # int64 (classes, D) cycles the destination's unit is busy
    hop_cycles: np.ndarray   # int64 (S, D) head latency from source tile to destination
    hops_x: np.ndarray       # int64 (S, D)
    hops_y: np.ndarray       # int64 (S, D)
    synops_by_kind: np.ndarray  # int64 (kinds, classes, D): ``synops`` split by SYNAPSE_KINDS


def _classes(*tables: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(class of each row, each table's rows per class): rows equal in every table share one.

    Rows are grouped by a hash (a fast 1-D unique); the grouping is then checked exactly, and
    on a collision the rows are grouped by value.
    """
    rows = np.concatenate(tables, axis=1)
    weights = np.random.default_rng(0).integers(1, 2**61, rows.shape[1], dtype=np.int64)
    _, first, cls = np.unique(rows @ weights, return_index=True, return_inverse=True)
    if not (rows[first][cls] == rows).all():
        _, first, cls = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    return cls.reshape(-1).astype(np.int64), [np.ascontiguousarray(t[first]) for t in tables]


@dataclass(frozen=True)
class Plan:
    """Everything the timing model needs, as flat arrays."""

    network: Network
    hardware: Hardware
    mapping: Mapping
    tile_layer: np.ndarray       # int64 (tiles,)
    tile_neurons: np.ndarray     # int64 (tiles,)
    tile_first_neuron: np.ndarray  # int64 (tiles,) first flat neuron index of the tile's block
    fire_cycles: np.ndarray      # int64 (tiles,) neuron-update phase length
    mac_cycles: np.ndarray       # int64 (tiles,) analog-input MAC phase (timestep 1), 0 if none
    mac_count: np.ndarray        # int64 (tiles,) MACs of that phase
    mac_sram_bits: np.ndarray    # int64 (tiles,)
    mac_dram_bits: np.ndarray    # int64 (tiles,)
    layer_tiles: tuple[np.ndarray, ...]     # global tile ids per layer
    sources: tuple[tuple[int, ...], ...]    # spiking source layers per layer
    consumers: tuple[tuple[int, ...], ...]  # consumer layers per layer
    fanout: tuple[FanOut | None, ...]       # per layer (None: no consumers)
    done_cycles: np.ndarray      # int64 (tiles, tiles) latency of the end-of-timestep signal
    packet_cycles: int
    spilling_tiles: int

    @property
    def tiles(self) -> int:
        return len(self.tile_layer)


def _axis_counts(size: int, out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """For each input position, how many output positions its value reaches along one axis."""
    i = np.arange(size)[:, None]
    o = np.arange(out)[None, :]
    d = i + padding - o * stride
    return ((d >= 0) & (d < kernel)).sum(axis=1).astype(np.int64)


def _pooled_index(shape: tuple[int, ...], pool: int) -> tuple[np.ndarray, np.ndarray]:
    """(pooled channel, pooled flat CHW index) of every source neuron."""
    n = int(np.prod(shape))
    idx = np.arange(n, dtype=np.int64)
    if len(shape) != 3:
        return idx, idx
    c, h, w = shape
    ch = idx // (h * w)
    r = idx % (h * w)
    ph, pw = h // pool, w // pool
    y, x = (r // w) // pool, (r % w) // pool
    return ch, ch * ph * pw + y * pw + x


def _projection_fanout(network: Network, p: Projection, place: LayerPlacement,
                       proj_index: int, weight_bits: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(synops, weight bits in SRAM, weight bits in DRAM), each (source neurons, tiles)."""
    arch = network.architecture
    src_shape = arch.source_shape(p.source)
    channels = np.diff(place.block_start)
    rows = place.projections[proj_index]
    ch, flat = _pooled_index(src_shape, p.pool)
    if p.op == "identity":
        on = (ch[:, None] >= place.block_start[None, :-1]) & (ch[:, None] < place.block_start[
            None, 1:])
        syn = on.astype(np.int64)
        zero = np.zeros_like(syn)
        return syn, zero, zero
    if p.op == "conv":
        _, h, w = pooled_shape(src_shape, p.pool)
        _, ho, wo = place.layer.shape
        cy = _axis_counts(h, ho, p.kernel, p.stride, p.padding)
        cx = _axis_counts(w, wo, p.kernel, p.stride, p.padding)
        c, hh, ww = src_shape
        idx = np.arange(c * hh * ww)
        r = idx % (hh * ww)
        pos = cy[(r // ww) // p.pool] * cx[(r % ww) // p.pool]
        syn = pos[:, None] * channels[None, :]
        row = ch
    else:
        syn = np.broadcast_to(channels[None, :], (len(flat), len(channels))).astype(np.int64)
        row = flat
    bits = syn * weight_bits
    spilled = row[:, None] >= rows.rows_in_sram[None, :]
    return syn, np.where(spilled, 0, bits), np.where(spilled, bits, 0)


def synapse_kind(p: Projection) -> int:
    """Index in :data:`~accelsim.hardware.SYNAPSE_KINDS` of a projection's synapses: conv,
    linear (dense), identity shortcut (sparse: one listed synapse per source neuron)."""
    return SYNAPSE_KINDS.index({"conv": "conv", "linear": "dense"}.get(p.op, "sparse"))


def _split_by_kind(syn: np.ndarray, column_kind: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """(kinds, classes, D) synaptic events: a destination column fed through one synapse kind
    (``column_kind``) holds all of ``syn`` there; the columns fed through several (-1) take
    their split from ``mix`` (classes, kinds x mixed columns)."""
    kinds = len(SYNAPSE_KINDS)
    out = np.stack([np.where(column_kind == k, syn, 0) for k in range(kinds)])
    mixed = column_kind < 0
    if mixed.any():
        out[:, :, mixed] = mix.reshape(len(syn), kinds, -1).transpose(1, 0, 2)
    return out


def accumulate_cycles(synops_by_kind: np.ndarray, hardware: Hardware) -> np.ndarray:
    """Cycles of the accumulate unit for (kinds, ...) synaptic events: each kind's events in
    groups of ``accumulate_units`` at that kind's latency."""
    units = hardware.tile.accumulate_units
    cycles = hardware.synapse_cycles
    return sum(ceil_div(synops_by_kind[k], units) * cycles[kind]
               for k, kind in enumerate(SYNAPSE_KINDS))


def _coords(tiles: np.ndarray, cols: int) -> tuple[np.ndarray, np.ndarray]:
    return tiles // cols, tiles % cols


def _real_taps(size: int, out: int, kernel: int, stride: int, padding: int) -> int:
    """Kernel taps that land inside the input, summed over the output positions of one axis."""
    o = np.arange(out)[:, None] * stride - padding + np.arange(kernel)[None, :]
    return int(((o >= 0) & (o < size)).sum())


def build_plan(network: Network, hardware: Hardware, mapping: Mapping) -> Plan:
    hw = hardware
    tile_cfg = hw.tile
    layers = network.layers
    index = {layer.name: i for i, layer in enumerate(layers)}
    n_tiles = mapping.tiles_used
    tile_layer = np.zeros(n_tiles, dtype=np.int64)
    tile_neurons = np.zeros(n_tiles, dtype=np.int64)
    tile_first = np.zeros(n_tiles, dtype=np.int64)
    mac_cycles = np.zeros(n_tiles, dtype=np.int64)
    mac_count = np.zeros(n_tiles, dtype=np.int64)
    mac_sram = np.zeros(n_tiles, dtype=np.int64)
    mac_dram = np.zeros(n_tiles, dtype=np.int64)
    spilling = int(sum((p.spilled_bits > 0).sum() for p in mapping.layers))
    dram = hw.dram
    sources: list[list[int]] = [[] for _ in layers]
    consumers: list[list[int]] = [[] for _ in layers]
    for li, layer in enumerate(layers):
        for p in layer.inputs:
            if p.source != INPUT:
                s = index[p.source]
                if s not in sources[li]:
                    sources[li].append(s)
                if li not in consumers[s]:
                    consumers[s].append(li)
    for li, place in enumerate(mapping.layers):
        t = place.tiles
        tile_layer[t] = li
        tile_neurons[t] = place.neurons
        tile_first[t] = place.block_start[:-1] * place.neurons_per_channel
        channels = np.diff(place.block_start)
        for pi, p in enumerate(place.layer.inputs):
            if p.source != INPUT or hw.first_layer == "bias":
                continue
            src = network.architecture.input_shape
            if p.op == "conv":
                _, ho, wo = place.layer.shape
                taps = (_real_taps(src[1], ho, p.kernel, p.stride, p.padding)
                        * _real_taps(src[2], wo, p.kernel, p.stride, p.padding))
                per_channel = taps * src[0]
            else:
                per_channel = int(np.prod(src))
            macs = per_channel * channels
            rows = place.projections[pi]
            sram = rows.rows_in_sram * rows.row_bits
            spill = rows.rows * rows.row_bits - sram
            cyc = (ceil_div(macs, tile_cfg.accumulate_units)
                   * hw.synapse_cycles[SYNAPSE_KINDS[synapse_kind(p)]])
            cyc = np.maximum(cyc, ceil_div(ceil_div(sram, tile_cfg.weight_sram_word_bits),
                                           tile_cfg.weight_sram_banks))
            if dram is not None:
                dcyc = np.where(spill > 0, dram.latency_cycles + ceil_div(
                    spill * spilling, dram.bandwidth_bits_per_cycle), 0)
                cyc = np.maximum(cyc, dcyc)
            mac_count[t] += macs
            mac_cycles[t] += cyc
            mac_sram[t] += sram
            mac_dram[t] += spill
    fire = (ceil_div(tile_neurons, tile_cfg.neuron_update_units)
            * tile_cfg.neuron_update_latency_cycles)
    rr, cc = _coords(np.arange(n_tiles), hw.mesh.cols)
    dx = np.abs(cc[:, None] - cc[None, :])
    dy = np.abs(rr[:, None] - rr[None, :])
    hop = dx * hw.noc.hop_latency_x_cycles + dy * hw.noc.hop_latency_y_cycles
    fanouts: list[FanOut | None] = []
    for si, layer in enumerate(layers):
        if not consumers[si]:
            fanouts.append(None)
            continue
        cols, mixed = [], []
        for mi in consumers[si]:
            place = mapping.layers[mi]
            syn = sram = dbits = None
            per_kind: dict[int, np.ndarray] = {}
            for pi, p in enumerate(place.layer.inputs):
                if p.source != layer.name:
                    continue
                a, b, c = _projection_fanout(network, p, place, pi, tile_cfg.weight_bits)
                syn, sram, dbits = (a, b, c) if syn is None else (syn + a, sram + b, dbits + c)
                k = synapse_kind(p)
                per_kind[k] = per_kind[k] + a if k in per_kind else a
            kind = next(iter(per_kind)) if len(per_kind) == 1 else -1
            if kind < 0:
                mixed.append(np.stack([per_kind.get(k, np.zeros_like(syn))
                                       for k in range(len(SYNAPSE_KINDS))], axis=1))
            cols.append((mi, place.tiles, syn, sram, dbits, kind))
        dest = np.concatenate([c[1] for c in cols])
        dest_layer = np.concatenate([np.full(len(c[1]), c[0], dtype=np.int64) for c in cols])
        column_kind = np.concatenate([np.full(len(c[1]), c[5], dtype=np.int64) for c in cols])
        mix = (np.concatenate(mixed, axis=2).reshape(layer.neurons, -1) if mixed else
               np.zeros((layer.neurons, 0), dtype=np.int64))
        cls, (syn, sram, dbits, mix) = _classes(*(
            np.concatenate([c[k] for c in cols], axis=1).astype(np.int64) for k in (2, 3, 4)),
            mix.astype(np.int64))
        by_kind = _split_by_kind(syn, column_kind, mix)
        acc = accumulate_cycles(by_kind, hw)
        svc = np.maximum(np.maximum(acc, 1), ceil_div(ceil_div(
            sram, tile_cfg.weight_sram_word_bits), tile_cfg.weight_sram_banks))
        if dram is not None:
            dcyc = dram.latency_cycles + ceil_div(dbits * spilling,
                                                  dram.bandwidth_bits_per_cycle) + acc
            svc = np.where(dbits > 0, np.maximum(svc, dcyc), svc)
        src_tiles = mapping.layers[si].tiles
        fanouts.append(FanOut(
            dest_tiles=dest, dest_layer=dest_layer, neuron_class=cls, synops=syn,
            sram_bits=sram, dram_bits=dbits, service=np.ascontiguousarray(svc, dtype=np.int64),
            hop_cycles=np.ascontiguousarray(hop[np.ix_(src_tiles, dest)]),
            hops_x=np.ascontiguousarray(dx[np.ix_(src_tiles, dest)]),
            hops_y=np.ascontiguousarray(dy[np.ix_(src_tiles, dest)]),
            synops_by_kind=by_kind))
    return Plan(
        network=network, hardware=hw, mapping=mapping, tile_layer=tile_layer,
        tile_neurons=tile_neurons, tile_first_neuron=tile_first, fire_cycles=fire,
        mac_cycles=mac_cycles, mac_count=mac_count, mac_sram_bits=mac_sram,
        mac_dram_bits=mac_dram, layer_tiles=tuple(p.tiles for p in mapping.layers),
        sources=tuple(tuple(s) for s in sources), consumers=tuple(tuple(c) for c in consumers),
        fanout=tuple(fanouts), done_cycles=hop, packet_cycles=hw.noc.packet_cycles,
        spilling_tiles=spilling)
