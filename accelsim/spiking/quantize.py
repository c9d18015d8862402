"""Fixed-point arithmetic of the spiking core, and its PyTorch reference.

The arithmetic, per network (``Quantization`` gives the bit widths):

- Input: ``x_q = clip(round(x / s_x), -Q_in, Q_in)`` with ``Q_in = 2**(input_bits-1) - 1`` and
  ``s_x`` fixed by the normalisation (the largest |value| a pixel in [0, 1] can take, over
  channels, divided by ``Q_in``), so it never depends on the images being run.
- Weights: each layer ``l`` has one membrane unit. Its weighted projections ``p`` (conv, linear;
  average pool ``P_p``) share the scale ``m_l = max_p max|W_p| / (P_p**2 * Q_w)`` (symmetric
  max-abs, ``Q_w = 2**(weight_bits-1) - 1``), and ``q_p = round(W_p / (P_p**2 * m_l))``. A spike
  of a pooled source adds the integer ``q_p`` to each target its pooled cell reaches: the
  ``1/P**2`` is folded into the unit (so into the threshold), and pooling is exact in integers.
  A layer fed by the analog input has unit ``U_l = m_l * s_x`` (its current is ``sum q * x_q``,
  computed once per image); a layer fed by spikes has ``U_l = m_l``.
- Shortcuts: an identity projection adds ``round(1 / (P**2 * U_l))`` per spike; a 1x1 conv
  shortcut is a weighted projection above, so both land in the receiving layer's units.
- Bias (a layer's constant current, held at the membrane's width): ``round(b_l / U_l)``.
- Threshold ``V_l = max(1, round(v_l / U_l))``; leak multiplier ``L_l = round(lambda_l *
  2**leak_bits)``; membrane bounds ``lo, hi = -2**(membrane_bits-1), 2**(membrane_bits-1) - 1``.
- Each timestep, layer by layer: the current ``I`` of all input spikes accumulates in a wide
  (int64) accumulator; then ``u = sat(round(u * L / 2**leak_bits) + I)``, ``o = u > V``,
  ``u -= V * o``. The output layer: ``u = sat(u + I)``. ``round`` is ``leak_rounding``: floor
  (arithmetic shift right; the default without a chip) or truncate (toward zero, as Loihi);
  they differ on negative membranes whenever the leak is below 1.
- Output: the output layer's integer membrane after T steps, reported as ``u * U_L`` (float64);
  the prediction is its argmax.

:func:`accelsim.spiking.testing.reference_forward` computes the same arithmetic with PyTorch on
float64
tensors holding integers (exact below 2**53): dense convolutions of sum-pooled spike maps, so it
shares nothing with the event-driven kernels but the definitions above.

:class:`Quantization` is the one description of the widths: the scenario's
``simulation.quantization`` section is this model, and :func:`check_tile` refuses widths that a
tile cannot store and a leak rounding other than the tile's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from accelsim.chip import prepared
from accelsim.model.network import INPUT, Network
from accelsim.spiking import kernels as k
from accelsim.spiking.core import (
    CoreTables,
    FunctionalResult,
    build_tables,
    kernel_layout,
    run_tables,
)


class Quantization(BaseModel):
    """Bit widths of the fixed-point arithmetic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weight_bits: int = Field(8, ge=2, le=16, description="signed weight width")
    membrane_bits: int = Field(24, ge=8, le=48, description="signed membrane width (saturating)")
    leak_bits: int = Field(12, ge=1, le=24, description="fractional bits of the leak multiplier")
    input_bits: int = Field(8, ge=2, le=16, description="signed width of the analog input")
    leak_rounding: Literal["floor", "truncate"] | None = Field(
        None, description="rounding of the leak product: floor, or truncate toward zero; "
                          "default: the chip's tile.leak_rounding (floor without a chip)")

    @property
    def truncates(self) -> bool:
        return self.leak_rounding == "truncate"


def as_quantization(value: Quantization | Mapping | None) -> Quantization:
    """``value`` as a :class:`Quantization` (None: the defaults; a mapping: its fields)."""
    if value is None:
        return Quantization()
    if isinstance(value, Quantization):
        return value
    if isinstance(value, Mapping):
        return Quantization.model_validate(dict(value))
    raise TypeError("quantization must be an accelsim.spiking.quantize.Quantization or a "
                    f"mapping of its "
                    f"fields (weight_bits, membrane_bits, ...), got {type(value).__name__}")


def check_tile(quantization: Quantization, tile) -> None:
    """Refuse what the tile (:class:`accelsim.chip.hardware.TileConfig`) cannot do: widths its
    weight
    SRAM (``tile.weight_bits`` per weight) and membrane store (``tile.membrane_bits`` per neuron)
    cannot hold, at which the chip's traffic and energy are counted, and a leak rounding other
    than its ``tile.leak_rounding``."""
    for name in ("weight_bits", "membrane_bits"):
        want, have = getattr(quantization, name), getattr(tile, name)
        if want > have:
            raise ValueError(f"quantization.{name} = {want} does not fit the tile's {name} = "
                             f"{have}; set hardware.overrides.tile.{name}: {want} or lower "
                             f"quantization.{name} to at most {have}")
    if quantization.leak_rounding not in (None, tile.leak_rounding):
        raise ValueError(f"quantization.leak_rounding = {quantization.leak_rounding} but the "
                         f"tile rounds the leak by {tile.leak_rounding}; set hardware.overrides."
                         f"tile.leak_rounding: {quantization.leak_rounding} or remove "
                         "quantization.leak_rounding")


def for_tile(quantization: Quantization, tile) -> Quantization:
    """``quantization`` checked against the tile (:func:`check_tile`), rounding the leak as the
    tile does where it names no rounding."""
    check_tile(quantization, tile)
    if quantization.leak_rounding is None:
        return quantization.model_copy(update={"leak_rounding": tile.leak_rounding})
    return quantization


@dataclass(frozen=True)
class QuantisedNetwork:
    """A network's integers: what the kernels run and what the reference recomputes."""

    network: Network
    quantization: Quantization
    input_scale: float
    units: dict[str, float]            # membrane unit U_l per layer (real value of 1)
    weights: dict[str, np.ndarray]     # integer weights per weight name, torch layout (int64)
    increments: dict[tuple[str, int], int]  # identity projections: (layer, index) -> increment
    biases: dict[str, np.ndarray]      # per layer with a bias, int64 per channel or unit
    thresholds: dict[str, int]
    leaks: dict[str, int]
    lo: int
    hi: int

    @property
    def input_max(self) -> int:
        return 2 ** (self.quantization.input_bits - 1) - 1

    def quantise_input(self, images: np.ndarray) -> np.ndarray:
        """Normalised float images to the integer input (same shape, int64)."""
        q = np.rint(np.asarray(images, dtype=np.float64) / self.input_scale)
        return np.clip(q, -self.input_max, self.input_max).astype(np.int64)


def quantise_network(network: Network, quantization: Quantization | None = None
                     ) -> QuantisedNetwork:
    """Quantise weights, thresholds, leaks and the input scale (module docstring)."""
    q = quantization or Quantization()
    q_w = 2 ** (q.weight_bits - 1) - 1
    q_in = 2 ** (q.input_bits - 1) - 1
    lo, hi = -(2 ** (q.membrane_bits - 1)), 2 ** (q.membrane_bits - 1) - 1
    mean = np.asarray(network.input_mean, dtype=np.float64)
    std = np.asarray(network.input_std, dtype=np.float64)
    input_scale = float(np.max(np.maximum(np.abs(-mean / std), np.abs((1.0 - mean) / std)))) / q_in
    units: dict[str, float] = {}
    weights: dict[str, np.ndarray] = {}
    increments: dict[tuple[str, int], int] = {}
    thresholds: dict[str, int] = {}
    leaks: dict[str, int] = {}
    biases: dict[str, np.ndarray] = {}
    for layer in network.layers:
        fed = {p.source == INPUT for p in layer.inputs}
        if len(fed) > 1:
            raise ValueError(f"layer {layer.name!r} mixes the analog input with spiking sources; "
                             "fixed arithmetic needs one unit per layer: feed it from one kind")
        weighted = [p for p in layer.inputs if p.weight is not None]
        m = max((float(np.max(np.abs(network.weights[p.weight]))) / (p.pool ** 2 * q_w)
                 for p in weighted), default=0.0)
        if m == 0.0:
            m = 1.0 / q_w  # all-zero weights: any unit represents them exactly
        unit = m * input_scale if fed == {True} else m
        units[layer.name] = unit
        for j, p in enumerate(layer.inputs):
            if p.weight is None:
                inc = int(round(1.0 / (p.pool ** 2 * unit)))
                if inc > hi:
                    raise ValueError(f"layer {layer.name!r}: the identity shortcut adds {inc} "
                                     f"per spike, beyond membrane_bits={q.membrane_bits}; "
                                     "raise membrane_bits")
                increments[(layer.name, j)] = inc
                continue
            w = np.asarray(network.weights[p.weight], dtype=np.float64)
            weights[p.weight] = np.clip(np.rint(w / (p.pool ** 2 * m)), -q_w, q_w).astype(
                np.int64)
        if layer.bias is not None:
            b = np.rint(np.asarray(network.weights[layer.bias], dtype=np.float64) / unit)
            if np.abs(b).max(initial=0) > hi:
                raise ValueError(f"layer {layer.name!r}: its bias reaches {np.abs(b).max():.0f} "
                                 f"membrane units, beyond membrane_bits={q.membrane_bits}; "
                                 "raise membrane_bits")
            biases[layer.name] = b.astype(np.int64)
        if layer.kind == "spiking":
            v = max(1, int(round(layer.threshold / unit)))
            if v > hi:
                raise ValueError(f"layer {layer.name!r}: threshold {layer.threshold} is {v} "
                                 f"membrane units, beyond membrane_bits={q.membrane_bits}; raise "
                                 "membrane_bits or weight_bits")
            thresholds[layer.name] = v
            leaks[layer.name] = int(round(layer.leak * 2 ** q.leak_bits))
    return QuantisedNetwork(network=network, quantization=q, input_scale=input_scale,
                            units=units, weights=weights, increments=increments,
                            biases=biases, thresholds=thresholds, leaks=leaks, lo=lo, hi=hi)


def fixed_tables(qnet: QuantisedNetwork, timesteps: int) -> CoreTables:
    """The kernels' tables with int64 weights, thresholds and leak multipliers."""
    net = qnet.network
    tables = build_tables(net, timesteps)
    weights = np.zeros(tables.weights.shape[0], dtype=np.int64)
    p_row = 0
    for layer in net.layers:
        for j, p in enumerate(layer.inputs):
            off = tables.projs[p_row, k.P_W_OFF]
            p_row += 1
            if p.weight is None:
                weights[off] = qnet.increments[(layer.name, j)]
                continue
            w = qnet.weights[p.weight]
            weights[off:off + w.size] = kernel_layout(p.op, w)
    bias = np.zeros(tables.bias.shape[0], dtype=np.int64)
    for li, la in enumerate(net.layers):
        if la.bias is not None:
            off, n = tables.layers[li, k.L_OFF], tables.layers[li, k.L_N]
            bias[off:off + n] = np.tile(qnet.biases[la.name], n // qnet.biases[la.name].size)
    leaks = np.array([qnet.leaks.get(la.name, 0) for la in net.layers], dtype=np.int64)
    thresholds = np.array([qnet.thresholds.get(la.name, 1) for la in net.layers], dtype=np.int64)
    return dataclasses.replace(tables, weights=weights, bias=bias, leaks=leaks,
                               thresholds=thresholds,
                               leak_shift=qnet.quantization.leak_bits, lo=qnet.lo, hi=qnet.hi,
                               leak_truncate=qnet.quantization.truncates)


def run_fixed(network: Network, x: np.ndarray, timesteps: int,
              quantization: Quantization | None, record_spikes: bool) -> FunctionalResult:
    """:func:`accelsim.spiking.functional.run` in fixed arithmetic (``x``: float64 flat image
    rows)."""
    def build() -> tuple[QuantisedNetwork, CoreTables]:
        qnet = quantise_network(network, quantization)
        return qnet, fixed_tables(qnet, timesteps)

    qnet, tables = prepared.cached(
        "fixed", (prepared.fingerprint(network), quantization or Quantization(), timesteps),
        build)
    result = run_tables(tables, qnet.quantise_input(x), timesteps, record_spikes)
    unit = qnet.units[network.layers[-1].name]
    return dataclasses.replace(result, output=result.output.astype(np.float64) * unit)
