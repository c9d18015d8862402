"""The DIET-SNN training pipeline: conversion, leak clamp, end to end on digits, resume."""

import dataclasses

import numpy as np
import pytest
import torch

from accelsim.model.architectures import build
from accelsim.model.network import Architecture, Layer, Projection
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.training.trainer import (
    PreparedData,
    TrainingConfig,
    TrainingError,
    _prefix_currents,
    ann_accuracy,
    build_module,
    convert,
    evaluate_snn,
    finetune_snn,
    percentile_threshold,
    prepare_data,
    random_subset,
    train_ann,
)


def _chain(weight: float = 1.0) -> SpikingNetwork:
    """input (1,) -> h (1,) -> output (2,), all weights chosen."""
    h = Layer(name="h", kind="spiking", shape=(1,), leak=0.5, threshold=7.0,
              inputs=(Projection(source="input", op="linear", weight="h.w"),))
    out = Layer(name="out", kind="output", shape=(2,),
                inputs=(Projection(source="h", op="linear", weight="out.w"),))
    arch = Architecture(name="chain", input_shape=(1,), num_classes=2, layers=(h, out))
    module = SpikingNetwork(arch)
    with torch.no_grad():
        module.weights["h__w"].fill_(weight)
        module.weights["out__w"].copy_(torch.tensor([[1.0], [-1.0]]))
    return module


def test_percentile_threshold_is_max_over_timesteps():
    # 1..1000: numpy's linear percentile 99.7 sits at position .997 * 999 = 996.003 -> 997.003.
    ramp = torch.arange(1, 1001, dtype=torch.float64)
    assert percentile_threshold([ramp], 99.7) == pytest.approx(997.003)
    # Timesteps are separate distributions; the largest percentile wins.
    assert percentile_threshold([ramp, 2 * ramp, ramp / 4], 99.7) == pytest.approx(1994.006)


def test_conversion_sets_percentile_threshold_and_leak_one():
    module = _chain(weight=2.0)
    images = torch.arange(1, 1001, dtype=torch.float32).reshape(-1, 1)  # currents 2..2000
    thresholds = convert(module, images, timesteps=3, percentile=99.7, scale=0.25)
    assert thresholds == {"h": pytest.approx(0.25 * 2 * 997.003)}
    assert module.threshold["h"].item() == pytest.approx(0.25 * 2 * 997.003)
    assert module.leak["h"].item() == 1.0


def test_conversion_threshold_of_a_spiking_layer_follows_its_input_spikes():
    # h2 reads h1's spikes through weight 3: its current is 3 * o1[t], so (with more than 0.3 % of
    # the images spiking at some timestep) the percentile is 3 and the threshold 3 * scale.
    h1 = Layer(name="h1", kind="spiking", shape=(1,),
               inputs=(Projection(source="input", op="linear", weight="h1.w"),))
    h2 = Layer(name="h2", kind="spiking", shape=(1,),
               inputs=(Projection(source="h1", op="linear", weight="h2.w"),))
    out = Layer(name="out", kind="output", shape=(2,),
                inputs=(Projection(source="h2", op="linear", weight="out.w"),))
    module = SpikingNetwork(Architecture(name="c", input_shape=(1,), num_classes=2,
                                         layers=(h1, h2, out)))
    with torch.no_grad():
        module.weights["h1__w"].fill_(1.0)
        module.weights["h2__w"].fill_(3.0)
    images = torch.linspace(0.0, 1.0, 200).reshape(-1, 1)
    thresholds = convert(module, images, timesteps=10, percentile=99.7, scale=0.5)
    assert thresholds["h1"] == pytest.approx(0.5 * np.percentile(np.linspace(0, 1, 200), 99.7))
    assert thresholds["h2"] == pytest.approx(1.5)


def test_conversion_rejects_a_silent_layer():
    module = _chain(weight=-1.0)
    with pytest.raises(TrainingError, match="layer 'h' gets no positive input current"):
        convert(module, torch.ones(8, 1), timesteps=2)


def test_prefix_currents_match_forward_snn():
    """The conversion's truncated run has the semantics of the full forward pass."""
    arch = build("resnet-small", (1, 8, 8), 10, width=0.25)
    module = SpikingNetwork(arch, seed=1)
    with torch.no_grad():
        for i, v in enumerate(module.threshold.values()):
            v.fill_(0.3 + 0.1 * i)
        for v in module.leak.values():
            v.fill_(0.9)
    x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    full = module.forward_snn(x, 4, record_currents=True).input_currents
    for i, layer in enumerate(arch.layers):
        prefix = _prefix_currents(module, x, i, 4)
        for t in range(4):
            assert torch.equal(prefix[t], full[layer.name][t])


# -- training on digits ----------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one thread avoids oversubscribing the cores the other tests share."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits() -> PreparedData:
    return prepare_data(TrainingConfig(dataset="digits"))


def _subset(data: PreparedData, n: int) -> PreparedData:
    return dataclasses.replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n])


def test_leak_is_clamped_after_every_step_and_frozen_parameters_stay(digits):
    torch.manual_seed(0)  # dropout draws from the global generator: fix it for any test order
    config = TrainingConfig(dataset="digits", arch="vgg5", width=0.125, epochs_snn=1,
                            timesteps=2, lr_snn=0.05, batch_size=64, train_threshold=False)
    data = _subset(digits, 256)
    module = build_module(config, data.input_shape, data.num_classes)
    with torch.no_grad():
        for p in module.leak.values():
            p.fill_(0.999)
        for p in module.threshold.values():
            p.fill_(0.5)
    steps = []
    original = module.clamp_leak_
    module.clamp_leak_ = lambda: (steps.append(max(p.item() for p in module.leak.values())),
                                  original())[1]
    finetune_snn(module, data, config)
    assert len(steps) == 4  # 256 images / 64 per batch
    assert max(steps) > 1.0  # the optimiser did push a leak above 1 ...
    assert all(p.item() <= 1.0 for p in module.leak.values())  # ... and the clamp caught it
    assert all(p.item() == 0.5 for p in module.threshold.values())  # frozen: untouched

    frozen = dataclasses.replace(config, train_leak=False, train_threshold=True)
    before = {k: p.item() for k, p in module.leak.items()}
    finetune_snn(module, data, frozen)
    assert {k: p.item() for k, p in module.leak.items()} == before
    assert any(p.item() != 0.5 for p in module.threshold.values())


def test_digits_end_to_end_beats_chance(digits):
    torch.manual_seed(0)
    config = TrainingConfig(dataset="digits", arch="vgg5", width=0.25, epochs_ann=5,
                            lr_ann=3e-3, threshold_scale=0.5, epochs_snn=1, timesteps=3,
                            lr_snn=3e-4)
    module = build_module(config, digits.input_shape, digits.num_classes)
    train_ann(module, digits, config)
    ann = ann_accuracy(module, digits.test_x, digits.test_y)
    convert(module, digits.train_x[:128], timesteps=10, scale=0.5)
    converted = evaluate_snn(module, digits.test_x, digits.test_y, 3)
    finetune_snn(module, _subset(digits, 512), config)
    final = evaluate_snn(module, digits.test_x, digits.test_y, 3)
    assert ann > 0.85
    assert converted.accuracy > 0.7
    assert final.accuracy > 0.75
    assert 0 < final.average_spike_rate < 3
    neurons = {layer.name: layer.neurons for layer in module.spiking_layers}
    weighted = sum(final.spike_rates[k] * n for k, n in neurons.items()) / sum(neurons.values())
    assert final.average_spike_rate == pytest.approx(weighted)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(digits, tmp_path):
    config = TrainingConfig(dataset="digits", arch="vgg5", width=0.125, epochs_ann=2,
                            epochs_snn=2, timesteps=2, batch_size=64, dropout=0.3)
    data = _subset(digits, 192)

    def run(checkpoints, interrupt: bool):
        torch.manual_seed(123)
        module = build_module(config, data.input_shape, data.num_classes)

        def stop(stage, epoch, accuracy):
            if interrupt and epoch == 1:
                raise KeyboardInterrupt

        for stage in (train_ann, finetune_snn):
            try:
                stage(module, data, config, checkpoint=checkpoints / stage.__name__,
                      callback=stop)
            except KeyboardInterrupt:
                torch.manual_seed(999)  # a fresh process would have another RNG state
                module = build_module(config, data.input_shape, data.num_classes)
                if stage is finetune_snn:
                    convert(module, data.train_x[:64], timesteps=5,
                            checkpoint=checkpoints / "convert")
                stage(module, data, config, checkpoint=checkpoints / stage.__name__)
            if stage is train_ann:
                convert(module, data.train_x[:64], timesteps=5,
                        checkpoint=checkpoints / "convert")
        return module.state_dict()

    straight = run(tmp_path / "a", interrupt=False)
    resumed = run(tmp_path / "b", interrupt=True)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_model_file_round_trip_and_cli_evaluate(digits, tmp_path):
    from typer.testing import CliRunner

    from accelsim.cli import app
    from accelsim.model.modelfile import read_manifest
    from accelsim.training.trainer import save_trained

    config = TrainingConfig(dataset="digits", arch="vgg5", width=0.125, timesteps=3)
    module = build_module(config, digits.input_shape, digits.num_classes)
    with torch.no_grad():
        for p in module.threshold.values():
            p.fill_(0.7)
    x, y = random_subset(digits.test_x, digits.test_y, 40)
    expected = evaluate_snn(module, x, y, 3)
    accuracies = {"ann": 0.5, "converted_snn": 0.25, "diet_snn": expected.accuracy}
    path = save_trained(tmp_path / "tiny", module, digits, config, accuracies, expected, "cmd")
    manifest = read_manifest(path)
    assert manifest.accuracies.diet_snn == pytest.approx(100 * expected.accuracy)
    assert manifest.spike_rates.average == pytest.approx(expected.average_spike_rate)
    assert manifest.training["settings"]["width"] == 0.125
    result = CliRunner().invoke(app, ["evaluate", str(path), "--images", "40"])
    assert result.exit_code == 0, result.output
    assert f"accuracy {100 * expected.accuracy:.2f} %" in result.output
    for name, rate in expected.spike_rates.items():
        assert any(line.split()[:1] == [name] and line.split()[-1] == f"{rate:.4f}"
                   for line in result.output.splitlines())


def test_bad_settings_and_missing_checkpoints_are_named(tmp_path):
    from accelsim.training.trainer import run_training

    with pytest.raises(TrainingError, match="threshold_scale=0"):
        TrainingConfig(threshold_scale=0)
    with pytest.raises(TrainingError, match="give --checkpoint-dir"):
        run_training(TrainingConfig(), stage="finetune")
    with pytest.raises(TrainingError, match="ann.pt is missing: run --stage ann first"):
        run_training(TrainingConfig(width=0.125), stage="convert", checkpoint_dir=tmp_path)
