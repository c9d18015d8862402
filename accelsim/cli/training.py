"""accelsim CLI commands (training): ``train`` and ``evaluate``."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from accelsim.cli import app


@app.command()
def train(
    dataset: Annotated[str, typer.Option(help="digits, mnist5k, mnist, fashion-mnist, cifar10, "
                                              "cifar100")] = "digits",
    arch: Annotated[str, typer.Option(help="vgg5 vgg6 vgg9 vgg11 vgg16 vgg16-imagenet "
                                           "resnet-small resnet20 resnet34")] = "vgg5",
    width: Annotated[float, typer.Option(help="channel-count multiplier")] = 0.5,
    out: Annotated[Path, typer.Option(help="model file stem (writes .safetensors and .json)")] = (
        Path("trained_models/model")),
    size: Annotated[int | None, typer.Option(help="resize images to SIZE x SIZE")] = None,
    stage: Annotated[str, typer.Option(help="all | ann | convert | finetune")] = "all",
    epochs_ann: Annotated[int, typer.Option(help="ANN training epochs")] = 20,
    epochs_snn: Annotated[int, typer.Option(help="DIET-SNN fine-tuning epochs")] = 10,
    timesteps: Annotated[int, typer.Option(help="T for fine-tuning and evaluation")] = 5,
    threshold_scale: Annotated[float, typer.Option(help="conversion threshold factor")] = 0.5,
    conversion_timesteps: Annotated[int, typer.Option(help="T of the conversion runs")] = 100,
    conversion_images: Annotated[int, typer.Option(help="training images for conversion")] = 512,
    lr: Annotated[float, typer.Option(help="ANN learning rate")] = 1e-3,
    lr_snn: Annotated[float, typer.Option(help="fine-tuning learning rate")] = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adam | sgd (both with cosine decay)")] = "adam",
    batch_size: Annotated[int, typer.Option()] = 64,
    dropout: Annotated[float, typer.Option()] = 0.2,
    weight_decay: Annotated[float, typer.Option()] = 0.0,
    train_leak: Annotated[bool, typer.Option(help="train the per-layer leaks")] = True,
    train_threshold: Annotated[bool, typer.Option(help="train the per-layer thresholds")] = True,
    data_root: Annotated[Path | None, typer.Option(help="folder holding downloaded data sets")] = (
        None),
    checkpoint_dir: Annotated[Path | None, typer.Option(help="per-stage checkpoints; a rerun "
                                                             "resumes from them")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    quiet: Annotated[bool, typer.Option(help="no progress bars")] = False,
) -> None:
    """Train a DIET-SNN: ANN -> conversion -> fine-tuning, and write the model file."""
    import torch

    from accelsim.training.trainer import TrainingConfig, run_training

    if threads is not None:
        torch.set_num_threads(threads)
    config = TrainingConfig(
        dataset=dataset, arch=arch, width=width, size=size, seed=seed, batch_size=batch_size,
        dropout=dropout, optimizer=optimizer, weight_decay=weight_decay,  # type: ignore[arg-type]
        epochs_ann=epochs_ann, lr_ann=lr, conversion_timesteps=conversion_timesteps,
        conversion_images=conversion_images, threshold_scale=threshold_scale,
        epochs_snn=epochs_snn, lr_snn=lr_snn, timesteps=timesteps, train_leak=train_leak,
        train_threshold=train_threshold, device=device)
    command = shlex.join(["accelsim", *sys.argv[1:]])
    result = run_training(config, stage=stage, out=out, checkpoint_dir=checkpoint_dir,  # type: ignore[arg-type]
                          data_root=data_root, command=command, progress=not quiet)
    for name, value in result.accuracies.items():
        typer.echo(f"{name:>14} accuracy: {100 * value:6.2f} %")
    if result.model_path is not None:
        typer.echo(f"average spike rate: {result.average_spike_rate:.4f}")
        typer.echo(f"wrote {result.model_path}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Argument(help="model file (.safetensors or .json)")],
    timesteps: Annotated[int | None, typer.Option(help="T (default: the model's)")] = None,
    images: Annotated[int | None, typer.Option(help="a seeded random N test images")] = None,
    data_root: Annotated[Path | None, typer.Option()] = None,
    device: Annotated[str, typer.Option()] = "cpu",
    threads: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Accuracy and per-layer spike rates of a trained model on its data set's test split."""
    import torch

    from accelsim.chip.pricing import compute_only_energy
    from accelsim.training.trainer import evaluate_model

    if threads is not None:
        torch.set_num_threads(threads)
    network, result = evaluate_model(model, timesteps=timesteps, images=images,
                                     data_root=data_root, device=device)
    typer.echo(f"{network.name} on {network.dataset} test ({result.images} images), "
               f"T={result.timesteps}: accuracy {100 * result.accuracy:.2f} %")
    typer.echo(f"{'layer':<24}{'neurons':>10}{'spike rate':>12}")
    for layer in network.layers:
        if layer.kind == "spiking":
            typer.echo(f"{layer.name:<24}{layer.neurons:>10}"
                       f"{result.spike_rates[layer.name]:>12.4f}")
    typer.echo(f"{'average':<24}{'':>10}{result.average_spike_rate:>12.4f}")
    ann_pj, snn_pj = compute_only_energy(network.architecture, result.spike_rates)
    typer.echo(f"compute-only energy: ANN {ann_pj / 1e6:.3f} uJ, SNN {snn_pj / 1e6:.3f} uJ "
               f"(ratio {ann_pj / snn_pj:.2f})")
