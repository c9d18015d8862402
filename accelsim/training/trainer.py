"""DIET-SNN training: ANN training, threshold-balancing conversion, and DIET-SNN fine-tuning.

The three stages of docs/design.md §2 over one :class:`~accelsim.training.torch_snn.SpikingNetwork`:

1. the bias-free ANN (``forward_ann``) is trained with cross-entropy and dropout;
2. conversion sets, layer by layer in graph order with leak 1 and the earlier layers already
   converted, each threshold to ``scale`` x the maximum over timesteps of the 99.7th percentile
   of the layer's input current;
3. fine-tuning trains weights, leaks and thresholds together through time (BPTT over T).

Every stage checkpoints after each epoch (or converted layer) and resumes from there; a resumed run
gives the same numbers as an uninterrupted one because the shuffling generator is re-seeded per
epoch from the run seed and the global RNG state (dropout) is saved in the checkpoint.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from accelsim.chip.pricing import compute_only_energy
from accelsim.model.architectures import build
from accelsim.model.network import Network
from accelsim.training.torch_snn import SpikingNetwork, _key

Stage = Literal["all", "ann", "convert", "finetune"]
STAGES = ("ann", "convert", "finetune")


class TrainingError(ValueError):
    """A training setting or checkpoint that cannot work; the message says which and why."""


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of a training run (written into the model manifest as is)."""

    dataset: str = "digits"
    arch: str = "vgg5"
    width: float = 0.5
    size: int | None = None
    seed: int = 0
    split_seed: int = 0
    batch_size: int = 64
    dropout: float = 0.2
    optimizer: Literal["adam", "sgd"] = "adam"
    weight_decay: float = 0.0
    epochs_ann: int = 20
    lr_ann: float = 1e-3
    conversion_timesteps: int = 100
    conversion_images: int = 512
    percentile: float = 99.7
    threshold_scale: float = 0.5
    epochs_snn: int = 10
    lr_snn: float = 1e-4
    timesteps: int = 5
    train_leak: bool = True
    train_threshold: bool = True
    device: str = "cpu"

    def __post_init__(self) -> None:
        checks = {
            "width": self.width > 0, "batch_size": self.batch_size >= 1,
            "dropout": 0.0 <= self.dropout < 1.0, "epochs_ann": self.epochs_ann >= 0,
            "epochs_snn": self.epochs_snn >= 0, "lr_ann": self.lr_ann > 0,
            "lr_snn": self.lr_snn > 0, "timesteps": self.timesteps >= 1,
            "conversion_timesteps": self.conversion_timesteps >= 1,
            "conversion_images": self.conversion_images >= 1,
            "percentile": 0.0 < self.percentile <= 100.0,
            "threshold_scale": self.threshold_scale > 0,
            "optimizer": self.optimizer in ("adam", "sgd"),
        }
        checks["size"] = self.size is None or self.size >= 1
        for name, ok in checks.items():
            if not ok:
                raise TrainingError(f"training setting {name}={getattr(self, name)!r} is out of "
                                    "range; see `accelsim train --help` for the allowed values")
        check_device(self.device)


def check_device(device: str) -> None:
    """Refuse a device torch cannot use here (``cpu``, or ``cuda``/``cuda:N`` with a GPU)."""
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda") or (index and (kind == "cpu" or not index.isdigit())):
        raise TrainingError(f"device {device!r}: use 'cpu', or 'cuda' / 'cuda:N' on a machine "
                            "with an NVIDIA GPU")
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"device {device!r}: this machine has no usable CUDA GPU (torch "
                            f"{torch.__version__}); use --device cpu")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise TrainingError(f"device {device!r}: this machine has {torch.cuda.device_count()} "
                            "CUDA GPU(s); pick cuda:0 .. cuda:"
                            f"{torch.cuda.device_count() - 1}")


@dataclass
class PreparedData:
    """Normalised train and test tensors plus the normalisation the model file records."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])


def prepare_data(config: TrainingConfig, root: str | Path | None = None) -> PreparedData:
    """Load both splits, normalise both with the training split's channel statistics."""
    from accelsim.model.data import channel_stats, load_images, normalise

    train = load_images(config.dataset, "train", root=root, size=config.size,
                        seed=config.split_seed)
    test = load_images(config.dataset, "test", root=root, size=config.size,
                       seed=config.split_seed)
    mean, std = channel_stats(train.images)
    return PreparedData(
        train_x=torch.from_numpy(normalise(train.images, mean, std)),
        train_y=torch.from_numpy(np.asarray(train.labels, dtype=np.int64)),
        test_x=torch.from_numpy(normalise(test.images, mean, std)),
        test_y=torch.from_numpy(np.asarray(test.labels, dtype=np.int64)),
        mean=tuple(float(m) for m in mean), std=tuple(float(s) for s in std),
        num_classes=int(train.num_classes),
    )


def build_module(config: TrainingConfig, input_shape: tuple[int, ...],
                 num_classes: int) -> SpikingNetwork:
    architecture = build(config.arch, input_shape, num_classes, width=config.width)
    return SpikingNetwork(architecture, seed=config.seed)


# -- checkpoints --------------------------------------------------------------------------------


def _save_checkpoint(path: Path | None, state: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # atomic: an interrupted write never leaves a broken checkpoint


def load_checkpoint(path: Path) -> dict:
    """Read a stage checkpoint (tensors, numbers and strings only)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  (torch raises many kinds here)
        raise TrainingError(f"checkpoint {path} cannot be read ({exc}); delete it to restart "
                            "that stage") from exc


def _check_same_run(path: Path, state: dict, config: TrainingConfig, keys: tuple[str, ...]) -> None:
    saved = json.loads(state["config"])
    for k in keys:
        if saved.get(k) != asdict(config)[k]:
            raise TrainingError(f"checkpoint {path} was made with {k}={saved.get(k)!r}, this run "
                                f"has {k}={asdict(config)[k]!r}; use another --checkpoint-dir or "
                                "delete the checkpoint")


# -- data loading and optimisers ----------------------------------------------------------------


def _loader(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int, epoch: int) -> DataLoader:
    """Shuffled batches whose order depends only on (seed, epoch): resumable and reproducible."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                      generator=generator)


def _optimiser(params: list[torch.nn.Parameter], config: TrainingConfig, lr: float,
               epochs: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    if config.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr,
                                                      weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=config.weight_decay)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))


def _to_cpu(value):
    """Optimiser state with every tensor on the CPU (checkpoints load on any device)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    return value


EpochCallback = Callable[[str, int, float], None]
"""Called as ``callback(stage, epoch, train_accuracy)`` after each epoch is checkpointed."""


def _run_epochs(stage: str, module: SpikingNetwork, data: PreparedData, config: TrainingConfig,
                params: list[torch.nn.Parameter], lr: float, epochs: int,
                loss_of: Callable[[torch.Tensor], torch.Tensor], checkpoint: Path | None,
                progress: bool, callback: EpochCallback | None) -> list[float]:
    """The epoch loop shared by ANN training and fine-tuning; returns train accuracy per epoch."""
    device = torch.device(config.device)
    module.to(device)  # before the optimiser exists, so its state lives beside the parameters
    optimiser, scheduler = _optimiser(params, config, lr, epochs)
    history: list[float] = []
    start = 0
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        _check_same_run(checkpoint, state, config,
                        ("dataset", "arch", "width", "size", "seed", "batch_size", "optimizer"))
        module.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        start, history = int(state["epoch"]), [float(a) for a in state["history"]]
    for epoch in range(start, epochs):
        module.train()
        correct = total = 0
        running = 0.0
        batches = tqdm(_loader(data.train_x, data.train_y, config.batch_size, config.seed, epoch),
                       desc=f"{stage} {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            logits = loss_of(x)
            loss = F.cross_entropy(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            module.clamp_leak_()
            correct += int((logits.argmax(1) == y).sum())
            total += len(y)
            value = loss.item()
            running = 0.9 * running + 0.1 * value if total > len(y) else value
            batches.set_postfix(loss=f"{running:.3f}", acc=f"{correct / total:.3f}")
        scheduler.step()
        history.append(correct / max(1, total))
        state = {
            "stage": stage, "epoch": epoch + 1, "history": torch.tensor(history),
            "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
            "optimiser": _to_cpu(optimiser.state_dict()), "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(), "config": json.dumps(asdict(config)),
        }
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        _save_checkpoint(checkpoint, state)
        if progress:
            tqdm.write(f"{stage} epoch {epoch + 1}/{epochs}: loss {running:.4f}, "
                       f"train accuracy {history[-1]:.4f}")
        if callback is not None:
            callback(stage, epoch + 1, history[-1])
    module.to("cpu")
    return history


def train_ann(module: SpikingNetwork, data: PreparedData, config: TrainingConfig, *,
              checkpoint: Path | None = None, progress: bool = False,
              callback: EpochCallback | None = None) -> list[float]:
    """Stage 1: the bias-free ReLU network, cross-entropy with dropout."""
    params = list(module.weights.values())
    return _run_epochs("ann", module, data, config, params, config.lr_ann, config.epochs_ann,
                       lambda x: module.forward_ann(x, dropout=config.dropout),
                       checkpoint, progress, callback)


def finetune_snn(module: SpikingNetwork, data: PreparedData, config: TrainingConfig, *,
                 checkpoint: Path | None = None, progress: bool = False,
                 callback: EpochCallback | None = None) -> list[float]:
    """Stage 3 (DIET-SNN): weights, leaks and thresholds by BPTT over T, loss on the output sum.

    ``config.train_leak`` / ``config.train_threshold`` freeze those parameters when false (the
    ablation's variants); frozen parameters are not handed to the optimiser at all.
    """
    params = list(module.weights.values())
    for p in module.leak.values():
        p.requires_grad_(config.train_leak)
    for p in module.threshold.values():
        p.requires_grad_(config.train_threshold)
    if config.train_leak:
        params += list(module.leak.values())
    if config.train_threshold:
        params += list(module.threshold.values())
    try:
        return _run_epochs("finetune", module, data, config, params, config.lr_snn,
                           config.epochs_snn,
                           lambda x: module.forward_snn(x, config.timesteps,
                                                        dropout=config.dropout).logits,
                           checkpoint, progress, callback)
    finally:
        for p in [*module.leak.values(), *module.threshold.values()]:
            p.requires_grad_(True)


# -- conversion ---------------------------------------------------------------------------------


def percentile_threshold(currents: list[torch.Tensor] | torch.Tensor, percentile: float) -> float:
    """The maximum over timesteps of the ``percentile``-th percentile of the current.

    ``currents`` holds one tensor per timestep (any shape: all images and neurons pool together);
    numpy's linear-interpolation percentile is used, as in the authors' code.
    """
    best = -math.inf
    for current in currents:
        flat = current.detach().reshape(-1).to(torch.float64).cpu().numpy()
        best = max(best, float(np.percentile(flat, percentile)))
    return best


@torch.no_grad()
def _prefix_currents(module: SpikingNetwork, x: torch.Tensor, upto: int,
                     timesteps: int) -> list[torch.Tensor]:
    """Input current of layer ``upto`` at every timestep, running only layers 0..upto."""
    name = module.architecture.layers[upto].name
    out = module.forward_snn(x, timesteps, record_currents=True, until=name)
    return out.input_currents[name]  # type: ignore[index]


def convert(module: SpikingNetwork, images: torch.Tensor, *, timesteps: int = 100,
            percentile: float = 99.7, scale: float = 0.6, checkpoint: Path | None = None,
            config: TrainingConfig | None = None, progress: bool = False,
            device: str = "cpu") -> dict[str, float]:
    """Stage 2: set every leak to 1 and every threshold by percentile balancing, in graph order.

    Returns the thresholds by layer name. Resumes from ``checkpoint`` (saved after every layer).
    """
    spiking = [i for i, layer in enumerate(module.architecture.layers) if layer.kind == "spiking"]
    done: dict[str, float] = {}
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint)
        if config is not None:
            _check_same_run(checkpoint, state, config, ("dataset", "arch", "width", "size", "seed"))
        module.load_state_dict(state["model"])
        done = {str(k): float(v) for k, v in json.loads(state["thresholds"]).items()}
    with torch.no_grad():
        for p in module.leak.values():
            p.fill_(1.0)
    module.eval().to(device)
    x = images.to(device)
    for i in tqdm(spiking, desc="convert", disable=not progress, leave=False):
        name = module.architecture.layers[i].name
        if name in done:
            continue
        value = percentile_threshold(_prefix_currents(module, x, i, timesteps), percentile) * scale
        if not value > 0:
            raise TrainingError(f"conversion: layer {name!r} gets no positive input current "
                                f"(percentile {percentile} is {value / scale:g}); the layers "
                                "before it are silent: train the ANN longer or raise "
                                "--threshold-scale")
        with torch.no_grad():
            module.threshold[_key(name)].fill_(value)
        done[name] = value
        module.to("cpu")
        _save_checkpoint(checkpoint, {
            "stage": "convert", "model": module.state_dict(), "thresholds": json.dumps(done),
            "complete": len(done) == len(spiking),
            "config": json.dumps(asdict(config) if config is not None else {}),
        })
        module.to(device)
        if progress:
            tqdm.write(f"convert {name}: threshold {value:.4f}")
    module.to("cpu")
    return done


# -- evaluation ---------------------------------------------------------------------------------


@torch.no_grad()
def ann_accuracy(module: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, *,
                 batch_size: int = 256, device: str = "cpu") -> float:
    """Top-1 accuracy of the ReLU network (float32)."""
    module.eval().to(device)
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = module.forward_ann(x[i:i + batch_size].to(device))
        correct += int((logits.argmax(1).cpu() == y[i:i + batch_size]).sum())
    module.to("cpu")
    return correct / max(1, len(x))


@dataclass(frozen=True)
class SnnEvaluation:
    """Accuracy and activity of a spiking network at one T."""

    timesteps: int
    accuracy: float
    spike_rates: dict[str, float]
    """Per spiking layer: spikes over all T / neurons, averaged over images."""
    average_spike_rate: float
    """Total spikes / total spiking neurons, averaged over images."""
    images: int = 0
    predictions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64),
                                    repr=False)


@torch.no_grad()
def evaluate_snn(module: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, timesteps: int, *,
                 batch_size: int = 128, device: str = "cpu",
                 progress: bool = False) -> SnnEvaluation:
    """Run the SNN in float64 (the precision the simulator is proven equal to) on a copy."""
    net = copy.deepcopy(module).double().eval().to(device)
    layers = net.spiking_layers
    neurons = torch.tensor([layer.neurons for layer in layers], dtype=torch.float64)
    correct = 0
    counts = torch.zeros(len(layers), dtype=torch.float64)
    predictions = []
    for i in tqdm(range(0, len(x), batch_size), desc=f"snn T={timesteps}", disable=not progress,
                  leave=False):
        xb = x[i:i + batch_size].to(device, torch.float64)
        out = net.forward_snn(xb, timesteps, record=True)
        pred = out.logits.argmax(1).cpu()
        predictions.append(pred)
        correct += int((pred == y[i:i + batch_size]).sum())
        assert out.spike_counts is not None
        counts += out.spike_counts.sum(dim=(0, 2)).cpu()
    n = max(1, len(x))
    rates = counts / n / neurons
    return SnnEvaluation(
        timesteps=timesteps, accuracy=correct / n,
        spike_rates={layer.name: float(r) for layer, r in zip(layers, rates, strict=True)},
        average_spike_rate=float(counts.sum() / n / neurons.sum()), images=len(x),
        predictions=torch.cat(predictions).numpy() if predictions else np.zeros(0, np.int64),
    )


# -- the whole pipeline -------------------------------------------------------------------------


@dataclass
class TrainingResult:
    """What a pipeline run measured (accuracies in [0, 1])."""

    module: SpikingNetwork
    data: PreparedData
    accuracies: dict[str, float]
    spike_rates: dict[str, float]
    average_spike_rate: float
    model_path: Path | None = None


def random_subset(x: torch.Tensor, y: torch.Tensor, n: int | None,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images drawn without replacement by a seeded generator (all when ``n`` is None).

    Not the first ``n``: the embedded sets are stored sorted by class.
    """
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return x[idx], y[idx]


def conversion_images(data: PreparedData, config: TrainingConfig) -> torch.Tensor:
    """The seeded random batch of training images conversion balances thresholds on."""
    n = min(config.conversion_images, len(data.train_x))
    generator = torch.Generator().manual_seed(config.seed)
    return data.train_x[torch.randperm(len(data.train_x), generator=generator)[:n]]


def run_training(config: TrainingConfig, *, stage: Stage = "all", out: Path | None = None,
                 checkpoint_dir: Path | None = None, data_root: str | Path | None = None,
                 command: str | None = None, progress: bool = False,
                 eval_images: int | None = None) -> TrainingResult:
    """Run the stages (all, or one resuming from the previous stage's checkpoint).

    After the fine-tuning stage, writes ``out`` (``.safetensors`` + ``.json``) with the accuracies
    of all three stages at ``config.timesteps`` and the spike rates on the test split; ``--stage
    convert`` writes the converted SNN instead.
    """
    if stage not in ("all", *STAGES):
        raise TrainingError(f"stage {stage!r} is not one of all, ann, convert, finetune")
    if stage in ("convert", "finetune") and checkpoint_dir is None:
        raise TrainingError(f"--stage {stage} resumes from the previous stage's checkpoint: "
                            "give --checkpoint-dir")
    ckpt = {s: (checkpoint_dir / f"{s}.pt" if checkpoint_dir is not None else None)
            for s in STAGES}
    data = prepare_data(config, data_root)
    module = build_module(config, data.input_shape, data.num_classes)
    test_x, test_y = random_subset(data.test_x, data.test_y, eval_images)
    accuracies: dict[str, float] = {}

    def previous(name: str) -> dict:
        path = ckpt[name]
        assert path is not None
        if not path.exists():
            raise TrainingError(f"checkpoint {path} is missing: run --stage {name} first")
        state = load_checkpoint(path)
        module.load_state_dict(state["model"])
        return state

    if stage in ("all", "ann"):
        train_ann(module, data, config, checkpoint=ckpt["ann"], progress=progress)
    else:
        state = previous("ann")
        if int(state["epoch"]) < config.epochs_ann:
            raise TrainingError(f"checkpoint {ckpt['ann']} holds {int(state['epoch'])} of "
                                f"{config.epochs_ann} ANN epochs: finish --stage ann first")
    accuracies["ann"] = ann_accuracy(module, test_x, test_y, device=config.device)
    if progress:
        tqdm.write(f"ANN test accuracy {accuracies['ann']:.4f}")
    if stage == "ann":
        return TrainingResult(module, data, accuracies, {}, 0.0)

    if stage in ("all", "convert"):
        convert(module, conversion_images(data, config), timesteps=config.conversion_timesteps,
                percentile=config.percentile, scale=config.threshold_scale,
                checkpoint=ckpt["convert"], config=config, progress=progress,
                device=config.device)
    else:
        state = previous("convert")
        if not bool(state["complete"]):
            raise TrainingError(f"checkpoint {ckpt['convert']} is an unfinished conversion: "
                                "run --stage convert first")
    converted = evaluate_snn(module, test_x, test_y, config.timesteps, device=config.device)
    accuracies["converted_snn"] = converted.accuracy
    if progress:
        tqdm.write(f"converted SNN test accuracy at T={config.timesteps}: "
                   f"{converted.accuracy:.4f}")
    if stage == "convert":
        # The converted SNN is a model of its own (the ablation's "conversion only").
        path = None
        if out is not None:
            path = save_trained(out, module, data, config, accuracies, converted, command)
        return TrainingResult(module, data, accuracies, converted.spike_rates,
                              converted.average_spike_rate, path)

    finetune_snn(module, data, config, checkpoint=ckpt["finetune"], progress=progress)
    final = evaluate_snn(module, test_x, test_y, config.timesteps, device=config.device)
    accuracies["diet_snn"] = final.accuracy
    if progress:
        tqdm.write(f"DIET-SNN test accuracy at T={config.timesteps}: {final.accuracy:.4f}, "
                   f"average spike rate {final.average_spike_rate:.4f}")
    path = None
    if out is not None:
        path = save_trained(out, module, data, config, accuracies, final, command)
    return TrainingResult(module, data, accuracies, final.spike_rates, final.average_spike_rate,
                          path)


def to_network(module: SpikingNetwork, data: PreparedData, config: TrainingConfig,
               name: str) -> Network:
    """The trained module as the hardware-neutral description the simulator runs."""
    return Network(name=name, dataset=config.dataset, architecture=module.trained_architecture(),
                   weights=module.weight_arrays(), timesteps=config.timesteps,
                   input_mean=data.mean, input_std=data.std)


def save_trained(out: Path, module: SpikingNetwork, data: PreparedData, config: TrainingConfig,
                 accuracies: dict[str, float], final: SnnEvaluation,
                 command: str | None) -> Path:
    from accelsim.model.modelfile import save_model

    network = to_network(module, data, config, Path(out).name)
    ann_pj, snn_pj = compute_only_energy(network.architecture, final.spike_rates)
    training = {
        "command": command, "settings": asdict(config),
        "test_images": final.images, "timesteps": config.timesteps,
        "average_spike_rate": final.average_spike_rate,
        "compute_only_ann_pj": ann_pj, "compute_only_snn_pj": snn_pj,
        "parameters": int(sum(np.prod(s) for s in network.architecture.weight_shapes().values())),
    }
    return save_model(Path(out), network,
                      accuracies={k: 100.0 * v for k, v in accuracies.items()},
                      spike_rates={"average": final.average_spike_rate,
                                   "per_layer": final.spike_rates},
                      training=training, dataset_split_seed=config.split_seed)


def evaluate_model(path: str | Path, *, timesteps: int | None = None, images: int | None = None,
                   data_root: str | Path | None = None,
                   device: str = "cpu") -> tuple[Network, SnnEvaluation]:
    """Evaluate a model file on the test split of its data set, normalised and sized as trained."""
    from accelsim.model.data import load_images, normalise
    from accelsim.model.modelfile import load_model, read_manifest

    network = load_model(path)
    split_seed = read_manifest(path).dataset.split_seed
    if network.dataset is None:
        raise TrainingError(f"model {path} names no data set (field 'dataset'); it cannot be "
                            "evaluated on a test split")
    if images is not None and images < 1:
        raise TrainingError(f"--images {images}: give a positive number of test images")
    if timesteps is not None and timesteps < 1:
        raise TrainingError(f"--timesteps {timesteps}: T must be at least 1 (default: the "
                            f"model's T={network.timesteps})")
    check_device(device)
    size = network.architecture.input_shape[-1]
    test = load_images(network.dataset, "test", root=data_root, size=size, seed=split_seed)
    x = torch.from_numpy(normalise(test.images, network.input_mean, network.input_std))
    y = torch.from_numpy(np.asarray(test.labels, dtype=np.int64))
    x, y = random_subset(x, y, images)
    module = SpikingNetwork.from_network(network)
    T = network.timesteps if timesteps is None else timesteps
    return network, evaluate_snn(module, x, y, T, device=device)
