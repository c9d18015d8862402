"""Hardware descriptions: presets load and carry sources, overrides, clear errors, SRAM energy."""

from __future__ import annotations

import math

import pytest
import yaml

from accelsim.chip.hardware import Hardware, HardwareError, list_presets, load_hardware, to_yaml


def test_presets_are_listed_and_load():
    names = [name for name, _ in list_presets()]
    assert names == ["45nm-generic", "45nm-large", "45nm-xl", "loihi-like", "loihi-like-silicon"]
    for name, description in list_presets():
        hw = load_hardware(name)
        assert isinstance(hw, Hardware) and hw.name == name and description
        for section in (hw, hw.mesh, hw.tile, hw.noc, hw.clock, hw.schedule, hw.energy):
            assert section.source, f"{name}: section {type(section).__name__} has no source"


def test_published_figures():
    loihi = load_hardware("loihi-like")
    assert loihi.mesh.tiles == 128 and loihi.tile.max_neurons == 1024
    assert loihi.tile.weight_sram_capacity_bits == 128 * 1024 * 8
    assert loihi.energy.accumulate_pj == 23.6
    assert (loihi.energy.neuron_update_active_pj, loihi.energy.neuron_update_inactive_pj) == (
        81.0, 52.0)
    assert loihi.dram is None and loihi.clock.asynchronous
    assert loihi.noc.hop_latency_x_cycles * loihi.clock.time_unit_ns == pytest.approx(4.1)
    assert loihi.energy.spike_out_pj == 0.0 and loihi.synapse_cycles == dict.fromkeys(
        ("conv", "dense", "sparse"), 35)
    silicon = load_hardware("loihi-like-silicon")
    assert silicon.energy.packet_pj == 111.0
    assert silicon.energy.neuron_update_active_pj == pytest.approx(51.2 + 21.6)
    assert silicon.energy.neuron_update_inactive_pj == pytest.approx(51.2 + 21.6)
    assert silicon.energy.spike_out_pj == 69.3
    assert (silicon.energy.hop_x_pj, silicon.energy.hop_y_pj) == (3.0, 4.2)
    assert silicon.synapse_pj == {"conv": 24.0, "dense": 35.5, "sparse": 33.6}
    assert silicon.synapse_cycles == {"conv": 31, "dense": 38, "sparse": 47}  # 0.1 ns units
    for hw in (loihi, silicon):
        assert hw.tile.leak_rounding == "truncate" and hw.first_layer == "mac"
    generic = load_hardware("45nm-generic")
    assert generic.clock.mhz == 500 and generic.clock.cycle_ns == 2.0
    assert generic.energy.dram_pj_per_bit == pytest.approx(1300 / 64, rel=0.01)
    assert generic.energy.spike_out_pj == 0.4 and generic.tile.leak_rounding == "floor"
    assert generic.energy.neuron_update_active_pj == generic.energy.neuron_update_inactive_pj


def test_per_kind_fields_take_one_number_or_one_per_kind():
    kinds = {"conv": 1.0, "dense": 2.0, "sparse": 3.0}
    hw = load_hardware("45nm-generic", {"energy.accumulate_pj": kinds,
                                        "tile.accumulate_latency_cycles": 4})
    assert hw.synapse_pj == kinds and hw.synapse_cycles == dict.fromkeys(kinds, 4)
    silicon = load_hardware("loihi-like-silicon", {"energy.accumulate_pj.dense": 30.0})
    assert silicon.synapse_pj["dense"] == 30.0 and silicon.synapse_pj["conv"] == 24.0
    with pytest.raises(HardwareError, match="accumulate_pj"):
        load_hardware("45nm-generic", {"energy.accumulate_pj": {"conv": 1.0, "dense": 2.0}})
    with pytest.raises(HardwareError, match="first_layer"):
        load_hardware("45nm-generic", {"first_layer": "analog"})


def test_sram_energy_is_log_linear_in_capacity():
    hw = load_hardware("45nm-generic")
    e = hw.energy
    kib = 1024 * 8
    # the published points are reproduced exactly
    assert e.sram_pj_per_bit(8 * kib) * 64 == pytest.approx(10.0)
    assert e.sram_pj_per_bit(32 * kib) * 64 == pytest.approx(20.0)
    assert e.sram_pj_per_bit(1024 * kib) * 64 == pytest.approx(100.0)
    # 16 KiB is half way (in log) between 8 and 32 KiB
    assert e.sram_pj_per_bit(16 * kib) * 64 == pytest.approx(15.0)
    # 64 KiB: 20 + 80 * log(2) / log(32)
    assert hw.weight_sram_pj_per_bit * 64 == pytest.approx(20 + 80 * math.log(2) / math.log(32))


def test_overrides_by_dotted_path():
    hw = load_hardware("45nm-generic", {"tile.queue_depth_packets": 4, "mesh.rows": 2})
    assert hw.tile.queue_depth_packets == 4 and hw.mesh.rows == 2
    assert load_hardware("45nm-generic").tile.queue_depth_packets == 16  # presets unchanged


@pytest.mark.parametrize(("overrides", "message"), [
    ({"tile.queue_dept": 4}, "unknown field 'queue_dept'"),
    ({"tiles.queue_depth_packets": 4}, "no section 'tiles'"),
    ({"tile.queue_depth_packets": 0}, "tile.queue_depth_packets"),
    ({"clock.asynchronous": True}, "clock"),
])
def test_bad_overrides_are_named(overrides, message):
    with pytest.raises(HardwareError, match=message):
        load_hardware("45nm-generic", overrides)


def test_unknown_preset_and_file(tmp_path):
    with pytest.raises(HardwareError, match="neither a preset"):
        load_hardware("no-such-chip")
    path = tmp_path / "chip.yaml"
    data = yaml.safe_load(to_yaml(load_hardware("45nm-generic")))
    data["tile"]["bogus_bits"] = 3
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(HardwareError, match=r"chip\.yaml.*tile\.bogus_bits"):
        load_hardware(path)


def test_yaml_round_trip(tmp_path):
    for name, _ in list_presets():
        hw = load_hardware(name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(to_yaml(hw))
        assert load_hardware(path) == hw


def test_cli_presets():
    from typer.testing import CliRunner

    from accelsim.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["presets"])
    assert listed.exit_code == 0
    assert [line.split()[0] for line in listed.output.splitlines()] == [
        n for n, _ in list_presets()]
    shown = runner.invoke(app, ["presets", "loihi-like"])
    assert shown.exit_code == 0
    assert Hardware.model_validate(yaml.safe_load(shown.output)) == load_hardware("loihi-like")
    bad = runner.invoke(app, ["presets", "nope"])
    assert bad.exit_code == 2 and "neither a preset" in bad.output
