"""The DIET-SNN authors' checkpoints: the tests write them in the exact key layout of the authors'
VGG code (ReLU, Dropout and pool modules take Sequential indices; the classifier's scalars are
numbered after the features) and compare with the accelsim network built directly."""

from __future__ import annotations

import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

from accelsim import architectures
from accelsim.checkpoints import CheckpointError, load_dietsnn
from accelsim.functional import run
from accelsim.network import Network

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
