"""Reference mode: the timing model of :mod:`accelsim.chip` as a SimPy simulation in which every
spike packet is its own event at every stage.

Units own their machinery: each tile has an input queue (``simpy.Store(capacity=depth)``), an
ejection link (``simpy.Resource``), an output port fed by a ``simpy.Store`` of ready packets,
and processes for its accumulate/neuron-update unit, its port and its admissions; the unit's
process steps through the :class:`~accelsim.chip.timeline.Phase` of every timestep as the fast
mode's groups do, and records when each ended. A packet is admitted when it reaches the head of
its source's port, it is its turn in its destination's queue order and the destination's
``Store`` accepts it (credit); it then flies the hop latency, passes the ejection link and is
served by the destination's unit, which takes it from the ``Store``.

Queue order needs every spike that became ready in a cycle before it can be decided: spikes
register when they become ready, and a sequencer runs once every other event of that cycle was
processed (an event that re-queues itself behind the cycle's remaining events, SimPy's public
``succeed`` and ``peek``); it sorts them by (source tile, neuron) and appends them to each
destination's list. Nothing else depends on the order in which SimPy processes simultaneous
events, so the simulation computes exactly the recurrences of the fast mode.
"""

from __future__ import annotations

import numpy as np
import simpy

from accelsim.chip.plan import Plan
from accelsim.chip.timeline import Phase, Timeline


class _Packet:
    __slots__ = ("t", "src", "src_local", "neuron", "col", "dest", "ready", "service",
                 "hop", "at_port", "admitted", "eject_requested", "arrived", "inject", "start",
                 "finish", "arrival")

    def __init__(self, env, t, src, src_local, neuron, col, dest, ready, service, hop):
        self.t, self.src, self.src_local, self.neuron = t, src, src_local, neuron
        self.col, self.dest, self.ready, self.service, self.hop = col, dest, ready, service, hop
        self.at_port = env.event()
        self.admitted = env.event()
        self.eject_requested = env.event()
        self.arrived = env.event()
        self.inject = self.start = self.finish = self.arrival = -1


class _Chip:
    """One image on one chip: the tiles' processes and shared state."""

    def __init__(self, plan: Plan, trains: dict, timesteps: int, schedule: str,
                 record_packets: bool):
        self.plan, self.trains, self.T, self.schedule = plan, trains, timesteps, schedule
        hw = plan.hardware
        self.env = env = simpy.Environment()
        n = plan.tiles
        self.tl = Timeline.empty(n, timesteps)
        self.tl.record_packets = record_packets
        self.depth = hw.tile.queue_depth_packets
        self.queue = [simpy.Store(env, capacity=self.depth) for _ in range(n)]
        self.eject = [simpy.Resource(env, capacity=1) for _ in range(n)]
        self.port = [simpy.Store(env) for _ in range(n)]
        self.lists = [[[] for _ in range(timesteps)] for _ in range(n)]
        self.grew = [env.event() for _ in range(n)]
        self.last_eject = [None] * n
        self.pending: list[_Packet] = []
        self.flush_scheduled = False
        names = [layer.name for layer in plan.network.layers]
        self.names = names
        # end-of-timestep signals expected by every tile, per timestep
        self.expected = np.zeros(n, dtype=np.int64)
        for li in range(len(names)):
            for s in plan.sources[li]:
                self.expected[plan.layer_tiles[li]] += len(plan.layer_tiles[s])
        self.received = np.zeros((timesteps, n), dtype=np.int64)
        self.inputs_done = [[env.event() for _ in range(n)] for _ in range(timesteps)]
        for t in range(timesteps):
            for g in range(n):
                if self.expected[g] == 0:
                    self.inputs_done[t][g].succeed()
        self.send_done = [[env.event() for _ in range(n)] for _ in range(timesteps)]
        self.barrier = [env.event() for _ in range(timesteps)]
        self.packets: list[_Packet] = []
        self.consumer_tiles = []
        for li in range(len(names)):
            fo = plan.fanout[li]
            self.consumer_tiles.append(np.unique(fo.dest_tiles) if fo is not None else
                                       np.zeros(0, dtype=np.int64))

    # -- sequencer: queue order of the spikes that became ready in this cycle -------------

    def register(self, pkt: _Packet) -> None:
        self.pending.append(pkt)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self._end_of_cycle(None)

    def _end_of_cycle(self, event: simpy.Event | None) -> None:
        """Flush once no other event of this cycle is left; until then wait behind them."""
        if event is not None and self.env.peek() > self.env.now:
            self._flush()
            return
        later = self.env.event()
        later.callbacks.append(self._end_of_cycle)
        later.succeed()

    def _flush(self) -> None:
        self.flush_scheduled = False
        batch = sorted(self.pending, key=lambda p: (p.src, p.neuron, p.col))
        self.pending = []
        touched = set()
        for p in batch:
            self.lists[p.dest][p.t].append(p)
            touched.add(p.dest)
        for d in sorted(touched):
            ev, self.grew[d] = self.grew[d], self.env.event()
            ev.succeed()

    # -- processes --------------------------------------------------------------------------

    def tile(self, g: int):
        env, plan, tl = self.env, self.plan, self.tl
        li = int(plan.tile_layer[g])
        layer = plan.network.layers[li]
        fo = plan.fanout[li]
        cfg = plan.hardware.tile
        local = int(np.searchsorted(plan.layer_tiles[li], g))
        for t in range(self.T):
            if self.schedule == "barrier" and t > 0:
                yield self.barrier[t]
            tl.phase_end[t, g, Phase.BARRIER] = env.now
            if t == 0 and plan.mac_cycles[g]:
                tl.busy[t, g] += plan.mac_cycles[g]
                yield env.timeout(int(plan.mac_cycles[g]))
            tl.phase_end[t, g, Phase.MAC] = env.now
            # integrate the packets of timestep t in queue order
            i = 0
            while (pkt := (yield from self._queued(g, t, i))) is not None:
                i += 1
                yield pkt.arrived
                item = yield self.queue[g].get()
                assert item is pkt
                pkt.start = env.now
                yield env.timeout(pkt.service)
                pkt.finish = env.now
                tl.busy[t, g] += pkt.service
            # fire
            tl.fire_start[t, g] = fire_start = env.now
            tl.phase_end[t, g, Phase.INTEGRATE] = fire_start
            fire_end = fire_start + int(plan.fire_cycles[g])
            if fo is not None and layer.kind == "spiking":
                spikes = self.trains[layer.name].at(t).astype(np.int64)
                mine = spikes[plan.neuron_tile[li][spikes] == local]
                ready = fire_start + (plan.neuron_local[li][mine].astype(np.int64)
                                      // cfg.neuron_update_units + 1) * (
                    cfg.neuron_update_latency_cycles)
                for n, r in zip(mine.tolist(), ready.tolist(), strict=True):
                    if r > env.now:
                        yield env.timeout(r - env.now)
                    c = fo.neuron_class[n]
                    for j in np.flatnonzero(fo.synops[c]).tolist():
                        pkt = _Packet(env, t, g, local, n, j, int(fo.dest_tiles[j]), r,
                                      int(fo.service[c, j]), int(fo.hop_cycles[local, j]))
                        self.packets.append(pkt)
                        self.port[g].put(pkt)
                        self.register(pkt)
            if fire_end > env.now:
                yield env.timeout(fire_end - env.now)
            tl.busy[t, g] += plan.fire_cycles[g]
            tl.fire_end[t, g] = tl.phase_end[t, g, Phase.FIRE] = fire_end
            if fo is not None and layer.kind == "spiking":
                self.port[g].put(("end", t))
            else:
                self._send_done(g, t)

    def _send_done(self, g: int, t: int) -> None:
        env = self.env
        self.tl.end[t, g] = self.tl.phase_end[t, g, Phase.SEND] = env.now
        self.send_done[t][g].succeed()
        li = int(self.plan.tile_layer[g])
        for d in self.consumer_tiles[li].tolist():
            env.process(self._signal(g, d, t))

    def _signal(self, g: int, d: int, t: int):
        yield self.env.timeout(int(self.plan.done_cycles[g, d]))
        self.received[t, d] += 1
        if self.received[t, d] == self.expected[d]:
            self.tl.inputs_done[t, d] = self.env.now
            self.inputs_done[t][d].succeed()

    def output_port(self, s: int):
        env, tl = self.env, self.tl
        F = self.plan.packet_cycles
        finished = 0
        while finished < self.T:
            item = yield self.port[s].get()
            if isinstance(item, tuple):
                finished += 1
                self._send_done(s, item[1])
                continue
            pkt = item
            free_at = env.now
            pkt.at_port.succeed()
            yield pkt.admitted
            tl.stall[pkt.t, s] += env.now - free_at
            tl.packets_out[pkt.t, s] += 1
            yield env.timeout(F)

    def _queued(self, d: int, t: int, i: int):
        """Wait for packet i of timestep t in tile d's queue order (the sequencer appends them
        as they become ready); None once every source's end-of-timestep signal has arrived
        and there is no such packet."""
        lst = self.lists[d][t]
        while i >= len(lst):
            if self.inputs_done[t][d].processed:
                return None
            yield self.grew[d] | self.inputs_done[t][d]
        return lst[i]

    def admissions(self, d: int):
        env = self.env
        for t in range(self.T):
            i = 0
            while (pkt := (yield from self._queued(d, t, i))) is not None:
                i += 1
                yield pkt.at_port
                yield self.queue[d].put(pkt)
                pkt.inject = env.now
                pkt.admitted.succeed()
                env.process(self.flight(pkt, self.last_eject[d]))
                self.last_eject[d] = pkt

    def flight(self, pkt: _Packet, previous: _Packet | None):
        env = self.env
        if pkt.hop:
            yield env.timeout(pkt.hop)
        if previous is not None:
            yield previous.eject_requested
        link = self.eject[pkt.dest]
        with link.request() as req:
            pkt.eject_requested.succeed()
            yield req
            yield env.timeout(self.plan.packet_cycles)
        pkt.arrival = env.now
        self.tl.packets_in[pkt.t, pkt.dest] += 1
        pkt.arrived.succeed()

    def barrier_keeper(self):
        cycles = self.plan.hardware.schedule.barrier_cycles
        for t in range(self.T - 1):
            yield simpy.AllOf(self.env, self.send_done[t])
            yield self.env.timeout(cycles)
            self.barrier[t + 1].succeed()

    def run(self) -> Timeline:
        env, plan = self.env, self.plan
        for g in range(plan.tiles):
            env.process(self.tile(g))
            env.process(self.admissions(g))
            li = int(plan.tile_layer[g])
            if plan.fanout[li] is not None and plan.network.layers[li].kind == "spiking":
                env.process(self.output_port(g))
        if self.schedule == "barrier":
            env.process(self.barrier_keeper())
        env.run()
        self._count()
        return self.tl

    def _count(self) -> None:
        plan, tl = self.plan, self.tl
        unfinished = [p for p in self.packets if p.finish < 0]
        if unfinished:
            raise RuntimeError(f"{len(unfinished)} packets never finished (deadlock)")
        for p in self.packets:
            li = int(plan.tile_layer[p.src])
            fo = plan.fanout[li]
            tl.hops_x[p.t, p.src] += fo.hops_x[p.src_local, p.col]
            tl.hops_y[p.t, p.src] += fo.hops_y[p.src_local, p.col]
            c = fo.neuron_class[p.neuron]
            tl.synops_in[p.t, p.dest] += fo.synops[c, p.col]
            tl.sram_bits[p.t, p.dest] += fo.sram_bits[c, p.col]
            tl.dram_bits[p.t, p.dest] += fo.dram_bits[c, p.col]
        # queue occupancy at each admission, from the recorded times (queue order per tile)
        for d in range(plan.tiles):
            seq = [p for t in range(self.T) for p in self.lists[d][t]]
            if not seq:
                continue
            inj = np.array([p.inject for p in seq])
            start = np.array([p.start for p in seq])
            for k, p in enumerate(seq):
                left = min(int(np.searchsorted(start, inj[k], side="right")), k)
                tl.queue_peak[p.t, d] = max(tl.queue_peak[p.t, d], k - left + 1)
        if tl.record_packets:
            for t in range(self.T):
                rows = [(t + 1, p.src, p.neuron, p.dest, p.ready, p.inject, p.arrival, p.start,
                         p.finish) for p in self.packets if p.t == t]
                if rows:
                    tl.packets.append(np.array(rows, dtype=np.int64))


def run_images(plan: Plan, trains: list[dict], timesteps: int, schedule: str,
               record_packets: bool = False) -> list[Timeline]:
    """Simulate images one at a time, one SimPy event per spike per stage."""
    return [_Chip(plan, tr, timesteps, schedule, record_packets).run() for tr in trains]
