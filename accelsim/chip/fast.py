"""Fast mode: the timing model evaluated phase by phase, with numba kernels per transfer.

Phases are visited in a causal order (timestep, then layers in network order); for each spiking
layer the fire phase gives every spike its ready cycle, then :func:`transfer_kernel` walks the
layer's packets in the model's order (ready cycle, source tile, neuron, destination tile) and
applies the max-plus recurrences of the model (see :mod:`accelsim.chip`). The order is causal:
every quantity a packet needs (its source port, its destination's admissions, credits and
finishes, the ends of earlier phases) belongs to packets or phases visited before it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from accelsim.chip.plan import Plan
from accelsim.chip.timeline import Timeline


@njit(cache=True)
def transfer_kernel(order_n, order_src, ready, src_tiles, dest_tiles, synops, service,
                    hop_cycles, packet_cycles, depth, port_free, last_admit, open_, eject_free,
                    finish, ring, ring_n, stall, busy, queue_peak, packets_out, packets_in,
                    last_inject_end, events):
    """Push one layer's spikes of one timestep through the NoC into the destination tiles.

    Per-tile state (``port_free`` … ``ring_n``) is updated in place; per-tile counters of this
    timestep are accumulated; ``events`` (packets, 6) receives, per packet sent, (neuron,
    destination column, admission, arrival, start, finish). Returns the packets sent.
    """
    m = 0
    for i in range(order_n.shape[0]):
        n = order_n[i]
        sl = order_src[i]
        s = src_tiles[sl]
        r = ready[i]
        for j in range(dest_tiles.shape[0]):
            if synops[n, j] == 0:
                continue
            d = dest_tiles[j]
            free_at = max(r, port_free[s])
            inj = max(free_at, max(last_admit[d], open_[d]))
            k = ring_n[d]
            if k >= depth:
                inj = max(inj, ring[d, k % depth])
            occupancy = 1
            for q in range(max(0, k - depth + 1), k):
                if ring[d, q % depth] > inj:
                    occupancy += 1
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
            ring[d, k % depth] = start
            ring_n[d] = k + 1
            fin = start + service[n, j]
            finish[d] = fin
            busy[d] += service[n, j]
            packets_out[s] += 1
            packets_in[d] += 1
            events[m, 0] = n
            events[m, 1] = j
            events[m, 2] = inj
            events[m, 3] = arrival
            events[m, 4] = start
            events[m, 5] = fin
            m += 1
    return m


def spike_ready(plan: Plan, layer: int, indices: np.ndarray, fire_start: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neurons, local source tiles, ready cycles) of one layer's spikes, in the model's order."""
    tiles = plan.layer_tiles[layer]
    first = plan.tile_first_neuron[tiles]
    n = np.asarray(indices, dtype=np.int64)
    local = np.searchsorted(first, n, side="right") - 1
    cfg = plan.hardware.tile
    ready = fire_start[tiles[local]] + ((n - first[local]) // cfg.neuron_update_units + 1) * (
        cfg.neuron_update_latency_cycles)
    order = np.lexsort((n, local, ready))
    return n[order], local[order], ready[order]


def run_image(plan: Plan, trains: dict, timesteps: int, schedule: str,
              record_packets: bool = False) -> Timeline:
    """Simulate one image whose spikes are ``trains`` (layer name -> SpikeTrain)."""
    hw = plan.hardware
    layers = plan.network.layers
    n_tiles = plan.tiles
    tl = Timeline.empty(n_tiles, timesteps)
    tl.record_packets = record_packets
    depth = hw.tile.queue_depth_packets
    port_free = np.zeros(n_tiles, dtype=np.int64)
    last_admit = np.zeros(n_tiles, dtype=np.int64)
    open_ = np.zeros(n_tiles, dtype=np.int64)
    eject_free = np.zeros(n_tiles, dtype=np.int64)
    finish = np.zeros(n_tiles, dtype=np.int64)
    ring = np.zeros((n_tiles, depth), dtype=np.int64)
    ring_n = np.zeros(n_tiles, dtype=np.int64)
    fire_end = np.zeros(n_tiles, dtype=np.int64)
    t_start = 0
    for t in range(timesteps):
        finish[:] = np.maximum(fire_end, t_start)
        if t == 0:
            tl.busy[t] += plan.mac_cycles
            finish += plan.mac_cycles
        send_done = np.zeros(n_tiles, dtype=np.int64)
        last_inject_end = np.zeros(n_tiles, dtype=np.int64)
        fire_start = np.zeros(n_tiles, dtype=np.int64)
        for li, layer in enumerate(layers):
            tiles = plan.layer_tiles[li]
            src_tiles = [plan.layer_tiles[s] for s in plan.sources[li]]
            signals = np.zeros(len(tiles), dtype=np.int64)
            if src_tiles:
                st = np.concatenate(src_tiles)
                signals = (send_done[st][:, None] + plan.done_cycles[np.ix_(st, tiles)]).max(
                    axis=0)
            tl.inputs_done[t, tiles] = signals
            done = np.maximum(finish[tiles], signals)
            fire_start[tiles] = done
            fire_end[tiles] = done + plan.fire_cycles[tiles]
            tl.busy[t, tiles] += plan.fire_cycles[tiles]
            tl.fire_start[t, tiles] = done
            fo = plan.fanout[li]
            if fo is not None and layer.kind == "spiking":
                n, local, ready = spike_ready(plan, li, trains[layer.name].at(t), fire_start)
                events = np.zeros((len(n) * len(fo.dest_tiles), 6), dtype=np.int64)
                m = transfer_kernel(n, local, ready, tiles, fo.dest_tiles, fo.synops,
                                    fo.service, fo.hop_cycles, plan.packet_cycles, depth,
                                    port_free, last_admit, open_, eject_free, finish, ring,
                                    ring_n, tl.stall[t], tl.busy[t], tl.queue_peak[t],
                                    tl.packets_out[t], tl.packets_in[t], last_inject_end, events)
                tl.add_packets(li, t, n, local, ready, events[:m], plan)
            send_done[tiles] = np.maximum(fire_end[tiles], last_inject_end[tiles])
        tl.end[t] = np.maximum(send_done, finish)
        open_[:] = tl.inputs_done[t]
        t_start = int(tl.end[t].max()) + (hw.schedule.barrier_cycles if schedule == "barrier"
                                          else 0)
        tl.fire_end[t] = fire_end
        if schedule != "barrier":
            t_start = 0
    return tl
