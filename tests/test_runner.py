"""Running scenarios: batches, caching, resuming an interrupted sweep, Dask vs serial."""

from __future__ import annotations

import pandas as pd
import pytest
from scenario_support import save_tiny_model, use_fake_chip, write_scenario

from accelsim.workflow import columns as C
from accelsim.workflow import results as R
from accelsim.workflow import runner

SWEEP = """\
name: sweep
model: tiny
data: {images: 12}
execution: {batch_images: 5}
sweep:
  grid:
    hardware.overrides.tile.accumulate_units: [1, 2]
    simulation.timesteps: [1, 2]
"""


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    calls = use_fake_chip(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    save_tiny_model(tmp_path / "trained_models")
    return tmp_path, calls


def _tables(folder):
    res = R.load(folder)
    drop = [C.KEY]
    return {"summary": res.summary.drop(columns=drop), "layers": res.layers,
            "images": res.images, "mapping": res.mapping}


def _assert_same(a, b):
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


def test_single_run_writes_every_table_and_the_resolved_scenario(workdir):
    tmp, calls = workdir
    path = write_scenario(tmp, "name: one\nmodel: tiny\ndata: {images: 7}\n"
                               "execution: {batch_images: 3}\n")
    report = runner.run(path, scheduler=runner.SERIAL, progress=False)
    assert report.folder == tmp / "results" / "one" and report.simulated == 1
    assert calls == [3, 3, 1]  # batches of 3 images
    names = {p.name for p in report.folder.iterdir()}
    for table in ("layers", "images", "mapping", "summary"):
        assert {f"{table}.parquet", f"{table}.csv"} <= names
    assert {"scenario.yaml", "run.json"} <= names
    res = R.load(report.folder)
    assert list(res.images[C.IMAGE]) == list(range(7))
    # the per-image index into the split is recorded and the draw has no repeats
    assert res.images[runner.DATASET_INDEX].nunique() == 7
    assert res.scenarios[0]["simulation"]["timesteps"] == 3
    assert res.meta[0]["versions"]["accelsim"]
    # the summary agrees with the tables it summarises
    row = res.summary.iloc[0]
    assert row[C.ACCURACY] == pytest.approx(res.images[C.CORRECT].mean())
    assert row[C.EDP] == pytest.approx(row[C.ENERGY_UJ] * row[C.LATENCY_US])


def test_batch_size_does_not_change_the_tables(workdir):
    tmp, _ = workdir
    path = write_scenario(tmp, SWEEP)
    runner.run(path, out=tmp / "a", scheduler=runner.SERIAL, progress=False)
    runner.run(path, out=tmp / "b", scheduler=runner.SERIAL, progress=False,
               settings={"execution.batch_images": 12})
    _assert_same(_tables(tmp / "a"), _tables(tmp / "b"))


def test_rerun_skips_finished_points_and_changed_points_rerun(workdir):
    tmp, calls = workdir
    path = write_scenario(tmp, SWEEP)
    first = runner.run(path, out=tmp / "out", scheduler=runner.SERIAL, progress=False)
    assert (first.simulated, first.cached) == (4, 0)
    n = len(calls)
    again = runner.run(path, out=tmp / "out", scheduler=runner.SERIAL, progress=False)
    assert (again.simulated, again.cached) == (0, 4) and len(calls) == n
    more = runner.run(path, out=tmp / "out", scheduler=runner.SERIAL, progress=False,
                      settings={"sweep.grid.simulation.timesteps": [1, 2, 3]})
    assert (more.simulated, more.cached) == (2, 4)
    assert len(R.load(tmp / "out").summary) == 6


def test_interrupted_sweep_resumes_with_nothing_lost(workdir, monkeypatch):
    tmp, calls = workdir
    path = write_scenario(tmp, SWEEP)
    runner.run(path, out=tmp / "clean", scheduler=runner.SERIAL, progress=False)

    real = runner._simulate
    seen = []

    def dies_midway(*args, **kwargs):
        seen.append(1)
        if len(seen) == 7:  # third batch of the third point (3 batches per point)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_simulate", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        runner.run(path, out=tmp / "resumed", scheduler=runner.SERIAL, progress=False)
    points = tmp / "resumed" / R.POINTS_DIR
    assert len([p for p in points.iterdir() if not p.name.startswith(".")]) == 2
    assert not (tmp / "resumed" / "sweep.parquet").exists()
    monkeypatch.setattr(runner, "_simulate", real)
    report = runner.run(path, out=tmp / "resumed", scheduler=runner.SERIAL, progress=False)
    assert (report.simulated, report.cached) == (2, 2)
    assert not [p for p in points.iterdir() if p.name.startswith((".tmp-", ".old-"))]
    _assert_same(_tables(tmp / "clean"), _tables(tmp / "resumed"))


def test_a_failed_write_leaves_no_half_written_point(workdir, monkeypatch):
    tmp, _ = workdir
    path = write_scenario(tmp, SWEEP)

    def broken(df, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        runner.run(path, out=tmp / "out", scheduler=runner.SERIAL, progress=False)
    assert list((tmp / "out" / R.POINTS_DIR).iterdir()) == []


def test_dask_local_cluster_gives_the_serial_tables(workdir):
    from dask.distributed import Client, LocalCluster

    tmp, _ = workdir
    path = write_scenario(tmp, SWEEP)
    runner.run(path, out=tmp / "serial", scheduler=runner.SERIAL, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        report = runner.run(path, out=tmp / "dask", client=client, progress=False)
    assert report.simulated == 4
    _assert_same(_tables(tmp / "serial"), _tables(tmp / "dask"))


def test_output_folder_with_foreign_files_is_refused(workdir):
    tmp, _ = workdir
    path = write_scenario(tmp, SWEEP)
    (tmp / "busy").mkdir()
    (tmp / "busy" / "thesis.tex").write_text("precious")
    with pytest.raises(R.ResultsError, match=r"did not write \(thesis.tex\)"):
        runner.run(path, out=tmp / "busy", scheduler=runner.SERIAL, progress=False)
    assert (tmp / "busy" / "thesis.tex").read_text() == "precious"


def test_real_chip_sweep_on_dask_matches_serial(tmp_path, monkeypatch):
    """End to end through accelsim.chip.simulation.simulate (no stand-in): per-tile tables
    included."""
    from dask.distributed import Client, LocalCluster

    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    save_tiny_model(tmp_path / "trained_models")
    path = write_scenario(tmp_path, SWEEP.replace("images: 12", "images: 6")
                          + "simulation: {per_tile: true}\n")
    runner.run(path, out=tmp_path / "serial", scheduler=runner.SERIAL, progress=False)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        runner.run(path, out=tmp_path / "dask", client=client, progress=False)
    a, b = R.load(tmp_path / "serial"), R.load(tmp_path / "dask")
    _assert_same(_tables(tmp_path / "serial"), _tables(tmp_path / "dask"))
    pd.testing.assert_frame_equal(a.tiles, b.tiles)
    assert len(a.tiles) > 0 and set(a.tiles[C.IMAGE]) == set(range(6))
    # more accumulate units never make an inference slower
    s = a.summary.sort_values(["simulation.timesteps", "hardware.overrides.tile.accumulate_units"])
    for _, g in s.groupby("simulation.timesteps"):
        assert g[C.LATENCY_CYCLES].is_monotonic_decreasing
