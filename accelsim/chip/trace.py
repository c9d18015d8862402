"""The chip's timeline of one image as a Chrome trace-event file (ui.perfetto.dev,
chrome://tracing).

Built from the :class:`~accelsim.chip.timeline.Timeline` the chip records (both modes fill the
same one). Layout:

- one *process* per tile (``tile d · layer``; :func:`pid`), sorted by tile number, with three
  threads (:func:`tid`):
  ``unit`` (a ``timestep k`` span holding the phases BARRIER, MAC, INTEGRATE and FIRE of that
  step), ``port`` (the SEND phase: the output port drains the step's packets while the unit may
  already integrate the next step, so SEND has its own track), and ``packets`` (the sampled
  packets: their injection at the sending port and their service at the receiving unit);
- a phase span runs from the end of the phase before it to the end the Timeline recorded
  (``phase_end``); BARRIER of step t starts where FIRE of t-1 ended (0 for t = 1), SEND where FIRE
  ended. Zero-length phases are left out;
- counter tracks per tile: ``queue occupancy`` (packets admitted to the input queue and not yet
  served, stepped at every admission and service start; departures at a cycle count first) and
  ``stall cycles`` (cumulative cycles the output port waited for a full queue, at the end of each
  SEND);
- flow arrows (trace-event flow v2: ``bind_id``, ``flow_out``/``flow_in``) from a packet's
  injection to its service, for an evenly spaced sample of the packets.

Time: ``ts`` and ``dur`` are chip cycles written into the format's microsecond fields, so the
viewer's "1 µs" reads "1 cycle" (asynchronous presets: one time unit); ``otherData`` says so and
gives the clock.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from accelsim.chip.timeline import PACKET_FIELDS, Phase, Timeline

UNIT, PORT, PACKETS = 1, 2, 3
"""A tile's tracks (threads)."""


def pid(tile: int) -> int:
    """The process id of a tile."""
    return 4 * tile + 4


def tid(tile: int, track: int) -> int:
    """The thread id of a tile's track. Perfetto treats ids as system-wide, so no tid repeats
    under two tiles and none equals a pid (an event without a tid is read as tid = pid)."""
    return 4 * tile + track

UNIT_PHASES = (Phase.BARRIER, Phase.MAC, Phase.INTEGRATE, Phase.FIRE)

_F = {name: i for i, name in enumerate(PACKET_FIELDS)}


def phase_spans(timeline: Timeline) -> list[tuple[int, int, Phase, int, int]]:
    """(tile, timestep 1..T, phase, start, end) of every phase with end > start, in tile,
    timestep, phase order: the spans a trace holds, straight from ``timeline.phase_end``."""
    ends = timeline.phase_end
    T, tiles, _ = ends.shape
    spans = []
    for d in range(tiles):
        previous_fire = 0
        for t in range(T):
            start = previous_fire
            for phase in (*UNIT_PHASES, Phase.SEND):
                if phase == Phase.SEND:
                    start = int(ends[t, d, Phase.FIRE])
                end = int(ends[t, d, phase])
                if end > start:
                    spans.append((d, t + 1, phase, start, end))
                if phase != Phase.SEND:
                    start = end
            previous_fire = int(ends[t, d, Phase.FIRE])
    return spans


def chrome_trace(timeline: Timeline, tile_names: list[str], *, packet_cycles: int,
                 flows: int = 200, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The trace-event JSON object of one image's ``timeline``.

    ``tile_names`` labels each tile (its layer); ``packet_cycles`` is the injection time of one
    packet; ``flows`` caps the packets drawn as arrows.
    """
    events: list[dict[str, Any]] = []
    for d, label in enumerate(tile_names):
        proc = pid(d)
        events += [
            {"ph": "M", "name": "process_name", "pid": proc,
             "args": {"name": f"tile {d} · {label}"}},
            {"ph": "M", "name": "process_sort_index", "pid": proc, "args": {"sort_index": d}},
            {"ph": "M", "name": "thread_name", "pid": proc, "tid": tid(d, UNIT),
             "args": {"name": "unit"}},
            {"ph": "M", "name": "thread_name", "pid": proc, "tid": tid(d, PORT),
             "args": {"name": "port"}},
            {"ph": "M", "name": "thread_name", "pid": proc, "tid": tid(d, PACKETS),
             "args": {"name": "packets"}},
        ]
    ends = timeline.phase_end
    spans = phase_spans(timeline)
    by_step: dict[tuple[int, int], list] = {}
    for span in spans:
        by_step.setdefault(span[:2], []).append(span)
    for (d, t), step in by_step.items():
        unit = [s for s in step if s[2] != Phase.SEND]
        if unit:  # the timestep's span first, so that its phases nest inside it
            start, end = unit[0][3], unit[-1][4]
            events.append({"ph": "X", "cat": "timestep", "name": f"timestep {t}",
                           "pid": pid(d), "tid": tid(d, UNIT), "ts": start, "dur": end - start,
                           "args": {"timestep": t,
                                    "busy_cycles": int(timeline.busy[t - 1, d]),
                                    "synaptic_ops": int(timeline.synops_in[t - 1, d])}})
        for _, _, phase, start, end in step:
            events.append({"ph": "X", "cat": "phase", "name": phase.name.lower(),
                           "pid": pid(d), "tid": tid(d, PORT if phase == Phase.SEND else UNIT),
                           "ts": start, "dur": end - start, "args": {"timestep": t}})
    T, tiles = timeline.stall.shape
    packets = timeline.packet_table()
    for d in range(tiles):
        events += _counter(d, "stall cycles", [0] + [int(ends[t, d, Phase.SEND])
                                                     for t in range(T)],
                           [0, *np.cumsum(timeline.stall[:, d]).tolist()])
        mine = packets[packets[:, _F["dest_tile"]] == d]
        if len(mine):
            times = np.concatenate([mine[:, _F["start"]], mine[:, _F["admitted"]]])
            steps = np.concatenate([-np.ones(len(mine), int), np.ones(len(mine), int)])
            order = np.lexsort((steps, times))  # departures first at equal cycles
            times, level = times[order], np.cumsum(steps[order])
            last = np.r_[times[1:] != times[:-1], True]  # the level after a cycle's events
            events += _counter(d, "queue occupancy", [0, *times[last].tolist()],
                               [0, *level[last].tolist()])
    if len(packets) and flows > 0:
        pick = np.unique(np.linspace(0, len(packets) - 1, min(flows, len(packets))).astype(int))
        for i, p in enumerate(packets[pick]):
            src, dest = int(p[_F["source_tile"]]), int(p[_F["dest_tile"]])
            args = {name: int(p[_F[name]]) for name in PACKET_FIELDS}
            events.append({"ph": "X", "cat": "packet", "name": f"inject → tile {dest}",
                           "pid": pid(src), "tid": tid(src, PACKETS),
                           "ts": int(p[_F["admitted"]]),
                           "dur": packet_cycles, "bind_id": i, "flow_out": True, "args": args})
            events.append({"ph": "X", "cat": "packet", "name": f"serve ← tile {src}",
                           "pid": pid(dest), "tid": tid(dest, PACKETS),
                           "ts": int(p[_F["start"]]),
                           "dur": int(p[_F["finish"]] - p[_F["start"]]), "bind_id": i,
                           "flow_in": True, "args": args})
    return {"traceEvents": events,
            "otherData": {"time_unit": "1 trace microsecond = 1 chip cycle", **(info or {})}}


def _counter(tile: int, name: str, times: list[int], values: list[int]) -> list[dict]:
    return [{"ph": "C", "name": name, "pid": pid(tile), "tid": tid(tile, UNIT), "ts": int(ts),
             "args": {name: int(v)}} for ts, v in zip(times, values, strict=True)]


def trace_image(network, image: np.ndarray, hardware, *, timesteps: int | None = None,
                mode: str = "fast", schedule: str | None = None, arithmetic: str = "float",
                quantization=None, flows: int = 200) -> tuple[dict[str, Any], Timeline]:
    """Simulate one normalised ``image`` (C, H, W) and return (its trace, its Timeline)."""
    from accelsim.chip.mapping import map_network
    from accelsim.chip.plan import build_plan
    from accelsim.chip.simulation import _hardware, replay
    from accelsim.spiking import functional, quantize

    hw = _hardware(hardware)
    T = functional.check_timesteps(timesteps, network.timesteps)
    if arithmetic == "fixed":  # as simulate() does: the tile's leak rounding by default
        quantization = quantize.for_tile(quantize.as_quantization(quantization), hw.tile)
    images = np.asarray(image, dtype=np.float64)[None]
    result = functional.run(network, images, timesteps=T, arithmetic=arithmetic,
                            quantization=quantization, record_spikes=True)
    mapping = map_network(network, hw)
    timelines: list[Timeline] = []
    replay(network, result.spikes, hw, counts=result.counts, predictions=result.predictions,
           timesteps=T, mode=mode, schedule=schedule, mapping=mapping, timelines=timelines)
    plan = build_plan(network, hw, mapping)
    names = [network.layers[li].name for li in plan.tile_layer]
    info = {"model": network.name, "timesteps": T, "mode": mode,
            "schedule": schedule or hw.schedule.kind,
            "cycle_ns": hw.clock.cycle_ns, "prediction": int(result.predictions[0])}
    trace = chrome_trace(timelines[0], names, packet_cycles=plan.packet_cycles, flows=flows,
                         info=info)
    return trace, timelines[0]


def write_trace(path: str | Path, trace: dict[str, Any]) -> Path:
    """Write a trace object as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(trace, separators=(",", ":")), encoding="utf-8")
    return path
