"""The DIET-SNN authors' PyTorch checkpoints, imported as accelsim networks.

Their code saves ``torch.save({'state_dict': model.state_dict(), ...})`` (often through
``nn.DataParallel``, so every key may start with ``module.``). Two layouts are supported
(docs/design.md §7); in both, ``threshold.tN`` and ``leak.lN`` hold one scalar per spiking layer
and any other tensor is refused by name (a raw ``thresholds`` list outside ``state_dict`` is
fine). Where the pools are comes from the plan (``arch``); channel and unit counts come from the
tensors.

VGG (:data:`accelsim.model.architectures.VGG_PLANS`):

- ``features.N.weight``: the 3x3 bias-free convolutions, N = index in the ``nn.Sequential``
  (ReLU, Dropout and AvgPool2d modules take indices too and hold no tensor);
- ``classifier.N.weight``: the bias-free linear layers, the last one the accumulate-only output;
- the scalars are keyed N, the layer's index in ``features`` or, for the classifier, its index in
  ``classifier`` plus one constant offset (their code numbers the classifier after the features).

ResNet (:data:`accelsim.model.architectures.RESNET_PLANS`; the network is the plan's, built by
:func:`accelsim.model.architectures.resnet` at the width of the checkpoint's first convolution):

- ``pre_process.N.weight``: the stem convolutions (``stem1``, ``stem2``, ...), N their index in
  the ``nn.Sequential``, which also keys their scalars;
- ``layerS.K.residual.0.weight`` and ``layerS.K.residual.3.weight``: block K+1 of stage S,
  ``conv1`` and ``conv2``; ``layerS.K.identity.0.weight``: its 1x1 shortcut, present exactly
  where the plan's block needs one (the stride or the channels change). The authors' ImageNet
  code names them ``delay_path`` and ``shortcut``; both spellings load. Their scalars are
  numbered on from the stem's Sequential, one per convolution in block order (conv1, conv2), so
  the keys left after the stem's must be consecutive;
- ``classifier.0.weight``: the one linear output layer, reading the last map as the plan does
  (the authors' CIFAR code: the unpooled 2x2 map, as plan ``resnet20``; accelsim's
  ``resnet34`` plan pools the stem by 4 and the last map globally, so only a checkpoint with
  ``Linear(512, classes)`` fits it).

The weights run under accelsim's no-delay neuron (docs/design.md §2). Revisions of the authors'
``*_spiking.py`` that compute a layer's spikes from its membrane *before* the step's update (one
step of delay per layer, the threshold subtracted from the leaked membrane: ``u = lambda u + I -
v o``) give other spikes from the same weights, so an imported model is compared with theirs by
accuracy, not spike for spike.

Loading uses ``torch.load(weights_only=True)``: a checkpoint that needs anything but tensors and
plain containers to unpickle (a pickle carrying code) is refused, and nothing in it runs.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from accelsim.model.architectures import POOL, RESNET_PLANS, VGG_PLANS, resnet
from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection, Shape


class CheckpointError(ValueError):
    """A checkpoint cannot be imported; the message names the file and the key."""


_KEY = re.compile(r"^(features|classifier)\.(\d+)\.weight$|^(threshold)\.t(\d+)$|^(leak)\.l(\d+)$")
_RESNET_KEY = re.compile(r"pre_process\.(?P<stem>\d+)\.weight"
                         r"|layer(?P<stage>\d+)\.(?P<block>\d+)\.(?:(?:residual|delay_path)"
                         r"\.(?P<conv>[03])|(?P<shortcut>identity|shortcut)\.0)\.weight"
                         r"|classifier\.(?P<classifier>\d+)\.weight"
                         r"|threshold\.t(?P<threshold>\d+)|leak\.l(?P<leak>\d+)")


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
    """Import the authors' VGG or ResNet checkpoint ``path`` as a :class:`Network` of plan
    ``arch`` (a key of :data:`~accelsim.model.architectures.VGG_PLANS` or
    :data:`~accelsim.model.architectures.RESNET_PLANS`)."""
    path = Path(path)
    if arch not in VGG_PLANS and arch not in RESNET_PLANS:
        raise CheckpointError(f"{path}: architecture {arch!r} is not supported; the authors' "
                              f"plans are {sorted(VGG_PLANS)} and {sorted(RESNET_PLANS)}")
    tensors = read_checkpoint(path)
    build = _vgg if arch in VGG_PLANS else _resnet
    layers, weights = build(path, tensors, arch, tuple(input_shape))
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


def _scalar(path: Path, parts: dict[str, dict[int, np.ndarray]], kind: str, index: int,
            what: str) -> float:
    """Take ``threshold.tN`` or ``leak.lN`` out of ``parts``, checked."""
    key = f"{kind}.{kind[0]}{index}"
    if index not in parts[kind]:
        raise CheckpointError(f"{path}: {what} has no {key!r}")
    value = parts[kind].pop(index)
    if value.size != 1 or not math.isfinite(float(value.ravel()[0])):
        raise CheckpointError(f"{path}: {key} must be one finite number")
    v = float(value.ravel()[0])
    if (kind == "leak" and not 0.0 <= v <= 1.0) or (kind == "threshold" and v <= 0):
        raise CheckpointError(f"{path}: {key} = {v} is out of range "
                              "(leak in [0, 1], threshold > 0)")
    return v


def _leftover(path: Path, parts: dict[str, dict[int, np.ndarray]], arch: str) -> None:
    for kind in ("threshold", "leak"):
        if parts[kind]:
            keys = [f"{kind}.{kind[0]}{i}" for i in sorted(parts[kind])]
            raise CheckpointError(f"{path}: {keys} belong to no layer of plan {arch!r}")


def _vgg(path: Path, tensors: dict[str, np.ndarray], arch: str, input_shape: Shape
         ) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """The layers and weights of a VGG checkpoint (module docstring)."""
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
        return _scalar(path, parts, kind, index, what)

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
    _leftover(path, parts, arch)
    return layers, weights


def _resnet(path: Path, tensors: dict[str, np.ndarray], arch: str, input_shape: Shape
            ) -> tuple[list[Layer], dict[str, np.ndarray]]:
    """The layers and weights of a ResNet checkpoint: the plan's network (module docstring)."""
    layout = ("pre_process.N.weight, layerS.K.residual.{0,3}.weight, layerS.K.identity.0.weight, "
              "classifier.0.weight, threshold.tN, leak.lN")
    parts: dict[str, dict[int, np.ndarray]] = {"threshold": {}, "leak": {}}
    stem: dict[int, np.ndarray] = {}
    named: dict[str, tuple[str, np.ndarray]] = {}  # accelsim weight -> (their key, tensor)
    classifier: dict[int, np.ndarray] = {}
    for key, value in tensors.items():
        m = _RESNET_KEY.fullmatch(key)
        if m is None:
            raise CheckpointError(f"{path}: state_dict key {key!r} does not fit the DIET-SNN "
                                  f"ResNet layout ({layout}; no biases or batch norm)")
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        if "stem" in g:
            stem[int(g["stem"])] = value
        elif "classifier" in g:
            classifier[int(g["classifier"])] = value
        elif "threshold" in g or "leak" in g:
            kind = "threshold" if "threshold" in g else "leak"
            parts[kind][int(g[kind])] = value
        else:
            block = f"stage{int(g['stage'])}.block{int(g['block']) + 1}"
            part = "shortcut" if "shortcut" in g else {"0": "conv1", "3": "conv2"}[g["conv"]]
            named[f"{block}.{part}.weight"] = (key, value)
    if not stem:
        raise CheckpointError(f"{path}: no pre_process.N.weight tensor (the stem convolutions)")
    if sorted(classifier) != [0]:
        raise CheckpointError(f"{path}: classifier keys {sorted(classifier)}; plan {arch!r} "
                              "reads one classifier.0.weight (no hidden classifier layers)")
    for i, index in enumerate(sorted(stem), start=1):
        named[f"stem{i}.weight"] = (f"pre_process.{index}.weight", stem[index])
    named["output.weight"] = ("classifier.0.weight", classifier[0])
    first, out = stem[min(stem)], classifier[0]
    if first.ndim != 4 or out.ndim != 2:
        raise CheckpointError(f"{path}: pre_process.{min(stem)}.weight (shape {first.shape}) and "
                              f"classifier.0.weight (shape {out.shape}) must be a conv and a "
                              "linear weight")
    plan = RESNET_PLANS[arch]
    try:
        built = resnet(arch, input_shape, out.shape[0], width=first.shape[0] / plan.stem[0])
    except ValueError as exc:
        raise CheckpointError(f"{path}: plan {arch!r} does not fit input {input_shape}: "
                              f"{exc}") from exc
    expected = built.weight_shapes()
    theirs = {name: key for name, (key, _) in named.items()}
    missing = [name for name in expected if name not in named]
    if missing:
        raise CheckpointError(f"{path}: plan {arch!r} needs {missing[0]!r} (its blocks per stage "
                              f"are {[b for _, b, _ in plan.stages]}, shortcuts where the stride "
                              "or the channels change), which the checkpoint does not have")
    extra = sorted(theirs[name] for name in named if name not in expected)
    if extra:
        raise CheckpointError(f"{path}: {extra} belong to no layer of plan {arch!r} (blocks per "
                              f"stage {[b for _, b, _ in plan.stages]}; a 1x1 shortcut only where "
                              "the stride or the channels change)")
    for name, shape in expected.items():
        key, w = named[name]
        if tuple(w.shape) != shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(w.shape)}; {name} of plan "
                                  f"{arch!r} at input {input_shape} needs {shape}")
    # the scalars: the stem's by their Sequential index, then one key per block convolution
    rest = sorted(set(parts["threshold"]) - set(stem))
    blocks = [layer.name for layer in built.layers if layer.kind == "spiking"][len(stem):]
    consecutive = not rest or rest == list(range(rest[0], rest[0] + len(rest)))
    if len(rest) != len(blocks) or not consecutive:
        raise CheckpointError(f"{path}: threshold keys {['t' + str(i) for i in rest]} after the "
                              f"stem; the {len(blocks)} block convolutions need as many "
                              "consecutive keys")
    index_of = dict(zip([f"stem{i}" for i in range(1, len(stem) + 1)], sorted(stem),
                        strict=True)) | dict(zip(blocks, rest, strict=True))
    layers = []
    for layer in built.layers:
        if layer.kind == "spiking":
            i = index_of.get(layer.name, -1)
            layer = layer.model_copy(update={
                "leak": _scalar(path, parts, "leak", i, layer.name),
                "threshold": _scalar(path, parts, "threshold", i, layer.name)})
        layers.append(layer)
    _leftover(path, parts, arch)
    if any("delay_path" in key for key in theirs.values()):
        warnings.warn(f"{path}: the authors' ImageNet ResNet pools the stem by 3 and the last map "
                      f"by a 7x7 window; plan {arch!r} pools the stem by {plan.stem_pool} and "
                      "the last map whole: the same weights on a different spatial pipeline",
                      stacklevel=3)
    return layers, {name: w for name, (_, w) in named.items()}
