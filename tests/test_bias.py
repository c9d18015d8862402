"""Layer biases: a constant current per output channel or unit, added at every timestep.

The event-driven core against PyTorch (float64) and against the dense integer reference (fixed
point), a hand-computed trajectory, the chip's two modes against each other with the bias's
membrane traffic in closed form, and the model file round trip."""

from __future__ import annotations

import naive  # tests/naive.py: pytest puts tests/ on sys.path
import numpy as np
import pytest

from accelsim.chip.simulation import replay, simulate
from accelsim.model.modelfile import load_model, save_model
from accelsim.model.network import Architecture, Layer, Network, Projection
from accelsim.spiking.functional import run
from accelsim.workflow import columns as col


@pytest.fixture(scope="module", params=["vgg5", "resnet-small"])
def biased(request):
    rng = np.random.default_rng(3)
    images = rng.normal(size=(5, 1, 8, 8))
    net = naive.calibrated_network(request.param, (1, 8, 8),
                                   0.25 if request.param == "vgg5" else 0.5, 0, images)
    return naive.with_biases(net, 1, 0.3), images


def test_every_tensor_is_checked_and_named():
    net = naive.calibrated_network("vgg5", (1, 8, 8), 0.25, 0, np.ones((1, 1, 8, 8)))
    b = naive.with_biases(net, 0, 0.1)
    assert {la.bias for la in b.layers} <= set(b.architecture.weight_shapes())
    assert b.architecture.weight_shapes()["conv1.bias"] == (b.layers[0].shape[0],)
    wrong = dict(b.weights, **{"conv1.bias": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match=r"weight 'conv1.bias' has shape \(3,\)"):
        Network(architecture=b.architecture, weights=wrong, input_mean=(0.0,), input_std=(1.0,))
    clash = b.layers[1].model_copy(update={"bias": "conv1.bias"})
    with pytest.raises(ValueError, match="bias name 'conv1.bias' is also a weight or another"):
        Architecture(name="x", input_shape=(1, 8, 8), num_classes=b.architecture.num_classes,
                     layers=(b.layers[0], clash, *b.layers[2:]))


def test_a_bias_alone_drives_a_neuron_by_hand():
    # h is fed by spikes of g that never come (g's input is 0); its bias 0.4 every step, leak
    # 0.5, v = 0.5: u = .4, .6 -> fire, .1 -> .45, .625 -> fire (.125), .4625
    g = Layer(name="g", kind="spiking", shape=(1,), threshold=1.0,
              inputs=(Projection(source="input", op="linear", weight="g.w"),))
    h = Layer(name="h", kind="spiking", shape=(2,), leak=0.5, threshold=0.5, bias="h.b",
              inputs=(Projection(source="g", op="linear", weight="h.w"),))
    out = Layer(name="out", kind="output", shape=(1,), bias="out.b",
                inputs=(Projection(source="h", op="linear", weight="out.w"),))
    arch = Architecture(name="bias", input_shape=(1,), num_classes=1, layers=(g, h, out))
    weights = {"g.w": np.ones((1, 1), np.float32), "h.w": np.ones((2, 1), np.float32),
               "h.b": np.array([0.4, -1.0], np.float32), "out.w": np.full((1, 2), 2, np.float32),
               "out.b": np.array([0.25], np.float32)}
    net = Network(architecture=arch, weights=weights, input_mean=(0.0,), input_std=(1.0,))
    result = run(net, np.zeros((1, 1)), record_spikes=True)
    np.testing.assert_array_equal(result.spikes[0]["h"].counts(), [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(result.spikes[0]["h"].indices, [0, 0])
    # the output sums 2 per spike of h plus its bias at each of the 5 steps
    np.testing.assert_allclose(result.output, [[2 * 2 + 5 * 0.25]], rtol=0, atol=1e-6)
    rows = result.counts.set_index([col.LAYER, col.TIMESTEP])
    for name, n in (("h", 2), ("out", 1)):
        # a biased neuron is active every step; a bias is no synaptic op and no MAC
        assert (rows.loc[name][col.ACTIVE_NEURON_UPDATES] == n).all()
        assert (rows.loc[name][col.MACS] == 0).all()
    assert (rows.loc["h"][col.SYNAPTIC_OPS] == 0).all()
    assert (rows.loc["g"][col.ACTIVE_NEURON_UPDATES] == 1).all()  # the analog-fed layer


def test_float_spikes_equal_pytorch_float64(biased):
    import torch

    from accelsim.training.torch_snn import SpikingNetwork

    net, images = biased
    result = run(net, images, record_spikes=True)
    module = SpikingNetwork.from_network(net).double()
    spikes: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        ref = module.forward_snn(torch.from_numpy(images), net.timesteps, record=True)
        # the spike maps themselves: rerun layer by layer with the module's own current()
        membranes, x = {}, {"input": torch.from_numpy(images)}
        for _ in range(net.timesteps):
            out = dict(x)
            for layer in net.layers:
                current = module.current(layer, out)
                if layer.kind == "output":
                    continue
                u = float(layer.leak) * membranes.get(layer.name, 0.0) + current
                o = (u > layer.threshold).double()
                membranes[layer.name] = u - layer.threshold * o
                out[layer.name] = o
                spikes.setdefault(layer.name, []).append(o.flatten(1).numpy())
    spiking = [la.name for la in net.layers if la.kind == "spiking"]
    mine = np.array([[trains[n].counts() for n in spiking] for trains in result.spikes])
    assert (mine.sum(axis=(0, 2)) > 0).all()  # every layer spikes
    np.testing.assert_array_equal(mine, ref.spike_counts.numpy().astype(np.int64))
    for i, trains in enumerate(result.spikes):
        for name in spiking:
            for t in range(net.timesteps):
                np.testing.assert_array_equal(trains[name].at(t),
                                              np.flatnonzero(spikes[name][t][i]))
    np.testing.assert_allclose(result.output, ref.logits.numpy(), rtol=1e-9, atol=1e-9)
    # the biases matter: without them the spikes differ
    plain = net.architecture.model_copy(update={"layers": tuple(
        la.model_copy(update={"bias": None}) for la in net.layers)})
    unbiased = Network(architecture=plain, input_mean=net.input_mean, input_std=net.input_std,
                       weights={k: w for k, w in net.weights.items()
                                if not k.endswith(".bias")})
    other = run(unbiased, images, record_spikes=True)
    assert any(not np.array_equal(a[n].indices, b[n].indices)
               for a, b in zip(result.spikes, other.spikes, strict=True) for n in spiking)


@pytest.mark.parametrize("rounding", ["floor", "truncate"])
def test_fixed_equals_the_dense_integer_reference(biased, rounding):
    from accelsim.spiking.quantize import Quantization, quantise_network
    from accelsim.spiking.testing import reference_forward

    net, images = biased
    q = Quantization(leak_rounding=rounding)
    qnet = quantise_network(net, q)
    assert all(np.any(qnet.biases[la.name] != 0) for la in net.layers)
    result = run(net, images, arithmetic="fixed", quantization=q, record_spikes=True)
    ref = reference_forward(qnet, images, net.timesteps)
    naive.assert_spikes_equal_reference(result, ref, net.timesteps)


def test_a_bias_beyond_the_membrane_is_refused(biased):
    from accelsim.spiking.quantize import Quantization, quantise_network

    net, _ = biased
    first = net.layers[0]
    weights = dict(net.weights, **{first.bias: np.full(first.shape[0], 1e9, np.float32)})
    with pytest.raises(ValueError, match="bias reaches .* beyond membrane_bits=24"):
        quantise_network(Network(**{**dict(net), "weights": weights}), Quantization())


def test_chip_modes_agree_and_hold_the_bias_in_membrane_storage(biased):
    net, images = biased
    functional = run(net, images[:1], record_spikes=True)
    tl_fast, tl_ref = [], []
    kw = dict(counts=functional.counts, predictions=functional.predictions,
              timesteps=net.timesteps)
    fast = replay(net, functional.spikes, "45nm-generic", mode="fast", timelines=tl_fast, **kw)
    ref = replay(net, functional.spikes, "45nm-generic", mode="reference", timelines=tl_ref,
                 **kw)
    for a, b in zip(tl_fast, tl_ref, strict=True):
        for field in ("end", "busy", "stall", "synops_in", "packets_out"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    numeric = [c for c in col.CHIP_COUNTERS if c != col.LAYER]
    np.testing.assert_array_equal(fast.layers[numeric].to_numpy(), ref.layers[numeric].to_numpy())
    # every neuron holds a constant current: read at every update, written once at t = 1
    from accelsim.chip.hardware import load_hardware

    mb = load_hardware("45nm-generic").tile.membrane_bits
    rows = fast.layers
    n = rows[col.NEURONS]
    np.testing.assert_array_equal(rows[col.MEMBRANE_READ_BITS],
                                  (rows[col.SYNAPTIC_OPS] + 2 * n) * mb)
    first = rows[col.TIMESTEP] == 1
    np.testing.assert_array_equal(rows[col.MEMBRANE_WRITE_BITS],
                                  (rows[col.SYNAPTIC_OPS] + n + np.where(first, n, 0)) * mb)
    np.testing.assert_array_equal(rows[col.ACTIVE_NEURON_UPDATES], n)
    # simulate() is the same replay
    again = simulate(net, images[:1], hardware="45nm-generic")
    np.testing.assert_array_equal(again.layers[numeric].to_numpy(),
                                  fast.layers[numeric].to_numpy())


def test_model_file_round_trip_keeps_the_bias_exactly(biased, tmp_path):
    net, images = biased
    save_model(tmp_path / "biased", net)
    back = load_model(tmp_path / "biased")
    assert back.architecture == net.architecture
    for name, w in net.weights.items():
        np.testing.assert_array_equal(back.weights[name], w)
    a, b = run(net, images), run(back, images)
    np.testing.assert_array_equal(a.output, b.output)


def test_a_model_file_without_its_bias_tensor_is_refused_by_name(biased, tmp_path):
    import json

    from accelsim.model.modelfile import ModelFileError

    net, _ = biased
    manifest = save_model(tmp_path / "biased", net)
    data = json.loads(manifest.read_text())
    first = net.layers[0]
    del data["weights"][first.bias]  # the manifest lists the tensors; one bias left out
    manifest.write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=rf"missing \['{first.bias}'\]"):
        load_model(tmp_path / "biased")
