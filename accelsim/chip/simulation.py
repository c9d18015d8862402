"""`simulate` and `replay`: the functional core's spikes through the timing model of
:mod:`accelsim.chip`, into per-layer, per-image and per-tile tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from accelsim.chip import prepared, pricing
from accelsim.chip.hardware import SYNAPSE_KINDS, Hardware, load_hardware
from accelsim.chip.mapping import Mapping, map_network
from accelsim.chip.plan import Plan, build_plan
from accelsim.chip.timeline import Timeline
from accelsim.model.network import INPUT, Network
from accelsim.workflow import columns as col

MODES = ("fast", "reference")
SCHEDULES = ("barrier", "pipelined")


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` returns; the type never depends on the flags."""

    layers: pd.DataFrame
    """One row per image x layer x timestep: counters, cycles, energy by component."""
    images: pd.DataFrame
    """One row per image: prediction, label, correctness, latency and energy."""
    mapping: pd.DataFrame
    """The placement (:meth:`accelsim.chip.mapping.Mapping.table`)."""
    tiles: pd.DataFrame
    """One row per image x tile x timestep (empty unless ``per_tile``)."""


def _hardware(hardware: Hardware | str | Path) -> Hardware:
    if isinstance(hardware, Hardware):
        return hardware
    if not isinstance(hardware, str | Path):
        raise TypeError(f"hardware must be an accelsim.Hardware, a preset name or a path to a "
                        f"preset YAML, got {type(hardware).__name__}; e.g. "
                        "accelsim.load_hardware('45nm-generic')")
    return load_hardware(hardware)


def _labels(labels: object, images: int, classes: int) -> np.ndarray:
    """``labels`` as int64 class indices, one per image, each in ``0..classes-1``."""
    array = np.asarray(labels)
    if array.shape != (images,):
        raise ValueError(f"labels have shape {array.shape}; expected ({images},), one per image")
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or (
            np.issubdtype(array.dtype, np.floating) and np.all(array == np.round(array)))):
        raise ValueError(f"labels must be whole class indices, got dtype {array.dtype} "
                         f"(e.g. {array.ravel()[:3].tolist()})")
    out = array.astype(np.int64)
    bad = (out < 0) | (out >= classes)
    if bad.any():
        raise ValueError(f"label {out[bad][0]} (image {int(np.flatnonzero(bad)[0])}) is outside "
                         f"0..{classes - 1}, the network's {classes} classes")
    return out


def simulate(network: Network, images: np.ndarray, labels: np.ndarray | None = None,
             hardware: Hardware | str | Path = "45nm-generic", *, timesteps: int | None = None,
             mode: Literal["fast", "reference"] = "fast",
             schedule: Literal["barrier", "pipelined"] | None = None,
             arithmetic: Literal["float", "fixed"] = "float", quantization=None,
             per_tile: bool = False, trace: str | Path | None = None,
             trace_image: int = 0) -> SimulationResult:
    """Run ``images`` (normalised, N x C x H x W) through the functional core, then replay every
    image's spikes through the chip ``hardware`` (a :class:`Hardware`, preset name or YAML path).

    ``schedule`` defaults to the hardware's ``schedule.kind``; fixed ``arithmetic`` checks the
    ``quantization`` against the tile (:func:`accelsim.spiking.quantize.check_tile`: widths, leak
    rounding) and rounds the leak as the tile does unless it names a rounding.

    ``trace`` (a path) also writes the timeline of image ``trace_image`` (0-based; the first by
    default) as a Chrome trace: the file ``accelsim trace --image K`` writes for that image
    (:func:`accelsim.chip.trace.trace_image`).
    """
    from accelsim.spiking import functional, quantize

    hw = _hardware(hardware)
    T = functional.check_timesteps(timesteps, network.timesteps)
    if arithmetic == "fixed":
        quantization = quantize.for_tile(quantize.as_quantization(quantization), hw.tile)
    result = functional.run(network, images, timesteps=T, arithmetic=arithmetic,
                            quantization=quantization, record_spikes=True)
    assert result.spikes is not None
    if labels is not None:
        labels = _labels(labels, len(result.predictions), network.layers[-1].neurons)
    if trace is not None and (isinstance(trace_image, bool)
                              or not isinstance(trace_image, int | np.integer)
                              or not 0 <= trace_image < len(result.predictions)):
        raise ValueError(f"trace_image {trace_image!r}: pick an image 0..."
                         f"{len(result.predictions) - 1} of the {len(result.predictions)} given")
    simulated = replay(network, result.spikes, hw, counts=result.counts,
                       predictions=result.predictions, labels=labels, timesteps=T, mode=mode,
                       schedule=schedule, per_tile=per_tile)
    if trace is not None:
        from accelsim.chip.trace import trace_image as image_trace
        from accelsim.chip.trace import write_trace

        write_trace(trace, image_trace(network, images[trace_image], hw, timesteps=T,
                                       mode=mode, schedule=schedule, arithmetic=arithmetic,
                                       quantization=quantization)[0])
    return simulated


def replay(network: Network, spikes: list[dict], hardware: Hardware | str | Path, *,
           counts: pd.DataFrame, predictions: np.ndarray, labels: np.ndarray | None = None,
           timesteps: int, mode: str = "fast", schedule: str | None = None,
           per_tile: bool = False, mapping: Mapping | None = None,
           timelines: list[Timeline] | None = None) -> SimulationResult:
    """Replay recorded spike trains (one dict per image) through the chip.

    ``counts`` is the functional core's count table of those images (neurons, MACs, neuron
    updates come from it); ``timelines``, when a list, receives each image's :class:`Timeline`.
    """
    hw = _hardware(hardware)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    schedule = hw.schedule.kind if schedule is None else schedule
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if mapping is None:
        mapping, plan = prepared.cached("plan", (prepared.fingerprint(network),
                                                 hw.model_dump_json()),
                                        lambda: _mapped_plan(network, hw))
    else:
        plan = build_plan(network, hw, mapping)
    if mode == "fast":
        from accelsim.chip.fast import run_images
    else:
        from accelsim.chip.reference import run_images
    record = timelines is not None
    simulated = run_images(plan, spikes, timesteps, schedule, record_packets=record)
    if record:
        timelines.extend(simulated)
    chip, totals = _layer_counters(plan, simulated, spikes, schedule, timesteps)
    chip.update(_synops_by_kind(plan, spikes, timesteps))
    layers = _merge_counts(chip, counts, network, len(spikes), timesteps)
    if hw.first_layer == "bias":
        layers[col.MACS] = 0  # the host computes the analog layer; the chip loads biases
    layers = pricing.compute_only(pricing.price(layers, hw), network.architecture)
    images = _image_table(layers, predictions, labels, totals, hw)
    tiles = (pd.concat([_tile_rows(plan, tl, i) for i, tl in enumerate(simulated)],
                       ignore_index=True) if per_tile and simulated else
             pd.DataFrame(columns=_TILE_COLUMNS))
    return SimulationResult(layers=layers, images=images, mapping=mapping.table(), tiles=tiles)


def _mapped_plan(network: Network, hw: Hardware) -> tuple[Mapping, Plan]:
    mapping = map_network(network, hw)
    return mapping, build_plan(network, hw, mapping)


def _layer_counters(plan: Plan, timelines: list[Timeline], spikes: list[dict], schedule: str,
                    T: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-layer counter columns of every image (rows image-major, then layer, then timestep)
    and each image's total cycles."""
    hw = plan.hardware
    mb = hw.tile.membrane_bits
    layers = plan.network.layers
    B, L = len(timelines), len(layers)

    def stacked(name: str) -> np.ndarray:
        """(images, T, tiles)"""
        return (np.stack([getattr(tl, name) for tl in timelines]) if timelines else
                np.zeros((0, T, plan.tiles), dtype=np.int64))

    # per-layer sums over tiles, (images, layers, T), by segment reduction over the
    # layer-ordered tiles
    starts = np.array([tiles[0] for tiles in plan.layer_tiles], dtype=np.int64)
    n_tiles = np.array([len(tiles) for tiles in plan.layer_tiles], dtype=np.int64)

    def per_layer(name: str, how=np.add) -> np.ndarray:
        return how.reduceat(stacked(name), starts, axis=2).transpose(0, 2, 1)

    tile_end = stacked("end")
    barrier = hw.schedule.barrier_cycles if schedule == "barrier" else 0
    step_end = tile_end.max(axis=2, initial=0) + np.where(np.arange(T) < T - 1, barrier, 0)
    duration = np.diff(step_end, axis=1, prepend=0)
    synops = per_layer("synops_in")
    sram = per_layer("sram_bits")
    dram = per_layer("dram_bits")
    end = np.maximum.reduceat(tile_end, starts, axis=2).transpose(0, 2, 1)
    neurons = np.add.reduceat(plan.tile_neurons, starts)[None, :, None]
    # a constant current (analog input, bias) is held per neuron: written once, read every update
    has_const = np.array([layer.bias is not None or any(p.source == INPUT for p in layer.inputs)
                          for layer in layers])
    const = np.where(has_const, 1, 0)[None, :, None] * neurons
    mem_read = (synops + neurons + const) * mb
    mem_write = (synops + neurons) * mb
    sram[:, :, 0] += np.add.reduceat(plan.mac_sram_bits, starts)
    dram[:, :, 0] += np.add.reduceat(plan.mac_dram_bits, starts)
    mem_write[:, :, 0] += const[:, :, 0] * mb
    spikes_out = np.zeros((B, L, T), dtype=np.int64)
    for li, layer in enumerate(layers):
        if layer.kind == "spiking" and B:
            spikes_out[:, li] = np.diff(np.stack([tr[layer.name].offsets for tr in spikes]))
    hx = per_layer("hops_x")
    hy = per_layer("hops_y")
    names = np.array([layer.name for layer in layers], dtype=object)
    columns = {
        col.IMAGE: np.repeat(np.arange(B, dtype=np.int64), L * T),
        col.LAYER: np.tile(np.repeat(names, T), B),
        col.TIMESTEP: np.tile(np.arange(1, T + 1, dtype=np.int64), B * L),
        col.SPIKES_OUT: spikes_out,
        col.SYNAPTIC_OPS: synops,
        col.WEIGHT_SRAM_READ_BITS: sram,
        col.MEMBRANE_READ_BITS: mem_read,
        col.MEMBRANE_WRITE_BITS: mem_write,
        col.QUEUE_PEAK: per_layer("queue_peak", np.maximum),
        col.NOC_PACKETS: per_layer("packets_out"),
        col.NOC_HOPS: hx + hy,
        col.NOC_HOPS_X: hx,
        col.NOC_HOPS_Y: hy,
        col.DRAM_READ_BITS: dram,
        col.DRAM_READ_BYTES: -(-dram // 8),
        col.CYCLES: np.diff(end, axis=2, prepend=0),
        col.BUSY_CYCLES: per_layer("busy"),
        col.STALL_CYCLES: per_layer("stall"),
        col.STATIC_CYCLES: n_tiles[None, :, None] * duration[:, None, :],
    }
    return ({k: np.asarray(v).reshape(-1) for k, v in columns.items()},
            step_end[:, -1].astype(np.int64))


def _synops_by_kind(plan: Plan, spikes: list[dict], T: int) -> dict[str, np.ndarray]:
    """The ``synaptic_ops_<kind>`` columns (rows image-major, then layer, then timestep): each
    spike's events per destination layer and synapse kind, from the plan's fan-out classes."""
    layers = plan.network.layers
    B, L, K = len(spikes), len(layers), len(SYNAPSE_KINDS)
    out = np.zeros((B, L, T, K), dtype=np.int64)
    for layer, fo in zip(layers, plan.fanout, strict=True):
        if fo is None:
            continue
        classes = fo.synops_by_kind.shape[1]
        to_layer = np.zeros((K, classes, L), dtype=np.int64)
        for m in np.unique(fo.dest_layer):
            to_layer[:, :, m] = fo.synops_by_kind[:, :, fo.dest_layer == m].sum(axis=2)
        for b, trains in enumerate(spikes):
            train = trains[layer.name]
            t = np.repeat(np.arange(T), train.counts())
            hist = np.bincount(t * classes + fo.neuron_class[train.indices],
                               minlength=T * classes).reshape(T, classes)
            out[b] += np.einsum("tc,kcl->ltk", hist, to_layer)
    return {col.SYNAPTIC_OPS_BY_KIND[kind]: out[..., k].reshape(-1)
            for k, kind in enumerate(SYNAPSE_KINDS)}


def _merge_counts(chip: dict[str, np.ndarray], counts: pd.DataFrame, network: Network,
                  images: int, T: int) -> pd.DataFrame:
    """Join the functional counts the chip does not recount (spikes in, neurons, MACs, updates).

    ``chip`` holds rows image-major, then layer (network order), then timestep; each row of
    ``counts`` finds its chip row by that arithmetic. ``spikes_out`` and ``synaptic_ops`` come
    from the chip's own replay (tests check they equal the functional core's).
    """
    names = [layer.name for layer in network.layers]
    layer = pd.Categorical(counts[col.LAYER], categories=names).codes.astype(np.int64)
    image = counts[col.IMAGE].to_numpy(dtype=np.int64)
    t = counts[col.TIMESTEP].to_numpy(dtype=np.int64)
    row = (image * len(names) + layer) * T + t - 1
    valid = (layer >= 0) & (image >= 0) & (image < images) & (t >= 1) & (t <= T)
    if not (valid.all() and len(row) == images * len(names) * T
            and (np.bincount(row, minlength=len(row)) == 1).all()):
        raise ValueError(f"counts must hold one row per image (0..{images - 1}), layer of "
                         f"{network.name!r} and timestep (1..{T}), as functional.run returns")
    merged = counts.reset_index(drop=True)
    chip_columns = {k: v[row] for k, v in chip.items()
                    if k not in (col.IMAGE, col.LAYER, col.TIMESTEP)}
    merged = pd.concat([merged[[col.IMAGE, col.LAYER, col.TIMESTEP, col.SPIKES_IN,
                                col.NEURONS, col.MACS, col.NEURON_UPDATES,
                                col.ACTIVE_NEURON_UPDATES]],
                        pd.DataFrame(chip_columns)], axis=1)
    return merged[list(col.CHIP_COUNTERS)]


def _image_table(layers: pd.DataFrame, predictions: np.ndarray, labels: np.ndarray | None,
                 totals: np.ndarray, hw: Hardware) -> pd.DataFrame:
    n = len(predictions)
    energy = layers.groupby(col.IMAGE)[col.ENERGY].sum().reindex(np.arange(n), fill_value=0.0)
    lab = np.full(n, -1, dtype=np.int64) if labels is None else labels
    return pd.DataFrame({
        col.IMAGE: np.arange(n, dtype=np.int64),
        col.PREDICTION: np.asarray(predictions, dtype=np.int64),
        col.LABEL: lab,
        col.CORRECT: (np.asarray(predictions) == lab) if labels is not None else np.zeros(
            n, dtype=bool),
        col.TOTAL_CYCLES: totals,
        col.LATENCY_US: np.array([hw.cycles_to_us(float(c)) for c in totals]),
        col.ENERGY_UJ: energy.to_numpy() / 1e6,
    })


_TILE_COLUMNS = [col.IMAGE, col.TILE, col.LAYER, col.TIMESTEP, col.BUSY_CYCLES,
                 col.STALL_CYCLES, col.QUEUE_PEAK, col.NOC_PACKETS, col.NOC_PACKETS_IN,
                 col.SYNAPTIC_OPS, col.WEIGHT_SRAM_READ_BITS, col.DRAM_READ_BITS,
                 col.END_CYCLE]


def _tile_rows(plan: Plan, tl: Timeline, image: int) -> pd.DataFrame:
    T, n = tl.busy.shape
    names = np.array([layer.name for layer in plan.network.layers], dtype=object)
    return pd.DataFrame({
        col.IMAGE: image,
        col.TILE: np.tile(np.arange(n, dtype=np.int64), T),
        col.LAYER: np.tile(names[plan.tile_layer], T),
        col.TIMESTEP: np.repeat(np.arange(1, T + 1, dtype=np.int64), n),
        col.BUSY_CYCLES: tl.busy.ravel(),
        col.STALL_CYCLES: tl.stall.ravel(),
        col.QUEUE_PEAK: tl.queue_peak.ravel(),
        col.NOC_PACKETS: tl.packets_out.ravel(),
        col.NOC_PACKETS_IN: tl.packets_in.ravel(),
        col.SYNAPTIC_OPS: tl.synops_in.ravel(),
        col.WEIGHT_SRAM_READ_BITS: tl.sram_bits.ravel(),
        col.DRAM_READ_BITS: tl.dram_bits.ravel(),
        col.END_CYCLE: tl.end.ravel(),
    })[_TILE_COLUMNS]
