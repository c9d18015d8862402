"""The mesh network: XY routes over directed channels, each a serialised link into a finite
router input buffer with credit-based back-pressure (virtual cut-through).

Every router ``r`` (the router of tile ``r``) owns :data:`PORTS` directed *channels*, numbered
``r * PORTS + port``: the injection channel from its tile (the tile's output port), its four
outgoing mesh links and the ejection channel into its tile's input queue. A channel carries one
packet at a time for ``packet_cycles``; every channel but the ejection one ends in a FIFO input
buffer of ``noc.router_buffer_packets`` whole packets at the next router (the ejection channel
ends in the tile's input queue, whose slot the packet reserved when it was admitted).

A packet's head crosses channel ``c`` at ``x = max(head at the upstream router, c free, the
packet ahead in the upstream buffer gone, a free slot in c's buffer)``: ``c`` is free
``packet_cycles`` after the previous packet on it started, a packet leaves a buffer when its
tail has crossed the next channel (``x + packet_cycles``, which is also when the slot's credit
is back upstream: credits return at once), and the head reaches the next router ``hop latency``
cycles after ``x`` (x or y). Cut-through: the tail follows ``packet_cycles`` behind the head and
is counted once, at the ejection, so a packet alone arrives ``sum of hop latencies +
packet_cycles`` after its injection (the closed form of :mod:`accelsim.chip`).

Arbitration is static: every channel and every buffer passes packets in the model's global
*queue order* (timestep, ready cycle, source tile, neuron, destination tile), and a channel waits
for the next packet in that order even when a later one is already at its input. So a packet
never waits for one later in the order, every time is a max-plus recurrence over packets taken
in that order (:func:`traverse` applies it to one packet, given every earlier packet's), and
the network cannot deadlock.
"""

from __future__ import annotations

import numpy as np
from numba import njit

PORTS = 6
INJECT, EAST, WEST, SOUTH, NORTH, EJECT = range(PORTS)


def channels(rows: int, cols: int) -> int:
    """Number of channels of a rows x cols mesh."""
    return rows * cols * PORTS


def ring_size(depth: int) -> int:
    """Slots of a buffer's ring of tail-departure times: a power of two of at least ``depth``
    (the index is then a mask)."""
    return 1 << (depth - 1).bit_length()


@njit(cache=True)
def next_channel(r, d, cols, hop_x, hop_y):
    """(channel, next router, head latency) of the hop from router ``r`` toward ``d`` (XY: east
    or west first, then south or north; the ejection channel at ``d``)."""
    rc, dc = r % cols, d % cols
    if rc < dc:
        return r * PORTS + EAST, r + 1, hop_x
    if rc > dc:
        return r * PORTS + WEST, r - 1, hop_x
    if r < d:
        return r * PORTS + SOUTH, r + cols, hop_y
    if r > d:
        return r * PORTS + NORTH, r - cols, hop_y
    return r * PORTS + EJECT, r, 0


def route(src: int, dest: int, cols: int, hop_x: int, hop_y: int) -> list[tuple[int, int]]:
    """The (channel, head latency to the next router) of every hop after injection, ending
    with the ejection channel (latency 0)."""
    out, r = [], src
    while True:
        c, r, lat = next_channel(r, dest, cols, hop_x, hop_y)
        out.append((int(c), int(lat)))
        if c % PORTS == EJECT:
            return out


FREE, COUNT, RING = 0, 1, 2
"""Columns of a channel's row of link state: when the channel is next free, how many packets
have entered its buffer, then the ring of its buffer's recent tail-departure times. One row per
channel, so that a hop reads and writes one place in memory."""


@njit(cache=True)
def injection_credit(s, links, depth):
    """The earliest cycle tile ``s``'s next packet may enter its router's injection buffer
    (packet k - depth has left it)."""
    c = s * PORTS + INJECT
    k = links[c, COUNT]
    if k < depth:
        return 0
    return links[c, RING + ((k - depth) & (links.shape[1] - RING - 1))]


@njit(cache=True)
def _hop(head, c, held, k_held, F, depth, links, mask, eject):
    """The head crosses channel ``c`` out of buffer ``held`` (where it is packet ``k_held``):
    returns the cycle it starts; updates the channel, the buffer it leaves and, unless ``c``
    is an ejection channel, the count of the buffer it enters. (A ring slot not yet written
    holds 0, and no time is negative, so the first packets need no branch: the FIFO and
    credit terms are then 0.)"""
    # FIFO: the packet ahead in the buffer has gone
    x = max(max(head, links[c, FREE]), links[held, RING + ((k_held - 1) & mask)])
    if not eject:
        k = links[c, COUNT]
        # credit: packet k - depth has left c's buffer (slot k - depth + ring >= k when
        # k < depth: not yet written)
        x = max(x, links[c, RING + ((k - depth) & mask)])
        links[c, COUNT] = k + 1
    links[c, FREE] = x + F
    links[held, RING + (k_held & mask)] = x + F
    return x


@njit(cache=True)
def traverse(inj, s, d, cols, hop_x, hop_y, packet_cycles, depth, links):
    """Move one packet, injected by tile ``s`` at ``inj`` (its credit in the injection buffer
    taken, see :func:`injection_credit`), to tile ``d``; every packet earlier in queue order
    has been moved. ``links`` (channels, RING + ring_size) holds per channel when it is next
    free, how many packets entered its buffer and when the buffer's recent packets left it
    (tail gone); it is updated. Returns when the packet has fully crossed the ejection
    channel. (The route of :func:`next_channel`, walked without a division per hop.)"""
    mask = links.shape[1] - RING - 1
    F = packet_cycles
    held = s * PORTS + INJECT  # the buffer the packet is in
    k_held = links[held, COUNT]
    links[held, COUNT] = k_held + 1
    head = inj
    r = s
    sc, dc = s % cols, d % cols
    step, port = (1, EAST) if dc > sc else (-1, WEST)
    for _ in range(abs(dc - sc)):
        c = r * PORTS + port
        k = links[c, COUNT]
        x = _hop(head, c, held, k_held, F, depth, links, mask, False)
        held, k_held = c, k
        head = x + hop_x
        r += step
    step, port = (cols, SOUTH) if d > r else (-cols, NORTH)
    for _ in range(abs(d - r) // cols):
        c = r * PORTS + port
        k = links[c, COUNT]
        x = _hop(head, c, held, k_held, F, depth, links, mask, False)
        held, k_held = c, k
        head = x + hop_y
        r += step
    x = _hop(head, d * PORTS + EJECT, held, k_held, F, depth, links, mask, True)
    return x + F


def state(images: int, rows: int, cols: int, depth: int) -> np.ndarray:
    """Zeroed link state (images, channels, RING + ring_size) for ``images`` copies of the
    mesh."""
    return np.zeros((images, channels(rows, cols), RING + ring_size(depth)), dtype=np.int64)
