"""Every command answers a user error with ``error: ...`` lines on stderr and exit code 2: no
traceback, the file or option named, and the fix said."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accelsim.cli import app

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "trained_models" / "digits-vgg5"


@pytest.fixture()
def model(tmp_path) -> Path:
    """A copy of a shipped model (stem), free to corrupt."""
    for suffix in (".json", ".safetensors"):
        shutil.copy(MODEL.with_suffix(suffix), tmp_path / f"m{suffix}")
    return tmp_path / "m"


def refused(args: list[str], *needles: str) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)
    return result.stderr


def test_evaluate_truncated_model(model):
    weights = model.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])
    refused(["evaluate", str(weights)], str(weights), "truncated or corrupt", "re-save")


def test_evaluate_tampered_model(model):
    weights = model.with_suffix(".safetensors")
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # a weight byte: still a valid file, no longer the saved one
    weights.write_bytes(bytes(data))
    refused(["evaluate", str(model)], str(weights), "does not match the manifest")


def test_evaluate_pickled_model_is_never_unpickled(model, tmp_path):
    marker = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (marker,))

    model.with_suffix(".safetensors").write_bytes(pickle.dumps({"w": Boom()}))
    refused(["evaluate", str(model)], "not a valid safetensors file")
    model.with_suffix(".json").write_bytes(pickle.dumps({"w": Boom()}))
    refused(["evaluate", str(model)], f"{model}.json", "not a text file")
    assert not marker.exists()


def test_evaluate_missing_file_and_folder(tmp_path):
    refused(["evaluate", str(tmp_path / "nothere.json")], "nothere.json", "manifest not found")
    refused(["evaluate", str(tmp_path)], str(tmp_path), "is a folder", "pass a model file")


@pytest.mark.parametrize(("option", "needles"), [
    (["--images", "0"], ["--images 0", "positive"]),
    (["--timesteps", "0"], ["--timesteps 0", "at least 1"]),
    (["--device", "tpu"], ["device 'tpu'", "'cpu'"]),
])
def test_evaluate_bad_options(model, option, needles):
    refused(["evaluate", str(model), *option], *needles)


def test_evaluate_cuda_without_a_gpu(model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    refused(["evaluate", str(model), "--device", "cuda", "--images", "2"], "no usable CUDA GPU",
            "--device cpu")


@pytest.mark.parametrize(("option", "needles"), [
    (["--timesteps", "0"], ["timesteps=0", "out of range"]),
    (["--size", "0"], ["size=0"]),
    (["--optimizer", "rmsprop"], ["optimizer='rmsprop'"]),
    (["--device", "gpu"], ["device 'gpu'"]),
    (["--stage", "warmup"], ["stage 'warmup'", "all, ann, convert, finetune"]),
    (["--dataset", "imagenet"], ["unknown data set 'imagenet'", "digits"]),
    (["--arch", "vgg3", "--epochs-ann", "0", "--epochs-snn", "0"], ["unknown architecture"]),
])
def test_train_bad_options(tmp_path, option, needles):
    refused(["train", "--out", str(tmp_path / "m"), "--quiet", *option], *needles)
    assert not list(tmp_path.iterdir())


def test_presets_unknown_name():
    refused(["presets", "nope"], "'nope'", "45nm-generic")


def test_console_script_evaluate_missing_file(tmp_path):
    script = Path(sys.executable).with_name("accelsim")
    proc = subprocess.run([str(script), "evaluate", str(tmp_path / "gone")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert "gone.json" in proc.stderr
