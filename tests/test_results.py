"""Result folders and breakdowns: hand-computed golden cases and a Pareto property test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.workflow import columns as C
from accelsim.workflow import results as R


def _layers() -> pd.DataFrame:
    """2 images x 2 layers (a, out) x 2 timesteps with round numbers."""
    rows = []
    for image in (0, 1):
        for layer, neurons in (("a", 4), ("out", 2)):
            for t in (1, 2):
                row = {C.IMAGE: image, C.LAYER: layer, C.TIMESTEP: t, C.NEURONS: neurons,
                       C.SPIKES_OUT: (image + t) if layer == "a" else 0,
                       C.CYCLES: 10 * t + image, C.DRAM_READ_BYTES: 8,
                       C.COMPUTE_ONLY_SNN: 1e6,
                       # the chip charges the ANN estimate once, on timestep-1 rows
                       C.COMPUTE_ONLY_ANN: 4e6 if t == 1 else 0.0}
                for col in C.ENERGY_COLUMNS:
                    row[col] = 0.0
                row["energy_accumulate_pj"] = 1e6 * (2 if layer == "a" else 1)
                row["energy_dram_pj"] = 5e5
                rows.append(row)
    return pd.DataFrame(rows)


def _images() -> pd.DataFrame:
    return pd.DataFrame({C.IMAGE: [0, 1], C.PREDICTION: [3, 4], C.LABEL: [3, 5],
                         C.CORRECT: [True, False], C.TOTAL_CYCLES: [100, 140],
                         C.LATENCY_US: [0.2, 0.28], C.ENERGY_UJ: [9.0, 9.0]})


@pytest.fixture()
def run_dir(tmp_path):
    layers, images = _layers(), _images()
    tables = {"layers": layers, "images": images,
              "mapping": pd.DataFrame({C.LAYER: ["a", "out"], C.TILE: [0, 1]}),
              "summary": R.summarise(layers, images, timesteps=2)}
    return R.write_run(tmp_path / "run", tables, {"model": "m"}, {"key": "k"})


def test_summary_is_per_inference(run_dir):
    row = R.load(run_dir).summary.iloc[0]
    assert row[C.ACCURACY] == 0.5 and row[C.NUM_IMAGES] == 2
    assert row[C.LATENCY_CYCLES] == 120 and row[C.LATENCY_US] == pytest.approx(0.24)
    assert row[C.ENERGY_UJ] == 9.0 and row[C.EDP] == pytest.approx(9.0 * 0.24)
    # 8 rows of 1e6 pJ over 2 images = 4 µJ per inference; ANN: 4 timestep-1 rows of 4e6 pJ
    assert row[C.COMPUTE_ONLY_SNN_UJ] == 4.0 and row[C.COMPUTE_ONLY_ANN_UJ] == 8.0
    assert row[C.FULL_TO_COMPUTE_ONLY] == pytest.approx(9.0 / 4.0)
    # spikes of layer a: image 0 -> 1 + 2, image 1 -> 2 + 3; mean 4
    assert row[C.SPIKES] == 4.0 and row[C.DRAM_BYTES] == 32.0
    assert row["energy_accumulate_uj"] == 6.0 and row["energy_dram_uj"] == 2.0


def test_round_trip_keeps_tables_and_adds_the_point_column(run_dir):
    res = R.load(run_dir)
    assert not res.is_sweep and list(res.summary[C.POINT]) == [0]
    pd.testing.assert_frame_equal(res.layers.drop(columns=C.POINT), _layers())
    assert res.scenarios == ({"model": "m"},) and res.meta[0]["key"] == "k"
    assert res.meta[0]["status"] == R.COMPLETE
    assert set(res.meta[0]["files"]) == {f"{t}.{s}" for t in ("layers", "images", "mapping",
                                                               "summary") for s in ("parquet",
                                                                                    "csv")} \
        | {"scenario.yaml"}
    assert (run_dir / "layers.csv").is_file() and not list(run_dir.parent.glob(".tmp-*"))


def test_energy_by_layer(run_dir):
    table = R.energy_by_layer(R.load(run_dir))
    assert list(table.index) == ["a", "out"]
    # 2 images x 2 timesteps x 2e6 pJ, per image: 4 µJ
    assert table.loc["a", "energy_accumulate_uj"] == 4.0
    assert table.loc["out", "energy_accumulate_uj"] == 2.0
    assert table.loc["a", "energy_dram_uj"] == 1.0
    assert table.loc["a", C.COMPUTE_ONLY_SNN_UJ] == 2.0


def test_latency_and_spike_rates_and_ratio(run_dir):
    res = R.load(run_dir)
    lat = R.latency_by_layer(res)
    assert lat.loc["a", 1] == 10.5 and lat.loc["out", 2] == 20.5
    # cycles are per-timestep durations: image 0 finishes at 10 + 20, image 1 at 11 + 21
    finish = R.layer_finish_cycles(res)
    assert list(finish.index) == ["a", "out"] and finish["a"] == 31.0
    assert finish.to_numpy() == pytest.approx(lat.sum(axis=1).to_numpy())
    rates = R.spike_rates(res)
    assert list(rates.index) == ["a"]  # the output layer does not spike
    assert rates["a"] == pytest.approx(((1 + 2) / 4 + (2 + 3) / 4) / 2)
    ratio = R.compute_only_ratio(res)
    assert ratio["a"] == pytest.approx(2.5) and ratio["out"] == pytest.approx(1.5)
    assert ratio["total"] == pytest.approx(4.0 / 2.0)


def test_load_refuses_a_foreign_folder(tmp_path):
    with pytest.raises(R.ResultsError, match="holds no accelsim results"):
        R.load(tmp_path)


def test_rewriting_a_run_replaces_it_whole(run_dir):
    R.write_run(run_dir, {"layers": _layers().head(4), "images": _images(),
                          "mapping": pd.DataFrame({C.LAYER: ["a"]}),
                          "summary": R.summarise(_layers(), _images(), 2)}, {}, {"key": "k2"},
                csv=False)
    meta = R.read_meta(run_dir)
    assert meta["key"] == "k2" and "layers.csv" not in meta["files"]
    assert not (run_dir / "layers.csv").exists()
    assert [p.name for p in run_dir.parent.iterdir()] == ["run"]


def test_pareto_front_golden():
    energy = np.array([1.0, 2.0, 3.0, 1.0, 2.5])
    latency = np.array([5.0, 2.0, 1.0, 6.0, 2.5])
    assert R.pareto_front(energy, latency).tolist() == [True, True, True, False, False]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=1, max_size=12))
def test_pareto_front_property(points):
    energy = np.array([p[0] for p in points], float)
    latency = np.array([p[1] for p in points], float)
    front = R.pareto_front(energy, latency)
    assert front.any()  # the minimum-energy, then minimum-latency point is never dominated
    for i in range(len(points)):
        beaten = any(energy[j] <= energy[i] and latency[j] <= latency[i]
                     and (energy[j], latency[j]) != (energy[i], latency[i])
                     for j in range(len(points)))
        assert front[i] == (not beaten)


def test_format_summary_of_a_run_reads_as_labelled_lines(run_dir):
    text = R.format_summary(R.load(run_dir))
    assert "accuracy                    50.00 % (1 / 2)" in text
    assert "120 cycles = 0.24 µs" in text
    assert "energy per inference        9 µJ" in text
    assert "SNN 4 µJ, ANN 8 µJ" in text and "2.25x" in text
    # accumulate 6 µJ of 9 is the largest component, then DRAM 2 µJ
    assert "accumulate 6 µJ (67%), DRAM 2 µJ (22%)" in text
