"""The Python API refuses a wrong argument at the call, with a TypeError or ValueError that says
what to pass, instead of truncating it or failing deep inside."""

from __future__ import annotations

import numpy as np
import pytest
from chip_support import tiny_hw

import accelsim
from accelsim.model.architectures import build
from accelsim.model.network import Network
from accelsim.spiking.quantize import Quantization, check_tile

HW = tiny_hw(mesh__rows=4, mesh__cols=4)


@pytest.fixture(scope="module")
def net() -> Network:
    arch = build("vgg5", (1, 8, 8), 10, width=1 / 16)
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(0, 0.5, v).astype(np.float32)
               for k, v in arch.weight_shapes().items()}
    return Network(name="tiny", architecture=arch, weights=weights, timesteps=3,
                   input_mean=(0.0,), input_std=(1.0,))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1, (2, 1, 8, 8))


@pytest.mark.parametrize(("timesteps", "error"), [
    (2.7, TypeError), (True, TypeError), (2.0, TypeError), ("3", TypeError), (0, ValueError),
    (-1, ValueError),
])
def test_timesteps_must_be_a_positive_whole_number(net, images, timesteps, error):
    with pytest.raises(error, match="timesteps must be"):
        accelsim.run(net, images, timesteps=timesteps)
    with pytest.raises(error, match="timesteps must be"):
        accelsim.simulate(net, images, hardware=HW, timesteps=timesteps)


def test_numpy_integer_timesteps_are_accepted(net, images):
    a = accelsim.run(net, images, timesteps=np.int64(2))
    b = accelsim.run(net, images, timesteps=2)
    np.testing.assert_array_equal(a.output, b.output)
    assert a.counts["timestep"].max() == 2


@pytest.mark.parametrize(("labels", "message"), [
    ([1.7, 2.0], "whole class indices"),
    ([True, False], "whole class indices"),
    (["1", "2"], "whole class indices"),
    ([0, 10], "label 10 .image 1. is outside 0..9"),
    ([-1, 0], "label -1 .image 0. is outside 0..9"),
    ([0, 1, 2], r"expected \(2,\), one per image"),
])
def test_labels_must_be_class_indices(net, images, labels, message):
    with pytest.raises(ValueError, match=message):
        accelsim.simulate(net, images, labels, hardware=HW)


def test_whole_float_labels_are_class_indices(net, images):
    res = accelsim.simulate(net, images, np.array([3.0, 4.0]), hardware=HW)
    assert res.images["label"].tolist() == [3, 4]


@pytest.mark.parametrize("hardware", [None, 45, {"tile": {}}])
def test_hardware_must_be_a_hardware_a_preset_or_a_path(net, images, hardware):
    with pytest.raises(TypeError, match="hardware must be an accelsim.Hardware, a preset name"):
        accelsim.simulate(net, images, hardware=hardware)


def test_quantization_mapping_is_validated_as_the_model(net, images):
    as_dict = accelsim.run(net, images, arithmetic="fixed", quantization={"weight_bits": 6})
    as_model = accelsim.run(net, images, arithmetic="fixed",
                            quantization=Quantization(weight_bits=6))
    np.testing.assert_array_equal(as_dict.output, as_model.output)
    with pytest.raises(ValueError, match="weight_bits"):
        accelsim.run(net, images, arithmetic="fixed", quantization={"weight_bits": 1})
    with pytest.raises(ValueError, match="weigth_bits"):
        accelsim.run(net, images, arithmetic="fixed", quantization={"weigth_bits": 6})
    with pytest.raises(TypeError, match="must be an accelsim.spiking.quantize.Quantization"):
        accelsim.run(net, images, arithmetic="fixed", quantization=8)
    with pytest.raises(ValueError, match="only used with arithmetic='fixed'"):
        accelsim.simulate(net, images, hardware=HW, quantization={"weight_bits": 6})


def test_quantization_must_fit_the_tile(net, images):
    hw = tiny_hw(mesh__rows=4, mesh__cols=4, tile__weight_bits=8, tile__membrane_bits=24)
    check_tile(Quantization(weight_bits=8, membrane_bits=24), hw.tile)
    check_tile(Quantization(weight_bits=4, membrane_bits=16), hw.tile)  # narrower values fit
    with pytest.raises(ValueError, match="quantization.weight_bits = 12 does not fit the tile's "
                                         "weight_bits = 8; set hardware.overrides.tile."
                                         "weight_bits: 12"):
        accelsim.simulate(net, images, hardware=hw, arithmetic="fixed",
                          quantization={"weight_bits": 12})
    with pytest.raises(ValueError, match="membrane_bits = 32 does not fit"):
        accelsim.simulate(net, images, hardware=hw, arithmetic="fixed",
                          quantization={"membrane_bits": 32})
    res = accelsim.simulate(net, images, hardware=hw, arithmetic="fixed",
                            quantization={"weight_bits": 8, "membrane_bits": 24})
    fixed = accelsim.run(net, images, arithmetic="fixed",
                         quantization=Quantization(weight_bits=8, membrane_bits=24))
    np.testing.assert_array_equal(res.images["prediction"], fixed.predictions)
