"""Replay or core speed against an earlier revision, in one process (times and their ratio).

On a shared machine two runs minutes apart can differ by 2x; two versions taking turns in one
process see the same load. This script exports the package at ``REV`` (``git archive``) under
another name into a directory of the system's temporary folder (kept, with its numba cache, for
the next run), imports both, and runs the same inputs with each in turn, best of ``--repeats``:
the replay of the mnist5k test images' spikes (fast mode, ``45nm-generic``, T = 5), or with
``--stage core`` the functional core; ``--model PLAN:DATASET:RATE`` takes a calibrated workload
(e.g. ``vgg16:cifar10:1.2``) on its synthetic images.

    .venv/bin/python analysis/bench_revision.py REV [--model mnist5k-vgg9] [--images 64]
        [--repeats 5] [--stage replay|core]

Run it with ``NUMBA_NUM_THREADS=1`` to compare single-thread work. The old revision's kernels
compile on its first run (a minute or two).
"""

from __future__ import annotations

import argparse
import importlib
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OLD = "accelsim_old"


def export(rev: str) -> Path:
    """The directory holding the package at ``rev`` as ``accelsim_old``, its imports renamed."""
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", rev], check=True,
                         capture_output=True, text=True).stdout.strip()
    into = Path(tempfile.gettempdir()) / f"accelsim-{sha}"
    if (into / OLD).exists():
        return into
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "accelsim"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    (into / "accelsim").rename(into / OLD)
    for path in (into / OLD).rglob("*.py"):
        text = re.sub(r"\baccelsim\b(?=[. ])", OLD, path.read_text())
        path.write_text(text)
    return into


def caller(package: str, model: str, images: int, stage: str):
    """A call that runs ``images`` inputs through ``stage`` with ``package``: the functional
    core, or the chip replay of the core's spikes. ``model``: a shipped trained model (on
    mnist5k test images) or ``PLAN:DATASET:RATE``, a calibrated workload (on its synthetic
    images)."""
    def module(name: str):
        return importlib.import_module(f"{package}.{name}")

    functional = module("spiking.functional")
    if ":" in model:
        plan, dataset, rate = model.split(":")
        workloads = module("model.workloads")
        net = workloads.workload(plan, dataset=dataset, spike_rate=float(rate))
        x = workloads.synthetic_images(net.architecture.input_shape, images, seed=0)
    else:
        data = module("model.data")
        net = module("model.modelfile").load_model(ROOT / "trained_models" / model)
        raw = data.load_images("mnist5k", "test", size=32)
        pick = np.linspace(0, len(raw) - 1, images).astype(int)
        x = data.normalise(raw.images[pick], net.input_mean, net.input_std)
    if stage == "core":
        return lambda: functional.run(net, x, timesteps=5)
    run = functional.run(net, x, timesteps=5, record_spikes=True)
    hw = module("chip.hardware").load_hardware("45nm-generic")
    replay = module("chip.simulation").replay

    def call():
        return replay(net, run.spikes, hw, counts=run.counts, predictions=run.predictions,
                      timesteps=5)
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev")
    parser.add_argument("--model", default="mnist5k-vgg9")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stage", choices=("replay", "core"), default="replay")
    args = parser.parse_args()
    sys.path.insert(0, str(export(args.rev)))
    calls = {args.rev: caller(OLD, args.model, args.images, args.stage),
             "working tree": caller("accelsim", args.model, args.images, args.stage)}
    for call in calls.values():
        call()  # compile
    best = dict.fromkeys(calls, np.inf)
    for _ in range(args.repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - t0)
    old, new = best.values()
    print(f"{args.model}, {args.images} images, {args.stage} (best of {args.repeats}, "
          f"taking turns): {args.rev} {old:.3f} s, working tree {new:.3f} s; "
          f"speed-up {old / new:.2f}x")


if __name__ == "__main__":
    main()
