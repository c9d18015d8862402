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
from accelsim.mapping import MappingError, map_network
from accelsim.network import Network
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
        sizes = np.diff(p.block_start)
        assert sizes.sum() == (p.layer.shape[0]) and sizes.max() - sizes.min() <= 1
        assert p.neurons.sum() == p.layer.neurons


def test_explicit_tiles_per_layer():
    m = map_network(chain([4, 2]), tiny_hw(mesh__cols=4), {"l0": 2, "l1": 1, "out": 1})
    assert m.table()[col.TILES].tolist() == [2, 1, 1]
    with pytest.raises(MappingError, match="'nope'"):
        map_network(chain([4]), tiny_hw(), {"nope": 1})
    with pytest.raises(MappingError, match=r"tiles_per_layer\['l0'\] = 5.*4 channels"):
        map_network(chain([4]), tiny_hw(), {"l0": 5})


def test_more_layers_than_tiles():
    with pytest.raises(MappingError, match="4 layers.*2 tiles"):
        map_network(chain([2, 2, 2]), tiny_hw(mesh__cols=2))


def test_neurons_over_the_limit():
    with pytest.raises(MappingError, match="conv1.*1024 neurons.*max_neurons=100"):
        map_network(_net(shape=(1, 32, 32)), load_hardware(
            "45nm-generic", {"tile.max_neurons": 100}))


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
