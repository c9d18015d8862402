"""The hardware description of a tiled neuromorphic chip: validated data, never code per chip.

A chip is a YAML document (the shipped presets are package data in ``presets/``) validated into
the frozen :class:`Hardware` model, one section per kind of unit (mesh, tile, noc, dram, clock,
schedule, energy). Every quantity carries its unit in its name; every preset number carries a
``source`` (see the preset files).

Times are counted in *cycles* of the chip clock; an asynchronous chip (Loihi) counts in time units
of ``clock.time_unit_ns`` nanoseconds instead, and its latencies are given in those units.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from accelsim.workflow import yamlfile


class HardwareError(ValueError):
    """A hardware description (file, preset name or override) is invalid."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str | None = Field(None, description="where the published figures come from")


SYNAPSE_KINDS = ("conv", "dense", "sparse")
"""Projection kinds a synapse is priced and timed by: conv (shared kernel), dense (linear: a
weight per source-target pair), sparse (a listed synapse; identity shortcuts are one each)."""


class _PerKind(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SynapseCycles(_PerKind):
    """Accumulate latency per projection kind (cycles per accumulate step)."""

    conv: int = Field(ge=1)
    dense: int = Field(ge=1)
    sparse: int = Field(ge=1)


class SynapsePj(_PerKind):
    """Energy of one synaptic event per projection kind (pJ)."""

    conv: float = Field(ge=0)
    dense: float = Field(ge=0)
    sparse: float = Field(ge=0)


def per_kind(value: float | _PerKind) -> dict[str, Any]:
    """A per-kind field as {kind: value}: one number applies to every kind."""
    if isinstance(value, _PerKind):
        return value.model_dump()
    return dict.fromkeys(SYNAPSE_KINDS, value)


class MeshConfig(_Section):
    """The 2-D mesh of tiles; tile ``i`` sits at row ``i // cols``, column ``i % cols``."""

    rows: int = Field(ge=1)
    cols: int = Field(ge=1)

    @property
    def tiles(self) -> int:
        return self.rows * self.cols


class TileConfig(_Section):
    """One tile: input queue, weight SRAM, accumulate units, membrane storage, neuron updates."""

    queue_depth_packets: int = Field(ge=1, description="input spike queue depth")
    weight_sram_capacity_bits: int = Field(ge=1)
    weight_sram_banks: int = Field(ge=1, description="words read in parallel per cycle")
    weight_sram_word_bits: int = Field(ge=1)
    weight_bits: int = Field(ge=1, le=64)
    accumulate_units: int = Field(ge=1, description="synaptic additions (or MACs) per step")
    accumulate_latency_cycles: int | SynapseCycles = Field(
        description="cycles per accumulate step: one number, or one per synapse kind")
    membrane_bits: int = Field(ge=1, le=64)
    neuron_update_units: int = Field(ge=1, description="neurons updated per step")
    neuron_update_latency_cycles: int = Field(ge=1, description="cycles per update step")
    max_neurons: int = Field(ge=1, description="neurons one tile can hold")
    static_power_mw: float = Field(ge=0, description="leakage power of one powered tile")
    leak_rounding: Literal["floor", "truncate"] = Field(
        "floor", description="fixed-point leak product: floor (arithmetic shift) or truncate "
                             "toward zero (Loihi)")
    activation_bits: int = Field(
        8, ge=1, le=32, description="one ANN activation (accelsim.chip.ann): 8 = int8, the width "
        "whose multiply the presets price (Horowitz 2014: int8 mult 0.2 pJ) and the usual "
        "inference width of quantised ANN accelerators (Jouppi et al., ISCA 2017: TPU v1)")
    zero_skipping: bool = Field(
        False, description="ANN only: skip multiplications, operand reads and packets of "
        "zero activations (ReLU zeros), as sparse ANN accelerators do")

    @property
    def membrane_storage_bits(self) -> int:
        return self.max_neurons * self.membrane_bits


class NocConfig(_Section):
    """Spike packets on the mesh: XY routing, per-hop latency, serialised links, finite router
    buffers (accelsim.chip.mesh)."""

    hop_latency_x_cycles: int = Field(ge=1, description="per east-west hop (at least a cycle: "
                                      "a router's arbitration sees the packets of the cycles "
                                      "before)")
    hop_latency_y_cycles: int = Field(ge=1, description="per north-south hop")
    link_width_bits: int = Field(ge=1)
    packet_bits: int = Field(ge=1, description="one spike packet (address + header)")
    flit_cycles: int = Field(1, ge=1, description="cycles to move one link-width flit")
    router_buffer_packets: int = Field(
        4, ge=1, description="whole packets one router input buffer holds (virtual "
        "cut-through, credit-based; accelsim.chip.mesh); design choice: 4, so that one "
        "stream never waits for credits while a slot is held for at most 3 packet times "
        "(hop latency + packet cycles)")

    @property
    def packet_cycles(self) -> int:
        """Cycles a packet occupies a link (injection or ejection port)."""
        return math.ceil(self.packet_bits / self.link_width_bits) * self.flit_cycles


class DramConfig(_Section):
    """One off-chip DRAM channel shared by every tile (weights that spill stream from it)."""

    bandwidth_bits_per_cycle: int = Field(ge=1)
    latency_cycles: int = Field(ge=0)


class ClockConfig(_Section):
    """A synchronous clock (``mhz``) or an asynchronous chip counting ``time_unit_ns`` units."""

    mhz: float | None = Field(None, gt=0)
    asynchronous: bool = False
    time_unit_ns: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> ClockConfig:
        if self.asynchronous == (self.mhz is not None) or self.asynchronous == (
                self.time_unit_ns is None):
            raise ValueError("clock: give either 'mhz' (synchronous) or 'asynchronous: true' "
                             "with 'time_unit_ns'")
        return self

    @property
    def cycle_ns(self) -> float:
        return self.time_unit_ns if self.asynchronous else 1e3 / self.mhz  # type: ignore


class ScheduleConfig(_Section):
    """How timesteps are synchronised: a global barrier, or layer-pipelined."""

    kind: Literal["barrier", "pipelined"] = "barrier"
    barrier_cycles: int = Field(0, ge=0, description="cost of one global barrier")


class EnergyTable(_Section):
    """Energy per counted action, picojoules (static power is in the tile section)."""

    accumulate_pj: float | SynapsePj = Field(
        description="one synaptic event: one number, or one per synapse kind")
    mac_pj: float = Field(ge=0, description="one multiply-accumulate (analog first layer)")
    weight_sram_read_pj_per_bit: float | None = Field(None, ge=0)
    sram_read_pj_per_64bit_by_kib: dict[float, float] | None = Field(
        None, description="SRAM 64-bit read energy at capacities (KiB); interpolated "
                          "log-linearly when a per-bit figure is not given")
    membrane_read_pj_per_bit: float | None = Field(None, ge=0)
    membrane_write_pj_per_bit: float | None = Field(None, ge=0)
    neuron_update_active_pj: float = Field(ge=0)
    neuron_update_inactive_pj: float = Field(ge=0)
    spike_out_pj: float = Field(0.0, ge=0, description="one fired neuron (spike generation, "
                                                      "reset), whatever its fan-out")
    packet_pj: float = Field(0.0, ge=0, description="sending one spike packet")
    hop_x_pj: float = Field(ge=0, description="one packet, one east-west hop")
    hop_y_pj: float = Field(ge=0, description="one packet, one north-south hop")
    dram_pj_per_bit: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _sram_given(self) -> EnergyTable:
        table = self.sram_read_pj_per_64bit_by_kib
        if table is not None and len(table) < 2:
            raise ValueError("energy.sram_read_pj_per_64bit_by_kib needs at least two points")
        for name in ("weight_sram_read_pj_per_bit", "membrane_read_pj_per_bit",
                     "membrane_write_pj_per_bit"):
            if getattr(self, name) is None and table is None:
                raise ValueError(f"energy.{name} is missing: give it, or give "
                                 "sram_read_pj_per_64bit_by_kib to interpolate it")
        return self

    def sram_pj_per_bit(self, capacity_bits: int) -> float:
        """Log-linear interpolation (extrapolation at the ends) of the 64-bit read table."""
        assert self.sram_read_pj_per_64bit_by_kib is not None
        points = sorted(self.sram_read_pj_per_64bit_by_kib.items())
        kib = capacity_bits / 8 / 1024
        x = math.log(kib)
        i = 1
        while i < len(points) - 1 and kib > points[i][0]:
            i += 1
        (k0, e0), (k1, e1) = points[i - 1], points[i]
        e = e0 + (e1 - e0) * (x - math.log(k0)) / (math.log(k1) - math.log(k0))
        return max(e, 0.0) / 64.0


MAPPING_POLICIES = ("spread", "compact")
"""How :mod:`accelsim.chip.mapping` hands out tiles (see its docstring)."""


class MappingConfig(_Section):
    """How a network is placed on the tiles (:mod:`accelsim.chip.mapping`)."""

    policy: Literal["spread", "compact"] = Field(
        "spread", description="'spread': every tile used, spare tiles to the layer with the "
        "most weight bits per tile; 'compact': the fewest tiles that hold each layer, placed "
        "so that consumers sit next to producers")
    tiles_per_layer: dict[str, int] = Field(
        default_factory=dict, description="layer name -> tiles, fixed; the other layers follow "
        "the policy with the tiles that remain")


class Hardware(_Section):
    """A complete chip description."""

    name: str
    description: str = ""
    mesh: MeshConfig
    tile: TileConfig
    noc: NocConfig
    dram: DramConfig | None = None
    clock: ClockConfig
    schedule: ScheduleConfig = ScheduleConfig()
    energy: EnergyTable
    mapping: MappingConfig = MappingConfig()
    first_layer: Literal["mac", "bias"] = Field(
        "mac", description="analog input: 'mac', the chip multiply-accumulates it once per "
                           "image; 'bias', a host computes it and loads it as each neuron's "
                           "bias (no chip MACs, no first-layer weight reads)")

    @property
    def synapse_cycles(self) -> dict[str, int]:
        """Accumulate latency per synapse kind."""
        return per_kind(self.tile.accumulate_latency_cycles)

    @property
    def synapse_pj(self) -> dict[str, float]:
        """Energy of one synaptic event per synapse kind."""
        return per_kind(self.energy.accumulate_pj)

    @property
    def weight_sram_pj_per_bit(self) -> float:
        e = self.energy.weight_sram_read_pj_per_bit
        return self.energy.sram_pj_per_bit(self.tile.weight_sram_capacity_bits) if e is None else e

    @property
    def membrane_read_pj_per_bit(self) -> float:
        e = self.energy.membrane_read_pj_per_bit
        return self.energy.sram_pj_per_bit(self.tile.membrane_storage_bits) if e is None else e

    @property
    def membrane_write_pj_per_bit(self) -> float:
        e = self.energy.membrane_write_pj_per_bit
        return self.energy.sram_pj_per_bit(self.tile.membrane_storage_bits) if e is None else e

    def cycles_to_us(self, cycles: float) -> float:
        return cycles * self.clock.cycle_ns / 1e3


PRESET_PACKAGE = "accelsim.chip.hardware"


def _preset_files() -> dict[str, Any]:
    folder = resources.files(PRESET_PACKAGE).joinpath("presets")
    return {p.name[:-5]: p for p in folder.iterdir() if p.name.endswith(".yaml")}


@functools.cache
def _preset_data(name: str) -> Any:
    """A shipped preset, parsed once per process (callers get a copy to change)."""
    return yamlfile.load(_preset_files()[name].read_text())


def list_presets() -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped preset, sorted by name."""
    out = []
    for name in sorted(_preset_files()):
        data = _preset_data(name)
        out.append((name, str(data.get("description", "")).strip().splitlines()[0]))
    return out


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    keys = dotted.split(".")
    if keys[:2] == list(_FREE_KEYS) and len(keys) > 3:  # a layer name may hold dots
        keys = [*keys[:2], ".".join(keys[2:])]
    node: Any = data
    for i, key in enumerate(keys):
        if isinstance(node, dict) and key not in node and i < len(keys) - 1 and _is_field(
                data, keys[:i + 1]):
            node[key] = {}  # an optional section the preset leaves out
        if not isinstance(node, dict) or key not in node and i < len(keys) - 1:
            raise HardwareError(f"{origin}: override {dotted!r}: no section "
                                f"{'.'.join(keys[:i + 1])!r}; sections are {sorted(data)}")
        if i == len(keys) - 1:
            if key not in node and not _is_field(data, keys) and tuple(keys[:-1]) != _FREE_KEYS:
                raise HardwareError(f"{origin}: override {dotted!r}: unknown field {key!r}; "
                                    f"{'.'.join(keys[:-1]) or 'top level'} has "
                                    f"{sorted(_fields_of(keys[:-1]))}")
            node[key] = value
        else:
            node = node[key]


_FREE_KEYS = ("mapping", "tiles_per_layer")
"""The one field whose keys are not fields but names (of the network's layers)."""


_SECTIONS: dict[str, type[BaseModel]] = {
    "mesh": MeshConfig, "tile": TileConfig, "noc": NocConfig, "dram": DramConfig,
    "clock": ClockConfig, "schedule": ScheduleConfig, "energy": EnergyTable,
    "mapping": MappingConfig}


def _fields_of(path: list[str]) -> list[str]:
    if not path:
        return list(Hardware.model_fields)
    model = _SECTIONS.get(path[0])
    return list(model.model_fields) if model is not None and len(path) == 1 else []


def _is_field(data: dict[str, Any], keys: list[str]) -> bool:
    return keys[-1] in _fields_of(keys[:-1])


def load_hardware(preset: str | Path, overrides: Mapping[str, Any] | None = None) -> Hardware:
    """Load a preset by name (see :func:`list_presets`) or a YAML file, apply dotted overrides
    (``{"tile.queue_depth_packets": 4, "mesh.rows": 2}``) and validate."""
    files = _preset_files()
    if isinstance(preset, str) and preset in files:
        origin = f"preset {preset!r}"
        data = copy.deepcopy(_preset_data(preset))
    else:
        path = Path(preset)
        if not path.is_file():
            raise HardwareError(f"hardware {str(preset)!r} is neither a preset "
                                f"({', '.join(sorted(files))}) nor an existing YAML file")
        origin = str(path)
        try:
            data = yamlfile.load(yamlfile.read_text(path))
        except yaml.YAMLError as exc:
            line = yamlfile.error_line(exc)
            where = f"{path}:{line}" if line is not None else origin
            raise HardwareError(f"{where}: not valid YAML: {yamlfile.error_message(exc)}"
                                ) from None
        except ValueError as exc:
            raise HardwareError(str(exc)) from None
    if not isinstance(data, dict):
        raise HardwareError(f"{origin}: expected a mapping of sections, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, str(dotted), value, origin)
    try:
        return Hardware.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                             for e in error.errors())
        raise HardwareError(f"{origin}: invalid hardware description: {problems}") from None


def to_yaml(hardware: Hardware) -> str:
    """The resolved description as YAML (what ``accelsim presets NAME`` prints)."""
    return yaml.safe_dump(hardware.model_dump(mode="json", exclude_none=True), sort_keys=False)
