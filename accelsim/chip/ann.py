"""The ANN the DIET-SNN was converted from, on the same chip: a full-system baseline.

Same architecture with ReLU and average pooling, no bias (``SpikingNetwork.forward_ann``), run
once per image on the same tiles as the SNN: the same mapping
(:func:`accelsim.chip.mapping.map_network`,
so the same weight rows sit in SRAM and the same ones spill to DRAM), the same mesh, DRAM, clock
and preset, counted with the same counters and priced by the same
:func:`accelsim.chip.pricing.price`,
component by component.

Dataflow (per tile; stated once here)
-------------------------------------
A tile holds a block of a layer (the mapping's channel groups x row bands): ``c`` output
channels (conv) or units (linear), and of a conv layer the rows of its band, all columns. Its ``U =
tile.accumulate_units`` units are multiply-accumulate lanes; every lane keeps its output's partial
sum in a register until the output is complete (*output-stationary*: no partial-sum traffic).

- **conv** (``k x k`` kernel, ``C`` pooled source channels, ``P = rows * W_out`` positions of
  the tile's band): the lanes take ``U`` consecutive output positions (flat order within the
  band) of one channel. Loop nest: for each channel, for
  each group of ``U`` positions (``ceil(P / U)`` groups), for each tap ``(ci, ky, kx)`` that
  lands inside the input for some lane of the group: one weight is read from the weight SRAM and
  broadcast to the lanes; each lane whose tap lands inside the input reads its activation operand
  and does one MAC. So per tile ``MAC steps = c * C * S`` with ``S`` the (tap, group) pairs with
  some tap inside (:func:`conv_steps`; ``k^2 * ceil(P / U)`` without padding), ``weight reads =
  MAC steps`` (each weight is reused by up to ``U`` positions), ``MACs = c * C * sum_out(taps
  inside the input)`` over the band's outputs (padding taps are not multiplied, as in the
  chip's analog first layer), ``activation reads = MACs``.
- **linear** (``F`` pooled source units): the lanes take ``U`` output units; each step reads one
  input activation, broadcast to the lanes, and one weight per lane: ``MAC steps = F * ceil(c /
  U)``, ``activation reads = MAC steps``, ``weight reads = MACs = F * c``.
- **identity** shortcut: one addition (``synaptic_ops``) and one activation read per output,
  ``ceil(c * P / U)`` steps, on the tile that holds the output.
- Weight rows (one per source channel or unit, as the mapping lays them out) that spilled to
  DRAM are streamed from DRAM on every read instead of SRAM (no weight buffer).

Then each output passes the tile's neuron-update unit once (ReLU and rescaling: ``neuron_updates
= neurons``, priced as inactive updates; none are ``active``), and is written to the tile's
activation buffer. Activations are ``tile.activation_bits`` wide; the activation buffer is the
tile's neuron-state memory (the SNN's membranes), so its reads and writes are priced at the
membrane SRAM's per-bit figures, under the ``membrane`` component.

Sending: a layer feeding a pooled projection pools its outputs first (``pool^2 - 1`` additions per
pooled value, counted as ``synaptic_ops`` of the sending layer) on the tile holding the window's
first (top-left) neuron; where a row-band boundary cuts a window, its activations on other tiles
are first sent there, one packet each (traffic of the sending layer, in its send phase). Every
(pooled) activation becomes
one packet per destination tile whose outputs it reaches, exactly the SNN's rule for spikes: the
value rides in the spike packet's ``noc.packet_bits`` (address and an 8- or 16-bit payload fit in
the presets' 32-bit packets), so one activation packet costs what one spike packet costs
(injection, XY hops, ejection). The destination writes it to its activation buffer.

Zero-skipping (``tile.zero_skipping``): a zero activation is not sent (no packet, no write at the
destination), and no lane multiplies it or reads it (a zero bitmap marks it): MACs and activation
reads of conv layers, and whole steps (weights, operand, cycles) of linear layers, are skipped.
Conv lanes run in lockstep, so a conv step (and its broadcast weight read) still happens. Counted
exactly from each image's activations.

Timing (SimPy, one process per layer; events are phases): a layer starts when every source
layer's activations have arrived (plus ``schedule.barrier_cycles`` with a barrier schedule: a
barrier between layers), then runs **MAC** (slowest tile: ``max(steps * accumulate_latency,
SRAM words / banks, DRAM latency + spilled bits * spilling tiles / bandwidth)``, the chip's MAC
phase formula), **fire** (``ceil(neurons / neuron_update_units) * neuron_update_latency`` plus
the pooling additions ``ceil(adds / U) * accumulate_latency``) and **send**: a consumer has
its inputs ``max(inject, eject, link) * packet_cycles + hops`` after the fire phase ends, with
``inject`` the packets of the sender's busiest injection port (all its packets of the phase),
``eject`` those of the consumer's busiest ejection port (all it receives), ``link`` those of
the busiest directed mesh link on the pair's XY routes (the channels of
:mod:`accelsim.chip.mesh`, between the routers at the tiles' mesh positions; the sender's
packets to this consumer and its forwarding of the cut pooling windows whose pooled values the
consumer takes), and ``hops`` the longest XY hop latency between the two tile groups. Each port
and link passes one packet per ``packet_cycles``: the link term is a lower bound for a serialised
link, in the ports' bulk form. Finite router buffers, back-pressure and other layers' packets
on the same links (all three modelled for the SNN) are not modelled here. ``cycles`` of a layer
is its end minus the previous layer's end; the image's latency is the output layer's end.
``static_cycles`` of a layer is its tiles x the image's latency. Not modelled (as for the SNN):
loading the image into the first layer's tiles.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import simpy
from numba import njit

from accelsim.chip import mesh, pricing
from accelsim.chip.hardware import Hardware
from accelsim.chip.mapping import Mapping, map_network
from accelsim.chip.plan import _reach
from accelsim.model.network import INPUT, Network, pooled_shape
from accelsim.workflow import columns as col

ANN_FOLDER = "ann"
"""A model file's ANN lives in ``<folder>/ann/<stem>.json`` + ``.safetensors`` beside it."""

ACTIVATION_READ_BITS = "activation_read_bits"
ACTIVATION_WRITE_BITS = "activation_write_bits"
MAC_STEPS = "mac_steps"

LAYER_COLUMNS = (col.IMAGE, col.LAYER, col.NEURONS, col.MACS, MAC_STEPS, col.SYNAPTIC_OPS,
                 col.WEIGHT_SRAM_READ_BITS, ACTIVATION_READ_BITS, ACTIVATION_WRITE_BITS,
                 col.NEURON_UPDATES, col.ACTIVE_NEURON_UPDATES, col.NOC_PACKETS, col.NOC_HOPS,
                 col.NOC_HOPS_X, col.NOC_HOPS_Y, col.DRAM_READ_BITS, col.DRAM_READ_BYTES,
                 col.CYCLES, col.BUSY_CYCLES, col.STATIC_CYCLES)
"""Counter columns of the ANN's per-layer table (one row per image x layer), before pricing."""

_COUNTERS = ("macs", "steps", "adds", "pool_adds", "sram", "dram", "act_read", "act_write",
             "packets_out", "packets_in", "hops_x", "hops_y")
LINK = "link"
"""Key of :func:`count`'s (images, layers, layers) packets on the busiest mesh link from each
sending layer to each consumer."""


def _layer_kinds(network: Network) -> dict[str, str]:
    """Each layer's synapse kind (accelsim.chip.hardware.SYNAPSE_KINDS) for pricing and timing its
    additions: that of its first projection (conv, or dense for linear)."""
    return {layer.name: "conv" if layer.inputs[0].op == "conv" else "dense"
            for layer in network.layers}


def _additions_by_kind(network: Network, table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The ``synaptic_ops_<kind>`` columns pricing reads: a layer's additions at its kind."""
    of_row = table[col.LAYER].map(_layer_kinds(network)).to_numpy()
    ops = table[col.SYNAPTIC_OPS].to_numpy()
    return {name: np.where(of_row == k, ops, 0) for k, name in col.SYNAPTIC_OPS_BY_KIND.items()}

@dataclass(frozen=True)
class AnnResult:
    """What :func:`simulate_ann` returns."""

    layers: pd.DataFrame
    """One row per image x layer: counters (:data:`LAYER_COLUMNS`) and energy by component."""
    images: pd.DataFrame
    """One row per image: prediction, label, correct, total cycles, latency, energy."""


# -- the ANN's weights ---------------------------------------------------------------------


def ann_model_path(model: str | Path) -> Path:
    """Where the ANN of a model file lives: ``trained_models/ann/NAME`` for
    ``trained_models/NAME`` (a stem, ``.json`` or ``.safetensors`` path)."""
    path = Path(model)
    if path.suffix in (".json", ".safetensors"):
        path = path.with_suffix("")
    return path.parent / ANN_FOLDER / path.name


def fingerprint(model: str | Path) -> str:
    """sha256 of the ANN's manifest (it holds its weights' sha256), "" when there is none: part
    of a result's cache key, so that a new or changed ANN is simulated again."""
    from accelsim.model.modelfile import sha256_file

    path = ann_model_path(model)
    manifest = path.with_name(path.name + ".json")
    return sha256_file(manifest) if manifest.is_file() else ""


def load_ann(model: str | Path) -> Network | None:
    """The ANN shipped beside a model file, or None when there is none."""
    from accelsim.model.modelfile import load_model

    path = ann_model_path(model)
    if not path.with_name(path.name + ".json").is_file():
        return None
    return load_model(path)


def activations(network: Network, images: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output (after ReLU; the output layer's logits) for normalised ``images``
    (N x C x H x W), float64, unpooled."""
    import torch

    from accelsim.training.torch_snn import SpikingNetwork

    module = SpikingNetwork.from_network(network).double().eval()
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float64))
    acts: dict[str, torch.Tensor] = {INPUT: x}
    with torch.no_grad():
        for layer in network.layers:
            out = module.current(layer, acts)
            acts[layer.name] = torch.relu(out) if layer.kind == "spiking" else out
    return {k: v.numpy() for k, v in acts.items()}


# -- counting ------------------------------------------------------------------------------


def _ceil(a, b):
    return -(-np.asarray(a) // b)


def conv_steps(size: tuple[int, int], out: tuple[int, int], kernel: int, stride: int,
               padding: int, lanes: int, rows: tuple[int, int] | None = None) -> int:
    """MAC steps of one (output channel, source channel) pair over output rows ``rows`` (a row
    band; default all): over the taps, the groups of ``lanes`` consecutive output positions
    (flat order within the band) in which some lane's tap lands inside the input (a group whose
    every tap is padding is skipped)."""
    (h, w), (ho, wo) = size, out
    y0, y1 = (0, ho) if rows is None else rows
    oy = np.arange(y0, y1)[:, None] * stride - padding
    ox = np.arange(wo)[:, None] * stride - padding
    k = np.arange(kernel)[None, :]
    iny = (oy + k >= 0) & (oy + k < h)  # (band rows, kernel)
    inx = (ox + k >= 0) & (ox + k < w)
    inside = iny[:, None, :, None] & inx[None, :, None, :]  # (rows, wo, ky, kx)
    positions = (y1 - y0) * wo
    flat = inside.reshape(positions, kernel * kernel)
    groups = -(-positions // lanes)
    pad = np.zeros((groups * lanes - positions, kernel * kernel), dtype=bool)
    grouped = np.concatenate([flat, pad]).reshape(groups, lanes, kernel * kernel)
    return int(grouped.any(axis=1).sum())


def _pool(x: np.ndarray, pool: int) -> np.ndarray:
    """Average pooling (kernel = stride = pool) of (N, C, H, W); other shapes as they are."""
    if pool == 1 or x.ndim != 4:
        return x
    n, c, h, w = x.shape
    ph, pw = h // pool, w // pool
    return x[:, :, :ph * pool, :pw * pool].reshape(n, c, ph, pool, pw, pool).mean(axis=(3, 5))


def _source_tiles(mapping: Mapping, source: str, shape: tuple[int, ...], pool: int
                  ) -> np.ndarray:
    """Global tile holding each (pooled) value of ``source``: the tile of the window's first
    (top-left) neuron, which pools the window."""
    if source == INPUT:
        return np.full(int(np.prod(shape)), -1, dtype=np.int64)
    place = mapping.placement(source)
    tile = place.neuron_tiles()[0]
    first = np.arange(int(np.prod(shape)), dtype=np.int64)
    if len(shape) == 3:
        c, ph, pw = shape
        _, h, w = place.layer.shape
        ch, r = first // (ph * pw), first % (ph * pw)
        first = ch * h * w + (r // pw) * pool * w + (r % pw) * pool
    return place.tiles[tile[first]]


def _gather_windows(c: dict[str, np.ndarray], mapping: Mapping, source: str,
                    shape: tuple[int, ...], pool: int, owner: np.ndarray,
                    acts: dict[str, np.ndarray] | None, images: int, rr: np.ndarray,
                    cc: np.ndarray, ab: int) -> np.ndarray:
    """A pooling window cut by a row-band boundary: its (non-zero) activations on other tiles
    are sent to the tile that pools it (:func:`_source_tiles`), one packet each, counted as
    traffic of the source layer. Returns their packets on each mesh channel (images,
    channels)."""
    place = mapping.placement(source)
    held = place.tiles[place.neuron_tiles()[0]]
    ch, h, w = shape
    idx = np.arange(ch * h * w)
    y, x = (idx // w) % h, idx % w
    ph, pw = h // pool, w // pool
    value = (idx // (h * w)) * ph * pw + (y // pool) * pw + x // pool
    used = (y < ph * pool) & (x < pw * pool)
    move = np.flatnonzero(used & (held != owner[np.where(used, value, 0)]))
    if not len(move):
        return np.zeros((images, _channels(mapping)), dtype=np.int64)
    src, dst = held[move], owner[value[move]]
    sent = (np.ones((images, len(move)), dtype=np.int64) if acts is None
            else (acts[source].reshape(images, -1)[:, move] != 0).astype(np.int64))
    for name, at, per in (("packets_out", src, 1), ("packets_in", dst, 1),
                          ("act_write", dst, ab),
                          ("hops_x", src, np.abs(cc[src] - cc[dst])),
                          ("hops_y", src, np.abs(rr[src] - rr[dst]))):
        np.add.at(c[name], (slice(None), at), sent * per)
    pairs, pair = np.unique(src * mapping.tiles_used + dst, return_inverse=True)
    per_pair = np.zeros((images, len(pairs)), dtype=np.int64)
    np.add.at(per_pair, (slice(None), pair), sent)
    return link_loads(mapping, per_pair, pairs // mapping.tiles_used, pairs % mapping.tiles_used)


def _channels(mapping: Mapping) -> int:
    return mesh.channels(mapping.hardware.mesh.rows, mapping.hardware.mesh.cols)


@njit(cache=True)
def _walk(packets, src, dst, cols, n_channels):
    """(channels, images) packets crossing each channel: ``packets[p]`` (images,) from router
    ``src[p]`` to router ``dst[p]``, along the hops of :func:`accelsim.chip.mesh.next_channel`
    up to the destination router (mesh links; no ejection channel)."""
    out = np.zeros((n_channels, packets.shape[1]), dtype=np.int64)
    for p in range(len(src)):
        r, d = src[p], dst[p]
        while r != d:
            ch, r, _ = mesh.next_channel(r, d, cols, 0, 0)
            for i in range(packets.shape[1]):
                out[ch, i] += packets[p, i]
    return out


def link_loads(mapping: Mapping, packets: np.ndarray, src: np.ndarray, dst: np.ndarray
               ) -> np.ndarray:
    """Packets crossing each directed mesh link (images, channels; channels numbered as in
    :mod:`accelsim.chip.mesh`, only its link ports non-zero) when ``packets[:, p]`` go from
    tile ``src[p]`` to tile ``dst[p]`` on their XY routes between the tiles' routers (mesh
    positions ``mapping.tile_row``, ``mapping.tile_col``)."""
    cols = mapping.hardware.mesh.cols
    router = mapping.tile_row * cols + mapping.tile_col
    keep = packets.any(axis=0) & (src != dst)
    loads = _walk(np.ascontiguousarray(packets[:, keep].T, dtype=np.int64),
                  router[src[keep]], router[dst[keep]], cols, _channels(mapping))
    return loads.T


def count(network: Network, hardware: Hardware, mapping: Mapping,
          acts: dict[str, np.ndarray] | None, zero_skipping: bool, images: int
          ) -> dict[str, np.ndarray]:
    """Per-tile counters, each (images, tiles), of the dataflow in the module docstring, and
    under :data:`LINK` (images, layers, layers) the packets on the busiest mesh link of each
    (sending layer, consumer) pair.

    ``acts`` (:func:`activations`) is needed only with ``zero_skipping``.
    """
    hw = hardware
    U = hw.tile.accumulate_units
    wb, ab = hw.tile.weight_bits, hw.tile.activation_bits
    n_tiles = mapping.tiles_used
    c = {k: np.zeros((images, n_tiles), dtype=np.int64) for k in _COUNTERS}
    rr, cc = mapping.tile_row, mapping.tile_col
    arch = network.architecture
    names = [layer.name for layer in network.layers]
    c[LINK] = np.zeros((images, len(names), len(names)), dtype=np.int64)
    gathered: dict[tuple[str, int], np.ndarray] = {}  # forwarding of cut windows, per channel
    for place in mapping.layers:
        layer = place.layer
        tiles = place.tiles
        ch = place.channels
        neurons = place.neurons
        c["act_write"][:, tiles] += neurons * ab  # own outputs, after ReLU
        links: dict[str, np.ndarray] = {}  # per source layer: its packets on each channel
        needs: set[tuple[str, int]] = set()  # the cut windows' forwarding this layer waits for
        for p, rows in zip(layer.inputs, place.projections, strict=True):
            src_shape = arch.source_shape(p.source)
            shape = pooled_shape(src_shape, p.pool)
            if zero_skipping:
                assert acts is not None
                nz = _pool(acts[p.source], p.pool).reshape(images, -1) != 0
            else:
                nz = np.ones((images, int(np.prod(shape))), dtype=bool)
            if p.pool > 1 and p.source != INPUT:
                needs.add((p.source, p.pool))
                if (p.source, p.pool) not in gathered:
                    owner = _source_tiles(mapping, p.source, shape, p.pool)
                    np.add.at(c["pool_adds"], (slice(None), owner),
                              np.ones((images, len(owner)), dtype=np.int64) * (p.pool ** 2 - 1))
                    gathered[p.source, p.pool] = _gather_windows(
                        c, mapping, p.source, src_shape, p.pool, owner,
                        acts if zero_skipping else None, images, rr, cc, ab)
            # reach[v, k]: outputs of tile k (its channels x its rows) value v reaches
            if p.op == "conv":
                C, H, W = shape
                _, Ho, Wo = layer.shape
                ry = _reach(H, Ho, p.kernel, p.stride, p.padding)
                cum = np.concatenate([np.zeros((H, 1), dtype=np.int64), ry.cumsum(axis=1)],
                                     axis=1)
                cy = cum[:, place.row_end] - cum[:, place.row_start]  # (H, tiles) rows reached
                cx = _reach(W, Wo, p.kernel, p.stride, p.padding).sum(axis=1)
                # outputs of tile k a value at position (y, x) reaches: the same in every
                # source channel, so sums over values go through per-position counts
                per_channel = (cy[:, None, :] * cx[None, :, None]).reshape(H * W, -1)
                at_position = nz.reshape(images, C, H * W)
                band = {}
                for y0, y1 in set(zip(place.row_start.tolist(), place.row_end.tolist(),
                                      strict=True)):
                    band[y0, y1] = conv_steps((H, W), (Ho, Wo), p.kernel, p.stride,
                                              p.padding, U, (y0, y1))
                steps_per_row = ch * np.array([band[y0, y1] for y0, y1 in zip(
                    place.row_start.tolist(), place.row_end.tolist(), strict=True)],
                    dtype=np.int64)  # per source channel
                # float products are exact at these sizes, and use BLAS
                macs = np.rint(at_position.sum(axis=1, dtype=np.float64)
                               @ per_channel).astype(np.int64) * ch[None, :]
                c["macs"][:, tiles] += macs
                c["act_read"][:, tiles] += macs * ab
                c["steps"][:, tiles] += C * steps_per_row
                in_sram = np.minimum(rows.rows_in_sram, C)
                c["sram"][:, tiles] += in_sram * steps_per_row * wb
                c["dram"][:, tiles] += (C - in_sram) * steps_per_row * wb
            elif p.op == "linear":
                F = nz.shape[1]
                active = nz.sum(axis=1)[:, None]
                if not zero_skipping:
                    active = np.full((images, 1), F, dtype=np.int64)
                steps = active * _ceil(ch, U)[None, :]
                c["macs"][:, tiles] += active * ch[None, :]
                c["steps"][:, tiles] += steps
                c["act_read"][:, tiles] += steps * ab
                idx = np.arange(F)
                sram_rows = (nz[:, None, :] & (idx[None, None, :]
                                                < rows.rows_in_sram[None, :, None])).sum(axis=2)
                c["sram"][:, tiles] += sram_rows * ch[None, :] * wb
                c["dram"][:, tiles] += (active - sram_rows) * ch[None, :] * wb
                reached = np.ones((F, len(tiles)), dtype=bool)
            else:  # identity: one addition per output, on the tile holding that output
                local = place.neuron_tiles()[0]
                reached = local[:, None] == np.arange(len(tiles))[None, :]
                adds = nz.astype(np.int64) @ reached.astype(np.int64)
                c["adds"][:, tiles] += adds
                c["act_read"][:, tiles] += adds * ab
                c["steps"][:, tiles] += _ceil(neurons, U)
            # packets: one per (value, destination tile reached); none for the analog input
            if p.source == INPUT:
                continue
            owner = _source_tiles(mapping, p.source, shape, p.pool)
            # per_src[n, s, d]: packets from tile s to destination d (float products are exact)
            per_src = np.zeros((images, n_tiles, len(tiles)), dtype=np.int64)
            if p.op == "conv":
                rf = (per_channel > 0).astype(np.float64)
                own = owner.reshape(C, H * W)
                for s in np.unique(owner):
                    sent = (at_position & (own == s)[None]).sum(axis=1, dtype=np.float64)
                    per_src[:, s, :] = np.rint(sent @ rf).astype(np.int64)
            else:
                nzf, rf = nz.astype(np.float64), reached.astype(np.float64)
                for s in np.unique(owner):
                    mine = owner == s
                    per_src[:, s, :] = np.rint(nzf[:, mine] @ rf[mine]).astype(np.int64)
            received = per_src.sum(axis=1)
            c["packets_in"][:, tiles] += received
            c["act_write"][:, tiles] += received * ab
            c["packets_out"] += per_src.sum(axis=2)
            dx = np.abs(cc[:, None] - cc[None, tiles])
            dy = np.abs(rr[:, None] - rr[None, tiles])
            c["hops_x"] += (per_src * dx[None]).sum(axis=2)
            c["hops_y"] += (per_src * dy[None]).sum(axis=2)
            senders = np.unique(owner)
            loads = link_loads(mapping, per_src[:, senders, :].reshape(images, -1),
                               np.repeat(senders, len(tiles)), np.tile(tiles, len(senders)))
            links[p.source] = links.get(p.source, 0) + loads
        for source, pool in needs:
            links[source] = links.get(source, 0) + gathered[source, pool]
        for source, loads in links.items():
            c[LINK][:, names.index(source), names.index(layer.name)] = loads.max(axis=1)
    return c


# -- timing --------------------------------------------------------------------------------


def _phases(network: Network, hw: Hardware, mapping: Mapping, c: dict[str, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mac, fire, inject, eject) cycles per image x tile, and the busiest link's cycles per
    image x sending layer x consumer."""
    t = hw.tile
    spilling = int(sum((p.spilled_bits > 0).sum() for p in mapping.layers))
    kinds = _layer_kinds(network)
    latency = np.concatenate([np.full(len(p.tiles), hw.synapse_cycles[kinds[p.layer.name]])
                              for p in mapping.layers])[None, :]
    mac = c["steps"] * latency
    mac = np.maximum(mac, _ceil(_ceil(c["sram"], t.weight_sram_word_bits), t.weight_sram_banks))
    if hw.dram is not None:
        mac = np.maximum(mac, np.where(c["dram"] > 0, hw.dram.latency_cycles + _ceil(
            c["dram"] * spilling, hw.dram.bandwidth_bits_per_cycle), 0))
    neurons = np.concatenate([p.neurons for p in mapping.layers])[None, :]
    fire = (_ceil(neurons, t.neuron_update_units) * t.neuron_update_latency_cycles
            + _ceil(c["pool_adds"], t.accumulate_units) * latency)
    pc = hw.noc.packet_cycles
    return (mac, np.broadcast_to(fire, mac.shape), c["packets_out"] * pc, c["packets_in"] * pc,
            c[LINK] * pc)


def layer_ends(network: Network, hw: Hardware, mapping: Mapping, mac: np.ndarray,
               fire: np.ndarray, inject: np.ndarray, eject: np.ndarray, link: np.ndarray,
               barrier: int) -> np.ndarray:
    """Cycle at which each layer finished (its outputs arrived at every consumer), one SimPy
    environment per image whose processes are the layers and whose events are their phases.
    ``link`` (images, layers, layers): cycles of the busiest link from a layer to a
    consumer."""
    layers = network.layers
    names = [layer.name for layer in layers]
    sources = [sorted({names.index(p.source) for p in layer.inputs if p.source != INPUT})
               for layer in layers]
    consumers = [[m for m in range(len(layers)) if s in sources[m]] for s in range(len(layers))]
    tiles = [p.tiles for p in mapping.layers]
    rr, cc = mapping.tile_row, mapping.tile_col

    def hop(a: np.ndarray, b: np.ndarray) -> int:
        return int((np.abs(cc[a][:, None] - cc[b][None, :]) * hw.noc.hop_latency_x_cycles
                    + np.abs(rr[a][:, None] - rr[b][None, :]) * hw.noc.hop_latency_y_cycles
                    ).max())

    hops = {(s, m): hop(tiles[s], tiles[m]) for s in range(len(layers)) for m in consumers[s]}
    out = np.zeros((mac.shape[0], len(layers)), dtype=np.int64)
    for i in range(mac.shape[0]):
        env = simpy.Environment()
        arrived = {(s, m): env.event() for s in range(len(layers)) for m in consumers[s]}

        def run_layer(li: int, i: int = i, env: simpy.Environment = env, arrived=arrived):
            if sources[li]:
                yield simpy.AllOf(env, [arrived[(s, li)] for s in sources[li]])
                if barrier:
                    yield env.timeout(barrier)
            t = tiles[li]
            yield env.timeout(int(mac[i, t].max()))               # MAC
            yield env.timeout(int(fire[i, t].max()))              # fire (ReLU, pooling)
            send = int(inject[i, t].max()) if consumers[li] else 0
            ends = [env.now]
            for m in consumers[li]:                               # send
                delay = max(send, int(eject[i, tiles[m]].max()),
                            int(link[i, li, m])) + hops[(li, m)]
                ends.append(env.now + delay)
                env.process(_deliver(env, delay, arrived[(li, m)]))
            out[i, li] = max(ends)

        for li in range(len(layers)):
            env.process(run_layer(li))
        env.run()
    return out


def _deliver(env: simpy.Environment, delay: int, event: simpy.Event):
    yield env.timeout(delay)
    event.succeed()


# -- the whole run -------------------------------------------------------------------------


def simulate_ann(network: Network, images: np.ndarray, labels: np.ndarray | None,
                 hardware: Hardware, *, mapping: Mapping | None = None,
                 schedule: str | None = None) -> AnnResult:
    """Run the ANN ``network`` on ``hardware`` for normalised ``images`` (N x C x H x W): its
    predictions, and per image x layer its counters, cycles and energy (module docstring)."""
    hw = hardware
    mapping = map_network(network, hw) if mapping is None else mapping
    acts = activations(network, images)
    n = len(images)
    # without zero-skipping every image costs the same: count and time one, repeat it
    distinct = n if hw.tile.zero_skipping else min(n, 1)
    c = count(network, hw, mapping, acts, hw.tile.zero_skipping, distinct)
    mac, fire, inject, eject, link = _phases(network, hw, mapping, c)
    schedule = hw.schedule.kind if schedule is None else schedule
    barrier = hw.schedule.barrier_cycles if schedule == "barrier" else 0
    ends = layer_ends(network, hw, mapping, mac, fire, inject, eject, link, barrier)
    if distinct < n:
        c = {k: np.repeat(v, n, axis=0) for k, v in c.items()}
        mac, fire, inject = (np.repeat(a, n, axis=0) for a in (mac, fire, inject))
        ends = np.repeat(ends, n, axis=0)
    total = ends.max(axis=1, initial=0)
    starts = np.array([p.tiles[0] for p in mapping.layers], dtype=np.int64)
    n_tiles = np.array([len(p.tiles) for p in mapping.layers], dtype=np.int64)

    def per_layer(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(a, starts, axis=1) if len(starts) else a[:, :0]

    L = len(network.layers)
    neurons = np.array([int(p.neurons.sum()) for p in mapping.layers], dtype=np.int64)
    dram = per_layer(c["dram"])
    busy = per_layer(mac + fire + inject)
    table = pd.DataFrame({
        col.IMAGE: np.repeat(np.arange(n, dtype=np.int64), L),
        col.LAYER: np.tile([layer.name for layer in network.layers], n),
        col.NEURONS: np.tile(neurons, n),
        col.MACS: per_layer(c["macs"]).ravel(),
        MAC_STEPS: per_layer(c["steps"]).ravel(),
        col.SYNAPTIC_OPS: per_layer(c["adds"] + c["pool_adds"]).ravel(),
        col.WEIGHT_SRAM_READ_BITS: per_layer(c["sram"]).ravel(),
        ACTIVATION_READ_BITS: per_layer(c["act_read"]).ravel(),
        ACTIVATION_WRITE_BITS: per_layer(c["act_write"]).ravel(),
        col.NEURON_UPDATES: np.tile(neurons, n),
        col.ACTIVE_NEURON_UPDATES: np.zeros(n * L, dtype=np.int64),
        col.NOC_PACKETS: per_layer(c["packets_out"]).ravel(),
        col.NOC_HOPS: per_layer(c["hops_x"] + c["hops_y"]).ravel(),
        col.NOC_HOPS_X: per_layer(c["hops_x"]).ravel(),
        col.NOC_HOPS_Y: per_layer(c["hops_y"]).ravel(),
        col.DRAM_READ_BITS: dram.ravel(),
        col.DRAM_READ_BYTES: _ceil(dram, 8).ravel(),
        col.CYCLES: np.diff(np.maximum.accumulate(ends, axis=1), axis=1, prepend=0).ravel(),
        col.BUSY_CYCLES: busy.ravel(),
        col.STATIC_CYCLES: (n_tiles[None, :] * total[:, None]).ravel(),
    })
    priced = pricing.price(table.assign(**{col.MEMBRANE_READ_BITS: table[ACTIVATION_READ_BITS],
                                           col.MEMBRANE_WRITE_BITS: table[ACTIVATION_WRITE_BITS],
                                           col.SPIKES_OUT: 0},
                                        **_additions_by_kind(network, table)), hw)
    layers = priced.drop(columns=[col.MEMBRANE_READ_BITS, col.MEMBRANE_WRITE_BITS])
    logits = acts[network.layers[-1].name].reshape(n, -1)
    pred = logits.argmax(axis=1).astype(np.int64)
    lab = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels, np.int64)
    energy = layers.groupby(col.IMAGE)[col.ENERGY].sum().reindex(np.arange(n), fill_value=0.0)
    images_table = pd.DataFrame({
        col.IMAGE: np.arange(n, dtype=np.int64), col.PREDICTION: pred, col.LABEL: lab,
        col.CORRECT: (pred == lab) if labels is not None else np.zeros(n, dtype=bool),
        col.TOTAL_CYCLES: total.astype(np.int64),
        col.LATENCY_US: np.array([hw.cycles_to_us(float(t)) for t in total]),
        col.ENERGY_UJ: energy.to_numpy() / 1e6,
    })
    return AnnResult(layers=layers, images=images_table)


# -- beside the SNN ------------------------------------------------------------------------


def network_for(model: str | Path, snn: Network, hardware: Hardware
                ) -> tuple[Network, bool]:
    """(the ANN to run, whether it has its own weights). A model without a shipped ANN runs its
    SNN's weights as the ANN: counters and timing without zero-skipping do not depend on the
    weights, but its accuracy is not reported, and zero-skipping is refused."""
    network = load_ann(model)
    if network is not None:
        return network, True
    if hardware.tile.zero_skipping:
        raise ValueError(f"tile.zero_skipping counts the zeros of the ANN's activations, but "
                         f"{ann_model_path(model)}.json does not exist; write it with "
                         "analysis/ann_weights.py, or set tile.zero_skipping: false")
    return snn, False


def beside(result, ann: AnnResult, *, weights: bool = True):
    """``result`` (a :class:`accelsim.chip.simulation.SimulationResult` of the same images) with
    the ANN's
    columns: per layer its energy and cycles on the timestep-1 row, per image its prediction,
    latency and energy (``weights``: whether the ANN's predictions mean anything)."""
    layers = result.layers.copy()
    key = ann.layers.set_index([col.IMAGE, col.LAYER])
    idx = pd.MultiIndex.from_arrays([layers[col.IMAGE], layers[col.LAYER]])
    first = (layers[col.TIMESTEP] == 1).to_numpy()
    for name, source in ((col.ANN_ENERGY, col.ENERGY), (col.ANN_CYCLES, col.CYCLES)):
        values = key[source].reindex(idx).to_numpy()
        layers[name] = np.where(first, values, 0).astype(key[source].dtype)
    images = result.images.copy()
    a = ann.images.set_index(col.IMAGE).reindex(images[col.IMAGE])
    pred = a[col.PREDICTION].to_numpy() if weights else np.full(len(images), -1)
    images[col.ANN_PREDICTION] = pred.astype(np.int64)
    images[col.ANN_CORRECT] = (pred == images[col.LABEL].to_numpy()) & (pred >= 0)
    images[col.ANN_TOTAL_CYCLES] = a[col.TOTAL_CYCLES].to_numpy()
    images[col.ANN_LATENCY_US] = a[col.LATENCY_US].to_numpy()
    images[col.ANN_ENERGY_UJ] = a[col.ENERGY_UJ].to_numpy()
    out = copy.copy(result)
    object.__setattr__(out, "layers", layers)  # a frozen dataclass: set on the copy only
    object.__setattr__(out, "images", images)
    return out


def summary_columns(images: pd.DataFrame, row: dict) -> dict[str, float]:
    """The summary's ANN columns from the per-image table (NaN where it has none)."""
    nan = float("nan")
    if col.ANN_ENERGY_UJ not in images:
        return {c: nan for c in (col.ANN_ACCURACY, col.ANN_LATENCY_US, col.ANN_ENERGY_UJ,
                                 col.SNN_TO_ANN_ENERGY, col.SNN_TO_ANN_COMPUTE_ONLY,
                                 col.SNN_TO_ANN_LATENCY)}
    energy = float(images[col.ANN_ENERGY_UJ].mean())
    latency = float(images[col.ANN_LATENCY_US].mean())
    has = bool((images[col.ANN_PREDICTION] >= 0).all())
    ann_c = row[col.COMPUTE_ONLY_ANN_UJ]
    return {
        col.ANN_ACCURACY: float(images[col.ANN_CORRECT].mean()) if has else nan,
        col.ANN_LATENCY_US: latency,
        col.ANN_ENERGY_UJ: energy,
        col.SNN_TO_ANN_ENERGY: row[col.ENERGY_UJ] / energy if energy > 0 else nan,
        col.SNN_TO_ANN_COMPUTE_ONLY: row[col.COMPUTE_ONLY_SNN_UJ] / ann_c if ann_c > 0 else nan,
        col.SNN_TO_ANN_LATENCY: row[col.LATENCY_US] / latency if latency > 0 else nan,
    }


BY_LAYER_COLUMNS = ("snn_energy_uj", "ann_energy_uj", col.SNN_TO_ANN_ENERGY,
                    col.SNN_TO_ANN_COMPUTE_ONLY, "snn_finish_cycles", "ann_finish_cycles")


def by_layer(layers: pd.DataFrame) -> pd.DataFrame:
    """Per layer (network order) and for the whole network (``total``), per inference: SNN and
    ANN full-system energy (µJ), the two SNN / ANN ratios (full-system, compute-only), and when
    the layer finished the image in the SNN and in the ANN (cycles after the image arrived; the
    total row: the latency). ``layers``: one point's per-layer table."""
    n = int(layers[col.IMAGE].nunique())
    order = list(dict.fromkeys(layers[col.LAYER]))
    g = layers.groupby(col.LAYER, sort=False)[[col.ENERGY, col.ANN_ENERGY, col.COMPUTE_ONLY_SNN,
                                               col.COMPUTE_ONLY_ANN, col.CYCLES,
                                               col.ANN_CYCLES]].sum().reindex(order) / n
    finish = layers.groupby([col.IMAGE, col.LAYER], sort=False)[col.CYCLES].sum().groupby(
        level=col.LAYER, sort=False).mean().reindex(order)
    ann_finish = g[col.ANN_CYCLES].cumsum()
    g.loc["total"] = g.sum()
    co_ann = g[col.COMPUTE_ONLY_ANN].where(g[col.COMPUTE_ONLY_ANN] > 0)
    return pd.DataFrame({
        "snn_energy_uj": g[col.ENERGY] / 1e6,
        "ann_energy_uj": g[col.ANN_ENERGY] / 1e6,
        col.SNN_TO_ANN_ENERGY: g[col.ENERGY] / g[col.ANN_ENERGY].where(g[col.ANN_ENERGY] > 0),
        col.SNN_TO_ANN_COMPUTE_ONLY: g[col.COMPUTE_ONLY_SNN] / co_ann,
        "snn_finish_cycles": pd.concat([finish, pd.Series({"total": finish.iloc[-1]})]),
        "ann_finish_cycles": pd.concat([ann_finish, pd.Series({"total": ann_finish.iloc[-1]})]),
    })[list(BY_LAYER_COLUMNS)]
