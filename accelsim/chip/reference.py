"""Reference mode: the timing model of :mod:`accelsim.chip` as a SimPy simulation in which every
spike packet is its own event at every stage.

Units own their machinery: each tile has an input queue (``simpy.Store(capacity=depth)``), an
output port fed by a ``simpy.Store`` of ready packets, and processes for its
accumulate/neuron-update unit, its port and its admissions; the unit's process steps through the
:class:`~accelsim.chip.timeline.Phase` of every timestep as the fast mode's groups do, and
records when each ended. Every mesh channel (:mod:`accelsim.chip.mesh`) is a process that grants
the channel phase after phase (it knows from the spike trains how many packets of each phase
cross it), each time to the oldest candidate present, and every router buffer a ``Store`` of its
capacity. A packet takes
a slot of its router's injection buffer at the head of its source's port and is admitted when it
is its turn in its destination's queue order and the destination's ``Store`` accepts it
(credit); it then travels as its own process: at each hop, once the packet ahead of it in its
buffer has left, it is a candidate for the channel, whose process grants it when the channel is
free and the next buffer has a slot; its tail frees the channel and its old slot
``packet_cycles`` later. It is served by the
destination's unit, which takes it from the tile's ``Store``.

Queue order needs every spike that became ready in a cycle before it can be decided, and a
grant every candidate that arrived in the cycle: spikes register when they become ready and
channels ask for a decision, and a hook runs once every other event of that cycle was processed
(an event that re-queues itself behind the cycle's remaining events, SimPy's public ``succeed``
and ``peek``). It first sorts the cycle's spikes by (source tile, neuron, destination) into each
destination's list, lets their consequences settle, then releases the channels' decisions.
Nothing else depends on the order in which SimPy processes simultaneous events, so the
simulation computes exactly what the fast mode does.
"""

from __future__ import annotations

import numpy as np
import simpy

from accelsim.chip import mesh
from accelsim.chip.plan import Plan, check_sender_chain
from accelsim.chip.timeline import Phase, Timeline


class _Packet:
    __slots__ = ("t", "phase", "src", "src_local", "neuron", "col", "dest", "ready", "service",
                 "route", "turn", "released", "left", "ahead", "at_port", "admitted", "arrived",
                 "inject", "start", "finish", "arrival")

    def __init__(self, env, t, phase, src, src_local, neuron, col, dest, ready, service, route):
        self.t, self.phase, self.src, self.src_local = t, phase, src, src_local
        self.neuron = neuron
        self.col, self.dest, self.ready, self.service = col, dest, ready, service
        self.route = route  # (channel, head latency) of every hop after injection
        self.turn = {c: env.event() for c, _ in route}  # granted each channel
        self.released = {c: env.event() for c, _ in route}  # its tail crossed the channel
        self.left = {c: env.event() for c, _ in route}  # its tail left the channel's buffer
        self.left[src * mesh.PORTS + mesh.INJECT] = env.event()
        self.ahead: dict[int, _Packet | None] = {}  # the packet ahead in each buffer
        self.at_port = env.event()
        self.admitted = env.event()
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
        self.port = [simpy.Store(env) for _ in range(n)]
        self.lists = [[[] for _ in range(timesteps)] for _ in range(n)]
        self.grew = [env.event() for _ in range(n)]
        # the mesh: per channel, its router buffer (a Store of credits), the last packet that
        # entered that buffer, the candidates waiting for it, and how many packets of each
        # phase (timestep, sending layer) will cross it (from the spike trains)
        self.routes = {}
        try:
            check_sender_chain(plan)
            self.layer_phases = True
        except ValueError:  # parallel senders interleave: a phase is a whole timestep
            self.layer_phases = False
        self.count = self._channel_counts()
        self.buffer = {c: simpy.Store(env, capacity=hw.noc.router_buffer_packets)
                       for c in self.count}
        for g in range(n):
            self.buffer.setdefault(g * mesh.PORTS + mesh.INJECT, simpy.Store(
                env, capacity=hw.noc.router_buffer_packets))
        self.last_in: dict[int, _Packet | None] = dict.fromkeys(self.buffer)
        self.candidates: dict[int, list[_Packet]] = {c: [] for c in self.count}
        self.candidate_came = {c: env.event() for c in self.count}
        self.pending: list[_Packet] = []
        self.decisions: list[simpy.Event] = []
        self.hook_armed = False
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

    def route(self, s: int, d: int) -> list[tuple[int, int]]:
        if (s, d) not in self.routes:
            noc = self.plan.hardware.noc
            router = self.plan.router  # routes run between routers, not tile ids
            self.routes[s, d] = mesh.route(int(router[s]), int(router[d]),
                                           self.plan.hardware.mesh.cols,
                                           noc.hop_latency_x_cycles, noc.hop_latency_y_cycles)
        return self.routes[s, d]

    def phase(self, t: int, li: int) -> tuple[int, int]:
        """The phase of layer ``li``'s packets of timestep ``t``: links carry the packets of
        earlier phases first (:mod:`accelsim.chip.mesh`)."""
        return (t, li) if self.layer_phases else (t, 0)

    def _channel_counts(self) -> dict[int, dict[tuple[int, int], int]]:
        """Packets per phase (timestep, sending layer) on every channel after injection, from
        the spike trains."""
        plan, count = self.plan, {}
        for li, (layer, fo) in enumerate(zip(plan.network.layers, plan.fanout, strict=True)):
            if fo is None or layer.kind != "spiking":
                continue
            for t in range(self.T):
                for n in self.trains[layer.name].at(t).tolist():
                    local = int(plan.neuron_tile[li][n])
                    s = int(plan.layer_tiles[li][local])
                    for j in np.flatnonzero(fo.synops[fo.neuron_class[n]]).tolist():
                        for c, _ in self.route(s, int(fo.dest_tiles[j])):
                            phases = count.setdefault(c, {})
                            phase = self.phase(t, li)
                            phases[phase] = phases.get(phase, 0) + 1
        return count

    # -- end of cycle: queue order of the spikes that became ready, then the grants ---------

    def register(self, pkt: _Packet) -> None:
        self.pending.append(pkt)
        self._arm()

    def decision(self) -> simpy.Event:
        """An event that fires once every other event of this cycle was processed (and the
        spikes of the cycle are in queue order): a channel's grant sees every candidate that
        arrived in the cycle."""
        ev = self.env.event()
        self.decisions.append(ev)
        self._arm()
        return ev

    def _arm(self) -> None:
        if not self.hook_armed:
            self.hook_armed = True
            self._end_of_cycle(None)

    def _end_of_cycle(self, event: simpy.Event | None) -> None:
        """Once no other event of this cycle is left (until then wait behind them): put the
        cycle's spikes in queue order, and when that has settled, make the grants."""
        if event is not None and self.env.peek() > self.env.now:
            if self.pending:
                self._flush()  # its consequences (admissions, candidates) come first
            else:
                self.hook_armed = False
                decisions, self.decisions = self.decisions, []
                for ev in decisions:
                    ev.succeed()
                return
        later = self.env.event()
        later.callbacks.append(self._end_of_cycle)
        later.succeed()

    def _flush(self) -> None:
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
                        d = int(fo.dest_tiles[j])
                        pkt = _Packet(env, t, self.phase(t, li), g, local, n, j, d, r,
                                      int(fo.service[c, j]), self.route(g, d))
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
            yield from self._enter(s * mesh.PORTS + mesh.INJECT, pkt)  # injection buffer credit
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
                env.process(self.travel(pkt))

    # -- the mesh (accelsim.chip.mesh) -------------------------------------------------------

    def _enter(self, b: int, pkt: _Packet):
        """Take a credit of buffer ``b`` (wait for a free slot); the packet queues behind the
        last one that entered."""
        yield self.buffer[b].put(None)
        pkt.ahead[b], self.last_in[b] = self.last_in[b], pkt

    def channel(self, c: int):
        """Grant channel ``c``: phase by phase (timestep, sending layer in network order), each
        time it is free and the buffer it feeds has a credit, to the oldest candidate of the
        phase present at the end of that cycle."""
        eject = c % mesh.PORTS == mesh.EJECT
        waiting = self.candidates[c]
        previous = None
        for phase in sorted(self.count[c]):
            for _ in range(self.count[c][phase]):
                if previous is not None:
                    yield previous.released[c]
                if not eject:
                    yield self.buffer[c].put(None)  # a credit of the buffer c feeds
                while not any(p.phase == phase for p in waiting):
                    yield self.candidate_came[c]
                yield self.decision()
                pkt = min((p for p in waiting if p.phase == phase),
                          key=lambda p: (p.ready, p.src, p.neuron, p.col))
                waiting.remove(pkt)
                if not eject:
                    pkt.ahead[c], self.last_in[c] = self.last_in[c], pkt
                pkt.turn[c].succeed()
                previous = pkt

    def travel(self, pkt: _Packet):
        """From the injection buffer, hop by hop, through the ejection channel: at each router
        a candidate for its next channel once its head is there and the packet ahead has
        gone."""
        env, F = self.env, self.plan.packet_cycles
        held = pkt.src * mesh.PORTS + mesh.INJECT
        for c, lat in pkt.route:
            ahead = pkt.ahead[held]
            if ahead is not None:
                yield ahead.left[held]  # FIFO: at the head of its buffer
            self.candidates[c].append(pkt)
            came, self.candidate_came[c] = self.candidate_came[c], env.event()
            came.succeed()
            yield pkt.turn[c]
            eject = c % mesh.PORTS == mesh.EJECT
            env.process(self._tail(pkt, held, c))
            if eject:
                yield env.timeout(F)
                break
            if lat:
                yield env.timeout(lat)
            held = c
        pkt.arrival = env.now
        self.tl.packets_in[pkt.t, pkt.dest] += 1
        pkt.arrived.succeed()

    def _tail(self, pkt: _Packet, held: int, c: int):
        """The tail crosses channel ``c`` and leaves buffer ``held``, freeing both."""
        yield self.env.timeout(self.plan.packet_cycles)
        yield self.buffer[held].get()
        pkt.left[held].succeed()
        pkt.released[c].succeed()

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
        for c in self.count:
            env.process(self.channel(c))
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
