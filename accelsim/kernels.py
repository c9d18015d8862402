"""numba kernels of the event-driven spiking core (float64).

Small pure functions over flat arrays; :mod:`accelsim.functional` checks the inputs, builds the
tables and calls :func:`run_images`.

Layouts
- A layer's *spike indices* are flat ``(C, H, W)`` indices (torch order); a linear layer of N
  units is ``(N, 1, 1)``.
- A layer's *state* (membrane, current, touched flags) is stored channel-last, ``(H, W, C)``, so
  that one input spike adds a contiguous run of ``C_out`` weights at each target position.
- Conv weights are ``(C_in, k, k, C_out)``, linear weights ``(in, out)``; both are already
  multiplied by ``1 / pool**2`` when the projection pools its source (average pooling of spikes
  is linear, so a spike of a pooled source adds ``W / pool**2`` to the targets its pooled cell
  reaches).

Counting rules (the columns of :data:`accelsim.columns.FUNCTIONAL_COUNTS`)
- ``synaptic_ops``: one per weight added into a target current by an input spike; zero-padding
  taps never exist as events, so conv borders count only the real targets.
- ``macs``: the analog first layer does a dense multiply-accumulate once per image (its current is
  the same every timestep), counted at timestep 1 only; padded taps are *not* counted (only real
  taps: ``k*k*C_in`` minus the taps that fall on zero padding).
- ``neuron_updates``: every neuron of the layer at every timestep (output layer included: its
  membrane is updated by the current each step).
- ``active_neuron_updates``: neurons that received at least one accumulation this timestep; a layer
  fed by the analog input receives its constant current every step, so all its neurons are active.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

# Column order of the per-layer, per-timestep count array produced by the kernels.
C_SPIKES_IN, C_SPIKES_OUT, C_NEURONS, C_SYNOPS, C_MACS, C_UPDATES, C_ACTIVE = range(7)
N_COUNTS = 7

# Projection operations (columns of the projection table).
OP_CONV, OP_LINEAR, OP_IDENTITY = 0, 1, 2
# Projection table columns.
(P_TARGET, P_SOURCE, P_OP, P_POOL, P_KERNEL, P_STRIDE, P_PAD, P_SRC_C, P_SRC_H, P_SRC_W,
 P_W_OFF) = range(11)
N_PROJ_COLS = 11
# Layer table columns.
L_C, L_H, L_W, L_N, L_OUTPUT, L_OFF, L_REC_OFF, L_HAS_CONST = range(8)
N_LAYER_COLS = 8


@njit(cache=True)
def conv_scatter(spikes: np.ndarray, n_spikes: int, src_c: int, src_h: int, src_w: int,
                 pool: int, out_c: int, out_h: int, out_w: int, kernel: int, stride: int,
                 padding: int, weights: np.ndarray, w_off: int, current: np.ndarray,
                 touched: np.ndarray) -> int:
    """Add each spike's conv fan-out into ``current`` (HWC); returns the accumulations done."""
    ops = 0
    hw = src_h * src_w
    for s in range(n_spikes):
        idx = spikes[s]
        c = idx // hw
        r = idx - c * hw
        y = (r // src_w) // pool
        x = (r % src_w) // pool
        for ky in range(kernel):
            ny = y + padding - ky
            if ny < 0 or ny % stride != 0:
                continue
            oy = ny // stride
            if oy >= out_h:
                continue
            for kx in range(kernel):
                nx = x + padding - kx
                if nx < 0 or nx % stride != 0:
                    continue
                ox = nx // stride
                if ox >= out_w:
                    continue
                base = (oy * out_w + ox) * out_c
                wbase = w_off + ((c * kernel + ky) * kernel + kx) * out_c
                for co in range(out_c):
                    current[base + co] += weights[wbase + co]
                    touched[base + co] = 1
                ops += out_c
    return ops


@njit(cache=True)
def linear_scatter(spikes: np.ndarray, n_spikes: int, src_h: int, src_w: int, pool: int,
                   n_out: int, weights: np.ndarray, w_off: int, current: np.ndarray,
                   touched: np.ndarray) -> int:
    """Add each spike's weight row ``W[:, i]`` into ``current``; returns the accumulations done."""
    hw = src_h * src_w
    ph = src_h // pool
    pw = src_w // pool
    for s in range(n_spikes):
        idx = spikes[s]
        if pool > 1:
            c = idx // hw
            r = idx - c * hw
            idx = c * ph * pw + ((r // src_w) // pool) * pw + (r % src_w) // pool
        wbase = w_off + idx * n_out
        for o in range(n_out):
            current[o] += weights[wbase + o]
            touched[o] = 1
    return n_spikes * n_out


@njit(cache=True)
def identity_scatter(spikes: np.ndarray, n_spikes: int, src_h: int, src_w: int, pool: int,
                     out_c: int, out_w: int, increment, current: np.ndarray,
                     touched: np.ndarray) -> int:
    """Shortcut: each spike adds ``increment`` (1 / pool**2 in float mode) to the one neuron its
    (pooled) cell maps to."""
    hw = src_h * src_w
    scale = increment
    for s in range(n_spikes):
        idx = spikes[s]
        c = idx // hw
        r = idx - c * hw
        j = (((r // src_w) // pool) * out_w + (r % src_w) // pool) * out_c + c
        current[j] += scale
        touched[j] = 1
    return n_spikes


def leak_of(membrane, leak, shift):
    """The leak term: ``leak * u`` in float; ``(u * leak) >> shift`` (floor) for integers."""
    if isinstance(membrane, (float, np.floating)):
        return leak * membrane
    return (membrane * leak) >> shift


@overload(leak_of, jit_options={"cache": True})
def _leak_of_jit(membrane, leak, shift):
    if isinstance(membrane, types.Float):
        return lambda membrane, leak, shift: leak * membrane
    return lambda membrane, leak, shift: (membrane * leak) >> shift


@njit(cache=True)
def lif_step(current: np.ndarray, membrane: np.ndarray, touched: np.ndarray, c_: int, h_: int,
             w_: int, leak, shift: int, threshold, lo, hi,
             out_spikes: np.ndarray) -> tuple[int, int]:
    """u = sat(leak(u) + I); o = u > v; u -= v*o, visiting neurons in (C, H, W) order.

    Works on float64 (``lo, hi = -inf, inf``: no saturation) and on int64 membranes (the fixed
    arithmetic of :mod:`accelsim.quantize`). Clears ``current`` and ``touched`` for the next
    timestep. Returns (spikes, active neurons); spike indices (ascending CHW) go to
    ``out_spikes``.
    """
    n = 0
    active = 0
    k = 0
    for c in range(c_):
        for y in range(h_):
            for x in range(w_):
                j = (y * w_ + x) * c_ + c
                u = leak_of(membrane[j], leak, shift) + current[j]
                u = min(max(u, lo), hi)
                current[j] = 0
                active += touched[j]
                touched[j] = 0
                if u > threshold:
                    u = u - threshold
                    out_spikes[n] = k
                    n += 1
                membrane[j] = u
                k += 1
    return n, active


@njit(cache=True)
def accumulate_step(current: np.ndarray, membrane: np.ndarray, touched: np.ndarray, lo,
                    hi) -> int:
    """Output layer: u = sat(u + I) (no leak, no threshold); clears the current.

    Returns the active neurons.
    """
    active = 0
    for j in range(current.shape[0]):
        membrane[j] = min(max(membrane[j] + current[j], lo), hi)
        current[j] = 0
        active += touched[j]
        touched[j] = 0
    return active


@njit(cache=True)
def dense_conv(x: np.ndarray, src_c: int, src_h: int, src_w: int, out_c: int, out_h: int,
               out_w: int, kernel: int, stride: int, padding: int, weights: np.ndarray,
               w_off: int, current: np.ndarray) -> int:
    """Multiply-accumulate of an analog (C, H, W) input into ``current`` (HWC).

    Returns the MACs: per output neuron, the real (non-padding) taps times ``C_in``.
    """
    macs = 0
    for oy in range(out_h):
        for ox in range(out_w):
            base = (oy * out_w + ox) * out_c
            for ky in range(kernel):
                y = oy * stride - padding + ky
                if y < 0 or y >= src_h:
                    continue
                for kx in range(kernel):
                    xx = ox * stride - padding + kx
                    if xx < 0 or xx >= src_w:
                        continue
                    for c in range(src_c):
                        v = x[(c * src_h + y) * src_w + xx]
                        wbase = w_off + ((c * kernel + ky) * kernel + kx) * out_c
                        for co in range(out_c):
                            current[base + co] += weights[wbase + co] * v
                    macs += src_c * out_c
    return macs


@njit(cache=True)
def dense_linear(x: np.ndarray, n_in: int, n_out: int, weights: np.ndarray, w_off: int,
                 current: np.ndarray) -> int:
    """Multiply-accumulate of an analog flat input through ``(in, out)`` weights."""
    for i in range(n_in):
        v = x[i]
        wbase = w_off + i * n_out
        for o in range(n_out):
            current[o] += weights[wbase + o] * v
    return n_in * n_out


@njit(cache=True)
def _constant_currents(x: np.ndarray, layers: np.ndarray, projs: np.ndarray,
                       weights: np.ndarray, const: np.ndarray, macs: np.ndarray) -> None:
    """Currents of every projection from the analog input (computed once per image)."""
    const[:] = 0
    macs[:] = 0
    for p in range(projs.shape[0]):
        if projs[p, P_SOURCE] >= 0:
            continue
        t = projs[p, P_TARGET]
        off = layers[t, L_OFF]
        n = layers[t, L_N]
        cur = const[off:off + n]
        if projs[p, P_OP] == OP_CONV:
            macs[t] += dense_conv(x, projs[p, P_SRC_C], projs[p, P_SRC_H], projs[p, P_SRC_W],
                                  layers[t, L_C], layers[t, L_H], layers[t, L_W],
                                  projs[p, P_KERNEL], projs[p, P_STRIDE], projs[p, P_PAD],
                                  weights, projs[p, P_W_OFF], cur)
        else:
            macs[t] += dense_linear(x, x.shape[0], n, weights, projs[p, P_W_OFF], cur)


@njit(cache=True)
def run_image(x: np.ndarray, timesteps: int, layers: np.ndarray, leaks: np.ndarray,
              shift: int, thresholds: np.ndarray, lo, hi, projs: np.ndarray,
              proj_start: np.ndarray,
              weights: np.ndarray, membrane: np.ndarray, current: np.ndarray,
              touched: np.ndarray, const: np.ndarray, spikes: np.ndarray, n_spikes: np.ndarray,
              macs: np.ndarray, counts: np.ndarray, record: bool, rec: np.ndarray,
              rec_n: np.ndarray) -> None:
    """One image through all layers and timesteps; state arrays are reset here.

    The membrane dtype picks the arithmetic: float64 or int64 (fixed point, see ``lif_step``).

    ``counts`` is (T, layers, N_COUNTS); ``rec`` receives each spiking layer's spike indices,
    timestep after timestep, from ``layers[li, L_REC_OFF]``; ``rec_n`` is (layers, T).
    """
    membrane[:] = 0
    current[:] = 0
    touched[:] = 0
    _constant_currents(x, layers, projs, weights, const, macs)
    n_layers = layers.shape[0]
    rec_pos = np.zeros(n_layers, dtype=np.int64)
    for t in range(timesteps):
        for li in range(n_layers):
            off = layers[li, L_OFF]
            n = layers[li, L_N]
            cur = current[off:off + n]
            tch = touched[off:off + n]
            row = counts[t, li]
            row[:] = 0
            row[C_NEURONS] = n
            row[C_UPDATES] = n
            if layers[li, L_HAS_CONST]:
                for j in range(n):
                    cur[j] += const[off + j]
                    tch[j] = 1
                if t == 0:
                    row[C_MACS] = macs[li]
            ops = 0
            for p in range(proj_start[li], proj_start[li + 1]):
                s = projs[p, P_SOURCE]
                if s < 0:
                    continue
                seen = False
                for q in range(proj_start[li], p):
                    if projs[q, P_SOURCE] == s:
                        seen = True
                if not seen:
                    row[C_SPIKES_IN] += n_spikes[s]
                soff = layers[s, L_OFF]
                spk = spikes[soff:soff + layers[s, L_N]]
                op = projs[p, P_OP]
                if op == OP_CONV:
                    ops += conv_scatter(spk, n_spikes[s], projs[p, P_SRC_C], projs[p, P_SRC_H],
                                        projs[p, P_SRC_W], projs[p, P_POOL], layers[li, L_C],
                                        layers[li, L_H], layers[li, L_W], projs[p, P_KERNEL],
                                        projs[p, P_STRIDE], projs[p, P_PAD], weights,
                                        projs[p, P_W_OFF], cur, tch)
                elif op == OP_LINEAR:
                    ops += linear_scatter(spk, n_spikes[s], projs[p, P_SRC_H], projs[p, P_SRC_W],
                                          projs[p, P_POOL], n, weights, projs[p, P_W_OFF], cur,
                                          tch)
                else:
                    ops += identity_scatter(spk, n_spikes[s], projs[p, P_SRC_H],
                                            projs[p, P_SRC_W], projs[p, P_POOL], layers[li, L_C],
                                            layers[li, L_W], weights[projs[p, P_W_OFF]], cur,
                                            tch)
            row[C_SYNOPS] = ops
            mem = membrane[off:off + n]
            if layers[li, L_OUTPUT]:
                row[C_ACTIVE] = accumulate_step(cur, mem, tch, lo, hi)
                n_spikes[li] = 0
            else:
                k, active = lif_step(cur, mem, tch, layers[li, L_C], layers[li, L_H],
                                     layers[li, L_W], leaks[li], shift, thresholds[li], lo, hi,
                                     spikes[off:off + n])
                n_spikes[li] = k
                row[C_SPIKES_OUT] = k
                row[C_ACTIVE] = active
                if record:
                    start = layers[li, L_REC_OFF] + rec_pos[li]
                    rec[start:start + k] = spikes[off:off + k]
                    rec_pos[li] += k
                    rec_n[li, t] = k


@njit(cache=True, parallel=True)
def run_images(images: np.ndarray, timesteps: int, layers: np.ndarray, leaks: np.ndarray,
               shift: int, thresholds: np.ndarray, lo, hi, projs: np.ndarray,
               proj_start: np.ndarray, weights: np.ndarray, n_blocks: int, record: bool,
               counts: np.ndarray, output: np.ndarray, rec: np.ndarray,
               rec_n: np.ndarray) -> None:
    """Run every image (rows of ``images``, flat CHW); parallel over ``n_blocks`` image blocks.

    float64 ``images``/``weights``/``output`` run the float arithmetic, int64 ones the fixed.

    Fills ``counts`` (images, T, layers, N_COUNTS), ``output`` (images, classes: the output
    layer's membrane after T steps), and when ``record`` the spike records ``rec``
    (images, total) and ``rec_n`` (images, layers, T).
    """
    total = membrane_size(layers)
    n_layers = layers.shape[0]
    last = n_layers - 1
    n_images = images.shape[0]
    for b in prange(n_blocks):
        membrane = np.zeros(total, dtype=weights.dtype)
        current = np.zeros(total, dtype=weights.dtype)
        touched = np.zeros(total, dtype=np.uint8)
        const = np.zeros(total, dtype=weights.dtype)
        spikes = np.zeros(total, dtype=np.int32)
        n_spikes = np.zeros(n_layers, dtype=np.int64)
        macs = np.zeros(n_layers, dtype=np.int64)
        for i in range(b, n_images, n_blocks):
            ri = i if record else 0
            run_image(images[i], timesteps, layers, leaks, shift, thresholds, lo, hi, projs,
                      proj_start, weights, membrane, current, touched, const, spikes, n_spikes,
                      macs, counts[i], record, rec[ri], rec_n[ri])
            off = layers[last, L_OFF]
            output[i, :] = membrane[off:off + layers[last, L_N]]


@njit(cache=True)
def membrane_size(layers: np.ndarray) -> int:
    """Total state size of all layers (the last layer's offset plus its size)."""
    last = layers.shape[0] - 1
    return layers[last, L_OFF] + layers[last, L_N]


def default_blocks(n_images: int) -> int:
    """Image blocks for :func:`run_images`: one per numba thread, at most one per image."""
    return max(1, min(n_images, numba.get_num_threads()))
