"""Hand-written YAML: duplicate keys, unparsable ``--set`` values, broken preset files, binary
files, repeated sweep values and quantization widths, each refused with file, line and fix."""

from __future__ import annotations

import pytest
from scenario_support import write_scenario
from typer.testing import CliRunner

from accelsim.chip.hardware import HardwareError, load_hardware
from accelsim.cli import app
from accelsim.workflow.scenario import ScenarioError, load, parse, parse_set

BASE = "name: s\nmodel: tiny\n"


def only_problem(text: str, tmp_path, settings=None):
    path = write_scenario(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load(path, settings)
    (problem,) = info.value.problems
    assert problem.file == str(path)
    return problem


def test_duplicate_top_level_key_names_both_lines(tmp_path):
    problem = only_problem(BASE + "data: {images: 3}\nmodel: other\n", tmp_path)
    assert problem.line == 4 and problem.field == "model"
    assert "duplicate key 'model': first at line 2, again at line 4" in problem.message


def test_duplicate_nested_key_names_both_lines(tmp_path):
    problem = only_problem(BASE + "data:\n  images: 10\n  seed: 1\n  images: 20\n", tmp_path)
    assert problem.line == 6 and problem.field == "data.images"
    assert "first at line 4, again at line 6" in problem.message


def test_duplicate_key_in_flow_mapping_and_in_sweep(tmp_path):
    assert "duplicate key 'images'" in only_problem(
        BASE + "data: {images: 1, images: 2}\n", tmp_path).message
    text = (BASE + "sweep:\n  grid:\n    simulation.timesteps: [1, 2]\n"
            "    simulation.timesteps: [3]\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == 6 and "simulation.timesteps" in problem.message


def test_set_value_that_does_not_parse_names_the_set_argument():
    with pytest.raises(ValueError, match=r"--set 'data.images=\[1,2': the value '\[1,2' is not "
                                         r"valid YAML"):
        parse_set(["data.images=[1,2"])
    with pytest.raises(ValueError, match="duplicate key 'a'"):
        parse_set(["hardware.overrides={a: 1, a: 2}"])


def test_set_value_error_in_the_cli(workdir):
    path = write_scenario(workdir, BASE)
    result = CliRunner().invoke(app, ["validate", str(path), "--set", "data.images=[1,2"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --set 'data.images=[1,2'")
    assert f"{path}:" not in result.stderr  # the file is not the culprit


def test_hardware_file_with_a_yaml_error_gives_file_and_line(tmp_path):
    bad = tmp_path / "chip.yaml"
    bad.write_text("name: chip\nmesh:\n  rows: [2\n  cols: 2\n")
    with pytest.raises(HardwareError, match=rf"^{bad}:\d+: not valid YAML"):
        load_hardware(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("name: chip\nmesh: {rows: 2, cols: 2}\nmesh: {rows: 4, cols: 4}\n")
    with pytest.raises(HardwareError, match=rf"^{dup}:3: not valid YAML: duplicate key 'mesh': "
                                            "first at line 2"):
        load_hardware(dup)
    result = CliRunner().invoke(app, ["presets", str(bad)])
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {bad}:")


def test_binary_scenario_file_is_named(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: s\nmodel: \x00\x80\xff\xfe\n")
    with pytest.raises(ScenarioError, match=rf"^{path}: <top level>: not a text file"):
        load(path)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and f"error: {path}: " in result.stderr
    assert "Traceback" not in result.output


def test_scenario_folder_is_named(tmp_path):
    with pytest.raises(ScenarioError, match="is a folder; pass a scenario YAML file"):
        load(tmp_path)


def test_sweep_listing_a_value_twice_is_refused(tmp_path):
    problem = only_problem(BASE + "sweep:\n  grid:\n    simulation.timesteps: [2, 3, 2]\n",
                           tmp_path)
    assert problem.line == 3 and problem.field == "sweep"
    assert "sweep.grid.simulation.timesteps lists 2 more than once" in problem.message
    zipped = ("sweep:\n  zip:\n    simulation.timesteps: [2, 2, 3]\n"
              "    data.seed: [0, 0, 1]\n")
    assert "gives the point simulation.timesteps=2, data.seed=0 more than once" in only_problem(
        BASE + zipped, tmp_path).message
    # a repeated value in one zip list is fine when the points differ
    ok = parse(BASE + "sweep:\n  zip:\n    simulation.timesteps: [2, 2]\n    data.seed: [0, 1]\n")
    assert len(ok.points()) == 2


@pytest.mark.parametrize(("field", "value", "message"), [
    ("weight_bits", 1, "greater than or equal to 2"),
    ("weight_bits", 17, "less than or equal to 16"),
    ("membrane_bits", 64, "less than or equal to 48"),
    ("input_bits", 1, "greater than or equal to 2"),
])
def test_quantization_widths_have_one_set_of_bounds(tmp_path, field, value, message):
    text = (BASE + "simulation:\n  arithmetic: fixed\n  quantization:\n"
            f"    {field}: {value}\n")
    problem = only_problem(text, tmp_path)
    assert problem.line == 6 and problem.field == f"simulation.quantization.{field}"
    assert message in problem.message
