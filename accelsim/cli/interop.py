"""accelsim CLI commands (ecosystem): ``export-nir``, ``import-nir``, ``import-dietsnn`` and
``trace``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from accelsim.cli import app


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r}: give comma-separated numbers, e.g. "
                                 "0.4914,0.4822,0.4465", param_hint=option) from exc


@app.command("export-nir")
def export_nir(
    model: Annotated[Path, typer.Argument(help="model file (stem, .json or .safetensors)")],
    out: Annotated[Path, typer.Argument(help="NIR file to write (HDF5, e.g. model.nir)")],
) -> None:
    """Write a trained model as a NIR graph (see accelsim.model.nir for the neuron mapping)."""
    from accelsim.model import nir as anir
    from accelsim.model.modelfile import load_model

    path = anir.export_nir(load_model(model), out)
    typer.echo(f"wrote {path} (dt = {anir.DT:g} s per timestep)")


@app.command("import-nir")
def import_nir(
    nir_file: Annotated[Path, typer.Argument(help="NIR file (HDF5)")],
    out: Annotated[Path, typer.Argument(help="model file stem to write (.json + .safetensors)")],
    timesteps: Annotated[int | None, typer.Option(help="T (default: the graph's, else 5)")] = None,
    dt: Annotated[float | None, typer.Option(help="seconds per step the graph was written for "
                                                  "(default: the graph's, else 1e-4)")] = None,
) -> None:
    """Read a NIR graph (e.g. from snnTorch's exporter) into an accelsim model file."""
    from accelsim.model import nir as anir
    from accelsim.model.modelfile import save_model

    network = anir.import_nir(nir_file, dt=dt, timesteps=timesteps)
    path = save_model(out, network, training={"imported_from": str(nir_file)})
    spiking = sum(1 for layer in network.layers if layer.kind == "spiking")
    typer.echo(f"wrote {path}: {spiking} spiking layer(s) + output, T={network.timesteps}, "
               f"input {network.architecture.input_shape}")


@app.command("import-dietsnn")
def import_dietsnn(
    checkpoint: Annotated[Path, typer.Argument(help="the authors' .pth checkpoint")],
    out: Annotated[Path, typer.Argument(help="model file stem to write (.json + .safetensors)")],
    arch: Annotated[str, typer.Option(help="the plan: vgg5 vgg9 vgg11 vgg16 vgg16-imagenet "
                                           "resnet20 resnet34")] = "vgg16",
    dataset: Annotated[str, typer.Option(help="cifar10, cifar100, ... (input shape, test set)")]
    = "cifar10",
    timesteps: Annotated[int, typer.Option(help="T the model was trained for")] = 5,
    mean: Annotated[str | None, typer.Option(help="per-channel mean the checkpoint was trained "
                                                  "with, comma-separated")] = None,
    std: Annotated[str | None, typer.Option(help="per-channel std, comma-separated")] = None,
) -> None:
    """Import a DIET-SNN checkpoint of the authors' VGG or ResNet code into an accelsim model
    file."""
    from accelsim.model.checkpoints import load_dietsnn
    from accelsim.model.data import NATIVE_SHAPE
    from accelsim.model.modelfile import save_model

    if dataset not in NATIVE_SHAPE:
        raise typer.BadParameter(f"{dataset!r}: choose one of {sorted(NATIVE_SHAPE)}",
                                 param_hint="--dataset")
    shape = NATIVE_SHAPE[dataset]
    m, s = _floats(mean, "--mean"), _floats(std, "--std")
    if m is None or s is None:
        raise typer.BadParameter("give the normalisation the checkpoint was trained with (the "
                                 "transforms.Normalize of the training script), e.g. --mean "
                                 "0.4914,0.4822,0.4465 --std 0.2023,0.1994,0.2010",
                                 param_hint="--mean/--std")
    network = load_dietsnn(checkpoint, arch=arch, input_shape=shape, timesteps=timesteps,
                           input_mean=m, input_std=s, dataset=dataset, name=out.name)
    path = save_model(out, network, training={"imported_from": str(checkpoint)})
    typer.echo(f"wrote {path}: {arch} on {dataset}, T={timesteps}")


@app.command()
def trace(
    scenario: Annotated[Path, typer.Argument(help="scenario YAML file")],
    out: Annotated[Path, typer.Argument(help="trace file to write (.json)")],
    image: Annotated[int, typer.Option(help="which of the scenario's images (0-based)")] = 0,
    point: Annotated[int, typer.Option(help="sweep point")] = 0,
    flows: Annotated[int, typer.Option(help="packets drawn as flow arrows")] = 200,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override: dotted.path=value")]
    = None,
) -> None:
    """Write one image's chip timeline as a Chrome trace (open in ui.perfetto.dev)."""
    from accelsim.chip.trace import trace_image, write_trace
    from accelsim.model.modelfile import load_model
    from accelsim.workflow import points, runner
    from accelsim.workflow.scenario import parse_set

    resolved = points.check(scenario, parse_set(set_ or []))
    if not 0 <= point < len(resolved):
        raise ValueError(f"--point {point}: the scenario has {len(resolved)} point(s)")
    p = resolved[point]
    network = load_model(p.model_path)
    images, labels, _ = runner.select_images(p, network)
    if not 0 <= image < len(images):
        raise ValueError(f"--image {image}: the scenario selects {len(images)} image(s) "
                         f"(data.images); pick 0..{len(images) - 1}")
    sim = p.scenario.simulation
    result, timeline = trace_image(
        network, images[image], points.hardware_of(p.scenario), timesteps=sim.timesteps,
        mode=sim.mode, schedule=sim.schedule, arithmetic=sim.arithmetic,
        quantization=sim.quantization, flows=flows)
    write_trace(out, result)
    typer.echo(f"wrote {out}: image {image} (label {int(labels[image])}, prediction "
               f"{result['otherData']['prediction']}), {timeline.phase_end.shape[1]} tiles, "
               f"{int(timeline.end.max())} cycles; open it in ui.perfetto.dev")
