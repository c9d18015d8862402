"""The scenario commands through the real entry point (typer app and the console script)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from scenario_support import write_scenario
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.workflow import columns as C
from accelsim.workflow import results as R

SCENARIO = """\
name: cli
model: tiny
data: {images: 4}
"""


def test_validate_reports_a_valid_scenario(workdir):
    path = write_scenario(workdir, SCENARIO)
    result = CliRunner().invoke(app, ["validate", str(path), "--set", "simulation.timesteps=2"])
    assert result.exit_code == 0, result.output
    assert "valid; 1 point(s), model tiny, data digits/test x 4" in result.output
    assert "T=2" in result.output


def test_validate_reports_problems_with_exit_code_2(workdir):
    path = write_scenario(workdir, SCENARIO + "simulation: {modes: fast}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:4: simulation.modes: unknown field 'modes'" in result.output


def test_run_report_plot(workdir):
    path = write_scenario(workdir, SCENARIO)
    out = workdir / "res"
    args = ["run", str(path), "--out", str(out), "--images", "3", "--scheduler", "serial",
            "--set", "simulation.timesteps=2", "--no-plots", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 point(s): 1 simulated, 0 cached" in result.output
    res = R.load(out)
    assert res.summary[C.NUM_IMAGES].iloc[0] == 3 and res.summary[C.TIMESTEPS].iloc[0] == 2
    again = CliRunner().invoke(app, args)
    assert "0 simulated, 1 cached" in again.output

    report = CliRunner().invoke(app, ["report", str(out)])
    assert report.exit_code == 0, report.output
    for heading in ("energy by layer and component", "latency by layer and timestep",
                    "spike rate per layer", "full / compute-only"):
        assert heading in report.output
    assert "conv1" in report.output

    plot = CliRunner().invoke(app, ["plot", str(out)])
    assert plot.exit_code == 0, plot.output
    assert (out / "figures" / "energy_breakdown.png").is_file()


def test_report_of_a_folder_without_results(workdir):
    result = CliRunner().invoke(app, ["report", str(workdir)])
    assert result.exit_code == 2 and "holds no accelsim results" in result.output


def test_bad_set_syntax_is_a_usage_error(workdir):
    path = write_scenario(workdir, SCENARIO)
    result = CliRunner().invoke(app, ["validate", str(path), "--set", "timesteps"])
    assert result.exit_code == 2 and "dotted.path=value" in result.output


def test_console_script_validate(tmp_path):
    script = Path(sys.executable).with_name("accelsim")
    bad = write_scenario(tmp_path, "name: x\nmodel: m\ndata:\n  images: -1\n")
    proc = subprocess.run([str(script), "validate", str(bad)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert f"{bad}:4: data.images: Input should be greater than or equal to 1" in proc.stderr
