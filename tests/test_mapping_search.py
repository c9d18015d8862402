"""The mapping search: its choice is what a plain simulation of the chosen mapping measures,
never worse than the default, deterministic, and wired into scenarios."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from accelsim.chip.hardware import load_hardware
from accelsim.chip.mapping import map_network
from accelsim.chip.mapping_search import SearchSpec, search
from accelsim.chip.simulation import simulate
from accelsim.model.architectures import build
from accelsim.model.network import Network
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.workflow import columns as col


def _net() -> Network:
    arch = build("vgg5", (1, 16, 16), 10, width=0.25)
    return Network(architecture=arch, weights=SpikingNetwork(arch, seed=0).weight_arrays(),
                   input_mean=(0.0,), input_std=(1.0,), timesteps=2)


def _images(n: int = 2) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 1, 16, 16)).astype(np.float32)


@pytest.mark.parametrize("objective", ["energy", "latency", "edp"])
def test_the_choice_is_what_simulating_it_measures(objective):
    net, images = _net(), _images()
    hw = load_hardware("45nm-generic", {"mesh.rows": 4, "mesh.cols": 4})
    found = search(net, images, hw, objective=objective, rounds=1)
    table = found.candidates
    # the first candidate is the hardware's own mapping; each row's objective is its figures'
    assert table["policy"].iloc[0] == "spread"
    expect = {"energy": table[col.ENERGY_UJ], "latency": table[col.LATENCY_US],
              "edp": table[col.ENERGY_UJ] * table[col.LATENCY_US]}[objective]
    np.testing.assert_allclose(table["objective"], expect, rtol=1e-12)
    assert found.default == table["objective"].iloc[0]
    assert found.best == table["objective"].min() <= found.default
    assert found.gain == pytest.approx(1 - found.best / found.default)
    assert table["chosen"].sum() == 1
    # both policies were tried, and no mapping twice
    assert {"spread", "compact"} <= set(table["policy"])
    assert not table.duplicated(["policy", "tiles"]).any()
    # a plain simulation with the chosen hardware measures exactly the chosen figures
    result = simulate(net, images, hardware=found.hardware)
    row = table[table["chosen"]].iloc[0]
    assert result.images[col.ENERGY_UJ].mean() == pytest.approx(row[col.ENERGY_UJ], rel=1e-12)
    assert result.images[col.LATENCY_US].mean() == pytest.approx(row[col.LATENCY_US], rel=1e-12)
    tiles = " ".join(f"{k}:{v}" for k, v in zip(
        result.mapping[col.LAYER], result.mapping[col.TILES], strict=True))
    assert tiles == row["tiles"] == found.tiles
    assert found.policy == row["policy"] == found.hardware.mapping.policy
    # deterministic
    again = search(net, images, hw, objective=objective, rounds=1)
    assert again.hardware == found.hardware and again.best == found.best


def test_rounds_zero_compares_the_policies_only():
    net, images = _net(), _images(1)
    hw = load_hardware("45nm-generic", {"mesh.rows": 4, "mesh.cols": 4})
    found = search(net, images, hw, objective="energy", rounds=0)
    counts = {p: [len(q.tiles) for q in map_network(net, hw.model_copy(update={
        "mapping": hw.mapping.model_copy(update={"policy": p})})).layers]
        for p in ("spread", "compact")}
    assert len(found.candidates) == len({tuple(v) for v in counts.values()})
    assert found.hardware.mapping.tiles_per_layer == {}


def test_search_spec_is_validated():
    with pytest.raises(ValidationError, match="objective"):
        SearchSpec(objective="power")
    with pytest.raises(ValidationError, match="images"):
        SearchSpec(images=0)
    with pytest.raises(ValueError, match="objective must be one of"):
        search(_net(), _images(1), load_hardware("45nm-generic"), objective="power")


def test_a_scenario_simulates_the_choice_and_reports_it(tmp_path, monkeypatch):
    from scenario_support import save_tiny_model, write_scenario

    from accelsim.workflow import results as R
    from accelsim.workflow import runner

    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    save_tiny_model(tmp_path / "trained_models")
    path = write_scenario(tmp_path, "name: searched\nmodel: tiny\ndata: {images: 3}\n"
                          "hardware: {overrides: {mesh.rows: 3, mesh.cols: 3}}\n"
                          "mapping_search: {objective: latency, images: 2, rounds: 1}\n")
    res = R.load(runner.run(path, scheduler=runner.SERIAL, progress=False).folder)
    row = res.summary.iloc[0]
    assert row[col.SEARCH_OBJECTIVE] == "latency"
    assert row[col.MAPPING_POLICY] in ("spread", "compact")
    assert row[col.SEARCH_BEST] <= row[col.SEARCH_DEFAULT]
    assert row[col.SEARCH_GAIN] == pytest.approx(1 - row[col.SEARCH_BEST] / row[col.SEARCH_DEFAULT])
    # the run simulated the chosen mapping
    assert row[col.MAPPING_TILES] == " ".join(f"{k}:{v}" for k, v in zip(
        res.mapping[col.LAYER], res.mapping[col.TILES], strict=True))
    # the search's sample is the run's first 2 images: its latency is theirs
    first = res.images[res.images[col.IMAGE] < 2][col.LATENCY_US].mean()
    assert row[col.SEARCH_BEST] == pytest.approx(first, rel=1e-12)
    assert "mapping (searched)" in R.format_summary(res)
