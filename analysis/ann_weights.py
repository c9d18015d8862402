"""Write the ANN each shipped DIET-SNN was converted from, as ``trained_models/ann/NAME``.

The per-stage training checkpoints of the shipped models are gone, so the ANN stage is retrained
with the model's recorded, seeded settings (``accelsim train ... --stage ann --threads 1
--checkpoint-dir DIR``) and this script turns ``DIR/ann.pt`` into a model file (safetensors +
JSON; loading never executes code), with its accuracy on the same test split. Where a
conversion-only model file holds the original ANN weights (conversion sets thresholds, never
weights: ``mnist5k-vgg9-converted``), ``--weights-from`` takes them from there instead, and the
retrained checkpoint is only compared with them.

    .venv/bin/python analysis/ann_weights.py digits-vgg5 --checkpoint /tmp/annck/digits-vgg5/ann.pt
    .venv/bin/python analysis/ann_weights.py mnist5k-vgg9 --weights-from mnist5k-vgg9-converted \\
        --checkpoint /tmp/annck/mnist5k-vgg9/ann.pt
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

from accelsim.chip.ann import ann_model_path
from accelsim.model.modelfile import load_model, save_model
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.training.trainer import (
    TrainingConfig,
    ann_accuracy,
    build_module,
    load_checkpoint,
    prepare_data,
    to_network,
)

MODELS = Path(__file__).resolve().parents[1] / "trained_models"


def _relative_difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    num = sum(float(np.sum((np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64)) ** 2))
              for k in a)
    den = sum(float(np.sum(np.asarray(b[k], np.float64) ** 2)) for k in a)
    return float(np.sqrt(num / den))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="shipped model name (trained_models/NAME)")
    ap.add_argument("--checkpoint", type=Path, required=True,
                    help="ann.pt of the retrained ANN stage")
    ap.add_argument("--weights-from", help="a shipped conversion-only model whose weights are "
                                           "the original ANN's (used instead of the retrained)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    manifest = json.loads((MODELS / f"{args.model}.json").read_text())
    settings = dict(manifest["training"]["settings"])
    config = TrainingConfig(**settings)
    data = prepare_data(config)
    module = build_module(config, data.input_shape, data.num_classes)
    state = load_checkpoint(args.checkpoint)
    if int(state["epoch"]) < config.epochs_ann:
        sys.exit(f"{args.checkpoint} holds {int(state['epoch'])} of {config.epochs_ann} ANN "
                 "epochs: finish the ANN stage first")
    module.load_state_dict(state["model"])
    retrained = module.weight_arrays()
    retrained_acc = 100.0 * ann_accuracy(module, data.test_x, data.test_y)
    snn = load_model(MODELS / args.model)
    recorded = manifest["accuracies"]["ann"]
    training = {
        "retrained_command": manifest["training"]["command"].replace(
            "--threads 2", "--threads 1") + " --stage ann",
        "settings": settings,
        "test_images": len(data.test_y),
        "recorded_ann_accuracy": recorded,
        "retrained_ann_accuracy": retrained_acc,
        "relative_difference_to_snn_weights": _relative_difference(retrained, snn.weights),
        "written_by": "analysis/ann_weights.py " + shlex.join(sys.argv[1:]),
    }
    if args.weights_from:
        original = load_model(MODELS / args.weights_from)
        source = SpikingNetwork.from_network(original)
        module.load_state_dict({**module.state_dict(), **{
            k: v for k, v in source.state_dict().items() if k.startswith("weights.")}})
        training["weights"] = (f"the original ANN weights, from {args.weights_from} (conversion "
                               "leaves weights unchanged)")
        training["relative_difference_retrained_to_original"] = _relative_difference(
            retrained, original.weights)
        training["retrained_equals_original"] = all(
            np.array_equal(retrained[k], original.weights[k]) for k in retrained)
    else:
        training["weights"] = ("retrained ANN stage (the original checkpoint is gone); "
                               "bit-identical to the original only if training is")
    acc = 100.0 * ann_accuracy(module, data.test_x, data.test_y)
    training["same_accuracy_as_recorded"] = bool(abs(acc - recorded) < 1e-9)
    network = to_network(module, data, config, args.model)
    path = save_model(ann_model_path(MODELS / args.model), network, accuracies={"ann": acc},
                      training=training, dataset_split_seed=config.split_seed)
    print(f"{args.model}: ANN {acc:.2f} % (recorded {recorded:.2f} %, retrained "
          f"{retrained_acc:.2f} %); wrote {path}")
    for k in ("relative_difference_to_snn_weights", "relative_difference_retrained_to_original",
              "retrained_equals_original"):
        if k in training:
            print(f"  {k}: {training[k]}")


if __name__ == "__main__":
    main()
