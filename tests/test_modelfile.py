"""The model file: round trip, and every way a damaged or inconsistent file is refused."""

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from accelsim.model.architectures import build
from accelsim.model.modelfile import (
    ModelFileError,
    load_model,
    model_paths,
    read_manifest,
    save_model,
)
from accelsim.model.network import Network


def _network(input_shape=(1, 8, 8), dataset="digits") -> Network:
    from accelsim.training.torch_snn import SpikingNetwork

    arch = build("vgg5", input_shape, 10, width=0.25)
    weights = SpikingNetwork(arch, seed=0).weight_arrays()
    # Distinct trained-looking leaks and thresholds, so a round trip that drops them fails.
    layers = tuple(
        layer.model_copy(update={"leak": 0.99 - 0.01 * i, "threshold": 0.5 + 0.125 * i})
        if layer.kind == "spiking" else layer
        for i, layer in enumerate(arch.layers))
    return Network(name="digits-vgg5", dataset=dataset,
                   architecture=arch.model_copy(update={"layers": layers}), weights=weights,
                   timesteps=4, input_mean=(0.3,), input_std=(0.45,))


@pytest.fixture(scope="module")
def network() -> Network:
    return _network()


_RATES = {"average": 1.25, "per_layer": {"conv1": 2.0, "conv2": 0.5}}
_TRAINING = {"command": "accelsim train --epochs 3", "epochs": {"ann": 3, "snn": 2},
             "seed": np.int64(5), "lr": np.float32(0.5), "root": Path("/data")}


@pytest.fixture
def saved(tmp_path, network) -> Path:
    save_model(tmp_path / "m", network, accuracies={"ann": 95.5, "diet_snn": 93.25},
               spike_rates=_RATES, training=_TRAINING, dataset_split_seed=11)
    return tmp_path / "m"


def _edit_manifest(stem: Path, edit) -> None:
    json_path, _ = model_paths(stem)
    data = json.loads(json_path.read_text())
    edit(data)
    json_path.write_text(json.dumps(data))


def _rewrite_weights(stem: Path, tensors: dict[str, np.ndarray]) -> None:
    """Replace the weights and re-sign them in the manifest, so later checks are reached."""
    json_path, st_path = model_paths(stem)
    save_file(tensors, str(st_path))
    sha = hashlib.sha256(st_path.read_bytes()).hexdigest()
    _edit_manifest(stem, lambda d: d.update(weights_sha256=sha))


# -- round trip ----------------------------------------------------------------------------------


def test_round_trip_is_exact(saved, network):
    loaded = load_model(saved)
    assert loaded.architecture == network.architecture
    assert [(la.leak, la.threshold) for la in loaded.layers] == \
        [(la.leak, la.threshold) for la in network.layers]
    assert set(loaded.weights) == set(network.weights)
    for name, w in network.weights.items():
        assert loaded.weights[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.weights[name], w)
    assert (loaded.name, loaded.dataset, loaded.timesteps) == ("digits-vgg5", "digits", 4)
    assert (loaded.input_mean, loaded.input_std) == ((0.3,), (0.45,))


def test_manifest_fields(saved, network):
    json_path, st_path = model_paths(saved)
    m = read_manifest(saved)
    assert m.format_version == 1 and m.name == "digits-vgg5" and m.timesteps == 4
    assert m.dataset.name == "digits" and m.dataset.size is None and m.dataset.split_seed == 11
    assert m.input_shape == (1, 8, 8) and m.normalisation.mean == (0.3,)
    assert (m.accuracies.ann, m.accuracies.converted_snn, m.accuracies.diet_snn) == \
        (95.5, None, 93.25)
    assert m.spike_rates is not None and m.spike_rates.per_layer == _RATES["per_layer"]
    assert m.training == {"command": "accelsim train --epochs 3", "epochs": {"ann": 3, "snn": 2},
                          "seed": 5, "lr": 0.5, "root": "/data"}
    assert m.weights == {k: tuple(w.shape) for k, w in network.weights.items()}
    assert m.weights_sha256 == hashlib.sha256(st_path.read_bytes()).hexdigest()
    assert m.software.numpy == np.__version__ and m.software.python
    assert json.loads(json_path.read_text())["architecture"]["layers"][0]["leak"] == 0.99
    # the safetensors half holds exactly the float32 weights, readable by the library itself
    raw = load_file(str(st_path))
    assert {k: v.dtype for k, v in raw.items()} == {k: np.float32 for k in network.weights}


@pytest.mark.parametrize("suffix", ["", ".json", ".safetensors"])
def test_any_of_the_three_paths_loads(saved, suffix):
    assert load_model(str(saved) + suffix).name == "digits-vgg5"


def test_resized_input_is_recorded(tmp_path):
    net = _network((1, 32, 32), dataset="mnist5k")
    save_model(tmp_path / "big.v1", net)
    assert read_manifest(tmp_path / "big.v1.json").dataset.size == 32
    assert load_model(tmp_path / "big.v1").architecture.input_shape == (1, 32, 32)


def test_loading_imports_neither_torch_nor_pickle_machinery(saved):
    code = ("import sys; from accelsim.model.modelfile import load_model; "
            f"load_model({str(saved)!r}); assert 'torch' not in sys.modules, 'torch imported'")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr


# -- refusals on load ------------------------------------------------------------------------------


def test_missing_manifest(saved):
    json_path, _ = model_paths(saved)
    json_path.unlink()
    with pytest.raises(ModelFileError, match=r"m\.json: manifest not found"):
        load_model(saved)


def test_missing_weights(saved):
    _, st_path = model_paths(saved)
    st_path.unlink()
    with pytest.raises(ModelFileError, match=r"m\.safetensors: weights file not found"):
        load_model(saved)


def test_invalid_json(saved):
    json_path, _ = model_paths(saved)
    json_path.write_text('{"format_version": 1,\n "name": }')
    with pytest.raises(ModelFileError, match=r"m\.json: invalid JSON at line 2 column"):
        load_model(saved)
    json_path.write_text("[1, 2]")
    with pytest.raises(ModelFileError, match=r"m\.json: the manifest must be a JSON object"):
        read_manifest(saved)


def test_unknown_format_version(saved):
    _edit_manifest(saved, lambda d: d.update(format_version=2))
    with pytest.raises(ModelFileError, match=r"m\.json: format_version 2 is not supported"):
        load_model(saved)


@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(timesteps=0), "'timesteps'"),
    (lambda d: d.pop("weights_sha256"), "'weights_sha256'"),
    (lambda d: d.update(surprise=1), "'surprise'"),
    (lambda d: d["dataset"].update(split_seed="x"), "'dataset.split_seed'"),
    (lambda d: d["accuracies"].update(ann=101.0), "'accuracies.ann'"),
    (lambda d: d["architecture"]["layers"][1].update(threshold=0.0),
     "'architecture.layers.1.threshold'"),
    (lambda d: d["normalisation"].update(std=[0.0]), r"'normalisation': std \(0.0,\) must be"),
    (lambda d: d["normalisation"].update(mean=[0.1, 0.2], std=[1, 1]),
     r"'normalisation': 2 value\(s\) per statistic, the input has 1 channel"),
])
def test_schema_errors_name_the_field(saved, edit, field):
    _edit_manifest(saved, edit)
    with pytest.raises(ModelFileError, match=rf"m\.json: invalid manifest: .*{field}"):
        load_model(saved)


def test_leak_above_one_is_refused(saved):
    _edit_manifest(saved, lambda d: d["architecture"]["layers"][2].update(leak=1.5))
    with pytest.raises(ModelFileError, match=r"m\.json: invalid manifest: field 'architecture': "
                                             r"layer 'conv3': leak 1.5 must be in \[0, 1\]"):
        load_model(saved)


def test_manifest_shapes_must_match_the_architecture(saved):
    _edit_manifest(saved, lambda d: d["weights"].update({"conv1.weight": [16, 1, 5, 5]}))
    with pytest.raises(ModelFileError, match=r"m\.json: invalid manifest: field 'weights': "
                                             r"weights do not match the architecture.*conv1"):
        load_model(saved)
    _edit_manifest(saved, lambda d: d.update(input_shape=[1, 9, 9]))
    with pytest.raises(ModelFileError, match=r"field 'input_shape': input_shape \(1, 9, 9\) "):
        load_model(saved)


@pytest.mark.parametrize("keep", [100, 7, 0])
def test_truncated_weights_file(saved, keep):
    _, st_path = model_paths(saved)
    st_path.write_bytes(st_path.read_bytes()[:keep])
    with pytest.raises(ModelFileError, match=r"m\.safetensors: not a valid safetensors file, "
                                             r"truncated or corrupt \(SafetensorError"):
        load_model(saved)


def test_sha_mismatch(saved, network):
    _, st_path = model_paths(saved)
    tensors = {k: np.array(v) for k, v in network.weights.items()}
    tensors["conv2.weight"][0, 0, 0, 0] += 1.0  # same names and shapes, other values
    save_file(tensors, str(st_path))
    with pytest.raises(ModelFileError, match=r"m\.safetensors: weights file does not match the "
                                             r"manifest \(sha256"):
        load_model(saved)


def test_missing_and_unexpected_tensors(saved, network):
    tensors = {k: v for k, v in network.weights.items() if k != "fc1.weight"}
    tensors["extra"] = np.zeros(3, np.float32)
    _rewrite_weights(saved, tensors)
    with pytest.raises(ModelFileError, match=r"m\.safetensors: tensors missing \['fc1.weight'\], "
                                             r"unexpected \['extra'\]"):
        load_model(saved)


def test_tensor_shape_mismatch(saved, network):
    tensors = dict(network.weights)
    tensors["output.weight"] = np.zeros((10, 255), np.float32)
    _rewrite_weights(saved, tensors)
    with pytest.raises(ModelFileError, match=r"m\.safetensors: tensor 'output.weight' has shape "
                                             r"\(10, 255\), .*say \(10, 256\)"):
        load_model(saved)


def test_integer_weights_are_refused(saved, network):
    tensors = dict(network.weights)
    tensors["conv1.weight"] = np.ones((16, 1, 3, 3), np.int32)
    _rewrite_weights(saved, tensors)
    with pytest.raises(ModelFileError, match=r"m\.safetensors: tensor 'conv1.weight' has dtype "
                                             r"int32"):
        load_model(saved)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(saved, network, bad):
    tensors = {k: np.array(v) for k, v in network.weights.items()}
    tensors["fc1.weight"][3, 4] = bad
    tensors["fc1.weight"][0, 0] = bad
    _rewrite_weights(saved, tensors)
    with pytest.raises(ModelFileError, match=r"m\.safetensors: tensor 'fc1.weight' holds 2 "
                                             r"NaN/inf"):
        load_model(saved)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_payload_cannot_run(saved, tmp_path):
    marker = tmp_path / "pwned"
    _, st_path = model_paths(saved)
    payload = pickle.dumps({"conv1.weight": _Payload(marker)})
    pickle.loads(payload)  # the payload is live: plain unpickling would run it
    assert marker.exists()
    marker.unlink()
    st_path.write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    _edit_manifest(saved, lambda d: d.update(weights_sha256=sha))
    with pytest.raises(ModelFileError, match=r"m\.safetensors: not a valid safetensors file"):
        load_model(saved)
    assert not marker.exists()


# -- refusals on save ------------------------------------------------------------------------------


def test_save_refuses_non_finite_weights(tmp_path, network):
    weights = {k: np.array(v) for k, v in network.weights.items()}
    weights["conv3.weight"][0, 0, 0, 0] = np.nan
    bad = network.model_copy(update={"weights": weights})
    with pytest.raises(ModelFileError, match=r"m\.safetensors: weight 'conv3.weight' holds 1 "
                                             r"NaN/inf"):
        save_model(tmp_path / "m", bad)
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_leak_above_one_and_writes_nothing(tmp_path, network):
    layers = list(network.architecture.layers)
    layers[0] = layers[0].model_copy(update={"leak": 1.01})
    arch = network.architecture.model_copy(update={"layers": tuple(layers)})
    with pytest.raises(ModelFileError, match=r"m\.json: cannot write the manifest: field "
                                             r"'architecture': layer 'conv1': leak 1.01 must"):
        save_model(tmp_path / "m", network.model_copy(update={"architecture": arch}))
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_bad_extras(tmp_path, network):
    with pytest.raises(ModelFileError, match=r"field 'accuracies.top5'"):
        save_model(tmp_path / "m", network, accuracies={"top5": 99.0})
    with pytest.raises(ModelFileError, match=r"field 'spike_rates': per_layer names unknown "
                                             r"layers \['conv9'\]"):
        save_model(tmp_path / "m", network, spike_rates={"average": 1, "per_layer": {"conv9": 1}})
    with pytest.raises(ModelFileError, match=r"m\.json: cannot write the manifest: .*'training'"):
        save_model(tmp_path / "m", network, training={"optimiser": object()})
    assert list(tmp_path.iterdir()) == []
