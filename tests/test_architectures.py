"""The authors' plans (docs/design.md §7), pinned layer by layer by the closed-form MAC count.

Each expected table is written out here from the plan's own description, independently of the
builder: a 3x3 convolution costs ``9 * C_in * C_out * H_out * W_out`` MACs, a 1x1 shortcut
``C_in * C_out * H_out * W_out``, a linear layer ``in * out``, an identity shortcut nothing
(:func:`accelsim.chip.pricing.projection_flops`).
"""

import pytest

from accelsim.chip.pricing import projection_flops
from accelsim.model.architectures import build


def layer_flops(arch) -> dict[str, int]:
    return {layer.name: sum(projection_flops(arch, layer.name, p) for p in layer.inputs)
            for layer in arch.layers}


def conv(c_in: int, c_out: int, size: int, k: int = 3) -> int:
    return k * k * c_in * c_out * size * size


def vgg_expected(channels, pools_after, size, hidden, classes, final_pool):
    """Per-layer MACs of a VGG: ``pools_after`` holds the conv indices followed by a pool."""
    macs, c_in = [], 3
    for i, c in enumerate(channels, start=1):
        macs.append(conv(c_in, c, size))
        c_in = c
        if i in pools_after:
            size //= 2
    if final_pool:
        size //= 2
    features = c_in * size * size
    for units in (*hidden, classes):
        macs.append(features * units)
        features = units
    return macs


def resnet_expected(blocks, size, stem_pool, classes, global_pool):
    macs = [conv(3, 64, size), conv(64, 64, size), conv(64, 64, size)]
    size //= stem_pool
    c_in = 64
    for planes, n, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2), strict=True):
        for k in range(n):
            s = stride if k == 0 else 1
            out = size // s
            macs.append(conv(c_in, planes, out))
            shortcut = 0 if s == 1 and c_in == planes else conv(c_in, planes, out, k=1)
            macs.append(conv(planes, planes, out) + shortcut)
            c_in, size = planes, out
    features = c_in if global_pool else c_in * size * size
    macs.append(features * classes)
    return macs


VGG16 = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)

CASES = {
    "vgg16": ((3, 32, 32), 10, vgg_expected(VGG16, {2, 4, 7, 10}, 32, (4096, 4096), 10, False)),
    "vgg16-imagenet": ((3, 224, 224), 1000,
                       vgg_expected(VGG16, {2, 4, 7, 10}, 224, (4096, 4096), 1000, True)),
    "vgg6": ((3, 32, 32), 10, vgg_expected((64, 128, 128), {1, 3}, 32, (4096, 4096), 10, False)),
    "vgg11": ((3, 32, 32), 10, vgg_expected((64, 128, 256, 512, 512, 512, 512, 512),
                                            {1, 3, 5, 6}, 32, (4096, 4096), 10, False)),
    "resnet20": ((3, 32, 32), 10, resnet_expected((2, 2, 2, 2), 32, 2, 10, False)),
    "resnet34": ((3, 224, 224), 1000, resnet_expected((3, 4, 6, 3), 224, 4, 1000, True)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_per_layer_macs_follow_the_closed_form(name):
    shape, classes, expected = CASES[name]
    arch = build(name, shape, classes)
    flops = layer_flops(arch)
    assert list(flops.values()) == expected


def test_published_totals():
    vgg16 = build("vgg16", (3, 32, 32), 10)
    flops = layer_flops(vgg16)
    assert flops["conv1"] == 1_769_472
    assert sum(flops.values()) == 338_403_328  # docs/design.md §7
    imagenet = build("vgg16-imagenet", (3, 224, 224), 1000)
    assert imagenet.weight_shapes()["fc1.weight"] == (4096, 25088)
    assert imagenet.weight_shapes()["output.weight"] == (1000, 4096)


def test_resnet_shapes_of_the_papers_form():
    resnet20 = build("resnet20", (3, 32, 32), 10)
    assert [layer.name for layer in resnet20.layers[:3]] == ["stem1", "stem2", "stem3"]
    assert resnet20.weight_shapes()["output.weight"] == (10, 512 * 2 * 2)
    # the shortcut current enters the second convolution's neurons, not a neuron of its own
    convs2 = [layer for layer in resnet20.layers if layer.name.endswith("conv2")]
    assert len(convs2) == 8 and all(len(layer.inputs) == 2 for layer in convs2)
    resnet34 = build("resnet34", (3, 224, 224), 1000)
    spiking = [layer for layer in resnet34.layers if layer.kind == "spiking"]
    assert len(spiking) == 3 + 2 * (3 + 4 + 6 + 3)
    assert spiking[-1].shape == (512, 7, 7)
    assert resnet34.weight_shapes()["output.weight"] == (1000, 512)


@pytest.mark.parametrize("name", ["vgg16-imagenet", "resnet20", "resnet34"])
def test_new_plans_run_alike_in_pytorch_and_the_core(name):
    """At 1/16 width on 32x32 inputs, with thresholds that make every layer spike: the float64
    PyTorch SNN and the event-driven core give the same spikes per layer and timestep."""
    import numpy as np
    import torch

    from accelsim.model import workloads as W
    from accelsim.spiking.functional import run
    from accelsim.training.torch_snn import SpikingNetwork

    spec = W.WorkloadSpec(architecture=name, dataset="cifar10", width=1 / 16, spike_rate=0.5,
                          calibration_images=2)
    net, _ = W.build_workload(spec)
    images = W.synthetic_images(net.architecture.input_shape, 2, seed=5).astype(np.float64)
    with torch.no_grad():
        ref = SpikingNetwork.from_network(net).double().forward_snn(
            torch.from_numpy(images), net.timesteps, record=True)
    result = run(net, images, record_spikes=True)
    spiking = [layer.name for layer in net.layers if layer.kind == "spiking"]
    mine = np.array([[trains[n].counts() for n in spiking] for trains in result.spikes])
    np.testing.assert_array_equal(mine, ref.spike_counts.numpy().astype(np.int64))
    np.testing.assert_array_equal(result.predictions, ref.logits.argmax(1).numpy())
    assert mine.sum() > 0
