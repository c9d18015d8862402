"""Fast mode: SimPy orchestrates phases, numba kernels do the work inside them.

One ``simpy.Environment`` per image. Each layer's tile group is one SimPy process that steps
through the :class:`~accelsim.chip.timeline.Phase` of every timestep (a group, not a tile,
because a layer's packets leave in one order across its tiles: (ready cycle, source tile,
neuron), so the recurrence couples its tiles). The SimPy events are phases, not spikes:

- ``accepting[layer][t]``: the group passed BARRIER and MAC of t (its integration state is
  reset to its fire end of t-1); senders of t wait for it in every consumer;
- ``sent[layer][t]``: the group's SEND of t ended; its value is the per-tile end-of-timestep
  cycle, from which a consumer computes when the signals reach each of its tiles (XY hop
  latency) and waits for the last one before it FIREs;
- ``transferred[layer][t]``: the group's packets of t are timed; a sender later in network
  order that shares a consumer waits for it, so a consumer's state sees its senders in order;
- ``barrier[t]``: released by a barrier process ``barrier_cycles`` after the last group's SEND
  of t-1 (``barrier`` schedule only; ``pipelined`` has no barrier process).

The DRAM channel is a ``simpy.Resource`` with one time-division slot per spilling tile; a group
acquires its spilling tiles' slots before its first MAC and holds them to its last SEND (under
time division a slot is owned, never contended; the service cycles of :mod:`accelsim.chip.plan`
charge its bandwidth share). Output ports are private to a tile and serialised inside the
kernel.

Inside a phase, numpy and :func:`transfer_kernel` compute every tile's and every packet's exact
cycles from the phase's inputs (arrival schedule in, per-packet admission, arrival, start and
finish out), applying the recurrences of :mod:`accelsim.chip`. A phase runs once all the events
it depends on have fired, so the SimPy time of a phase event is the cycle at which the whole
group completed it, or later when the group had to wait for information (a consumer's fire end
of t-1 before its packets of t can be timed); the per-tile cycles it carries are exact.
"""

from __future__ import annotations

import numpy as np
import simpy
from numba import njit

from accelsim.chip.plan import Plan
from accelsim.chip.timeline import Phase, Timeline


@njit(cache=True)
def transfer_kernel(order_n, order_src, ready, src_tiles, dest_tiles, synops, sram_bits,
                    dram_bits, service, hop_cycles, hops_x, hops_y, packet_cycles, depth,
                    port_free, last_admit, open_, eject_free, finish, ring, ring_n, stall, busy,
                    queue_peak, packets_out, packets_in, hx, hy, synops_in, sram_in, dram_in,
                    last_inject_end, record, events):
    """Push one layer's spikes of one timestep through the NoC into the destination tiles.

    Per-tile state (``port_free`` … ``ring_n``) is updated in place; per-tile counters of this
    timestep (``stall`` … ``dram_in``) are accumulated, traffic on the source tile, integration
    on the destination. With ``record``, ``events`` (packets, 6) receives per packet (neuron,
    destination column, admission, arrival, start, finish). Returns the packets sent.
    """
    m = 0
    for i in range(order_n.shape[0]):
        n = order_n[i]
        sl = order_src[i]
        s = src_tiles[sl]
        r = ready[i]
        for j in range(dest_tiles.shape[0]):
            syn = synops[n, j]
            if syn == 0:
                continue
            d = dest_tiles[j]
            free_at = max(r, port_free[s])
            inj = max(free_at, max(last_admit[d], open_[d]))
            k = ring_n[d]
            slot = k % depth  # ring slot of packet k, which held packet k - depth
            if k >= depth:
                inj = max(inj, ring[d, slot])
            # queue occupancy at admission: earlier packets not yet started. Starts are
            # non-decreasing in queue order, so binary-search (over q = packets back from k)
            # the oldest of the last depth - 1 packets that starts after ``inj``.
            lo = 1
            hi = min(k, depth - 1) + 1
            while lo < hi:
                mid = (lo + hi) >> 1
                q = slot - mid
                if q < 0:
                    q += depth
                if ring[d, q] > inj:
                    lo = mid + 1
                else:
                    hi = mid
            occupancy = lo
            if occupancy > queue_peak[d]:
                queue_peak[d] = occupancy
            stall[s] += inj - free_at
            port_free[s] = inj + packet_cycles
            last_inject_end[s] = inj + packet_cycles
            last_admit[d] = inj
            ej = max(inj + hop_cycles[sl, j], eject_free[d])
            eject_free[d] = ej + packet_cycles
            arrival = ej + packet_cycles
            start = max(arrival, finish[d])
            ring[d, slot] = start
            ring_n[d] = k + 1
            fin = start + service[n, j]
            finish[d] = fin
            busy[d] += service[n, j]
            packets_out[s] += 1
            packets_in[d] += 1
            hx[s] += hops_x[sl, j]
            hy[s] += hops_y[sl, j]
            synops_in[d] += syn
            sram_in[d] += sram_bits[n, j]
            dram_in[d] += dram_bits[n, j]
            if record:
                events[m, 0] = n
                events[m, 1] = j
                events[m, 2] = inj
                events[m, 3] = arrival
                events[m, 4] = start
                events[m, 5] = fin
            m += 1
    return m


@njit(cache=True)
def ready_kernel(indices, first, fire_start, units, latency):
    """(neurons, local source tiles, ready cycles) of one layer's spikes, sorted by (ready,
    source tile, neuron). ``first`` (ascending) and ``fire_start`` are per tile of the layer;
    local tile ids grow with the neuron index, so (ready, neuron) is the same order."""
    count = indices.shape[0]
    n = np.empty(count, dtype=np.int64)
    local = np.empty(count, dtype=np.int64)
    ready = np.empty(count, dtype=np.int64)
    span = 1
    for i in range(count):
        v = np.int64(indices[i])
        lt = np.searchsorted(first, v, side="right") - 1
        n[i] = v
        local[i] = lt
        ready[i] = fire_start[lt] + ((v - first[lt]) // units + 1) * latency
        span = max(span, v + 1)
    order = np.argsort(ready * span + n)
    return n[order], local[order], ready[order]


def spike_ready(plan: Plan, layer: int, indices: np.ndarray, fire_start: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neurons, local source tiles, ready cycles) of one layer's spikes, in the model's order;
    ``fire_start`` is per tile of the chip."""
    tiles = plan.layer_tiles[layer]
    cfg = plan.hardware.tile
    return ready_kernel(np.asarray(indices), plan.tile_first_neuron[tiles], fire_start[tiles],
                        cfg.neuron_update_units, cfg.neuron_update_latency_cycles)


def _all(env: simpy.Environment, events: list):
    """Wait for every event; no SimPy step when all have already been triggered."""
    if not all(ev.triggered for ev in events):
        yield simpy.AllOf(env, events)


def _until(env: simpy.Environment, cycle: int):
    """Advance to ``cycle`` unless the process is already there (or later)."""
    if cycle > env.now:
        yield env.timeout(cycle - env.now)


def check_sender_order(plan: Plan) -> None:
    """Raise unless every layer's spiking sources each depend on the previous one.

    The fast mode times a consumer's senders one after another in network order; that is the
    model's queue order when a later sender fires only after the earlier one's end-of-timestep
    signal (so all its spikes are ready later), as in every VGG and ResNet. Senders in parallel
    branches would interleave, which only the reference mode orders.
    """
    layers = plan.network.layers
    upstream: list[set[int]] = []
    for li in range(len(layers)):
        up = set(plan.sources[li])
        for s in plan.sources[li]:
            up |= upstream[s]
        upstream.append(up)
        ordered = sorted(plan.sources[li])
        for a, b in zip(ordered, ordered[1:], strict=False):
            if a not in upstream[b]:
                raise ValueError(
                    f"layer {layers[li].name!r} sums the spikes of {layers[a].name!r} and "
                    f"{layers[b].name!r}, and {layers[b].name!r} does not depend on "
                    f"{layers[a].name!r}: the fast mode cannot interleave parallel senders in "
                    "queue order; simulate this network with mode='reference'")


class _FastChip:
    """One image on one chip: a SimPy process per layer group, phases as events."""

    def __init__(self, plan: Plan, trains: dict, timesteps: int, schedule: str,
                 record_packets: bool):
        check_sender_order(plan)
        self.plan, self.trains, self.T, self.schedule = plan, trains, timesteps, schedule
        n = plan.tiles
        self.tl = tl = Timeline.empty(n, timesteps)
        tl.record_packets = record_packets
        self.env = env = simpy.Environment()
        self.depth = plan.hardware.tile.queue_depth_packets
        self.port_free = np.zeros(n, dtype=np.int64)
        self.last_admit = np.zeros(n, dtype=np.int64)
        self.open_ = np.zeros(n, dtype=np.int64)
        self.eject_free = np.zeros(n, dtype=np.int64)
        self.finish = np.zeros(n, dtype=np.int64)
        self.ring = np.zeros((n, self.depth), dtype=np.int64)
        self.ring_n = np.zeros(n, dtype=np.int64)
        self.fire_end = np.zeros(n, dtype=np.int64)
        self.last_inject_end = np.zeros(n, dtype=np.int64)
        self.t_start = np.zeros(timesteps, dtype=np.int64)
        layers = plan.network.layers
        L = len(layers)
        self.accepting = [[env.event() for _ in range(timesteps)] for _ in range(L)]
        self.sent = [[env.event() for _ in range(timesteps)] for _ in range(L)]
        self.transferred = [[env.event() for _ in range(timesteps)] for _ in range(L)]
        self.barrier = [env.event() for _ in range(timesteps)]
        self.dram = simpy.Resource(env, capacity=max(1, plan.spilling_tiles))
        self.spilling = [int((p.spilled_bits > 0).sum()) for p in plan.mapping.layers]
        # senders earlier in network order that share a consumer: their packets of t go first
        self.co_sources = [sorted({s for c in plan.consumers[li] for s in plan.sources[c]
                                   if s < li}) for li in range(L)]

    def group(self, li: int):
        env, plan, tl, T = self.env, self.plan, self.tl, self.T
        layer = plan.network.layers[li]
        tiles = plan.layer_tiles[li]
        if len(tiles) == 0 or (np.diff(tiles) != 1).any():
            raise ValueError(f"layer {layer.name!r} is mapped to tiles {tiles.tolist()}; the "
                             "fast mode needs one or more consecutive tiles per layer, as "
                             "accelsim.mapping places them")
        g = slice(int(tiles[0]), int(tiles[-1]) + 1)  # views of the group's per-tile state
        fo = plan.fanout[li]
        sends = fo is not None and layer.kind == "spiking"
        train = self.trains[layer.name] if sends else None
        cfg = plan.hardware.tile
        first = plan.tile_first_neuron[g]
        fire_cycles = plan.fire_cycles[g]
        mac = plan.mac_cycles[g]
        has_mac = bool(mac.any())
        sources = plan.sources[li]
        done_lat = (plan.done_cycles[np.concatenate([plan.layer_tiles[s] for s in sources])][
            :, g] if sources else None)
        waits = [self.accepting[c] for c in plan.consumers[li]] + [
            self.transferred[s] for s in self.co_sources[li]]
        finish, fire_end = self.finish[g], self.fire_end[g]
        phase_end = tl.phase_end[:, g]
        barrier = self.schedule == "barrier"
        # time division: each spilling tile owns a slot of the DRAM channel for the whole image
        slots = [self.dram.request() for _ in range(self.spilling[li])]
        for t in range(T):
            # BARRIER
            if barrier and t > 0:
                yield self.barrier[t]
            np.maximum(fire_end, self.t_start[t], out=finish)
            phase_end[t, :, Phase.BARRIER] = finish
            if t == 0 and slots:
                yield from _all(env, slots)
            # MAC
            if t == 0 and has_mac:
                tl.busy[t, g] += mac
                finish += mac
                yield from _until(env, int(finish.max()))
            phase_end[t, :, Phase.MAC] = finish
            self.accepting[li][t].succeed()
            # INTEGRATE: the senders' SEND phases time this group's packets of t; wait for
            # every source's end-of-timestep signal
            if sources:
                yield from _all(env, [self.sent[s][t] for s in sources])
                send_done = (self.sent[sources[0]][t].value if len(sources) == 1 else
                             np.concatenate([self.sent[s][t].value for s in sources]))
                signals = (send_done[:, None] + done_lat).max(axis=0)
                yield from _until(env, int(signals.max()))
            else:
                signals = 0
            tl.inputs_done[t, g] = signals
            self.open_[g] = signals
            np.maximum(finish, signals, out=tl.fire_start[t, g])
            phase_end[t, :, Phase.INTEGRATE] = tl.fire_start[t, g]
            # FIRE
            np.add(tl.fire_start[t, g], fire_cycles, out=fire_end)
            tl.busy[t, g] += fire_cycles
            tl.fire_end[t, g] = phase_end[t, :, Phase.FIRE] = fire_end
            # SEND
            if sends:
                yield from _all(env, [w[t] for w in waits])
                send_done = np.maximum(fire_end, self._transfer(li, t, train.at(t), first,
                                                                cfg, g))
            else:
                send_done = fire_end.copy()
            self.transferred[li][t].succeed()
            end = np.maximum(send_done, finish)
            tl.end[t, g] = phase_end[t, :, Phase.SEND] = end
            yield from _until(env, int(end.max()))
            self.sent[li][t].succeed(send_done)
        for slot in slots:
            self.dram.release(slot)

    def _transfer(self, li: int, t: int, spikes: np.ndarray, first: np.ndarray, cfg, g
                  ) -> np.ndarray:
        """The SEND phase's work: time every packet of layer ``li``'s spikes of timestep t;
        returns when each of the layer's tiles injected its last packet."""
        plan, tl, fo = self.plan, self.tl, self.plan.fanout[li]
        tiles = plan.layer_tiles[li]
        n, local, ready = ready_kernel(spikes, first, tl.fire_start[t, g],
                                       cfg.neuron_update_units,
                                       cfg.neuron_update_latency_cycles)
        record = tl.record_packets
        events = np.empty((len(n) * len(fo.dest_tiles) if record else 0, 6), dtype=np.int64)
        last_inject_end = self.last_inject_end
        last_inject_end[tiles] = 0
        m = transfer_kernel(n, local, ready, tiles, fo.dest_tiles, fo.synops, fo.sram_bits,
                            fo.dram_bits, fo.service, fo.hop_cycles, fo.hops_x, fo.hops_y,
                            plan.packet_cycles, self.depth, self.port_free, self.last_admit,
                            self.open_, self.eject_free, self.finish, self.ring, self.ring_n,
                            tl.stall[t], tl.busy[t], tl.queue_peak[t], tl.packets_out[t],
                            tl.packets_in[t], tl.hops_x[t], tl.hops_y[t], tl.synops_in[t],
                            tl.sram_bits[t], tl.dram_bits[t], last_inject_end, record, events)
        if record:
            tl.add_packets(li, t, n, ready, events[:m], plan)
        return last_inject_end[g]

    def barrier_keeper(self):
        cycles = self.plan.hardware.schedule.barrier_cycles
        groups = range(len(self.plan.network.layers))
        for t in range(self.T - 1):
            yield from _all(self.env, [self.sent[li][t] for li in groups])
            self.t_start[t + 1] = int(self.tl.end[t].max()) + cycles
            yield from _until(self.env, int(self.t_start[t + 1]))
            self.barrier[t + 1].succeed()

    def run(self) -> Timeline:
        for li in range(len(self.plan.network.layers)):
            self.env.process(self.group(li))
        if self.schedule == "barrier":
            self.env.process(self.barrier_keeper())
        self.env.run()
        unfinished = [li for li, ev in enumerate(self.sent) if not ev[-1].triggered]
        if unfinished:
            raise RuntimeError(f"layer groups {unfinished} never finished (deadlock)")
        return self.tl


def run_image(plan: Plan, trains: dict, timesteps: int, schedule: str,
              record_packets: bool = False) -> Timeline:
    """Simulate one image whose spikes are ``trains`` (layer name -> SpikeTrain)."""
    return _FastChip(plan, trains, timesteps, schedule, record_packets).run()
