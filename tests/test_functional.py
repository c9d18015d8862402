"""``accelsim.spiking.functional.run``: hand-computed trajectories, closed forms, and PyTorch
float64."""

from __future__ import annotations

import os

import naive  # tests/naive.py: pytest puts tests/ on sys.path
import numpy as np
import pytest

from accelsim.model.network import Architecture, Layer, Network, Projection
from accelsim.spiking.functional import FunctionalResult, SpikeTrain, run
from accelsim.workflow import columns as col


def _chain(input_value: float, layers: list[tuple[str, float, float, list[list[float]]]],
           out_weight: list[list[float]]) -> tuple[Network, np.ndarray]:
    """A chain of linear spiking layers (name, leak, threshold, weight) fed by one analog input."""
    built, weights, source = [], {}, "input"
    for name, leak, threshold, w in layers:
        w = np.asarray(w, dtype=np.float32)
        built.append(Layer(name=name, kind="spiking", shape=(w.shape[0],), leak=leak,
                           threshold=threshold, inputs=(Projection(
                               source=source, op="linear", weight=f"{name}.w"),)))
        weights[f"{name}.w"] = w
        source = name
    out = np.asarray(out_weight, dtype=np.float32)
    built.append(Layer(name="out", kind="output", shape=(out.shape[0],),
                       inputs=(Projection(source=source, op="linear", weight="out.w"),)))
    weights["out.w"] = out
    arch = Architecture(name="chain", input_shape=(1,), num_classes=out.shape[0],
                        layers=tuple(built))
    net = Network(architecture=arch, weights=weights, input_mean=(0.0,), input_std=(1.0,))
    return net, np.array([[input_value]])


def _rows(result: FunctionalResult, layer: str) -> dict[str, list[int]]:
    frame = result.counts[result.counts[col.LAYER] == layer].sort_values(col.TIMESTEP)
    return {c: frame[c].tolist() for c in col.FUNCTIONAL_COUNTS[3:]}


def test_leaky_neuron_with_soft_reset_by_hand():
    # h0: I = 0.8, leak 0.5, v = 1: u = .8, 1.2 -> fire, .2 ; .9 ; 1.25 -> fire, .25 ; .925
    # h1: I = 0.4 never reaches 1 (u = .4, .6, .7, .75, .775)
    net, x = _chain(0.8, [("h", 0.5, 1.0, [[1.0], [0.5]])], [[2.0, 1.0], [-1.0, 3.0]])
    result = run(net, x, record_spikes=True)
    train = result.spikes[0]["h"]
    np.testing.assert_array_equal(train.offsets, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(train.indices, [0, 0])
    np.testing.assert_allclose(result.output, [[4.0, -2.0]])
    assert result.predictions.tolist() == [0]
    h = _rows(result, "h")
    assert h[col.SPIKES_IN] == [0] * 5
    assert h[col.SPIKES_OUT] == [0, 1, 0, 1, 0]
    assert h[col.MACS] == [2, 0, 0, 0, 0]  # first layer: its constant current, computed once
    assert h[col.SYNAPTIC_OPS] == [0] * 5
    assert h[col.NEURON_UPDATES] == h[col.ACTIVE_NEURON_UPDATES] == [2] * 5
    out = _rows(result, "out")
    assert out[col.SPIKES_IN] == [0, 1, 0, 1, 0]
    assert out[col.SPIKES_OUT] == [0] * 5
    assert out[col.SYNAPTIC_OPS] == [0, 2, 0, 2, 0]
    assert out[col.ACTIVE_NEURON_UPDATES] == [0, 2, 0, 2, 0]
    assert out[col.NEURON_UPDATES] == [2] * 5


def test_threshold_is_strict_and_spikes_pass_without_delay():
    # a: I = 0.5, leak 1, v = 1: u = .5, 1.0 (not > 1), 1.5 -> fire, .5, 1.0, 1.5 -> fire
    # b: weight 1, leak 0.9, v = 1.5 gets a's spikes in the same timestep:
    #    u = 0, 0, 1, .9, .81 + 1 = 1.81 -> fire (.31)
    net, x = _chain(0.5, [("a", 1.0, 1.0, [[1.0]]), ("b", 0.9, 1.5, [[1.0]])], [[1.0], [0.0]])
    result = run(net, x, record_spikes=True)
    assert result.spikes[0]["a"].counts().tolist() == [0, 0, 1, 0, 1]
    assert result.spikes[0]["b"].counts().tolist() == [0, 0, 0, 0, 1]
    b = _rows(result, "b")
    assert b[col.SPIKES_IN] == [0, 0, 1, 0, 1]
    assert b[col.SYNAPTIC_OPS] == [0, 0, 1, 0, 1]
    assert b[col.ACTIVE_NEURON_UPDATES] == [0, 0, 1, 0, 1]
    np.testing.assert_allclose(result.output, [[1.0, 0.0]])
    # Longer runs keep the membrane: at T=7, a fires again at t=7 (u: .5, 1.0, 1.5 ...)
    assert run(net, x, timesteps=7, record_spikes=True).spikes[0]["a"].counts().tolist() == [
        0, 0, 1, 0, 1, 0, 1]


def test_negative_current_never_fires_and_membrane_goes_below_zero():
    net, x = _chain(1.0, [("h", 1.0, 0.5, [[-1.0], [2.0]])], [[1.0, 1.0], [0.0, 0.0]])
    result = run(net, x, record_spikes=True)
    train = result.spikes[0]["h"]
    # neuron 1 gets 2.0 each step: u = 2 -> fire (1.5), 3.5 -> fire (3.0), ... every step
    assert train.counts().tolist() == [1] * 5
    np.testing.assert_array_equal(train.indices, [1] * 5)


def _net_and_images(arch: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(6, 1, 8, 8))
    net = naive.calibrated_network(arch, (1, 8, 8), 0.25 if arch == "vgg5" else 0.5, seed,
                                   images)
    return net, images


@pytest.fixture(scope="module", params=["vgg5", "resnet-small"])
def small(request):
    net, images = _net_and_images(request.param)
    return net, images, run(net, images, record_spikes=True)


def test_counts_follow_the_spike_trains_and_closed_forms(small):
    """spikes_in/out from the trains; ops = sum of fan-outs of the input spikes; updates = N*T."""
    net, images, result = small
    T = net.timesteps
    frame = result.counts.set_index([col.IMAGE, col.LAYER, col.TIMESTEP])
    assert len(frame) == len(images) * len(net.layers) * T
    arch = net.architecture
    fanouts = {(layer.name, j): _fanout(arch, layer, p) for layer in net.layers
               for j, p in enumerate(layer.inputs) if p.source != "input"}
    for i in range(len(images)):
        trains = result.spikes[i]
        for layer in net.layers:
            rows = frame.xs((i, layer.name), level=(0, 1))
            np.testing.assert_array_equal(rows[col.NEURON_UPDATES], [layer.neurons] * T)
            np.testing.assert_array_equal(rows[col.NEURONS], [layer.neurons] * T)
            assert (rows[col.ACTIVE_NEURON_UPDATES] <= layer.neurons).all()
            if layer.kind == "spiking":
                np.testing.assert_array_equal(rows[col.SPIKES_OUT], trains[layer.name].counts())
            sources = {p.source for p in layer.inputs} - {"input"}
            expected_in = sum((trains[s].counts() for s in sources), np.zeros(T, dtype=np.int64))
            np.testing.assert_array_equal(rows[col.SPIKES_IN], expected_in)
            expected_ops = np.zeros(T, dtype=np.int64)
            for j, p in enumerate(layer.inputs):
                if p.source == "input":
                    continue
                fanout = fanouts[layer.name, j]
                for t in range(T):
                    expected_ops[t] += fanout[trains[p.source].at(t)].sum()
            np.testing.assert_array_equal(rows[col.SYNAPTIC_OPS], expected_ops)


def _fanout(arch: Architecture, layer: Layer, p: Projection) -> np.ndarray:
    """Per source neuron (flat CHW), the accumulations one of its spikes causes through ``p``."""
    shape = arch.source_shape(p.source)
    if p.op == "identity":
        return np.ones(int(np.prod(shape)), dtype=np.int64)
    if p.op == "linear":
        return np.full(int(np.prod(shape)), layer.neurons, dtype=np.int64)
    c, h, w = shape
    pooled = naive.conv_fanout(c, h // p.pool, w // p.pool, layer.shape[0], p.kernel, p.stride,
                               p.padding)
    return naive.pooled_fanout(pooled, p.pool).ravel()


def test_spike_trains_are_sorted_int_arrays(small):
    net, images, result = small
    assert len(result.spikes) == len(images)
    for trains in result.spikes:
        assert set(trains) == {la.name for la in net.layers if la.kind == "spiking"}
        for name, train in trains.items():
            assert isinstance(train, SpikeTrain)
            assert train.offsets.dtype == np.int64 and train.indices.dtype == np.int32
            assert train.offsets[0] == 0 and train.offsets[-1] == len(train.indices)
            for t in range(net.timesteps):
                spikes = train.at(t)
                assert (np.diff(spikes) > 0).all()
                assert spikes.size == 0 or 0 <= spikes.min() <= spikes.max() < (
                    net.architecture.layer(name).neurons)


def test_recording_changes_nothing_else(small):
    net, images, result = small
    plain = run(net, images)
    assert plain.spikes is None
    np.testing.assert_array_equal(plain.output, result.output)
    np.testing.assert_array_equal(plain.predictions, result.predictions)
    assert plain.counts.equals(result.counts)


def test_first_layer_macs_only_at_timestep_one(small):
    net, _, result = small
    first = net.layers[0]
    rows = result.counts[result.counts[col.LAYER] == first.name]
    c, h, w = net.architecture.input_shape
    p = first.inputs[0]
    expected = naive.conv_real_taps(c, h, w, first.shape[0], p.kernel, p.stride, p.padding)
    assert (rows.loc[rows[col.TIMESTEP] == 1, col.MACS] == expected).all()
    assert (rows.loc[rows[col.TIMESTEP] > 1, col.MACS] == 0).all()
    assert (result.counts.loc[result.counts[col.LAYER] != first.name, col.MACS] == 0).all()
    assert (rows[col.SPIKES_IN] == 0).all()


def test_matches_torch_float64(small):
    """Predictions, logits and per-layer per-timestep spike counts equal the PyTorch reference."""
    import torch

    from accelsim.training.torch_snn import SpikingNetwork

    net, images, result = small
    with torch.no_grad():
        ref = SpikingNetwork.from_network(net).double().forward_snn(
            torch.from_numpy(images), net.timesteps, record=True)
    spiking = [la.name for la in net.layers if la.kind == "spiking"]
    mine = np.array([[trains[n].counts() for n in spiking] for trains in result.spikes])
    assert mine.sum() > 0 and (mine.sum(axis=(0, 2)) > 0).all()  # every layer spikes
    np.testing.assert_array_equal(mine, ref.spike_counts.numpy().astype(np.int64))
    np.testing.assert_array_equal(result.predictions, ref.logits.argmax(1).numpy())
    np.testing.assert_allclose(result.output, ref.logits.numpy(), rtol=1e-9, atol=1e-9)


def test_bad_input_is_named():
    net, x = _chain(0.5, [("a", 1.0, 1.0, [[1.0]])], [[1.0]])
    with pytest.raises(ValueError, match=r"images have shape \(1, 2\)"):
        run(net, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="dtype int64"):
        run(net, np.zeros((1, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="NaN"):
        run(net, np.full((1, 1), np.nan))
    with pytest.raises(ValueError, match="timesteps must be >= 1"):
        run(net, x, timesteps=0)
    with pytest.raises(ValueError, match="arithmetic must be"):
        run(net, x, arithmetic="double")  # type: ignore[arg-type]


def test_no_images_gives_empty_result():
    net, _ = _chain(0.5, [("a", 1.0, 1.0, [[1.0]])], [[1.0]])
    result = run(net, np.zeros((0, 1)), record_spikes=True)
    assert result.predictions.shape == (0,) and result.output.shape == (0, 1)
    assert result.spikes == [] and len(result.counts) == 0


@pytest.mark.parametrize("rounding", ["floor", "truncate"])
@pytest.mark.parametrize("bits", [dict(), dict(weight_bits=4, leak_bits=3, membrane_bits=14)])
def test_fixed_matches_quantised_torch_reference(small, bits, rounding):
    """Spike trains and output bit-exact against the dense integer reference (leaks < 1, and
    with narrow membranes that saturate), in both leak roundings."""
    from accelsim.spiking.quantize import Quantization, quantise_network
    from accelsim.spiking.testing import reference_forward

    net, images, _ = small
    q = Quantization(**bits, leak_rounding=rounding)
    qnet = quantise_network(net, q)
    if bits:
        assert min(qnet.thresholds.values()) > 0 and qnet.hi == 2**13 - 1
    result = run(net, images, arithmetic="fixed", quantization=q, record_spikes=True)
    ref = reference_forward(qnet, images, net.timesteps)
    np.testing.assert_array_equal(result.predictions, ref.predictions)
    naive.assert_spikes_equal_reference(result, ref, net.timesteps)


def test_fixed_leak_floors_and_saturates_by_hand():
    """One neuron, leak 0.75 -> multiplier 3 with leak_bits=2; input scale 1/127 per unit.

    x = 127/127 = 1.0 -> x_q = 127; weight 0.5 is the max, so it is 127 with m = 0.5/127 and the
    unit is m * s_x; threshold 0.6 -> round(0.6 / unit).
    """
    from accelsim.spiking.quantize import Quantization, quantise_network

    net, _ = _chain(1.0, [("h", 0.75, 0.6, [[0.5]])], [[1.0]])
    net = net.model_copy(update={"input_mean": (0.0,), "input_std": (1.0,)})
    q = Quantization(leak_bits=2, membrane_bits=16)
    qnet = quantise_network(net, q)
    assert qnet.leaks["h"] == 3 and qnet.weights["h.w"].tolist() == [[127]]
    v = qnet.thresholds["h"]
    assert v == round(0.6 / ((0.5 / 127) * (1.0 / 127)))
    result = run(net, np.array([[1.0]]), arithmetic="fixed", quantization=q, record_spikes=True)
    u, expected = 0, []
    for _ in range(5):  # I = 127 * 127 each step
        u = (u * 3 >> 2) + 127 * 127
        fired = u > v
        u -= v * fired
        expected.append(int(fired))
    assert result.spikes[0]["h"].counts().tolist() == expected
    assert 0 < sum(expected) < 5


def test_fixed_floor_and_truncate_give_different_spikes(small):
    """The two leak roundings differ on negative membranes (leaks < 1 here), enough to move
    spikes; each still equals its own reference above."""
    from accelsim.spiking.quantize import Quantization

    net, images, _ = small
    assert min(layer.leak for layer in net.layers if layer.kind == "spiking") < 1
    floor, trunc = (run(net, images, arithmetic="fixed", record_spikes=True,
                        quantization=Quantization(leak_rounding=r))
                    for r in ("floor", "truncate"))
    differ = [not np.array_equal(a[name].indices, b[name].indices)
              for a, b in zip(floor.spikes, trunc.spikes, strict=True) for name in a]
    assert any(differ)


def test_core_modules_import_without_a_cycle_and_without_torch():
    """functional -> quantize -> core, never back; the PyTorch oracle stays off the simulator's
    import path."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "accelsim"

    def imports(name: str) -> set[str]:
        tree = ast.parse((package / "spiking" / f"{name}.py").read_text())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        return found

    assert "accelsim.spiking.quantize" in imports("functional")
    assert "accelsim.spiking.functional" not in imports("quantize") | imports("core")
    assert not {"accelsim.spiking.functional", "accelsim.spiking.quantize"} & imports("core")
    code = ("import sys, accelsim, accelsim.spiking.quantize\n"
            "import accelsim.chip.fast, accelsim.chip.reference\n"
            "assert 'torch' not in sys.modules and 'accelsim.spiking.testing' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1",
                    reason="large maps: too slow as plain Python")
# resnet-small's last pool folds weights to values that are no float32: a second compile
@pytest.mark.parametrize("arch", ["vgg5", pytest.param("resnet-small", marks=pytest.mark.slow)])
def test_one_image_split_among_threads_is_bit_identical(arch, monkeypatch):
    """An image whose large layers share each step among the threads (conv tiles of output
    rows, neuron updates by chunks of positions) gives the spikes, counts and output of the
    image run whole on one thread, exactly, in float and fixed arithmetic."""
    from accelsim.spiking import kernels as k
    from accelsim.spiking.core import build_tables

    image = np.random.default_rng(3).normal(size=(1, 1, 96, 96))
    net = naive.calibrated_network(arch, (1, 96, 96), 0.5, 3, image)
    layers = build_tables(net, net.timesteps).layers
    tiles = [-(-h // k.tile_rows(w, c)) for c, h, w in layers[:, [k.L_C, k.L_H, k.L_W]]]
    assert max(tiles) >= 4 and sum(t > 1 for t in tiles) >= 2  # several layers split
    for arithmetic in ("float", "fixed"):
        runs = {}
        for split in (False, True):
            monkeypatch.setattr(k, "split_images", lambda n, split=split: split)
            runs[split] = run(net, image, arithmetic=arithmetic, record_spikes=True)
        whole, shared = runs[False], runs[True]
        assert (whole.counts.groupby(col.LAYER)[col.SPIKES_OUT].sum() > 0).sum() >= 3
        np.testing.assert_array_equal(whole.output, shared.output)
        assert whole.counts.equals(shared.counts)
        for name, train in whole.spikes[0].items():
            np.testing.assert_array_equal(train.offsets, shared.spikes[0][name].offsets)
            np.testing.assert_array_equal(train.indices, shared.spikes[0][name].indices)


def test_weights_are_stored_as_float32_only_when_every_one_is_a_float32_value():
    from accelsim.spiking.core import build_tables

    net, _ = _net_and_images("vgg5", seed=5)
    narrow = net.model_copy(update={"weights": {name: w.astype(np.float32).astype(np.float64)
                                                for name, w in net.weights.items()}})
    assert build_tables(narrow, net.timesteps).weights.dtype == np.float32
    off = dict(narrow.weights)
    first = next(iter(off))
    off[first] = off[first].copy()
    off[first].flat[0] += 1e-12  # no float32 value any more
    wide = build_tables(narrow.model_copy(update={"weights": off}), net.timesteps)
    assert wide.weights.dtype == np.float64
    assert (wide.weights == off[first].flat[0]).any()  # the odd value is kept as it is


@pytest.mark.slow  # compiles the kernels once more, for float64-stored weights
@pytest.mark.parametrize("arch", ["vgg5", "resnet-small"])
def test_float32_stored_weights_give_the_float64_stored_sums(arch):
    """Weights stored as float32 are widened exactly as they are added: output, counts and
    spikes equal those of the same weights stored as float64, bit for bit."""
    import dataclasses

    from accelsim.spiking.core import build_tables, run_tables

    net, images = _net_and_images(arch, seed=5)
    net = net.model_copy(update={"weights": {name: w.astype(np.float32).astype(np.float64)
                                             for name, w in net.weights.items()}})
    x = images.reshape(len(images), -1)
    narrow = build_tables(net, net.timesteps)
    assert narrow.weights.dtype == np.float32
    wide = dataclasses.replace(narrow, weights=narrow.weights.astype(np.float64))
    a = run_tables(narrow, x, net.timesteps, record_spikes=True)
    b = run_tables(wide, x, net.timesteps, record_spikes=True)
    assert a.counts[col.SPIKES_OUT].sum() > 0
    np.testing.assert_array_equal(a.output, b.output)
    assert a.counts.equals(b.counts)
    for mine, theirs in zip(a.spikes, b.spikes, strict=True):
        for name, train in mine.items():
            np.testing.assert_array_equal(train.indices, theirs[name].indices)
