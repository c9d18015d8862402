"""What one simulated image yields: per timestep x tile counters and phase times.

Both modes fill the same :class:`Timeline`, so that their outputs can be compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

PACKET_FIELDS = ("timestep", "source_tile", "neuron", "dest_tile", "ready", "admitted",
                 "arrival", "start", "finish")


@dataclass
class Timeline:
    """Counters and times, int64 arrays of shape (timesteps, tiles)."""

    busy: np.ndarray
    stall: np.ndarray
    queue_peak: np.ndarray
    packets_out: np.ndarray
    packets_in: np.ndarray
    hops_x: np.ndarray
    hops_y: np.ndarray
    synops_in: np.ndarray
    sram_bits: np.ndarray
    dram_bits: np.ndarray
    inputs_done: np.ndarray
    fire_start: np.ndarray
    fire_end: np.ndarray
    end: np.ndarray
    record_packets: bool = False
    packets: list[np.ndarray] = field(default_factory=list)
    """Per transfer, an int64 (packets, len(PACKET_FIELDS)) record."""

    @classmethod
    def empty(cls, tiles: int, timesteps: int) -> Timeline:
        arrays = {f.name: np.zeros((timesteps, tiles), dtype=np.int64)
                  for f in fields(cls) if f.name not in ("packets", "record_packets")}
        return cls(**arrays)

    def add_packets(self, layer: int, t: int, neurons: np.ndarray, local: np.ndarray,
                    ready: np.ndarray, events: np.ndarray, plan) -> None:
        """Count the traffic of one transfer from its (neuron, column, times) events."""
        fo = plan.fanout[layer]
        tiles = plan.layer_tiles[layer]
        if len(events) == 0:
            return
        n = events[:, 0]
        j = events[:, 1]
        # the source tile of each event: spikes are unique per layer and timestep
        where = np.searchsorted(plan.tile_first_neuron[tiles], n, side="right") - 1
        src = tiles[where]
        dest = fo.dest_tiles[j]
        tiles_n = self.busy.shape[1]
        self.hops_x[t] += np.bincount(src, weights=fo.hops_x[where, j],
                                      minlength=tiles_n).astype(np.int64)
        self.hops_y[t] += np.bincount(src, weights=fo.hops_y[where, j],
                                      minlength=tiles_n).astype(np.int64)
        self.synops_in[t] += np.bincount(dest, weights=fo.synops[n, j],
                                         minlength=tiles_n).astype(np.int64)
        self.sram_bits[t] += np.bincount(dest, weights=fo.sram_bits[n, j],
                                         minlength=tiles_n).astype(np.int64)
        self.dram_bits[t] += np.bincount(dest, weights=fo.dram_bits[n, j],
                                         minlength=tiles_n).astype(np.int64)
        if not self.record_packets:
            return
        by_neuron = np.argsort(neurons)
        ready_of = ready[by_neuron][np.searchsorted(neurons[by_neuron], n)]
        self.packets.append(np.column_stack([
            np.full(len(n), t + 1, dtype=np.int64), src, n, dest, ready_of, events[:, 2],
            events[:, 3], events[:, 4], events[:, 5]]).astype(np.int64))

    def packet_table(self) -> np.ndarray:
        """All packets, sorted by (timestep, source tile, neuron, destination tile)."""
        if not self.packets:
            return np.zeros((0, len(PACKET_FIELDS)), dtype=np.int64)
        allp = np.concatenate(self.packets)
        return allp[np.lexsort((allp[:, 3], allp[:, 2], allp[:, 1], allp[:, 0]))]
