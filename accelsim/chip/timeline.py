"""What one simulated image yields: per timestep x tile counters and phase times.

Both modes fill the same :class:`Timeline`, so that their outputs can be compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum

import numpy as np


class Phase(IntEnum):
    """The phases a tile steps through in every timestep, in order (both modes)."""

    BARRIER = 0
    """Wait until the tile may start timestep t (the global barrier, or its own fire of t-1)."""
    MAC = 1
    """Timestep 1 only, tiles fed by the analog input: the dense multiply-accumulate."""
    INTEGRATE = 2
    """Serve the spike packets of t in queue order until every source's end signal arrived."""
    FIRE = 3
    """Leak, compare and reset every neuron; spikes become ready one update group at a time."""
    SEND = 4
    """The output port injects the spikes' packets; ends with the end-of-timestep signal."""


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
    phase_end: np.ndarray
    """(timesteps, tiles, len(Phase)): the cycle at which the tile completed each phase."""
    record_packets: bool = False
    packets: list[np.ndarray] = field(default_factory=list)
    """Per transfer, an int64 (packets, len(PACKET_FIELDS)) record."""

    @classmethod
    def empty(cls, tiles: int, timesteps: int, images: int | None = None) -> Timeline:
        """Zeros; with ``images``, every array has a leading image axis (a batch timeline,
        cut into per-image views by :meth:`image`)."""
        lead = () if images is None else (images,)
        arrays = {name: np.zeros(lead + (timesteps, tiles), dtype=np.int64)
                  for name in _ARRAYS}
        arrays["phase_end"] = np.zeros(lead + (timesteps, tiles, len(Phase)), dtype=np.int64)
        return cls(**arrays)

    def image(self, b: int) -> Timeline:
        """Image ``b`` of a batch timeline: views of its arrays, packets of its own."""
        return Timeline(**{name: getattr(self, name)[b] for name in _ARRAYS},
                        record_packets=self.record_packets)

    def add_packets(self, layer: int, t: int, neurons: np.ndarray, ready: np.ndarray,
                    events: np.ndarray, plan) -> None:
        """Record the packets of one transfer from its (neuron, column, times) events."""
        if len(events) == 0:
            return
        tiles = plan.layer_tiles[layer]
        n = events[:, 0]
        # the source tile of each event: spikes are unique per layer and timestep
        src = tiles[plan.neuron_tile[layer][n]]
        by_neuron = np.argsort(neurons)
        ready_of = ready[by_neuron][np.searchsorted(neurons[by_neuron], n)]
        self.packets.append(np.column_stack([
            np.full(len(n), t + 1, dtype=np.int64), src, n,
            plan.fanout[layer].dest_tiles[events[:, 1]], ready_of, events[:, 2], events[:, 3],
            events[:, 4], events[:, 5]]).astype(np.int64))

    def packet_table(self) -> np.ndarray:
        """All packets, sorted by (timestep, source tile, neuron, destination tile)."""
        if not self.packets:
            return np.zeros((0, len(PACKET_FIELDS)), dtype=np.int64)
        allp = np.concatenate(self.packets)
        return allp[np.lexsort((allp[:, 3], allp[:, 2], allp[:, 1], allp[:, 0]))]


_ARRAYS = tuple(f.name for f in fields(Timeline) if f.name not in ("packets", "record_packets"))
