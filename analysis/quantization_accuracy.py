"""Accuracy of every shipped model in float and fixed-point arithmetic (the cost of quantisation).

    .venv/bin/python analysis/quantization_accuracy.py [--weight-bits 8] [--membrane-bits 24]

Runs the functional core on each model's whole test split and prints a markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accelsim.model.data import load_images, normalise
from accelsim.model.modelfile import load_model
from accelsim.spiking.functional import run
from accelsim.spiking.quantize import Quantization

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weight-bits", type=int, default=8)
    parser.add_argument("--membrane-bits", type=int, default=24)
    args = parser.parse_args()
    q = Quantization(weight_bits=args.weight_bits, membrane_bits=args.membrane_bits)
    print(f"| model | test images | float % | fixed ({args.weight_bits}-bit weights, "
          f"{args.membrane_bits}-bit membrane) % | drop (points) |")
    print("|---|---:|---:|---:|---:|")
    for path in sorted((ROOT / "trained_models").glob("*.json")):
        net = load_model(path)
        test = load_images(net.dataset, "test", size=net.architecture.input_shape[1])
        x = normalise(test.images, net.input_mean, net.input_std)
        exact = 100 * (run(net, x).predictions == test.labels).mean()
        fixed = 100 * (run(net, x, arithmetic="fixed", quantization=q).predictions
                       == test.labels).mean()
        print(f"| `{net.name}` | {len(test)} | {exact:.2f} | {fixed:.2f} | {exact - fixed:+.2f} |")


if __name__ == "__main__":
    main()
