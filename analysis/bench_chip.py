"""Speed and memory of the chip model (prints figures and ratios).

One process, the same mnist5k test images, T = 5, on ``45nm-generic``:
- images/s of a full fast-mode :func:`accelsim.chip.simulate` (functional core + chip replay)
  versus the PyTorch SNN forward (target: at most 2x slower),
- fast versus reference mode on a few images (target: fast at least 100x faster),
- peak memory (target: VGG16 under 2 GB).

The trained ``trained_models/mnist5k-vgg9`` / ``mnist5k-vgg16`` are used when present; otherwise
random-weight stand-ins (thresholds set from the ANN activations, so that spikes flow) are built
and the output says so.

    .venv/bin/python analysis/bench_chip.py [--images 32] [--reference-images 1]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from accelsim import data
from accelsim.architectures import build
from accelsim.chip import simulate
from accelsim.hardware import load_hardware
from accelsim.network import Network
from accelsim.torch_snn import SpikingNetwork

ROOT = Path(__file__).resolve().parents[1]


def stand_in(plan: str, x: np.ndarray, width: float, scale: float = 0.3) -> Network:
    """Random weights, thresholds set layer by layer as in DIET-SNN conversion: ``scale`` x the
    99.7th percentile of the layer's input current (maximum over timesteps), so spikes flow."""
    arch = build(plan, (1, 32, 32), 10, width=width)
    sn = SpikingNetwork(arch, seed=0)
    xt = torch.from_numpy(np.ascontiguousarray(x[:16])).float()
    with torch.no_grad():
        for layer in sn.spiking_layers:
            out = sn.forward_snn(xt, 5, record_currents=True)
            assert out.input_currents is not None
            peaks = [torch.quantile(c.flatten()[:1_000_000], 0.997)
                     for c in out.input_currents[layer.name]]
            sn.threshold[layer.name.replace(".", "__")].fill_(
                max(scale * float(max(peaks)), 1e-3))
    return Network(name=f"{plan}-stand-in", architecture=sn.trained_architecture(),
                   weights=sn.weight_arrays(), timesteps=5, input_mean=(0.0,),
                   input_std=(1.0,))


def load(plan: str, images: np.ndarray, width: float) -> tuple[Network, str]:
    stem = ROOT / "trained_models" / f"mnist5k-{plan}"
    if stem.with_suffix(".json").exists():
        from accelsim.modelfile import load_model

        return load_model(stem), f"trained {stem.name}"
    return stand_in(plan, images, width), f"random-weight stand-in (width {width})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--reference-images", type=int, default=1)
    parser.add_argument("--width", type=float, default=0.5, help="stand-in width")
    args = parser.parse_args()
    hw = load_hardware("45nm-generic")
    raw = data.load_images("mnist5k", "test", size=32)
    pick = np.linspace(0, len(raw) - 1, args.images).astype(int)  # every class
    raw = data.ImageSet(name=raw.name, split=raw.split, images=raw.images[pick],
                        labels=raw.labels[pick], num_classes=raw.num_classes)
    print(f"hardware 45nm-generic, T=5, {args.images} mnist5k test images, "
          f"torch threads {torch.get_num_threads()}")
    for plan in ("vgg9", "vgg16"):
        norm = data.normalise(raw.images[: args.images], (0.0,), (1.0,))
        net, what = load(plan, norm, args.width)
        x = data.normalise(raw.images[: args.images], net.input_mean, net.input_std)
        labels = raw.labels[: args.images]
        simulate(net, x[:1], labels[:1], hw)  # compile the kernels
        module = SpikingNetwork.from_network(net)
        xt = torch.from_numpy(np.ascontiguousarray(x)).float()
        with torch.no_grad():
            module.forward_snn(xt[:2], 5)
            t0 = time.perf_counter()
            module.forward_snn(xt, 5)
            torch_s = time.perf_counter() - t0
        tracemalloc.start()
        t0 = time.perf_counter()
        result = simulate(net, x, labels, hw)
        fast_s = time.perf_counter() - t0
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        n_ref = args.reference_images
        t0 = time.perf_counter()
        simulate(net, x[:n_ref], labels[:n_ref], hw, mode="reference")
        ref_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        simulate(net, x[:n_ref], labels[:n_ref], hw)
        fast_few_s = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        n = args.images
        packets = int(result.layers["noc_packets"].sum())
        print(f"\n{plan}: {what}; {len(net.layers)} layers, accuracy "
              f"{result.images['correct'].mean():.3f}, {packets / n:,.0f} packets/image, "
              f"{result.images['latency_us'].mean():.1f} us/image on chip")
        print(f"  PyTorch SNN forward : {n / torch_s:8.1f} images/s")
        print(f"  fast simulate       : {n / fast_s:8.1f} images/s  "
              f"(PyTorch / fast = {fast_s / torch_s:.2f}x slower; target <= 2x)")
        print(f"  reference simulate  : {n_ref / ref_s:8.3f} images/s on {n_ref} image(s); "
              f"fast on the same: {n_ref / fast_few_s:.2f} images/s; "
              f"fast / reference = {ref_s / fast_few_s:.0f}x (target >= 100x)")
        print(f"  memory: traced peak during fast simulate {traced / 2**20:.0f} MiB, process "
              f"max RSS so far {rss:.0f} MiB (target VGG16 < 2048 MiB)")


if __name__ == "__main__":
    main()
