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

from accelsim.chip.hardware import SYNAPSE_KINDS, Hardware
from accelsim.chip.mapping import LayerPlacement, Mapping
from accelsim.model.network import INPUT, Network, Projection, pooled_shape


def ceil_div(a, b):
    """Integer ceiling division for scalars and int arrays."""
    return -(-a // b)


@dataclass(frozen=True)
class FanOut:
    """Packets of one source layer: per source neuron, one column per destination tile.

    Source neurons whose spikes cost the same on every destination (in a conv layer, those
    whose kernel window is clipped alike, reaches the same rows of every row band, and whose
    weight rows spill alike) share a *class*, so the per-connection tables are (classes,
    destinations): a handful of rows that stay in cache. Classes are built from the factors
    (window rows, window columns, spill) without a (neurons, destinations) table, so a
    224x224 layer costs memory in its neurons only.
    """

    dest_tiles: np.ndarray   # int64 (D,) global tile ids, consumer layers in network order
    dest_layer: np.ndarray   # int64 (D,) consumer layer index of each column
    neuron_class: np.ndarray  # int64 (N,) the class of each source neuron
    synops: np.ndarray       # int64 (classes, D)
    reach_start: np.ndarray  # int64 (classes + 1,) class c reaches columns
    reach_cols: np.ndarray   # int64 reach_cols[reach_start[c]:reach_start[c + 1]] (synops > 0)
    sram_bits: np.ndarray    # int64 (classes, D)
    dram_bits: np.ndarray    # int64 (classes, D)
    service: np.ndarray      # int64 (classes, D) cycles the destination's unit is busy
    hops_x: np.ndarray       # int64 (S, D)
    hops_y: np.ndarray       # int64 (S, D)
    synops_by_kind: np.ndarray  # int64 (kinds, classes, D): ``synops`` split by SYNAPSE_KINDS


def _join(parts: list[tuple[np.ndarray, tuple[np.ndarray, ...]]], add: bool
          ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Neuron classes of several tables at once: a class per distinct combination of the parts'
    classes; each part's rows are summed (``add``: projections into the same tiles) or put
    side by side (the columns of different consumers). The tables come back C-contiguous, so
    that one compiled kernel serves every plan."""
    if len(parts) == 1:
        cls, tables = parts[0]
        return cls, tuple(np.ascontiguousarray(t) for t in tables)
    key = np.zeros(len(parts[0][0]), dtype=np.int64)
    for cls, tables in parts:
        key = key * len(tables[0]) + cls
    _, first, joint = np.unique(key, return_index=True, return_inverse=True)
    rows = [tuple(t[cls[first]] for t in tables) for cls, tables in parts]
    combine = sum if add else (lambda ts: np.concatenate(list(ts), axis=1))
    return joint.reshape(-1).astype(np.int64), tuple(
        np.ascontiguousarray(combine(r[k] for r in rows)) for k in range(len(rows[0])))


@dataclass(frozen=True)
class Plan:
    """Everything the timing model needs, as flat arrays."""

    network: Network
    hardware: Hardware
    mapping: Mapping
    tile_layer: np.ndarray       # int64 (tiles,)
    tile_neurons: np.ndarray     # int64 (tiles,)
    fire_cycles: np.ndarray      # int64 (tiles,) neuron-update phase length
    mac_cycles: np.ndarray       # int64 (tiles,) analog-input MAC phase (timestep 1), 0 if none
    mac_count: np.ndarray        # int64 (tiles,) MACs of that phase
    mac_sram_bits: np.ndarray    # int64 (tiles,)
    mac_dram_bits: np.ndarray    # int64 (tiles,)
    layer_tiles: tuple[np.ndarray, ...]     # global tile ids per layer
    sources: tuple[tuple[int, ...], ...]    # spiking source layers per layer
    consumers: tuple[tuple[int, ...], ...]  # consumer layers per layer
    fanout: tuple[FanOut | None, ...]       # per layer (None: no consumers)
    neuron_tile: tuple[np.ndarray | None, ...]
    """Per sending layer, int32 (neurons,): each neuron's local tile (None: sends nothing)."""
    neuron_local: tuple[np.ndarray | None, ...]
    """Per sending layer, int32 (neurons,): each neuron's index in its tile's update order."""
    done_cycles: np.ndarray      # int64 (tiles, tiles) latency of the end-of-timestep signal
    router: np.ndarray           # int64 (tiles,) each tile's mesh router, row * cols + col
    packet_cycles: int
    spilling_tiles: int

    @property
    def tiles(self) -> int:
        return len(self.tile_layer)


def _pooled_index(shape: tuple[int, ...], pool: int) -> np.ndarray:
    """Pooled flat CHW index of every source neuron."""
    idx = np.arange(int(np.prod(shape)), dtype=np.int64)
    if len(shape) != 3:
        return idx
    c, h, w = shape
    ch, r = idx // (h * w), idx % (h * w)
    ph, pw = h // pool, w // pool
    return ch * ph * pw + ((r // w) // pool) * pw + (r % w) // pool


def _reach(size: int, out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """bool (size, out): does input position i reach output position o along one axis."""
    d = np.arange(size)[:, None] + padding - np.arange(out)[None, :] * stride
    return (d >= 0) & (d < kernel)


def _projection_fanout(network: Network, p: Projection, place: LayerPlacement,
                       proj_index: int, weight_bits: int
                       ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(class of each source neuron, (synops, SRAM bits, DRAM bits) per class and tile).

    Exact at block boundaries: a spike's synops on a tile count the tile's neurons its kernel
    window (after the folded pool) reaches, so a tile it does not reach gets none.
    """
    src_shape = network.architecture.source_shape(p.source)
    rows = place.projections[proj_index]
    flat = _pooled_index(src_shape, p.pool)
    tiles = len(place.tiles)
    if p.op == "identity":
        local = place.neuron_tiles()[0][flat].astype(np.int64)
        eye = np.eye(tiles, dtype=np.int64)
        return local, (eye, np.zeros_like(eye), np.zeros_like(eye))
    if p.op == "conv":
        c, h, w = pooled_shape(src_shape, p.pool)
        _, ho, wo = place.layer.shape
        # output neurons per column of each tile a source row reaches: the rows of the tile's
        # band it reaches (cumulative counts over rows) times the tile's channels
        ry = _reach(h, ho, p.kernel, p.stride, p.padding)
        cum = np.concatenate([np.zeros((h, 1), dtype=np.int64), ry.cumsum(axis=1)], axis=1)
        y_id, y_rows = _unique_rows((cum[:, place.row_end] - cum[:, place.row_start])
                                    * place.channels[None, :])
        x_id, x_cols = _unique_rows(_reach(w, wo, p.kernel, p.stride, p.padding).sum(
            axis=1, keepdims=True))
        syn = (y_rows[:, None, :] * x_cols[None, :, :]).reshape(-1, tiles)
        _, hh, ww = src_shape
        pos = np.arange(hh * ww)
        pos_cls = y_id[(pos // ww) // p.pool] * len(x_cols) + x_id[(pos % ww) // p.pool]
        row = np.arange(c)
        spill_id, spilled = _unique_rows(row[:, None] >= rows.rows_in_sram[None, :])
        cls = (spill_id[:, None] * len(syn) + pos_cls[None, :]).reshape(-1)
    else:
        syn = place.neurons[None, :]
        thresholds = np.unique(rows.rows_in_sram)
        cls = np.searchsorted(thresholds, flat, side="right")
        rep = np.concatenate([[0], thresholds])  # a source row of each class
        spilled = rep[:, None] >= rows.rows_in_sram[None, :]
    syn = np.broadcast_to(syn[None], (len(spilled),) + syn.shape).reshape(-1, tiles)
    spill = np.repeat(spilled, len(syn) // len(spilled), axis=0)
    bits = syn * weight_bits
    return cls.astype(np.int64), (syn.astype(np.int64), np.where(spill, 0, bits),
                                  np.where(spill, bits, 0))


def _unique_rows(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row class of each row, the distinct rows)."""
    rows, inverse = np.unique(a, axis=0, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), rows.astype(np.int64)


def synapse_kind(p: Projection) -> int:
    """Index in :data:`~accelsim.chip.hardware.SYNAPSE_KINDS` of a projection's synapses: conv,
    linear (dense), identity shortcut (sparse: one listed synapse per source neuron)."""
    return SYNAPSE_KINDS.index({"conv": "conv", "linear": "dense"}.get(p.op, "sparse"))


def _with_kind(fanout: tuple[np.ndarray, tuple[np.ndarray, ...]], p: Projection
               ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """A projection's fan-out tables plus its synops once per synapse kind (zero in the other
    kinds), so that joining projections also sums each kind on its own."""
    cls, (syn, sram, dbits) = fanout
    kind = synapse_kind(p)
    per_kind = tuple(syn if k == kind else np.zeros_like(syn) for k in range(len(SYNAPSE_KINDS)))
    return cls, (syn, sram, dbits, *per_kind)


def accumulate_cycles(synops_by_kind: np.ndarray, hardware: Hardware) -> np.ndarray:
    """Cycles of the accumulate unit for (kinds, ...) synaptic events: each kind's events in
    groups of ``accumulate_units`` at that kind's latency."""
    units = hardware.tile.accumulate_units
    cycles = hardware.synapse_cycles
    return sum(ceil_div(synops_by_kind[k], units) * cycles[kind]
               for k, kind in enumerate(SYNAPSE_KINDS))


def _real_taps(size: int, out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """For each output position of one axis, the kernel taps that land inside the input."""
    o = np.arange(out)[:, None] * stride - padding + np.arange(kernel)[None, :]
    return ((o >= 0) & (o < size)).sum(axis=1).astype(np.int64)


def build_plan(network: Network, hardware: Hardware, mapping: Mapping) -> Plan:
    hw = hardware
    tile_cfg = hw.tile
    layers = network.layers
    index = {layer.name: i for i, layer in enumerate(layers)}
    n_tiles = mapping.tiles_used
    tile_layer = np.zeros(n_tiles, dtype=np.int64)
    tile_neurons = np.zeros(n_tiles, dtype=np.int64)
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
        for pi, p in enumerate(place.layer.inputs):
            if p.source != INPUT or hw.first_layer == "bias":
                continue
            src = network.architecture.input_shape
            if p.op == "conv":
                _, ho, wo = place.layer.shape
                per_row = src[0] * int(_real_taps(src[2], wo, p.kernel, p.stride,
                                                  p.padding).sum())
                cum = np.concatenate([[0], _real_taps(src[1], ho, p.kernel, p.stride,
                                                      p.padding).cumsum()])
                macs = per_row * place.channels * (cum[place.row_end] - cum[place.row_start])
            else:
                macs = int(np.prod(src)) * place.neurons
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
    rr, cc = mapping.tile_row, mapping.tile_col
    dx = np.abs(cc[:, None] - cc[None, :])
    dy = np.abs(rr[:, None] - rr[None, :])
    hop = dx * hw.noc.hop_latency_x_cycles + dy * hw.noc.hop_latency_y_cycles
    fanouts: list[FanOut | None] = []
    neuron_tile: list[np.ndarray | None] = []
    neuron_local: list[np.ndarray | None] = []
    for si, layer in enumerate(layers):
        if not consumers[si]:
            fanouts.append(None)
            neuron_tile.append(None)
            neuron_local.append(None)
            continue
        tile_of, local_of = mapping.layers[si].neuron_tiles()
        neuron_tile.append(tile_of)
        neuron_local.append(local_of)
        parts = []
        for mi in consumers[si]:
            place = mapping.layers[mi]
            parts.append(_join([_with_kind(_projection_fanout(network, p, place, pi,
                                                              tile_cfg.weight_bits), p)
                                for pi, p in enumerate(place.layer.inputs)
                                if p.source == layer.name], add=True))
        dest = np.concatenate([mapping.layers[mi].tiles for mi in consumers[si]])
        dest_layer = np.concatenate([np.full(len(mapping.layers[mi].tiles), mi, dtype=np.int64)
                                     for mi in consumers[si]])
        cls, (syn, sram, dbits, *kinds) = _join(parts, add=False)
        by_kind = np.stack(kinds)
        acc = accumulate_cycles(by_kind, hw)
        svc = np.maximum(np.maximum(acc, 1), ceil_div(ceil_div(
            sram, tile_cfg.weight_sram_word_bits), tile_cfg.weight_sram_banks))
        if dram is not None:
            dcyc = dram.latency_cycles + ceil_div(dbits * spilling,
                                                  dram.bandwidth_bits_per_cycle) + acc
            svc = np.where(dbits > 0, np.maximum(svc, dcyc), svc)
        src_tiles = mapping.layers[si].tiles
        fanouts.append(FanOut(
            dest_tiles=dest, dest_layer=dest_layer, neuron_class=cls,
            reach_start=np.concatenate([[0], np.cumsum((syn > 0).sum(axis=1))]).astype(np.int64),
            reach_cols=np.nonzero(syn > 0)[1].astype(np.int64), synops=syn,
            sram_bits=sram, dram_bits=dbits, service=np.ascontiguousarray(svc, dtype=np.int64),
            hops_x=np.ascontiguousarray(dx[np.ix_(src_tiles, dest)]),
            hops_y=np.ascontiguousarray(dy[np.ix_(src_tiles, dest)]),
            synops_by_kind=by_kind))
    return Plan(
        network=network, hardware=hw, mapping=mapping, tile_layer=tile_layer,
        tile_neurons=tile_neurons, fire_cycles=fire,
        mac_cycles=mac_cycles, mac_count=mac_count, mac_sram_bits=mac_sram,
        mac_dram_bits=mac_dram, layer_tiles=tuple(p.tiles for p in mapping.layers),
        sources=tuple(tuple(s) for s in sources), consumers=tuple(tuple(c) for c in consumers),
        fanout=tuple(fanouts), neuron_tile=tuple(neuron_tile),
        neuron_local=tuple(neuron_local), done_cycles=hop,
        router=(rr * hw.mesh.cols + cc).astype(np.int64), packet_cycles=hw.noc.packet_cycles,
        spilling_tiles=spilling)


def senders(plan: Plan) -> list[int]:
    """The layers that send packets, in network order."""
    return [li for li, (layer, fo) in enumerate(zip(plan.network.layers, plan.fanout,
                                                      strict=True))
            if layer.kind == "spiking" and fo is not None]


def check_sender_chain(plan: Plan) -> None:
    """Raise unless every sending layer depends on the previous one in network order.

    The fast mode (:mod:`accelsim.chip.fast`) times the packets of a timestep layer after
    layer, in network order; that is queue order when every packet of a layer becomes ready
    after every packet of the sending layer before it, which holds when it depends on it (it
    fires after that layer's end-of-timestep signals), as in every VGG and ResNet. Layers in
    parallel branches would interleave, which only the reference mode orders.
    """
    layers = plan.network.layers
    upstream: list[set[int]] = []
    for li in range(len(layers)):
        up = set(plan.sources[li])
        for s in plan.sources[li]:
            up |= upstream[s]
        upstream.append(up)
    order = senders(plan)
    for a, b in zip(order, order[1:], strict=False):
        if a not in upstream[b]:
            raise ValueError(
                f"layer {layers[b].name!r} does not depend on {layers[a].name!r}, and both "
                "send spikes: the fast mode cannot interleave parallel senders in queue order; "
                "simulate this network with mode='reference'")
