"""The chip's mesh under synthetic traffic: latency against offered load, and saturation
throughput against the XY-mesh bisection bound (prints figures and ratios, saves a figure).

Packets move through :func:`accelsim.chip.mesh.deliver`, the model's own mesh (serialised
links, finite router buffers with credits, oldest-first arbitration among the packets present),
with the noc figures
of ``--hardware`` (45nm-generic: 1-cycle hops, 1-flit packets, 4-packet buffers) on k x k meshes.
Every node creates a packet with probability ``load / packet flits`` per cycle (Bernoulli) and
queues it at its port without bound (so latency includes source queueing), to a destination
drawn by the pattern:

- ``uniform``: any other node, uniformly;
- ``transpose``: node (r, c) sends to (c, r) (the diagonal does not send).

It first prints the event loop's speed: hops per second through ``mesh.deliver`` on uniform
traffic at 0.2 flits/node/cycle.

Packets are timed in the model's queue order (creation cycle, source, sequence) after a warm-up;
latency is creation to full arrival, averaged over the packets created in the measurement
window. The saturation throughput is the offered load at which the mean latency reaches 3x its
zero-load value (found by bisection to 1/256 flit), printed with its ratio to the ideal
throughput of XY routing for the pattern (1 / the busiest channel's load when every node offers
1 flit per cycle, counted over the model's routes) and, for uniform traffic on an even k x k
mesh, to the bisection bound 4/k.

    .venv/bin/python analysis/bench_noc.py [--k 4 8] [--cycles 20000] [--hardware 45nm-generic]
        [--figure docs/figures/noc-latency.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from accelsim.chip import mesh
from accelsim.chip.hardware import load_hardware

ROOT = Path(__file__).resolve().parents[1]


def traffic(pattern: str, k: int, load: float, flits: int, cycles: int, rng
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(creation cycle, source, destination) of every packet, in queue order."""
    nodes = k * k
    made = rng.random((cycles, nodes)) < load / flits
    ready, src = np.nonzero(made)  # row-major: by cycle, then source
    if pattern == "uniform":
        dest = rng.integers(0, nodes - 1, size=len(src))
        dest = dest + (dest >= src)  # any node but the source
    else:
        dest = (src % k) * k + src // k
        keep = dest != src
        ready, src, dest = ready[keep], src[keep], dest[keep]
    return ready.astype(np.int64), src.astype(np.int64), dest.astype(np.int64)


def channel_bound(pattern: str, k: int) -> float:
    """The ideal throughput of XY routing (flits/node/cycle): 1 / the load of the busiest channel
    (mesh link, injection or ejection) when every sender offers 1 flit per cycle, counted over
    the model's own routes."""
    nodes = k * k
    load = np.zeros(mesh.channels(k, k))
    for s in range(nodes):
        if pattern == "uniform":
            dests, share = [d for d in range(nodes) if d != s], 1 / (nodes - 1)
        else:
            d = (s % k) * k + s // k
            dests, share = ([d] if d != s else []), 1.0
        for d in dests:
            load[s * mesh.PORTS + mesh.INJECT] += share
            for c, _ in mesh.route(s, d, k, 1, 1):
                load[c] += share
    return 1 / load.max()


def measure(pattern: str, k: int, load: float, noc, cycles: int, seed: int = 0) -> float:
    """Mean latency in cycles."""
    flits = noc.packet_cycles
    ready, src, dest = traffic(pattern, k, load, flits, cycles, np.random.default_rng(seed))
    depth = noc.router_buffer_packets
    links = mesh.state(1, k, k, depth)[0]
    _, arrival = mesh.deliver(ready, src, dest, k, noc.hop_latency_x_cycles,
                              noc.hop_latency_y_cycles, flits, depth, links)
    window = ready >= cycles // 4  # warm-up: the first quarter
    return float((arrival[window] - ready[window]).mean())


def saturation(pattern: str, k: int, noc, cycles: int) -> float:
    """The offered load (flits/node/cycle) at which mean latency reaches 3x zero load."""
    limit = 3 * measure(pattern, k, 1 / 256, noc, cycles)
    lo, hi = 0.0, 1.0
    while hi - lo > 1 / 256:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if measure(pattern, k, mid, noc, cycles) < limit else (lo, mid)
    return lo


def hop_speed(k: int, load: float, noc, cycles: int, repeats: int = 3) -> tuple[int, float]:
    """(hops, best seconds) of :func:`accelsim.chip.mesh.deliver` on uniform traffic: the cost
    of the mesh's event loop per hop (injection excluded, ejection counted)."""
    import time

    flits = noc.packet_cycles
    ready, src, dest = traffic("uniform", k, load, flits, cycles, np.random.default_rng(0))
    hops = int((np.abs(src % k - dest % k) + np.abs(src // k - dest // k) + 1).sum())
    best = np.inf
    for _ in range(repeats + 1):  # the first call may compile
        links = mesh.state(1, k, k, noc.router_buffer_packets)[0]
        t0 = time.perf_counter()
        mesh.deliver(ready, src, dest, k, noc.hop_latency_x_cycles, noc.hop_latency_y_cycles,
                     flits, noc.router_buffer_packets, links)
        best = min(best, time.perf_counter() - t0)
    return hops, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--cycles", type=int, default=20000)
    parser.add_argument("--hardware", default="45nm-generic")
    parser.add_argument("--figure", type=Path, default=ROOT / "docs" / "figures" /
                        "noc-latency.png")
    args = parser.parse_args()
    noc = load_hardware(args.hardware).noc
    print(f"hardware {args.hardware}: hops {noc.hop_latency_x_cycles}/"
          f"{noc.hop_latency_y_cycles} cycles, {noc.packet_cycles}-cycle packets, "
          f"{noc.router_buffer_packets}-packet router buffers; {args.cycles} cycles per point, "
          "the first quarter warm-up")
    for k in args.k:
        hops, seconds = hop_speed(k, 0.2, noc, args.cycles)
        print(f"k={k} speed: uniform traffic at 0.2 flits/node/cycle, {hops:,} hops in "
              f"{seconds * 1e3:.0f} ms (best of 3): {hops / seconds / 1e6:.1f} M hops/s, "
              f"{seconds / hops * 1e9:.0f} ns per hop")
    curves = {}
    for k in args.k:
        for pattern in ("uniform", "transpose"):
            bound = channel_bound(pattern, k)
            loads = np.round(np.linspace(0.02, bound, 20), 3)
            points = [measure(pattern, k, load, noc, args.cycles) for load in loads]
            lat = " ".join(f"{load:g}:{p:.1f}" for load, p in zip(loads, points, strict=True))
            print(f"k={k} {pattern:9s} latency (cycles) by offered load: {lat}")
            sat = saturation(pattern, k, noc, args.cycles)
            curves[k, pattern] = loads, np.array(points), sat, bound
            line = (f"k={k} {pattern:9s} saturation throughput {sat:.3f} flits/node/cycle; XY "
                    f"channel-load bound {bound:.3f} (ratio {sat / bound:.2f})")
            if pattern == "uniform" and k % 2 == 0:
                line += f"; bisection bound 4/k = {4 / k:.3f} (ratio {sat * k / 4:.2f})"
            print(line)
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7.0, 4.2))
        for (k, pattern), (loads, lat, sat, bound) in curves.items():
            shown = np.arange(len(lat)) <= np.searchsorted(lat > 100, True)
            line, = ax.plot(loads[shown], lat[shown], marker="o", ms=3,
                            ls="-" if pattern == "uniform" else "--",
                            label=f"{k}x{k} {pattern}: saturates at {sat:.2f} "
                                  f"({sat / bound:.2f} of XY bound {bound:.2f})")
            ax.axvline(bound, color=line.get_color(), lw=0.8, ls=":")
        ax.set_xlabel("offered load (flits/node/cycle); dotted: ideal XY throughput")
        ax.set_ylabel("mean latency (cycles)")
        ax.set_title(f"accelsim mesh ({args.hardware}): latency vs offered load")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=8)
        fig.tight_layout()
        args.figure.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=120)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
