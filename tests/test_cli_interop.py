"""The interoperability commands through the typer app: export-nir, import-nir, import-dietsnn,
trace."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scenario_support import write_scenario
from typer.testing import CliRunner

from accelsim.cli import app
from accelsim.model.modelfile import load_model
from accelsim.spiking.functional import run


def test_export_then_import_nir_gives_the_same_model(workdir):
    pytest.importorskip("nir")
    model = workdir / "trained_models" / "tiny"
    r = CliRunner().invoke(app, ["export-nir", str(model), str(workdir / "tiny.nir")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["import-nir", str(workdir / "tiny.nir"), str(workdir / "back")])
    assert r.exit_code == 0, r.output
    a, b = load_model(model), load_model(workdir / "back")
    assert a.architecture == b.architecture and a.timesteps == b.timesteps
    x = np.random.default_rng(0).normal(size=(2, *a.architecture.input_shape))
    np.testing.assert_array_equal(run(a, x).output, run(b, x).output)


def test_import_nir_of_a_missing_file_fails_cleanly(workdir):
    pytest.importorskip("nir")
    r = CliRunner().invoke(app, ["import-nir", str(workdir / "none.nir"), str(workdir / "x")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.startswith("error: ") and "none.nir: NIR file not found" in r.stderr


def test_import_dietsnn_writes_a_model_file(workdir):
    torch = pytest.importorskip("torch")
    from test_checkpoints import _authors_state_dict

    state = _authors_state_dict("vgg16", 1 / 32, 10)[0]
    torch.save({"state_dict": state}, workdir / "ckpt.pth")
    args = ["import-dietsnn", str(workdir / "ckpt.pth"), str(workdir / "authors"), "--arch",
            "vgg16", "--dataset", "cifar10", "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    net = load_model(workdir / "authors")
    assert net.dataset == "cifar10" and net.input_std == (0.25, 0.25, 0.25)
    assert [la.name for la in net.layers][-3:] == ["fc1", "fc2", "output"]
    r = CliRunner().invoke(app, args[:-4])  # no normalisation given
    assert r.exit_code == 2 and "--mean/--std" in r.output


def test_import_dietsnn_reads_the_authors_resnet(workdir):
    torch = pytest.importorskip("torch")
    from test_checkpoints import _authors_resnet_state_dict

    torch.save({"state_dict": _authors_resnet_state_dict()[0]}, workdir / "resnet.pth")
    r = CliRunner().invoke(app, ["import-dietsnn", str(workdir / "resnet.pth"),
                                 str(workdir / "resnet"), "--arch", "resnet20", "--mean",
                                 "0,0,0", "--std", "1,1,1"])
    assert r.exit_code == 0, r.output
    net = load_model(workdir / "resnet")
    assert net.architecture.name == "resnet20" and net.layers[-2].name == "stage4.block2.conv2"


def test_import_dietsnn_refuses_a_pickle_with_a_payload(workdir):
    torch = pytest.importorskip("torch")
    from test_checkpoints import _authors_state_dict, _Payload

    marker = workdir / "payload-ran"
    torch.save({"state_dict": _authors_state_dict("vgg16", 1 / 32, 10)[0],
                "extra": _Payload(marker)}, workdir / "evil.pth")
    r = CliRunner().invoke(app, ["import-dietsnn", str(workdir / "evil.pth"),
                                 str(workdir / "out"), "--mean", "0,0,0", "--std", "1,1,1"])
    assert r.exit_code == 2 and r.stderr.startswith("error: ") and "refused" in r.stderr
    assert not marker.exists() and not (workdir / "out.json").exists()


def test_trace_writes_the_timeline_of_one_image(workdir):
    path = write_scenario(workdir, "name: t\nmodel: tiny\ndata: {images: 3}\n")
    out = workdir / "trace.json"
    r = CliRunner().invoke(app, ["trace", str(path), str(out), "--image", "2"])
    assert r.exit_code == 0, r.output
    trace = json.loads(out.read_text())
    assert trace["otherData"]["model"] == "tiny"
    assert any(e.get("cat") == "phase" for e in trace["traceEvents"])
    r = CliRunner().invoke(app, ["trace", str(path), str(out), "--image", "3"])
    assert r.exit_code == 2 and r.stderr.startswith("error: ")
    assert "--image 3: the scenario selects 3 image(s)" in r.stderr


@pytest.mark.parametrize("arithmetic", ["float", "fixed"])
def test_simulate_writes_the_trace_the_cli_writes(workdir, arithmetic):
    from accelsim.chip.simulation import simulate
    from accelsim.workflow import points, runner

    # fixed: on the chip that truncates the leak, which both paths must take from the tile
    extra = ("hardware: {preset: loihi-like}\nsimulation: {arithmetic: fixed}\n"
             if arithmetic == "fixed" else "")
    path = write_scenario(workdir, f"name: t\nmodel: tiny\ndata: {{images: 3}}\n{extra}")
    r = CliRunner().invoke(app, ["trace", str(path), str(workdir / "cli.json"), "--image", "1"])
    assert r.exit_code == 0, r.output
    # the same scenario's model, images and chip, from Python
    p = points.check(path, [])[0]
    network = load_model(p.model_path)
    images, labels, _ = runner.select_images(p, network)
    sim = p.scenario.simulation
    kw = dict(hardware=points.hardware_of(p.scenario), timesteps=sim.timesteps, mode=sim.mode,
              schedule=sim.schedule, arithmetic=sim.arithmetic, quantization=sim.quantization)
    result = simulate(network, images, labels, trace=workdir / "py.json", trace_image=1, **kw)
    cli = (workdir / "cli.json").read_text()
    assert (workdir / "py.json").read_text() == cli
    trace = json.loads(cli)
    assert trace["otherData"]["prediction"] == int(result.images["prediction"][1])
    # the trace's last phase ends where the simulation says image 1 ends
    assert max(e["ts"] + e.get("dur", 0) for e in trace["traceEvents"]
               if e.get("cat") == "phase") == int(result.images["total_cycles"][1])
    simulate(network, images, trace=workdir / "first.json", **kw)  # the first image by default
    assert (workdir / "first.json").read_text() != cli
    with pytest.raises(ValueError, match=r"trace_image 3: pick an image 0\.\.\.2 of the 3"):
        simulate(network, images, trace=workdir / "x.json", trace_image=3, **kw)
    assert not (workdir / "x.json").exists()
