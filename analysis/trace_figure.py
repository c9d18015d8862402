"""Draw a trace written by ``accelsim trace`` as a PNG (the README's picture of a trace).

A matplotlib rendering of the same events Perfetto shows: one row per tile (its unit track, with
the SEND spans of its port drawn thinner below), phases coloured, a sample of the flow arrows.

    python analysis/trace_figure.py TRACE.json OUT.png [--tiles 0:24] [--until CYCLE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"barrier": "#bbbbbb", "mac": "#d62728", "integrate": "#1f77b4", "fire": "#ff7f0e",
           "send": "#2ca02c"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trace", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tiles", default="0:24", help="first:last tile (Python slice)")
    ap.add_argument("--until", type=int, default=None, help="last cycle drawn")
    args = ap.parse_args()
    trace = json.loads(args.trace.read_text(encoding="utf-8"))
    lo, hi = (int(v) for v in args.tiles.split(":"))
    events = trace["traceEvents"]
    names = {e["pid"]: e["args"]["name"] for e in events
             if e["ph"] == "M" and e["name"] == "process_name"}
    pids = [p for p in sorted(names) if lo <= p // 4 - 1 < hi]  # accelsim.chip.trace.pid
    row = {p: i for i, p in enumerate(pids)}
    fig, ax = plt.subplots(figsize=(12, 0.32 * len(pids) + 1.2))
    for e in events:
        if e["ph"] != "X" or e.get("cat") != "phase" or e["pid"] not in row:
            continue
        y = row[e["pid"]]
        send = e["name"] == "send"
        ax.broken_barh([(e["ts"], e["dur"])], (y + (0.05 if send else 0.3), 0.2 if send else
                                                0.6), color=COLOURS[e["name"]], lw=0)
    starts = {e["bind_id"]: e for e in events if e.get("flow_out")}
    for e in events:
        if e.get("flow_in") and e["pid"] in row and starts[e["bind_id"]]["pid"] in row:
            s = starts[e["bind_id"]]
            ax.annotate("", xy=(e["ts"], row[e["pid"]] + 0.6),
                        xytext=(s["ts"], row[s["pid"]] + 0.15),
                        arrowprops={"arrowstyle": "->", "lw": 0.5, "color": "k", "alpha": 0.5})
    ax.set_yticks([i + 0.5 for i in range(len(pids))], [names[p] for p in pids], fontsize=7)
    ax.invert_yaxis()
    if args.until is not None:
        ax.set_xlim(0, args.until)
    ax.set_xlabel("chip cycle")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in COLOURS.values()]
    ax.legend(handles, list(COLOURS), ncol=5, loc="upper right", fontsize=8)
    info = trace.get("otherData", {})
    ax.set_title(f"{info.get('model', '')}: one image on the chip, tiles {lo}-{hi - 1} "
                 f"(phases per tile; thin bars: the output port's SEND; arrows: sampled "
                 f"packets)", fontsize=9)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=130)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
