"""Speed and memory of the chip model (prints figures and ratios).

One process, the same mnist5k test images, T = 5, on ``45nm-generic``:
- images/s of a full fast-mode :func:`accelsim.chip.simulation.simulate` (functional core + chip
replay)
  on ``--images`` images versus the PyTorch SNN forward on the same images, best of
  ``--repeats`` each, the two taking turns (target: at most 2x slower),
- steady-state replay throughput, fast versus reference mode on the same spike trains: the
  reference replays the first ``--reference-images`` images once, the fast mode replays those
  images repeated to ``--images`` images (target: fast at least 100x faster),
- peak memory of the fast simulate, measured in a separate run (tracemalloc slows Python down,
  so it never overlaps a timing) (target: VGG16 under 2 GB).

The trained ``trained_models/mnist5k-vgg9`` / ``mnist5k-vgg16`` are used when present; otherwise
random-weight stand-ins (thresholds set from the ANN activations, so that spikes flow) are built
and the output says so.

    .venv/bin/python analysis/bench_chip.py [--images 64] [--reference-images 1] [--repeats 5]
        [--plans vgg9,vgg16]
"""

from __future__ import annotations

import os

# Sleeping, not spinning, OpenMP threads: on a shared machine the spinning threads of torch and
# of numba's parallel kernels slow each other (and themselves) down by 10-30x, which would make
# every figure below measure the load instead of the code.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import resource
import time
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from accelsim.chip.hardware import load_hardware
from accelsim.chip.simulation import replay, simulate
from accelsim.model import data
from accelsim.model.architectures import build
from accelsim.model.network import Network
from accelsim.spiking import functional
from accelsim.training.torch_snn import SpikingNetwork

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
        from accelsim.model.modelfile import load_model

        return load_model(stem), f"trained {stem.name}"
    return stand_in(plan, images, width), f"random-weight stand-in (width {width})"


def best_of(repeats: int, fn, *args, **kwargs):
    """(fastest of ``repeats`` timed calls in seconds, the last call's result): the fastest is
    the least disturbed by other load on the machine."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return min(times), result


def best_of_turns(repeats: int, *calls):
    """The fastest time of each zero-argument call, the calls taking turns, so that a burst of
    load on the shared machine hits them alike; and the last result of each."""
    times = [[] for _ in calls]
    results = [None] * len(calls)
    for _ in range(repeats):
        for i, call in enumerate(calls):
            t0 = time.perf_counter()
            results[i] = call()
            times[i].append(time.perf_counter() - t0)
    return [min(t) for t in times], results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--reference-images", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5, help="best of, for the fast timings")
    parser.add_argument("--width", type=float, default=0.5, help="stand-in width")
    parser.add_argument("--plans", default="vgg9,vgg16")
    args = parser.parse_args()
    hw = load_hardware("45nm-generic")
    raw = data.load_images("mnist5k", "test", size=32)
    pick = np.linspace(0, len(raw) - 1, args.images).astype(int)  # every class
    raw = data.ImageSet(name=raw.name, split=raw.split, images=raw.images[pick],
                        labels=raw.labels[pick], num_classes=raw.num_classes)
    n, n_ref = args.images, args.reference_images
    print(f"hardware 45nm-generic, T=5, {n} mnist5k test images, "
          f"torch threads {torch.get_num_threads()}, best of {args.repeats}")
    for plan in args.plans.split(","):
        norm = data.normalise(raw.images, (0.0,), (1.0,))
        net, what = load(plan, norm, args.width)
        x = data.normalise(raw.images, net.input_mean, net.input_std)
        labels = raw.labels
        module = SpikingNetwork.from_network(net)
        xt = torch.from_numpy(np.ascontiguousarray(x)).float()
        simulate(net, x[:1], labels[:1], hw)  # compile the kernels
        with torch.no_grad():
            module.forward_snn(xt[:2], 5)
            (torch_s, fast_s), (_, result) = best_of_turns(
                args.repeats, partial(module.forward_snn, xt, 5),
                partial(simulate, net, x, labels, hw))
        # replay only: the modes share the functional run
        f = functional.run(net, x[:n_ref], timesteps=5, record_spikes=True)
        reps = -(-n // n_ref)
        counts = pd.concat([f.counts.assign(image=f.counts["image"] + k * n_ref)
                            for k in range(reps)], ignore_index=True)
        fast_replay_s, _ = best_of(args.repeats, replay, net, f.spikes * reps, hw,
                                   counts=counts, predictions=np.tile(f.predictions, reps),
                                   timesteps=5)
        fast_replay_s /= reps * n_ref
        t0 = time.perf_counter()
        replay(net, f.spikes, hw, counts=f.counts, predictions=f.predictions, timesteps=5,
               mode="reference")
        ref_replay_s = (time.perf_counter() - t0) / n_ref
        tracemalloc.start()
        simulate(net, x, labels, hw)
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        packets = int(result.layers["noc_packets"].sum())
        print(f"\n{plan}: {what}; {len(net.layers)} layers, accuracy "
              f"{result.images['correct'].mean():.3f}, {packets / n:,.0f} packets/image, "
              f"{result.images['latency_us'].mean():.1f} us/image on chip")
        print(f"  PyTorch SNN forward : {n / torch_s:8.1f} images/s")
        print(f"  fast simulate       : {n / fast_s:8.1f} images/s  "
              f"(time fast / PyTorch = {fast_s / torch_s:.2f}; target <= 2)")
        print(f"  replay, same spikes : reference {1 / ref_replay_s:8.3f} images/s "
              f"({n_ref} image(s)), fast {1 / fast_replay_s:8.1f} images/s "
              f"({n_ref} image(s) x {reps}); fast / reference = "
              f"{ref_replay_s / fast_replay_s:.0f}x (target >= 100x)")
        print(f"  memory: traced peak during fast simulate {traced / 2**20:.0f} MiB, process "
              f"max RSS so far {rss:.0f} MiB (target VGG16 < 2048 MiB)")


if __name__ == "__main__":
    main()
