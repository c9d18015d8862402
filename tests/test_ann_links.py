"""The ANN's send bound counts the busiest directed mesh link: hand-computed chains where the
link binds and where it does not, and the link counts against a per-packet XY walk."""

from __future__ import annotations

import dataclasses

import numpy as np
from chip_support import chain
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from test_ann import _conv_net, _holder

from accelsim.chip import ann, mesh
from accelsim.chip.hardware import load_hardware
from accelsim.chip.mapping import map_network
from accelsim.workflow import columns as col


def _chain_chip(rows: int, cols: int, hop_y: int = 1):
    # U = 1, one neuron unit, unit latencies, 2-cycle packets (flit_cycles 2), 2-cycle x hops
    return load_hardware("45nm-generic", {
        "mesh.rows": rows, "mesh.cols": cols, "tile.accumulate_units": 1,
        "tile.neuron_update_units": 1, "noc.hop_latency_x_cycles": 2,
        "noc.hop_latency_y_cycles": hop_y, "noc.flit_cycles": 2, "schedule.barrier_cycles": 5})


def _ends(net, hw, mapping, with_links: bool) -> np.ndarray:
    c = ann.count(net, hw, mapping, None, False, 1)
    mac, fire, inject, eject, link = ann._phases(net, hw, mapping, c)
    return ann.layer_ends(net, hw, mapping, mac, fire, inject, eject,
                          link if with_links else np.zeros_like(link), 5)


def test_a_middle_link_carrying_both_senders_binds():
    """input (2,) -> l0: 4 units on tiles 0, 1 -> l1: 4 units on tiles 2, 3 -> out on tile 4,
    a 1 x 5 mesh. Every l0 value reaches both l1 tiles: each l0 tile injects 2 x 2 = 4
    packets, each l1 tile ejects 4, but the east link 1 -> 2 carries all 8."""
    net = chain([4, 4], inputs=2)
    hw = _chain_chip(1, 5)
    mapping = map_network(net, hw, {"l0": 2, "l1": 2, "out": 1})
    assert [p.tiles.tolist() for p in mapping.layers] == [[0, 1], [2, 3], [4]]
    c = ann.count(net, hw, mapping, None, False, 1)
    assert c["packets_out"][0].tolist() == [4, 4, 2, 2, 0]
    assert c["packets_in"][0].tolist() == [0, 0, 4, 4, 4]
    # l0 -> l1: link 1 -> 2 carries 8; l1 -> out: link 3 -> 4 carries 4 (= out's ejection)
    assert c[ann.LINK][0].tolist() == [[0, 8, 0], [0, 0, 4], [0, 0, 0]]
    res = ann.simulate_ann(net, np.ones((1, 2)), None, hw, schedule="barrier", mapping=mapping)
    # l0: MAC 2 inputs x 2 units = 4, fire 2 neurons = 2, ends at 6; send: the link's 8
    # packets x 2 cycles = 16 (ports: 4 x 2 = 8), longest route 0 -> 3 = 3 hops x 2 = 6: 28.
    # l1: barrier 5, MAC 4 x 2 = 8, fire 2: 43; send: out's ejection 4 x 2 = 8 (link 3 -> 4
    # also 8), route 2 -> 4 = 4: 55. out: barrier 5, MAC 4, fire 1: 65.
    assert res.layers[col.CYCLES].tolist() == [28, 27, 10]
    assert res.images[col.TOTAL_CYCLES].tolist() == [65]
    assert _ends(net, hw, mapping, False)[0].tolist() == [20, 47, 57]  # ports alone


def test_routes_spread_over_links_leave_the_ports_bound():
    """The same chain on a 2 x 3 mesh, placed by hand: l0 at (0,0), (1,0), l1 at (0,1),
    (1,1), out at (0,2). No link carries more than a port (east links 4 each, the y links 2),
    so the result is that of the ports alone."""
    net = chain([4, 4], inputs=2)
    hw = _chain_chip(2, 3, hop_y=3)
    mapping = map_network(net, hw, {"l0": 2, "l1": 2, "out": 1})
    mapping = dataclasses.replace(mapping, tile_row=np.array([0, 1, 0, 1, 0]),
                                  tile_col=np.array([0, 0, 1, 1, 2]))
    c = ann.count(net, hw, mapping, None, False, 1)
    assert c[ann.LINK][0].tolist() == [[0, 4, 0], [0, 0, 2], [0, 0, 0]]
    res = ann.simulate_ann(net, np.ones((1, 2)), None, hw, schedule="barrier", mapping=mapping)
    # l0: 6 + ports 4 x 2 = 8 + longest route (1,0) -> (0,1): 2 + 3 = 5: 19.
    # l1: 19 + 5 + 8 + 2 = 34; out ejects 4 x 2 = 8, route (1,1) -> (0,2): 5: 47.
    # out: 47 + 5 + 4 + 1 = 57.
    assert res.layers[col.CYCLES].tolist() == [19, 28, 10]
    assert _ends(net, hw, mapping, True).tolist() == _ends(net, hw, mapping, False).tolist()


def test_forwarding_of_cut_pooling_windows_shares_the_links():
    """a (3 x 6 x 4) pooled 2 x 2 into b on one tile; a's channel 0 is cut into rows 0:3
    (tile 0) and 3:6 (tile 1), so row 3 of the windows on rows 2-3 goes to tile 0 first. On a
    1 x 6 mesh, west to east: a's channel 1 (tile 2), tile 1, tile 0, b, a's channel 2
    (tile 3), out. With zero-skipping and only channel 0's rows 2-5 and channel 1 non-zero:
    the link tile 1 -> tile 0 carries channel 1's 6 pooled values, tile 1's 2 and the 4
    forwarded activations of row 3: 12, more than any port (b ejects 6 + 2 + 2 = 10, tile 1
    injects 2 + 4) and than the link into b (10)."""
    net = _conv_net(1, pool=2, width=4)
    hw = load_hardware("45nm-generic", {"mesh.rows": 1, "mesh.cols": 6})
    mapping = map_network(net, hw, {"a": 4, "b": 1, "out": 1})
    pa = mapping.placement("a")
    assert pa.channel_start.tolist() == [0, 0, 1, 2] and pa.row_end.tolist() == [3, 6, 6, 6]
    mapping = dataclasses.replace(mapping, tile_row=np.zeros(6, dtype=np.int64),
                                  tile_col=np.array([2, 1, 0, 4, 3, 5]))
    a = np.ones((1, 3, 6, 4))
    a[0, 0, :2] = 0
    a[0, 2] = 0
    acts = {"input": np.ones((1, 2, 6, 4)), "a": a, "b": np.ones((1, 5, 3, 2))}
    c = ann.count(net, hw, mapping, acts, True, 1)
    assert c["packets_out"][0, :4].tolist() == [2, 2 + 4, 6, 0]
    assert c["packets_in"][0, :5].tolist() == [4, 0, 0, 0, 10]
    assert c[ann.LINK][0, 0, 1] == 12


def _walk(loads: dict[int, int], r0: int, c0: int, r1: int, c1: int, cols: int) -> None:
    """One packet from mesh position (r0, c0) to (r1, c1): X first, then Y, adding one to every
    directed link it crosses (channel ``router * PORTS + port``)."""
    r, c = r0, c0
    while c != c1:
        port = mesh.EAST if c1 > c else mesh.WEST
        ch = (r * cols + c) * mesh.PORTS + port
        loads[ch] = loads.get(ch, 0) + 1
        c += 1 if c1 > c else -1
    while r != r1:
        port = mesh.SOUTH if r1 > r else mesh.NORTH
        ch = (r * cols + c) * mesh.PORTS + port
        loads[ch] = loads.get(ch, 0) + 1
        r += 1 if r1 > r else -1


def _busiest_by_walking(net, hw, mapping, acts: dict, i: int, zs: bool) -> dict:
    """Per (sender, consumer) of the conv net, the packets on its busiest link, every packet
    walked: a's forwarding of cut pooling windows and its pooled values to each b tile whose
    rows their kernel windows reach (as b needs them), then b's values to every out tile."""
    pa, pb, po = (mapping.placement(n) for n in ("a", "b", "out"))
    proj = net.architecture.layer("b").inputs[0]
    k, s, pad, pool = proj.kernel, proj.stride, proj.padding, proj.pool
    _, Ho, Wo = net.architecture.layer("b").shape
    rr, cc, cols = mapping.tile_row, mapping.tile_col, hw.mesh.cols
    a, b = acts["a"][i], acts["b"][i]

    def send(loads, src, dst):
        _walk(loads, int(rr[src]), int(cc[src]), int(rr[dst]), int(cc[dst]), cols)

    ab: dict[int, int] = {}
    C, H, W = a.shape
    for ci in range(C):
        for py in range(H // pool):
            for px in range(W // pool):
                owner = _holder(pa, ci, pool * py)
                window = a[ci, pool * py:pool * py + pool, pool * px:pool * px + pool]
                for y in range(pool * py, pool * py + pool):
                    held = _holder(pa, ci, y)
                    for x in range(pool * px, pool * px + pool):
                        if held != owner and not (zs and a[ci, y, x] == 0):
                            send(ab, held, owner)
                if zs and window.mean() == 0:
                    continue
                for d, tile in enumerate(pb.tiles):
                    if any(0 <= py + pad - oy * s < k and 0 <= px + pad - ox * s < k
                           for oy in range(pb.row_start[d], pb.row_end[d])
                           for ox in range(Wo)):
                        send(ab, owner, int(tile))
    bo: dict[int, int] = {}
    for ci in range(b.shape[0]):
        for y in range(Ho):
            held = _holder(pb, ci, y)
            for x in range(Wo):
                if zs and b[ci, y, x] == 0:
                    continue
                for tile in po.tiles:
                    send(bo, held, int(tile))
    return {("a", "b"): max(ab.values(), default=0), ("b", "out"): max(bo.values(), default=0)}


@settings(max_examples=30, deadline=None, derandomize=True)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), policy=st.sampled_from(["spread",
       "compact"]), tiles_a=st.integers(1, 5), tiles_b=st.integers(1, 6),
       tiles_out=st.integers(1, 2), pool=st.sampled_from([1, 2]), stride=st.sampled_from([1, 2]),
       zero_skipping=st.booleans(), shuffle=st.booleans(), seed=st.integers(0, 10**6))
def test_busiest_link_equals_a_walk_of_every_packet(rows, cols, policy, tiles_a, tiles_b,
                                                     tiles_out, pool, stride, zero_skipping,
                                                     shuffle, seed):
    """On the policies' placements, and on tiles shuffled over the mesh's positions."""
    total = tiles_a + tiles_b + tiles_out
    rows = max(rows, -(-total // cols))  # enough tiles; the shape still varies
    net = _conv_net(stride, seed=seed, pool=pool, width=4 if pool == 2 else 5)
    hw = load_hardware("45nm-generic", {"mesh.rows": rows, "mesh.cols": cols,
                                        "mapping.policy": policy,
                                        "tile.zero_skipping": zero_skipping})
    mapping = map_network(net, hw, {"a": tiles_a, "b": tiles_b, "out": tiles_out})
    if shuffle:
        at = np.random.default_rng(seed).permutation(rows * cols)[:total]
        mapping = dataclasses.replace(mapping, tile_row=at // cols, tile_col=at % cols)
    x = np.random.default_rng(seed).normal(size=(2, 2, 6, net.architecture.input_shape[2]))
    acts = ann.activations(net, x)
    c = ann.count(net, hw, mapping, acts, zero_skipping, len(x))
    names = ["a", "b", "out"]
    for i in range(len(x)):
        expected = np.zeros((3, 3), dtype=np.int64)
        for (s, d), n in _busiest_by_walking(net, hw, mapping, acts, i, zero_skipping).items():
            expected[names.index(s), names.index(d)] = n
        assert c[ann.LINK][i].tolist() == expected.tolist()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(rows=st.integers(1, 5), cols=st.integers(1, 5), policy=st.sampled_from(["spread",
       "compact"]), data=st.data())
def test_link_loads_equal_a_walk_of_every_packet(rows, cols, policy, data):
    """Every directed link's packets (not only the busiest), on random traffic between random
    tiles of a mapping whose tile ids are not its mesh positions (compact: a snake)."""
    assume(rows * cols >= 2)
    net = chain([rows * cols - 1])
    hw = load_hardware("45nm-generic", {"mesh.rows": rows, "mesh.cols": cols,
                                        "mapping.policy": policy})
    mapping = map_network(net, hw, {"l0": rows * cols - 1, "out": 1})
    n = mapping.tiles_used
    pairs = data.draw(st.integers(1, 12))
    src = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=pairs, max_size=pairs)))
    dst = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=pairs, max_size=pairs)))
    packets = np.array(data.draw(st.lists(st.lists(st.integers(0, 4), min_size=pairs,
                                                   max_size=pairs), min_size=2, max_size=2)))
    got = ann.link_loads(mapping, packets, src, dst)
    assert got.shape == (2, mesh.channels(rows, cols))
    rr, cc = mapping.tile_row, mapping.tile_col
    for i in range(2):
        loads: dict[int, int] = {}
        for p in range(pairs):
            for _ in range(packets[i, p]):
                _walk(loads, int(rr[src[p]]), int(cc[src[p]]), int(rr[dst[p]]),
                      int(cc[dst[p]]), cols)
        expected = np.zeros(mesh.channels(rows, cols), dtype=np.int64)
        for ch, k in loads.items():
            expected[ch] = k
        assert got[i].tolist() == expected.tolist()
