"""Chrome/Perfetto traces: the JSON follows the trace-event format, and its spans are the
Timeline the chip recorded (the same cycles, in the same order)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from chip_support import chain, run_mode, tiny_hw, train

from accelsim.chip.timeline import Phase
from accelsim.chip.trace import (
    PACKETS,
    PORT,
    UNIT,
    chrome_trace,
    pid,
    tid,
    trace_image,
    write_trace,
)

MODES = ["fast", "reference"]

# The trace-event format (the "Trace Event Format" document of the Chromium project) for the
# event kinds accelsim writes: complete events X, counters C, metadata M; flow v2 fields on X.
_COMMON = {"name": {"type": "string"}, "pid": {"type": "integer", "minimum": 0},
           "tid": {"type": "integer", "minimum": 0}, "cat": {"type": "string"},
           "args": {"type": "object"}}
SCHEMA = {
    "type": "object",
    "required": ["traceEvents"],
    "properties": {
        "traceEvents": {"type": "array", "items": {"oneOf": [
            {"type": "object", "required": ["ph", "name", "pid", "tid", "ts", "dur"],
             "properties": {**_COMMON, "ph": {"const": "X"},
                            "ts": {"type": "integer", "minimum": 0},
                            "dur": {"type": "integer", "minimum": 0},
                            "bind_id": {"type": "integer"}, "flow_in": {"type": "boolean"},
                            "flow_out": {"type": "boolean"}},
             "additionalProperties": False},
            {"type": "object", "required": ["ph", "name", "pid", "ts", "args"],
             "properties": {**_COMMON, "ph": {"const": "C"},
                            "ts": {"type": "integer", "minimum": 0},
                            "args": {"type": "object", "minProperties": 1,
                                     "additionalProperties": {"type": "number"}}},
             "additionalProperties": False},
            {"type": "object", "required": ["ph", "name", "pid", "args"],
             "properties": {**_COMMON, "ph": {"const": "M"},
                            "name": {"enum": ["process_name", "process_sort_index",
                                              "thread_name"]}},
             "additionalProperties": False},
        ]}},
        "otherData": {"type": "object"},
    },
    "additionalProperties": False,
}


def check_format(trace: dict) -> None:
    """Validate against SCHEMA (jsonschema, when installed) and the format's rules that a schema
    cannot state: complete events on one thread nest, every flow has one start and one end."""
    text = json.dumps(trace)  # plain JSON: no numpy scalars, no NaN
    assert "NaN" not in text and "Infinity" not in text
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(json.loads(text), SCHEMA)
    events = trace["traceEvents"]
    assert {e["ph"] for e in events} <= {"X", "C", "M"}
    threads: dict[tuple[int, int], list] = {}
    owner: dict[int, int] = {}  # Perfetto: a tid belongs to one process
    for e in events:
        if "tid" in e:
            assert owner.setdefault(e["tid"], e["pid"]) == e["pid"], "a tid under two pids"
        assert isinstance(e["name"], str) and isinstance(e["pid"], int)
        if e["ph"] == "X":
            assert isinstance(e["ts"], int) and isinstance(e["dur"], int) and e["dur"] >= 0
            threads.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
        if e["ph"] == "C":
            assert all(isinstance(v, int | float) for v in e["args"].values())
    pids = {e["pid"] for e in events}
    assert not pids & set(owner), "a tid equal to a pid (Perfetto reads a missing tid as pid)"
    for spans in threads.values():  # proper nesting: a span ends before the next one outside
        stack: list[int] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], "overlapping spans on one thread"
            stack.append(end)
    flows: dict[int, list] = {}
    for e in events:
        if "bind_id" in e:
            flows.setdefault(e["bind_id"], []).append(e)
    for pair in flows.values():
        assert sorted(("flow_out" in e, "flow_in" in e) for e in pair) == [(False, True),
                                                                            (True, False)]
        out = next(e for e in pair if "flow_out" in e)
        into = next(e for e in pair if "flow_in" in e)
        assert out["ts"] <= into["ts"]


def _tile(event: dict) -> int:
    return event["pid"] // 4 - 1


def spans_from_trace(trace: dict) -> list[tuple[int, int, str, int, int]]:
    return [(_tile(e), e["args"]["timestep"], e["name"], e["ts"], e["ts"] + e["dur"])
            for e in trace["traceEvents"] if e["ph"] == "X" and e.get("cat") == "phase"]


def spans_from_timeline(tl) -> list[tuple[int, int, str, int, int]]:
    """Independently of accelsim.chip.trace: each phase starts where the one before it ended
    (BARRIER
    where FIRE of the step before ended, SEND where FIRE ended); empty phases are not spans."""
    T, tiles, _ = tl.phase_end.shape
    out = []
    for d in range(tiles):
        for t in range(T):
            before = {Phase.BARRIER: tl.phase_end[t - 1, d, Phase.FIRE] if t else 0,
                      Phase.MAC: tl.phase_end[t, d, Phase.BARRIER],
                      Phase.INTEGRATE: tl.phase_end[t, d, Phase.MAC],
                      Phase.FIRE: tl.phase_end[t, d, Phase.INTEGRATE],
                      Phase.SEND: tl.phase_end[t, d, Phase.FIRE]}
            for phase in Phase:
                start, end = int(before[phase]), int(tl.phase_end[t, d, phase])
                if end > start:
                    out.append((d, t + 1, phase.name.lower(), start, end))
    return sorted(out, key=lambda s: (s[0], s[1], Phase[s[2].upper()]))


def counter(trace: dict, tile: int, name: str) -> list[tuple[int, int]]:
    return [(e["ts"], e["args"][name]) for e in trace["traceEvents"]
            if e["ph"] == "C" and e["pid"] == pid(tile) and e["name"] == name]


@pytest.mark.parametrize("mode", MODES)
def test_hand_computed_stall_trace(mode):
    # test_chip_timelines.test_full_queue_stalls_sender: depth-1 queue, accumulate latency 5.
    # tile 0 (l0): MAC 0-15, fire 15-18, port injects until 24; tile 1 (out): integrates
    # 0-33 (packets served 18-23, 23-28, 28-33), fires 33-34.
    net = chain([3])
    hw = tiny_hw(mesh__cols=2, tile__queue_depth_packets=1, tile__accumulate_latency_cycles=5)
    _, tls = run_mode(net, [{"l0": train([[0, 1, 2]])}], hw, 1, mode=mode)
    trace = chrome_trace(tls[0], ["l0", "out"], packet_cycles=1)
    check_format(trace)
    assert spans_from_trace(trace) == [(0, 1, "mac", 0, 15), (0, 1, "fire", 15, 18),
                                       (0, 1, "send", 18, 24), (1, 1, "integrate", 0, 33),
                                       (1, 1, "fire", 33, 34)]
    # admitted 16, 18, 23 and served from 18, 23, 28: one packet waits at a time
    assert counter(trace, 1, "queue occupancy") == [(0, 0), (16, 1), (18, 1), (23, 1), (28, 0)]
    assert counter(trace, 0, "stall cycles") == [(0, 0), (24, 5)]
    flows = [e for e in trace["traceEvents"] if e.get("cat") == "packet"]
    out_of_0 = tid(0, PACKETS)
    assert [(e["pid"], e["tid"], e["ts"], e["dur"]) for e in flows if "flow_out" in e] == [
        (pid(0), out_of_0, 16, 1), (pid(0), out_of_0, 18, 1), (pid(0), out_of_0, 23, 1)]
    into_1 = tid(1, PACKETS)
    assert [(e["pid"], e["tid"], e["ts"], e["dur"]) for e in flows if "flow_in" in e] == [
        (pid(1), into_1, 18, 5), (pid(1), into_1, 23, 5), (pid(1), into_1, 28, 5)]


@pytest.mark.parametrize("mode", MODES)
def test_spans_equal_the_recorded_timeline(mode):
    rng = np.random.default_rng(3)
    net = chain([4, 6, 3], inputs=2)
    T = 4
    spikes = [{f"l{i}": train([sorted(rng.choice(n, rng.integers(0, n + 1), replace=False))
                               for _ in range(T)]) for i, n in enumerate([4, 6, 3])}]
    hw = tiny_hw(mesh__cols=4, mesh__rows=2, tile__queue_depth_packets=2)
    _, tls = run_mode(net, spikes, hw, T, mode=mode,
                      tiles_per_layer={"l0": 2, "l1": 3, "l2": 2, "out": 1})
    tl = tls[0]
    trace = chrome_trace(tl, [f"t{d}" for d in range(tl.phase_end.shape[1])], packet_cycles=1,
                         flows=5)
    check_format(trace)
    assert spans_from_trace(trace) == spans_from_timeline(tl)  # same cycles, same order
    for d in range(tl.phase_end.shape[1]):
        # the occupancy counter, rebuilt from the packets, peaks where the chip's queue did
        occupancy = [v for _, v in counter(trace, d, "queue occupancy")] or [0]
        assert max(occupancy) == tl.queue_peak[:, d].max()
        assert counter(trace, d, "stall cycles")[-1][1] == tl.stall[:, d].sum()
    assert sum(1 for e in trace["traceEvents"] if e.get("flow_out")) == 5
    # every unit-thread phase lies inside its timestep's span
    steps = {(e["pid"], e["args"]["timestep"]): (e["ts"], e["ts"] + e["dur"])
             for e in trace["traceEvents"] if e.get("cat") == "timestep"}
    for e in trace["traceEvents"]:
        if e.get("cat") == "phase" and e["tid"] == tid(_tile(e), UNIT):
            lo, hi = steps[(e["pid"], e["args"]["timestep"])]
            assert lo <= e["ts"] and e["ts"] + e["dur"] <= hi
        if e.get("cat") == "phase" and e["name"] == "send":
            assert e["tid"] == tid(_tile(e), PORT)


def test_trace_image_writes_a_loadable_file(tmp_path):
    net = chain([2, 3], inputs=2)
    hw = tiny_hw(mesh__cols=3)
    trace, tl = trace_image(net, np.array([0.8, 0.7]), hw, timesteps=3)
    path = write_trace(tmp_path / "t.json", trace)
    loaded = json.loads(path.read_text(encoding="utf-8"))
    check_format(loaded)
    assert spans_from_trace(loaded) == spans_from_timeline(tl)
    assert loaded["otherData"]["timesteps"] == 3
    assert any(e.get("cat") == "packet" for e in loaded["traceEvents"])
