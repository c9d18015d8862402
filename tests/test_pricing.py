"""Pricing: counters x energy table; the compute-only estimate's closed form (docs/design.md §3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chip_support import run_mode, tiny_hw, train

from accelsim.chip.hardware import load_hardware
from accelsim.chip.pricing import E_AC_PJ, E_MAC_PJ, compute_only, compute_only_energy, price
from accelsim.model.architectures import build
from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.workflow import columns as col


def _conv_net() -> Network:
    """input (1, 4, 4) -> conv1 3x3 pad 1 (2 ch) -> pool 2 -> conv2 3x3 pad 1 (3 ch) -> fc (4)
    -> output (2)."""
    layers = (
        Layer(name="conv1", kind="spiking", shape=(2, 4, 4), inputs=(Projection(
            source=INPUT, op="conv", weight="c1", kernel=3, padding=1),)),
        Layer(name="conv2", kind="spiking", shape=(3, 2, 2), inputs=(Projection(
            source="conv1", op="conv", weight="c2", pool=2, kernel=3, padding=1),)),
        Layer(name="fc", kind="spiking", shape=(4,), inputs=(Projection(
            source="conv2", op="linear", weight="f"),)),
        Layer(name="output", kind="output", shape=(2,), inputs=(Projection(
            source="fc", op="linear", weight="o"),)),
    )
    arch = Architecture(name="small", input_shape=(1, 4, 4), num_classes=2, layers=layers)
    shapes = arch.weight_shapes()
    weights = {k: np.ones(v, dtype=np.float32) for k, v in shapes.items()}
    return Network(architecture=arch, weights=weights, timesteps=2, input_mean=(0.0,),
                   input_std=(1.0,))


def test_compute_only_reproduces_closed_form():
    net = _conv_net()
    # known spike counts per timestep: conv1 32 neurons, conv2 12, fc 4
    spikes = [{"conv1": train([list(range(8)), list(range(0, 32, 2))]),
               "conv2": train([[0, 5, 11], []]),
               "fc": train([[1], [0, 1, 2, 3]])}]
    result, _ = run_mode(net, spikes, tiny_hw(mesh__cols=4), 2)
    per_layer = result.layers.groupby(col.LAYER, sort=False)[
        [col.COMPUTE_ONLY_SNN, col.COMPUTE_ONLY_ANN]].sum()
    # FLOPs: conv k^2 C_in H_out W_out C_out; linear in * out
    flops = {"conv1": 9 * 1 * 4 * 4 * 2, "conv2": 9 * 2 * 2 * 2 * 3, "fc": 12 * 4,
             "output": 4 * 2}
    rate = {"conv1": (8 + 16) / 32, "conv2": 3 / 12, "fc": 5 / 4}  # spikes over T / neurons
    snn = {"conv1": flops["conv1"] * E_MAC_PJ,
           "conv2": flops["conv2"] * rate["conv1"] * E_AC_PJ,
           "fc": flops["fc"] * rate["conv2"] * E_AC_PJ,
           "output": flops["output"] * rate["fc"] * E_AC_PJ}
    for name in flops:
        assert per_layer.loc[name, col.COMPUTE_ONLY_ANN] == pytest.approx(flops[name] * 4.6)
        assert per_layer.loc[name, col.COMPUTE_ONLY_SNN] == pytest.approx(snn[name])
    # the ANN estimate sits on timestep-1 rows
    assert (result.layers.loc[result.layers[col.TIMESTEP] > 1, col.COMPUTE_ONLY_ANN] == 0).all()
    # per-timestep SNN rows follow that timestep's input spikes
    conv2 = result.layers[result.layers[col.LAYER] == "conv2"][col.COMPUTE_ONLY_SNN].to_numpy()
    np.testing.assert_allclose(conv2, [flops["conv2"] * 8 / 32 * 0.9,
                                       flops["conv2"] * 16 / 32 * 0.9])


def _counters(**values) -> pd.DataFrame:
    base = {c: [0] for c in col.CHIP_COUNTERS}
    base[col.LAYER] = ["x"]
    base.update({k: [v] for k, v in values.items()})
    return pd.DataFrame(base)


def test_price_each_component():
    hw = load_hardware("loihi-like")
    e = hw.energy
    priced = price(_counters(**{col.SYNAPTIC_OPS: 10, col.SYNAPTIC_OPS_BY_KIND["conv"]: 6,
                                col.SYNAPTIC_OPS_BY_KIND["dense"]: 4, col.MACS: 3,
                                col.NEURON_UPDATES: 7, col.ACTIVE_NEURON_UPDATES: 2,
                                col.SPIKES_OUT: 2, col.NOC_PACKETS: 4, col.NOC_HOPS_X: 5,
                                col.NOC_HOPS_Y: 6}), hw)
    row = priced.iloc[0]
    assert row["energy_accumulate_pj"] == pytest.approx(10 * 23.6)
    assert row["energy_mac_pj"] == pytest.approx(3 * e.mac_pj)
    assert row["energy_neuron_update_pj"] == pytest.approx(2 * 81 + 5 * 52)
    assert row["energy_spike_out_pj"] == 0.0  # Davies 2018 Table 2 has no such figure
    assert row["energy_mesh_pj"] == pytest.approx(4 * 1.7 + 5 * 3.0 + 6 * 4.0)
    assert row[col.ENERGY] == pytest.approx(sum(row[c] for c in col.ENERGY_COLUMNS))
    g = load_hardware("45nm-generic")
    priced = price(_counters(**{col.WEIGHT_SRAM_READ_BITS: 64, col.MEMBRANE_READ_BITS: 16,
                                col.MEMBRANE_WRITE_BITS: 16, col.DRAM_READ_BITS: 64,
                                col.STATIC_CYCLES: 1000}), g)
    row = priced.iloc[0]
    assert row["energy_weight_sram_pj"] == pytest.approx(64 * g.weight_sram_pj_per_bit)
    assert row["energy_membrane_pj"] == pytest.approx(32 * 20.0 / 64)  # 32 KiB membrane SRAM
    assert row["energy_dram_pj"] == pytest.approx(64 * g.energy.dram_pj_per_bit)
    # 1000 tile-cycles of 2 ns at 0.05 mW = 100 pJ
    assert row["energy_static_pj"] == pytest.approx(1000 * 2.0 * 0.05)


def test_compute_only_needs_spikes_of_sources():
    net = _conv_net()
    frame = _counters()
    frame[col.IMAGE] = 0
    frame[col.TIMESTEP] = 1
    frame[col.LAYER] = "conv1"
    out = compute_only(frame, net.architecture)
    assert out[col.COMPUTE_ONLY_SNN][0] == pytest.approx(9 * 16 * 2 * E_MAC_PJ)


def test_silicon_preset_prices_each_component_as_its_source():
    """SANA-FE loihi.yaml, component by component: synapse by kind (conv 24.0, dense 35.5,
    sparse 33.6 pJ), neuron access + update 72.8 pJ per updated neuron, 69.3 pJ per fired
    neuron, 111 pJ per message, 3.0 / 4.2 pJ per east-west / north-south hop."""
    hw = load_hardware("loihi-like-silicon")
    kinds = col.SYNAPTIC_OPS_BY_KIND
    priced = price(_counters(**{col.SYNAPTIC_OPS: 60, kinds["conv"]: 10, kinds["dense"]: 20,
                                kinds["sparse"]: 30, col.NEURON_UPDATES: 9,
                                col.ACTIVE_NEURON_UPDATES: 4, col.SPIKES_OUT: 3,
                                col.NOC_PACKETS: 5, col.NOC_HOPS_X: 7, col.NOC_HOPS_Y: 11}), hw)
    row = priced.iloc[0]
    assert row["energy_accumulate_pj"] == pytest.approx(10 * 24.0 + 20 * 35.5 + 30 * 33.6)
    assert row["energy_neuron_update_pj"] == pytest.approx(9 * (51.2 + 21.6))
    assert row["energy_spike_out_pj"] == pytest.approx(3 * 69.3)
    assert row["energy_mesh_pj"] == pytest.approx(5 * 111.0 + 7 * 3.0 + 11 * 4.2)
    assert row[col.ENERGY] == pytest.approx(sum(row[c] for c in col.ENERGY_COLUMNS))


def test_reset_is_charged_per_fired_neuron():
    """45nm-generic: a neuron update costs 1.5 pJ with or without input; the 0.4 pJ reset
    subtraction is paid by the neurons that fired."""
    hw = load_hardware("45nm-generic")
    for active, fired in ((0, 0), (5, 0), (5, 3)):
        row = price(_counters(**{col.NEURON_UPDATES: 8, col.ACTIVE_NEURON_UPDATES: active,
                                 col.SPIKES_OUT: fired}), hw).iloc[0]
        assert row["energy_neuron_update_pj"] == pytest.approx(8 * 1.5)
        assert row["energy_spike_out_pj"] == pytest.approx(fired * 0.4)


def test_per_kind_counts_must_split_the_total():
    bad = _counters(**{col.SYNAPTIC_OPS: 5, col.SYNAPTIC_OPS_BY_KIND["dense"]: 4})
    with pytest.raises(ValueError, match="must split the total"):
        price(bad, load_hardware("45nm-generic"))
    with pytest.raises(ValueError, match="per-kind synaptic counts"):
        price(bad.drop(columns=[col.SYNAPTIC_OPS_BY_KIND["conv"]]),
              load_hardware("45nm-generic"))


def test_conv_and_dense_synapses_priced_by_kind_on_a_chip_run():
    """The chip splits synaptic events by projection kind; with hand spike trains on the conv
    net: each conv1 spike reaches 2x2 positions x 3 channels of conv2 (12 conv events), each
    conv2 spike the 4 fc units (4 dense), each fc spike the 2 outputs (2 dense)."""
    net = _conv_net()
    spikes = [{"conv1": train([list(range(8)), list(range(0, 32, 2))]),
               "conv2": train([[0, 5, 11], []]),
               "fc": train([[1], [0, 1, 2, 3]])}]
    hw = load_hardware("loihi-like-silicon", {"mesh.rows": 1, "mesh.cols": 4})
    result, _ = run_mode(net, spikes, hw, 2)
    layers = result.layers.set_index([col.LAYER, col.TIMESTEP])
    kinds = col.SYNAPTIC_OPS_BY_KIND
    expected = {("conv2", 1): (96, 0), ("conv2", 2): (192, 0), ("fc", 1): (0, 12),
                ("fc", 2): (0, 0), ("output", 1): (0, 2), ("output", 2): (0, 8),
                ("conv1", 1): (0, 0), ("conv1", 2): (0, 0)}
    for key, (conv, dense) in expected.items():
        row = layers.loc[key]
        assert (row[kinds["conv"]], row[kinds["dense"]], row[kinds["sparse"]]) == (conv, dense, 0)
        assert row[col.SYNAPTIC_OPS] == conv + dense
        assert row["energy_accumulate_pj"] == pytest.approx(conv * 24.0 + dense * 35.5)
    # spike-out energy: spikes x 69.3 pJ on every row
    np.testing.assert_allclose(result.layers["energy_spike_out_pj"],
                               result.layers[col.SPIKES_OUT] * 69.3)
    # hop energy: hops_x x 3.0 + hops_y x 4.2 on top of 111 pJ per packet
    np.testing.assert_allclose(result.layers["energy_mesh_pj"],
                               result.layers[col.NOC_PACKETS] * 111.0
                               + result.layers[col.NOC_HOPS_X] * 3.0
                               + result.layers[col.NOC_HOPS_Y] * 4.2)
    np.testing.assert_allclose(result.layers[col.ENERGY],
                               result.layers[list(col.ENERGY_COLUMNS)].sum(axis=1))


def test_compute_only_energy_closed_form():
    # vgg5 at width 1/64 on 8x8: conv1 1x8x8 in -> 1x8x8 (k=3) ...; check against hand formula.
    arch = build("vgg5", (1, 8, 8), 10, width=1 / 64)
    # conv1: 9*1*8*8*1 = 576; conv2 (pool 2, 4x4): 9*1*4*4*2 = 288; conv3: 9*2*4*4*2 = 576;
    # fc1 (pool 2 -> 2x2x2 = 8 in, 16 out) = 128; output 16 * 10 = 160.
    rates = {"conv1": 0.5, "conv2": 2.0, "conv3": 0.25, "fc1": 1.5}
    ann, snn = compute_only_energy(arch, rates)
    assert ann == pytest.approx((576 + 288 + 576 + 128 + 160) * 4.6)
    assert snn == pytest.approx(576 * 4.6 + (288 * 0.5 + 576 * 2.0 + 128 * 0.25 + 160 * 1.5)
                                * 0.9)
    with pytest.raises(ValueError, match="no spike rate for layer 'conv3'"):
        compute_only_energy(arch, {"conv1": 1.0, "conv2": 1.0})


def test_compute_only_energy_counts_both_resnet_projections():
    arch = build("resnet-small", (1, 8, 8), 10, width=1 / 32)  # 1 then 2 channels
    rates = {layer.name: 1.0 for layer in arch.layers if layer.kind == "spiking"}
    # stem1 9*1*64*1 = 576 (MAC); stage1 block: pool 2 -> 4x4, 1 ch: conv1 9*1*16*1 = 144,
    # conv2 144 + identity 0; stage2 stride 2 -> 2x2, 2 ch: conv1 9*1*4*2 = 72,
    # conv2 9*2*4*2 = 144 + 1x1 shortcut 1*1*4*2 = 8; output: global pool -> 2 in, 10 out = 20.
    ann, snn = compute_only_energy(arch, rates)
    total_ac = 144 + 144 + 72 + 144 + 8 + 20
    assert ann == pytest.approx((576 + total_ac) * 4.6)
    assert snn == pytest.approx(576 * 4.6 + total_ac * 0.9)


def test_simulate_and_manifest_share_one_compute_only_estimate():
    """The per-row estimate of a simulated ResNet (identity shortcuts) sums to the per-image
    estimate from the same run's spike rates: one convention, an identity shortcut counts 0."""
    from accelsim import simulate

    arch = build("resnet-small", (1, 8, 8), 10, width=1 / 32)
    assert any(p.op == "identity" for layer in arch.layers for p in layer.inputs)
    rng = np.random.default_rng(0)
    weights = {k: rng.normal(0, 0.8, v).astype(np.float32)
               for k, v in arch.weight_shapes().items()}
    net = Network(architecture=arch, weights=weights, timesteps=3, input_mean=(0.0,),
                  input_std=(1.0,))
    images = rng.normal(0, 1, (2, 1, 8, 8))
    res = simulate(net, images, hardware=tiny_hw(mesh__rows=8, mesh__cols=8))
    layers = res.layers
    neurons = {layer.name: layer.neurons for layer in arch.layers}
    for image in range(2):
        rows = layers[layers[col.IMAGE] == image]
        spikes = rows.groupby(col.LAYER)[col.SPIKES_OUT].sum()
        rates = {name: spikes[name] / neurons[name] for name in neurons}
        ann, snn = compute_only_energy(arch, rates)
        assert rows[col.COMPUTE_ONLY_ANN].sum() == pytest.approx(ann, rel=1e-12)
        assert rows[col.COMPUTE_ONLY_SNN].sum() == pytest.approx(snn, rel=1e-12)
