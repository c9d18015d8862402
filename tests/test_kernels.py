"""The numba kernels against the plain-numpy oracles of ``tests/naive.py``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import naive  # tests/naive.py: pytest puts tests/ on sys.path
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.spiking import kernels as k
from accelsim.spiking.core import _narrowest, kernel_weights

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def conv_cases(draw):
    """A small conv projection (pooled or not) with a random spike subset of its source."""
    pool = draw(st.sampled_from([1, 1, 2]))
    c_in = draw(st.integers(1, 3))
    ph, pw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    kernel = draw(st.integers(1, 4))
    padding = draw(st.integers(0, kernel))
    stride = draw(st.integers(1, 3))
    if ph + 2 * padding < kernel or pw + 2 * padding < kernel:
        padding = kernel
    c_out = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**31 - 1))
    return pool, c_in, ph * pool, pw * pool, kernel, padding, stride, c_out, seed


def _spikes(rng: np.random.Generator, n: int) -> np.ndarray:
    mask = rng.random(n) < rng.uniform(0.0, 1.0)
    return np.flatnonzero(mask).astype(np.int32)


def _float32_values(weights: np.ndarray) -> np.ndarray:
    """float64 weights that are float32 values, as trained weights are (the references use them
    as they are)."""
    return weights.astype(np.float32).astype(np.float64)


def _stored(op: str, weights: np.ndarray, pool: int) -> np.ndarray:
    """Torch-layout float32-valued weights as a run stores them (kernel layout, float32), so
    that a kernel called here has the argument types of a run and is compiled once for both."""
    stored = _narrowest(kernel_weights(op, weights, pool))
    assert stored.dtype == np.float32
    return stored


def _decoded(spikes: np.ndarray, shape: tuple[int, int, int]) -> tuple[np.ndarray, ...]:
    """(channel, row, column) int32 arrays of flat CHW spike indices (what the LIF step emits)."""
    return tuple(a.astype(np.int32) for a in np.unravel_index(spikes, shape))


@SETTINGS
@given(conv_cases())
def test_conv_scatter_matches_dense_conv_of_pooled_spikes(case):
    pool, c_in, h, w, kernel, padding, stride, c_out, seed = case
    rng = np.random.default_rng(seed)
    weights = _float32_values(rng.normal(size=(c_out, c_in, kernel, kernel)))
    spikes = _spikes(rng, c_in * h * w)
    ho = naive.conv_out_size(h // pool, kernel, stride, padding)
    wo = naive.conv_out_size(w // pool, kernel, stride, padding)
    current = np.zeros(c_out * ho * wo)
    reached = np.zeros(ho * wo, dtype=np.uint8)
    ops = k.conv_scatter(*_decoded(spikes, (c_in, h, w)), len(spikes), pool, c_out, ho, wo,
                         kernel, stride, padding, _stored("conv", weights, pool), 0, current,
                         reached, w)

    source = naive.spike_map(spikes, (c_in, h, w))
    expected = naive.conv(naive.avg_pool(source, pool), weights, stride, padding)
    np.testing.assert_allclose(current, naive.chw_to_hwc(expected), rtol=1e-12, atol=1e-12)
    # Closed form: accumulations = sum over input spikes of each spike's fan-out (borders too).
    fanout = naive.pooled_fanout(naive.conv_fanout(c_in, h // pool, w // pool, c_out, kernel,
                                                   stride, padding), pool)
    assert ops == int(fanout.ravel()[spikes].sum())
    # A position is reached when any spike's receptive field covers it (same for every channel).
    covered = naive.conv(naive.avg_pool(source, pool), np.ones_like(weights), stride, padding)
    np.testing.assert_array_equal(reached, (covered[0] > 0).ravel().astype(np.uint8))


@SETTINGS
@given(conv_cases())
def test_conv_scatter_adds_in_spike_order(case):
    """Per target, the weights are added one by one in spike order (bit-exact), so the result
    does not depend on how the fan-out is vectorised; a pooled source adds each pooled cell once,
    ``k * W / pool**2`` for its ``k`` spikes, cells in the order of their first spike."""
    pool, c_in, h, w, kernel, padding, stride, c_out, seed = case
    rng = np.random.default_rng(seed)
    weights = _float32_values(rng.normal(size=(c_out, c_in, kernel, kernel))
                              * 10.0 ** rng.integers(-8, 8))
    spikes = _spikes(rng, c_in * h * w)
    ho = naive.conv_out_size(h // pool, kernel, stride, padding)
    wo = naive.conv_out_size(w // pool, kernel, stride, padding)
    current = np.zeros(c_out * ho * wo)
    kw = _stored("conv", weights, pool)
    k.conv_scatter(*_decoded(spikes, (c_in, h, w)), len(spikes), pool, c_out, ho, wo, kernel,
                   stride, padding, kw, 0, current, np.zeros(ho * wo, dtype=np.uint8), w)
    expected = np.zeros((c_out, ho, wo))
    scaled = weights / float(pool * pool) if pool > 1 else weights
    cells: dict[tuple[int, int, int], int] = {}  # insertion order: first spike of each cell
    for idx in spikes:  # ascending CHW
        c, r = divmod(int(idx), h * w)
        cell = (c, r // w // pool, r % w // pool)
        cells[cell] = cells.get(cell, 0) + 1
    for (c, y, x), count in cells.items():
        for ky in range(kernel):
            for kx in range(kernel):
                ny, nx = y + padding - ky, x + padding - kx
                if ny % stride or nx % stride:
                    continue
                oy, ox = ny // stride, nx // stride
                if 0 <= oy < ho and 0 <= ox < wo:
                    add = scaled[:, c, ky, kx] if count == 1 else count * scaled[:, c, ky, kx]
                    expected[:, oy, ox] += add
    np.testing.assert_array_equal(current, naive.chw_to_hwc(expected))


@SETTINGS
@given(conv_cases(), st.integers(1, 4), st.integers(0, 3))
def test_conv_tiles_of_rows_add_exactly_as_one_pass(case, tile_rows, first_row):
    """A stride-1 conv done tile of output rows by tile (the spikes each tile needs, channel by
    channel) equals one pass over all spikes bit for bit: counts, currents and reached flags."""
    pool, c_in, h, w, kernel, padding, _, c_out, seed = case
    rng = np.random.default_rng(seed)
    weights = _stored("conv", _float32_values(rng.normal(size=(c_out, c_in, kernel, kernel))),
                      pool)
    spikes = _spikes(rng, c_in * h * w)
    ho = naive.conv_out_size(h // pool, kernel, 1, padding)
    wo = naive.conv_out_size(w // pool, kernel, 1, padding)
    row0 = min(first_row, ho)
    results = []
    for tiled in (False, True):
        current = np.zeros(c_out * ho * wo)
        reached = np.zeros(ho * wo, dtype=np.uint8)
        if tiled:
            ops = k._conv_tiled(spikes, *_decoded(spikes, (c_in, h, w)), len(spikes), pool,
                                c_out, wo, kernel, padding, weights, 0, current, reached, c_in,
                                h, w, row0, ho, tile_rows * wo * c_out * 8)
        else:
            ops = k.conv_scatter(*_decoded(spikes, (c_in, h, w)), len(spikes), pool, c_out, ho,
                                 wo, kernel, 1, padding, weights, 0, current, reached, w, row0)
        results.append((ops, current, reached))
    assert results[0][0] == results[1][0]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_array_equal(results[0][2], results[1][2])


@SETTINGS
@given(st.sampled_from([2, 3]), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
       st.integers(0, 2**31 - 1))
def test_pooled_cells_are_the_pooled_spike_map(pool, c, ph, pw, seed):
    """Each non-empty pooled cell once, with its spike count (the pooled map times pool**2)."""
    rng = np.random.default_rng(seed)
    h, w = ph * pool, pw * pool
    spikes = _spikes(rng, c * h * w)
    cc, cy, cx, ck, m = k.pooled_cells(*_decoded(spikes, (c, h, w)), len(spikes), pool, w)
    counts = np.zeros((c, ph, pw), dtype=np.int64)
    counts[cc[:m], cy[:m], cx[:m]] = ck[:m]
    pooled = naive.avg_pool(naive.spike_map(spikes, (c, h, w)), pool) * pool**2
    np.testing.assert_array_equal(counts, np.rint(pooled).astype(np.int64))
    assert m == np.count_nonzero(counts) and ck[:m].sum() == len(spikes)


@SETTINGS
@given(st.sampled_from([1, 2]), st.integers(1, 3), st.integers(1, 3), st.integers(1, 6),
       st.integers(0, 2**31 - 1))
def test_linear_scatter_matches_matrix_product(pool, c, half, n_out, seed):
    rng = np.random.default_rng(seed)
    h = w = half * pool
    weights = _float32_values(rng.normal(size=(n_out, c * (h // pool) * (w // pool))))
    spikes = _spikes(rng, c * h * w)
    current = np.zeros(n_out)
    reached = np.zeros(1, dtype=np.uint8)
    ops = k.linear_scatter(spikes, *_decoded(spikes, (c, h, w)), len(spikes), h, w, pool, n_out,
                           _stored("linear", weights, pool), 0, current, reached)
    pooled = naive.avg_pool(naive.spike_map(spikes, (c, h, w)), pool)
    np.testing.assert_allclose(current, weights @ pooled.ravel(), rtol=1e-12, atol=1e-12)
    assert ops == len(spikes) * n_out
    assert reached.tolist() == [1 if len(spikes) else 0]


@SETTINGS
@given(st.sampled_from([1, 2, 3]), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(0, 2**31 - 1))
def test_identity_scatter_adds_the_pooled_spike_map(pool, c, ph, pw, seed):
    rng = np.random.default_rng(seed)
    h, w = ph * pool, pw * pool
    spikes = _spikes(rng, c * h * w)
    current = np.zeros(c * ph * pw)
    touched = np.zeros(c * ph * pw, dtype=np.uint8)
    # the increment as a run stores it: float32 when 1 / pool**2 is a float32 value (pool 3:
    # float64, as the whole network's weights then are)
    increment = _narrowest(np.array([1.0 / pool**2]))[0]
    ops = k.identity_scatter(*_decoded(spikes, (c, h, w)), len(spikes), pool, c, pw, increment,
                             current, touched)
    pooled = naive.avg_pool(naive.spike_map(spikes, (c, h, w)), pool)
    np.testing.assert_allclose(current, naive.chw_to_hwc(pooled), rtol=1e-12, atol=1e-15)
    assert ops == len(spikes)
    np.testing.assert_array_equal(touched, naive.chw_to_hwc(pooled > 0).astype(np.uint8))


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.floats(0.0, 1.0),
       st.floats(0.05, 2.0), st.integers(0, 2**31 - 1))
def test_lif_step_matches_naive_and_clears_the_step(c, h, w, leak, threshold, seed):
    rng = np.random.default_rng(seed)
    n = c * h * w
    u0 = rng.normal(size=(c, h, w))
    i0 = rng.normal(size=(c, h, w))
    reached0 = (rng.random((h, w)) < 0.3).astype(np.uint8)
    touched0 = (rng.random((c, h, w)) < 0.3).astype(np.uint8)
    membrane, current = naive.chw_to_hwc(u0), naive.chw_to_hwc(i0)
    reached, touched = reached0.ravel().copy(), naive.chw_to_hwc(touched0)
    out = [np.full(n, -1, dtype=np.int32) for _ in range(4)]
    n_spikes, active = k.lif_step(current, membrane, reached, touched, c, h, w, leak, 0,
                                  threshold, -np.inf, np.inf, np.zeros(n, dtype=np.uint8), *out,
                                  False)  # a bool, as a run passes it
    u_expected, fired = naive.lif(u0.ravel(), i0.ravel(), leak, threshold)
    np.testing.assert_array_equal(out[0][:n_spikes], fired)  # ascending CHW indices
    for got, want in zip(out[1:], np.unravel_index(fired, (c, h, w)), strict=True):
        np.testing.assert_array_equal(got[:n_spikes], want)
    np.testing.assert_array_equal(membrane, naive.chw_to_hwc(u_expected.reshape(c, h, w)))
    assert active == (reached0[None, :, :] | touched0).sum()
    assert not current.any() and not touched.any() and not reached.any()


@pytest.mark.parametrize("truncate, rounding", [(False, np.floor), (True, np.trunc)])
@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(0, 2**31 - 1))
def test_fixed_lif_step_rounds_and_saturates(truncate, rounding, c, h, w, seed):
    """int64 membranes: u = clip(round(u * L / 2**s) + I, lo, hi), strict threshold, soft reset;
    round is floor, or truncation toward zero (Loihi)."""
    rng = np.random.default_rng(seed)
    n = c * h * w
    u0 = rng.integers(-300, 300, size=(c, h, w))
    i0 = rng.integers(-200, 200, size=(c, h, w))
    lo, hi, v = -256, 255, 100
    membrane, current = naive.chw_to_hwc(u0), naive.chw_to_hwc(i0)
    out = [np.zeros(n, dtype=np.int32) for _ in range(4)]
    n_spikes, _ = k.lif_step(current, membrane, np.zeros(h * w, dtype=np.uint8),
                             np.zeros(n, dtype=np.uint8), c, h, w, 3, 2, v, lo, hi,
                             np.zeros(n, dtype=np.uint8), *out, truncate)
    u = np.clip(rounding(u0 * 3 / 4) + i0, lo, hi)
    fired = u > v
    np.testing.assert_array_equal(out[0][:n_spikes], np.flatnonzero(fired))
    np.testing.assert_array_equal(membrane, naive.chw_to_hwc(u - v * fired).astype(np.int64))


def test_fixed_leak_rounding_floor_and_truncate_differ_on_negative_membranes():
    """leak 3/4 on u = -5: floor(-15/4) = -4, truncate toward zero -3; equal for u >= 0."""
    for truncate, expected in ((False, [-4, 3, -1, 0]), (True, [-3, 3, 0, 0])):
        membrane = np.array([-5, 5, -1, 0], dtype=np.int64)
        current = np.zeros(4, dtype=np.int64)
        out = [np.zeros(4, dtype=np.int32) for _ in range(4)]
        k.lif_step(current, membrane, np.zeros(1, dtype=np.uint8), np.zeros(4, dtype=np.uint8),
                   4, 1, 1, 3, 2, 100, -256, 255, np.zeros(4, dtype=np.uint8), *out, truncate)
        assert membrane.tolist() == expected


def test_accumulate_step_sums_without_leak_or_threshold():
    membrane = np.array([1.0, -2.0, 5.0, 0.0])
    current = np.array([10.0, 0.0, -1.0, 0.0])
    reached = np.array([1, 0, 0, 0], dtype=np.uint8)  # position 0 (neurons 0, 1) reached
    touched = np.array([0, 0, 1, 0], dtype=np.uint8)  # neuron 2 touched by a shortcut
    assert k.accumulate_step(current, membrane, reached, touched, 2, -np.inf, np.inf) == 3
    np.testing.assert_array_equal(membrane, [11.0, -2.0, 4.0, 0.0])
    assert not current.any() and not touched.any() and not reached.any()


@SETTINGS
@given(conv_cases())
def test_dense_conv_matches_naive_and_counts_real_taps(case):
    _, c_in, h, w, kernel, padding, stride, c_out, seed = case
    rng = np.random.default_rng(seed)
    weights = _float32_values(rng.normal(size=(c_out, c_in, kernel, kernel)))
    x = rng.normal(size=(c_in, h, w))
    ho = naive.conv_out_size(h, kernel, stride, padding)
    wo = naive.conv_out_size(w, kernel, stride, padding)
    current = np.zeros(c_out * ho * wo)
    macs = k.dense_conv(x.ravel(), c_in, h, w, c_out, ho, wo, kernel, stride, padding,
                        _stored("conv", weights, 1), 0, current)
    np.testing.assert_allclose(current, naive.chw_to_hwc(naive.conv(x, weights, stride, padding)),
                               rtol=1e-12, atol=1e-12)
    assert macs == naive.conv_real_taps(c_in, h, w, c_out, kernel, stride, padding)
    if padding == 0:
        assert macs == c_out * ho * wo * c_in * kernel * kernel


def test_dense_linear_matches_matrix_product():
    rng = np.random.default_rng(3)
    weights = _float32_values(rng.normal(size=(4, 7)))
    x = rng.normal(size=7)
    current = np.zeros(4)
    assert k.dense_linear(x, 7, 4, _stored("linear", weights, 1), 0, current) == 28
    np.testing.assert_allclose(current, weights @ x, rtol=1e-12)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                    reason="already running without the JIT")
def test_kernels_pass_as_plain_python():
    """The same tests with NUMBA_DISABLE_JIT=1, so that coverage sees the kernel code."""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                           str(root / "tests" / "test_kernels.py"),
                           str(root / "tests" / "test_functional.py"), "-k", "not torch"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
