"""Scenario files: schema, error locations, dotted-path settings, sweeps, and the checks that
need the model, the data and the hardware (through the stand-in chip of scenario_support)."""

from __future__ import annotations

from pathlib import Path

import pytest
from scenario_support import write_scenario

from accelsim.workflow import runner
from accelsim.workflow.scenario import Scenario, ScenarioError, flatten, load, parse, parse_set

BASE = """\
name: demo
model: tiny
data:
  images: 10
  split: test
hardware:
  preset: 45nm-generic
simulation:
  timesteps: 2
"""


def _problem(text: str, settings=None):
    with pytest.raises(ScenarioError) as info:
        parse(text, "demo.yaml", settings)
    assert len(info.value.problems) >= 1
    return info.value.problems[0], str(info.value)


def test_defaults_fill_an_almost_empty_scenario():
    s = parse("name: x\nmodel: m\n")
    assert s.data.images == 100 and s.data.split == "test" and s.data.set is None
    assert s.hardware.preset == "45nm-generic" and s.simulation.mode == "fast"
    assert s.sweep is None and s.points()[0][0] == {}


def test_unknown_key_names_line_field_and_valid_fields():
    problem, text = _problem(BASE.replace("  timesteps: 2", "  timestep: 2"))
    assert (problem.file, problem.line, problem.field) == ("demo.yaml", 9, "simulation.timestep")
    assert "unknown field 'timestep'" in text and "timesteps" in problem.message
    assert "demo.yaml:9: simulation.timestep:" in text


def test_wrong_type_names_line_value_and_type():
    problem, _ = _problem(BASE.replace("images: 10", "images: ten"))
    assert (problem.line, problem.field) == (4, "data.images")
    assert "valid integer" in problem.message and "'ten'" in problem.message


def test_negative_size_is_refused_with_the_bound():
    problem, _ = _problem(BASE.replace("images: 10", "images: -5"))
    assert (problem.line, problem.field) == (4, "data.images")
    assert "greater than or equal to 1" in problem.message and "-5" in problem.message


def test_literal_choice_lists_the_valid_values():
    problem, _ = _problem(BASE.replace("split: test", "split: validation"))
    assert problem.line == 5 and "'train' or 'test'" in problem.message


def test_missing_required_field():
    problem, _ = _problem("name: x\n")
    assert problem.field == "model" and "required" in problem.message


def test_invalid_yaml_gives_its_line():
    problem, text = _problem("name: x\nmodel: [unclosed\n")
    assert "not valid YAML" in text and problem.line is not None


def test_quantization_needs_fixed_arithmetic():
    problem, _ = _problem(BASE + "  quantization: {weight_bits: 4}\n")
    assert problem.field == "simulation" and "arithmetic: fixed" in problem.message
    ok = parse(BASE + "  arithmetic: fixed\n  quantization: {weight_bits: 4}\n")
    assert ok.simulation.quantization.weight_bits == 4


def test_set_overrides_parse_as_yaml_scalars_and_errors_name_the_set():
    assert parse_set(["a.b=3", "c=fast", "d=[1, 2]", "e=true"]) == \
        {"a.b": 3, "c": "fast", "d": [1, 2], "e": True}
    with pytest.raises(ValueError, match="dotted.path=value"):
        parse_set(["no-equals-sign"])
    s = parse(BASE, settings=parse_set(["simulation.timesteps=4", "data.seed=7"]))
    assert (s.simulation.timesteps, s.data.seed) == (4, 7)
    problem, _ = _problem(BASE, parse_set(["data.images=-1"]))
    assert problem.line is None and "--set data.images" in problem.message


def test_overrides_accept_nested_and_dotted_forms_and_merge_with_set():
    text = BASE.replace("  preset: 45nm-generic",
                        "  preset: 45nm-generic\n  overrides:\n    tile.queue_depth: 2\n"
                        "    mesh:\n      rows: 3\n")
    s = parse(text, settings={"hardware.overrides.tile.queue_depth": 8})
    assert s.hardware.overrides == {"tile.queue_depth": 8, "mesh.rows": 3}
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


def test_sweep_grid_is_a_product_and_zip_advances_together():
    text = BASE + """sweep:
  grid:
    hardware.overrides.tile.accumulate_units: [1, 2, 4]
  zip:
    simulation.timesteps: [1, 3]
    data.seed: [5, 6]
"""
    s = parse(text)
    points = s.points()
    assert len(points) == 6
    got = [(p["hardware.overrides.tile.accumulate_units"], sc.simulation.timesteps, sc.data.seed,
            sc.hardware.overrides["tile.accumulate_units"]) for p, sc in points]
    assert got == [(u, t, seed, u) for u in (1, 2, 4) for t, seed in ((1, 5), (3, 6))]
    assert all(sc.sweep is None for _, sc in points)


@pytest.mark.parametrize("sweep, needle", [
    ("  zip:\n    data.seed: [1, 2]\n    simulation.timesteps: [1]\n", "same length"),
    ("  grid:\n    simulation.mode: [fast, slow]\n", "'fast' or 'reference'"),
    ("  grid:\n    simulation.timesteps: []\n", "empty list"),
    ("  grid:\n    outputs.dir: [a, b]\n", "cannot be swept"),
    ("  grid:\n    simulation.timestep: [1, 2]\n", "not a scenario field"),
])
def test_bad_sweeps_are_refused(sweep, needle):
    _, text = _problem(BASE + "sweep:\n" + sweep)
    assert needle in text


def test_bad_sweep_value_points_at_its_list_item():
    problem, _ = _problem(BASE + "sweep:\n  grid:\n    simulation.mode:\n      - fast\n"
                          "      - slow\n")
    assert problem.field == "sweep.grid.simulation.mode[1]" and problem.line == 14


def test_scenario_models_are_frozen():
    s = parse(BASE)
    with pytest.raises(Exception, match="frozen"):
        s.name = "other"  # type: ignore[misc]


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load(tmp_path / "nope.yaml")


# -- checks that need the model, data and hardware -------------------------------------------


def test_resolve_fills_defaults_from_the_model_and_hardware(workdir):
    path = write_scenario(workdir, BASE.replace("  timesteps: 2\n", "  mode: fast\n"))
    (point,) = runner.check(path)
    assert point.scenario.data.set == "digits"  # the model's data set
    assert point.scenario.simulation.timesteps == 3  # the model's T
    assert point.scenario.simulation.schedule == "barrier"  # the preset's
    assert point.model_path == (workdir / "trained_models" / "tiny.json").resolve()


def test_missing_model_file_names_the_line_and_what_exists(workdir):
    path = write_scenario(workdir, BASE.replace("model: tiny", "model: nonexistent"))
    with pytest.raises(ScenarioError) as info:
        runner.check(path)
    (problem,) = info.value.problems
    assert (problem.line, problem.field) == (2, "model")
    assert "no model file 'nonexistent'" in problem.message and "'tiny'" in problem.message


def test_model_input_shape_must_match_the_data(workdir):
    path = write_scenario(workdir, BASE.replace("  images: 10", "  images: 10\n  set: cifar10"))
    with pytest.raises(ScenarioError) as info:
        runner.check(path)
    (problem,) = info.value.problems
    assert problem.field == "data.set" and problem.line == 5
    assert "(1, 8, 8)" in problem.message and "3-channel" in problem.message


def test_unknown_data_set(workdir):
    path = write_scenario(workdir, BASE.replace("  images: 10", "  images: 10\n  set: imagenet"))
    with pytest.raises(ScenarioError, match="unknown data set 'imagenet'; choose one of"):
        runner.check(path)


def test_too_many_images_for_the_split(workdir):
    path = write_scenario(workdir, BASE.replace("images: 10", "images: 100000"))
    with pytest.raises(ScenarioError) as info:
        runner.check(path)
    (problem,) = info.value.problems
    assert problem.field == "data.images" and problem.line == 4 and "at most" in problem.message


def test_unmappable_network_is_an_error_that_says_why(workdir):
    text = BASE.replace("  preset: 45nm-generic",
                        "  preset: 45nm-generic\n  overrides:\n    mesh: {rows: 1, cols: 2}")
    with pytest.raises(ScenarioError) as info:
        runner.check(write_scenario(workdir, text))
    (problem,) = info.value.problems
    assert problem.field == "hardware" and problem.line == 6
    assert "cannot be mapped" in problem.message and "has 5 layers" in problem.message
    assert "2 tiles" in problem.message


def test_bad_hardware_override_names_its_line(workdir):
    text = BASE.replace("  preset: 45nm-generic",
                        "  preset: 45nm-generic\n  overrides:\n    tile.bogus: 1")
    with pytest.raises(ScenarioError) as info:
        runner.check(write_scenario(workdir, text))
    (problem,) = info.value.problems
    assert problem.field == "hardware.overrides.tile.bogus"
    assert "unknown field 'bogus'" in problem.message and "accumulate_units" in problem.message
    assert problem.line == 9


def test_sweep_point_problem_names_the_point(workdir):
    text = BASE + "sweep:\n  grid:\n    model: [tiny, ghost]\n"
    with pytest.raises(ScenarioError) as info:
        runner.check(write_scenario(workdir, text))
    (problem,) = info.value.problems
    assert "ghost" in problem.message and "sweep point model='ghost'" in problem.message


def test_cache_key_ignores_names_and_execution_but_not_physics(workdir):
    path = write_scenario(workdir, BASE)
    (a,) = runner.check(path)
    (b,) = runner.check(path, {"name": "other", "execution.batch_images": 3,
                               "outputs.dir": "elsewhere"})
    (c,) = runner.check(path, {"data.seed": 1})
    assert a.key == b.key and a.key != c.key
    assert isinstance(a.scenario, Scenario)


def test_cache_key_changes_with_the_package_source(workdir, monkeypatch):
    """The version number stays while code is edited: results cached by other code of the
    same version must not be served as this code's."""
    from accelsim.workflow import points

    path = write_scenario(workdir, BASE)
    (a,) = runner.check(path)
    digest = points.source_digest()
    assert len(digest) == 64
    monkeypatch.setattr(points, "source_digest", lambda: "0" * 64)
    (b,) = runner.check(path)
    monkeypatch.setattr(points, "source_digest", lambda: digest)
    (c,) = runner.check(path)
    assert a.key != b.key and a.key == c.key


SHIPPED = sorted((Path(__file__).parents[1] / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenarios_validate(path):
    scenario = load(path)
    assert scenario.name == path.stem
    if any(sc.workload is not None for _, sc in scenario.points()):
        pytest.skip("calibrated workload: checked by the slow test in test_workloads.py")
    models = {sc.model for _, sc in scenario.points()}
    root = Path(__file__).parents[1] / "trained_models"
    if not all((root / f"{m}.json").is_file() for m in models):
        pytest.skip(f"model files {sorted(models)} not in trained_models/")
    points = runner.check(path)
    assert len(points) == len(scenario.points())
