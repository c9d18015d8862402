"""The ANN on the chip: counters against an independent loop-nest count, pricing, timing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from chip_support import chain

from accelsim.chip import ann
from accelsim.chip.hardware import load_hardware
from accelsim.chip.mapping import map_network
from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.workflow import columns as col

ROOT = Path(__file__).resolve().parents[1]


def _conv_net(stride: int, seed: int = 0, pool: int = 1, width: int = 5) -> Network:
    """input (2, 6, width) -> a: conv 3 -> b: conv 5 (the layer under test; on a pooled by
    ``pool``) -> out: linear 4."""
    rng = np.random.default_rng(seed)
    a = Layer(name="a", kind="spiking", shape=(3, 6, width), inputs=(Projection(
        source=INPUT, op="conv", weight="a.w", kernel=3, padding=1),))
    h, w = 6 // pool, width // pool
    ho, wo = (h + 2 - 3) // stride + 1, (w + 2 - 3) // stride + 1
    b = Layer(name="b", kind="spiking", shape=(5, ho, wo), inputs=(Projection(
        source="a", op="conv", weight="b.w", kernel=3, padding=1, stride=stride, pool=pool),))
    out = Layer(name="out", kind="output", shape=(4,), inputs=(Projection(
        source="b", op="linear", weight="out.w"),))
    arch = Architecture(name="t", input_shape=(2, 6, width), num_classes=4,
                        layers=(a, b, out))
    weights = {"a.w": rng.normal(size=(3, 2, 3, 3)), "b.w": rng.normal(size=(5, 3, 3, 3)),
               "out.w": rng.normal(size=(4, 5 * ho * wo))}
    return Network(architecture=arch, weights={k: v.astype(np.float32) for k, v in
                                               weights.items()},
                   timesteps=1, input_mean=(0.0, 0.0), input_std=(1.0, 1.0))


def _chip(zero_skipping: bool, lanes: int = 3, mesh: tuple[int, int] = (2, 3),
          sram_bits: int = 300):
    return load_hardware("45nm-generic", {
        "mesh.rows": mesh[0], "mesh.cols": mesh[1], "tile.accumulate_units": lanes,
        "tile.weight_sram_capacity_bits": sram_bits, "tile.zero_skipping": zero_skipping})


def _holder(place, channel: int, row: int) -> int:
    """The global tile of ``place`` whose block holds (channel, row)."""
    for k, tile in enumerate(place.tiles):
        if (place.channel_start[k] <= channel < place.channel_end[k]
                and place.row_start[k] <= row < place.row_end[k]):
            return int(tile)
    raise AssertionError((channel, row))


def _loop_nest(net: Network, hw, mapping, acts_a: np.ndarray, zs: bool) -> dict[str, dict]:
    """Layer b counted by brute force, one (channel, group, ci, ky, kx, lane) at a time, each
    tile over its block (its channels x its rows), and a's packets one kernel window at a
    time."""
    U, wb, ab = hw.tile.accumulate_units, hw.tile.weight_bits, hw.tile.activation_bits
    pb = mapping.placement("b")
    pa = mapping.placement("a")
    proj = net.architecture.layer("b").inputs[0]
    C, H, W = acts_a.shape
    _, Ho, Wo = net.architecture.layer("b").shape
    k, s, pad = proj.kernel, proj.stride, proj.padding
    per_tile = {}
    for d, tile in enumerate(pb.tiles):
        n = {"macs": 0, "steps": 0, "sram": 0, "dram": 0, "act_read": 0, "packets_in": 0}
        keep = pb.projections[0].rows_in_sram[d]
        y0, y1 = pb.row_start[d], pb.row_end[d]
        positions = (y1 - y0) * Wo
        for _ in range(pb.channel_start[d], pb.channel_end[d]):
            for g in range(-(-positions // U)):
                for ci in range(C):
                    for ky in range(k):
                        for kx in range(k):
                            lanes = []
                            for lane in range(U):
                                pos = g * U + lane
                                if pos >= positions:
                                    continue
                                oy, ox = y0 + pos // Wo, pos % Wo
                                y, x = oy * s - pad + ky, ox * s - pad + kx
                                if 0 <= y < H and 0 <= x < W:
                                    lanes.append(acts_a[ci, y, x])
                            if not lanes:
                                continue
                            n["steps"] += 1
                            n["sram" if ci < keep else "dram"] += wb
                            for v in lanes:
                                if zs and v == 0:
                                    continue
                                n["macs"] += 1
                                n["act_read"] += ab
        per_tile[int(tile)] = n
    # packets from a's tiles into b's tiles: one per (activation, tile whose outputs it feeds)
    out_hops = {int(t): [0, 0, 0] for t in pa.tiles}  # packets, hops x, hops y
    cols = hw.mesh.cols
    for ci in range(C):
        for y in range(H):
            for x in range(W):
                if zs and acts_a[ci, y, x] == 0:
                    continue
                src = _holder(pa, ci, y)
                for d, tile in enumerate(pb.tiles):
                    reaches = any(0 <= y + pad - oy * s < k and 0 <= x + pad - ox * s < k
                                  for oy in range(pb.row_start[d], pb.row_end[d])
                                  for ox in range(Wo))
                    if not reaches:
                        continue
                    per_tile[int(tile)]["packets_in"] += 1
                    out_hops[src][0] += 1
                    out_hops[src][1] += abs(src % cols - int(tile) % cols)
                    out_hops[src][2] += abs(src // cols - int(tile) // cols)
    return {"b": per_tile, "a": out_hops}


def _bands(place) -> int:
    """How many row bands the layer's first channel is cut into."""
    return int((place.channel_start == place.channel_start[0]).sum())


def _groups(place) -> int:
    return len(np.unique(place.channel_start))


@pytest.mark.parametrize("banded", [False, True], ids=["whole-channels", "row-bands"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("zero_skipping", [False, True])
def test_conv_layer_counters_equal_the_loop_nest(stride, zero_skipping, banded):
    net = _conv_net(stride)
    if banded:  # a: 3 channel groups, b: 5, the first of each cut into 2 row bands
        hw = _chip(zero_skipping, mesh=(3, 4), sram_bits=150)
        mapping = map_network(net, hw, {"a": 4, "b": 6, "out": 1})
        pa, pb = mapping.placement("a"), mapping.placement("b")
        assert _groups(pa) == 3 and _bands(pa) == 2
        assert _groups(pb) == 5 and _bands(pb) == 2
    else:
        hw = _chip(zero_skipping)
        mapping = map_network(net, hw, {"a": 2, "b": 3, "out": 1})
        assert _bands(mapping.placement("a")) == _bands(mapping.placement("b")) == 1
    assert len(mapping.placement("b").tiles) > 1  # the count is split over tiles
    assert (mapping.placement("b").spilled_bits > 0).any()  # some rows come from DRAM
    x = np.random.default_rng(1).normal(size=(2, 2, 6, 5))
    acts = ann.activations(net, x)
    assert (acts["a"] == 0).mean() > 0.2  # ReLU zeros to skip
    counts = ann.count(net, hw, mapping, acts, zero_skipping, len(x))
    for i in range(len(x)):
        expected = _loop_nest(net, hw, mapping, acts["a"][i], zero_skipping)
        for tile, n in expected["b"].items():
            got = {k: int(counts[k][i, tile]) for k in n}
            assert got == n, (tile, got, n)
        for tile, (packets, hx, hy) in expected["a"].items():
            assert (counts["packets_out"][i, tile], counts["hops_x"][i, tile],
                    counts["hops_y"][i, tile]) == (packets, hx, hy)


@pytest.mark.parametrize("zero_skipping", [False, True])
def test_pool_windows_cut_by_a_band_are_gathered_then_sent_by_kernel_window(zero_skipping):
    """a pooled 2 x 2 into b; a's first channel is cut into rows 0:3 and 3:6, so its windows on
    rows 2-3 straddle two tiles. Brute force: every activation of a straddling window on
    another tile goes to the tile of the window's top-left neuron, which pools it; every pooled
    activation goes to each tile of b whose band its kernel window reaches."""
    net = _conv_net(1, pool=2, width=4)
    hw = _chip(zero_skipping, mesh=(3, 4), sram_bits=150)
    mapping = map_network(net, hw, {"a": 4, "b": 6, "out": 1})
    pa, pb = mapping.placement("a"), mapping.placement("b")
    assert _bands(pa) == 2 and pa.row_end[0] % 2 == 1  # a band boundary inside a window
    assert _bands(pb) == 2
    x = np.random.default_rng(3).normal(size=(2, 2, 6, 4))
    acts = ann.activations(net, x)
    counts = ann.count(net, hw, mapping, acts, zero_skipping, len(x))
    proj = net.architecture.layer("b").inputs[0]
    k, s, pad = proj.kernel, proj.stride, proj.padding
    _, Ho, Wo = net.architecture.layer("b").shape
    cols = hw.mesh.cols
    for i in range(len(x)):
        a = acts["a"][i]
        out = {int(t): [0, 0, 0] for t in pa.tiles}  # packets, hops x, hops y
        into = {int(t): 0 for t in list(pa.tiles) + list(pb.tiles)}
        adds = {int(t): 0 for t in pa.tiles}

        def send(src: int, dst: int, out=out, into=into) -> None:
            out[src][0] += 1
            out[src][1] += abs(src % cols - dst % cols)
            out[src][2] += abs(src // cols - dst // cols)
            into[dst] += 1

        for ci in range(3):
            for py in range(3):
                for px in range(2):
                    owner = _holder(pa, ci, 2 * py)
                    adds[owner] += 3
                    for y in (2 * py, 2 * py + 1):
                        for xx in (2 * px, 2 * px + 1):
                            held = _holder(pa, ci, y)
                            if held != owner and not (zero_skipping and a[ci, y, xx] == 0):
                                send(held, owner)
                    if zero_skipping and a[ci, 2 * py:2 * py + 2, 2 * px:2 * px + 2].mean() == 0:
                        continue
                    for d, tile in enumerate(pb.tiles):
                        if any(0 <= py + pad - oy * s < k and 0 <= px + pad - ox * s < k
                               for oy in range(pb.row_start[d], pb.row_end[d])
                               for ox in range(Wo)):
                            send(owner, int(tile))
        assert sum(into[int(t)] for t in pa.tiles) > 0  # some windows were gathered
        for t, (packets, hx, hy) in out.items():
            assert (counts["packets_out"][i, t], counts["hops_x"][i, t],
                    counts["hops_y"][i, t], counts["pool_adds"][i, t]) == (
                        packets, hx, hy, adds[t]), t
        for t, n in into.items():
            assert counts["packets_in"][i, t] == n, t


def test_without_zeros_skipping_changes_nothing():
    net = _conv_net(1)
    positive = net.model_copy(update={"weights": {k: np.abs(v) for k, v in
                                                  net.weights.items()}})
    x = np.abs(np.random.default_rng(2).normal(size=(2, 2, 6, 5))) + 0.1
    dense = ann.simulate_ann(positive, x, None, _chip(False))
    sparse = ann.simulate_ann(positive, x, None, _chip(True))
    assert dense.layers.equals(sparse.layers)
    real = ann.simulate_ann(net, x, None, _chip(True)).layers
    assert (real[col.MACS] <= dense.layers[col.MACS]).all()
    assert real[col.MACS].sum() < dense.layers[col.MACS].sum()


def test_priced_component_by_component():
    net = _conv_net(1)
    hw = _chip(False)
    res = ann.simulate_ann(net, np.ones((1, 2, 6, 5)), np.array([0]), hw)
    layers = res.layers
    assert np.allclose(layers[list(col.ENERGY_COLUMNS)].sum(axis=1), layers[col.ENERGY])
    assert np.allclose(layers["energy_mac_pj"], layers[col.MACS] * hw.energy.mac_pj)
    assert np.allclose(layers["energy_membrane_pj"],
                       layers[ann.ACTIVATION_READ_BITS] * hw.membrane_read_pj_per_bit
                       + layers[ann.ACTIVATION_WRITE_BITS] * hw.membrane_write_pj_per_bit)
    assert np.allclose(layers["energy_dram_pj"],
                       layers[col.DRAM_READ_BITS] * hw.energy.dram_pj_per_bit)
    assert np.isclose(res.images[col.ENERGY_UJ].iloc[0], layers[col.ENERGY].sum() / 1e6)
    # static energy: powered tiles x latency x power
    tiles = map_network(net, hw).tiles_used
    assert np.isclose(layers["energy_static_pj"].sum(), tiles * res.images[
        col.TOTAL_CYCLES].iloc[0] * hw.clock.cycle_ns * hw.tile.static_power_mw)


def test_timing_of_a_linear_chain_by_hand():
    # l0 on one tile; U=1, unit latencies, 1 x 3 mesh.
    net = chain([3], inputs=2)  # input (2,) -> l0: 3 units -> out: 1 unit, weights 1
    hw = load_hardware("45nm-generic", {
        "mesh.rows": 1, "mesh.cols": 3, "tile.accumulate_units": 1,
        "tile.neuron_update_units": 1, "noc.hop_latency_x_cycles": 2,
        "schedule.barrier_cycles": 5})
    mapping = map_network(net, hw, {"l0": 1, "out": 1})
    res = ann.simulate_ann(net, np.ones((1, 2)), None, hw, schedule="barrier", mapping=mapping)
    # l0 (tile 0): MAC 2 inputs x 3 units = 6 steps; fire 3 neurons = 3; send 3 packets
    # (1 cycle each) to tile 1, 1 hop of 2 cycles: arrives at 6 + 3 + 3 + 2 = 14.
    # out (tile 1): barrier 5, MAC 3 steps, fire 1: ends at 14 + 5 + 3 + 1 = 23.
    assert res.layers[col.CYCLES].tolist() == [14, 9]
    assert res.images[col.TOTAL_CYCLES].tolist() == [23]
    assert res.layers[col.NOC_PACKETS].tolist() == [3, 0]
    assert res.layers[col.NOC_HOPS].tolist() == [3, 0]


SHIPPED = sorted(p for p in (ROOT / "trained_models").glob("*.json"))


@pytest.mark.parametrize("manifest", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_model_ships_its_ann(manifest):
    from accelsim.model.modelfile import read_manifest

    info = read_manifest(ann.ann_model_path(manifest))
    snn = read_manifest(manifest)
    assert info.accuracies.ann is not None
    assert info.dataset == snn.dataset
    assert np.allclose(info.normalisation.std, snn.normalisation.std, rtol=1e-12)
    assert np.allclose(info.normalisation.mean, snn.normalisation.mean, rtol=1e-12)
    graph = [[(x.name, x.kind, x.shape, x.inputs) for x in m.architecture.layers]
             for m in (info, snn)]
    assert graph[0] == graph[1]
    assert info.weights == snn.weights
    assert ann.load_ann(manifest) is not None


def test_results_carry_the_ann_beside_the_snn(tmp_path, monkeypatch):
    from scenario_support import save_tiny_model, use_fake_chip, write_scenario
    from typer.testing import CliRunner

    from accelsim.cli import app
    from accelsim.model.modelfile import load_model, save_model
    from accelsim.workflow import points as P
    from accelsim.workflow import results as R
    from accelsim.workflow import runner
    from accelsim.workflow.plots import figures

    use_fake_chip(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trained_models").mkdir()
    snn = load_model(save_tiny_model(tmp_path / "trained_models"))
    path = write_scenario(tmp_path, "name: one\nmodel: tiny\ndata: {images: 5}\n")
    res = R.load(runner.run(path, scheduler=runner.SERIAL, progress=False).folder)
    row = res.summary.iloc[0]
    assert np.isnan(row[col.ANN_ACCURACY])  # no ANN weights shipped: no accuracy
    assert (res.images[col.ANN_PREDICTION] == -1).all()
    n = len(res.images)
    assert row[col.ANN_ENERGY_UJ] == pytest.approx(res.images[col.ANN_ENERGY_UJ].mean())
    assert row[col.ANN_ENERGY_UJ] == pytest.approx(res.layers[col.ANN_ENERGY].sum() / n / 1e6)
    assert row[col.SNN_TO_ANN_ENERGY] == pytest.approx(row[col.ENERGY_UJ] / row[col.ANN_ENERGY_UJ])
    assert row[col.SNN_TO_ANN_COMPUTE_ONLY] == pytest.approx(
        row[col.COMPUTE_ONLY_SNN_UJ] / row[col.COMPUTE_ONLY_ANN_UJ])
    assert (res.layers.loc[res.layers[col.TIMESTEP] > 1, col.ANN_ENERGY] == 0).all()
    table = ann.by_layer(res.layers)
    assert table.loc["total", "ann_energy_uj"] == pytest.approx(row[col.ANN_ENERGY_UJ])
    assert table.loc["total", "ann_finish_cycles"] == pytest.approx(
        res.images[col.ANN_TOTAL_CYCLES].mean())
    assert "ann_ratios" in figures(res)
    out = CliRunner().invoke(app, ["report", str(res.folder)])
    assert out.exit_code == 0 and "SNN vs the ANN on the same chip" in out.output
    # with an ANN file beside the model, its accuracy is reported
    ann_net = snn.model_copy(update={"weights": {k: -v for k, v in snn.weights.items()}})
    save_model(ann.ann_model_path(tmp_path / "trained_models" / "tiny"), ann_net)
    res = R.load(runner.run(path, scheduler=runner.SERIAL, progress=False,
                            out=tmp_path / "again").folder)
    point = P.resolve(*P.load(path))[0]
    x, _, _ = runner.select_images(point, snn)
    expected = ann.activations(ann_net, x)["output"].argmax(axis=1)
    assert res.images[col.ANN_PREDICTION].tolist() == expected.tolist()
    assert res.summary.iloc[0][col.ANN_ACCURACY] == pytest.approx(
        (expected == res.images[col.LABEL].to_numpy()).mean())


def test_zero_skipping_without_ann_weights_is_refused(tmp_path):
    net = _conv_net(1)
    with pytest.raises(ValueError, match=r"ann/tiny.json does not exist"):
        ann.network_for(tmp_path / "tiny", net, _chip(True))
    assert ann.network_for(tmp_path / "tiny", net, _chip(False)) == (net, False)
    assert ann.fingerprint(tmp_path / "tiny") == ""


def test_shipped_ann_accuracy_is_its_test_split_accuracy():
    from accelsim.model.data import load_images, normalise
    from accelsim.model.modelfile import read_manifest

    path = ann.ann_model_path(ROOT / "trained_models" / "digits-vgg5")
    net = ann.load_ann(ROOT / "trained_models" / "digits-vgg5")
    test = load_images("digits", "test")
    x = normalise(test.images, net.input_mean, net.input_std)
    pred = ann.activations(net, x)["output"].argmax(axis=1)
    assert 100 * (pred == test.labels).mean() == pytest.approx(
        read_manifest(path).accuracies.ann, abs=1e-9)


def test_layer_totals_do_not_depend_on_the_blocks():
    """A shipped residual network (identity shortcuts, pooling) on two meshes, cut into
    different channel groups x row bands: per layer, MACs and additions sum to the same totals
    (linear layers' activation reads do not: each tile reads its inputs once per ``U`` of its
    units), and every packet sent is received."""
    net = ann.load_ann(ROOT / "trained_models" / "mnist5k-resnet-small")
    x = np.random.default_rng(4).normal(size=(2,) + tuple(net.architecture.input_shape))
    acts = ann.activations(net, x)
    totals = []
    for mesh in ((8, 8), (12, 12)):
        hw = load_hardware("45nm-generic", {"mesh.rows": mesh[0], "mesh.cols": mesh[1]})
        mapping = map_network(net, hw)
        assert any(len(np.unique(p.row_start)) > 1 for p in mapping.layers)  # row bands
        c = ann.count(net, hw, mapping, acts, True, len(x))
        assert (c["packets_out"].sum(axis=1) == c["packets_in"].sum(axis=1)).all()
        assert (c["hops_x"] + c["hops_y"]).sum() > 0
        totals.append({p.layer.name: [int(c[k][:, p.tiles].sum()) for k in ("macs", "adds")]
                       for p in mapping.layers})
    blocks = [[(p.channel_start.tolist(), p.row_start.tolist()) for p in
               map_network(net, load_hardware("45nm-generic", {"mesh.rows": m, "mesh.cols": m}))
               .layers] for m in (8, 12)]
    assert blocks[0] != blocks[1]
    assert totals[0] == totals[1]
