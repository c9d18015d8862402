"""numba kernels of the event-driven spiking core (float64 state; weights stored as float32
when they are float32 values, widened exactly as they are added).

Small pure functions over flat arrays; :mod:`accelsim.spiking.functional` checks the inputs, builds
the
tables and calls :func:`run_images`.

Layouts
- A layer's *spike indices* are flat ``(C, H, W)`` indices (torch order); a linear layer of N
  units is ``(N, 1, 1)``.
- A layer's *spike indices* come with their ``(channel, row, column)`` (written by the LIF
  step), so that fan-outs never divide to decode them.
- A layer's *state* (membrane, current) is stored channel-last, ``(H, W, C)``, so that one input
  spike adds a contiguous run of ``C_out`` weights at each target position: unit-stride loops
  over slices, which LLVM vectorises (indexing with ``base + co`` would not: numba's negative
  index wraparound blocks it). Stride-1 convs clip the taps to the output once per spike, so
  the inner loops have no branch.
- Active-neuron flags: ``reached`` holds one flag per target *position* (a conv or linear fan-out
  always reaches all ``C_out`` neurons of a position), ``touched`` one per neuron (shortcuts).
- Per target neuron the contributions are added in the order of the source spikes (ascending
  CHW), projection after projection, after the constant current (the layer's bias plus, for an
  analog-fed layer, its input current). A pooled source's spikes are first gathered per pooled
  cell (:func:`pooled_cells`): a cell with ``k`` spikes adds ``k * W / pool**2`` once, as the
  float64 reference does (pool, then multiply); ``synaptic_ops`` still counts every spike's
  accumulations.
- Conv weights are ``(C_in, k, k, C_out)`` with the column taps reversed (``[c, ky, j]`` holds
  tap ``kx = k - 1 - j``), linear weights ``(in, out)``; both are already multiplied by
  ``1 / pool**2`` when the projection pools its source (average pooling of spikes is linear, so
  a spike of a pooled source adds ``W / pool**2`` to the targets its pooled cell reaches).
  Reversed, the taps of one kernel row reach adjacent targets in the order their weights are
  stored, so a stride-1 spike adds each kernel row as one contiguous run of ``k * C_out``.

Threads: :func:`run_images` gives each thread a block of images; a single image instead shares
each large layer step among the threads (:func:`split_images`): its stride-1 convs tile by tile of
output rows (tiles write disjoint rows and each adds its spikes in the order of one pass) and its
neuron update by chunks of positions, so the sums, spikes and counts are the same bit for bit.

Counting rules (the columns of :data:`accelsim.workflow.columns.FUNCTIONAL_COUNTS`)
- ``synaptic_ops``: one per weight added into a target current by an input spike; zero-padding
  taps never exist as events, so conv borders count only the real targets.
- ``macs``: the analog first layer does a dense multiply-accumulate once per image (its current is
  the same every timestep), counted at timestep 1 only; padded taps are *not* counted (only real
  taps: ``k*k*C_in`` minus the taps that fall on zero padding).
- ``neuron_updates``: every neuron of the layer at every timestep (output layer included: its
  membrane is updated by the current each step).
- ``active_neuron_updates``: neurons that received at least one accumulation this timestep; a layer
  fed by the analog input or with a bias receives its constant current every step, so all its
  neurons are active.
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
def pooled_cells(spike_c: np.ndarray, spike_y: np.ndarray, spike_x: np.ndarray, n_spikes: int,
                 pool: int, src_w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                 int]:
    """The pooled cells that spikes (ascending CHW) fall in, each once: (channel, pooled row,
    pooled column, spikes in the cell) and their number.

    Average pooling is linear, so a cell with ``k`` spikes adds ``k * W / pool**2`` once instead
    of ``W / pool**2`` ``k`` times (torch's order: pool, then multiply); the spikes of one
    (channel, pooled row) are contiguous in CHW order, so one pass with a row of counters finds
    the cells, listed per (channel, pooled row) in the order of their first spike.
    """
    cells_c = np.empty(n_spikes, dtype=np.int32)
    cells_y = np.empty(n_spikes, dtype=np.int32)
    cells_x = np.empty(n_spikes, dtype=np.int32)
    cells_k = np.empty(n_spikes, dtype=np.int64)
    count = np.zeros(src_w // pool, dtype=np.int64)
    m = 0
    s = 0
    while s < n_spikes:
        c = spike_c[s]
        py = spike_y[s] // pool
        e = s
        while e < n_spikes and spike_c[e] == c and spike_y[e] // pool == py:
            count[spike_x[e] // pool] += 1
            e += 1
        for q in range(s, e):
            px = spike_x[q] // pool
            if count[px]:
                cells_c[m] = c
                cells_y[m] = py
                cells_x[m] = px
                cells_k[m] = count[px]
                count[px] = 0
                m += 1
        s = e
    return cells_c, cells_y, cells_x, cells_k, m


@njit(cache=True)
def conv_scatter(spike_c: np.ndarray, spike_y: np.ndarray, spike_x: np.ndarray, n_spikes: int,
                 pool: int, out_c: int, out_h: int, out_w: int, kernel: int, stride: int,
                 padding: int, weights: np.ndarray, w_off: int, current: np.ndarray,
                 reached: np.ndarray, src_w: int, row0: int = 0, row1: int = -1) -> int:
    """Add each spike's conv fan-out into ``current`` (HWC); returns the accumulations done (one
    per spike and weight, pooled or not).

    Spikes come as (channel, row, column) of the unpooled source (``src_w`` columns wide, needed
    when ``pool > 1``: :func:`pooled_cells`); ``reached[oy * out_w + ox]`` is set for every
    target position that received a row of weights. Only output rows ``row0..row1-1`` (default:
    all) are written, so that threads can share one layer by rows.
    """
    if row1 < 0:
        row1 = out_h
    if pool > 1:
        cc, cy, cx, ck, m = pooled_cells(spike_c, spike_y, spike_x, n_spikes, pool, src_w)
        return _conv_cells(cc, cy, cx, ck, True, m, out_c, row0, row1, out_w, kernel, stride,
                           padding, weights, w_off, current, reached)
    return _conv_cells(spike_c, spike_y, spike_x, spike_c, False, n_spikes, out_c, row0, row1,
                       out_w, kernel, stride, padding, weights, w_off, current, reached)


@njit(cache=True)
def _conv_cells(cell_c: np.ndarray, cell_y: np.ndarray, cell_x: np.ndarray,
                cell_k: np.ndarray, counted: bool, n_cells: int, out_c: int, row0: int,
                row1: int, out_w: int, kernel: int, stride: int, padding: int,
                weights: np.ndarray, w_off: int, current: np.ndarray, reached: np.ndarray) -> int:
    """The conv fan-out of input cells (channel, row, column), each ``cell_k`` spikes when
    ``counted`` (else one each), into output rows ``row0..row1-1``; returns the accumulations,
    counted per spike."""
    if stride != 1:
        return _conv_cells_strided(cell_c, cell_y, cell_x, cell_k, counted, n_cells, out_c,
                                   row0, row1, out_w, kernel, stride, padding, weights, w_off,
                                   current, reached)
    ops = 0
    kk = kernel * kernel
    for s in range(n_cells):
        c = cell_c[s]
        y = cell_y[s]
        x = cell_x[s]
        spikes = cell_k[s] if counted else 1
        # stride 1: tap ky reaches row oy = y + padding - ky; keep the taps inside the output
        ky0 = max(0, y + padding - row1 + 1)
        ky1 = min(kernel, y + padding - row0 + 1)
        kx0 = max(0, x + padding - out_w + 1)
        kx1 = min(kernel, x + padding + 1)
        if ky1 <= ky0 or kx1 <= kx0:
            continue
        # one kernel row: taps kx1-1 .. kx0 reach positions first .. first+taps-1, and their
        # (reversed) weights are stored in that order
        taps = kx1 - kx0
        run = taps * out_c
        for ky in range(ky0, ky1):
            first = (y + padding - ky) * out_w + x + padding - (kx1 - 1)
            base = first * out_c
            wbase = w_off + (c * kk + ky * kernel + kernel - kx1) * out_c
            # slices: non-negative unit-stride indices, so the loop vectorises
            _add_row(current[base:base + run], weights[wbase:wbase + run], spikes)
            reached[first:first + taps] = 1
        ops += (ky1 - ky0) * run * spikes
    return ops


@njit(cache=True, inline="always")
def _add_row(row: np.ndarray, w_row: np.ndarray, spikes: int) -> None:
    """``row += spikes * w_row``; a plain add for one spike (no multiply, same rounding).

    Inlined where it is called (numba IR): slices passed to a call are reference-counted
    (atomic increments and decrements) at every kernel row, which cost short rows the most
    (64 output channels: ResNet20's core 1.28x faster inlined)."""
    if spikes == 1:
        for co in range(row.shape[0]):
            row[co] += w_row[co]
    else:
        for co in range(row.shape[0]):
            row[co] += spikes * w_row[co]


@njit(cache=True)
def _conv_cells_strided(cell_c: np.ndarray, cell_y: np.ndarray, cell_x: np.ndarray,
                        cell_k: np.ndarray, counted: bool, n_cells: int, out_c: int,
                        row0: int, row1: int, out_w: int, kernel: int, stride: int,
                        padding: int, weights: np.ndarray, w_off: int, current: np.ndarray,
                        reached: np.ndarray) -> int:
    """:func:`_conv_cells` for any stride: a tap reaches a target only where it divides."""
    ops = 0
    for s in range(n_cells):
        c = cell_c[s]
        y = cell_y[s]
        x = cell_x[s]
        spikes = cell_k[s] if counted else 1
        for ky in range(kernel):
            ny = y + padding - ky
            if ny < 0 or ny % stride != 0:
                continue
            oy = ny // stride
            if oy < row0 or oy >= row1:
                continue
            for kx in range(kernel):
                nx = x + padding - kx
                if nx < 0 or nx % stride != 0:
                    continue
                ox = nx // stride
                if ox >= out_w:
                    continue
                pos = oy * out_w + ox
                base = pos * out_c
                wbase = w_off + ((c * kernel + ky) * kernel + kernel - 1 - kx) * out_c
                _add_row(current[base:base + out_c], weights[wbase:wbase + out_c], spikes)
                reached[pos] = 1
                ops += out_c * spikes
    return ops


@njit(cache=True)
def linear_scatter(spikes: np.ndarray, spike_c: np.ndarray, spike_y: np.ndarray,
                   spike_x: np.ndarray, n_spikes: int, src_h: int, src_w: int, pool: int,
                   n_out: int, weights: np.ndarray, w_off: int, current: np.ndarray,
                   reached: np.ndarray) -> int:
    """Add each spike's weight row ``W[:, i]`` into ``current``; returns the accumulations done.

    ``spikes`` are flat CHW indices; with pooling the (channel, row, column) give the pooled
    cell (each cell's spikes added at once, :func:`pooled_cells`). A linear layer is one
    position: ``reached[0]`` is set when any spike arrives.
    """
    row = current[:n_out]
    if pool > 1:
        ph = src_h // pool
        pw = src_w // pool
        cc, cy, cx, ck, m = pooled_cells(spike_c, spike_y, spike_x, n_spikes, pool, src_w)
        for s in range(m):
            wbase = w_off + ((cc[s] * ph + cy[s]) * pw + cx[s]) * n_out
            _add_row(row, weights[wbase:wbase + n_out], ck[s])
    else:
        for s in range(n_spikes):
            wbase = w_off + spikes[s] * n_out
            _add_row(row, weights[wbase:wbase + n_out], 1)
    if n_spikes > 0:
        reached[0] = 1
    return n_spikes * n_out


@njit(cache=True)
def identity_scatter(spike_c: np.ndarray, spike_y: np.ndarray, spike_x: np.ndarray,
                     n_spikes: int, pool: int, out_c: int, out_w: int, increment,
                     current: np.ndarray, touched: np.ndarray) -> int:
    """Shortcut: each spike adds ``increment`` (1 / pool**2 in float mode) to the one neuron its
    (pooled) cell maps to, and marks that neuron in ``touched`` (per neuron, HWC)."""
    for s in range(n_spikes):
        j = ((spike_y[s] // pool) * out_w + spike_x[s] // pool) * out_c + spike_c[s]
        current[j] += increment
        touched[j] = 1
    return n_spikes


def leak_of(membrane, leak, shift, truncate=False):
    """The leak term: ``leak * u`` in float; ``(u * leak) / 2**shift`` for integers, floored
    (arithmetic shift) or, with ``truncate``, rounded toward zero (Loihi)."""
    if isinstance(membrane, (float, np.floating)):
        return leak * membrane
    return _fixed_leak(membrane, leak, shift, truncate)


def _fixed_leak(membrane, leak, shift, truncate=False):
    product = membrane * leak
    if truncate and product < 0:
        return -((-product) >> shift)
    return product >> shift


@overload(leak_of, jit_options={"cache": True})
def _leak_of_jit(membrane, leak, shift, truncate=False):
    if isinstance(membrane, types.Float):
        return lambda membrane, leak, shift, truncate=False: leak * membrane
    return _fixed_leak


@njit(cache=True)
def lif_update(current: np.ndarray, membrane: np.ndarray, reached: np.ndarray,
               touched: np.ndarray, c_: int, p0: int, p1: int, leak, shift: int, threshold, lo,
               hi, fired: np.ndarray, truncate: bool = False) -> int:
    """The update of :func:`lif_step` for positions ``p0..p1-1`` only (0/1 left in ``fired``);
    returns the active neurons."""
    active = 0
    for pos in range(p0, p1):
        r = reached[pos]
        base = pos * c_
        cur = current[base:base + c_]
        mem = membrane[base:base + c_]
        tch = touched[base:base + c_]
        out = fired[base:base + c_]
        for c in range(c_):
            u = leak_of(mem[c], leak, shift, truncate) + cur[c]
            u = min(max(u, lo), hi)
            f = u > threshold
            if f:
                u = u - threshold
            mem[c] = u
            out[c] = f
            cur[c] = 0
            active += int(r | tch[c])
            tch[c] = 0
        reached[pos] = 0
    return active


@njit(cache=True)
def list_spikes(fired: np.ndarray, c_: int, h_: int, w_: int, out_spikes: np.ndarray,
                out_c: np.ndarray, out_y: np.ndarray, out_x: np.ndarray) -> int:
    """The 0/1 map ``fired`` (HWC) as spike indices in ascending CHW order, with their
    (channel, row, column); returns the spikes."""
    n = 0
    k = 0
    for c in range(c_):
        for y in range(h_):
            for x in range(w_):
                if fired[(y * w_ + x) * c_ + c]:
                    out_spikes[n] = k
                    out_c[n] = c
                    out_y[n] = y
                    out_x[n] = x
                    n += 1
                k += 1
    return n


@njit(cache=True)
def lif_step(current: np.ndarray, membrane: np.ndarray, reached: np.ndarray,
             touched: np.ndarray, c_: int, h_: int, w_: int, leak, shift: int, threshold, lo, hi,
             fired: np.ndarray, out_spikes: np.ndarray, out_c: np.ndarray, out_y: np.ndarray,
             out_x: np.ndarray, truncate: bool = False) -> tuple[int, int]:
    """u = sat(leak(u) + I); o = u > v; u -= v*o for every neuron of a (C, H, W) layer.

    Works on float64 (``lo, hi = -inf, inf``: no saturation) and on int64 membranes (the fixed
    arithmetic of :mod:`accelsim.spiking.quantize`). A neuron is active when its position is in
    ``reached`` (per position, set by conv/linear fan-outs) or it is in ``touched`` (per neuron,
    set by shortcuts). Clears ``current``, ``reached`` and ``touched`` for the next timestep.
    Returns (spikes, active neurons); spike indices (ascending CHW) go to ``out_spikes`` and
    their (channel, row, column) to ``out_c, out_y, out_x``; ``fired`` is scratch (one per
    neuron).

    Two passes: the update (:func:`lif_update`) runs in the storage order (HWC, unit stride, so
    it vectorises) and leaves 0/1 in ``fired``; :func:`list_spikes` lists them in CHW order.
    """
    active = lif_update(current, membrane, reached, touched, c_, 0, h_ * w_, leak, shift,
                        threshold, lo, hi, fired, truncate)
    return list_spikes(fired, c_, h_, w_, out_spikes, out_c, out_y, out_x), active


@njit(cache=True)
def accumulate_step(current: np.ndarray, membrane: np.ndarray, reached: np.ndarray,
                    touched: np.ndarray, c_: int, lo, hi) -> int:
    """Output layer: u = sat(u + I) (no leak, no threshold); clears the current.

    Returns the active neurons (``c_`` per reached position, plus touched neurons elsewhere).
    """
    active = 0
    for j in range(current.shape[0]):
        membrane[j] = min(max(membrane[j] + current[j], lo), hi)
        current[j] = 0
        active += int(reached[j // c_] | touched[j])
        touched[j] = 0
    reached[:current.shape[0] // c_] = 0
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
            row = current[base:base + out_c]
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
                        wbase = w_off + ((c * kernel + ky) * kernel + kernel - 1 - kx) * out_c
                        w_row = weights[wbase:wbase + out_c]
                        for co in range(out_c):
                            row[co] += w_row[co] * v
                    macs += src_c * out_c
    return macs


@njit(cache=True)
def dense_linear(x: np.ndarray, n_in: int, n_out: int, weights: np.ndarray, w_off: int,
                 current: np.ndarray) -> int:
    """Multiply-accumulate of an analog flat input through ``(in, out)`` weights."""
    row = current[:n_out]
    for i in range(n_in):
        v = x[i]
        wbase = w_off + i * n_out
        w_row = weights[wbase:wbase + n_out]
        for o in range(n_out):
            row[o] += w_row[o] * v
    return n_in * n_out


@njit(cache=True)
def _constant_currents(x: np.ndarray, layers: np.ndarray, projs: np.ndarray,
                       weights: np.ndarray, bias: np.ndarray, const: np.ndarray,
                       macs: np.ndarray) -> None:
    """Each neuron's constant current: its bias plus every projection from the analog input
    (computed once per image)."""
    const[:] = bias
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


TILE_BYTES = 256 * 1024
"""Target current a stride-1 conv fills at a time: a larger map is done in tiles of output
rows, so that the rows a spike adds into stay in cache."""


@njit(cache=True)
def tile_rows(out_w: int, out_c: int, tile_bytes: int = TILE_BYTES) -> int:
    """Output rows per tile: as many as fit in ``tile_bytes`` of (8-byte) current, at least one."""
    return max(1, tile_bytes // (out_w * out_c * 8))


@njit(cache=True)
def _conv_tiled(spikes: np.ndarray, spike_c: np.ndarray, spike_y: np.ndarray,
                spike_x: np.ndarray, n_spikes: int, pool: int, out_c: int, out_w: int,
                kernel: int, padding: int, weights: np.ndarray, w_off: int,
                current: np.ndarray, reached: np.ndarray, src_c: int, src_h: int, src_w: int,
                row0: int, row1: int, tile_bytes: int = TILE_BYTES) -> int:
    """A stride-1 :func:`conv_scatter` into output rows ``row0..row1-1``, tile of rows by tile
    of rows (:func:`_conv_tile`). Per target neuron the spikes arrive in the same order as in
    one pass over all of them, so the sums are the same."""
    rows = tile_rows(out_w, out_c, tile_bytes)
    if rows >= row1 - row0:  # one tile: one pass
        return conv_scatter(spike_c, spike_y, spike_x, n_spikes, pool, out_c, 0, out_w, kernel,
                            1, padding, weights, w_off, current, reached, src_w, row0, row1)
    ops = 0
    for r0 in range(row0, row1, rows):
        ops += _conv_tile(spikes, spike_c, spike_y, spike_x, n_spikes, pool, out_c, out_w,
                          kernel, padding, weights, w_off, current, reached, src_c, src_h,
                          src_w, r0, min(row1, r0 + rows))
    return ops


@njit(cache=True, parallel=True)
def _conv_tiled_parallel(spikes: np.ndarray, spike_c: np.ndarray, spike_y: np.ndarray,
                         spike_x: np.ndarray, n_spikes: int, pool: int, out_c: int,
                         out_h: int, out_w: int, kernel: int, padding: int,
                         weights: np.ndarray, w_off: int, current: np.ndarray,
                         reached: np.ndarray, src_c: int, src_h: int, src_w: int,
                         rows: int) -> int:
    """:func:`_conv_tiled` with its tiles of ``rows`` output rows shared among the threads:
    tiles write disjoint rows, each in the order of one pass, so the sums are the same."""
    ops = 0
    for t in prange((out_h + rows - 1) // rows):
        r0 = t * rows
        ops += _conv_tile(spikes, spike_c, spike_y, spike_x, n_spikes, pool, out_c, out_w,
                          kernel, padding, weights, w_off, current, reached, src_c, src_h,
                          src_w, r0, min(out_h, r0 + rows))
    return ops


@njit(cache=True)
def _conv_tile(spikes: np.ndarray, spike_c: np.ndarray, spike_y: np.ndarray,
               spike_x: np.ndarray, n_spikes: int, pool: int, out_c: int, out_w: int,
               kernel: int, padding: int, weights: np.ndarray, w_off: int, current: np.ndarray,
               reached: np.ndarray, src_c: int, src_h: int, src_w: int, r0: int,
               r1: int) -> int:
    """Output rows ``r0..r1-1`` of a stride-1 conv, taking, channel by channel, only the spikes
    whose kernel window reaches them (a range of the ascending flat indices ``spikes``)."""
    # (pooled) source rows whose taps reach output rows r0..r1-1
    ya = max(0, r0 - padding) * pool
    yb = min(src_h // pool, r1 - padding + kernel - 1) * pool
    if yb <= ya:
        return 0
    listed = spikes[:n_spikes]
    ops = 0
    for c in range(src_c):
        a = np.searchsorted(listed, (c * src_h + ya) * src_w)
        b = np.searchsorted(listed, (c * src_h + yb) * src_w)
        if b > a:
            ops += conv_scatter(spike_c[a:b], spike_y[a:b], spike_x[a:b], b - a, pool, out_c,
                                0, out_w, kernel, 1, padding, weights, w_off, current, reached,
                                src_w, r0, r1)
    return ops


@njit(cache=True, parallel=True)
def _lif_update_parallel(current: np.ndarray, membrane: np.ndarray, reached: np.ndarray,
                         touched: np.ndarray, c_: int, positions: int, chunk: int, leak,
                         shift: int, threshold, lo, hi, fired: np.ndarray,
                         truncate: bool) -> int:
    """:func:`lif_update` of all ``positions`` in chunks of ``chunk`` shared among the threads
    (each neuron's update is independent of the others)."""
    active = 0
    for t in prange((positions + chunk - 1) // chunk):
        p0 = t * chunk
        active += lif_update(current, membrane, reached, touched, c_, p0,
                             min(positions, p0 + chunk), leak, shift, threshold, lo, hi, fired,
                             truncate)
    return active


@njit(cache=True)
def _step(li: int, layers: np.ndarray, leaks: np.ndarray, shift: int,
          thresholds: np.ndarray, lo, hi, projs: np.ndarray, proj_start: np.ndarray,
          weights: np.ndarray, membrane: np.ndarray, current: np.ndarray, reached: np.ndarray,
          touched: np.ndarray, const: np.ndarray, fired: np.ndarray, spikes: np.ndarray,
          spike_c: np.ndarray, spike_y: np.ndarray, spike_x: np.ndarray, n_spikes: np.ndarray,
          truncate: bool, split: bool) -> tuple[int, int]:
    """Layer ``li``'s timestep: the input currents (the constant current first, then each
    projection's spikes in order) and the neuron update, leaving 0/1 in ``fired``. Returns
    (accumulations, active neurons).

    With ``split``, a layer larger than one tile of rows shares its stride-1 convs and its
    neuron update among the threads, tile by tile (never call it so from a parallel loop)."""
    off = layers[li, L_OFF]
    n = layers[li, L_N]
    c_ = layers[li, L_C]
    h_ = layers[li, L_H]
    w_ = layers[li, L_W]
    rows = tile_rows(w_, c_)
    split = split and rows < h_
    cur = current[off:off + n]
    rch = reached[off:off + n]
    tch = touched[off:off + n]
    if layers[li, L_HAS_CONST]:
        cst = const[off:off + n]
        for j in range(n):
            cur[j] += cst[j]
        rch[:h_ * w_] = 1
    ops = 0
    for p in range(proj_start[li], proj_start[li + 1]):
        s = projs[p, P_SOURCE]
        if s < 0:
            continue
        ns = n_spikes[s]
        soff = layers[s, L_OFF]
        send = soff + layers[s, L_N]
        sc = spike_c[soff:send]
        sy = spike_y[soff:send]
        sx = spike_x[soff:send]
        op = projs[p, P_OP]
        if op == OP_CONV and projs[p, P_STRIDE] == 1 and split:
            ops += _conv_tiled_parallel(spikes[soff:send], sc, sy, sx, ns, projs[p, P_POOL], c_,
                                        h_, w_, projs[p, P_KERNEL], projs[p, P_PAD], weights,
                                        projs[p, P_W_OFF], cur, rch, projs[p, P_SRC_C],
                                        projs[p, P_SRC_H], projs[p, P_SRC_W], rows)
        elif op == OP_CONV and projs[p, P_STRIDE] == 1:
            ops += _conv_tiled(spikes[soff:send], sc, sy, sx, ns, projs[p, P_POOL], c_, w_,
                               projs[p, P_KERNEL], projs[p, P_PAD], weights, projs[p, P_W_OFF],
                               cur, rch, projs[p, P_SRC_C], projs[p, P_SRC_H],
                               projs[p, P_SRC_W], 0, h_)
        elif op == OP_CONV:
            ops += conv_scatter(sc, sy, sx, ns, projs[p, P_POOL], c_, h_, w_,
                                projs[p, P_KERNEL], projs[p, P_STRIDE], projs[p, P_PAD],
                                weights, projs[p, P_W_OFF], cur, rch, projs[p, P_SRC_W])
        elif op == OP_LINEAR:
            ops += linear_scatter(spikes[soff:send], sc, sy, sx, ns, projs[p, P_SRC_H],
                                  projs[p, P_SRC_W], projs[p, P_POOL], n, weights,
                                  projs[p, P_W_OFF], cur, rch)
        else:
            ops += identity_scatter(sc, sy, sx, ns, projs[p, P_POOL], c_, w_,
                                    weights[projs[p, P_W_OFF]], cur, tch)
    mem = membrane[off:off + n]
    if layers[li, L_OUTPUT]:
        active = accumulate_step(cur, mem, rch, tch, c_, lo, hi)
    elif split:
        active = _lif_update_parallel(cur, mem, rch, tch, c_, h_ * w_, rows * w_, leaks[li],
                                      shift, thresholds[li], lo, hi, fired[off:off + n],
                                      truncate)
    else:
        active = lif_update(cur, mem, rch, tch, c_, 0, h_ * w_, leaks[li], shift,
                            thresholds[li], lo, hi, fired[off:off + n], truncate)
    return ops, active


@njit(cache=True)
def _finish(li: int, t: int, ops: int, active: int, layers: np.ndarray, projs: np.ndarray,
            proj_start: np.ndarray, fired: np.ndarray, spikes: np.ndarray, spike_c: np.ndarray,
            spike_y: np.ndarray, spike_x: np.ndarray, n_spikes: np.ndarray, macs: np.ndarray,
            row: np.ndarray, record: bool, rec: np.ndarray, rec_n: np.ndarray,
            rec_pos: np.ndarray) -> None:
    """Close layer ``li``'s timestep ``t``: list its spikes (ascending CHW),
    fill its count row and, when ``record``, its spike record."""
    off = layers[li, L_OFF]
    n = layers[li, L_N]
    row[:] = 0
    row[C_NEURONS] = n
    row[C_UPDATES] = n
    if layers[li, L_HAS_CONST] and t == 0:
        row[C_MACS] = macs[li]
    for p in range(proj_start[li], proj_start[li + 1]):
        s = projs[p, P_SOURCE]
        seen = s < 0
        for q in range(proj_start[li], p):
            seen = seen or projs[q, P_SOURCE] == s
        if not seen:
            row[C_SPIKES_IN] += n_spikes[s]
    row[C_SYNOPS] = ops
    row[C_ACTIVE] = active
    if layers[li, L_OUTPUT]:
        n_spikes[li] = 0
        return
    k = list_spikes(fired[off:off + n], layers[li, L_C], layers[li, L_H], layers[li, L_W],
                    spikes[off:off + n], spike_c[off:off + n], spike_y[off:off + n],
                    spike_x[off:off + n])
    n_spikes[li] = k
    row[C_SPIKES_OUT] = k
    if record:
        start = layers[li, L_REC_OFF] + rec_pos[li]
        rec[start:start + k] = spikes[off:off + k]
        rec_pos[li] += k
        rec_n[li, t] = k


@njit(cache=True)
def run_image(x: np.ndarray, timesteps: int, layers: np.ndarray, leaks: np.ndarray,
              shift: int, thresholds: np.ndarray, lo, hi, projs: np.ndarray,
              proj_start: np.ndarray, weights: np.ndarray, membrane: np.ndarray,
              current: np.ndarray, reached: np.ndarray, touched: np.ndarray, const: np.ndarray,
              fired: np.ndarray, spikes: np.ndarray, spike_c: np.ndarray,
              spike_y: np.ndarray, spike_x: np.ndarray,
              n_spikes: np.ndarray, macs: np.ndarray, counts: np.ndarray, record: bool,
              rec: np.ndarray, rec_n: np.ndarray, bias: np.ndarray,
              truncate: bool = False, split: bool = False) -> None:
    """One image through all layers and timesteps; state arrays are reset here; ``split``:
    large layers share each step among the threads (:func:`_step`).

    The state's dtype (``bias``'s) picks the arithmetic: float64 or int64 (fixed point, see
    ``lif_step``).
    Every state array shares the layers' offsets ``L_OFF``; ``reached`` uses the first H*W
    slots of a layer's range (one per position).

    ``counts`` is (T, layers, N_COUNTS); ``rec`` receives each spiking layer's spike indices,
    timestep after timestep, from ``layers[li, L_REC_OFF]``; ``rec_n`` is (layers, T).
    """
    membrane[:] = 0
    current[:] = 0
    reached[:] = 0
    touched[:] = 0
    _constant_currents(x, layers, projs, weights, bias, const, macs)
    rec_pos = np.zeros(layers.shape[0], dtype=np.int64)
    for t in range(timesteps):
        for li in range(layers.shape[0]):
            ops, active = _step(li, layers, leaks, shift, thresholds, lo, hi, projs, proj_start,
                                weights, membrane, current, reached, touched, const, fired,
                                spikes, spike_c, spike_y, spike_x, n_spikes, truncate,
                                split)
            _finish(li, t, ops, active, layers, projs, proj_start, fired, spikes, spike_c,
                    spike_y, spike_x, n_spikes, macs, counts[t, li], record, rec, rec_n, rec_pos)


@njit(cache=True, parallel=True)
def run_images(images: np.ndarray, timesteps: int, layers: np.ndarray, leaks: np.ndarray,
               shift: int, thresholds: np.ndarray, lo, hi, projs: np.ndarray,
               proj_start: np.ndarray, weights: np.ndarray, n_blocks: int, record: bool,
               counts: np.ndarray, output: np.ndarray, rec: np.ndarray,
               rec_n: np.ndarray, bias: np.ndarray, truncate: bool = False,
               split: bool = False) -> None:
    """Run every image (rows of ``images``, flat CHW); parallel over ``n_blocks`` image blocks,
    or, with ``split``, one image after another, each sharing its large layer steps among the
    threads (:func:`_step`; for fewer images than threads). The results are the same.

    float64 ``images``/``bias``/``output`` run the float arithmetic (``weights`` float32 or
    float64), int64 ones the fixed.

    Fills ``counts`` (images, T, layers, N_COUNTS), ``output`` (images, classes: the output
    layer's membrane after T steps), and when ``record`` the spike records ``rec``
    (images, total) and ``rec_n`` (images, layers, T).
    """
    if split:
        _run_block(0, 1, images, timesteps, layers, leaks, shift, thresholds, lo, hi, projs,
                   proj_start, weights, record, counts, output, rec, rec_n, bias, truncate,
                   True)
        return
    for b in prange(n_blocks):
        _run_block(b, n_blocks, images, timesteps, layers, leaks, shift, thresholds, lo, hi,
                   projs, proj_start, weights, record, counts, output, rec, rec_n, bias,
                   truncate, False)


@njit(cache=True)
def _run_block(b: int, n_blocks: int, images: np.ndarray, timesteps: int, layers: np.ndarray,
               leaks: np.ndarray, shift: int, thresholds: np.ndarray, lo, hi,
               projs: np.ndarray, proj_start: np.ndarray, weights: np.ndarray, record: bool,
               counts: np.ndarray, output: np.ndarray, rec: np.ndarray, rec_n: np.ndarray,
               bias: np.ndarray, truncate: bool, split: bool) -> None:
    """Images ``b, b + n_blocks, ...`` of :func:`run_images`, on state allocated once and reused
    for each of them."""
    total = membrane_size(layers)
    n_layers = layers.shape[0]
    last = n_layers - 1
    membrane = np.zeros(total, dtype=bias.dtype)
    current = np.zeros(total, dtype=bias.dtype)
    reached = np.zeros(total, dtype=np.uint8)
    touched = np.zeros(total, dtype=np.uint8)
    const = np.zeros(total, dtype=bias.dtype)
    fired = np.zeros(total, dtype=np.uint8)
    spikes = np.zeros(total, dtype=np.int32)
    spike_c = np.zeros(total, dtype=np.int32)
    spike_y = np.zeros(total, dtype=np.int32)
    spike_x = np.zeros(total, dtype=np.int32)
    n_spikes = np.zeros(n_layers, dtype=np.int64)
    macs = np.zeros(n_layers, dtype=np.int64)
    for i in range(b, images.shape[0], n_blocks):
        ri = i if record else 0
        run_image(images[i], timesteps, layers, leaks, shift, thresholds, lo, hi, projs,
                  proj_start, weights, membrane, current, reached, touched, const, fired,
                  spikes, spike_c, spike_y, spike_x, n_spikes, macs, counts[i], record,
                  rec[ri], rec_n[ri], bias, truncate, split)
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


def split_images(n_images: int) -> bool:
    """Whether :func:`run_images` should share each image's layer steps among the threads: for
    a single image with several threads (with two or more images, one per thread keeps more
    threads busy on small networks, whose layers fit one tile)."""
    return n_images == 1 and numba.get_num_threads() > 1
