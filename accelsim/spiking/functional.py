"""The functional (hardware-independent) spiking core: run a network event by event.

``run(network, images)`` executes the DIET-SNN semantics of docs/design.md §2 with numba
kernels (:mod:`accelsim.spiking.kernels`): the analog first layer is a dense multiply-accumulate
computed
once per image, every later layer accumulates the fan-out weights of the spikes it receives, and
LIF layers leak, fire (``u > v``) and soft-reset. No delay between layers.

It returns predictions, the output-layer sums, a tidy table of counts per image x layer x
timestep (columns :data:`accelsim.workflow.columns.FUNCTIONAL_COUNTS`) and, when asked, every
spiking
layer's spike train per image, which the chip model replays.

Count conventions: for a layer fed by the analog input ``spikes_in`` is 0 and ``macs`` is non-zero
only at timestep 1 (its current is the same every step, so it is computed once); ``spikes_in`` of
any other layer is the sum of the spikes of its distinct sources at that timestep; the output
layer has ``spikes_out`` 0. See :mod:`accelsim.spiking.kernels` for the accumulation and update
counts.

Arithmetic ``float`` is float64 and agrees with the float64 PyTorch reference
(:meth:`accelsim.training.torch_snn.SpikingNetwork.forward_snn`); ``fixed`` is the integer
arithmetic of
:mod:`accelsim.spiking.quantize`.
"""

from __future__ import annotations

import numbers
from typing import Literal

import numpy as np

from accelsim.chip import prepared
from accelsim.model.network import Network
from accelsim.spiking import quantize
from accelsim.spiking.core import FunctionalResult, SpikeTrain, build_tables, run_tables

__all__ = ["FunctionalResult", "SpikeTrain", "check_images", "check_timesteps", "run"]


def check_timesteps(timesteps: object, default: int) -> int:
    """``timesteps`` as a positive int (``default`` when None); refuses floats and booleans,
    which ``int()`` would silently truncate (2.7 -> 2, True -> 1)."""
    if timesteps is None:
        return default
    if isinstance(timesteps, bool) or not isinstance(timesteps, numbers.Integral):
        raise TypeError(f"timesteps must be a whole number >= 1, got {timesteps!r} "
                        f"({type(timesteps).__name__})")
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    return int(timesteps)


def check_images(network: Network, images: np.ndarray) -> np.ndarray:
    """Validate normalised images (N, C, H, W) against the network; returns float64 flat rows."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array (N, C, H, W), got {type(images).__name__}")
    expected = tuple(network.architecture.input_shape)
    if images.ndim != len(expected) + 1 or tuple(images.shape[1:]) != expected:
        raise ValueError(f"images have shape {images.shape}; network {network.name!r} needs "
                         f"(N, {', '.join(map(str, expected))}); add a batch axis or resize")
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(f"images have dtype {images.dtype}; pass normalised floating-point "
                         "images (accelsim.model.data.normalise)")
    if not np.all(np.isfinite(images)):
        raise ValueError("images contain NaN or infinity; check the normalisation")
    flat = images.reshape(images.shape[0], int(np.prod(expected)))
    return np.ascontiguousarray(flat, dtype=np.float64)


def run(network: Network, images: np.ndarray, *, timesteps: int | None = None,
        arithmetic: Literal["float", "fixed"] = "float", quantization=None,
        record_spikes: bool = False) -> FunctionalResult:
    """Run normalised ``images`` (N, C, H, W) through ``network`` for ``timesteps`` (default: the
    network's T), event by event.

    ``arithmetic="fixed"`` uses :mod:`accelsim.spiking.quantize` with ``quantization`` (a
    :class:`~accelsim.spiking.quantize.Quantization` or a mapping of its fields; default
    ``Quantization()``).
    """
    T = check_timesteps(timesteps, network.timesteps)
    if arithmetic not in ("float", "fixed"):
        raise ValueError(f"arithmetic must be 'float' or 'fixed', got {arithmetic!r}")
    if arithmetic == "float" and quantization is not None:
        raise ValueError("quantization is only used with arithmetic='fixed'; drop it or set "
                         "arithmetic='fixed'")
    q = quantize.as_quantization(quantization) if arithmetic == "fixed" else None
    x = check_images(network, images)
    if q is not None:
        return quantize.run_fixed(network, x, T, q, record_spikes)
    tables = prepared.cached("tables", (prepared.fingerprint(network), T),
                             lambda: build_tables(network, T))
    return run_tables(tables, x, T, record_spikes)
