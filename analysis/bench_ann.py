"""The ANN baseline at paper scale: wall time of :func:`accelsim.chip.ann.simulate_ann`, the
share of it spent counting packets per directed mesh link (:func:`accelsim.chip.ann.link_loads`,
for the busiest-link term of the send bound), and the process's max RSS.

Networks and chips as in ``bench_paper_scale.py`` (calibrated workloads at 0.4 spikes per
neuron, whose SNN weights the ANN runs; synthetic standard-normal images); the first image is
simulated once before timing (numba compilation). One case per process, so that each max RSS is
its own:

    NUMBA_NUM_THREADS=1 .venv/bin/python analysis/bench_ann.py imagenet-vgg16 [--images 1]
    NUMBA_NUM_THREADS=1 .venv/bin/python analysis/bench_ann.py cifar-vgg16 --images 16 \\
        --zero-skipping
"""

from __future__ import annotations

import argparse
import resource
import time

from accelsim.chip import ann
from accelsim.chip.hardware import load_hardware
from accelsim.model import workloads

CASES = {
    "cifar-vgg16": ("vgg16", "cifar10", "45nm-large"),
    "cifar-resnet20": ("resnet20", "cifar10", "45nm-large"),
    "imagenet-vgg16": ("vgg16-imagenet", "imagenet", "45nm-xl"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--zero-skipping", action="store_true",
                        help="tile.zero_skipping: count every image's zeros")
    args = parser.parse_args()
    plan, dataset, chip = CASES[args.case]
    net = workloads.workload(plan, dataset=dataset, spike_rate=0.4)
    x = workloads.synthetic_images(net.architecture.input_shape, args.images, seed=0)
    hw = load_hardware(chip, {"tile.zero_skipping": args.zero_skipping})
    ann.simulate_ann(net, x[:1], None, hw)  # compile

    in_links = [0.0]
    loads = ann.link_loads

    def timed(*a, **k):
        t = time.perf_counter()
        out = loads(*a, **k)
        in_links[0] += time.perf_counter() - t
        return out

    ann.link_loads = timed
    start = time.perf_counter()
    result = ann.simulate_ann(net, x, None, hw)
    total = time.perf_counter() - start
    ann.link_loads = loads
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.case} on {chip}, {args.images} images, zero-skipping "
          f"{args.zero_skipping}: simulate_ann {total:.2f} s, link counting "
          f"{in_links[0]:.2f} s ({100 * in_links[0] / total:.1f} %), ANN latency "
          f"{result.images['latency_us'].mean():,.1f} µs, max RSS {rss:,.0f} MiB")


if __name__ == "__main__":
    main()
