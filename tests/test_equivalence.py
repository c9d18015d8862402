"""Every shipped model in ``trained_models/``: the numba core against PyTorch.

- float: predictions and spikes per layer per timestep equal the float64 PyTorch forward;
- fixed: spike trains equal the quantised PyTorch reference (:mod:`accelsim.spiking.quantize`),
with the
  leak floored and truncated toward zero.

The default run takes a subset of each model's test images; the ``slow`` run takes >= 500 (or the
whole test split when it is smaller, e.g. the 359 digits test images) for float and >= 100 for
fixed.
"""

from __future__ import annotations

from pathlib import Path

import naive  # tests/naive.py: pytest puts tests/ on sys.path
import numpy as np
import pytest

from accelsim.model.data import load_images, normalise
from accelsim.model.modelfile import load_model, read_manifest
from accelsim.spiking.functional import run

MODELS = sorted(Path(__file__).resolve().parents[1].glob("trained_models/*.json"))
pytestmark = [
    pytest.mark.equivalence,
    pytest.mark.skipif(not MODELS, reason="no shipped model in trained_models/ yet"),
]
QUICK_IMAGES = {"digits-vgg5": 64}
QUICK_DEFAULT = 16


def _model_and_images(path: Path, count: int):
    net = load_model(path)
    info = read_manifest(path).dataset
    test = load_images(info.name, "test", size=info.size, seed=info.split_seed)
    images = normalise(test.images[:count], net.input_mean, net.input_std)
    return net, np.asarray(images, dtype=np.float64), test.labels[:count]


def _torch_float(net, images):
    import torch

    from accelsim.training.torch_snn import SpikingNetwork

    with torch.no_grad():
        ref = SpikingNetwork.from_network(net).double().forward_snn(
            torch.from_numpy(images), net.timesteps, record=True)
    return ref.logits.argmax(1).numpy(), ref.spike_counts.numpy().astype(np.int64)


def _check_float(path: Path, count: int) -> None:
    net, images, _ = _model_and_images(path, count)
    result = run(net, images, record_spikes=True)
    predictions, counts = _torch_float(net, images)
    spiking = [la.name for la in net.layers if la.kind == "spiking"]
    mine = np.array([[trains[n].counts() for n in spiking] for trains in result.spikes])
    np.testing.assert_array_equal(result.predictions, predictions)
    np.testing.assert_array_equal(mine, counts)


def _check_fixed(path: Path, count: int, rounding: str = "floor") -> None:
    from accelsim.spiking.quantize import Quantization, quantise_network
    from accelsim.spiking.testing import reference_forward

    net, images, _ = _model_and_images(path, count)
    q = Quantization(leak_rounding=rounding)
    result = run(net, images, arithmetic="fixed", quantization=q, record_spikes=True)
    ref = reference_forward(quantise_network(net, q), images, net.timesteps)
    np.testing.assert_array_equal(result.output, ref.output)
    for i, trains in enumerate(result.spikes):
        for name, train in trains.items():
            np.testing.assert_array_equal(train.counts(), ref.spike_counts[name][i])
            for t in range(net.timesteps):
                np.testing.assert_array_equal(train.at(t), ref.spike_indices(name, i, t))


@pytest.mark.parametrize("path", naive.model_params(MODELS))
def test_float_matches_torch_float64_subset(path):
    _check_float(path, QUICK_IMAGES.get(path.stem, QUICK_DEFAULT))


@pytest.mark.parametrize("rounding", ["floor", "truncate"])
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_fixed_matches_quantised_reference_subset(path, rounding):
    _check_fixed(path, QUICK_IMAGES.get(path.stem, QUICK_DEFAULT) // 2, rounding)


@pytest.mark.slow
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_float_matches_torch_float64_full(path):
    _check_float(path, 500)


@pytest.mark.slow
@pytest.mark.parametrize("rounding", ["floor", "truncate"])
@pytest.mark.parametrize("path", MODELS, ids=[p.stem for p in MODELS])
def test_fixed_matches_quantised_reference_full(path, rounding):
    _check_fixed(path, 100, rounding)
