"""Test support for the scenario/runner/results/plots tests: a tiny saved model, and a small
stand-in chip (functional counts from accelsim.spiking.functional, priced by fixed constants) so the
plumbing can be tested in a second instead of a cycle-level simulation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from accelsim.chip.mapping import map_network
from accelsim.model.architectures import build
from accelsim.model.modelfile import save_model
from accelsim.model.network import Network
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.workflow import columns as C
from accelsim.workflow import runner

PRICE_PJ = {"accumulate": 0.9, "mac": 4.6, "weight_sram": 2.0, "membrane": 1.0,
            "neuron_update": 0.5, "spike_out": 0.2, "mesh": 3.0, "dram": 0.0, "static": 0.1}


def save_tiny_model(folder: Path, name: str = "tiny", *, dataset: str = "digits",
                    channels: int = 1, size: int = 8, seed: int = 0) -> Path:
    """A VGG5 at width 1/16 on ``size`` x ``size`` images, weights from a seeded init."""
    arch = build("vgg5", (channels, size, size), 10, width=1 / 16)
    weights = SpikingNetwork(arch, seed=seed).weight_arrays()
    layers = tuple(layer.model_copy(update={"threshold": 0.5, "leak": 0.95})
                   if layer.kind == "spiking" else layer for layer in arch.layers)
    arch = arch.model_copy(update={"layers": layers})
    net = Network(name=name, dataset=dataset, architecture=arch, weights=weights, timesteps=3,
                  input_mean=(0.3,) * channels, input_std=(0.3,) * channels)
    return save_model(folder / name, net)


def fake_simulate(network: Network, images: np.ndarray, labels: np.ndarray,
                  hardware: SimpleNamespace, sim: Any) -> SimpleNamespace:
    from accelsim.spiking.functional import run

    result = run(network, images, timesteps=sim.timesteps)
    layers = result.counts.copy()
    units = hardware.tile.accumulate_units
    layers[C.CYCLES] = (layers[C.SYNAPTIC_OPS] // units + layers[C.MACS] // units
                        + layers[C.NEURON_UPDATES] + 1).astype(np.int64)
    layers[C.BUSY_CYCLES] = layers[C.CYCLES]
    for col in (C.STALL_CYCLES, C.DRAM_READ_BYTES, C.NOC_HOPS, C.QUEUE_PEAK):
        layers[col] = 0
    ops = {"accumulate": layers[C.SYNAPTIC_OPS], "mac": layers[C.MACS],
           "weight_sram": layers[C.SYNAPTIC_OPS], "membrane": layers[C.NEURON_UPDATES],
           "neuron_update": layers[C.NEURON_UPDATES], "spike_out": layers[C.SPIKES_OUT],
           "mesh": layers[C.SPIKES_OUT],
           "dram": layers[C.SPIKES_OUT], "static": layers[C.CYCLES]}
    for comp, col in zip(C.ENERGY_COMPONENTS, C.ENERGY_COLUMNS, strict=True):
        layers[col] = ops[comp].astype(float) * PRICE_PJ[comp]
    layers[C.ENERGY] = layers[list(C.ENERGY_COLUMNS)].sum(axis=1)
    layers[C.COMPUTE_ONLY_SNN] = layers[C.SYNAPTIC_OPS] * 0.9 + layers[C.MACS] * 4.6
    layers[C.COMPUTE_ONLY_ANN] = layers[C.MACS] * 4.6 + layers[C.SYNAPTIC_OPS] * 0.5
    per_image = layers.groupby(C.IMAGE).agg(cycles=(C.CYCLES, "sum"), e=(C.ENERGY, "sum"))
    pred = np.asarray(result.predictions)
    images_table = pd.DataFrame({
        C.IMAGE: np.arange(len(pred)), C.PREDICTION: pred, C.LABEL: labels,
        C.CORRECT: pred == labels, C.TOTAL_CYCLES: per_image["cycles"].to_numpy(),
        C.LATENCY_US: per_image["cycles"].to_numpy() * hardware.clock.cycle_ns / 1e3,
        C.ENERGY_UJ: per_image["e"].to_numpy() / 1e6})
    mapping = map_network(network, hardware).table()
    return SimpleNamespace(layers=layers, images=images_table, mapping=mapping, tiles=None)


def use_fake_chip(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Route the runner's simulations through the stand-in chip; the returned list gets the
    batch size of every simulate call."""
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> SimpleNamespace:
        calls.append(len(args[1]))
        return fake_simulate(*args, **kwargs)

    monkeypatch.setattr(runner, "_simulate", counted)
    return calls


def write_scenario(folder: Path, text: str, name: str = "s.yaml") -> Path:
    path = folder / name
    path.write_text(text)
    return path
