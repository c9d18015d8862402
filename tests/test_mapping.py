"""Mapping: the stated policy, SRAM never exceeded, spills, and errors that say why."""

from __future__ import annotations

import numpy as np
import pytest
from chip_support import assert_modes_equal, chain, tiny_hw
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.chip.hardware import load_hardware
from accelsim.chip.mapping import MappingError, map_network, max_tiles, partition
from accelsim.model.architectures import build
from accelsim.model.network import Architecture, Layer, Network, Projection
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.workflow import columns as col


def _net(name="vgg5", shape=(1, 16, 16), width=0.25) -> Network:
    arch = build(name, shape, 10, width=width)
    return Network(architecture=arch, weights=SpikingNetwork(arch, seed=0).weight_arrays(),
                   input_mean=(0.0,) * shape[0], input_std=(1.0,) * shape[0])


def test_table_and_policy():
    net = _net()
    hw = load_hardware("45nm-generic")
    m = map_network(net, hw)
    table = m.table()
    assert list(table.columns) == [col.LAYER, col.TILES, col.FIRST_TILE, col.NEURONS_PER_TILE,
                                   col.WEIGHT_BITS_PER_TILE, col.SRAM_UTILISATION,
                                   col.SPILLED_BYTES]
    assert table[col.TILES].sum() == hw.mesh.tiles  # every tile used
    assert (table[col.TILES] >= 1).all()
    # consecutive tiles in layer order
    assert table[col.FIRST_TILE].tolist() == np.concatenate(
        [[0], np.cumsum(table[col.TILES])[:-1]]).tolist()
    # the layer with the most weights gets the most tiles
    bits = {p.layer.name: int(p.weight_bits.sum()) for p in m.layers}
    assert table.set_index(col.LAYER)[col.TILES].idxmax() == max(bits, key=bits.get)
    # neurons are partitioned exactly, blocks differ by at most one channel
    for p in m.layers:
        assert len(p.tiles) <= p.layer.shape[0]
        assert p.neurons.sum() == p.layer.neurons
        assert (p.neurons <= hw.tile.max_neurons).all()
        assert (p.spilled_bits == 0).all() or len(p.layer.shape) == 1


def test_explicit_tiles_per_layer():
    m = map_network(chain([4, 2]), tiny_hw(mesh__cols=4), {"l0": 2, "l1": 1, "out": 1})
    assert m.table()[col.TILES].tolist() == [2, 1, 1]
    with pytest.raises(MappingError, match="'nope'"):
        map_network(chain([4]), tiny_hw(), {"nope": 1})
    with pytest.raises(MappingError, match=r"tiles_per_layer\['l0'\] = 5.*between 1 and 4.*4 "
                       "channels"):
        map_network(chain([4]), tiny_hw(), {"l0": 5})


def test_more_layers_than_tiles():
    with pytest.raises(MappingError, match="4 layers.*2 tiles"):
        map_network(chain([2, 2, 2]), tiny_hw(mesh__cols=2))


def test_a_channel_over_the_limit_is_split_in_row_bands():
    """conv1 has 16 channels of 32x32: at most 100 neurons per tile is 3 rows of 32, so 11 row
    bands (of 3 or 2 rows) per channel."""
    net = _net(shape=(1, 32, 32))
    hw = load_hardware("45nm-generic", {"tile.max_neurons": 100, "mesh.rows": 20,
                                        "mesh.cols": 20})
    m = map_network(net, hw)
    p = m.placement("conv1")
    assert len(p.tiles) >= 16 * 11
    assert p.neurons.max() <= 100 and p.neurons.sum() == p.layer.neurons
    assert (p.channels == 1).all()  # 3 rows of one channel: a row of two would not fit
    assert (p.weight_bits == 9 * hw.tile.weight_bits).all()  # one channel's 3x3 kernel, 1 input
    assert all(q.neurons.max() <= 100 for q in m.layers)
    assert m.tiles_used == hw.mesh.tiles


def test_too_few_tiles_says_what_would_fit():
    net = _net(shape=(1, 32, 32))
    small = {"tile.max_neurons": 100}
    with pytest.raises(MappingError, match=r"needs (\d+) tiles.*'conv1' alone needs 176.*has 64: "
                       r"use a mesh of at least \1 tiles; it fits with tile.max_neurons >= "
                       r"(\d+)") as err:
        map_network(net, load_hardware("45nm-generic", small))
    fits = int(str(err.value).rsplit(">= ", 1)[1])
    map_network(net, load_hardware("45nm-generic", {"tile.max_neurons": fits}))
    with pytest.raises(MappingError):
        map_network(net, load_hardware("45nm-generic", {"tile.max_neurons": fits - 1}))
    # a tile holds whole rows: a row wider than a tile cannot be mapped at all
    with pytest.raises(MappingError, match="'conv1'.*row.*32 neurons.*max_neurons >= 32"):
        map_network(net, load_hardware("45nm-generic", {"tile.max_neurons": 31,
                                                        "mesh.rows": 64, "mesh.cols": 64}))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(c=st.integers(1, 5), h=st.integers(1, 7), w=st.integers(1, 4), data=st.data())
def test_partition_covers_the_layer_once_balanced(c, h, w, data):
    """Any tile count and number of channel groups: blocks of whole rows that cover every neuron
    once; groups differ by <= 1 channel, bands per group by <= 1, rows per band by <= 1."""
    layer = Layer(name="x", kind="spiking", shape=(c, h, w), inputs=(
        Projection(source="input", op="conv", weight="x", kernel=1),))
    n = data.draw(st.integers(1, max_tiles(layer)))
    g = data.draw(st.integers(-(-n // h), min(n, c)))
    c0, c1, r0, r1 = partition(layer, n, g)
    assert len(c0) == n and (c1 > c0).all() and (r1 > r0).all()
    cover = np.zeros((c, h), dtype=np.int64)
    for k in range(n):
        cover[c0[k]:c1[k], r0[k]:r1[k]] += 1
    assert (cover == 1).all()
    groups = np.unique(np.stack([c0, c1]), axis=1)
    assert groups.shape[1] == g and np.ptp(groups[1] - groups[0]) <= 1
    per_group = [((c0 == a) & (c1 == b)) for a, b in groups.T]
    assert np.ptp([m.sum() for m in per_group]) <= 1
    assert all(np.ptp((r1 - r0)[m]) <= 1 for m in per_group)
    # every neuron has one tile and one place in it
    place = map_network(_conv_chain(c, h, w), tiny_hw(mesh__rows=8, mesh__cols=8),
                        {"x": n, "out": 1}).placement("x")
    tile, local = place.neuron_tiles()
    assert sorted(zip(tile.tolist(), local.tolist(), strict=True)) == [
        (k, i) for k in range(len(place.tiles)) for i in range(int(place.neurons[k]))]


def _conv_chain(c, h, w):
    layers = (Layer(name="x", kind="spiking", shape=(c, h, w), inputs=(
                  Projection(source="input", op="conv", weight="x"),)),
              Layer(name="out", kind="output", shape=(1,), inputs=(
                  Projection(source="x", op="linear", weight="o"),)))
    return Network(architecture=Architecture(name="c", input_shape=(1, h, w), num_classes=1,
                                             layers=layers),
                   weights={"x": np.ones((c, 1, 1, 1), np.float32),
                            "o": np.ones((1, c * h * w), np.float32)},
                   input_mean=(0.0,), input_std=(1.0,))


def _conv8():
    """a (8 channels, 8x8) -> b: 3x3 conv, padding 1, 8 -> 8 channels -> out."""
    conv = Projection(source="a", op="conv", weight="b", kernel=3, padding=1)
    layers = (Layer(name="a", kind="spiking", shape=(8, 8, 8), inputs=(
                  Projection(source="input", op="conv", weight="a"),)),
              Layer(name="b", kind="spiking", shape=(8, 8, 8), inputs=(conv,)),
              Layer(name="out", kind="output", shape=(1,), inputs=(
                  Projection(source="b", op="linear", weight="o"),)))
    return Network(architecture=Architecture(name="g", input_shape=(1, 8, 8), num_classes=1,
                                             layers=layers),
                   weights={"a": np.ones((8, 1, 1, 1), np.float32),
                            "b": np.ones((8, 8, 3, 3), np.float32),
                            "o": np.ones((1, 512), np.float32)},
                   input_mean=(0.0,), input_std=(1.0,))


def test_groups_that_balance_a_spike_best():
    """b (3x3 conv, 8 -> 8 channels, 8x8, 576 weight bits per channel) on 4 tiles. A spike
    reaches 3 rows x 3 columns. With g groups (4 / g bands of 8 g / 4 rows) it is
    min(4, g + 2 * 4 / 8) packets and puts ceil(8 / g) x min(3, rows per band) x 3 synops on
    its busiest tile:
      g = 1: 2 packets, 8 x 2 x 3 = 48 synops;  g = 2: 3 packets, 4 x 3 x 3 = 36;
      g = 3: 4 packets, 3 x 3 x 3 = 27;         g = 4: 4 packets, 2 x 3 x 3 = 18.
    One accumulate unit, 1 cycle each, 1-cycle packets: the tile is the bottleneck, g = 4 (2
    channels on all 8 rows). 64 units and 4-cycle packets: the port is (g = 1: 8 cycles; 2: 12;
    4: 16), g = 1 (4 bands of 2 rows) unless the SRAM holds only 2 channels (1152 bits)."""
    net = _conv8()
    counts = {"a": 1, "b": 4, "out": 1}
    port_bound = {"tile__accumulate_units": 64, "noc__packet_bits": 128}
    for extra, capacity, channels, rows in (({}, 4608, 2, 8), ({}, 1152, 2, 8),
                                            (port_bound, 4608, 8, 2),
                                            (port_bound, 1152, 2, 8),
                                            (port_bound, 1000, 2, 8)):
        hw = tiny_hw(mesh__cols=6, tile__weight_sram_capacity_bits=capacity, **extra)
        assert hw.noc.packet_cycles == (4 if extra else 1)
        p = map_network(net, hw, counts).placement("b")
        assert (p.channels == channels).all() and (p.row_end - p.row_start == rows).all()
        assert (p.spilled_bits > 0).any() == (capacity < 1152)
    # 64 neurons per tile at most, 8 tiles: every g holds 64 neurons a tile; g = 8 puts 9
    # synops on a tile for 8 packets, g = 4 18 for min(8, 4 + 2) = 6: g = 8, one channel each
    hw = tiny_hw(mesh__rows=3, mesh__cols=6, tile__max_neurons=64)
    p = map_network(net, hw, {"a": 8, "b": 8, "out": 1}).placement("b")
    assert (p.channels == 1).all() and (p.row_end - p.row_start == 8).all()
    # a layer fed by the analog input only sends nothing to itself: channel groups
    p = map_network(net, tiny_hw(mesh__rows=3, mesh__cols=6), {"a": 4, "b": 8, "out": 1}
                    ).placement("a")
    assert (p.channels == 2).all()


def _dense(hidden=(512, 256), inputs=784, classes=10) -> Network:
    """The dense 784-512-256-10 network (weights 1)."""
    layers, weights, source, n_in = [], {}, "input", inputs
    for i, n in enumerate((*hidden, classes)):
        name = f"fc{i + 1}"
        layers.append(Layer(name=name, kind="spiking" if i < len(hidden) else "output",
                            shape=(n,), inputs=(Projection(source=source, op="linear",
                                                           weight=name),)))
        weights[name] = np.ones((n, n_in), np.float32)
        source, n_in = name, n
    return Network(architecture=Architecture(name="dense", input_shape=(inputs,),
                                             num_classes=classes, layers=tuple(layers)),
                   weights=weights, timesteps=1, input_mean=(0.0,), input_std=(1.0,))


def _every_neuron_spikes_once(net: Network):
    from chip_support import train
    return [{layer.name: train([list(range(layer.neurons))]) for layer in net.layers
             if layer.kind == "spiking"}]


def test_dense_packets_per_spike_and_hops_by_policy():
    """784-512-256-10 on loihi-like (8 x 16 tiles, 128 KiB = 1,048,576 bits, 1024 neurons a
    tile). fc1 needs 784 x 8 = 6,272 bits per unit: 167 units a tile, 4 tiles; fc2 512 x 8 x
    256 = 1,048,576 bits: one tile; fc3 one. compact: fc1 on tiles 0-3 (128 units each), fc2 on
    4, fc3 on 5, all in mesh row 0: each of the 512 + 256 spikes is one packet; fc1's tile j is
    4 - j hops from fc2 (128 x (4 + 3 + 2 + 1) = 1,280 hops), fc2 one from fc3 (256 hops).
    spread: fc1 on 95 tiles, fc2 on 32, fc3 on 1: 512 x 32 + 256 = 16,640 packets, 21.7 a
    spike; hops from the row-major tile coordinates."""
    from chip_support import run_mode

    net = _dense()
    spikes = _every_neuron_spikes_once(net)
    hw = load_hardware("loihi-like", {"mapping.policy": "compact"})
    m = map_network(net, hw)
    assert m.table()[col.TILES].tolist() == [4, 1, 1]
    assert all((p.spilled_bits == 0).all() for p in m.layers)
    assert m.placement("fc2").sram_bits.tolist() == [1048576]
    assert m.tile_row.tolist() == [0] * 6 and m.tile_col.tolist() == list(range(6))
    result, _ = run_mode(net, spikes, hw, 1)
    per_layer = result.layers.set_index(col.LAYER)
    assert per_layer[col.NOC_PACKETS].to_dict() == {"fc1": 512, "fc2": 256, "fc3": 0}
    assert per_layer[col.NOC_HOPS].to_dict() == {"fc1": 1280, "fc2": 256, "fc3": 0}

    spread = load_hardware("loihi-like")
    m = map_network(net, spread)
    assert m.table()[col.TILES].tolist() == [95, 32, 1]
    result, _ = run_mode(net, spikes, spread, 1)
    per_layer = result.layers.set_index(col.LAYER)
    assert per_layer[col.NOC_PACKETS].to_dict() == {"fc1": 512 * 32, "fc2": 256, "fc3": 0}
    assert per_layer[col.NOC_PACKETS].sum() / 768 == pytest.approx(21.67, abs=0.01)
    row, column = np.divmod(np.arange(128), 16)
    fc1, fc2, fc3 = np.arange(95), np.arange(95, 127), np.array([127])

    def hops(src, units, dest):
        d = (np.abs(row[src][:, None] - row[dest][None, :])
             + np.abs(column[src][:, None] - column[dest][None, :]))
        return int((units[:, None] * d).sum())

    fc1_units = np.full(95, 512 // 95) + (np.arange(95) < 512 % 95)  # 6 on the first 37
    assert per_layer[col.NOC_HOPS].to_dict() == {
        "fc1": hops(fc1, fc1_units, fc2), "fc2": hops(fc2, np.full(32, 8), fc3), "fc3": 0}


def test_compact_snakes_through_the_mesh():
    """Six one-tile layers on a 2 x 3 mesh: row 0 left to right, row 1 right to left, so each
    layer is one hop from the next (spread's row-major order puts l2 -> l3 three hops apart)."""
    net = chain([1, 1, 1, 1, 1])
    hw = tiny_hw(mesh__rows=2, mesh__cols=3, mapping__policy="compact")
    m = map_network(net, hw)
    assert list(zip(m.tile_row.tolist(), m.tile_col.tolist(), strict=True)) == [
        (0, 0), (0, 1), (0, 2), (1, 2), (1, 1), (1, 0)]
    steps = np.abs(np.diff(m.tile_row)) + np.abs(np.diff(m.tile_col))
    assert steps.tolist() == [1] * 5
    m = map_network(net, tiny_hw(mesh__rows=2, mesh__cols=3))
    assert m.tile_col.tolist() == [0, 1, 2, 0, 1, 2]
    # both modes agree on the snake, and every packet travels one hop (one spike per layer)
    spikes = _every_neuron_spikes_once(net)
    result, _ = assert_modes_equal(net, spikes, hw, 1)
    per_layer = result.layers.set_index(col.LAYER)
    assert per_layer[col.NOC_PACKETS].tolist() == [1, 1, 1, 1, 1, 0]
    assert per_layer[col.NOC_HOPS].tolist() == [1, 1, 1, 1, 1, 0]


def test_compact_dense_fast_equals_reference():
    net = _dense()
    hw = load_hardware("loihi-like", {"mapping.policy": "compact"})
    assert_modes_equal(net, _every_neuron_spikes_once(net), hw, 1)


def test_compact_takes_the_fewest_tiles_that_hold_each_layer():
    """One tile fewer for any layer spills its weights or overfills its neurons; unused
    tiles stay dark (not powered: no static energy)."""
    net = _net()
    hw = load_hardware("45nm-generic", {"mapping.policy": "compact"})
    m = map_network(net, hw)
    assert m.tiles_used < hw.mesh.tiles
    cap = hw.tile.weight_sram_capacity_bits
    counts = m.table().set_index(col.LAYER)[col.TILES].to_dict()
    for p in m.layers:
        assert (p.spilled_bits == 0).all() and (p.sram_bits <= cap).all()
        n = len(p.tiles)
        if n > 1:
            fewer = map_network(net, hw, {**counts, p.layer.name: n - 1}).placement(p.layer.name)
            assert (fewer.spilled_bits > 0).any() or fewer.neurons.max() > hw.tile.max_neurons


def test_a_chip_too_small_to_hold_the_weights_says_how_many_tiles_would():
    """The dense network needs 4 + 1 + 1 tiles of 128 KiB to keep its weights on chip; loihi-like
    has no DRAM: 6 tiles map under both policies, 5 do not, and the error says 6."""
    net = _dense()
    for policy in ("spread", "compact"):
        six = load_hardware("loihi-like", {"mesh.rows": 1, "mesh.cols": 6,
                                           "mapping.policy": policy})
        assert map_network(net, six).tiles_used == 6
        five = load_hardware("loihi-like", {"mesh.rows": 1, "mesh.cols": 5,
                                            "mapping.policy": policy})
        with pytest.raises(MappingError, match=r"'fc1'.*no DRAM.*mesh of at least 6 tiles"):
            map_network(net, five)


def test_mapping_is_a_validated_hardware_field():
    from accelsim.chip.hardware import HardwareError

    hw = load_hardware("45nm-generic", {"mapping.policy": "compact",
                                        "mapping.tiles_per_layer.conv1": 2})
    assert hw.mapping.policy == "compact" and hw.mapping.tiles_per_layer == {"conv1": 2}
    assert map_network(_net(), hw).table().set_index(col.LAYER)[col.TILES]["conv1"] == 2
    with pytest.raises(HardwareError, match=r"mapping.policy.*'spread' or 'compact'"):
        load_hardware("45nm-generic", {"mapping.policy": "dense"})
    with pytest.raises(HardwareError, match="unknown field 'polcy'"):
        load_hardware("45nm-generic", {"mapping.polcy": "compact"})


def test_spill_without_dram_is_an_error():
    with pytest.raises(MappingError, match="layer 'l0'.*no DRAM"):
        map_network(chain([8], inputs=64), load_hardware(
            "loihi-like", {"tile.weight_sram_capacity_bits": 64, "mesh.cols": 1,
                           "mesh.rows": 2}))


def test_spill_streams_rows_from_dram():
    hw = tiny_hw(tile__weight_sram_capacity_bits=100)
    m = map_network(chain([4], inputs=30), hw, {"l0": 1})
    p = m.placement("l0")
    # 30 rows of 4 weights x 8 bits = 32 bits per row: 3 rows fit in 100 bits
    assert p.projections[0].rows_in_sram.tolist() == [3]
    assert p.sram_bits.tolist() == [96] and p.spilled_bits.tolist() == [30 * 32 - 96]
    assert m.table().set_index(col.LAYER)[col.SPILLED_BYTES]["l0"] == (30 * 32 - 96) // 8


@settings(max_examples=40, deadline=None, derandomize=True)
@given(units=st.lists(st.integers(1, 12), min_size=1, max_size=4),
       inputs=st.integers(1, 20), capacity=st.integers(8, 2000), cols=st.integers(5, 8))
def test_mapping_never_exceeds_sram(units, inputs, capacity, cols):
    hw = tiny_hw(mesh__cols=cols, tile__weight_sram_capacity_bits=capacity)
    m = map_network(chain(units, inputs=inputs), hw)
    for p in m.layers:
        assert (p.sram_bits <= capacity).all()
        assert (p.sram_bits + p.spilled_bits == p.weight_bits).all()
        assert (p.spilled_bits >= 0).all()
        # whole rows only: SRAM bits are a whole number of rows
        for rows in p.projections:
            assert (rows.rows_in_sram <= rows.rows).all()
    assert m.tiles_used <= hw.mesh.tiles


def test_fixed_layers_leave_the_rest_to_the_policy():
    hw = tiny_hw(mesh__cols=8)
    m = map_network(chain([4, 6]), hw, {"l0": 3})
    counts = m.table().set_index(col.LAYER)[col.TILES].to_dict()
    assert counts["l0"] == 3 and sum(counts.values()) == 8
    with pytest.raises(MappingError, match=r"needs 10 tiles \(tiles_per_layer.*'l0' alone needs 8"):
        map_network(chain([8, 6]), hw, {"l0": 8})


def test_compact_with_a_fixed_layer_shares_what_is_left():
    """chain 4-6 on 8 tiles: compact holds l0, l1, out on one tile each; with l0 fixed at 6,
    the rest get one each (8 used); fixed at 7 the 9 tiles asked exceed the chip."""
    hw = tiny_hw(mesh__cols=8, mapping__policy="compact")
    assert map_network(chain([4, 6]), hw).table()[col.TILES].tolist() == [1, 1, 1]
    assert map_network(chain([4, 6]), hw, {"l0": 4}).table()[col.TILES].tolist() == [4, 1, 1]
    assert map_network(chain([8, 6]), hw, {"l0": 6}).table()[col.TILES].tolist() == [6, 1, 1]
    with pytest.raises(MappingError, match="needs 9 tiles"):
        map_network(chain([8, 6]), hw, {"l0": 7})
