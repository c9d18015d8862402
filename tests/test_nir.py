"""NIR export and import: round trips on every shipped model, snnTorch's own exporter, and the
errors for what accelsim cannot express. The NIR files are written by the tests."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import naive  # tests/naive.py: pytest puts tests/ on sys.path
import numpy as np
import pytest

nir = pytest.importorskip("nir")

from accelsim.model import nir as anir  # noqa: E402
from accelsim.model.data import DatasetError, load_images, normalise  # noqa: E402
from accelsim.model.modelfile import load_model, read_manifest, save_model  # noqa: E402
from accelsim.spiking.functional import run  # noqa: E402

MODELS = sorted(Path(__file__).resolve().parents[1].glob("trained_models/*.json"))
IMAGES = 4


def _same_spikes(a, b) -> None:
    assert len(a.spikes) == len(b.spikes)
    for sa, sb in zip(a.spikes, b.spikes, strict=True):
        assert sa.keys() == sb.keys()
        for name in sa:
            np.testing.assert_array_equal(sa[name].offsets, sb[name].offsets, err_msg=name)
            np.testing.assert_array_equal(sa[name].indices, sb[name].indices, err_msg=name)


@pytest.mark.parametrize("path", naive.model_params(MODELS))
def test_round_trip_gives_the_same_network_and_spikes(path, tmp_path):
    net = load_model(path)
    info = read_manifest(path).dataset
    try:
        test = load_images(info.name, "test", size=info.size, seed=info.split_seed)
        images = np.asarray(normalise(test.images[:IMAGES], net.input_mean, net.input_std),
                            dtype=np.float64)
    except DatasetError:  # a data set this machine does not have: seeded stand-in images
        images = np.random.default_rng(0).normal(size=(IMAGES, *net.architecture.input_shape))
    back = anir.import_nir(anir.export_nir(net, tmp_path / "model.nir"))
    # the same graph, leaks, thresholds, weights and metadata
    assert back.architecture == net.architecture
    assert (back.name, back.dataset, back.timesteps) == (net.name, net.dataset, net.timesteps)
    assert (back.input_mean, back.input_std) == (net.input_mean, net.input_std)
    assert back.weights.keys() == net.weights.keys()
    for name, w in net.weights.items():
        np.testing.assert_array_equal(back.weights[name], w)
    a, b = run(net, images, record_spikes=True), run(back, images, record_spikes=True)
    assert sum(int(t.counts().sum()) for s in a.spikes for t in s.values()) > 0
    _same_spikes(a, b)
    np.testing.assert_array_equal(a.output, b.output)


@pytest.mark.parametrize("arch", ["vgg5", "resnet-small"])
def test_round_trip_with_biases_is_exact(arch, tmp_path):
    import naive

    rng = np.random.default_rng(2)
    images = rng.normal(size=(4, 1, 8, 8))
    net = naive.with_biases(naive.calibrated_network(arch, (1, 8, 8), 0.25, 0, images), 4, 0.3)
    graph = anir.to_nir(net)
    # the bias rides on each layer's first weighted projection: Conv2d.bias or an Affine
    first = net.layers[0]
    np.testing.assert_array_equal(graph.nodes[first.inputs[0].weight].bias,
                                  net.weights[first.bias])
    assert type(graph.nodes[net.layers[-1].inputs[0].weight]).__name__ == "Affine"
    back = anir.import_nir(anir.export_nir(net, tmp_path / "biased.nir"))
    assert back.architecture == net.architecture
    assert back.weights.keys() == net.weights.keys()
    for name, w in net.weights.items():
        np.testing.assert_array_equal(back.weights[name], w)
    a, b = run(net, images, record_spikes=True), run(back, images, record_spikes=True)
    _same_spikes(a, b)
    np.testing.assert_array_equal(a.output, b.output)


def test_export_writes_the_stated_parameters(tmp_path):
    net = load_model(MODELS[0])
    graph = anir.to_nir(net)
    for layer in net.layers:
        node = graph.nodes[layer.name]
        if layer.kind == "output":
            assert type(node).__name__ == "I"
            np.testing.assert_allclose(node.r * anir.DT, 1.0)
            continue
        assert node.metadata["reset"] == "subtract"
        assert node.metadata["leak"] == layer.leak
        np.testing.assert_array_equal(node.v_threshold, layer.threshold)
        np.testing.assert_array_equal(node.v_reset, 0.0)
        if layer.leak == 1.0:
            assert type(node).__name__ == "IF"
        else:
            assert type(node).__name__ == "LIF"
            np.testing.assert_allclose(1 - anir.DT / node.tau, layer.leak, rtol=0, atol=1e-12)
            np.testing.assert_allclose(node.r * anir.DT / node.tau, 1.0, rtol=1e-12)
            np.testing.assert_array_equal(node.v_leak, 0.0)


def test_import_writes_a_model_file(tmp_path):
    net = load_model(MODELS[0])
    back = anir.import_nir(anir.export_nir(net, tmp_path / "m.nir"))
    save_model(tmp_path / "copy", back)
    again = load_model(tmp_path / "copy")
    assert again.architecture == net.architecture


# -- a graph from snnTorch's own NIR exporter -----------------------------------------------------

def _snntorch_net(torch, snn, bias: bool = False):
    """A small conv SNN; snnTorch's Leaky with subtract reset applied in the same step
    (``reset_delay=False``) is the DIET-SNN neuron while no membrane stays above threshold after
    its reset (checked below). Per-neuron beta/threshold tensors: snnTorch's exporter needs them
    shaped like the layer for NIR's type inference."""
    torch.manual_seed(0)

    def leaky(shape, beta, v):
        return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, v),
                         init_hidden=True, reset_mechanism="subtract", reset_delay=False)

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, bias=bias), leaky((4, 8, 8), 0.75, 1.5),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(4, 8, 3, padding=1, bias=bias), leaky((8, 4, 4), 0.875, 0.125),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10, bias=bias))
    with torch.no_grad():  # biases small beside the thresholds, so the regime below holds
        for m in net:
            if getattr(m, "bias", None) is not None:
                m.bias.mul_(0.1)
    return net


@pytest.mark.parametrize("bias", [False, True], ids=["bias-free", "bias"])
def test_snntorch_export_imports_with_equal_spikes(bias, tmp_path):
    torch = pytest.importorskip("torch")
    snn = pytest.importorskip("snntorch")
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    net = _snntorch_net(torch, snn, bias)
    graph = export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0])
    nir.write(str(tmp_path / "snntorch.nir"), graph)
    T = 6
    mine = anir.import_nir(tmp_path / "snntorch.nir", timesteps=T)
    assert [la.kind for la in mine.layers] == ["spiking", "spiking", "output"]
    assert mine.layers[1].inputs[0].pool == 2
    # Conv2d(bias=True) and Linear(bias=True) arrive as each layer's bias
    assert [la.bias is not None for la in mine.layers] == [bias] * 3
    if bias:
        np.testing.assert_array_equal(mine.weights[mine.layers[0].bias],
                                      net[0].bias.detach().numpy())

    rng = np.random.default_rng(1)
    images = 0.5 * rng.normal(size=(8, 1, 8, 8))
    result = run(mine, images, record_spikes=True)

    # snnTorch's own forward pass, in float64, the same image at every step
    net = net.double()
    leakies = [m for m in net if isinstance(m, snn.Leaky)]
    spikes: dict[int, list] = {i: [] for i in range(len(leakies))}
    residual = []
    def record(i):
        def hook(module, inputs, out):
            spikes[i].append(out.detach().numpy().copy())
            residual.append(float((module.mem - module.threshold).max()))
        return hook

    for i, m in enumerate(leakies):
        m.register_forward_hook(record(i))
    for m in net:  # snnTorch's spikes are float32 (0 or 1, exact); the layers run in float64
        m.register_forward_pre_hook(lambda module, inputs: tuple(a.double() for a in inputs))
    utils.reset(net)
    x = torch.from_numpy(images)
    total = 0
    with torch.no_grad():
        for _ in range(T):
            total = total + net(x)
    # the regime where snnTorch's convention equals the DIET-SNN's: no membrane above
    # threshold after its reset (snnTorch would then compare the next step against 2v)
    assert max(residual) <= 0
    for li, layer in enumerate(la for la in mine.layers if la.kind == "spiking"):
        theirs = np.stack(spikes[li], axis=1).reshape(len(images), T, -1)
        assert theirs.sum() > 0
        for b in range(len(images)):
            train = result.spikes[b][layer.name]
            for t in range(T):
                np.testing.assert_array_equal(train.at(t), np.flatnonzero(theirs[b, t]),
                                              err_msg=f"{layer.name} image {b} t={t + 1}")
    np.testing.assert_allclose(result.output, total.numpy(), rtol=1e-9, atol=1e-9)


# -- a graph from sinabs's own NIR exporter ------------------------------------------------------

def test_sinabs_export_imports_with_equal_spikes(tmp_path):
    """sinabs's integrate-and-fire layer (``IAFSqueeze`` with ``SingleSpike``, subtract reset,
    no lower bound) is the DIET-SNN neuron with leak 1, except that it fires at ``v >= v_th``
    where accelsim fires at ``v > v_th``: equal unless a membrane lands exactly on the threshold
    (random weights: never). sinabs writes ``IF(r = 1)`` for one step per unit of time, so the
    graph is read at ``dt = 1``. Its ``SumPool2d`` is accelsim's pool with the weights times 4."""
    torch = pytest.importorskip("torch")
    sinabs = pytest.importorskip("sinabs")
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike

    torch.manual_seed(0)
    B, T = 6, 5

    def iaf(v):
        return sl.IAFSqueeze(batch_size=B, spike_threshold=torch.tensor(v), spike_fn=SingleSpike)

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1, bias=True), iaf(1.0),
        sl.SumPool2d(2),
        torch.nn.Conv2d(4, 8, 3, padding=1, bias=True), iaf(0.5),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 4 * 4, 10, bias=True))
    graph = sinabs.to_nir(net, torch.zeros(B, 1, 8, 8))
    graph.infer_types()  # sinabs leaves Conv2d.input_shape unset, which nir.write cannot store
    nir.write(str(tmp_path / "sinabs.nir"), graph)
    mine = anir.import_nir(tmp_path / "sinabs.nir", dt=1.0, timesteps=T)
    assert [(la.kind, la.leak, la.threshold) for la in mine.layers] == [
        ("spiking", 1.0, 1.0), ("spiking", 1.0, 0.5), ("output", 1.0, 1.0)]
    assert all(la.bias is not None for la in mine.layers)
    assert mine.layers[1].inputs[0].pool == 2

    images = np.random.default_rng(2).normal(size=(B, 1, 8, 8))
    result = run(mine, images, record_spikes=True)

    # sinabs's own forward pass in float64: the same image at each of T steps (batch-major)
    net = net.double()
    sinabs.reset_states(net)
    iafs = [m for m in net if isinstance(m, sl.IAFSqueeze)]
    spikes: dict[int, np.ndarray] = {}
    for i, m in enumerate(iafs):
        m.register_forward_hook(lambda module, inputs, out, i=i: spikes.__setitem__(
            i, out.detach().reshape(B, T, -1).numpy()))
    for m in net:  # sinabs's spikes are float32 (0 or 1, exact); the layers run in float64
        m.register_forward_pre_hook(lambda module, inputs: tuple(a.double() for a in inputs))
    x = torch.from_numpy(images).unsqueeze(1).expand(B, T, 1, 8, 8).reshape(B * T, 1, 8, 8)
    with torch.no_grad():
        total = net(x).reshape(B, T, -1).sum(1)
    for li, layer in enumerate(la for la in mine.layers if la.kind == "spiking"):
        assert spikes[li].sum() > 0
        for b in range(B):
            for t in range(T):
                np.testing.assert_array_equal(result.spikes[b][layer.name].at(t),
                                              np.flatnonzero(spikes[li][b, t]),
                                              err_msg=f"{layer.name} image {b} t={t + 1}")
    np.testing.assert_allclose(result.output, total.numpy(), rtol=1e-9, atol=1e-9)


# -- what accelsim refuses ------------------------------------------------------------------------

def _tiny_graph(**overrides):
    w = np.ones((3, 4), dtype=np.float32)
    nodes = {
        "input": nir.Input(input_type=np.array([4])),
        "fc": nir.Affine(weight=w, bias=overrides.get("bias", np.zeros(3, np.float32))),
        "lif": overrides.get("neuron", nir.LIF(tau=np.full(3, 2e-4), r=np.full(3, 2.0),
                                               v_leak=np.zeros(3), v_threshold=np.ones(3))),
        "out_fc": nir.Linear(weight=np.ones((2, 3), dtype=np.float32)),
        "output": nir.Output(output_type=np.array([2])),
    }
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "out_fc"), ("out_fc", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_a_foreign_lif_reduces_to_the_diet_snn_neuron():
    net = anir.from_nir(_tiny_graph())
    lif = net.layers[0]
    assert (lif.name, lif.leak, lif.threshold) == ("lif", 0.5, 1.0)
    assert net.layers[-1].kind == "output" and net.layers[-1].name == "out_fc"
    # hand-computed: the current is 4 * x every step; u = 0.5 u + I, spike if u > 1
    x = np.full((1, 4), 0.1)  # I = 0.4: u = 0.4, 0.6, 0.7 (no spike)
    assert run(net, x, timesteps=3).counts["spikes_out"].sum() == 0
    x = np.full((1, 4), 0.2)  # I = 0.8: u = 0.8, 1.2 -> spike, 0.2 -> 0.9, 1.25 -> spike
    counts = run(net, x, timesteps=4).counts.query("layer == 'lif'")["spikes_out"]
    assert counts.tolist() == [0, 3, 0, 3]


def test_an_affine_bias_is_a_constant_current_by_hand():
    # the current is 4 * 0.125 + 0.5 = 1 every step (exact in binary); u = 0.5 u + 1, spike if
    # u > 1: u = 1 (no spike), 1.5 -> spike (.5), 1.25 -> spike (.25), 1.125 -> spike
    net = anir.from_nir(_tiny_graph(bias=np.full(3, 0.5, np.float32)))
    assert net.layers[0].bias == "lif.bias"
    counts = run(net, np.full((1, 4), 0.125), timesteps=4).counts.query("layer == 'lif'")
    assert counts["spikes_out"].tolist() == [0, 3, 3, 3]
    # a Scale after the Affine scales its bias, an input gain too; a scale before it does not
    graph = _tiny_graph(bias=np.array([1.0, 2.0, 3.0], np.float32),
                        neuron=nir.IF(r=np.full(3, 2 / anir.DT), v_threshold=np.ones(3)))
    graph.nodes["pre"] = nir.Scale(scale=np.full(4, 5.0))
    graph.nodes["post"] = nir.Scale(scale=np.array([1.0, 10.0, 100.0]))
    graph.edges = [("input", "pre"), ("pre", "fc"), ("fc", "post"), ("post", "lif"),
                   ("lif", "out_fc"), ("out_fc", "output")]
    with pytest.warns(UserWarning, match="input gain 2"):
        net = anir.from_nir(graph)
    np.testing.assert_allclose(net.weights["lif.bias"], [2.0, 40.0, 600.0])
    np.testing.assert_allclose(net.weights["fc.weight"], 2 * 5 * np.array([1, 10, 100])[:, None]
                               * np.ones((3, 4)))


def test_a_bias_without_a_weighted_input_cannot_be_exported():
    from accelsim.model.network import Architecture, Layer, Network, Projection

    a = Layer(name="a", kind="spiking", shape=(4,),
              inputs=(Projection(source="input", op="linear", weight="a.weight"),))
    out = Layer(name="out", kind="output", shape=(4,), bias="out.bias",
                inputs=(Projection(source="a", op="identity"),))
    net = Network(architecture=Architecture(name="x", input_shape=(4,), num_classes=4,
                                            layers=(a, out)),
                  weights={"a.weight": np.eye(4, dtype=np.float32),
                           "out.bias": np.ones(4, np.float32)},
                  input_mean=(0.0,), input_std=(1.0,))
    with pytest.raises(anir.NIRError, match="layer 'out' has a bias but no conv or linear"):
        anir.to_nir(net)


@pytest.mark.parametrize("case, message", [
    ("hard_reset", "v_reset must be 0"),
    ("per_neuron", "v_threshold differs between neurons"),
    ("delay", "node 'delay' is a NIR Delay"),
    ("cuba", "tau_syn"),
])
def test_what_accelsim_cannot_express_is_refused_by_name(case, message):
    ones = np.ones(3)
    if case == "bias":
        graph = _tiny_graph(bias=np.ones(3, np.float32))
    elif case == "hard_reset":
        graph = _tiny_graph(neuron=nir.LIF(tau=ones * 2e-4, r=ones * 2, v_leak=0 * ones,
                                           v_threshold=ones, v_reset=ones * 0.1))
    elif case == "per_neuron":
        graph = _tiny_graph(neuron=nir.IF(r=ones / anir.DT, v_threshold=np.arange(1.0, 4.0)))
    elif case == "cuba":
        graph = _tiny_graph(neuron=nir.CubaLIF(tau_syn=ones * 5e-4, tau_mem=ones * 2e-4,
                                               r=ones * 2, v_leak=0 * ones, v_threshold=ones))
    else:
        graph = _tiny_graph()
        graph.nodes["delay"] = nir.Delay(delay=ones)
        graph.edges = [("input", "fc"), ("fc", "delay"), ("delay", "lif"), ("lif", "out_fc"),
                       ("out_fc", "output")]
    with pytest.raises(anir.NIRError, match=re.escape(message)):
        anir.from_nir(graph)


def test_sum_pool_scale_cuba_and_a_spiking_readout_fold_into_the_diet_snn():
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(3, 2 * 2 * 2)).astype(np.float32)
    s = np.array([0.5, 2.0, 4.0])
    dt = anir.DT
    nodes = {
        "input": nir.Input(input_type=np.array([1, 4, 4])),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=w1, stride=1, padding=1, dilation=1,
                           groups=1, bias=np.zeros(2)),
        "cuba": nir.CubaLIF(tau_syn=np.full((2, 4, 4), dt), tau_mem=np.full((2, 4, 4), 4 * dt),
                            r=np.full((2, 4, 4), 4.0), v_leak=np.zeros((2, 4, 4)),
                            v_threshold=np.full((2, 4, 4), 0.5)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
        "fc": nir.Linear(weight=w2),
        "scale": nir.Scale(scale=s),
        "if": nir.IF(r=np.full(3, 1 / dt), v_threshold=np.ones(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "conv"), ("conv", "cuba"), ("cuba", "pool"), ("pool", "flat"),
             ("flat", "fc"), ("fc", "scale"), ("scale", "if"), ("if", "output")]
    net = anir.from_nir(nir.NIRGraph(nodes=nodes, edges=edges))
    cuba, spiking_if, readout = net.layers
    assert (cuba.leak, cuba.threshold) == (0.75, 0.5)  # 1 - dt / tau_mem, unit gain
    assert (spiking_if.leak, spiking_if.threshold) == (1.0, 1.0)
    (p,) = spiking_if.inputs
    assert (p.source, p.op, p.pool) == ("cuba", "linear", 2)
    # a sum pool is an average pool times k*k; the per-unit scale multiplies each row
    np.testing.assert_array_equal(net.weights[p.weight], (w2 * 4 * s[:, None]).astype(np.float32))
    # the graph ends in a spiking neuron: an accumulate-only layer sums its spikes
    assert (readout.name, readout.kind, readout.inputs[0].op) == ("readout", "output", "identity")
    x = rng.normal(size=(3, 1, 4, 4)) * 2
    result = run(net, x, record_spikes=True)
    counts = np.array([[np.bincount(tr["if"].indices, minlength=3)] for tr in result.spikes])
    assert counts.sum() > 0
    np.testing.assert_array_equal(result.output, counts[:, 0].astype(float))


def test_an_input_gain_is_folded_into_the_weights_with_a_warning():
    # an IF node with r = 1: unit gain only if the graph steps at dt = 1
    graph = _tiny_graph(neuron=nir.IF(r=np.ones(3), v_threshold=np.ones(3)))
    with pytest.warns(UserWarning, match=r"node 'lif': input gain 0.0001 .* pass that dt"):
        net = anir.from_nir(graph)
    np.testing.assert_array_equal(net.weights["fc.weight"], np.float32(1e-4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = anir.from_nir(graph, dt=1.0)
    np.testing.assert_array_equal(net.weights["fc.weight"], 1.0)
