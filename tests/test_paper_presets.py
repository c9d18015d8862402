"""The presets that hold the paper's networks at full width (the mapper decides what fits).

Weights are zeros: mapping reads only shapes, and untouched zero pages cost no memory.
"""

import numpy as np
import pytest

from accelsim.chip.hardware import load_hardware
from accelsim.chip.mapping import MappingError, map_network
from accelsim.model.architectures import build
from accelsim.model.network import Network


def paper_network(name: str, shape: tuple[int, int, int], classes: int) -> Network:
    arch = build(name, shape, classes)
    weights = {k: np.zeros(s, np.float32) for k, s in arch.weight_shapes().items()}
    return Network(name=name, architecture=arch, weights=weights, input_mean=(0.0,) * 3,
                   input_std=(1.0,) * 3)


def test_large_presets_are_the_generic_tile_and_energies():
    generic = load_hardware("45nm-generic")
    for name, tiles in (("45nm-large", 32 * 32), ("45nm-xl", 36 * 36)):
        hw = load_hardware(name)
        assert hw.mesh.tiles == tiles and hw.dram is not None and hw.dram.source
        assert hw.tile.model_dump(exclude={"source"}) == generic.tile.model_dump(
            exclude={"source"})
        assert hw.energy.model_dump(exclude={"source"}) == generic.energy.model_dump(
            exclude={"source"})
        bytes_per_s = hw.dram.bandwidth_bits_per_cycle / 8 * hw.clock.mhz * 1e6
        assert bytes_per_s == pytest.approx(4 * 12.8e9, rel=0.001)  # four DDR3-1600 channels


@pytest.mark.parametrize("name", ["vgg16", "resnet20"])
def test_cifar_networks_keep_every_weight_on_the_large_chip(name):
    mapping = map_network(paper_network(name, (3, 32, 32), 10), load_hardware("45nm-large"))
    assert int(mapping.table()["spilled_bytes"].sum()) == 0


def test_imagenet_vgg16_maps_on_the_xl_chip_and_streams_weights_from_dram():
    net = paper_network("vgg16-imagenet", (3, 224, 224), 1000)
    table = map_network(net, load_hardware("45nm-xl")).table()
    weight_bytes = sum(int(np.prod(s)) for s in net.architecture.weight_shapes().values())
    spilled = int(table["spilled_bytes"].sum())
    assert 0.5 * weight_bytes < spilled < weight_bytes


def test_cifar_vgg16_needs_more_than_one_loihi_chip():
    with pytest.raises(MappingError, match="needs .* tiles"):
        map_network(paper_network("vgg16", (3, 32, 32), 10), load_hardware("loihi-like"))
