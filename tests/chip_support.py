"""Helpers for the chip tests: tiny hand-made networks, chips and spike trains."""

from __future__ import annotations

import numpy as np
import pandas as pd

from accelsim.chip.hardware import Hardware, load_hardware
from accelsim.chip.mapping import map_network
from accelsim.chip.simulation import SimulationResult, replay
from accelsim.chip.timeline import Timeline
from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.spiking.functional import SpikeTrain
from accelsim.workflow import columns as col

TINY = {
    "mesh.rows": 1, "mesh.cols": 3,
    "tile.queue_depth_packets": 4,
    "tile.weight_sram_banks": 1, "tile.weight_sram_word_bits": 64,
    "tile.accumulate_units": 1, "tile.accumulate_latency_cycles": 1,
    "tile.neuron_update_units": 1, "tile.neuron_update_latency_cycles": 1,
    "noc.hop_latency_x_cycles": 1, "noc.hop_latency_y_cycles": 1,
    "noc.link_width_bits": 32, "noc.packet_bits": 32, "noc.flit_cycles": 1,
    "schedule.barrier_cycles": 0,
}


def tiny_hw(**overrides) -> Hardware:
    """A small 45nm-generic chip with unit latencies (dotted keys with '__' for '.')."""
    return load_hardware("45nm-generic", {**TINY, **{k.replace("__", "."): v
                                                      for k, v in overrides.items()}})


def chain(units: list[int], inputs: int = 1) -> Network:
    """input (inputs,) -> linear spiking layers of ``units`` -> 1-unit output, weights 1."""
    layers, weights, source, n_in = [], {}, INPUT, inputs
    for i, n in enumerate(units):
        name = f"l{i}"
        layers.append(Layer(name=name, kind="spiking", shape=(n,), inputs=(
            Projection(source=source, op="linear", weight=f"{name}.w"),)))
        weights[f"{name}.w"] = np.ones((n, n_in), dtype=np.float32)
        source, n_in = name, n
    layers.append(Layer(name="out", kind="output", shape=(1,), inputs=(
        Projection(source=source, op="linear", weight="out.w"),)))
    weights["out.w"] = np.ones((1, n_in), dtype=np.float32)
    arch = Architecture(name="chain", input_shape=(inputs,), num_classes=1,
                        layers=tuple(layers))
    return Network(architecture=arch, weights=weights, timesteps=1, input_mean=(0.0,),
                   input_std=(1.0,))


def train(per_step: list[list[int]]) -> SpikeTrain:
    counts = [len(s) for s in per_step]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = [i for s in per_step for i in sorted(s)]
    return SpikeTrain(offsets=offsets, indices=np.asarray(flat, dtype=np.int32))


def synthetic_counts(network: Network, spikes: list[dict[str, SpikeTrain]], T: int
                     ) -> pd.DataFrame:
    """The functional columns the chip reads, for hand-made spike trains."""
    rows = []
    for i, trains in enumerate(spikes):
        for layer in network.layers:
            for t in range(T):
                s_in = sum(len(trains[p.source].at(t)) for p in layer.inputs
                           if p.source != INPUT)
                macs = 0
                if t == 0:
                    for p in layer.inputs:
                        if p.source == INPUT and p.op == "linear":
                            macs += int(np.prod(network.architecture.input_shape)) * (
                                layer.neurons)
                rows.append({col.IMAGE: i, col.LAYER: layer.name, col.TIMESTEP: t + 1,
                             col.SPIKES_IN: s_in,
                             col.SPIKES_OUT: len(trains[layer.name].at(t))
                             if layer.name in trains else 0,
                             col.NEURONS: layer.neurons, col.SYNAPTIC_OPS: 0, col.MACS: macs,
                             col.NEURON_UPDATES: layer.neurons,
                             col.ACTIVE_NEURON_UPDATES: 0})
    return pd.DataFrame(rows)[list(col.FUNCTIONAL_COUNTS)]


def run_mode(network: Network, spikes: list[dict[str, SpikeTrain]], hw: Hardware, T: int, *,
             mode: str = "fast", schedule: str = "barrier",
             tiles_per_layer: dict[str, int] | None = None,
             counts: pd.DataFrame | None = None) -> tuple[SimulationResult, list[Timeline]]:
    mapping = map_network(network, hw, tiles_per_layer)
    tls: list[Timeline] = []
    counts = synthetic_counts(network, spikes, T) if counts is None else counts
    result = replay(network, spikes, hw, counts=counts,
                    predictions=np.zeros(len(spikes), dtype=np.int64), timesteps=T, mode=mode,
                    schedule=schedule, per_tile=True, mapping=mapping, timelines=tls)
    return result, tls


def assert_modes_equal(network, spikes, hw, T, *, schedule="barrier", tiles_per_layer=None,
                       counts=None) -> tuple[SimulationResult, list[Timeline]]:
    """Run both modes; demand identical tables and identical per-packet timelines."""
    fast, ftl = run_mode(network, spikes, hw, T, mode="fast", schedule=schedule,
                         tiles_per_layer=tiles_per_layer, counts=counts)
    ref, rtl = run_mode(network, spikes, hw, T, mode="reference", schedule=schedule,
                        tiles_per_layer=tiles_per_layer, counts=counts)
    pd.testing.assert_frame_equal(fast.layers, ref.layers)
    pd.testing.assert_frame_equal(fast.images, ref.images)
    pd.testing.assert_frame_equal(fast.tiles, ref.tiles)
    for a, b in zip(ftl, rtl, strict=True):
        np.testing.assert_array_equal(a.packet_table(), b.packet_table())
        for name in ("fire_start", "fire_end", "inputs_done", "end", "phase_end"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    return fast, ftl
