"""Calibrated workloads: deterministic, cached, and at their target rates as the simulator counts
them (accelsim.run, float64 event-driven), which is not the PyTorch pass that calibrated them."""

import math
from pathlib import Path

import numpy as np
import pytest
from scenario_support import write_scenario

import accelsim
from accelsim.model import workloads as W
from accelsim.workflow import columns as C
from accelsim.workflow import results as R
from accelsim.workflow import runner
from accelsim.workflow.plots import make_plots
from accelsim.workflow.scenario import ScenarioError

TINY = {"architecture": "vgg5", "dataset": "cifar10", "size": 16, "width": 0.25}
"""VGG5 at a quarter width on 16x16x3: conv 16-32-32, fc 256, 10 outputs."""


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELSIM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def measured_rates(net, images) -> dict[str, float]:
    counts = accelsim.run(net, images).counts
    spikes = counts.groupby(C.LAYER, sort=False)[C.SPIKES_OUT].sum()
    return {layer.name: spikes[layer.name] / layer.neurons / len(images)
            for layer in net.layers if layer.kind == "spiking"}


def test_same_parameters_give_identical_weights_and_thresholds():
    spec = W.WorkloadSpec(**TINY, spike_rate=0.5, seed=3)
    a, rates_a = W.build_workload(spec)
    b, rates_b = W.build_workload(spec)
    assert a.architecture == b.architecture and rates_a == rates_b
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name])
    other, _ = W.build_workload(spec.model_copy(update={"seed": 4}))
    assert not np.array_equal(other.weights["conv1.weight"], a.weights["conv1.weight"])


def test_weights_are_kaiming_normal():
    net, _ = W.build_workload(W.WorkloadSpec(**{**TINY, "width": 1.0}, spike_rate=0.5))
    w = net.weights["conv3.weight"]  # 128 x 128 x 3 x 3: fan-in 1152
    assert abs(float(w.mean())) < 0.01 * w.std()
    assert float(w.std()) == pytest.approx(math.sqrt(2 / 1152), rel=0.01)


def test_one_average_rate_holds_in_the_simulator(cache):
    target = 0.4
    net = W.workload(**TINY, spike_rate=target, seed=1)
    calibration = W.synthetic_images(net.architecture.input_shape, 8, 1, W.CALIBRATION_STREAM)
    # On the calibration images themselves only float32-vs-float64 ties can differ.
    for name, rate in measured_rates(net, calibration).items():
        assert rate == pytest.approx(target, rel=0.01, abs=2 / 2048), name
    # On fresh images of the same distribution the rate is the target up to sampling.
    fresh = W.synthetic_images(net.architecture.input_shape, 32, seed=7)
    for name, rate in measured_rates(net, fresh).items():
        assert rate == pytest.approx(target, rel=0.1), name


@pytest.mark.parametrize("architecture,targets", [("vgg5", [0.2, 0.6, 1.5, 0.3]),
                                                  ("resnet-small", [0.3, 1.0, 0.5, 0.8, 0.6])])
def test_per_layer_rates_hold_in_the_simulator(architecture, targets):
    net = W.workload(**{**TINY, "architecture": architecture}, spike_rate=targets,
                     calibration_images=16)
    spiking = [layer.name for layer in net.layers if layer.kind == "spiking"]
    assert len(spiking) == len(targets)
    calibration = W.synthetic_images(net.architecture.input_shape, 16, 0, W.CALIBRATION_STREAM)
    fresh = W.synthetic_images(net.architecture.input_shape, 32, seed=11)
    on_calibration, on_fresh = measured_rates(net, calibration), measured_rates(net, fresh)
    for name, target in zip(spiking, targets, strict=True):
        assert on_calibration[name] == pytest.approx(target, rel=0.01, abs=2 / 4096), name
        # the deepest layers hold 256 neurons: one image's activity moves their rate
        assert on_fresh[name] == pytest.approx(target, rel=0.1), name


def test_cache_hit_reads_the_file_and_new_parameters_miss(cache, monkeypatch):
    spec = W.WorkloadSpec(**TINY, spike_rate=0.5)
    path = W.model_file(spec)
    default_inputs = W.WorkloadSpec(**{k: v for k, v in TINY.items() if k != "dataset"},
                                    spike_rate=0.5)
    assert default_inputs.key() == spec.key()  # cifar10 is the default, resolved before keying
    assert path.parent == cache / "workloads" and path.is_file()
    first = accelsim.load_model(path)

    def no_build(spec):
        raise AssertionError("calibrated again despite the cache")

    monkeypatch.setattr(W, "build_workload", no_build)
    assert W.model_file(spec) == path
    again = W.workload(**TINY, spike_rate=0.5)
    assert again.architecture == first.architecture
    with pytest.raises(AssertionError, match="calibrated again"):
        W.model_file(spec.model_copy(update={"spike_rate": 0.6}))
    manifest = accelsim.read_manifest(path)
    assert manifest.training["source"] == W.SOURCE
    assert manifest.accuracies.diet_snn is None


def test_impossible_targets_are_refused_with_the_fix():
    with pytest.raises(W.WorkloadError, match="4 spiking layers .* one rate per layer"):
        W.workload(**TINY, spike_rate=[0.4, 0.4])
    with pytest.raises(W.WorkloadError, match="below T = 5"):
        W.workload(**TINY, spike_rate=5.0)
    with pytest.raises(W.WorkloadError, match="unknown architecture 'vgg7'"):
        W.workload(architecture="vgg7", spike_rate=0.4)
    with pytest.raises(W.WorkloadError, match="reaches at most"):
        W.workload(**TINY, spike_rate=4.9)


SCENARIO = """
name: tiny-workload
workload:
  architecture: vgg5
  dataset: mnist
  size: 8
  width: 0.0625
  timesteps: 3
  spike_rate: 0.4
data:
  images: 6
sweep:
  grid:
    workload.spike_rate: [0.3, 0.9]
"""


def test_scenario_runs_a_workload_sweep_end_to_end(tmp_path):
    path = write_scenario(tmp_path, SCENARIO)
    report = runner.run(path, out=tmp_path / "out", scheduler=runner.SERIAL, progress=False)
    assert report.points == 2 and report.simulated == 2
    res = R.load(report.folder)
    assert res.summary[C.ACCURACY].isna().all()
    assert all(meta["model_source"] == W.SOURCE for meta in res.meta)
    assert res.scenarios[0]["data"]["set"] == W.SYNTHETIC
    text = R.format_summary(res)
    assert "calibrated workload vgg5" in text
    assert list(res.summary["workload.spike_rate"]) == [0.3, 0.9]
    # more spikes per neuron: more energy per inference, as the simulator counts them
    assert res.summary[C.ENERGY_UJ].iloc[1] > res.summary[C.ENERGY_UJ].iloc[0]
    for point, target in ((0, 0.3), (1, 0.9)):
        rates = R.spike_rates(res, point)
        assert float(rates.mean()) == pytest.approx(target, rel=0.25)
    one = R.format_summary(res.point(0))
    assert "accuracy                    none (calibrated workload" in one
    figures = make_plots(res, tmp_path / "figures")  # no accuracy to annotate or rank by
    assert figures and all(f.is_file() for f in figures)


@pytest.mark.parametrize("text,message", [
    ("name: x\n", "model: is required"),
    ("name: x\nmodel: null\n", "exactly one of 'model'"),
    ("name: x\nmodel: tiny\nworkload: {architecture: vgg5, spike_rate: 0.4}\n",
     "exactly one of 'model'"),
    ("name: x\nworkload: {architecture: vgg5, spike_rate: 0.4}\ndata: {set: digits}\n",
     "synthetic standard-normal images"),
    ("name: x\nworkload: {architecture: vgg5, spike_rate: 0.4, rate: 1}\n",
     "unknown field 'rate'; valid fields here: architecture, calibration_images"),
    ("name: x\nworkload: {architecture: vgg5, spike_rate: -1}\n", "must be finite and > 0"),
])
def test_bad_workload_sections_say_what_to_fix(tmp_path, text, message):
    path = write_scenario(tmp_path, text)
    with pytest.raises(ScenarioError, match=message):
        runner.check(path)


def test_unreachable_rate_is_a_scenario_problem(tmp_path):
    path = write_scenario(tmp_path, "name: x\nworkload: {architecture: vgg5, dataset: mnist, "
                          "size: 8, width: 0.0625, timesteps: 3, spike_rate: 2.95}\n")
    with pytest.raises(ScenarioError, match="workload: layer 'conv1' reaches at most"):
        runner.check(path)


PAPER = sorted((Path(__file__).parents[1] / "scenarios").glob("paper-*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_scenarios_validate(path):
    """Calibrates each full-width workload (minutes for ImageNet VGG16) and maps it."""
    points = runner.check(path)
    assert points and all(p.scenario.workload is not None for p in points)
