"""Speed of the event-driven core against the batched PyTorch SNN forward, same threads.

Runs the shipped ``trained_models/mnist5k-vgg9`` and ``mnist5k-vgg16`` (or, when a file is
missing, a random-weight stand-in of the same shape whose thresholds are calibrated layer by layer
so that every layer spikes; the output says which) on the same test images at T=5 and prints
images/s of both, their ratio and synaptic events per second.

The two are timed alternately, ``--repeats`` times each, and the best of each is kept: on a shared
machine the ratio of two bests taken side by side is steadier than either figure.

    .venv/bin/python analysis/bench_core.py [--images 256] [--repeats 3] [--width 0.25]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# numba's OpenMP workers spin after a parallel kernel and starve torch's; passive waiting keeps
# the comparison fair to PyTorch (set before either library starts its thread pool).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from accelsim.model.data import load_images, normalise
from accelsim.model.modelfile import load_model
from accelsim.spiking.functional import run
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.workflow import columns as col  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
T = 5


def _network(arch: str, images: np.ndarray, width: float):
    path = ROOT / "trained_models" / f"mnist5k-{arch}.json"
    if path.is_file():
        return load_model(path), f"trained, {path.relative_to(ROOT)}"
    sys.path.insert(0, str(ROOT / "tests"))
    from naive import calibrated_network

    net = calibrated_network(arch, (1, 32, 32), width, 0, images[:64], T)
    return net, f"random stand-in: {path.relative_to(ROOT)} missing"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=float, default=0.25, help="stand-in width")
    args = parser.parse_args()
    threads = numba.get_num_threads()
    torch.set_num_threads(threads)
    test = load_images("mnist5k", "test", size=32)
    for arch in ("vgg9", "vgg16"):
        raw = test.images[:args.images]
        net, kind = _network(arch, normalise(raw, (0.5,), (0.5,)), args.width)
        x = np.asarray(normalise(raw, net.input_mean, net.input_std), dtype=np.float64)
        run(net, x[:2])  # compile (cached after the first process)
        module = SpikingNetwork.from_network(net).eval()
        xt = torch.from_numpy(x.astype(np.float32))

        def torch_forward(module=module, xt=xt):
            with torch.no_grad():
                module.forward_snn(xt, T)

        torch_forward()  # warm-up
        core, ref = [], []
        for _ in range(args.repeats):
            core.append(_timed(lambda: run(net, x)))  # noqa: B023
            ref.append(_timed(torch_forward))
        core_s, torch_s = min(core), min(ref)
        result = run(net, x)
        events = int(result.counts[col.SYNAPTIC_OPS].sum())
        n = len(x)
        print(f"{net.name} ({arch}; {kind}), {n} images, T={T}, {threads} threads, "
              f"best of {args.repeats}")
        print(f"  event-driven core : {n / core_s:9.1f} images/s  (all: "
              f"{', '.join(f'{n / s:.1f}' for s in core)})")
        print(f"  PyTorch SNN (fp32): {n / torch_s:9.1f} images/s  (all: "
              f"{', '.join(f'{n / s:.1f}' for s in ref)})")
        print(f"  ratio core/torch  : {torch_s / core_s:9.2f}")
        print(f"  synaptic events/s : {events / core_s:9.3e} "
              f"({events / n:.3e} per image, {int(result.counts[col.MACS].sum()) / n:.3e} MACs)")


if __name__ == "__main__":
    main()
