"""Mapping: the stated policy, SRAM never exceeded, spills, and errors that say why."""

from __future__ import annotations

import numpy as np
import pytest
from chip_support import chain, tiny_hw
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim import columns as col
from accelsim.architectures import build
from accelsim.hardware import load_hardware
from accelsim.mapping import MappingError, map_network, max_tiles, partition
from accelsim.network import Architecture, Layer, Network, Projection
from accelsim.torch_snn import SpikingNetwork


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


def test_fewest_channel_groups_whose_weights_fit():
    """A 3x3 conv of 8 -> 8 channels (576 weights of 8 bits) on 4 tiles: with room for all its
    weights a tile holds all channels and a band of rows (one group); with room for a quarter,
    four groups of 2 channels on all rows; with less, the same four groups and a spill."""
    conv = Projection(source="a", op="conv", weight="b", kernel=3, padding=1)
    layers = (Layer(name="a", kind="spiking", shape=(8, 8, 8), inputs=(
                  Projection(source="input", op="conv", weight="a"),)),
              Layer(name="b", kind="spiking", shape=(8, 8, 8), inputs=(conv,)),
              Layer(name="out", kind="output", shape=(1,), inputs=(
                  Projection(source="b", op="linear", weight="o"),)))
    net = Network(architecture=Architecture(name="g", input_shape=(1, 8, 8), num_classes=1,
                                            layers=layers),
                  weights={"a": np.ones((8, 1, 1, 1), np.float32),
                           "b": np.ones((8, 8, 3, 3), np.float32),
                           "o": np.ones((1, 512), np.float32)},
                  input_mean=(0.0,), input_std=(1.0,))
    counts = {"a": 1, "b": 4, "out": 1}
    for capacity, channels, rows in ((4608, 8, 2), (1152, 2, 8), (1000, 2, 8)):
        hw = tiny_hw(mesh__cols=6, tile__weight_sram_capacity_bits=capacity)
        p = map_network(net, hw, counts).placement("b")
        assert (p.channels == channels).all() and (p.row_end - p.row_start == rows).all()
        assert (p.spilled_bits > 0).any() == (capacity < 1152)
    # 64 neurons per tile at most, 8 tiles: all 8 channels, one row each
    hw = tiny_hw(mesh__rows=3, mesh__cols=6, tile__max_neurons=64)
    p = map_network(net, hw, {"a": 8, "b": 8, "out": 1}).placement("b")
    assert (p.channels == 8).all() and (p.row_end - p.row_start == 1).all()


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
