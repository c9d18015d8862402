"""Mesh-link contention (accelsim.chip.mesh): hand timelines, the zero-load closed form, and fast
== reference on random meshes and traffic, both schedules.

Unless a test says otherwise the chip is ``chip_support.TINY`` (1-cycle hops, 1-cycle packets,
one accumulate and one neuron-update unit per tile at 1 cycle, depth-4 tile queues) with
4-packet router buffers. Channels are named by router and direction: E1 is router 1's link to
router 2, W2 router 2's link to router 1, S0 router 0's link south, J3 the ejection at tile 3.
"""

from __future__ import annotations

import numpy as np
import pytest
from chip_support import assert_modes_equal, chain, run_mode, tiny_hw, train
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.chip import mesh
from accelsim.chip.mapping import map_network
from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.spiking.functional import SpikeTrain
from accelsim.workflow import columns as col

MODES = ["fast", "reference"]


def _identity_net(n: int) -> Network:
    """input -> l0 (n units) -> l1 (n units, identity from l0) -> out: spike i of l0 is one
    packet to the tile holding neuron i of l1."""
    lin = lambda src, w: Projection(source=src, op="linear", weight=w)  # noqa: E731
    layers = (Layer(name="l0", kind="spiking", shape=(n,), inputs=(lin(INPUT, "a"),)),
              Layer(name="l1", kind="spiking", shape=(n,), inputs=(
                  Projection(source="l0", op="identity"),)),
              Layer(name="out", kind="output", shape=(1,), inputs=(lin("l1", "o"),)))
    weights = {"a": np.ones((n, 1), np.float32), "o": np.ones((1, n), np.float32)}
    return Network(architecture=Architecture(name="identity", input_shape=(1,), num_classes=1,
                                             layers=layers),
                   weights=weights, timesteps=1, input_mean=(0.0,), input_std=(1.0,))


@pytest.mark.parametrize("mode", MODES)
def test_two_flows_share_a_middle_link(mode):
    # 1x5 mesh, 2-cycle packets. l0 (4 units) on tiles 0 {0, 1} and 1 {2, 3}; l1 (identity) on
    # tiles 2 {0, 1} and 3 {2, 3}. MAC 0-2, fire 2-4: l0's neurons 0 and 2 (first on their
    # tiles) are ready at 3, neurons 1 and 3 at 4.
    net = _identity_net(4)
    hw = tiny_hw(mesh__cols=5, noc__packet_bits=64)
    tiles = {"l0": 2, "l1": 2, "out": 1}

    def packets(spikes):
        _, tls = run_mode(net, [{"l0": train([spikes]), "l1": train([[]])}], hw, 1, mode=mode,
                          tiles_per_layer=tiles)
        return tls[0]

    # Both at router 1 in cycle 4, the oldest first. a (neuron 0, 0 -> 2): admitted 3; E0 3-5,
    # head at router 1 at 4. c (neuron 3, 1 -> 3): admitted 4 at router 1. a is older (ready
    # 3): E1 4-6, head at 2 at 5; J2 5-7, arrived 7; served 7-8. c: E1 6-8 (2 cycles later
    # than alone), head at 2 at 7; E2 7-9; J3 8-10, arrived 10; served 10-11.
    tl = packets([0, 3])
    # timestep, source tile, neuron, dest tile, ready, admitted, arrival, start, finish
    np.testing.assert_array_equal(tl.packet_table(), [[1, 0, 0, 2, 3, 3, 7, 7, 8],
                                                      [1, 1, 3, 3, 4, 4, 10, 10, 11]])
    # l1's tiles fire once every packet is served and every end signal is in: ports done at
    # 5 and 6; tile 2 at max(8, 5 + 2, 6 + 1) = 8, tile 3 at max(11, 5 + 3, 6 + 2) = 11
    np.testing.assert_array_equal(tl.fire_start[0, 2:4], [8, 11])
    # alone, c crosses E1 at 4 and arrives at 8
    assert packets([3]).packet_table()[0, 6] == 8
    # Work-conserving: the older packet that has not reached the router does not hold the
    # link. c (neuron 2) is admitted at 3 at router 1, a only gets there at 4: c takes E1 3-5,
    # E2 4-6, J3 5-7, arrived 7 (as alone); a waits for E1: 5-7, J2 6-8, arrived 8 (alone 7).
    np.testing.assert_array_equal(packets([0, 2]).packet_table()[:, 6], [8, 7])


def _deliver(ready, src, dest, cols, depth=2, rows=1, hop_x=1, hop_y=1, flits=1):
    a = lambda x: np.asarray(x, dtype=np.int64)  # noqa: E731
    return mesh.deliver(a(ready), a(src), a(dest), cols, hop_x, hop_y, flits, depth,
                        mesh.state(1, rows, cols, depth)[0])


def test_head_of_line_blocking():
    # 1x4 mesh, 1-cycle hops and packets, 2-packet buffers.
    # X1..X4 (router 1 -> 3, created at 0, injected 0..3) hold E1 0-1 .. 3-4; arrive 3..6.
    # A (0 -> 3, created 1): E0 1-2, head at router 1 at 2; the X's still queued there are
    #   older: E1 4-5, E2 5-6, J3 6-7, arrived 7.
    # B (0 -> 1, created 2): E0 2-3, head at router 1 at 3; its output J1 is idle, but A is
    #   ahead of it in the west buffer until A's tail has left (5): J1 5-6, arrived 6 (alone: 4).
    inj, arrival = _deliver([0, 0, 0, 0, 1, 2], [1, 1, 1, 1, 0, 0], [3, 3, 3, 3, 3, 1], 4)
    np.testing.assert_array_equal(inj, [0, 1, 2, 3, 1, 2])
    np.testing.assert_array_equal(arrival, [3, 4, 5, 6, 7, 6])
    assert _deliver([2], [0], [1], 4)[1][0] == 4


def test_oldest_present_packet_wins_and_links_never_idle():
    # 1x3 mesh, 2-cycle packets. Y (router 0 -> 2, created 0): E0 0-2, head at router 1 at 1.
    # Z (router 1 -> 2, created 1): at router 1 at 1 too; Y is older: E1 1-3, J2 2-4,
    #   arrived 4; Z: E1 3-5, J2 4-6, arrived 6.
    _, arrival = _deliver([0, 1], [0, 1], [2, 2], 3, flits=2)
    np.testing.assert_array_equal(arrival, [4, 6])
    # Z created at 0 is at router 1 before Y: it takes E1 0-2 although Y is first in queue
    # order (Y, from router 0, sorts first): J2 1-3, arrived 3; Y: E1 2-4, J2 3-5, arrived 5
    _, arrival = _deliver([0, 0], [0, 1], [2, 2], 3, flits=2)
    np.testing.assert_array_equal(arrival, [5, 3])


@pytest.mark.parametrize("mode", MODES)
def test_three_hop_chain_under_back_pressure(mode):
    # 2x3 mesh; l0 (9 units) on tiles 0-2, 3 neurons each; out on tile 3 (row 1, column 0).
    # Tile 2 -> tile 3 is 3 hops: W2, W1, S0, then J3.
    # MAC 0-3, fire 3-6: tile 2's neurons 6, 7, 8 ready at 4, 5, 6.
    # One-packet buffers: a buffer slot is held from the head's entry until the tail has left
    # (hop + packet = 2 cycles), so the stream moves at one packet per 2 cycles:
    # p0: admitted 4; W2 4, W1 5, S0 6, J3 7; arrived 8.
    # p1: admitted 5 (its injection slot is free once p0 left at 5); W2 waits for router 1's
    #     slot (p0 leaves it at 6): W2 6, W1 7, S0 8, J3 9; arrived 10.
    # p2: ready 6, port free at 6, but the injection slot is p1's until 7: admitted 7 (stall
    #     1); W2 8, W1 9, S0 10, J3 11; arrived 12.
    net = chain([9])
    spikes = [{"l0": train([[6, 7, 8]])}]
    tiles = {"l0": 3, "out": 1}
    hw = tiny_hw(mesh__rows=2, mesh__cols=3, noc__router_buffer_packets=1)
    result, tls = run_mode(net, spikes, hw, 1, mode=mode, tiles_per_layer=tiles)
    np.testing.assert_array_equal(tls[0].packet_table()[:, 4:7], [[4, 4, 8], [5, 5, 10],
                                                                  [6, 7, 12]])
    rows = result.layers.set_index(col.LAYER)
    assert rows.loc["l0", col.STALL_CYCLES] == 1
    assert rows.loc["l0", col.NOC_HOPS] == 9
    # with the default 4-packet buffers the stream is never throttled: arrivals 8, 9, 10
    _, tls = run_mode(net, spikes, tiny_hw(mesh__rows=2, mesh__cols=3), 1, mode=mode,
                      tiles_per_layer=tiles)
    np.testing.assert_array_equal(tls[0].packet_table()[:, 6], [8, 9, 10])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), data=st.data(),
       hop_x=st.integers(1, 5), hop_y=st.integers(1, 5), flits=st.integers(1, 4),
       depth=st.integers(1, 4), inj=st.integers(0, 100))
def test_zero_load_latency_is_the_closed_form(rows, cols, data, hop_x, hop_y, flits, depth,
                                              inj):
    s = data.draw(st.integers(0, rows * cols - 1))
    d = data.draw(st.integers(0, rows * cols - 1))
    hops = abs(s % cols - d % cols) * hop_x + abs(s // cols - d // cols) * hop_y
    _, arrival = _deliver([inj], [s], [d], cols, depth, rows, hop_x, hop_y, flits)
    assert arrival[0] == inj + hops + flits
    # one hop per channel, and the route ends at d's ejection
    route = mesh.route(s, d, cols, hop_x, hop_y)
    assert len(route) == abs(s % cols - d % cols) + abs(s // cols - d // cols) + 1
    assert route[-1][0] == d * mesh.PORTS + mesh.EJECT


@settings(max_examples=10, deadline=None, derandomize=True)
@given(rows=st.integers(1, 3), cols=st.integers(2, 4), data=st.data(),
       hop_x=st.integers(1, 4), hop_y=st.integers(1, 4), flits=st.integers(1, 3))
def test_zero_load_chip_packet_in_both_modes(rows, cols, data, hop_x, hop_y, flits):
    # one spike of l0 (one neuron per tile) on tile i, to out on the tile after l0's
    tiles = data.draw(st.integers(1, rows * cols - 1))
    i = data.draw(st.integers(0, tiles - 1))
    hw = tiny_hw(mesh__rows=rows, mesh__cols=cols, noc__hop_latency_x_cycles=hop_x,
                 noc__hop_latency_y_cycles=hop_y, noc__flit_cycles=flits)
    d = tiles
    hops = abs(i % cols - d % cols) * hop_x + abs(i // cols - d // cols) * hop_y
    for mode in MODES:
        _, tls = run_mode(chain([tiles]), [{"l0": train([[i]])}], hw, 1, mode=mode,
                          tiles_per_layer={"l0": tiles, "out": 1})
        packet = tls[0].packet_table()[0]
        assert packet[6] == packet[5] + hops + flits


@settings(max_examples=15, deadline=None, derandomize=True)
@given(rows=st.integers(2, 4), cols=st.integers(2, 4), hop_x=st.integers(1, 3),
       hop_y=st.integers(1, 5), data=st.data())
def test_zero_load_follows_the_snake_placement_of_compact(rows, cols, hop_x, hop_y, data):
    """Under ``compact`` tile ids are not row-major (odd mesh rows run right to left): a lone
    packet's latency follows the tiles' own mesh coordinates, in both modes."""
    tiles = data.draw(st.integers(cols, rows * cols - 1))  # the chain reaches a second row
    i = data.draw(st.integers(0, tiles - 1))
    hw = tiny_hw(mesh__rows=rows, mesh__cols=cols, noc__hop_latency_x_cycles=hop_x,
                 noc__hop_latency_y_cycles=hop_y, mapping__policy="compact")
    net = chain([tiles])
    mapping = map_network(net, hw, {"l0": tiles, "out": 1})
    src, dest = mapping.layers[0].tiles[i], mapping.layers[1].tiles[0]
    row, col_ = mapping.tile_row, mapping.tile_col
    assert not np.array_equal(row * cols + col_, np.arange(len(row)))  # really a snake
    hops = abs(col_[src] - col_[dest]) * hop_x + abs(row[src] - row[dest]) * hop_y
    for mode in MODES:
        _, tls = run_mode(net, [{"l0": train([[i]])}], hw, 1, mode=mode,
                          tiles_per_layer={"l0": tiles, "out": 1})
        packet = tls[0].packet_table()[0]
        assert packet[6] == packet[5] + hops + 1


def _traffic(net: Network, T: int, rate: float, rng) -> dict[str, SpikeTrain]:
    trains = {}
    for layer in net.layers:
        if layer.kind == "spiking":
            steps = [np.flatnonzero(rng.random(layer.neurons) < rate) for _ in range(T)]
            trains[layer.name] = train([s.tolist() for s in steps])
    return trains


@settings(max_examples=25, deadline=None, derandomize=True)
@given(units=st.lists(st.integers(2, 8), min_size=2, max_size=3), rows=st.integers(1, 4),
       cols=st.integers(2, 5), depth=st.integers(1, 3), hop_x=st.integers(1, 3),
       hop_y=st.integers(1, 3), flits=st.integers(1, 3), queue=st.integers(1, 4),
       T=st.integers(1, 3), rate=st.sampled_from([0.3, 0.7, 1.0]), seed=st.integers(0, 999),
       schedule=st.sampled_from(["barrier", "pipelined"]), data=st.data())
def test_fast_equals_reference_on_random_meshes_and_traffic(units, rows, cols, depth, hop_x,
                                                             hop_y, flits, queue, T, rate, seed,
                                                             schedule, data):
    tiles = rows * cols
    net = chain(units)
    # spread each layer over up to 3 tiles while the mesh has room (out takes one)
    spare = tiles - len(units) - 1
    if spare < 0:
        return
    per_layer = {"out": 1}
    for i, n in enumerate(units):
        extra = data.draw(st.integers(0, min(2, spare, n - 1)))
        per_layer[f"l{i}"] = 1 + extra
        spare -= extra
    hw = tiny_hw(mesh__rows=rows, mesh__cols=cols, noc__router_buffer_packets=depth,
                 noc__hop_latency_x_cycles=hop_x, noc__hop_latency_y_cycles=hop_y,
                 noc__flit_cycles=flits, tile__queue_depth_packets=queue,
                 schedule__barrier_cycles=2)
    spikes = [_traffic(net, T, rate, np.random.default_rng(seed + k)) for k in range(2)]
    assert_modes_equal(net, spikes, hw, T, schedule=schedule, tiles_per_layer=per_layer)
