"""The cycle-level chip model: replay a network's spike trains through a mapped tiled chip.

The functional core (:mod:`accelsim.spiking.functional`) decides *what* spikes; this package decides
*when* and *at what cost*, by replaying those spike trains through the hardware. Predictions and
spike counts are therefore the functional core's by construction.

Timing model (times are integer cycles; the same model in both modes)
----------------------------------------------------------------------
Every tile holds one block of one layer (see :mod:`accelsim.chip.mapping`). Per timestep t = 1..T
and
tile d:

1. **MAC** (t = 1, layers fed by the analog input): ``ceil(MACs_d / accumulate_units) *
   accumulate_latency`` cycles (the latency of the projection's synapse kind; at least the
   cycles to read the tile's weights from its SRAM banks, and the DRAM time of spilled
   weights); the current is kept for every timestep. With ``first_layer: bias`` there is no
   MAC phase: a host computes the current and the chip holds it as each neuron's bias (no
   MACs, no weight reads; the bias is read from membrane storage at every update). A layer's
   own bias (:class:`~accelsim.model.network.Layer` ``bias``) is held the same way: each neuron's
   constant current (its bias plus any analog-input current) is written to membrane storage
   once at t = 1 and read at every update, and all its neurons count as active at every
   timestep; it costs no cycles of its own (the update reads it).
2. **Integrate**: the tile's accumulate unit serves the spike packets of timestep t one at a
   time, in *queue order* (below). Packet k: ``start_k = max(arrival_k, finish_{k-1})`` (the
   first packet of t also waits for the end of the tile's fire phase of t-1 and, with a barrier,
   for the barrier); ``finish_k = start_k + service_k`` with ``service = max(1,
   sum over synapse kinds of ceil(synops_kind / accumulate_units) * accumulate_latency_kind,
   ceil(ceil(SRAM bits / word bits) / banks))`` (kinds: conv, dense for linear projections,
   sparse for identity shortcuts); a packet whose weight rows spilled to DRAM also waits
   ``dram latency + ceil(bits * n / bandwidth) + accumulate cycles``, the channel being shared
   by time division among the n tiles that spill. Each synaptic op reads and writes the
   membrane once.
3. **Fire**: starts at ``max(last finish, inputs done)``, where *inputs done* is the arrival of
   every source tile's end-of-timestep signal (sent when the source finished firing and its
   port injected every packet it held, including any of an earlier timestep still draining;
   it travels the XY hop latency on side-band wires, without serialisation). Neurons
   are updated ``neuron_update_units`` at a time, ``neuron_update_latency`` cycles per group, in
   flat (C, H, W) order; a spike of local neuron i is *ready* at ``fire_start + (i //
   units + 1) * latency``.
4. **Send**: a spike becomes one packet per destination tile whose neurons it reaches
   (consumer layers in network order, tiles in order). The source's output port serves its
   packets in (ready, neuron, destination) order, ``packet_cycles = ceil(packet bits / link
   width) * flit_cycles`` each. A packet is *admitted* (its credit taken) at ``inject = max(
   ready, port free, previous admission at the destination, destination open for t,
   start_{k-depth}, a slot in the router's injection buffer)``: the destination's input queue
   holds ``depth`` packets (admitted, not yet started), so a full queue (or a full injection
   buffer) stalls the sender's port; ``stall_cycles`` counts that wait. The destination is
   open for t once every source's end-of-timestep signal of t-1 arrived. The packet then
   crosses the mesh on its XY route (:mod:`accelsim.chip.mesh`): every directed link is
   serialised (``packet_cycles`` per packet) and ends in a router input buffer of
   ``noc.router_buffer_packets`` whole packets (virtual cut-through, FIFO, credit-based
   back-pressure); the destination's ejection link is serialised too, and the packet has
   arrived when it has fully passed it. Alone on the mesh it arrives ``|dx| * hop_x + |dy| *
   hop_y + packet_cycles`` after its admission.

*Queue order* is (timestep, ready cycle, source tile, neuron, destination tile): the order spikes
were emitted (oldest timestep first), ties broken by source tile, neuron, destination. Ports,
admission at a destination and its service follow it. The mesh arbitrates by it among the
packets present: a link goes to the oldest packet waiting at its input, never idles while one
waits, and never waits for an older one still upstream (work-conserving). Its one exception is
the *phase* (one sending layer's packets of one timestep): a link carries every packet of
earlier phases, in (timestep, sending layer in network order), before any of a later phase, so
in the ``pipelined`` schedule timestep t's packets pass before t+1's (in a network whose sending
layers run in parallel, reference mode only, a phase is a whole timestep). The mesh cannot deadlock
(XY routes, reserved ejection slots) and the model is deterministic: within a cycle no decision
depends on another (every hop takes at least a cycle).

Schedules: ``barrier`` starts timestep t+1 on every tile ``barrier_cycles`` after the last tile
finished timestep t; ``pipelined`` has no global barrier (a tile moves on when its own phases
and inputs allow).

Not modelled: adaptive routing, arbitration across phases (above), virtual channels, credit
return latency (a credit is back upstream the cycle its slot frees),
dynamic DRAM arbitration (time division instead), loading the analog image into the first
layer's tiles, and overlap of a tile's fire phase with its integration of the next timestep.

Modes. Both are SimPy simulations (the reference one ``simpy.Environment`` per image, the fast
mode one per batch of images on copies of the chip) and step every tile
through the same phases (:class:`~accelsim.chip.timeline.Phase`: BARRIER, MAC, INTEGRATE, FIRE,
SEND; :attr:`Timeline.phase_end` records when each tile completed each of them). They differ in
what a SimPy event is:

- ``fast`` (:mod:`accelsim.chip.fast`): events are *phases*. Each layer's tile group is a
  process; the end of a group's SEND (carrying its tiles' end-of-timestep cycles), a group
  being ready to accept timestep t, and the barrier are events; the DRAM channel is a
  ``simpy.Resource``. The work of a phase (the fire-ready cycles, and every packet's admission,
  every hop, arrival, start and finish with the per-tile counters) is computed by numba kernels
  over the phase's packets, the mesh as a cycle-ordered event simulation of the phase; the phases
  that send are timed one after another (timestep, then sending layer in network order).
- ``reference`` (:mod:`accelsim.chip.reference`): events are *spike packets*. Each tile has a
  unit process, an output-port process and an admission process; every mesh channel a process
  that grants it, at the end of a cycle, to the oldest packet waiting for it; an input queue and
  every router buffer is a ``simpy.Store`` of its capacity (its credits), and every packet is a
  process that waits for its port, its credits, each hop and its service as events.

Both fill the same :class:`Timeline`; the tests demand exact equality.

Per-layer rows (image x layer x timestep): ``cycles`` is the time from the layer's last
activity of t-1 to its last activity of t (the sum over t is when the layer finished the image);
``busy_cycles`` and ``stall_cycles`` are summed over the layer's tiles; ``static_cycles`` is the
layer's tiles x the chip-wide duration of timestep t, so that static energy sums to powered tiles
x latency. Traffic (packets, hops, stalls) is charged to the sending layer, integration (synaptic
ops, SRAM and DRAM bits, queue peak) to the receiving layer.
"""
