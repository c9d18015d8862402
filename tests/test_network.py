"""The layer-graph description: shapes, validation and the architecture builders."""

import numpy as np
import pytest
from pydantic import ValidationError

from accelsim.model.architectures import build
from accelsim.model.network import Architecture, Layer, Network, Projection


def _tiny_layers(output_shape=(2,)):
    hidden = Layer(name="h", kind="spiking", shape=(3,),
                   inputs=(Projection(source="input", op="linear", weight="h.w"),))
    out = Layer(name="out", kind="output", shape=output_shape,
                inputs=(Projection(source="h", op="linear", weight="out.w"),))
    return hidden, out


def test_weight_shapes_follow_torch_layout():
    arch = Architecture(name="t", input_shape=(1, 2, 2), num_classes=2, layers=_tiny_layers())
    assert arch.weight_shapes() == {"h.w": (3, 4), "out.w": (2, 3)}


def test_output_shape_must_match_classes():
    with pytest.raises(ValidationError, match=r"output layer shape \(3,\)"):
        Architecture(name="t", input_shape=(4,), num_classes=2, layers=_tiny_layers((3,)))


def test_unknown_source_is_named():
    hidden, out = _tiny_layers()
    bad = out.model_copy(update={"inputs": (Projection(source="nope", op="linear",
                                                       weight="out.w"),)})
    with pytest.raises(ValidationError, match="reads 'nope'"):
        Architecture(name="t", input_shape=(4,), num_classes=2, layers=(hidden, bad))


def test_output_must_be_last_and_unique():
    hidden, out = _tiny_layers()
    with pytest.raises(ValidationError, match="exactly the last layer"):
        Architecture(name="t", input_shape=(4,), num_classes=2, layers=(out, hidden))


def test_conv_shape_mismatch_is_named():
    conv = Layer(name="c", kind="spiking", shape=(2, 5, 5),
                 inputs=(Projection(source="input", op="conv", weight="c.w", kernel=3),))
    out = Layer(name="o", kind="output", shape=(2,),
                inputs=(Projection(source="c", op="linear", weight="o.w"),))
    with pytest.raises(ValidationError, match=r"gives shape \(2, 4, 4\)"):
        Architecture(name="t", input_shape=(1, 6, 6), num_classes=2, layers=(conv, out))


def test_identity_needs_no_weight():
    with pytest.raises(ValidationError, match="needs a weight name"):
        Projection(source="a", op="identity", weight="x")
    with pytest.raises(ValidationError, match="needs a weight name"):
        Projection(source="a", op="conv")


def test_network_refuses_wrong_weights():
    arch = Architecture(name="t", input_shape=(4,), num_classes=2, layers=_tiny_layers())
    good = {"h.w": np.zeros((3, 4), np.float32), "out.w": np.zeros((2, 3), np.float32)}
    Network(architecture=arch, weights=good, input_mean=(0.0,), input_std=(1.0,))
    with pytest.raises(ValidationError, match="weights missing"):
        Network(architecture=arch, weights={"h.w": good["h.w"]}, input_mean=(0.0,),
                input_std=(1.0,))
    with pytest.raises(ValidationError, match="has shape"):
        Network(architecture=arch, weights={**good, "h.w": np.zeros((4, 3))},
                input_mean=(0.0,), input_std=(1.0,))


def _kinds(arch):
    convs = sum(p.op == "conv" and p.kernel == 3 for layer in arch.layers for p in layer.inputs)
    linears = sum(p.op == "linear" for layer in arch.layers for p in layer.inputs)
    return convs, linears


def test_vgg16_is_the_papers_cifar_plan():
    arch = build("vgg16", (3, 32, 32), 10)
    assert _kinds(arch) == (13, 3)
    # Four 2x2 pools take 32x32 to 2x2 before the classifier: 512 * 2 * 2 inputs.
    assert arch.weight_shapes()["fc1.weight"] == (4096, 2048)
    assert arch.layers[-1].kind == "output"


def test_resnet20_has_twenty_weight_layers_and_shortcuts():
    arch = build("resnet20", (3, 32, 32), 10)
    convs, linears = _kinds(arch)
    assert convs + linears == 20
    shortcut_ops = [layer.inputs[1].op for layer in arch.layers if len(layer.inputs) == 2]
    assert shortcut_ops == ["identity", "identity", "conv", "identity", "conv", "identity",
                            "conv", "identity"]


def test_width_scales_channels():
    narrow = build("vgg9", (1, 32, 32), 10, width=0.25)
    assert narrow.layers[0].shape == (16, 32, 32)
    with pytest.raises(ValueError, match="unknown architecture"):
        build("vgg7", (1, 32, 32), 10)
