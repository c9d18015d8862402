"""One-image call time with and without the prepared tables and plan (prints figures and ratios).

For each shipped model (``trained_models/mnist5k-vgg9``, ``mnist5k-vgg16``) on ``45nm-generic``,
T = 5, one mnist5k test image: the time of ``accelsim.simulate`` and of ``accelsim.run`` when
every call prepares anew (:func:`accelsim.chip.prepared.clear` before it: what every call cost
before
preparations were kept) and when the call repeats (the tables and plan are reused). Best of
``--repeats`` each, the two taking turns; numba kernels are compiled before the clock starts.

    .venv/bin/python analysis/bench_call.py [--repeats 7] [--models mnist5k-vgg9,mnist5k-vgg16]
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import accelsim
from accelsim.chip import prepared
from accelsim.model.data import load_images, normalise

ROOT = Path(__file__).resolve().parents[1]


def _best(call, repeats: int, fresh: bool) -> float:
    best = float("inf")
    for _ in range(repeats):
        if fresh:
            prepared.clear()
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default="mnist5k-vgg9,mnist5k-vgg16")
    args = parser.parse_args(argv)
    hw = accelsim.load_hardware("45nm-generic")
    for name in args.models.split(","):
        net = accelsim.load_model(ROOT / "trained_models" / name)
        size = int(net.architecture.input_shape[1])
        test = load_images("mnist5k", "test", size=size)
        x = normalise(test.images[:1], net.input_mean, net.input_std)
        calls = {"simulate": partial(accelsim.simulate, net, x, hardware=hw),
                 "run": partial(accelsim.run, net, x)}
        for label, call in calls.items():
            call()  # compile and warm
            fresh = warm = float("inf")
            for _ in range(args.repeats):  # take turns, so that load affects both alike
                fresh = min(fresh, _best(call, 1, fresh=True))
                call()
                warm = min(warm, _best(call, 1, fresh=False))
            print(f"{name:16s} {label:8s} one image: prepared anew {fresh:8.1f} ms, "
                  f"reused {warm:8.1f} ms, {fresh / warm:4.2f}x")


if __name__ == "__main__":
    main()
