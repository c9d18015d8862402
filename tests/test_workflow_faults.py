"""Fault injection on the run workflow: user files in a result folder, a corrupt cache, Ctrl-C,
SIGKILL, wrong Dask addresses, bad inputs. Every failure must be one clear line (exit code 2,
130 for Ctrl-C), never a traceback, and must leave every file that accelsim did not write as
it was."""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from scenario_support import write_scenario
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.workflow import columns as C
from accelsim.workflow import execution as E
from accelsim.workflow import results as R
from accelsim.workflow import runner

TESTS = Path(__file__).resolve().parent

SWEEP = """\
name: sweep
model: tiny
data: {images: 6}
execution: {batch_images: 3}
sweep:
  grid:
    hardware.overrides.tile.accumulate_units: [1, 2]
    simulation.timesteps: [1, 2]
"""

ONE = "name: one\nmodel: tiny\ndata: {images: 4}\n"


def _cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def _snapshot(root: Path, skip: Path | None = None) -> dict[str, str]:
    """sha256 of every file under ``root`` (except under ``skip``)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not (skip is not None and p.is_relative_to(skip)):
            out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _assert_user_error(result, *needles: str, code: int = 2) -> None:
    """Exit ``code``, no traceback, and a message that names every needle."""
    text = result.output
    assert result.exit_code == code, text
    assert "Traceback" not in text, text
    assert result.exception is None or isinstance(result.exception, SystemExit), text
    for needle in needles:
        assert needle in text, (needle, text)


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    res = R.load(folder)
    return {"summary": res.summary.drop(columns=[C.KEY]), "layers": res.layers,
            "images": res.images, "mapping": res.mapping}


def _assert_same(a, b) -> None:
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)


# -- 1. never delete what accelsim did not write -----------------------------------------


def test_a_rerun_refuses_to_replace_a_folder_holding_user_files(workdir):
    path = write_scenario(workdir, ONE)
    out = workdir / "res"
    first = _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet", "--no-plots")
    assert first.exit_code == 0, first.output
    (out / "summary.md").write_text("my notes")
    (out / "figures").mkdir()
    (out / "figures" / "my-poster.png").write_bytes(b"poster")
    before = _snapshot(workdir)
    result = _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet",
                  "--set", "simulation.timesteps=2")
    _assert_user_error(result, "did not write", "summary.md", "figures/my-poster.png",
                       "--out")
    assert _snapshot(workdir) == before


def test_a_rerun_replaces_what_accelsim_wrote_including_its_figures(workdir):
    path = write_scenario(workdir, ONE)
    out = workdir / "res"
    assert _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet").exit_code == 0
    changed = _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet",
                   "--set", "simulation.timesteps=2", "--no-plots")
    assert changed.exit_code == 0, changed.output
    assert R.load(out).summary[C.TIMESTEPS].iloc[0] == 2
    assert not (out / "figures").exists()  # the old figures described the old run


def test_plot_refuses_to_overwrite_a_user_figure(workdir):
    path = write_scenario(workdir, ONE)
    out = workdir / "res"
    assert _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet",
                "--no-plots").exit_code == 0
    (out / "figures").mkdir()
    (out / "figures" / "latency.png").write_bytes(b"mine")
    result = _cli("plot", out)
    _assert_user_error(result, "figures/latency.png", "did not write")
    assert (out / "figures" / "latency.png").read_bytes() == b"mine"


def test_a_sweep_refuses_user_files_in_a_point_folder(workdir):
    path = write_scenario(workdir, SWEEP)
    out = workdir / "res"
    runner.run(path, out=out, scheduler=runner.SERIAL, progress=False)
    point = next((out / R.POINTS_DIR).iterdir())
    (point / "notes.txt").write_text("mine")
    (out / R.POINTS_DIR / "mine").mkdir()
    with pytest.raises(R.ResultsError, match="did not write") as err:
        runner.run(path, out=out, scheduler=runner.SERIAL, progress=False)
    assert f"points/{point.name}/notes.txt" in str(err.value) and "points/mine" in str(err.value)
    assert (point / "notes.txt").read_text() == "mine"


def test_a_folder_from_before_manifests_owns_only_the_names_accelsim_writes(workdir):
    import json

    path = write_scenario(workdir, SWEEP)
    out = workdir / "res"
    runner.run(path, out=out, scheduler=runner.SERIAL, progress=False)
    for meta_path in out.rglob(R.RUN_FILE):  # as written before run.json listed its files
        meta = json.loads(meta_path.read_text())
        meta_path.write_text(json.dumps({k: v for k, v in meta.items()
                                         if k not in ("files", "status", "kind")}))
    _assert_user_error(_cli("report", out), "older accelsim", "re-run")
    (out / "sweep.md").write_text("mine")  # the old rule took any file with a table's stem
    with pytest.raises(R.ResultsError, match=r"did not write \(sweep.md\)"):
        runner.run(path, out=out, scheduler=runner.SERIAL, progress=False)
    (out / "sweep.md").unlink()
    again = runner.run(path, out=out, scheduler=runner.SERIAL, progress=False)
    assert (again.simulated, again.cached) == (4, 0)  # nothing unchecked is trusted
    assert len(R.load(out).summary) == 4


# -- 2. a corrupt cache is detected and recomputed ----------------------------------------


def test_a_corrupt_cached_table_is_reported_and_recomputed(workdir, capsys):
    path = write_scenario(workdir, SWEEP)
    runner.run(path, out=workdir / "clean", scheduler=runner.SERIAL, progress=False)
    out = workdir / "res"
    runner.run(path, out=out, scheduler=runner.SERIAL, progress=False)
    victim = sorted((out / R.POINTS_DIR).iterdir())[1] / "layers.parquet"
    victim.write_bytes(b"\0" * victim.stat().st_size)  # zeroed, same size

    report = _cli("report", out)
    _assert_user_error(report, "layers.parquet", "sha256", "re-run")

    capsys.readouterr()
    again = runner.run(path, out=out, scheduler=runner.SERIAL, progress=False)
    assert (again.simulated, again.cached) == (1, 3)
    assert "layers.parquet" in capsys.readouterr().err
    _assert_same(_tables(workdir / "clean"), _tables(out))


# -- 3. Dask faults: one line, bounded time, no folder left behind ------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listener(reply: bytes | None) -> int:
    """A TCP server that is not a Dask scheduler: silent, or answering ``reply``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            if reply is not None:
                conn.sendall(reply)
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


@pytest.mark.parametrize("where, found", [
    ("closed", "nothing listens there"),
    ("silent", "does not answer as a Dask scheduler"),
    ("http", "does not answer as a Dask scheduler"),
])
def test_a_wrong_scheduler_address_fails_in_bounded_time(workdir, where, found):
    port = {"closed": _free_port, "silent": lambda: _listener(None),
            "http": lambda: _listener(b"HTTP/1.1 400 Bad Request\r\n\r\n")}[where]()
    address = f"tcp://127.0.0.1:{port}"
    path = write_scenario(workdir, ONE)
    before = _snapshot(workdir)
    start = time.monotonic()
    result = _cli("run", path, "--out", workdir / "res", "--scheduler", address, "--quiet",
                  "--set", "execution.connect_timeout_s=1")
    assert time.monotonic() - start < 15
    _assert_user_error(result, address, found, "dask scheduler", f"dask worker {address}")
    assert len(result.output.strip().splitlines()) == 1
    assert not (workdir / "res").exists() and _snapshot(workdir) == before


def test_a_scheduler_without_workers_fails_in_bounded_time(workdir):
    from dask.distributed import LocalCluster

    path = write_scenario(workdir, ONE)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        start = time.monotonic()
        result = _cli("run", path, "--out", workdir / "res", "--scheduler", address, "--quiet",
                      "--set", "execution.no_workers_timeout_s=1")
        assert time.monotonic() - start < 15
    _assert_user_error(result, address, "has no workers", f"dask worker {address}")
    assert len(result.output.strip().splitlines()) == 1
    assert not (workdir / "res").exists()


def test_scheduler_address_parsing():
    assert E._host_port("tcp://10.0.0.1:9000") == ("10.0.0.1", 9000)
    assert E._host_port("myhost") == ("myhost", E.DEFAULT_PORT)
    assert E._host_port("[::1]:8786") == ("::1", 8786)
    assert E._host_port("inproc://x/1/2") is None
    with pytest.raises(E.SchedulerError, match="not a number"):
        E._host_port("tcp://host:http")


# -- 4. Ctrl-C ---------------------------------------------------------------------------


def _interrupt_at(monkeypatch, call: int):
    """Ctrl-C at the ``call``-th simulate call; returns the simulate it replaced."""
    real = runner._simulate
    seen = []

    def dies(*args, **kwargs):
        seen.append(1)
        if len(seen) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_simulate", dies)
    return real


def test_ctrl_c_prints_one_line_exits_130_and_keeps_finished_points(workdir, monkeypatch):
    path = write_scenario(workdir, SWEEP)
    out = workdir / "res"
    real = _interrupt_at(monkeypatch, 5)  # 2 batches per point: the third point's first
    result = _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet")
    assert result.exit_code == 130
    assert result.output == ("interrupted after 2 of 4 points; re-run the same command to "
                             "resume\n")
    assert len(list((out / R.POINTS_DIR).iterdir())) == 2
    calls = []
    monkeypatch.setattr(runner, "_simulate", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    resumed = _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet", "--no-plots")
    assert resumed.exit_code == 0 and "2 simulated, 2 cached" in resumed.output
    assert len(calls) == 4


def test_an_interrupted_rerun_with_new_settings_is_not_reported_as_current(workdir, monkeypatch):
    path = write_scenario(workdir, SWEEP)
    out = workdir / "res"
    assert _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet",
                "--no-plots").exit_code == 0
    assert _cli("report", out).exit_code == 0
    _interrupt_at(monkeypatch, 2)
    result = _cli("run", path, "--out", out, "--scheduler", "serial", "--quiet",
                  "--set", "data.images=4")
    assert result.exit_code == 130
    for command in ("report", "plot"):
        _assert_user_error(_cli(command, out), "unfinished run", "re-run")
    assert not (out / "sweep.parquet").exists()


# -- 5. run checks everything validate checks before submitting a task ---------------------


def test_run_checks_the_image_count_before_any_task(workdir, monkeypatch):
    from scenario_support import use_fake_chip

    calls = use_fake_chip(monkeypatch)
    path = write_scenario(workdir, SWEEP)
    before = _snapshot(workdir)
    result = _cli("run", path, "--images", "100000", "--out", workdir / "res", "--quiet")
    _assert_user_error(result, f"{path}:3: data.images", "100000 images asked",
                       "ask for at most")
    assert calls == [] and not (workdir / "res").exists() and _snapshot(workdir) == before


# -- 6. --out that is a file or cannot be written ----------------------------------------


def test_out_that_is_a_file_or_unwritable(workdir):
    path = write_scenario(workdir, ONE)
    (workdir / "file").write_text("x")
    before = _snapshot(workdir)
    for out, needle in ((workdir / "file", "is a file"), (workdir / "file" / "sub", "is a file"),
                        (Path("/proc/accelsim-results"), "cannot")):
        _assert_user_error(_cli("run", path, "--out", out, "--scheduler", "serial", "--quiet"),
                           str(out), needle, "--out")
    assert _snapshot(workdir) == before
    res = workdir / "res"
    assert _cli("run", path, "--out", res, "--scheduler", "serial", "--quiet",
                "--no-plots").exit_code == 0
    for out, needle in ((workdir / "file", "is a file"), (Path("/proc/accelsim-figures"),
                                                          "cannot")):
        _assert_user_error(_cli("plot", res, "--out", out), str(out), needle, "--out")
    assert (workdir / "file").read_text() == "x"


# -- 9. progress ----------------------------------------------------------------------------


def test_progress_says_when_kernels_compile_and_advances_every_few_images(workdir, monkeypatch,
                                                                          capsys):
    steps = []
    real = E.Progress.advance
    monkeypatch.setattr(E.Progress, "advance", lambda self, n: (steps.append(n),
                                                               real(self, n))[1])
    monkeypatch.setattr(runner, "PROGRESS_IMAGES", 8)
    path = write_scenario(workdir, ONE.replace("images: 4", "images: 20")
                          + "execution: {batch_images: 20}\n")
    runner.run(path, scheduler=runner.SERIAL, progress=True)
    err = capsys.readouterr().err
    assert "compiling kernels" in err and "20/20" in err
    assert steps == [8, 8, 4]


def test_dask_workers_report_progress_within_a_batch(workdir, monkeypatch):
    from dask.distributed import Client, LocalCluster

    steps = []
    real = E.Progress.advance
    monkeypatch.setattr(E.Progress, "advance", lambda self, n: (steps.append(n),
                                                               real(self, n))[1])
    monkeypatch.setattr(runner, "PROGRESS_IMAGES", 8)
    path = write_scenario(workdir, ONE.replace("images: 4", "images: 20")
                          + "execution: {batch_images: 20}\n")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        runner.run(path, client=client, progress=False)
        deadline = time.monotonic() + 5
        while sum(steps) < 20 and time.monotonic() < deadline:  # events arrive asynchronously
            time.sleep(0.05)
    assert sorted(steps) == [4, 8, 8]


# -- processes killed for real --------------------------------------------------------------

DRIVER = """
import os, sys, time
sys.path.insert(0, {tests!r})
from scenario_support import fake_simulate
from accelsim.workflow import runner

def slow(*args, **kwargs):
    time.sleep(float(os.environ.get("ACCELSIM_TEST_DELAY", "0")))
    return fake_simulate(*args, **kwargs)

runner._simulate = slow
from accelsim.cli import app
app(sys.argv[1:], prog_name="accelsim")
"""


def _interruptible() -> None:
    """Ctrl-C's default action in the child: a shell starts background jobs with SIGINT
    ignored, and Python then never raises KeyboardInterrupt (nor would the tool under test)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(cwd: Path, *args: str, delay: float) -> subprocess.Popen:
    env = {**os.environ, "ACCELSIM_TEST_DELAY": str(delay), "NUMBA_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", DRIVER.format(tests=str(TESTS)), *args],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=_interruptible)


def _wait_for_points(out: Path, n: int, proc: subprocess.Popen, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    points = out / R.POINTS_DIR
    while time.monotonic() < deadline and proc.poll() is None:
        if points.is_dir() and len([p for p in points.iterdir()
                                    if not p.name.startswith(".")]) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"{n} point(s) not written in time: {proc.communicate()}")


@pytest.mark.slow  # two fresh interpreters per case (~25 s each on 2 busy cores)
@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -9), (signal.SIGINT, 130)])
def test_a_killed_sweep_resumes_to_the_tables_of_an_uninterrupted_one(workdir, sig, code):
    path = write_scenario(workdir, SWEEP)
    runner.run(path, out=workdir / "clean", scheduler=runner.SERIAL, progress=False)
    out = workdir / "res"
    args = ("run", str(path), "--out", str(out), "--scheduler", "serial", "--no-plots")
    proc = _spawn(workdir, *args, delay=0.3)
    _wait_for_points(out, 1, proc)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    if sig == signal.SIGINT:
        last = err.strip().splitlines()[-1]  # the progress bar, then one line
        assert "Traceback" not in err and last.startswith("interrupted after ")
        assert last.endswith("of 4 points; re-run the same command to resume")
    resumed = _spawn(workdir, *args, delay=0)
    out_text, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "cached" in out_text
    _assert_same(_tables(workdir / "clean"), _tables(out))
    assert not [p for p in out.rglob(".*") if p.name.startswith((".tmp-", ".old-"))]


REAL = """\
name: real
model: digits-vgg5
data: {images: 6}
execution: {batch_images: 2}
sweep:
  grid:
    simulation.timesteps: [1, 2]
    hardware.overrides.tile.accumulate_units: [2, 4]
"""


@pytest.mark.slow  # a scheduler and two workers in fresh interpreters, the real chip
def test_a_worker_killed_mid_sweep_on_a_real_cluster(tmp_path):
    """``dask scheduler`` and two ``dask worker`` processes; one worker is killed after the
    first point is written. The sweep finishes on the other and equals a serial run."""
    dask = Path(sys.executable).with_name("dask")
    info = tmp_path / "scheduler.json"
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    procs = [subprocess.Popen([str(dask), "scheduler", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(info)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not info.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        procs += [subprocess.Popen([str(dask), "worker", "--scheduler-file", str(info),
                                    "--nthreads", "1", "--no-dashboard", "--no-nanny"],
                                   env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL) for _ in range(2)]
        import json

        address = json.loads(info.read_text())["address"]
        path = write_scenario(tmp_path, REAL)
        runner.run(path, out=tmp_path / "serial", scheduler=runner.SERIAL, progress=False)
        killed = []

        def kill_one(point) -> None:
            if not killed:
                procs[1].kill()
                killed.append(point.index)

        report = runner.run(path, out=tmp_path / "dask", scheduler=address, progress=False,
                            on_point=kill_one)
        assert killed and procs[1].wait(timeout=30) == -signal.SIGKILL
        assert report.simulated == 4
        _assert_same(_tables(tmp_path / "serial"), _tables(tmp_path / "dask"))
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=30)


def _callback_error(make_callback) -> logging.LogRecord:
    """The record tornado logs when a loop callback raises (tornado.ioloop._run_callback)."""
    callback = functools.partial(make_callback())
    try:
        callback()
    except Exception:
        exc_info = sys.exc_info()
    return logging.LogRecord("tornado.application", logging.ERROR, __file__, 0,
                             "Exception in callback %r", (callback,), exc_info)


def test_only_the_sync_cancel_race_is_kept_off_the_console():
    """distributed's ``sync`` schedules ``cancel`` on Ctrl-C; if its coroutine has not yet made
    its future, ``cancel`` raises NameError on the loop. That record alone is dropped."""
    def sync():  # the shape of distributed.utils.sync: a closure over a not-yet-set future
        future: object

        def cancel():
            future.cancel()  # noqa: F821
        return cancel

    def sync_with_a_bug():
        def cancel():
            raise ValueError("a real fault")
        return cancel

    def elsewhere():
        def callback():
            return undefined_name  # noqa: F821
        return callback

    assert not E._not_the_sync_cancel_race(_callback_error(sync))
    assert E._not_the_sync_cancel_race(_callback_error(sync_with_a_bug))
    assert E._not_the_sync_cancel_race(_callback_error(elsewhere))


@pytest.mark.slow  # a local Dask cluster and the real chip in a fresh interpreter
def test_ctrl_c_on_a_local_dask_cluster_is_one_line(tmp_path):
    """Ctrl-C reaches the whole process group, workers included: still one line, exit 130."""
    path = write_scenario(tmp_path, REAL.replace("images: 6", "images: 12"))
    out = tmp_path / "res"
    proc = subprocess.Popen([str(Path(sys.executable).with_name("accelsim")), "run", str(path),
                             "--out", str(out), "--no-plots"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_interruptible,
                            env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    _wait_for_points(out, 1, proc, limit=240)
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    lines = [line for line in err.replace("\r", "\n").splitlines()
             if line.strip() and "img" not in line]  # what is not the progress bar
    assert len(lines) == 1, err
    assert lines[0].startswith("interrupted after ") and lines[0].endswith(
        "of 4 points; re-run the same command to resume")


def test_a_run_whose_workers_all_leave_stops_in_bounded_time(workdir):
    from dask.distributed import LocalCluster

    path = write_scenario(workdir, SWEEP)
    out = workdir / "res"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster:
        address = cluster.scheduler_address
        stopped = []

        def stop_workers(point) -> None:
            if not stopped:
                cluster.scale(0)
                stopped.append(point.index)

        start = time.monotonic()
        with pytest.raises(E.SchedulerError, match="every worker") as err:
            runner.run(path, out=out, scheduler=address, progress=False, on_point=stop_workers,
                       settings={"execution.no_workers_timeout_s": 1})
        assert time.monotonic() - start < 30
    assert address in str(err.value) and f"dask worker {address}" in str(err.value)
    finished = [p for p in (out / R.POINTS_DIR).iterdir() if not p.name.startswith(".")]
    assert 1 <= len(finished) < 4  # the points done before are kept
    assert R.read_meta(out)["status"] == R.RUNNING
