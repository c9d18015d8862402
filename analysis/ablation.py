"""Ablation of the DIET-SNN stages on a trained model's data set (default: mnist5k VGG9).

    .venv/bin/python analysis/ablation.py [--model trained_models/mnist5k-vgg9]
        [--checkpoint-dir DIR] [--epochs 1] [--train-images N] [--test-images N]

Starting from the same converted SNN (the model's own ANN and conversion checkpoints when
``--checkpoint-dir`` holds them; otherwise both stages are rerun with the model's settings), it
compares at T = 2, 3, 5, 10:

  (a) conversion only;
  (b) fine-tuning the weights only (leak 1, thresholds fixed at their converted values);
  (c) weights + thresholds;
  (d) weights + thresholds + leak (DIET-SNN).

Each variant is fine-tuned once, at the model's T (5), with the same epochs, data and seed, and
then evaluated at every T; with ``--per-t`` it is fine-tuned anew at each T and evaluated there
(the paper's protocol). Prints a markdown table and writes it to ``results/ablation.md``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from pathlib import Path

import torch

from accelsim.model.modelfile import read_manifest
from accelsim.training.trainer import (
    TrainingConfig,
    build_module,
    conversion_images,
    convert,
    evaluate_snn,
    finetune_snn,
    load_checkpoint,
    prepare_data,
    random_subset,
    train_ann,
)

ROOT = Path(__file__).resolve().parents[1]
TIMESTEPS = (2, 3, 5, 10)
VARIANTS = {
    "(a) conversion only": None,
    "(b) + fine-tune weights (leak 1, thresholds fixed)": (False, False),
    "(c) + fine-tune weights and thresholds": (False, True),
    "(d) + fine-tune weights, thresholds and leak (DIET-SNN)": (True, True),
}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "trained_models" / "mnist5k-vgg9")
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="the model's training checkpoints (ann.pt, convert.pt)")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per variant")
    parser.add_argument("--train-images", type=int, default=None,
                        help="fine-tune on a seeded random N training images (default: all)")
    parser.add_argument("--test-images", type=int, default=None,
                        help="evaluate on a seeded random N test images (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-t", action="store_true",
                        help="fine-tune every variant at each T (the paper's protocol)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "ablation.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    manifest = read_manifest(args.model)
    settings = dict(manifest.training["settings"])
    config = dataclasses.replace(TrainingConfig(**settings), epochs_snn=args.epochs)
    checkpoint = args.checkpoint_dir / "convert.pt" if args.checkpoint_dir else None
    data = prepare_data(config)
    converted = build_module(config, data.input_shape, data.num_classes)
    if checkpoint is not None and checkpoint.exists():
        converted.load_state_dict(load_checkpoint(checkpoint)["model"])
    else:
        ann = args.checkpoint_dir / "ann.pt" if args.checkpoint_dir else None
        train_ann(converted, data, config, checkpoint=ann, progress=True)
        convert(converted, conversion_images(data, config), timesteps=config.conversion_timesteps,
                percentile=config.percentile, scale=config.threshold_scale,
                checkpoint=checkpoint, config=config, progress=True)
    train_x, train_y = random_subset(data.train_x, data.train_y, args.train_images, config.seed)
    train = dataclasses.replace(data, train_x=train_x, train_y=train_y)
    test_x, test_y = random_subset(data.test_x, data.test_y, args.test_images, config.seed)

    rows = []
    for label, trainable in VARIANTS.items():
        start = time.time()
        cells = []
        module = None
        for t in TIMESTEPS:
            if module is None or args.per_t:
                module = copy.deepcopy(converted)
                if trainable is not None:
                    train_leak, train_threshold = trainable
                    variant = dataclasses.replace(
                        config, train_leak=train_leak, train_threshold=train_threshold,
                        timesteps=t if args.per_t else config.timesteps)
                    torch.manual_seed(config.seed)
                    finetune_snn(module, train, variant, progress=True)
            ev = evaluate_snn(module, test_x, test_y, t)
            cells.append(f"{100 * ev.accuracy:.2f} ({ev.average_spike_rate:.2f})")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
        print(rows[-1], f"  [{time.time() - start:.0f} s]", flush=True)

    n_train = len(train.train_x)
    caption = (
        f"Ablation on {manifest.name} ({manifest.dataset.name}, "
        f"{manifest.architecture.name}): test accuracy % (average spike rate, spikes per neuron "
        f"over all T) on {len(test_x)} test images (a seeded random subset when fewer than "
        f"all). Every variant starts from the same converted "
        f"SNN (threshold scale {config.threshold_scale}, conversion over "
        f"{config.conversion_timesteps} timesteps on {config.conversion_images} training "
        f"images), is fine-tuned for {config.epochs_snn} epoch(s) on {n_train} training images "
        f"(lr {config.lr_snn}, {config.optimizer}, seed {config.seed}) "
        + ("at each T and evaluated at that T (the paper's protocol). " if args.per_t else
           f"once at T={config.timesteps} and then evaluated at every T (not re-trained per "
           "T). ")
        + f"ANN accuracy of this model: {manifest.accuracies.ann:.2f} %."
    )
    header = ("| variant | " + " | ".join(f"T={t}" for t in TIMESTEPS) + " |\n"
              "|---|" + "---|" * len(TIMESTEPS))
    command = "    .venv/bin/python analysis/ablation.py " + " ".join(argv or [])
    text = (f"# DIET-SNN ablation\n\n{caption}\n\n{header}\n" + "\n".join(rows)
            + f"\n\nCommand:\n\n{command.rstrip()}\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return text


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
