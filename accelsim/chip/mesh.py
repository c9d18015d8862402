"""The mesh network: XY routes over directed channels, each a serialised link into a finite
router input buffer with credit-based back-pressure (virtual cut-through), arbitrated oldest
first among the packets present.

Every router ``r`` (the router of tile ``r``) owns :data:`PORTS` directed *channels*, numbered
``r * PORTS + port``: the injection channel from its tile (the tile's output port), its four
outgoing mesh links and the ejection channel into its tile's input queue. A channel carries one
packet at a time for ``packet_cycles``; every channel but the ejection one ends in a FIFO input
buffer of ``noc.router_buffer_packets`` whole packets at the next router (the ejection channel
ends in the tile's input queue, whose slot the packet reserved when it was admitted).

A packet is a *candidate* for the next channel of its route from the cycle its head is at the
router and the packet ahead of it in its buffer has gone (its tail crossed the next channel).
A channel is *granted* at cycle ``x`` when it is free (``packet_cycles`` after its previous
grant), the buffer it feeds has a slot (a credit: the packet ``depth`` places ahead in that
buffer has gone), and some candidate is present; it goes to the oldest candidate present, the
first in the model's *queue order* (timestep, ready cycle, source tile, neuron, destination
tile). So links are work-conserving within a phase (a link never idles while a packet waits at
its input), and an older packet that has not yet reached a router never holds it up. The head
reaches the next router ``hop latency`` cycles after ``x`` (x or y); the tail follows
``packet_cycles`` behind and leaves the buffer it came from at ``x + packet_cycles``, when the
slot's credit is back upstream at once. Cut-through: the tail is counted once, at the ejection,
so a packet alone arrives ``sum of hop latencies + packet_cycles`` after its injection (the
closed form of :mod:`accelsim.chip`).

Phases (one layer's packets of one timestep) share the mesh in queue order: a channel carries
every packet of earlier phases before any of a later one. Within a phase the mesh is a
discrete-event simulation whose only events are channel checks (:func:`advance`), ordered by
cycle. Hops take at least a cycle and grants change nothing before the next cycle, so the checks
of one cycle commute: no result depends on the order in which simultaneous events are handled.
XY routes have no cyclic channel dependency and every ejection has a reserved slot, so the mesh
cannot deadlock.

The per-hop functions are compiled without numba's reference counting (``_nrt=False``): they
allocate nothing, and counting references to the state arrays they pass around costs atomic
operations on every hop (about 40 % of a hop's time, measured on synthetic traffic).
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
    """Slots of a buffer's rings: a power of two of at least ``depth`` (the index is a mask)."""
    return 1 << (depth - 1).bit_length()


@njit(cache=True, _nrt=False, inline="always")
def xy_step(r, dx, dy, cols, hop_x, hop_y):
    """(channel, next router, head latency, columns and rows still to go) of the hop from
    router ``r`` with ``dx`` columns and ``dy`` rows left to its destination (XY: east or west
    first, then south or north; the ejection channel when both are 0). Packets carry dx and dy
    along, so that a hop needs no division."""
    if dx > 0:
        return r * PORTS + EAST, r + 1, hop_x, dx - 1, dy
    if dx < 0:
        return r * PORTS + WEST, r - 1, hop_x, dx + 1, dy
    if dy > 0:
        return r * PORTS + SOUTH, r + cols, hop_y, dx, dy - 1
    if dy < 0:
        return r * PORTS + NORTH, r - cols, hop_y, dx, dy + 1
    return r * PORTS + EJECT, r, 0, dx, dy


@njit(cache=True, _nrt=False, inline="always")
def next_channel(r, d, cols, hop_x, hop_y):
    """(channel, next router, head latency) of the hop from router ``r`` toward ``d``
    (:func:`xy_step`)."""
    c, nxt, lat, _, _ = xy_step(r, d % cols - r % cols, d // cols - r // cols, cols, hop_x,
                                hop_y)
    return c, nxt, lat


def route(src: int, dest: int, cols: int, hop_x: int, hop_y: int) -> list[tuple[int, int]]:
    """The (channel, head latency to the next router) of every hop after injection, ending
    with the ejection channel (latency 0)."""
    out, r = [], src
    while True:
        c, r, lat = next_channel(r, dest, cols, hop_x, hop_y)
        out.append((int(c), int(lat)))
        if c % PORTS == EJECT:
            return out


FREE, COUNT, OUT, PENDING, CANDIDATES, PLACE, RING = range(7)
"""Columns of a channel's row of link state: when the channel is next free; how many packets
have entered its buffer and how many of those have been granted their next channel (their
departure is known); the cycle of its pending check (-1: none), the first of its candidates
(-1: none) and which list of the calendar holds that check, all three empty between phases; then
two rings of the buffer's recent packets: when each leaves, and (within a phase) which packet it
is. One row per channel, so that a hop reads and writes one place in memory."""

# columns of a packet's row of state while its phase runs
P_DX, P_DY, P_HELD, P_INDEX, P_HEAD, P_NEXT, P_LATENCY, P_ROUTER_NEXT, P_ELIGIBLE, \
    P_LINK = range(10)
PACKET_COLUMNS = 10

LEFT_INJECTION, EJECTED = 1, 2
"""What :func:`advance` reports of a grant: the packet left its injection buffer (its slot's
credit is back), it crossed its ejection channel (it has arrived)."""


def state(images: int, rows: int, cols: int, depth: int) -> np.ndarray:
    """Empty link state (images, channels, RING + 2 ring_size) for ``images`` copies of the
    mesh: every channel free at 0, every buffer empty."""
    links = np.zeros((images, channels(rows, cols), RING + 2 * ring_size(depth)),
                     dtype=np.int64)
    links[:, :, PENDING] = -1
    links[:, :, CANDIDATES] = -1
    return links


@njit(cache=True)
def packets(count):
    """State rows for ``count`` packets of a phase (filled by :func:`inject`)."""
    return np.empty((count, PACKET_COLUMNS), dtype=np.int64)


WINDOW = 256
"""Cycles the calendar of checks covers ahead of the current one (a power of two): nearly every
check falls within a few cycles (a hop, a packet time), so a check is one bucket push and pop;
the rare later ones (an admission far ahead) wait in an overflow list."""

Q_CURSOR, Q_IN_WINDOW, Q_OVERFLOW, Q_OVERFLOW_N, Q_OVERFLOW_MIN = range(5)
_Q_BUCKETS = 5
NO_CHECK = 1 << 62


@njit(cache=True)
def calendar(links):
    """An empty calendar of channel checks: a header (the current cycle, how many checks lie
    in the window, the overflow list's head, size and earliest cycle), one list head per cycle
    of the window (bucket ``cycle % WINDOW``), then per channel its next and previous entry in
    the list it is in. Each channel has at most one pending check (``PENDING``), so the lists
    are intrusive; ``PLACE`` says which (0: a bucket, 1: the overflow). The checks of one cycle
    commute, so a bucket's order does not matter."""
    n = links.shape[0]
    q = np.full(_Q_BUCKETS + WINDOW + 2 * n, -1, dtype=np.int64)
    q[Q_CURSOR] = 0
    q[Q_IN_WINDOW] = 0
    q[Q_OVERFLOW_N] = 0
    q[Q_OVERFLOW_MIN] = NO_CHECK
    return q


@njit(cache=True, _nrt=False, inline="always")
def _link(q, head, c, n):
    nxt = _Q_BUCKETS + WINDOW + c
    first = q[head]
    q[nxt] = first
    q[nxt + n] = -1
    if first != -1:
        q[_Q_BUCKETS + WINDOW + n + first] = c
    q[head] = c


@njit(cache=True, _nrt=False, inline="always")
def _unlink(q, head, c, n):
    nxt = _Q_BUCKETS + WINDOW + c
    after, before = q[nxt], q[nxt + n]
    if before == -1:
        q[head] = after
    else:
        q[_Q_BUCKETS + WINDOW + before] = after
    if after != -1:
        q[_Q_BUCKETS + WINDOW + n + after] = before


@njit(cache=True, _nrt=False, inline="always")
def _file(links, q, c, t):
    """Put channel ``c``'s check at ``t`` in its bucket, or in the overflow beyond the window."""
    n = links.shape[0]
    links[c, PENDING] = t
    if t < q[Q_CURSOR] + WINDOW:
        links[c, PLACE] = 0
        q[Q_IN_WINDOW] += 1
        _link(q, _Q_BUCKETS + (t & (WINDOW - 1)), c, n)
    else:
        links[c, PLACE] = 1
        q[Q_OVERFLOW_N] += 1
        if t < q[Q_OVERFLOW_MIN]:
            q[Q_OVERFLOW_MIN] = t
        _link(q, Q_OVERFLOW, c, n)


@njit(cache=True, _nrt=False)
def _refill(links, q):
    """Move the overflow's checks that now fall within the window into their buckets."""
    n = links.shape[0]
    c = q[Q_OVERFLOW]
    q[Q_OVERFLOW_MIN] = NO_CHECK
    end = q[Q_CURSOR] + WINDOW
    while c != -1:
        after = q[_Q_BUCKETS + WINDOW + c]
        t = links[c, PENDING]
        if t < end:
            _unlink(q, Q_OVERFLOW, c, n)
            q[Q_OVERFLOW_N] -= 1
            _file(links, q, c, t)
        elif t < q[Q_OVERFLOW_MIN]:
            q[Q_OVERFLOW_MIN] = t
        c = after


@njit(cache=True, _nrt=False, inline="always")
def _pop(links, q):
    """Remove the earliest check; returns its (cycle, channel), or (-1, -1) when none is left."""
    n = links.shape[0]
    while True:
        if q[Q_IN_WINDOW] == 0:
            if q[Q_OVERFLOW_N] == 0:
                return -1, -1
            q[Q_CURSOR] = q[Q_OVERFLOW_MIN]
            _refill(links, q)
        elif q[Q_OVERFLOW_MIN] < q[Q_CURSOR] + WINDOW:
            _refill(links, q)
        now = q[Q_CURSOR]
        head = _Q_BUCKETS + (now & (WINDOW - 1))
        c = q[head]
        if c != -1:
            _unlink(q, head, c, n)
            q[Q_IN_WINDOW] -= 1
            return now, c
        q[Q_CURSOR] = now + 1


@njit(cache=True, _nrt=False, inline="always")
def _schedule(links, q, c, t):
    """Check channel ``c`` at cycle ``t`` unless a check at or before ``t`` is pending (that
    one reschedules as needed)."""
    pending = links[c, PENDING]
    if pending != -1:
        if t >= pending:
            return
        if links[c, PLACE] == 0:
            q[Q_IN_WINDOW] -= 1
            _unlink(q, _Q_BUCKETS + (pending & (WINDOW - 1)), c, links.shape[0])
        else:
            q[Q_OVERFLOW_N] -= 1
            _unlink(q, Q_OVERFLOW, c, links.shape[0])
    _file(links, q, c, max(t, q[Q_CURSOR]))


@njit(cache=True, _nrt=False, inline="always")
def _candidate(links, checks, pk, i, eligible):
    """Packet ``i`` waits for its next channel from cycle ``eligible``."""
    c = pk[i, P_NEXT]
    pk[i, P_ELIGIBLE] = eligible
    pk[i, P_LINK] = links[c, CANDIDATES]
    links[c, CANDIDATES] = i
    _schedule(links, checks, c, eligible)


@njit(cache=True, _nrt=False, inline="always")
def _enter(links, checks, pk, i, b, router, head, cols, hop_x, hop_y):
    """Packet ``i`` takes the next place in buffer ``b`` at ``router``, its head there at
    ``head``; it is a candidate once the packet ahead has gone."""
    mask = (links.shape[1] - RING) // 2 - 1
    k = links[b, COUNT]
    links[b, COUNT] = k + 1
    links[b, RING + mask + 1 + (k & mask)] = i
    c, nxt, lat, pk[i, P_DX], pk[i, P_DY] = xy_step(router, pk[i, P_DX], pk[i, P_DY], cols,
                                                      hop_x, hop_y)
    pk[i, P_HELD] = b
    pk[i, P_INDEX] = k
    pk[i, P_HEAD] = head
    pk[i, P_NEXT] = c
    pk[i, P_ROUTER_NEXT] = nxt
    pk[i, P_LATENCY] = lat
    if k - 1 < links[b, OUT]:  # the packet ahead has a departure (a ring slot never written
        # holds 0, so the first packet needs no branch)
        _candidate(links, checks, pk, i, max(head, links[b, RING + ((k - 1) & mask)]))
    # else: the packet ahead's grant makes this one a candidate


@njit(cache=True, _nrt=False, inline="always")
def inject(links, checks, pk, i, src, dest, cycle, cols, hop_x, hop_y):
    """Packet ``i`` (its row of ``pk``) enters router ``src``'s injection buffer at ``cycle``,
    bound for router ``dest``. The buffer's credit is the caller's (:func:`injection_slot`)."""
    pk[i, P_DX] = dest % cols - src % cols
    pk[i, P_DY] = dest // cols - src // cols
    _enter(links, checks, pk, i, src * PORTS + INJECT, src, cycle, cols, hop_x, hop_y)


@njit(cache=True, _nrt=False, inline="always")
def injection_slot(links, src, place, depth):
    """When router ``src``'s injection buffer has a slot for its packet number ``place``
    (counted over the whole run): -1 when it waits for a packet not yet granted, else the
    cycle (0 when the buffer never held ``depth`` packets)."""
    b = src * PORTS + INJECT
    e = place - depth
    if e < 0:
        return 0
    if e >= links[b, OUT]:
        return -1
    mask = (links.shape[1] - RING) // 2 - 1
    return links[b, RING + (e & mask)]


@njit(cache=True, _nrt=False)
def advance(links, checks, pk, packet_cycles, depth, cols, hop_x, hop_y):
    """Run the phase's channel checks in cycle order up to the next grant the caller must
    know of: returns (packet, what of :data:`LEFT_INJECTION` | :data:`EJECTED`, cycle of the
    grant), or (-1, 0, -1) when no check is left."""
    F = packet_cycles
    mask = (links.shape[1] - RING) // 2 - 1
    while True:
        now, c = _pop(links, checks)
        if c == -1:
            break
        links[c, PENDING] = -1
        first = links[c, CANDIDATES]
        if first == -1:
            continue
        if links[c, FREE] > now:
            _schedule(links, checks, c, links[c, FREE])
            continue
        eject = c % PORTS == EJECT
        if not eject:
            e = links[c, COUNT] - depth
            if e >= 0:
                if e >= links[c, OUT]:
                    continue  # that packet's grant checks c again
                gone = links[c, RING + (e & mask)]
                if gone > now:
                    _schedule(links, checks, c, gone)
                    continue
        # the oldest candidate present
        best, best_prev, prev, soonest = -1, -1, -1, -1
        i = first
        while i != -1:
            e = pk[i, P_ELIGIBLE]
            if e <= now:
                if best == -1 or i < best:
                    best, best_prev = i, prev
            elif soonest == -1 or e < soonest:
                soonest = e
            prev, i = i, pk[i, P_LINK]
        if best == -1:
            _schedule(links, checks, c, soonest)
            continue
        if best_prev == -1:
            links[c, CANDIDATES] = pk[best, P_LINK]
        else:
            pk[best_prev, P_LINK] = pk[best, P_LINK]
        # grant: the channel is busy, the tail leaves the buffer it was in
        i = best
        links[c, FREE] = now + F
        if links[c, CANDIDATES] != -1:
            _schedule(links, checks, c, now + F)
        held, k = pk[i, P_HELD], pk[i, P_INDEX]
        gone = now + F
        links[held, RING + (k & mask)] = gone
        links[held, OUT] = k + 1
        if links[held, CANDIDATES] != -1:  # the channel into that buffer has its credit
            _schedule(links, checks, held, gone)
        if k + 1 < links[held, COUNT]:  # the packet behind is at the buffer's head then
            j = links[held, RING + mask + 1 + ((k + 1) & mask)]
            _candidate(links, checks, pk, j, max(pk[j, P_HEAD], gone))
        what = LEFT_INJECTION if held % PORTS == INJECT else 0
        if eject:
            return i, what | EJECTED, now
        _enter(links, checks, pk, i, c, pk[i, P_ROUTER_NEXT], now + pk[i, P_LATENCY], cols,
               hop_x, hop_y)
        if what:
            return i, what, now
    return -1, 0, -1


@njit(cache=True)
def deliver(ready, src, dest, cols, hop_x, hop_y, packet_cycles, depth, links):
    """The mesh alone (synthetic traffic, tests): packets in queue order, created at ``ready``
    at router ``src`` for router ``dest``; each router's port injects its packets in order, one
    per ``packet_cycles``, when its injection buffer has a slot, and every ejection is
    accepted. Returns each packet's injection and arrival cycles; ``links`` is updated."""
    P = ready.shape[0]
    F = packet_cycles
    nodes = links.shape[0] // PORTS
    port_free = np.zeros(nodes, dtype=np.int64)
    last = np.full(nodes, -1, dtype=np.int64)
    nxt = np.full(P, -1, dtype=np.int64)  # the next packet at the same port
    place = np.zeros(P, dtype=np.int64)  # its place in the port's injection buffer
    count = np.zeros(nodes, dtype=np.int64)
    for i in range(P):
        s = src[i]
        place[i] = links[s * PORTS + INJECT, COUNT] + count[s]
        count[s] += 1
        if last[s] != -1:
            nxt[last[s]] = i
        last[s] = i
    head = np.full(nodes, -1, dtype=np.int64)  # per port, the packet it injects next
    for i in range(P - 1, -1, -1):
        head[src[i]] = i
    pk = packets(P)
    checks = calendar(links)
    inj = np.full(P, -1, dtype=np.int64)
    arrival = np.full(P, -1, dtype=np.int64)
    ports = np.arange(nodes)  # the ports that may inject: all, then one at a time
    n_ports = nodes
    while True:
        for q in range(n_ports):
            s = ports[q]
            while head[s] != -1:  # inject until a packet waits for its injection slot
                i = head[s]
                slot = injection_slot(links, s, place[i], depth)
                if slot == -1:
                    break
                x = max(ready[i], port_free[s], slot)
                inj[i] = x
                port_free[s] = x + F
                inject(links, checks, pk, i, s, dest[i], x, cols, hop_x, hop_y)
                head[s] = nxt[i]
        i, what, now = advance(links, checks, pk, F, depth, cols, hop_x, hop_y)
        if i == -1:
            break
        if what & EJECTED:
            arrival[i] = now + F
        n_ports = 0
        if what & LEFT_INJECTION:
            ports[0] = src[i]
            n_ports = 1
    return inj, arrival
