"""The DIET-SNN authors' checkpoints: the tests write them in the exact key layout of the authors'
VGG and ResNet code (ReLU, Dropout and pool modules take Sequential indices; the classifier's, or
the blocks', scalars are numbered after them) and compare with the accelsim network built
directly."""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

from accelsim.model import architectures
from accelsim.model.checkpoints import CheckpointError, load_dietsnn
from accelsim.model.network import Network
from accelsim.spiking.functional import run

SHAPE = (3, 32, 32)
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
WIDTH = 1 / 16


def _authors_state_dict(arch, width, classes, seed=0, prefix=""):
    """(state_dict, conv weights in order, linear weights in order, scalars per layer):
    the authors' ``_make_layers`` order: Conv, ReLU, Dropout per conv, and at each 'A' the last
    Dropout popped and an AvgPool2d appended; classifier Linear, ReLU, Dropout, ..., Linear."""
    rng = np.random.default_rng(seed)
    plan, hidden = architectures.VGG_PLANS[arch]
    state = OrderedDict()
    modules: list[str] = []
    convs, linears, scalars = [], [], []
    c_in = SHAPE[0]
    for item in plan:
        if item == architectures.POOL:
            modules.pop()
            modules.append("pool")
            continue
        c_out = max(1, round(int(item) * width))
        w = rng.normal(0, np.sqrt(2 / (9 * c_in)), size=(c_out, c_in, 3, 3)).astype(np.float32)
        state[f"{prefix}features.{len(modules)}.weight"] = torch.from_numpy(w)
        convs.append((len(modules), w))
        modules += ["conv", "relu", "dropout"]
        c_in = c_out
    n_features = len(modules)
    flat = c_in * (SHAPE[1] // 16) * (SHAPE[2] // 16)
    units = [max(1, round(u * width)) for u in hidden] + [classes]
    index = 0
    for j, u in enumerate(units):
        w = rng.normal(0, np.sqrt(2 / flat), size=(u, flat)).astype(np.float32)
        state[f"{prefix}classifier.{index}.weight"] = torch.from_numpy(w)
        linears.append((index, w))
        flat = u
        index += 3 if j < len(units) - 1 else 1
    for i, (n, _) in enumerate(convs + linears[:-1]):
        key = n if i < len(convs) else n + n_features
        # distinct per layer, so that a mix-up shows; float32 as the checkpoint stores them
        v, lam = float(np.float32(0.6 + 0.05 * i)), float(np.float32(0.95 - 0.03 * i))
        state[f"{prefix}threshold.t{key}"] = torch.tensor(v)
        state[f"{prefix}leak.l{key}"] = torch.tensor(lam)
        scalars.append((v, lam))
    return state, [w for _, w in convs], [w for _, w in linears], scalars


def _direct(arch, convs, linears, scalars, classes):
    """The same model built with accelsim's own architecture builder."""
    a = architectures.vgg(arch, SHAPE, classes, width=WIDTH)
    ws = dict(zip([f"conv{k}.weight" for k in range(1, len(convs) + 1)], convs, strict=True))
    names = [f"fc{j}" for j in range(1, len(linears))] + ["output"]
    ws |= {f"{n}.weight": w for n, w in zip(names, linears, strict=True)}
    layers, i = [], 0
    for layer in a.layers:
        if layer.kind == "spiking":
            v, lam = scalars[i]
            layer = layer.model_copy(update={"threshold": v, "leak": lam})
            i += 1
        layers.append(layer)
    a = a.model_copy(update={"layers": tuple(layers)})
    return Network(name="direct", architecture=a, weights=ws, timesteps=5, input_mean=MEAN,
                   input_std=STD)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_vgg16_checkpoint_gives_the_spikes_of_the_network_built_directly(tmp_path, prefix):
    state, convs, linears, scalars = _authors_state_dict("vgg16", WIDTH, 10, prefix=prefix)
    path = tmp_path / "ann_snn_vgg16_cifar10.pth"
    torch.save({"state_dict": state, "accuracy": 92.7, "epoch": 3, "timesteps": 5,
                "thresholds": [1.0, 2.0]}, path)
    mine = load_dietsnn(path, arch="vgg16", input_shape=SHAPE, input_mean=MEAN, input_std=STD,
                        dataset="cifar10")
    direct = _direct("vgg16", convs, linears, scalars, 10)
    assert mine.architecture.layers == direct.architecture.layers
    images = np.random.default_rng(2).normal(size=(3, *SHAPE))
    a, b = run(mine, images, record_spikes=True), run(direct, images, record_spikes=True)
    assert sum(int(t.counts().sum()) for t in a.spikes[0].values()) > 0
    for sa, sb in zip(a.spikes, b.spikes, strict=True):
        for name in sb:
            np.testing.assert_array_equal(sa[name].indices, sb[name].indices)
            np.testing.assert_array_equal(sa[name].offsets, sb[name].offsets)
    np.testing.assert_array_equal(a.output, b.output)


def _save(tmp_path, state):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": state}, path)
    return path


def _load(path):
    return load_dietsnn(path, arch="vgg5", input_shape=SHAPE, input_mean=MEAN, input_std=STD)


def test_a_key_that_does_not_fit_is_named(tmp_path):
    state = _authors_state_dict("vgg5", 0.25, 10)[0]
    state["features.0.bias"] = torch.zeros(16)
    with pytest.raises(CheckpointError, match=re.escape("'features.0.bias' does not fit")):
        _load(_save(tmp_path, state))
    state = _authors_state_dict("vgg5", 0.25, 10)[0]
    del state["leak.l0"]
    with pytest.raises(CheckpointError, match="conv1 has no 'leak.l0'"):
        _load(_save(tmp_path, state))
    state = _authors_state_dict("vgg9", 0.25, 10)[0]
    with pytest.raises(CheckpointError, match="plan 'vgg5' has 3 convolutions"):
        _load(_save(tmp_path, state))


class _Payload:
    """Unpickling this would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_carrying_a_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload-ran"
    state = _authors_state_dict("vgg5", 0.25, 10)[0]
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": state, "extra": _Payload(marker)}, path)
    assert not marker.exists()  # saving only records the call
    with pytest.raises(CheckpointError, match="refused"):
        _load(path)
    assert not marker.exists()


# -- the authors' ResNet ---------------------------------------------------------------------------

def _authors_resnet_state_dict(blocks=(2, 2, 2, 2), width=WIDTH, classes=10, seed=0, prefix="",
                               imagenet=False):
    """(state_dict, accelsim weight name -> tensor, accelsim layer -> (threshold, leak)) in the
    key order of the authors' ResNet: ``pre_process`` = Conv, ReLU, Dropout, Conv, ReLU, Dropout,
    Conv, ReLU, AvgPool2d (scalars keyed by those indices, then numbered on from 9, one per
    block convolution); ``layerS.K.residual`` = Conv, ReLU, Dropout, Conv and ``identity`` = a
    1x1 Conv where the stride or the channels change; ``classifier`` = one Linear from the 2x2
    map. The ImageNet spelling names them ``delay_path`` and ``shortcut``."""
    rng = np.random.default_rng(seed)
    state, direct, scalars = OrderedDict(), {}, {}
    residual, identity = ("delay_path", "shortcut") if imagenet else ("residual", "identity")

    def conv(key, name, c_out, c_in, k):
        w = rng.normal(0, np.sqrt(2 / (k * k * c_in)), size=(c_out, c_in, k, k))
        state[prefix + key] = torch.from_numpy(w.astype(np.float32))
        direct[name] = w.astype(np.float32)

    def scalar(pos, layer):
        v, lam = float(np.float32(0.5 + 0.01 * pos)), float(np.float32(0.99 - 0.01 * pos))
        state[f"{prefix}threshold.t{pos}"] = torch.tensor(v)
        state[f"{prefix}leak.l{pos}"] = torch.tensor(lam)
        scalars[layer] = (v, lam)

    c = max(1, round(64 * width))
    c_in = SHAPE[0]
    for i, index in enumerate((0, 3, 6), start=1):
        conv(f"pre_process.{index}.weight", f"stem{i}.weight", c, c_in, 3)
        scalar(index, f"stem{i}")
        c_in = c
    pos = 9
    stages = zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True)
    for s, (planes, n, stride) in enumerate(stages, start=1):
        planes = max(1, round(planes * width))
        for k in range(n):
            name = f"stage{s}.block{k + 1}"
            conv(f"layer{s}.{k}.{residual}.0.weight", f"{name}.conv1.weight", planes, c_in, 3)
            conv(f"layer{s}.{k}.{residual}.3.weight", f"{name}.conv2.weight", planes, planes, 3)
            if (stride if k == 0 else 1) != 1 or c_in != planes:
                conv(f"layer{s}.{k}.{identity}.0.weight", f"{name}.shortcut.weight", planes,
                     c_in, 1)
            scalar(pos, f"{name}.conv1")
            scalar(pos + 1, f"{name}.conv2")
            pos += 2
            c_in = planes
    flat = c_in * (1 if imagenet else 4)
    w = rng.normal(0, np.sqrt(1 / flat), size=(classes, flat)).astype(np.float32)
    state[prefix + "classifier.0.weight"] = torch.from_numpy(w)
    direct["output.weight"] = w
    return state, direct, scalars


def _direct_resnet(plan, direct, scalars, shape=SHAPE, classes=10):
    a = architectures.resnet(plan, shape, classes, width=WIDTH)
    layers = tuple(la.model_copy(update=dict(zip(("threshold", "leak"), scalars[la.name],
                                                 strict=True)))
                   if la.kind == "spiking" else la for la in a.layers)
    return Network(name="direct", architecture=a.model_copy(update={"layers": layers}),
                   weights=direct, timesteps=5, input_mean=MEAN, input_std=STD)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_resnet20_checkpoint_gives_the_spikes_of_the_plan_built_directly(tmp_path, prefix):
    state, direct, scalars = _authors_resnet_state_dict(prefix=prefix)
    assert sum(".identity." in k for k in state) == 3  # stages 2-4 change stride and channels
    path = tmp_path / "snn_resnet20_cifar10.pth"
    torch.save({"state_dict": state, "accuracy": 91.0, "thresholds": [1.0]}, path)
    mine = load_dietsnn(path, arch="resnet20", input_shape=SHAPE, input_mean=MEAN,
                        input_std=STD, dataset="cifar10")
    ref = _direct_resnet("resnet20", direct, scalars)
    assert mine.architecture.layers == ref.architecture.layers
    assert mine.weights.keys() == ref.weights.keys()
    for name, w in ref.weights.items():
        np.testing.assert_array_equal(mine.weights[name], w, err_msg=name)
    images = np.random.default_rng(4).normal(size=(2, *SHAPE))
    a, b = run(mine, images, record_spikes=True), run(ref, images, record_spikes=True)
    assert sum(int(t.counts().sum()) for t in a.spikes[0].values()) > 0
    for sa, sb in zip(a.spikes, b.spikes, strict=True):
        for name in sb:
            np.testing.assert_array_equal(sa[name].indices, sb[name].indices)
    np.testing.assert_array_equal(a.output, b.output)


def test_the_imagenet_spelling_loads_onto_the_globally_pooled_plan_with_a_warning(tmp_path):
    shape = (3, 64, 64)  # resnet34's stem pools by 4 and its last map (2x2 here) globally
    state, direct, scalars = _authors_resnet_state_dict(blocks=(3, 4, 6, 3), imagenet=True)
    path = _save(tmp_path, state)
    with pytest.warns(UserWarning, match="pools the stem by 3 .* plan 'resnet34' pools the stem "
                                         "by 4"):
        mine = load_dietsnn(path, arch="resnet34", input_shape=shape, input_mean=MEAN,
                            input_std=STD)
    ref = _direct_resnet("resnet34", direct, scalars, shape=shape)
    assert mine.architecture.layers == ref.architecture.layers
    for name, w in ref.weights.items():
        np.testing.assert_array_equal(mine.weights[name], w, err_msg=name)


def _load_resnet(path, arch="resnet20"):
    return load_dietsnn(path, arch=arch, input_shape=SHAPE, input_mean=MEAN, input_std=STD)


def test_a_resnet_key_that_does_not_fit_is_named(tmp_path):
    state = _authors_resnet_state_dict()[0]
    state["layer1.0.bn1.weight"] = torch.ones(4)
    with pytest.raises(CheckpointError, match=re.escape("'layer1.0.bn1.weight' does not fit the "
                                                        "DIET-SNN ResNet layout")):
        _load_resnet(_save(tmp_path, state))
    state = _authors_resnet_state_dict()[0]
    del state["layer2.0.identity.0.weight"]
    with pytest.raises(CheckpointError, match="needs 'stage2.block1.shortcut.weight'"):
        _load_resnet(_save(tmp_path, state))
    state = _authors_resnet_state_dict()[0]
    state["layer1.1.identity.0.weight"] = torch.zeros(4, 4, 1, 1)
    with pytest.raises(CheckpointError, match=re.escape("['layer1.1.identity.0.weight'] belong "
                                                        "to no layer of plan 'resnet20'")):
        _load_resnet(_save(tmp_path, state))
    state = _authors_resnet_state_dict(blocks=(3, 4, 6, 3))[0]  # their CIFAR resnet34
    with pytest.raises(CheckpointError, match=re.escape(
            "classifier.0.weight has shape (10, 128); output.weight of plan 'resnet34' at input "
            "(3, 32, 32) needs (10, 32)")):
        _load_resnet(_save(tmp_path, state), arch="resnet34")
    with pytest.raises(CheckpointError, match=re.escape("['layer1.2.residual.0.weight', ")):
        _load_resnet(_save(tmp_path, state), arch="resnet20")
    state = _authors_resnet_state_dict()[0]
    del state["threshold.t12"], state["leak.l12"]
    with pytest.raises(CheckpointError, match="the 16 block convolutions need as many "
                                              "consecutive keys"):
        _load_resnet(_save(tmp_path, state))
    state = _authors_resnet_state_dict()[0]
    del state["leak.l3"]
    with pytest.raises(CheckpointError, match="stem2 has no 'leak.l3'"):
        _load_resnet(_save(tmp_path, state))


def test_a_resnet_pickle_carrying_a_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": _authors_resnet_state_dict()[0], "extra": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        _load_resnet(path)
    assert not marker.exists()
