"""The DIET-SNN authors' PyTorch checkpoints, imported as accelsim networks.

Their code saves ``torch.save({'state_dict': model.state_dict(), ...})`` (often through
``nn.DataParallel``, so every key may start with ``module.``). The supported layout is their VGG
spiking model (docs/design.md §7):

- ``features.N.weight``: the 3x3 bias-free convolutions, N = index in the ``nn.Sequential``
  (ReLU, Dropout and AvgPool2d modules take indices too and hold no tensor);
- ``classifier.N.weight``: the bias-free linear layers, the last one the accumulate-only output;
- ``threshold.tN`` and ``leak.lN``: one scalar per spiking layer, N the layer's index in
  ``features`` or, for the classifier, its index in ``classifier`` plus one constant offset (their
  code numbers the classifier after the features). Any other tensor (a raw ``thresholds``
  list outside ``state_dict`` is fine) is refused by name.

Where the pools are comes from the plan (``--arch``: :data:`accelsim.architectures.VGG_PLANS`);
the channel and unit counts come from the tensors, so any width and classifier size loads. The
authors' ResNet checkpoints are not supported: their classifier reads the 2x2 map without a
global pool, which accelsim's ResNet plan does not build.

Loading uses ``torch.load(weights_only=True)``: a checkpoint that needs anything but tensors and
plain containers to unpickle (a pickle carrying code) is refused, and nothing in it runs.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from accelsim.architectures import POOL, VGG_PLANS
from accelsim.network import INPUT, Architecture, Layer, Network, Projection, Shape


class CheckpointError(ValueError):
    """A checkpoint cannot be imported; the message names the file and the key."""


_KEY = re.compile(r"^(features|classifier)\.(\d+)\.weight$|^(threshold)\.t(\d+)$|^(leak)\.l(\d+)$")


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """The float tensors of the checkpoint's ``state_dict`` (``module.`` prefix removed)."""
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"{path}: refused: the file needs more than tensors and plain "
                              f"containers to load, and accelsim never runs code from a "
                              f"checkpoint ({str(exc).splitlines()[0]})") from exc
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(exc).__name__}: "
                              f"{exc})") from exc
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict with 'state_dict', got "
                              f"{type(ckpt).__name__}")
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: state_dict[{key!r}] is a {type(value).__name__}, "
                                  "not a tensor")
        tensors[str(key).removeprefix("module.")] = value.detach().double().numpy()
    return tensors


def load_dietsnn(path: str | Path, *, arch: str, input_shape: Shape, timesteps: int = 5,
                 input_mean: tuple[float, ...], input_std: tuple[float, ...],
                 dataset: str | None = None, name: str | None = None) -> Network:
    """Import the authors' VGG checkpoint ``path`` as a :class:`Network` of plan ``arch``."""
    path = Path(path)
    if arch not in VGG_PLANS:
        raise CheckpointError(f"{path}: architecture {arch!r} is not supported; the authors' "
                              f"VGG plans are {sorted(VGG_PLANS)} (ResNet: see "
                              "accelsim.checkpoints)")
    tensors = read_checkpoint(path)
    parts: dict[str, dict[int, np.ndarray]] = {"features": {}, "classifier": {},
                                               "threshold": {}, "leak": {}}
    for key, value in tensors.items():
        m = _KEY.match(key)
        if m is None:
            raise CheckpointError(f"{path}: state_dict key {key!r} does not fit the DIET-SNN "
                                  "VGG layout (features.N.weight, classifier.N.weight, "
                                  "threshold.tN, leak.lN; no biases or batch norm)")
        kind, index = next((g, int(i)) for g, i in zip(m.groups()[::2], m.groups()[1::2],
                                                       strict=True) if g)
        parts[kind][index] = value
    convs = sorted(parts["features"])
    linears = sorted(parts["classifier"])
    plan = [c for c in VGG_PLANS[arch][0]]
    n_conv = sum(1 for c in plan if c != POOL)
    if len(convs) != n_conv:
        raise CheckpointError(f"{path}: {len(convs)} features.N.weight tensors, plan {arch!r} "
                              f"has {n_conv} convolutions")
    if not linears:
        raise CheckpointError(f"{path}: no classifier.N.weight tensor")

    def scalar(kind: str, index: int, what: str) -> float:
        if index not in parts[kind]:
            key = f"{kind}.{kind[0]}{index}"
            raise CheckpointError(f"{path}: {what} has no {key!r}")
        value = parts[kind].pop(index)
        if value.size != 1 or not math.isfinite(float(value.ravel()[0])):
            raise CheckpointError(f"{path}: {kind}.{kind[0]}{index} must be one finite number")
        v = float(value.ravel()[0])
        if (kind == "leak" and not 0.0 <= v <= 1.0) or (kind == "threshold" and v <= 0):
            raise CheckpointError(f"{path}: {kind}.{kind[0]}{index} = {v} is out of range "
                                  "(leak in [0, 1], threshold > 0)")
        return v

    layers: list[Layer] = []
    weights: dict[str, np.ndarray] = {}
    source, shape, pool = INPUT, tuple(input_shape), 1
    k = 0
    for item in plan:
        if item == POOL:
            pool *= 2
            continue
        index = convs[k]
        k += 1
        w = parts["features"][index]
        c_in = shape[0]
        if shape[1] % pool or shape[2] % pool:
            raise CheckpointError(f"{path}: plan {arch!r} pools a {shape[1]}x{shape[2]} map by "
                                  f"{pool}; give an input size that divides")
        if w.ndim != 4 or w.shape[1:] != (c_in, 3, 3):
            raise CheckpointError(f"{path}: features.{index}.weight has shape {w.shape}, "
                                  f"convolution {k} of {arch!r} needs (C_out, {c_in}, 3, 3)")
        name_k = f"conv{k}"
        h, wd = shape[1] // pool, shape[2] // pool
        layers.append(Layer(
            name=name_k, kind="spiking", shape=(w.shape[0], h, wd),
            inputs=(Projection(source=source, op="conv", weight=f"{name_k}.weight", pool=pool,
                               kernel=3, padding=1),),
            leak=scalar("leak", index, name_k), threshold=scalar("threshold", index, name_k)))
        weights[f"{name_k}.weight"] = w
        source, shape, pool = name_k, (w.shape[0], h, wd), 1
    flat = int(np.prod(shape)) // (pool * pool)
    # the classifier's scalars: the remaining threshold keys, in order, one offset for all
    rest = sorted(parts["threshold"])
    hidden = linears[:-1]
    if len(rest) != len(hidden):
        raise CheckpointError(f"{path}: {len(hidden)} spiking classifier layer(s) but threshold "
                              f"keys {['t' + str(i) for i in rest]} left after the features")
    offsets = {r - c for r, c in zip(rest, hidden, strict=True)}
    if len(offsets) > 1:
        raise CheckpointError(f"{path}: classifier threshold keys {rest} do not follow the "
                              f"classifier indices {hidden} with one offset")
    offset = offsets.pop() if offsets else 0
    for j, index in enumerate(linears, start=1):
        w = parts["classifier"][index]
        if w.ndim != 2 or w.shape[1] != flat:
            raise CheckpointError(f"{path}: classifier.{index}.weight has shape {w.shape}; it "
                                  f"must take the {flat} values of the layer before (plan "
                                  f"{arch!r} at input {tuple(input_shape)})")
        last = j == len(linears)
        name_j = "output" if last else f"fc{j}"
        extra = {} if last else dict(leak=scalar("leak", index + offset, name_j),
                                     threshold=scalar("threshold", index + offset, name_j))
        layers.append(Layer(
            name=name_j, kind="output" if last else "spiking", shape=(w.shape[0],),
            inputs=(Projection(source=source, op="linear", weight=f"{name_j}.weight",
                               pool=pool),), **extra))
        weights[f"{name_j}.weight"] = w
        source, flat, pool = name_j, w.shape[0], 1
    for kind in ("threshold", "leak"):
        if parts[kind]:
            keys = [f"{kind}.{kind[0]}{i}" for i in sorted(parts[kind])]
            raise CheckpointError(f"{path}: {keys} belong to no layer of plan {arch!r}")
    try:
        architecture = Architecture(name=arch, input_shape=tuple(input_shape),
                                    num_classes=layers[-1].shape[0], layers=tuple(layers))
        return Network(name=name or f"dietsnn-{arch}" + (f"-{dataset}" if dataset else ""),
                       dataset=dataset, architecture=architecture,
                       weights={n: w.astype(np.float32) for n, w in weights.items()},
                       timesteps=timesteps, input_mean=tuple(input_mean),
                       input_std=tuple(input_std))
    except ValidationError as exc:
        raise CheckpointError(f"{path}: the tensors do not form a valid network: {exc}") from exc
