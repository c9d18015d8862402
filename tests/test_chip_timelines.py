"""Hand-computed timelines on tiny chips, in both modes (the cycle of every event is written out).

Unless a test says otherwise the chip is ``chip_support.TINY``: one accumulate unit and one
neuron-update unit per tile (1 cycle each), 1-cycle hops, 1-cycle packets, depth-4 queues, tiles
in a row (tile i at column i), no barrier cost.
"""

from __future__ import annotations

import numpy as np
import pytest
from chip_support import assert_modes_equal, chain, run_mode, tiny_hw, train

from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.workflow import columns as col

MODES = ["fast", "reference"]


def _rows(result, column):
    return result.layers.set_index([col.LAYER, col.TIMESTEP])[column]


@pytest.mark.parametrize("mode", MODES)
def test_one_spike_one_hop(mode):
    # l0 (1 unit) on tile 0, out on tile 1: one east-west hop.
    # cycle 0-1 MAC of l0 (1 MAC); 1-2 fire l0, spike ready at 2
    # 2 admitted at tile 1, port busy 2-3; head at tile 1 at 3; ejection 3-4; arrived 4
    # 4-5 out accumulates (1 synop); l0's end-of-step signal: sent 3, arrives 4
    # 5-6 out fires (1 neuron); the image ends at 6
    net = chain([1])
    spikes = [{"l0": train([[0]])}]
    result, tls = run_mode(net, spikes, tiny_hw(mesh__cols=2), 1, mode=mode)
    packets = tls[0].packet_table()
    # timestep, source tile, neuron, dest tile, ready, admitted, arrival, start, finish
    np.testing.assert_array_equal(packets, [[1, 0, 0, 1, 2, 2, 4, 4, 5]])
    assert result.images[col.TOTAL_CYCLES].tolist() == [6]
    assert _rows(result, col.CYCLES).to_dict() == {("l0", 1): 3, ("out", 1): 6}
    assert _rows(result, col.NOC_HOPS)[("l0", 1)] == 1
    assert _rows(result, col.STALL_CYCLES).sum() == 0


@pytest.mark.parametrize("mode", MODES)
def test_full_queue_stalls_sender(mode):
    # depth-1 queue; accumulate latency 5 (so the MAC of l0's 3 units takes 15 cycles).
    # l0 fires 15-18, spikes ready at 16, 17, 18.
    # p0: admitted 16, head 17, ejection 17-18, start 18, finish 23
    # p1: port free at 17, waits for p0's start (18) -> admitted 18 (stall 1); ejection 19-20,
    #     start 23 (unit busy), finish 28
    # p2: port free at 19, waits for p1's start (23) -> admitted 23 (stall 4); ejection 24-25,
    #     start 28, finish 33
    # l0 done at 24 (last injection), signal at out at 25; out fires 33-34
    net = chain([3])
    spikes = [{"l0": train([[0, 1, 2]])}]
    hw = tiny_hw(mesh__cols=2, tile__queue_depth_packets=1, tile__accumulate_latency_cycles=5)
    result, tls = run_mode(net, spikes, hw, 1, mode=mode)
    np.testing.assert_array_equal(tls[0].packet_table()[:, 4:], [
        [16, 16, 18, 18, 23], [17, 18, 20, 23, 28], [18, 23, 25, 28, 33]])
    assert _rows(result, col.STALL_CYCLES)[("l0", 1)] == 5
    assert _rows(result, col.QUEUE_PEAK)[("out", 1)] == 1
    assert result.images[col.TOTAL_CYCLES].tolist() == [34]
    # a deeper queue removes the stall: the three packets are admitted as soon as ready
    deep, tls = run_mode(net, spikes, tiny_hw(mesh__cols=2, tile__accumulate_latency_cycles=5),
                         1, mode=mode)
    np.testing.assert_array_equal(tls[0].packet_table()[:, 5], [16, 17, 18])
    assert _rows(deep, col.STALL_CYCLES)[("l0", 1)] == 0
    # when p2 is admitted (18), p0 leaves the queue (starts at 18; departures count first) and
    # p1 waits: two packets held
    assert _rows(deep, col.QUEUE_PEAK)[("out", 1)] == 2


@pytest.mark.parametrize("mode", MODES)
def test_two_senders_share_the_ejection_link(mode):
    # l0's two units on tiles 0 and 1, out on tile 2 (two hops from tile 0, one from tile 1).
    # Both tiles: MAC 0-1, fire 1-2, spike ready at 2; queue order at tile 2: tile 0 first.
    # p1 (tile 1): admitted 2, head at tile 2 at 3, the ejection link idle: ejection 3-4,
    #     arrived 4 (as alone), but tile 2 serves in queue order: after p0, 6-7.
    # p0 (tile 0): admitted 2, head at tile 2 at 4, ejection 4-5, arrived 5, served 5-6.
    # Signals: tile 0 done 3 (port), at tile 2 at 5; tile 1 done 3, at 4. out fires 7-8.
    net = chain([2])
    spikes = [{"l0": train([[0, 1]])}]
    result, tls = run_mode(net, spikes, tiny_hw(), 1, mode=mode, tiles_per_layer={"l0": 2})
    np.testing.assert_array_equal(tls[0].packet_table(), [[1, 0, 0, 2, 2, 2, 5, 5, 6],
                                                          [1, 1, 1, 2, 2, 2, 4, 6, 7]])
    assert result.images[col.TOTAL_CYCLES].tolist() == [8]
    # alone, tile 1's packet would have arrived at 4
    _, tls = run_mode(net, [{"l0": train([[1]])}], tiny_hw(), 1, mode=mode,
                      tiles_per_layer={"l0": 2})
    np.testing.assert_array_equal(tls[0].packet_table()[:, 6], [4])


@pytest.mark.parametrize("mode", MODES)
def test_barrier_waits_for_slowest_tile(mode):
    # l0 has 2 units on tiles 0 and 1, out (1 unit) on tile 2; barrier 10 cycles; T=2.
    # t=1: MAC 0-1 on both l0 tiles, fire 1-2; tile 0 spikes (ready 2): admitted 2, head at
    #      tile 2 at 4 (2 hops), ejection 4-5, out integrates 5-6. Signals: tile 0 done 3
    #      (+2) = 5, tile 1 done 2 (+1) = 3. out fires 6-7. Slowest tile ends at 7.
    #      barrier: timestep 2 starts at 7 + 10 = 17 on every tile.
    # t=2: l0 fires 17-18; tile 1 spikes (ready 18): admitted 18, head 19, ejection 19-20,
    #      out integrates 20-21; signals: tile 0 18 + 2 = 20, tile 1 19 + 1 = 20; out fires
    #      21-22. The image ends at 22.
    net = chain([2])
    spikes = [{"l0": train([[0], [1]])}]
    hw = tiny_hw(schedule__barrier_cycles=10)
    result, tls = run_mode(net, spikes, hw, 2, mode=mode, tiles_per_layer={"l0": 2})
    tl = tls[0]
    np.testing.assert_array_equal(tl.fire_start, [[1, 1, 6], [17, 17, 21]])
    # the cycle each tile completed BARRIER, MAC, INTEGRATE, FIRE, SEND: out (tile 2) has no
    # MAC; at t=1 tile 0's SEND ends with its injection 2-3, at t=2 tile 1's with 18-19; every
    # tile is released from the barrier at 17
    np.testing.assert_array_equal(tl.phase_end, [
        [[0, 1, 1, 2, 3], [0, 1, 1, 2, 2], [0, 0, 6, 7, 7]],
        [[17, 17, 17, 18, 18], [17, 17, 17, 18, 19], [17, 17, 21, 22, 22]]])
    np.testing.assert_array_equal(tl.packet_table()[:, [0, 1, 5, 6, 7, 8]],
                                  [[1, 0, 2, 5, 5, 6], [2, 1, 18, 20, 20, 21]])
    assert result.images[col.TOTAL_CYCLES].tolist() == [22]
    # layer cycles: l0 ends at 3 then 19; out ends at 7 then 22
    assert _rows(result, col.CYCLES).to_dict() == {("l0", 1): 3, ("l0", 2): 16,
                                                   ("out", 1): 7, ("out", 2): 15}
    # static energy is charged for every powered tile over the whole latency
    assert result.layers[col.STATIC_CYCLES].sum() == 3 * 22
    # without the barrier (pipelined) l0 fires timestep 2 right after timestep 1: 2-3
    piped, tls = run_mode(net, spikes, hw, 2, mode=mode, schedule="pipelined",
                          tiles_per_layer={"l0": 2})
    assert tls[0].fire_start[1, :2].tolist() == [2, 2]
    assert piped.images[col.TOTAL_CYCLES][0] < 22


@pytest.mark.parametrize("mode", MODES)
def test_spilled_weights_pay_dram(mode):
    # out's weights are 2 rows of 8 bits; SRAM holds 8 bits, so row 1 (source neuron 1) spills.
    # DRAM: latency 7, 4 bits per cycle, one spilling tile: service = 7 + ceil(8/4) + 1 = 10.
    # l0 (2 units on tiles 0, 1): MAC 0-1, fire 1-2; neuron 1 (tile 1) ready 2, admitted 2,
    # head 3, ejection 3-4, out starts 4 and finishes 14 (instead of 5); fires 14-15.
    net = chain([2])
    hw = tiny_hw(tile__weight_sram_capacity_bits=8, dram__bandwidth_bits_per_cycle=4,
                 dram__latency_cycles=7)
    result, tls = run_mode(net, [{"l0": train([[1]])}], hw, 1, mode=mode,
                           tiles_per_layer={"l0": 2})
    assert result.mapping.set_index(col.LAYER)[col.SPILLED_BYTES].to_dict() == {
        "l0": 0, "out": 1}
    np.testing.assert_array_equal(tls[0].packet_table()[:, 4:], [[2, 2, 4, 4, 14]])
    assert result.images[col.TOTAL_CYCLES].tolist() == [15]
    assert _rows(result, col.DRAM_READ_BITS)[("out", 1)] == 8
    assert _rows(result, col.WEIGHT_SRAM_READ_BITS)[("out", 1)] == 0
    # neuron 0's row is in SRAM: one cycle of service, no DRAM
    result, tls = run_mode(net, [{"l0": train([[0]])}], hw, 1, mode=mode,
                           tiles_per_layer={"l0": 2})
    assert tls[0].packet_table()[0, 8] - tls[0].packet_table()[0, 7] == 1
    assert _rows(result, col.DRAM_READ_BITS)[("out", 1)] == 0


@pytest.mark.parametrize("schedule", ["barrier", "pipelined"])
def test_hand_cases_fast_equals_reference(schedule):
    hw = tiny_hw(tile__queue_depth_packets=1, tile__accumulate_latency_cycles=3,
                 schedule__barrier_cycles=4)
    net = chain([3])
    spikes = [{"l0": train([[0, 1, 2], [1], [0, 2]])}, {"l0": train([[], [2], [0, 1, 2]])}]
    assert_modes_equal(net, spikes, hw, 3, schedule=schedule, tiles_per_layer={"l0": 2})


def _banded_net():
    """l0 (1 channel, 4 rows x 1 column) -> l1: conv 3x3, padding 1, same shape -> out."""
    conv = lambda src, w, k, pad: Projection(source=src, op="conv", weight=w,  # noqa: E731
                                             kernel=k, padding=pad)
    layers = (Layer(name="l0", kind="spiking", shape=(1, 4, 1), inputs=(conv(INPUT, "a", 1, 0),)),
              Layer(name="l1", kind="spiking", shape=(1, 4, 1), inputs=(conv("l0", "b", 3, 1),)),
              Layer(name="out", kind="output", shape=(1,), inputs=(
                  Projection(source="l1", op="linear", weight="o"),)))
    weights = {"a": np.ones((1, 1, 1, 1), np.float32), "b": np.ones((1, 1, 3, 3), np.float32),
               "o": np.ones((1, 4), np.float32)}
    return Network(architecture=Architecture(name="bands", input_shape=(1, 4, 1), num_classes=1,
                                             layers=layers),
                   weights=weights, timesteps=1, input_mean=(0.0,), input_std=(1.0,))


@pytest.mark.parametrize("mode", MODES)
def test_two_row_bands_receive_only_what_their_rows_need(mode):
    # l0 on tile 0; l1 split in two row bands: rows 0-1 on tile 1, rows 2-3 on tile 2; out on
    # tile 3. l0: MAC 0-4 (4 MACs), fire 4-8; neuron 0 ready at 5, neuron 2 at 7.
    # neuron 0 (row 0) reaches rows 0, 1 only: one packet, to tile 1 (2 synops).
    # neuron 2 (row 2) reaches rows 1, 2, 3: tile 1 (1 synop), then tile 2 (2 synops).
    # p0: admitted 5, head at tile 1 at 6, ejection 6-7, served 7-9.
    # p1: admitted 7 (ready), head 8, ejection 8-9, served 9-10.
    # p2: port free at 8 -> admitted 8, head at tile 2 at 10, ejection 10-11, served 11-13.
    # l0 done at 9 (port), signals at tile 1 at 10, at tile 2 at 11.
    # tile 1 fires 10-12 (2 neurons), tile 2 fires 13-15; their signals reach tile 3 at 14 and
    # 16; out fires 16-17.
    net = _banded_net()
    spikes = [{"l0": train([[0, 2]]), "l1": train([[]])}]
    hw = tiny_hw(mesh__cols=4)
    result, tls = run_mode(net, spikes, hw, 1, mode=mode, tiles_per_layer={"l1": 2})
    np.testing.assert_array_equal(tls[0].packet_table(), [[1, 0, 0, 1, 5, 5, 7, 7, 9],
                                                          [1, 0, 2, 1, 7, 7, 9, 9, 10],
                                                          [1, 0, 2, 2, 7, 8, 11, 11, 13]])
    tiles = result.tiles.set_index(col.TILE)
    assert tiles[col.SYNAPTIC_OPS].tolist() == [0, 3, 2, 0]
    np.testing.assert_array_equal(tls[0].fire_start[0], [4, 10, 13, 16])
    assert result.images[col.TOTAL_CYCLES].tolist() == [17]
    assert _rows(result, col.NOC_PACKETS)[("l0", 1)] == 3
    # on one tile the same spikes are two packets with the same 5 synops
    one, _ = run_mode(net, spikes, hw, 1, mode=mode, tiles_per_layer={"l1": 1})
    assert _rows(one, col.NOC_PACKETS)[("l0", 1)] == 2
    assert _rows(one, col.SYNAPTIC_OPS)[("l1", 1)] == _rows(result, col.SYNAPTIC_OPS)[("l1", 1)]
