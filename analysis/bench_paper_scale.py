"""Speed and memory at paper scale: the DIET-SNN paper's networks at full width, T = 5.

Networks: the calibrated workloads of :mod:`accelsim.model.workloads` (seeded weights, leak 1, every
spiking layer's threshold bisected to ``--rates`` spikes per neuron over T), run on that
module's synthetic standard-normal images:

- ``cifar-vgg16``: VGG16 (CIFAR plan), width 1.0, 3x32x32;
- ``cifar-resnet20``: the authors' ResNet20, width 1.0, 3x32x32;
- ``imagenet-vgg16``: VGG16 (ImageNet plan), width 1.0, 3x224x224;
- ``mnist5k-vgg16``: the shipped quarter-width model on mnist5k test images (its own rates).

``speed``: per network and rate, in one process and with the same thread count for all three,
the batched fp32 PyTorch SNN forward (the baseline), the functional core
(:func:`accelsim.spiking.functional.run`) and the full cycle-level fast-mode
:func:`accelsim.chip.simulation.simulate`, taking turns, best of ``--repeats``; prints ms/image and
the
ratios (targets: core >= 1.0x the baseline's speed, simulate within 2x of its time).

``memory``: one fast-mode ``simulate`` per case in a fresh child process; prints the child's max
RSS (targets: imagenet-vgg16 one image < 8 GB, cifar-vgg16 64 images < 4 GB, mnist5k-vgg16 64
images not above ~720 MiB).

Chips: ``45nm-large`` (CIFAR networks), ``45nm-xl`` (ImageNet VGG16) and ``45nm-generic`` (the
small model).

    NUMBA_NUM_THREADS=2 .venv/bin/python analysis/bench_paper_scale.py speed \\
        [--cases cifar-vgg16,...] [--rates 0.4,1.2] [--images 16] [--repeats 2] [--core-only]
    .venv/bin/python analysis/bench_paper_scale.py memory [--cases ...] [--rate 1.2]
    .venv/bin/python analysis/bench_paper_scale.py plot speed.json [PNG]

``plot`` draws wall time per image against synaptic operations per image (log-log), for the
core, ``simulate`` and PyTorch, from the rows ``speed --json`` wrote (default PNG:
docs/figures/paper-scale-speed.png).
"""

from __future__ import annotations

import os

# Sleeping, not spinning, OpenMP threads (see bench_chip.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np
import torch
from bench_chip import best_of_turns  # the same turn-taking timer (run from analysis/)

from accelsim.chip.hardware import Hardware, load_hardware
from accelsim.model import workloads
from accelsim.model.network import Network
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.workflow import columns as col

ROOT = Path(__file__).resolve().parents[1]
T = 5
CASES = {
    "cifar-vgg16": ("vgg16", "cifar10", "45nm-large"),
    "cifar-resnet20": ("resnet20", "cifar10", "45nm-large"),
    "imagenet-vgg16": ("vgg16-imagenet", "imagenet", "45nm-xl"),
}
SMALL = "mnist5k-vgg16"
MEMORY_IMAGES = {"imagenet-vgg16": 1, "cifar-vgg16": 64, "cifar-resnet20": 64, SMALL: 64}


def chip(case: str) -> Hardware:
    return load_hardware("45nm-generic" if case == SMALL else CASES[case][2])


def network_and_images(case: str, rate: float, n: int) -> tuple[Network, np.ndarray, str]:
    if case == SMALL:
        from accelsim.model.data import load_images, normalise
        from accelsim.model.modelfile import load_model

        net = load_model(ROOT / "trained_models" / SMALL)
        test = load_images("mnist5k", "test", size=32)
        x = normalise(test.images[:n], net.input_mean, net.input_std)
        return net, np.asarray(x, dtype=np.float64), "trained, own rates"
    plan, dataset, _ = CASES[case]
    net = workloads.workload(plan, dataset=dataset, spike_rate=rate)
    x = workloads.synthetic_images(net.architecture.input_shape, n, seed=0)
    return net, np.asarray(x, dtype=np.float64), f"workload at {rate:g}"


def speed(case: str, rate: float, n: int, repeats: int, core_only: bool = False) -> dict:
    from accelsim.chip.simulation import simulate
    from accelsim.spiking import functional

    net, x, what = network_and_images(case, rate, n)
    hw = chip(case)
    module = SpikingNetwork.from_network(net).eval()
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))

    def baseline():
        with torch.no_grad():
            return module.forward_snn(xt, T)

    functional.run(net, x[:1])  # compile
    calls = [baseline, lambda: functional.run(net, x)]
    if not core_only:
        simulate(net, x[:1], hardware=hw)
        calls.append(lambda: simulate(net, x, hardware=hw))
    times, results = best_of_turns(repeats, *calls)
    torch_s, core_s, sim_s = (*times, float("nan"))[:3]
    core = results[1]
    counts = core.counts
    spiking = [layer.name for layer in net.layers if layer.kind == "spiking"]
    neurons = sum(layer.neurons for layer in net.layers if layer.kind == "spiking")
    rates = counts[counts[col.LAYER].isin(spiking)][col.SPIKES_OUT].sum() / neurons / n
    return {"case": case, "rate": rate, "what": what, "images": n,
            "threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
            "synops_per_image": float(counts[col.SYNAPTIC_OPS].sum() / n),
            "spikes_per_neuron": float(rates),
            "torch_ms": 1e3 * torch_s / n, "core_ms": 1e3 * core_s / n,
            "simulate_ms": 1e3 * sim_s / n,
            "core_speedup": torch_s / core_s, "simulate_slowdown": sim_s / torch_s,
            "packets_per_image": (float("nan") if core_only else
                                  float(results[2].layers[col.NOC_PACKETS].sum() / n))}


def memory(case: str, rate: float, n: int) -> dict:
    from accelsim.chip.simulation import simulate

    net, x, what = network_and_images(case, rate, n)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    result = simulate(net, x, hardware=chip(case))
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"case": case, "rate": rate, "what": what, "images": n, "max_rss_gib": rss,
            "max_rss_before_simulate_gib": before, "simulate_s": wall,
            "packets": int(result.layers[col.NOC_PACKETS].sum()),
            "tiles": int(result.mapping[col.TILES].sum())}


def _child(kind: str, case: str, rate: float, n: int, repeats: int,
           core_only: bool = False) -> dict:
    """Run one measurement in a fresh process (its max RSS is its own)."""
    out = subprocess.run([sys.executable, __file__, "one", kind, case, str(rate), str(n),
                          str(repeats), *(["--core-only"] if core_only else [])],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ops = np.array([r["synops_per_image"] for r in rows])
    for key, label, marker in (("torch_ms", "PyTorch SNN forward (fp32, batched)", "s"),
                               ("core_ms", "functional core", "o"),
                               ("simulate_ms", "cycle-level simulate (fast mode)", "^")):
        ax.scatter(ops, [r[key] for r in rows], marker=marker, label=label)
    for r in rows:
        ax.annotate(f"{r['case']} {r['spikes_per_neuron']:.1f}", (r["synops_per_image"],
                    r["simulate_ms"]), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("synaptic operations per image")
    ax.set_ylabel("wall time per image (ms)")
    threads = rows[0]["threads"] if rows else 0
    ax.set_title(f"T=5, {threads} threads, calibrated workloads (label: spikes/neuron)",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--cases", default=",".join([*CASES, SMALL]))
    s.add_argument("--rates", default="0.4,1.2")
    s.add_argument("--images", type=int, default=16)
    s.add_argument("--imagenet-images", type=int, default=1)
    s.add_argument("--repeats", type=int, default=2)
    s.add_argument("--json", type=Path, help="also write the rows here")
    s.add_argument("--core-only", action="store_true",
                   help="time PyTorch and the core only (simulate takes minutes at ImageNet scale)")
    m = sub.add_parser("memory")
    m.add_argument("--cases", default=",".join(MEMORY_IMAGES))
    m.add_argument("--rate", type=float, default=1.2)
    pl = sub.add_parser("plot")
    pl.add_argument("rows", type=Path)
    pl.add_argument("png", type=Path, nargs="?",
                    default=ROOT / "docs" / "figures" / "paper-scale-speed.png")
    one = sub.add_parser("one")
    for name in ("kind", "case", "rate", "n", "repeats"):
        one.add_argument(name)
    one.add_argument("--core-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(numba.get_num_threads())
    if args.command == "plot":
        plot(json.loads(args.rows.read_text()), args.png)
        return
    if args.command == "one":
        fn = speed if args.kind == "speed" else memory
        extra = (int(args.repeats), args.core_only) if args.kind == "speed" else ()
        print(json.dumps(fn(args.case, float(args.rate), int(args.n), *extra)))
        return
    if args.command == "memory":
        for case in args.cases.split(","):
            r = _child("memory", case, args.rate, MEMORY_IMAGES[case], 1)
            print(f"{case:16s} ({r['what']}), {r['images']} images, {r['tiles']} tiles: "
                  f"max RSS {r['max_rss_gib']:.2f} GiB (before simulate "
                  f"{r['max_rss_before_simulate_gib']:.2f} GiB), simulate {r['simulate_s']:.1f} s, "
                  f"{r['packets']:,} packets")
        return
    rows = []
    print(f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; best of "
          f"{args.repeats}, taking turns")
    for case in args.cases.split(","):
        rates = [0.0] if case == SMALL else [float(r) for r in args.rates.split(",")]
        n = args.imagenet_images if case == "imagenet-vgg16" else args.images
        for rate in rates:
            r = _child("speed", case, rate, n, args.repeats, args.core_only)
            rows.append(r)
            print(f"{case:16s} {r['what']:18s} {r['spikes_per_neuron']:.2f} spikes/neuron, "
                  f"{r['synops_per_image']:.3e} synops/image, {n} images: PyTorch "
                  f"{r['torch_ms']:8.1f} ms/image, core {r['core_ms']:8.1f} "
                  f"({r['core_speedup']:.2f}x "
                  f"the baseline's speed), simulate {r['simulate_ms']:8.1f} "
                  f"({r['simulate_slowdown']:.2f}x its time)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
