"""Count, then price: energy columns from counters x an energy table.

:func:`price` applies a chip's energy table (:class:`accelsim.chip.hardware.EnergyTable`) to the
counters of a per-layer table: synaptic events at the energy of their projection kind (conv,
dense, sparse), MACs, SRAM and membrane bits, neuron updates (active: received input), spikes
out (per fired neuron, whatever its fan-out), mesh packets and hops per direction, DRAM bits and
static power x time. :func:`compute_only` is a second pricing of the same counts with the
paper's fixed figures (docs/design.md §3): E_MAC = 4.6 pJ, E_AC = 0.9 pJ. It is the one
implementation of the compute-only estimate: :func:`compute_only_energy` (the training report,
the model manifest, ``accelsim evaluate``) applies it to spike rates.

Compute-only estimate, per layer l and timestep t (rows of the per-layer table):
- ANN: ``FLOPs_l * E_MAC`` on the timestep-1 row (0 on the other rows), so the per-layer sum is
  ``FLOPs_l * E_MAC``.
- SNN: a layer fed by the analog input: ``FLOPs_l * E_MAC`` on the timestep-1 row (its input is
  constant, computed once). Any other layer: for each projection p from source s,
  ``FLOPs_p * (spikes_out_s[t] / neurons_s) * E_AC``; summed over t this is
  ``FLOPs_p * r_s * E_AC`` with ``r_s`` the spike rate of the layer's input over all T.

FLOPs: conv ``k^2 * C_in * H_out * W_out * C_out``, linear ``in * out`` (the paper's formula).
An identity shortcut counts 0: it is a wire, not a synaptic operation. The paper's FLOP count
covers only conv and linear layers (the ANN's residual addition is not in it either), so counting
it for the SNN alone would tilt the ANN/SNN ratio; a 1x1 conv shortcut has weights and counts
as a conv. The chip model still charges the shortcut's accumulations (``synaptic_ops``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from accelsim.chip.hardware import Hardware
from accelsim.model.network import INPUT, Architecture, Projection, pooled_shape
from accelsim.workflow import columns as col

E_MAC_PJ = 4.6
"""Horowitz 2014, 45 nm 32-bit float multiply-accumulate (docs/design.md §3)."""
E_AC_PJ = 0.9
"""Horowitz 2014, 45 nm 32-bit float addition (docs/design.md §3)."""


def price(layers: pd.DataFrame, hardware: Hardware) -> pd.DataFrame:
    """Return ``layers`` with one ``energy_<component>_pj`` column per component and their sum."""
    e = hardware.energy
    f = lambda name: layers[name].to_numpy(dtype=np.float64)  # noqa: E731
    updates = f(col.NEURON_UPDATES)
    active = f(col.ACTIVE_NEURON_UPDATES)
    components = {
        "accumulate": synapse_energy(layers, hardware),
        "mac": f(col.MACS) * e.mac_pj,
        "weight_sram": f(col.WEIGHT_SRAM_READ_BITS) * hardware.weight_sram_pj_per_bit,
        "membrane": (f(col.MEMBRANE_READ_BITS) * hardware.membrane_read_pj_per_bit
                     + f(col.MEMBRANE_WRITE_BITS) * hardware.membrane_write_pj_per_bit),
        "neuron_update": (active * e.neuron_update_active_pj
                          + (updates - active) * e.neuron_update_inactive_pj),
        "spike_out": f(col.SPIKES_OUT) * e.spike_out_pj,
        "mesh": (f(col.NOC_PACKETS) * e.packet_pj + f(col.NOC_HOPS_X) * e.hop_x_pj
                 + f(col.NOC_HOPS_Y) * e.hop_y_pj),
        "dram": f(col.DRAM_READ_BITS) * e.dram_pj_per_bit,
        # mW x ns = pJ
        "static": (f(col.STATIC_CYCLES) * hardware.clock.cycle_ns
                   * hardware.tile.static_power_mw),
    }
    assert tuple(components) == col.ENERGY_COMPONENTS
    energy = {f"energy_{name}_pj": values for name, values in components.items()}
    energy[col.ENERGY] = sum(components.values(), np.zeros(len(layers)))
    new = [c for c in layers.columns if c not in energy]
    return pd.concat([layers[new], pd.DataFrame(energy, index=layers.index)], axis=1)


def synapse_energy(layers: pd.DataFrame, hardware: Hardware) -> np.ndarray:
    """Synaptic events priced by projection kind: ``sum_k synaptic_ops_k * E_k``.

    The per-kind counts must add up to ``synaptic_ops`` (the chip counts both)."""
    kinds = col.SYNAPTIC_OPS_BY_KIND
    missing = [c for c in kinds.values() if c not in layers.columns]
    if missing:
        raise ValueError(f"pricing needs the per-kind synaptic counts {missing}, which "
                         "accelsim.chip writes; price a chip table")
    by_kind = layers[list(kinds.values())].to_numpy(dtype=np.int64)
    if (by_kind.sum(axis=1) != layers[col.SYNAPTIC_OPS].to_numpy(dtype=np.int64)).any():
        raise ValueError(f"{' + '.join(kinds.values())} differs from {col.SYNAPTIC_OPS} in "
                         "some rows; the per-kind counts must split the total")
    pj = hardware.synapse_pj
    return by_kind.astype(np.float64) @ np.array([pj[k] for k in kinds], dtype=np.float64)


def projection_flops(architecture: Architecture, layer_name: str, p: Projection) -> int:
    """FLOPs of one projection (module docstring; an identity shortcut is 0)."""
    layer = architecture.layer(layer_name)
    src = pooled_shape(architecture.source_shape(p.source), p.pool)
    if p.op == "conv":
        c_out, h, w = layer.shape
        return p.kernel * p.kernel * int(src[0]) * h * w * c_out
    if p.op == "linear":
        return int(np.prod(src)) * layer.neurons
    return 0


def compute_only(layers: pd.DataFrame, architecture: Architecture) -> pd.DataFrame:
    """Return ``layers`` with the compute-only SNN and ANN estimates (pJ) per row."""
    out = layers.copy()
    arch = architecture
    names = [layer.name for layer in arch.layers]
    layer_of = pd.Categorical(out[col.LAYER], categories=names).codes  # -1: not in network
    image = pd.factorize(out[col.IMAGE])[0]
    t = out[col.TIMESTEP].to_numpy(dtype=np.int64)
    first = t == 1
    # spikes_out by (image, layer, timestep); NaN where the table has no row
    spikes = np.full((image.max(initial=-1) + 1, len(names), t.max(initial=0) + 1), np.nan)
    known = layer_of >= 0
    spikes[image[known], layer_of[known], t[known]] = out[col.SPIKES_OUT].to_numpy()[known]
    ann = np.zeros(len(out))
    snn = np.zeros(len(out))
    for li, layer in enumerate(arch.layers):
        rows = layer_of == li
        for p in layer.inputs:
            fp = projection_flops(arch, layer.name, p)
            ann[rows & first] += fp * E_MAC_PJ
            if p.source == INPUT:
                snn[rows & first] += fp * E_MAC_PJ
                continue
            source = spikes[image[rows], names.index(p.source), t[rows]]
            snn[rows] += fp * (source / arch.layer(p.source).neurons) * E_AC_PJ
    out[col.COMPUTE_ONLY_SNN] = snn
    out[col.COMPUTE_ONLY_ANN] = ann
    return out


def compute_only_energy(architecture: Architecture,
                        spike_rates: dict[str, float]) -> tuple[float, float]:
    """``(ann_pj, snn_pj)`` per image from each spiking layer's spike rate (spikes over all T /
    neurons): :func:`compute_only` on one row per layer holding ``rate * neurons`` spikes, which
    sums to ``FLOPs_1 * E_MAC + sum_p FLOPs_p * r_source * E_AC`` for the SNN."""
    sources = [(layer.name, p.source) for layer in architecture.layers for p in layer.inputs
               if p.source != INPUT]
    for name, source in sources:
        if source not in spike_rates:
            raise ValueError(f"compute-only energy: no spike rate for layer {source!r} (input of "
                             f"{name!r}); give one per spiking layer")
    table = pd.DataFrame({
        col.IMAGE: 0,
        col.LAYER: [layer.name for layer in architecture.layers],
        col.TIMESTEP: 1,
        col.SPIKES_OUT: [float(spike_rates.get(layer.name, 0.0)) * layer.neurons
                         for layer in architecture.layers],
    })
    priced = compute_only(table, architecture)
    return float(priced[col.COMPUTE_ONLY_ANN].sum()), float(priced[col.COMPUTE_ONLY_SNN].sum())
