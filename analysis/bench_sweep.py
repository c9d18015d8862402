"""Speed-up of a local Dask cluster with 2 workers over 1 worker on the same sweep.

    .venv/bin/python analysis/bench_sweep.py [--scenario scenarios/timesteps.yaml] [--images 40]

Each configuration runs into a fresh temporary folder (no cache hits); the cluster is started
before the clock starts, so the figure is simulation throughput, not process start-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from dask.distributed import Client, LocalCluster

from accelsim.workflow import runner

ROOT = Path(__file__).resolve().parents[1]


def timed_run(scenario: Path, workers: int, images: int, batch: int) -> float:
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client, tempfile.TemporaryDirectory() as tmp:
        # Warm every worker (imports, numba compilation) on a throw-away run first.
        settings = {"data.images": images, "execution.batch_images": batch}
        runner.run(scenario, settings=settings, out=Path(tmp) / "warm", client=client,
                   progress=False)
        start = time.perf_counter()
        runner.run(scenario, settings={**settings, "data.seed": 1}, out=Path(tmp) / "run",
                   client=client, progress=False)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", type=Path, default=ROOT / "scenarios" / "timesteps.yaml")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--batch", type=int, default=10)
    args = parser.parse_args(argv)
    one = timed_run(args.scenario, 1, args.images, args.batch)
    two = timed_run(args.scenario, 2, args.images, args.batch)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.scenario.name}, {args.images} images per point, batches of {args.batch}; "
          f"{os.cpu_count()} CPUs, load average {load} at the end")
    print(f"1 worker : {one:7.2f} s")
    print(f"2 workers: {two:7.2f} s   speed-up {one / two:.2f}x")


if __name__ == "__main__":
    main()
