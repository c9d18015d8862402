"""Chip conventions the presets take from their sources: synapse kinds (timing and counts), hop
energy per direction, the analog first layer as MACs or as biases, and the leak rounding."""

from __future__ import annotations

import naive  # tests/naive.py
import numpy as np
import pandas as pd
import pytest
from chip_support import assert_modes_equal, chain, run_mode, tiny_hw, train

from accelsim.chip.hardware import load_hardware
from accelsim.chip.mapping import map_network
from accelsim.chip.plan import build_plan
from accelsim.chip.simulation import simulate
from accelsim.model.architectures import build
from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.spiking import functional
from accelsim.spiking.quantize import Quantization
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.workflow import columns as col

KIND_CYCLES = {"conv": 2, "dense": 3, "sparse": 5}


def _net(name: str, shape=(1, 8, 8), threshold=0.3, seed=0) -> Network:
    sn = SpikingNetwork(build(name, shape, 4, width=0.1), seed=seed)
    arch = sn.trained_architecture()
    arch = arch.model_copy(update={"layers": tuple(
        layer.model_copy(update={"threshold": threshold, "leak": 0.8})
        if layer.kind == "spiking" else layer for layer in arch.layers)})
    return Network(architecture=arch, weights=sn.weight_arrays(), timesteps=3,
                   input_mean=(0.0,) * shape[0], input_std=(1.0,) * shape[0])


def _shortcut_net() -> Network:
    """input (1,) -> a (2 units) -> b (2 units: dense from a plus an identity shortcut from a)
    -> output (1): one source feeding one layer through two synapse kinds."""
    layers = (
        Layer(name="a", kind="spiking", shape=(2,), inputs=(
            Projection(source=INPUT, op="linear", weight="a.w"),)),
        Layer(name="b", kind="spiking", shape=(2,), inputs=(
            Projection(source="a", op="linear", weight="b.w"),
            Projection(source="a", op="identity"))),
        Layer(name="out", kind="output", shape=(1,), inputs=(
            Projection(source="b", op="linear", weight="out.w"),)),
    )
    arch = Architecture(name="shortcut", input_shape=(1,), num_classes=1, layers=layers)
    weights = {k: np.ones(v, dtype=np.float32) for k, v in arch.weight_shapes().items()}
    return Network(architecture=arch, weights=weights, timesteps=2, input_mean=(0.0,),
                   input_std=(1.0,))


def test_each_synapse_kind_has_its_latency():
    """Hand timeline: a spike of l0 reaches both l1 units (2 dense events): service 2 x 3
    cycles; the tile's busy time in t is its packets' service plus its fire phase (2 units, 1
    cycle each)."""
    net = chain([2, 2])
    spikes = [{"l0": train([[0, 1], [1]]), "l1": train([[0], []])}]
    hw = tiny_hw(tile__accumulate_latency_cycles=KIND_CYCLES)
    result, _ = run_mode(net, spikes, hw, 2)
    tiles = result.tiles.set_index([col.LAYER, col.TIMESTEP])
    assert tiles.loc[("l1", 1), col.BUSY_CYCLES] == 2 * (2 * 3) + 2
    assert tiles.loc[("l1", 2), col.BUSY_CYCLES] == 1 * (2 * 3) + 2
    assert tiles.loc[("out", 1), col.BUSY_CYCLES] == 1 * (1 * 3) + 1


def test_mixed_kinds_from_one_source_split_counts_and_time():
    """b gets 2 dense events and 1 sparse (identity) event per spike of a: counted apart, and
    served as ceil(2 / units) x 3 + ceil(1 / units) x 5 cycles."""
    net = _shortcut_net()
    spikes = [{"a": train([[0, 1], [1]]), "b": train([[1], [0, 1]])}]
    hw = tiny_hw(tile__accumulate_latency_cycles=KIND_CYCLES)
    result, _ = assert_modes_equal(net, spikes, hw, 2)
    layers = result.layers.set_index([col.LAYER, col.TIMESTEP])
    kinds = col.SYNAPTIC_OPS_BY_KIND
    for t, n in ((1, 2), (2, 1)):
        row = layers.loc[("b", t)]
        assert (row[kinds["dense"]], row[kinds["sparse"]], row[kinds["conv"]]) == (2 * n, n, 0)
        assert row[col.SYNAPTIC_OPS] == 3 * n
    fo = build_plan(net, hw, map_network(net, hw)).fanout[0]
    np.testing.assert_array_equal(fo.service[fo.neuron_class], [[2 * 3 + 5], [2 * 3 + 5]])


@pytest.mark.parametrize("name", ["vgg5", "resnet-small"])
def test_fast_equals_reference_with_per_kind_latencies_and_biases(name):
    net = _net(name)
    f = functional.run(net, np.random.default_rng(1).normal(size=(2, 1, 8, 8)),
                       record_spikes=True)
    for first_layer in ("mac", "bias"):
        hw = load_hardware("45nm-generic", {
            "mesh.rows": 3, "mesh.cols": 4, "tile.queue_depth_packets": 2,
            "tile.accumulate_latency_cycles": KIND_CYCLES, "first_layer": first_layer})
        assert_modes_equal(net, f.spikes, hw, 3, counts=f.counts)


def test_hop_energy_per_direction_by_hand():
    """l0 on tile 0 (row 0, col 0), l1 on tile 1 (0, 1), out on tile 2 (1, 0) of a 2 x 2 mesh:
    an l0 spike crosses one east-west hop, an l1 spike one east-west and one north-south."""
    net = chain([2, 2])
    spikes = [{"l0": train([[0, 1], [1]]), "l1": train([[0], [0, 1]])}]
    hw = load_hardware("loihi-like-silicon", {"mesh.rows": 2, "mesh.cols": 2})
    result, _ = run_mode(net, spikes, hw, 2, tiles_per_layer={"l0": 1, "l1": 1, "out": 1})
    assert result.mapping[col.FIRST_TILE].tolist() == [0, 1, 2]
    layers = result.layers.set_index([col.LAYER, col.TIMESTEP])
    expected = {("l0", 1): (2, 2, 0), ("l0", 2): (1, 1, 0), ("l1", 1): (1, 1, 1),
                ("l1", 2): (2, 2, 2)}
    for key, (packets, hx, hy) in expected.items():
        row = layers.loc[key]
        assert (row[col.NOC_PACKETS], row[col.NOC_HOPS_X], row[col.NOC_HOPS_Y]) == (
            packets, hx, hy)
        assert row["energy_mesh_pj"] == pytest.approx(packets * 111.0 + hx * 3.0 + hy * 4.2)


def test_bias_first_layer_costs_no_chip_macs():
    """first_layer: bias removes the MAC phase (its cycles, MACs and first-layer weight reads)
    and changes nothing else the chip counts."""
    net = _net("vgg5")
    x = np.random.default_rng(2).normal(size=(2, 1, 8, 8))
    chip = {"mesh.rows": 3, "mesh.cols": 4}
    mac = simulate(net, x, hardware=load_hardware("loihi-like-silicon", chip))
    bias = simulate(net, x, hardware=load_hardware("loihi-like-silicon",
                                                   {**chip, "first_layer": "bias"}))
    plan = build_plan(net, load_hardware("loihi-like-silicon", chip),
                      map_network(net, load_hardware("loihi-like-silicon", chip)))
    assert plan.mac_cycles.any() and plan.mac_count.sum() == mac.layers[col.MACS].sum() / 2
    assert (bias.layers[col.MACS] == 0).all() and (bias.layers["energy_mac_pj"] == 0).all()
    first = mac.layers[col.LAYER] == "conv1"
    t1 = mac.layers[col.TIMESTEP] == 1
    sram = plan.mac_sram_bits.sum()
    np.testing.assert_array_equal(
        bias.layers[col.WEIGHT_SRAM_READ_BITS],
        mac.layers[col.WEIGHT_SRAM_READ_BITS] - np.where(first & t1, sram, 0))
    same = [c for c in col.CHIP_COUNTERS if c not in (
        col.MACS, col.WEIGHT_SRAM_READ_BITS, col.CYCLES, col.BUSY_CYCLES, col.STALL_CYCLES,
        col.STATIC_CYCLES)]
    pd.testing.assert_frame_equal(bias.layers[same], mac.layers[same])
    assert (bias.images[col.TOTAL_CYCLES] < mac.images[col.TOTAL_CYCLES]).all()
    gap = mac.layers["energy_mac_pj"].sum() - (mac.layers[col.ENERGY].sum()
                                               - bias.layers[col.ENERGY].sum())
    assert gap == pytest.approx(0.0, abs=1e-6)  # no SRAM, membrane or static energy on this chip


def test_fixed_arithmetic_rounds_as_the_hardware():
    """simulate in fixed arithmetic takes tile.leak_rounding (truncate on the Loihi presets);
    a quantization that says otherwise is an error."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 1, 8, 8))
    net = naive.calibrated_network("vgg5", (1, 8, 8), 0.25, 0, x)
    chip = {"mesh.rows": 3, "mesh.cols": 4, "tile.membrane_bits": 24}
    keys = [col.IMAGE, col.LAYER, col.TIMESTEP]
    runs = {r: functional.run(net, x, arithmetic="fixed",
                              quantization=Quantization(leak_rounding=r)).counts.set_index(keys)
            for r in ("floor", "truncate")}
    assert not runs["floor"][col.SPIKES_OUT].equals(runs["truncate"][col.SPIKES_OUT])
    for preset, rounding in (("loihi-like", "truncate"), ("loihi-like-silicon", "truncate"),
                             ("45nm-generic", "floor")):
        hw = load_hardware(preset, chip)
        assert hw.tile.leak_rounding == rounding
        result = simulate(net, x, hardware=hw, arithmetic="fixed",
                          quantization=Quantization(weight_bits=8))
        chip_spikes = result.layers.set_index(keys)[col.SPIKES_OUT]
        assert chip_spikes.equals(runs[rounding][col.SPIKES_OUT])
    with pytest.raises(ValueError, match="leak_rounding"):
        simulate(net, x, hardware=load_hardware("loihi-like", chip), arithmetic="fixed",
                 quantization=Quantization(leak_rounding="floor"))


def test_a_scenario_rounding_unlike_its_chip_is_refused_before_simulating(tmp_path, monkeypatch):
    """The scenario names floor on a truncating (Loihi-like) chip: validation refuses it at the
    quantization line; without the field the point rounds as its chip."""
    from scenario_support import save_tiny_model, write_scenario

    import accelsim

    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    save_tiny_model(tmp_path / "trained_models")
    text = ("name: q\nmodel: tiny\ndata: {images: 2}\nhardware: {preset: loihi-like}\n"
            "simulation:\n  arithmetic: fixed\n  timesteps: 2\n"
            "  quantization: {leak_rounding: floor}\n")
    path = write_scenario(tmp_path, text)
    with pytest.raises(ValueError) as info:
        accelsim.run_scenario(path, out=tmp_path / "out", scheduler="serial", progress=False)
    assert str(info.value) == (
        f"{path}:8: simulation.quantization: quantization.leak_rounding = floor but the tile "
        "rounds the leak by truncate; set hardware.overrides.tile.leak_rounding: floor or "
        "remove quantization.leak_rounding")
    assert not (tmp_path / "out").exists()


def test_the_ann_times_and_prices_its_additions_at_its_layer_kind():
    """The ANN chain of test_ann's hand timeline with dense synapses 3 cycles and 35.5 pJ:
    l0's MAC is 6 steps x 3 = 18 cycles (then fire 3, send 3, hop 2: 26), out's 3 x 3 = 9 after
    the barrier 5 and before its fire 1 (26 + 5 + 9 + 1 = 41); no spikes out."""
    from accelsim.chip import ann

    net = chain([3], inputs=2)  # input (2,) -> l0: 3 units -> out: 1 unit, weights 1
    hw = load_hardware("45nm-generic", {
        "mesh.rows": 1, "mesh.cols": 3, "tile.accumulate_units": 1,
        "tile.neuron_update_units": 1, "noc.hop_latency_x_cycles": 2,
        "schedule.barrier_cycles": 5, "tile.accumulate_latency_cycles": KIND_CYCLES,
        "energy.accumulate_pj": {"conv": 24.0, "dense": 35.5, "sparse": 33.6}})
    mapping = map_network(net, hw, {"l0": 1, "out": 1})
    res = ann.simulate_ann(net, np.ones((1, 2)), None, hw, schedule="barrier", mapping=mapping)
    assert res.layers[col.CYCLES].tolist() == [26, 15]
    assert res.images[col.TOTAL_CYCLES].tolist() == [41]
    layers = res.layers
    np.testing.assert_allclose(layers["energy_accumulate_pj"],
                               layers[col.SYNAPTIC_OPS] * 35.5)
    assert (layers["energy_spike_out_pj"] == 0).all()
