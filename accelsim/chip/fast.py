"""Fast mode: SimPy orchestrates phases, numba kernels do the work inside them.

One ``simpy.Environment`` per batch of up to :data:`BATCH` images, each image on its own copy of
the chip: the copies step through the same phases, so one SimPy event stands for a phase of
every image and its Python cost is shared, while the numba kernels work through the images in
parallel. No value depends on the batch (a test runs images alone and in batches).

Each layer's tile group is one SimPy process that steps through the
:class:`~accelsim.chip.timeline.Phase` of every timestep (a group, not a tile, because a
layer's packets leave in one order across its tiles: (ready cycle, source tile, neuron), so the
recurrence couples its tiles). The SimPy events are phases, not spikes:

- ``accepting[layer][t]``: the group passed BARRIER and MAC of t (its integration state is
  reset to its fire end of t-1); senders of t wait for it in every consumer;
- ``sent[layer][t]``: the group's SEND of t ended; its value is the per-tile end-of-timestep
  cycle, from which a consumer computes when the signals reach each of its tiles (XY hop
  latency) and waits for the last one before it FIREs;
- ``transferred[layer][t]``: the group's packets of t are timed; the next sending layer in
  network order waits for it (the first sending layer of t+1 for the last one of t), so the
  mesh and every consumer see the packets in queue order;
- ``barrier[t]``: released by a barrier process ``barrier_cycles`` after the last group's SEND
  of t-1 (``barrier`` schedule only; ``pipelined`` has no barrier process).

The DRAM channel is a ``simpy.Resource`` with one time-division slot per spilling tile; a group
acquires its spilling tiles' slots before its first MAC and holds them to its last SEND (under
time division a slot is owned, never contended; the service cycles of :mod:`accelsim.chip.plan`
charge its bandwidth share). Output ports are private to a tile and serialised inside the
kernel; the mesh's channels and buffers (:mod:`accelsim.chip.mesh`) are per-image state that
each phase's kernel carries forward.

Inside a phase, numpy and :func:`transfer_kernel` compute every tile's and every packet's exact
cycles from the phase's inputs (arrival schedule in, per-packet admission, arrival, start and
finish out), applying the recurrences of :mod:`accelsim.chip`. A phase runs once all the events
it depends on have fired, so the SimPy time of a phase event is the cycle at which the whole
group completed it on every image of the batch, or later when the group had to wait for
information (a consumer's fire end of t-1 before its packets of t can be timed); the per-image,
per-tile cycles it carries are exact.
"""

from __future__ import annotations

import numpy as np
import simpy
from numba import njit, prange

from accelsim.chip import mesh
from accelsim.chip.plan import Plan, check_sender_chain, senders
from accelsim.chip.timeline import Phase, Timeline


@njit(cache=True, _nrt=False, inline="always")
def _known(w, at, bound, waits, ready_stack, top):
    """One of the packets ``w`` waits for is known, and ``w`` is admitted no earlier than
    ``at``; once it waits for nothing more it goes on the stack (``w == -1``: no waiter).
    Returns the stack's new top."""
    if w == -1:
        return top
    bound[w] = max(bound[w], at)
    waits[w] -= 1
    if waits[w] == 0:
        ready_stack[top] = w
        top += 1
    return top


@njit(cache=True)
def transfer_kernel(order_n, order_src, ready, src_tiles, dest_tiles, neuron_class,
                    reach_start, reach_cols, synops, sram_bits, dram_bits, service,
                    hops_x, hops_y, packet_cycles, depth, port_free, last_admit, open_,
                    finish, ring, ring_n, head, router, mesh_cols, hop_x, hop_y,
                    buffer_depth, links,
                    stall, busy, queue_peak, packets_out, packets_in, hx, hy, synops_in, sram_in,
                    dram_in, record, events):
    """Push one layer's spikes of one timestep through the NoC into the destination tiles.

    Per-tile state (``port_free`` … ``head``) and the mesh's link state (``links``, see
    :mod:`accelsim.chip.mesh`) are updated in place; every packet of earlier phases (earlier
    timesteps, earlier layers of this timestep) must already have been pushed. Per-tile
    counters of this timestep (``stall`` … ``dram_in``) are accumulated, traffic on the source
    tile, integration on the destination. With ``record``, ``events`` (packets, 6) receives per
    packet (neuron, destination column, admission, arrival, start, finish). Returns the packets
    sent.

    The phase is a discrete-event simulation: a packet's admission is known once the packets it
    waits for are (the one before it at its port and at its destination, the one whose start
    frees its destination queue slot, the one whose departure frees its injection slot: all
    earlier in queue order), and the mesh (:func:`accelsim.chip.mesh.advance`) reports the
    departures and arrivals, in cycle order, from which destinations serve their packets in
    queue order. The counters, which depend only on which (neuron class, source tile) sent,
    are summed from a histogram afterwards.
    """
    n_src, width = src_tiles.shape[0], dest_tiles.shape[0]
    P = 0
    for i in range(order_n.shape[0]):
        c = neuron_class[order_n[i]]
        P += reach_start[c + 1] - reach_start[c]
    return _transfer(
        order_n, order_src, ready, src_tiles, dest_tiles, neuron_class, reach_start,
        reach_cols, synops, sram_bits, dram_bits, service, hops_x, hops_y, packet_cycles, depth,
        port_free, last_admit, open_, finish, ring, ring_n, head, router, mesh_cols, hop_x,
        hop_y, buffer_depth, links, stall, busy, queue_peak, packets_out, packets_in, hx, hy,
        synops_in, sram_in, dram_in, record, events,
        np.empty((_PER_PACKET, P), dtype=np.int64),
        np.empty((_PER_TILE, max(n_src, width) + 1), dtype=np.int64),
        np.zeros((synops.shape[0], n_src), dtype=np.int64),
        mesh.packets(P), mesh.calendar(links))


_PER_PACKET, _PER_TILE = 15, 8  # rows of _transfer's scratch: per packet, per port or destination


@njit(cache=True, _nrt=False)
def _transfer(order_n, order_src, ready, src_tiles, dest_tiles, neuron_class, reach_start,
              reach_cols, synops, sram_bits, dram_bits, service, hops_x, hops_y, packet_cycles,
              depth, port_free, last_admit, open_, finish, ring, ring_n, head, router,
              mesh_cols, hop_x, hop_y, buffer_depth, links, stall, busy, queue_peak,
              packets_out, packets_in, hx, hy, synops_in, sram_in, dram_in, record, events,
              per_packet, per_tile, sent, pk, checks):
    """:func:`transfer_kernel`'s work, on scratch it allocated: without the runtime's
    reference counting, which would otherwise cost atomic operations on every array in every
    step of the packet loops."""
    F = packet_cycles
    mask = ring.shape[1] - 1  # the ring holds the starts of d's last packets, a power of two
    n_src, width = src_tiles.shape[0], dest_tiles.shape[0]
    P = per_packet.shape[1]
    (spike, col, bound, free_at, waits, next_src, next_dest, frees_slot, frees_inj, by_src,
     by_dest, inj, arrival, start, ready_stack) = (
        per_packet[0], per_packet[1], per_packet[2], per_packet[3], per_packet[4],
        per_packet[5], per_packet[6], per_packet[7], per_packet[8], per_packet[9],
        per_packet[10], per_packet[11], per_packet[12], per_packet[13], per_packet[14])
    src_rank, last_src, src_at = per_tile[0, :n_src], per_tile[1, :n_src], per_tile[2, :n_src + 1]
    dest_rank, last_dest, first_dest, serve = (per_tile[3, :width], per_tile[4, :width],
                                               per_tile[5, :width], per_tile[6, :width])
    dest_at = per_tile[7, :width + 1]
    src_rank[:] = 0
    last_src[:] = -1
    src_at[:] = 0
    dest_rank[:] = 0
    last_dest[:] = -1
    first_dest[:] = -1
    dest_at[:] = 0
    # the phase's packets in queue order: spike i, then its destination columns in order
    m = 0
    for i in range(order_n.shape[0]):
        c = neuron_class[order_n[i]]
        for q in range(reach_start[c], reach_start[c + 1]):
            spike[m] = i
            col[m] = reach_cols[q]
            m += 1
    # what each packet waits for: lower bound of its admission, and how many earlier packets
    # of this phase it still waits for; each of those names it as its waiter
    # free_at: ready and port free (stalls are counted from it); next_src / next_dest: the
    # next packet at the same port / to the same destination; frees_slot / frees_inj: the
    # packet whose destination queue slot / injection slot this one's start / departure frees;
    # by_src / by_dest: packets grouped by port / destination, in order (for the slots)
    waits[:] = 0
    next_src[:] = -1
    next_dest[:] = -1
    frees_slot[:] = -1
    frees_inj[:] = -1
    for m in range(P):
        src_at[order_src[spike[m]] + 1] += 1
        dest_at[col[m] + 1] += 1
    for k in range(n_src):
        src_at[k + 1] += src_at[k]
    for k in range(width):
        dest_at[k + 1] += dest_at[k]
    for m in range(P):
        sl, j = order_src[spike[m]], col[m]
        s, d = src_tiles[sl], dest_tiles[j]
        r = ready[spike[m]]
        lo = max(r, open_[d])
        rs, rd = src_rank[sl], dest_rank[j]
        by_src[src_at[sl] + rs] = m
        by_dest[dest_at[j] + rd] = m
        src_rank[sl] = rs + 1
        dest_rank[j] = rd + 1
        if last_src[sl] == -1:
            free_at[m] = max(r, port_free[s])
            lo = max(lo, free_at[m])
        else:
            next_src[last_src[sl]] = m
            waits[m] += 1
        last_src[sl] = m
        if last_dest[j] == -1:
            lo = max(lo, last_admit[d])
            first_dest[j] = m
        else:
            next_dest[last_dest[j]] = m
            waits[m] += 1
        last_dest[j] = m
        # the destination's queue slot: packet k - depth has started
        e = ring_n[d] + rd - depth
        if e >= ring_n[d]:
            frees_slot[by_dest[dest_at[j] + rd - depth]] = m
            waits[m] += 1
        elif e >= 0:
            lo = max(lo, ring[d, e & mask])
        # the injection buffer's slot: packet place - buffer_depth has left it
        place = links[router[s] * mesh.PORTS + mesh.INJECT, mesh.COUNT] + rs
        slot = mesh.injection_slot(links, router[s], place, buffer_depth)
        if slot == -1:
            frees_inj[by_src[src_at[sl] + rs - buffer_depth]] = m
            waits[m] += 1
        else:
            lo = max(lo, slot)
        bound[m] = lo
    # the event simulation
    inj[:] = -1
    arrival[:] = -1
    start[:] = -1
    for j in range(width):  # per destination, the next packet it serves
        serve[j] = first_dest[j]
    # ready_stack: packets whose admission is known
    top = 0
    for m in range(P):
        if waits[m] == 0:
            ready_stack[top] = m
            top += 1
    while True:
        while top > 0:  # admit every packet that waits for nothing more
            top -= 1
            m = ready_stack[top]
            x = bound[m]
            inj[m] = x
            mesh.inject(links, checks, pk, m, router[src_tiles[order_src[spike[m]]]],
                        router[dest_tiles[col[m]]], x, mesh_cols, hop_x, hop_y)
            w = next_src[m]  # the port is free for the next packet one packet time later
            if w != -1:
                free_at[w] = max(ready[spike[w]], x + F)
                top = _known(w, free_at[w], bound, waits, ready_stack, top)
            # the destination admits the next packet after this one
            top = _known(next_dest[m], x, bound, waits, ready_stack, top)
        i, what, now = mesh.advance(links, checks, pk, F, buffer_depth, mesh_cols, hop_x, hop_y)
        if i == -1:
            break
        if what & mesh.LEFT_INJECTION:
            top = _known(frees_inj[i], now + F, bound, waits, ready_stack, top)
        if what & mesh.EJECTED:
            arrival[i] = now + F
            j = col[i]
            d = dest_tiles[j]
            k = serve[j]
            while k != -1 and arrival[k] != -1:  # serve in queue order what has arrived
                st = max(arrival[k], finish[d])
                start[k] = st
                finish[d] = st + service[neuron_class[order_n[spike[k]]], j]
                top = _known(frees_slot[k], st, bound, waits, ready_stack, top)
                k = next_dest[k]
            serve[j] = k
    for m in range(P):
        if start[m] == -1:
            raise RuntimeError("packets never arrived (deadlock)")
    # per destination in queue order: occupancy at admission, the ring of starts; per port
    # the stalls
    for m in range(P):
        sl, j = order_src[spike[m]], col[m]
        s, d = src_tiles[sl], dest_tiles[j]
        x = inj[m]
        stall[s] += x - free_at[m]
        port_free[s] = x + F
        k = ring_n[d]
        h = head[d]  # packets of d's queue known to have started by its last admission
        if k >= depth:
            h = max(h, k - depth + 1)  # credit: packet k - depth started
        # starts are non-decreasing in queue order and admissions at d too, so the started
        # packets are a prefix that only grows
        while h < k and ring[d, h & mask] <= x:
            h += 1
        head[d] = h
        occupancy = k - h + 1
        if occupancy > queue_peak[d]:
            queue_peak[d] = occupancy
        last_admit[d] = x
        ring[d, k & mask] = start[m]
        ring_n[d] = k + 1
        if record:
            events[m, 0] = order_n[spike[m]]
            events[m, 1] = j
            events[m, 2] = x
            events[m, 3] = arrival[m]
            events[m, 4] = start[m]
            events[m, 5] = start[m] + service[neuron_class[order_n[spike[m]]], j]
    for i in range(order_n.shape[0]):
        sent[neuron_class[order_n[i]], order_src[i]] += 1
    for c in range(sent.shape[0]):
        for sl in range(sent.shape[1]):
            count = sent[c, sl]
            if count == 0:
                continue
            s = src_tiles[sl]
            for j in range(width):
                syn = synops[c, j]
                if syn == 0:
                    continue
                d = dest_tiles[j]
                packets_out[s] += count
                packets_in[d] += count
                hx[s] += count * hops_x[sl, j]
                hy[s] += count * hops_y[sl, j]
                synops_in[d] += count * syn
                sram_in[d] += count * sram_bits[c, j]
                dram_in[d] += count * dram_bits[c, j]
                busy[d] += count * service[c, j]
    return P


@njit(cache=True)
def _counting_order(keys, order, lo, size):
    """``order`` stably re-sorted by ``keys[order]`` (integers in lo..lo+size-1)."""
    slots = np.zeros(size + 1, dtype=np.int64)
    for i in range(order.shape[0]):
        slots[keys[order[i]] - lo + 1] += 1
    for k in range(1, size + 1):
        slots[k] += slots[k - 1]
    out = np.empty_like(order)
    for i in range(order.shape[0]):
        k = keys[order[i]] - lo
        out[slots[k]] = order[i]
        slots[k] += 1
    return out


@njit(cache=True)
def ready_kernel(indices, tile_of, local_of, tiles, fire_start, units, latency):
    """(neurons, local source tiles, ready cycles) of one layer's spikes, sorted by (ready,
    source tile, neuron). ``tile_of`` / ``local_of`` give every neuron's local tile (of
    ``tiles``) and its place in that tile's update order; ``fire_start`` is per local tile.

    Spike trains list neurons in ascending order, so two stable counting sorts (by tile, then by
    ready cycle) give that order in linear time; a train out of order is sorted first, and
    ready cycles spread much wider than the spikes are many are ordered by a stable sort.
    """
    count = indices.shape[0]
    n = np.empty(count, dtype=np.int64)
    local = np.empty(count, dtype=np.int64)
    ready = np.empty(count, dtype=np.int64)
    ascending = True
    for i in range(count):
        v = np.int64(indices[i])
        if i > 0 and v <= n[i - 1]:
            ascending = False
        n[i] = v
    if not ascending:
        n = np.sort(n)
    for i in range(count):
        lt = tile_of[n[i]]
        local[i] = lt
        ready[i] = fire_start[lt] + (local_of[n[i]] // units + 1) * latency
    if count == 0:
        return n, local, ready
    order = _counting_order(local, np.arange(count), 0, tiles)
    earliest = ready.min()
    spread = ready.max() - earliest + 1
    if spread <= 4 * count + 4096:
        order = _counting_order(ready, order, earliest, spread)
    else:
        order = order[np.argsort(ready[order], kind="mergesort")]
    return n[order], local[order], ready[order]


@njit(cache=True, parallel=True)
def send_kernel(t, indices, offsets, tile_of, local_of, fire_start, units, latency, src_tiles,
                dest_tiles, neuron_class, reach_start, reach_cols, synops, sram_bits, dram_bits,
                service, hops_x, hops_y, packet_cycles, depth, port_free, last_admit, open_,
                finish, ring, ring_n, head, router, mesh_cols, hop_x, hop_y, buffer_depth,
                links, stall, busy, queue_peak, packets_out, packets_in,
                hx, hy, synops_in, sram_in, dram_in, record, record_at, neurons, ready_out, events,
                sent):
    """One layer's SEND phase of timestep ``t`` on every image of a batch, images in parallel.

    Image b's spikes of t are ``indices[offsets[b, t]:offsets[b, t + 1]]``; the per-tile state
    and counters have a leading image axis (counters: image, timestep, tile). With ``record``,
    ``neurons`` / ``ready_out`` from ``record_at[b]`` receive image b's spikes in the model's
    order and ``events`` from ``record_at[b] * destinations`` their packets; ``sent[b]`` gets
    the packet count.
    """
    width = dest_tiles.shape[0]
    for b in prange(offsets.shape[0]):
        lo = offsets[b, t]
        hi = offsets[b, t + 1]
        n, local, ready = ready_kernel(indices[lo:hi], tile_of, local_of, src_tiles.shape[0],
                                       fire_start[b], units, latency)
        at = record_at[b]
        if record:
            neurons[at:at + hi - lo] = n
            ready_out[at:at + hi - lo] = ready
        sent[b] = transfer_kernel(
            n, local, ready, src_tiles, dest_tiles, neuron_class, reach_start, reach_cols,
            synops, sram_bits, dram_bits,
            service, hops_x, hops_y, packet_cycles, depth, port_free[b],
            last_admit[b], open_[b], finish[b], ring[b], ring_n[b], head[b], router, mesh_cols,
            hop_x, hop_y, buffer_depth, links[b],
            stall[b, t], busy[b, t],
            queue_peak[b, t], packets_out[b, t], packets_in[b, t], hx[b, t], hy[b, t],
            synops_in[b, t], sram_in[b, t], dram_in[b, t], record,
            events[at * width:(at + hi - lo) * width])


def _all(env: simpy.Environment, events: list):
    """Wait for every event; no SimPy step when all have already been triggered."""
    if not all(ev.triggered for ev in events):
        yield simpy.AllOf(env, events)


def _until(env: simpy.Environment, cycle: int):
    """Advance to ``cycle`` unless the process is already there (or later)."""
    if cycle > env.now:
        yield env.timeout(cycle - env.now)


class _FastChip:
    """A batch of images, each on its own copy of the chip: a SimPy process per layer group,
    phases as events, every phase computed for all images at once."""

    def __init__(self, plan: Plan, trains: list[dict], timesteps: int, schedule: str,
                 record_packets: bool):
        check_sender_chain(plan)
        self.plan, self.T, self.schedule = plan, timesteps, schedule
        n, B = plan.tiles, len(trains)
        self.tl = tl = Timeline.empty(n, timesteps, images=B)
        tl.record_packets = record_packets
        self.images = [tl.image(b) for b in range(B)]
        self.env = env = simpy.Environment()
        self.depth = plan.hardware.tile.queue_depth_packets
        state = np.zeros((7, B, n), dtype=np.int64)
        (self.port_free, self.last_admit, self.open_, self.finish, self.fire_end, self.ring_n,
         self.head) = state
        hw = plan.hardware
        self.links = mesh.state(
            B, hw.mesh.rows, hw.mesh.cols, hw.noc.router_buffer_packets)
        # start cycles of each tile's last packets, at least ``depth`` of them (a power of two,
        # so that the ring index is a mask)
        self.ring = np.zeros((B, n, 1 << (self.depth - 1).bit_length()), dtype=np.int64)
        self.t_start = np.zeros((B, timesteps), dtype=np.int64)
        layers = plan.network.layers
        # each spiking layer's spikes of the batch, one index array with (image, t) offsets
        self.spikes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for layer, fanout in zip(layers, plan.fanout, strict=True):
            if layer.kind == "spiking" and fanout is not None:
                per_image = [tr[layer.name] for tr in trains]
                base = np.cumsum([0] + [len(tr.indices) for tr in per_image])
                offsets = np.stack([tr.offsets for tr in per_image]) + base[:-1, None]
                indices = np.concatenate([tr.indices for tr in per_image])
                self.spikes[layer.name] = (indices, offsets)
        L = len(layers)
        self.accepting = [[env.event() for _ in range(timesteps)] for _ in range(L)]
        self.sent = [[env.event() for _ in range(timesteps)] for _ in range(L)]
        self.transferred = [[env.event() for _ in range(timesteps)] for _ in range(L)]
        self.barrier = [env.event() for _ in range(timesteps)]
        self.dram = simpy.Resource(env, capacity=max(1, plan.spilling_tiles))
        self.spilling = [int((p.spilled_bits > 0).sum()) for p in plan.mapping.layers]
        # the transfer before each layer's of t in queue order: the previous sending layer's
        # of t, or (the first sender) the last sender's of t-1
        order = senders(plan)
        self.previous: dict[int, tuple[int, int]] = {
            b: (a, 0) for a, b in zip(order, order[1:], strict=False)}
        if order:
            self.previous[order[0]] = (order[-1], -1)

    def group(self, li: int):
        env, plan, tl, T = self.env, self.plan, self.tl, self.T
        layer = plan.network.layers[li]
        tiles = plan.layer_tiles[li]
        if len(tiles) == 0 or (np.diff(tiles) != 1).any():
            raise ValueError(f"layer {layer.name!r} is mapped to tiles {tiles.tolist()}; the "
                             "fast mode needs one or more consecutive tiles per layer, as "
                             "accelsim.chip.mapping places them")
        g = slice(int(tiles[0]), int(tiles[-1]) + 1)  # views of the group's per-tile state
        sends = layer.name in self.spikes
        fire_cycles = plan.fire_cycles[g]
        mac = plan.mac_cycles[g]
        has_mac = bool(mac.any())
        sources = plan.sources[li]
        done_lat = (plan.done_cycles[np.concatenate([plan.layer_tiles[s] for s in sources])][
            :, g] if sources else None)
        waits = [self.accepting[c] for c in plan.consumers[li]]
        before, shift = self.previous.get(li, (li, 0))
        finish, fire_end = self.finish[:, g], self.fire_end[:, g]
        phase_end = tl.phase_end[:, :, g]
        barrier = self.schedule == "barrier"
        # time division: each spilling tile owns a slot of the DRAM channel for the whole image
        slots = [self.dram.request() for _ in range(self.spilling[li])]
        for t in range(T):
            # BARRIER
            if barrier and t > 0:
                yield self.barrier[t]
            np.maximum(fire_end, self.t_start[:, t, None], out=finish)
            phase_end[:, t, :, Phase.BARRIER] = finish
            if t == 0 and slots:
                yield from _all(env, slots)
            # MAC
            if t == 0 and has_mac:
                tl.busy[:, t, g] += mac
                finish += mac
                yield from _until(env, _latest(finish))
            phase_end[:, t, :, Phase.MAC] = finish
            self.accepting[li][t].succeed()
            # INTEGRATE: the senders' SEND phases time this group's packets of t; wait for
            # every source's end-of-timestep signal
            if sources:
                yield from _all(env, [self.sent[s][t] for s in sources])
                send_done = (self.sent[sources[0]][t].value if len(sources) == 1 else
                             np.concatenate([self.sent[s][t].value for s in sources], axis=1))
                signals = (send_done[:, :, None] + done_lat).max(axis=1)
                yield from _until(env, _latest(signals))
            else:
                signals = 0
            tl.inputs_done[:, t, g] = signals
            self.open_[:, g] = signals
            fire_start = tl.fire_start[:, t, g]
            np.maximum(finish, signals, out=fire_start)
            phase_end[:, t, :, Phase.INTEGRATE] = fire_start
            # FIRE
            np.add(fire_start, fire_cycles, out=fire_end)
            tl.busy[:, t, g] += fire_cycles
            tl.fire_end[:, t, g] = phase_end[:, t, :, Phase.FIRE] = fire_end
            # SEND
            if sends:
                ahead = [self.transferred[before][t + shift]] if t + shift >= 0 else []
                yield from _all(env, [w[t] for w in waits] + ahead)
                send_done = np.maximum(fire_end, self._transfer(li, t, g))
            else:
                send_done = fire_end.copy()
            self.transferred[li][t].succeed()
            end = np.maximum(send_done, finish)
            tl.end[:, t, g] = phase_end[:, t, :, Phase.SEND] = end
            yield from _until(env, _latest(end))
            self.sent[li][t].succeed(send_done)
        for slot in slots:
            self.dram.release(slot)

    def _transfer(self, li: int, t: int, g: slice) -> np.ndarray:
        """The SEND phase's work: time every packet of layer ``li``'s spikes of timestep t on
        every image; returns when each of the layer's ports has injected its last packet (of t
        or, still draining, of an earlier timestep)."""
        plan, tl, fo = self.plan, self.tl, self.plan.fanout[li]
        hw = plan.hardware
        cfg = hw.tile
        indices, offsets = self.spikes[plan.network.layers[li].name]
        record = tl.record_packets
        width = len(fo.dest_tiles)
        # with ``record``, buffers for the spikes of t and their packets, image after image
        record_at = np.zeros(offsets.shape[0] + 1, dtype=np.int64)
        if record:
            np.cumsum(offsets[:, t + 1] - offsets[:, t], out=record_at[1:])
        neurons = np.empty(record_at[-1], dtype=np.int64)
        ready = np.empty(record_at[-1], dtype=np.int64)
        events = np.empty((record_at[-1] * width, 6), dtype=np.int64)
        sent = np.zeros(offsets.shape[0], dtype=np.int64)
        send_kernel(t, indices, offsets, plan.neuron_tile[li], plan.neuron_local[li],
                    # contiguous whatever the batch, so that one compiled kernel serves all
                    np.ascontiguousarray(tl.fire_start[:, t, g]),
                    cfg.neuron_update_units, cfg.neuron_update_latency_cycles,
                    plan.layer_tiles[li], fo.dest_tiles, fo.neuron_class, fo.reach_start,
                    fo.reach_cols, fo.synops,
                    fo.sram_bits, fo.dram_bits, fo.service, fo.hops_x,
                    fo.hops_y, plan.packet_cycles, self.depth, self.port_free,
                    self.last_admit, self.open_, self.finish, self.ring,
                    self.ring_n, self.head, plan.router, hw.mesh.cols, hw.noc.hop_latency_x_cycles,
                    hw.noc.hop_latency_y_cycles, hw.noc.router_buffer_packets, self.links,
                    tl.stall, tl.busy, tl.queue_peak,
                    tl.packets_out, tl.packets_in, tl.hops_x, tl.hops_y, tl.synops_in,
                    tl.sram_bits, tl.dram_bits, record, record_at, neurons, ready, events, sent)
        if record:
            for b, image in enumerate(self.images):
                lo, hi = record_at[b], record_at[b + 1]
                image.add_packets(li, t, neurons[lo:hi], ready[lo:hi],
                                  events[lo * width:lo * width + sent[b]], plan)
        return self.port_free[:, g]

    def barrier_keeper(self):
        cycles = self.plan.hardware.schedule.barrier_cycles
        groups = range(len(self.plan.network.layers))
        for t in range(self.T - 1):
            yield from _all(self.env, [self.sent[li][t] for li in groups])
            self.t_start[:, t + 1] = self.tl.end[:, t].max(axis=1) + cycles
            yield from _until(self.env, _latest(self.t_start[:, t + 1]))
            self.barrier[t + 1].succeed()

    def run(self) -> list[Timeline]:
        for li in range(len(self.plan.network.layers)):
            self.env.process(self.group(li))
        if self.schedule == "barrier":
            self.env.process(self.barrier_keeper())
        self.env.run()
        unfinished = [li for li, ev in enumerate(self.sent) if not ev[-1].triggered]
        if unfinished:
            raise RuntimeError(f"layer groups {unfinished} never finished (deadlock)")
        return self.images


def _latest(cycles: np.ndarray) -> int:
    """The SimPy time of a phase of the batch: when its last image got there."""
    return int(cycles.max()) if cycles.size else 0


BATCH = 64
"""Images per SimPy environment: enough to amortise the per-phase Python work, few enough that
the per-image state stays small."""


def run_images(plan: Plan, trains: list[dict], timesteps: int, schedule: str,
               record_packets: bool = False) -> list[Timeline]:
    """Simulate images whose spikes are ``trains`` (per image, layer name -> SpikeTrain)."""
    timelines: list[Timeline] = []
    for lo in range(0, len(trains), BATCH):
        timelines += _FastChip(plan, trains[lo:lo + BATCH], timesteps, schedule,
                               record_packets).run()
    return timelines
