"""Searching the mapping: over policies and per-layer tile counts, for the least energy, latency
or energy-delay product of a network on a chip, measured on a sample of images.

The search replays the sample's spike trains (recorded once by the functional core; the mapping
never changes what spikes) through the cycle-level chip for every candidate:

1. each policy of :data:`accelsim.chip.hardware.MAPPING_POLICIES` as :mod:`accelsim.chip.mapping`
places
   the network;
2. from each of them, ``rounds`` rounds of coordinate descent over the layers in network
   order: the layer's tile count halved, then doubled (within what the layer can use and the
   chip holds), every other layer's count fixed; a move is kept when it lowers the objective.

The choice is the best mapping evaluated; the hardware's own mapping (evaluated first) is kept
unless a candidate is strictly better.

Deterministic: the same network, images and hardware give the same choice. The objective is
the mean over the sample (``edp``: mean energy x mean latency, as the summary reports it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from accelsim.chip.hardware import MAPPING_POLICIES, Hardware, MappingConfig
from accelsim.model.network import Network

OBJECTIVES = ("energy", "latency", "edp")


class SearchSpec(BaseModel):
    """What a scenario's ``mapping_search`` asks for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objective: Literal["energy", "latency", "edp"] = Field(
        "edp", description="what to minimise: energy, latency or their product, per inference")
    images: int = Field(8, ge=1, description="the first this many images of the point are the "
                        "sample (all of them when the point has fewer)")
    rounds: int = Field(1, ge=0, description="rounds of per-layer tile-count moves")


@dataclass(frozen=True)
class SearchResult:
    """The chosen mapping and what it gains over the hardware's own."""

    hardware: Hardware
    """The input hardware with ``mapping`` set to the choice."""
    objective: str
    default: float
    """The objective with the hardware's own mapping."""
    best: float
    candidates: pd.DataFrame
    """One row per evaluated candidate: policy, tiles (``layer:count`` list), energy_uj,
    latency_us, edp_uj_us, objective, chosen; in evaluation order (the first: the default)."""

    @property
    def gain(self) -> float:
        """Fraction of the default's objective the choice saves (0.25: 25 % lower)."""
        return 1.0 - self.best / self.default if self.default > 0 else 0.0

    @property
    def tiles(self) -> str:
        """The chosen tiles per layer, ``layer:count`` separated by spaces."""
        return str(self.candidates.loc[self.candidates["chosen"], "tiles"].iloc[0])

    @property
    def policy(self) -> str:
        return self.hardware.mapping.policy


def _value(energy: float, latency: float, objective: str) -> float:
    return {"energy": energy, "latency": latency, "edp": energy * latency}[objective]


def search(network: Network, images: np.ndarray, hardware: Hardware, *,
           objective: str = "edp", rounds: int = 1, timesteps: int | None = None,
           mode: str = "fast", schedule: str | None = None, arithmetic: str = "float",
           quantization=None) -> SearchResult:
    """Search the mapping of ``network`` on ``hardware`` for the least ``objective`` over
    ``images`` (normalised, N x C x H x W); see the module docstring."""
    from accelsim.chip.mapping import MappingError, map_network, max_tiles, min_tiles
    from accelsim.chip.simulation import replay
    from accelsim.spiking import functional, quantize
    from accelsim.workflow import columns as col

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    T = functional.check_timesteps(timesteps, network.timesteps)
    if arithmetic == "fixed":
        quantization = quantize.for_tile(quantize.as_quantization(quantization), hardware.tile)
    run = functional.run(network, images, timesteps=T, arithmetic=arithmetic,
                         quantization=quantization, record_spikes=True)
    rows: list[dict] = []
    seen: dict[tuple, tuple[float, dict[str, int]]] = {}
    names = [layer.name for layer in network.layers]

    def evaluate(hw: Hardware) -> tuple[float, dict[str, int]]:
        """(objective, tiles per layer) of ``hw``'s mapping; each mapping is replayed once."""
        mapping = map_network(network, hw)
        counts = dict(zip(names, (len(p.tiles) for p in mapping.layers), strict=True))
        key = (hw.mapping.policy, tuple(counts.values()))
        if key not in seen:
            result = replay(network, run.spikes, hw, counts=run.counts,
                            predictions=run.predictions, timesteps=T, mode=mode,
                            schedule=schedule, mapping=mapping)
            energy = float(result.images[col.ENERGY_UJ].mean())
            latency = float(result.images[col.LATENCY_US].mean())
            seen[key] = (_value(energy, latency, objective), counts)
            rows.append({"policy": key[0],
                         "tiles": " ".join(f"{k}:{v}" for k, v in counts.items()),
                         col.ENERGY_UJ: energy, col.LATENCY_US: latency,
                         col.EDP: energy * latency, "objective": seen[key][0]})
        return seen[key]

    def with_mapping(policy: str, counts: dict[str, int] | None = None) -> Hardware:
        return hardware.model_copy(update={"mapping": MappingConfig(
            policy=policy, tiles_per_layer=counts or {})})

    def descend(policy: str) -> tuple[float, Hardware]:
        """Coordinate descent over the layers' tile counts from ``policy``'s own mapping."""
        hw = with_mapping(policy)
        value, counts = evaluate(hw)
        cap = hardware.tile.max_neurons
        for _ in range(rounds):
            moved = False
            for layer in network.layers:
                here = counts[layer.name]
                for n in (here // 2, here * 2):
                    n = min(max(n, min_tiles(layer, cap)), max_tiles(layer))
                    trial = {**counts, layer.name: n}
                    if n == here or sum(trial.values()) > hardware.mesh.tiles:
                        continue
                    try:
                        tried, _ = evaluate(with_mapping(policy, trial))
                    except MappingError:
                        continue
                    if tried < value:
                        value, counts, hw, moved = tried, trial, with_mapping(policy, trial), True
                        break
            if not moved:
                break
        return value, hw

    default, _ = evaluate(hardware)
    best_value, best_hw = default, hardware
    for policy in MAPPING_POLICIES:
        value, hw = descend(policy)
        if value < best_value:
            best_value, best_hw = value, hw
    table = pd.DataFrame(rows)
    chosen = int(np.flatnonzero(table["objective"].to_numpy() == best_value)[0])
    table["chosen"] = np.arange(len(table)) == chosen
    return SearchResult(hardware=best_hw, objective=objective, default=default, best=best_value,
                        candidates=table)
