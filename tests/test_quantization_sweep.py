"""Quantization through a sweep: each point of a fixed-point sweep (weight widths of the
arithmetic and of the tile advancing together, run by the real chip on the serial scheduler)
equals a direct ``simulate`` with that point's :class:`Quantization` and hardware."""

from __future__ import annotations

import numpy as np
import pytest
from scenario_support import save_tiny_model, write_scenario

import accelsim
from accelsim.model.data import load_images, normalise
from accelsim.spiking.quantize import Quantization

SCENARIO = """\
name: q
model: tiny
data: {images: 3}
hardware:
  preset: 45nm-generic
  overrides: {tile.membrane_bits: 24}
simulation:
  arithmetic: fixed
  timesteps: 2
  quantization: {membrane_bits: 24}
sweep:
  zip:
    simulation.quantization.weight_bits: [3, 8]
    hardware.overrides.tile.weight_bits: [3, 8]
"""


def test_each_sweep_point_runs_its_own_quantization(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    model = save_tiny_model(tmp_path / "trained_models")
    path = write_scenario(tmp_path, SCENARIO)
    report = accelsim.run_scenario(path, out=tmp_path / "out", scheduler="serial",
                                   progress=False)
    results = accelsim.workflow.results.load(report.folder)
    net = accelsim.load_model(model)
    split_seed = accelsim.read_manifest(model).dataset.split_seed
    split = load_images("digits", "test", size=8, seed=split_seed)
    energies = []
    for point, bits in enumerate((3, 8)):
        rows = results.images[results.images["point"] == point].sort_values("image")
        index = rows["dataset_index"].to_numpy()
        x = normalise(split.images[index], net.input_mean, net.input_std)
        hw = accelsim.load_hardware("45nm-generic", {"tile.membrane_bits": 24,
                                                     "tile.weight_bits": bits})
        direct = accelsim.simulate(net, x, split.labels[index], hw, timesteps=2,
                                   arithmetic="fixed",
                                   quantization=Quantization(weight_bits=bits, membrane_bits=24))
        np.testing.assert_array_equal(rows["prediction"], direct.images["prediction"])
        np.testing.assert_allclose(rows["energy_uj"], direct.images["energy_uj"], rtol=1e-12)
        energies.append(rows["energy_uj"].sum())
    assert energies[0] < energies[1]  # narrower weights read fewer SRAM bits



def test_a_width_the_tile_cannot_store_is_refused_before_simulating(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    save_tiny_model(tmp_path / "trained_models")
    path = write_scenario(tmp_path, SCENARIO.replace("[3, 8]\n    hardware", "[3, 12]\n    "
                                                                             "hardware"))
    with pytest.raises(ValueError) as info:
        accelsim.run_scenario(path, out=tmp_path / "out", scheduler="serial", progress=False)
    assert str(info.value) == (
        f"{path}:10: simulation.quantization: quantization.weight_bits = 12 does not fit the "
        "tile's weight_bits = 8; set hardware.overrides.tile.weight_bits: 12 or lower "
        "quantization.weight_bits to at most 8 (sweep point "
        "simulation.quantization.weight_bits=12)")
    assert not (tmp_path / "out").exists()
