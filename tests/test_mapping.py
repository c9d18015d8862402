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
from accelsim.network import Layer, Network, Projection
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
        assert p.channels.sum() == p.layer.shape[0]
        assert p.channels.max() - p.channels.min() <= 1
        assert p.neurons.sum() == p.layer.neurons
        np.testing.assert_array_equal(p.neurons, p.channels * p.layer.neurons
                                      // p.layer.shape[0])


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
    assert (p.neurons % 32 == 0).all() and (p.channels == 1).all()  # whole rows of one channel
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


@settings(max_examples=60, deadline=None, derandomize=True)
@given(c=st.integers(1, 5), h=st.integers(1, 7), w=st.integers(1, 4), data=st.data())
def test_partition_is_whole_rows_balanced(c, h, w, data):
    """Any tile count from 1 to one row per tile: contiguous whole-row blocks that cover the
    layer once; by channel up to C tiles, else bands of one channel differing by <= 1 row."""
    layer = Layer(name="x", kind="spiking", shape=(c, h, w), inputs=(
        Projection(source="input", op="conv", weight="x", kernel=1),))
    n = data.draw(st.integers(1, max_tiles(layer)))
    start, channels = partition(layer, n)
    assert start[0] == 0 and start[-1] == c * h * w and (np.diff(start) > 0).all()
    assert (start % w == 0).all() and len(channels) == n
    first, last = start[:-1] // (h * w), (start[1:] - 1) // (h * w)
    np.testing.assert_array_equal(channels, last - first + 1)
    rows = np.diff(start) // w
    if n <= c:
        assert (rows % h == 0).all() and np.ptp(channels) <= 1
    else:
        assert (channels == 1).all()
        for ch in range(c):
            mine = rows[first == ch]
            assert mine.sum() == h and np.ptp(mine) <= 1
        assert np.ptp(np.bincount(first)) <= 1  # bands per channel differ by <= 1


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
