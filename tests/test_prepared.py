"""Prepared tables and plans are reused across calls, keyed on content: a repeated call gives
the same tables as a fresh one, and a weight changed in place is never served stale."""

from __future__ import annotations

import numpy as np
import pandas as pd
from chip_support import tiny_hw

import accelsim
from accelsim.chip import prepared
from accelsim.model.architectures import build
from accelsim.model.network import Network


def _net(seed: int = 0) -> Network:
    arch = build("vgg5", (1, 8, 8), 4, width=1 / 16)
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(0, 0.6, v).astype(np.float32)
               for k, v in arch.weight_shapes().items()}
    return Network(architecture=arch, weights=weights, timesteps=3, input_mean=(0.0,),
                   input_std=(1.0,))


def test_repeated_calls_reuse_and_equal_fresh_calls():
    net, hw = _net(), tiny_hw(mesh__rows=4, mesh__cols=4)
    x = np.random.default_rng(1).normal(size=(2, 1, 8, 8))
    prepared.clear()
    first = accelsim.simulate(net, x, hardware=hw)
    cached = {kind: dict(cache) for kind, cache in prepared._caches.items()}
    assert set(cached) == {"tables", "plan"}
    again = accelsim.simulate(net, x, hardware=hw)
    for kind, entries in cached.items():  # the same objects were served, nothing rebuilt
        assert all(prepared._caches[kind][key] is value for key, value in entries.items())
    pd.testing.assert_frame_equal(first.layers, again.layers)
    fixed = [accelsim.run(net, x, arithmetic="fixed").output for _ in range(2)]
    np.testing.assert_array_equal(*fixed)
    assert len(prepared._caches["fixed"]) == 1


def test_a_weight_changed_in_place_is_rebuilt():
    net, hw = _net(), tiny_hw(mesh__rows=4, mesh__cols=4)
    x = np.random.default_rng(2).normal(size=(2, 1, 8, 8))
    before = prepared.fingerprint(net)
    accelsim.run(net, x)
    next(iter(net.weights.values()))[...] *= -1.0
    assert prepared.fingerprint(net) != before
    prepared_result = accelsim.simulate(net, x, hardware=hw)
    prepared.clear()
    fresh = accelsim.simulate(net, x, hardware=hw)
    pd.testing.assert_frame_equal(prepared_result.layers, fresh.layers)
    assert prepared.fingerprint(_net()) == before  # equal content, equal key


def test_entries_are_bounded():
    prepared.clear()
    for i in range(prepared.ENTRIES + 3):
        prepared.cached("x", i, lambda i=i: i)
    assert list(prepared._caches["x"]) == list(range(3, prepared.ENTRIES + 3))
    prepared.clear()
    assert not prepared._caches
