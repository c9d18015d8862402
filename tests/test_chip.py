"""The chip model: fast == reference, conservation laws, and agreement with the functional core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chip_support import assert_modes_equal, chain, run_mode, tiny_hw, train
from hypothesis import given, settings
from hypothesis import strategies as st

from accelsim.chip import fast
from accelsim.chip.hardware import load_hardware
from accelsim.chip.mapping import map_network, max_tiles
from accelsim.chip.plan import _join, build_plan
from accelsim.chip.simulation import SimulationResult, simulate
from accelsim.chip.timeline import Phase
from accelsim.model.architectures import build
from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.spiking import functional
from accelsim.spiking.functional import SpikeTrain
from accelsim.training.torch_snn import SpikingNetwork
from accelsim.workflow import columns as col


def _net(name: str, shape=(1, 8, 8), width=0.1, threshold=0.3, seed=0) -> Network:
    sn = SpikingNetwork(build(name, shape, 4, width=width), seed=seed)
    arch = sn.trained_architecture()
    arch = arch.model_copy(update={"layers": tuple(
        layer.model_copy(update={"threshold": threshold}) if layer.kind == "spiking" else layer
        for layer in arch.layers)})
    return Network(architecture=arch, weights=sn.weight_arrays(), timesteps=3,
                   input_mean=(0.0,) * shape[0], input_std=(1.0,) * shape[0])


def _images(n, shape=(1, 8, 8), seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape))


SMALL_CHIP = {"mesh.rows": 3, "mesh.cols": 4, "tile.queue_depth_packets": 2,
              "noc.hop_latency_x_cycles": 3}


@pytest.mark.parametrize("name", ["vgg5", "resnet-small"])
def test_simulate_agrees_with_functional(name):
    net = _net(name)
    x = _images(3)
    labels = np.array([0, 1, 2])
    result = simulate(net, x, labels, load_hardware("45nm-generic", SMALL_CHIP))
    f = functional.run(net, x)
    assert isinstance(result, SimulationResult)
    np.testing.assert_array_equal(result.images[col.PREDICTION], f.predictions)
    np.testing.assert_array_equal(result.images[col.CORRECT], f.predictions == labels)
    keys = [col.IMAGE, col.LAYER, col.TIMESTEP]
    merged = result.layers.merge(f.counts, on=keys, suffixes=("", "_f"))
    assert len(merged) == len(f.counts) == len(result.layers)
    for c in (col.SPIKES_IN, col.SPIKES_OUT, col.SYNAPTIC_OPS, col.MACS, col.NEURON_UPDATES):
        np.testing.assert_array_equal(merged[c], merged[f"{c}_f"], err_msg=c)
    assert (result.tiles.empty and list(result.tiles.columns))


@pytest.mark.parametrize("name", ["vgg5", "resnet-small"])
@pytest.mark.parametrize("schedule", ["barrier", "pipelined"])
def test_fast_equals_reference_on_small_networks(name, schedule):
    net = _net(name)
    f = functional.run(net, _images(2), record_spikes=True)
    hw = load_hardware("45nm-generic", SMALL_CHIP)
    assert_modes_equal(net, f.spikes, hw, 3, schedule=schedule, counts=f.counts)


def _random_trains(net: Network, T: int, rate: float, rng) -> dict[str, SpikeTrain]:
    trains = {}
    for layer in net.layers:
        if layer.kind != "spiking":
            continue
        steps = [np.flatnonzero(rng.random(layer.neurons) < rate) for _ in range(T)]
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in steps])]).astype(np.int64)
        flat = np.concatenate(steps) if steps else np.zeros(0)
        trains[layer.name] = SpikeTrain(offsets=offsets, indices=flat.astype(np.int32))
    return trains


chips = st.fixed_dictionaries({
    "tile__queue_depth_packets": st.integers(1, 4),
    "tile__accumulate_units": st.integers(1, 4),
    "tile__accumulate_latency_cycles": st.integers(1, 3),
    "tile__neuron_update_units": st.integers(1, 4),
    "tile__neuron_update_latency_cycles": st.integers(1, 3),
    "tile__weight_sram_capacity_bits": st.sampled_from([64, 512, 524288]),
    "noc__hop_latency_x_cycles": st.integers(1, 3),
    "noc__hop_latency_y_cycles": st.integers(1, 3),
    "noc__flit_cycles": st.integers(1, 3),
    "dram__latency_cycles": st.integers(0, 9),
    "schedule__barrier_cycles": st.integers(0, 7),
    "mesh__cols": st.integers(3, 5),
    "mesh__rows": st.integers(2, 3),
})


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["chain", "vgg5", "resnet-small"]))
    if kind == "chain":
        net = chain(draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)),
                    inputs=draw(st.integers(1, 5)))
    else:
        net = _net(kind, width=0.05)
    T = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**16))
    # a few images with their own rates: the fast mode simulates them as one batch
    rates = draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 1.0]), min_size=1, max_size=3))
    spikes = [_random_trains(net, T, rate, np.random.default_rng(seed + i))
              for i, rate in enumerate(rates)]
    return net, spikes, T, tiny_hw(**draw(chips)), draw(st.sampled_from(
        ["barrier", "pipelined"]))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(case=cases())
def test_fast_equals_reference_generated(case):
    net, spikes, T, hw, schedule = case
    assert_modes_equal(net, spikes, hw, T, schedule=schedule)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(case=cases())
def test_conservation(case):
    net, spikes, T, hw, schedule = case
    result, tls = run_mode(net, spikes, hw, T, schedule=schedule)
    counters = result.layers[list(col.CHIP_COUNTERS[3:])]
    assert (counters.to_numpy() >= 0).all()
    for i, tl in enumerate(tls):
        layers = result.layers[result.layers[col.IMAGE] == i]
        tiles = result.tiles[result.tiles[col.IMAGE] == i]
        _check_image(net, hw, schedule, layers, tiles, tl,
                     int(result.images[col.TOTAL_CYCLES][i]), result.mapping)


def _check_image(net, hw, schedule, layers, tiles, tl, total, mapping):
    """The conservation laws on one image's rows and timeline."""
    # every packet sent is received once
    assert layers[col.NOC_PACKETS].sum() == tiles[col.NOC_PACKETS_IN].sum()
    packets = tl.packet_table()
    assert len(packets) == layers[col.NOC_PACKETS].sum()
    assert len(np.unique(packets[:, :4], axis=0)) == len(packets)
    # a spike goes to every destination tile it reaches; its synaptic ops equal the layer's
    # fan-out: the receiving layers' synaptic ops are the functional count of the replayed spikes
    # weight bits fetched (SRAM + DRAM) = synaptic ops through weights x weight bits
    wb = hw.tile.weight_bits
    for layer in net.layers:
        rows = layers[col.LAYER] == layer.name
        first = any(p.source == "input" for p in layer.inputs)
        weighted = all(p.op != "identity" for p in layer.inputs)
        if not first and weighted:
            fetched = layers.loc[rows, [col.WEIGHT_SRAM_READ_BITS, col.DRAM_READ_BITS]].sum(axis=1)
            np.testing.assert_array_equal(fetched, layers.loc[rows, col.SYNAPTIC_OPS] * wb)
    # energy = sum of components
    np.testing.assert_allclose(layers[col.ENERGY], layers[list(col.ENERGY_COLUMNS)].sum(axis=1))
    assert (layers[list(col.ENERGY_COLUMNS)].to_numpy() >= 0).all()
    # cycles >= the work bound of every unit: a tile's unit is busy at most the whole latency,
    # and the accumulations of a tile need synops / units steps
    assert layers[col.CYCLES].groupby(layers[col.LAYER]).sum().max() <= total
    per_tile = tiles.groupby(col.TILE)[[col.BUSY_CYCLES, col.SYNAPTIC_OPS]].sum()
    assert (per_tile[col.BUSY_CYCLES] <= total).all()
    acc = -(-per_tile[col.SYNAPTIC_OPS] // hw.tile.accumulate_units)
    assert (acc * hw.tile.accumulate_latency_cycles <= total).all()
    # the queue never holds more than its depth
    assert layers[col.QUEUE_PEAK].max() <= hw.tile.queue_depth_packets
    # static cycles: every powered tile for the whole latency
    assert layers[col.STATIC_CYCLES].sum() == total * mapping[col.TILES].sum()
    # every tile completes its phases in order, and timestep t+1 after its fire phase of t
    phases = tl.phase_end
    assert (np.diff(phases, axis=2) >= 0).all()
    np.testing.assert_array_equal(phases[..., Phase.FIRE], tl.fire_end)
    np.testing.assert_array_equal(phases[..., Phase.SEND], tl.end)
    assert (phases[1:, :, Phase.BARRIER] >= phases[:-1, :, Phase.FIRE]).all()
    # a layer's activity never ends earlier than in the timestep before
    assert (layers[col.CYCLES] >= 0).all()
    if schedule == "barrier":
        # every tile is released together, barrier_cycles after the slowest tile's SEND
        release = tl.end.max(axis=1)[:-1] + hw.schedule.barrier_cycles
        np.testing.assert_array_equal(phases[1:, :, Phase.BARRIER],
                                      np.broadcast_to(release[:, None], phases[1:, :, 0].shape))


def test_replay_leaves_functional_results_unchanged():
    """Timing never changes what spikes: the same spikes under very different chips."""
    net = _net("vgg5")
    x = _images(2)
    a = simulate(net, x, hardware=load_hardware("45nm-generic", SMALL_CHIP))
    b = simulate(net, x, hardware=load_hardware(
        "45nm-generic", {**SMALL_CHIP, "tile.queue_depth_packets": 1,
                         "tile.accumulate_units": 1}), schedule="pipelined")
    np.testing.assert_array_equal(a.images[col.PREDICTION], b.images[col.PREDICTION])
    cols = [col.SPIKES_IN, col.SPIKES_OUT, col.SYNAPTIC_OPS]
    pd.testing.assert_frame_equal(a.layers[cols], b.layers[cols])
    assert (b.images[col.TOTAL_CYCLES] != a.images[col.TOTAL_CYCLES]).all()


def test_bad_arguments():
    net = chain([2])
    with pytest.raises(ValueError, match="mode must be one of"):
        simulate(net, np.zeros((1, 1)), hardware=tiny_hw(), mode="slow")
    with pytest.raises(ValueError, match="schedule must be one of"):
        simulate(net, np.zeros((1, 1)), hardware=tiny_hw(), schedule="async")
    with pytest.raises(ValueError, match="labels have shape"):
        simulate(net, np.zeros((2, 1)), np.zeros(3), hardware=tiny_hw())


def test_replay_joins_counts_by_key_not_position():
    net = _net("vgg5")
    f = functional.run(net, _images(3), record_spikes=True)
    hw = load_hardware("45nm-generic", SMALL_CHIP)
    ordered, _ = run_mode(net, f.spikes, hw, 3, counts=f.counts)
    shuffled, _ = run_mode(net, f.spikes, hw, 3, counts=f.counts.sample(frac=1, random_state=0))
    keys = [col.IMAGE, col.LAYER, col.TIMESTEP]
    pd.testing.assert_frame_equal(
        ordered.layers.set_index(keys).sort_index(), shuffled.layers.set_index(keys).sort_index())
    with pytest.raises(ValueError, match="one row per image"):
        run_mode(net, f.spikes, hw, 3, counts=f.counts.iloc[1:])
    with pytest.raises(ValueError, match="one row per image"):
        run_mode(net, f.spikes[:2], hw, 3, counts=f.counts)


DIGITS = "trained_models/digits-vgg5"


@pytest.mark.equivalence
def test_fast_equals_reference_on_shipped_digits_model():
    from pathlib import Path

    from accelsim.model import data
    from accelsim.model.modelfile import load_model

    root = Path(__file__).resolve().parents[1]
    if not (root / f"{DIGITS}.json").exists():
        pytest.skip(f"{DIGITS} is not shipped in this checkout")
    net = load_model(root / DIGITS)
    images = data.load_images("digits", "test")
    x = data.normalise(images.images[:2], net.input_mean, net.input_std)
    f = functional.run(net, x, record_spikes=True)
    hw = load_hardware("45nm-generic", {"mesh.rows": 4, "mesh.cols": 4})
    fast, _ = assert_modes_equal(net, f.spikes, hw, net.timesteps, counts=f.counts)
    assert fast.layers[col.NOC_PACKETS].sum() > 1000


def test_fast_batches_equal_one_image_at_a_time(monkeypatch):
    """The fast mode runs a batch of images in one SimPy environment; every image must come out
    exactly as when simulated alone, whatever the batch it lands in."""
    net = _net("resnet-small")
    f = functional.run(net, _images(5, seed=3), record_spikes=True)
    hw = load_hardware("45nm-generic", SMALL_CHIP)
    together, _ = run_mode(net, f.spikes, hw, 3, counts=f.counts)
    monkeypatch.setattr(fast, "BATCH", 2)
    split, _ = run_mode(net, f.spikes, hw, 3, counts=f.counts)
    pd.testing.assert_frame_equal(together.layers, split.layers)
    pd.testing.assert_frame_equal(together.tiles, split.tiles)
    for i, trains in enumerate(f.spikes):
        counts = f.counts[f.counts[col.IMAGE] == i].assign(**{col.IMAGE: 0})
        alone, _ = run_mode(net, [trains], hw, 3, counts=counts)
        mine = together.layers[together.layers[col.IMAGE] == i].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine.assign(**{col.IMAGE: 0}), alone.layers)
    assert together.layers[col.CYCLES].nunique() > 1


@st.composite
def spike_layers(draw):
    """A layer's neurons on tiles (any assignment, as channel groups x row bands interleave in
    flat order), the tiles' fire starts, and spikes, ascending or not."""
    tiles = draw(st.integers(1, 4))
    tile_of = np.array(draw(st.lists(st.integers(0, tiles - 1), min_size=1, max_size=40)),
                       dtype=np.int32)
    local_of = np.zeros_like(tile_of)
    for k in range(tiles):
        local_of[tile_of == k] = np.arange((tile_of == k).sum())
    spread = draw(st.sampled_from([0, 10, 10**6]))
    fire_start = np.array(draw(st.lists(st.integers(0, spread), min_size=tiles,
                                        max_size=tiles)), dtype=np.int64)
    neurons = draw(st.lists(st.integers(0, len(tile_of) - 1), unique=True, max_size=20))
    if draw(st.booleans()):
        neurons = sorted(neurons)
    return (np.array(neurons, dtype=np.int32), tile_of, local_of, tiles, fire_start,
            draw(st.integers(1, 4)), draw(st.integers(1, 3)))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(case=spike_layers())
def test_ready_kernel_orders_by_ready_then_tile_then_neuron(case):
    indices, tile_of, local_of, tiles, fire_start, units, latency = case
    n, local, ready = fast.ready_kernel(indices, tile_of, local_of, tiles, fire_start, units,
                                        latency)
    tile = tile_of[indices]
    expect = fire_start[tile] + (local_of[indices] // units + 1) * latency
    order = np.lexsort((indices, tile, expect))
    np.testing.assert_array_equal(n, indices[order])
    np.testing.assert_array_equal(local, tile[order])
    np.testing.assert_array_equal(ready, expect[order])


@settings(max_examples=50, deadline=None, derandomize=True)
@given(rows=st.lists(st.lists(st.integers(-3, 3), min_size=4, max_size=4), min_size=1,
                     max_size=30))
def test_joined_neuron_classes_reproduce_every_part(rows):
    """Classes of two tables at once: summed (projections into the same tiles) or side by side
    (two consumers), every neuron's joint row is its rows in the parts."""
    table = np.array(rows, dtype=np.int64)
    parts = []
    for cols in (table[:, :2], table[:, 2:]):
        distinct, cls = np.unique(cols, axis=0, return_inverse=True)
        parts.append((cls.reshape(-1), (distinct, 2 * distinct)))
    cls, (a, b) = _join(parts, add=False)
    np.testing.assert_array_equal(a[cls], table)
    np.testing.assert_array_equal(b[cls], 2 * table)
    cls, (a, _) = _join(parts, add=True)
    np.testing.assert_array_equal(a[cls], table[:, :2] + table[:, 2:])
    assert len(a) == len(np.unique(table, axis=0))  # one class per distinct combination


def test_fast_mode_refuses_parallel_senders():
    """Two layers fed by the input, summed by a third: their packets interleave in queue order,
    which only the reference mode follows; the fast mode says so instead of mis-ordering."""
    lin = lambda src, w: Projection(source=src, op="linear", weight=w)  # noqa: E731
    layers = (Layer(name="a", kind="spiking", shape=(6,), inputs=(lin(INPUT, "a"),)),
              Layer(name="b", kind="spiking", shape=(1,), inputs=(lin(INPUT, "b"),)),
              Layer(name="c", kind="spiking", shape=(2,), inputs=(lin("a", "ca"), lin("b", "cb"))),
              Layer(name="out", kind="output", shape=(1,), inputs=(lin("c", "o"),)))
    shapes = {"a": (6, 1), "b": (1, 1), "ca": (2, 6), "cb": (2, 1), "o": (1, 2)}
    net = Network(architecture=Architecture(name="branches", input_shape=(1,), num_classes=1,
                                            layers=layers),
                  weights={k: np.ones(v, dtype=np.float32) for k, v in shapes.items()},
                  timesteps=1, input_mean=(0.0,), input_std=(1.0,))
    spikes = [{"a": train([list(range(6))]), "b": train([[0]]), "c": train([[0, 1]])}]
    hw = tiny_hw(mesh__cols=4, tile__queue_depth_packets=1)
    with pytest.raises(ValueError, match="'b' does not depend on 'a'.*mode='reference'"):
        run_mode(net, spikes, hw, 1)
    ref, tls = run_mode(net, spikes, hw, 1, mode="reference")
    # tiles a 0, b 1, c 2, out 3. b: MAC 0-1, fire 1-2, its spike ready at 2; a: MAC 0-6, fire
    # 6-12, spikes ready 7..12. In queue order b's packet goes first: admitted at 2, no stall
    packets = tls[0].packet_table()
    from_b = packets[packets[:, 1] == 1]
    np.testing.assert_array_equal(from_b[:, [4, 5]], [[2, 2]])
    assert packets[:, 5].min() == 2
    assert ref.layers.set_index(col.LAYER).loc["b", col.STALL_CYCLES] == 0


def _naive_fanout(net: Network, place, src_name: str, weight_bits: int):
    """(synops, SRAM bits, DRAM bits) per (source neuron, tile of ``place``) by enumerating every
    source neuron's kernel window (after its pool) over every output neuron."""
    layer = place.layer
    (p, rows), = [(p, r) for p, r in zip(layer.inputs, place.projections, strict=True)
                  if p.source == src_name]
    c, h, w = net.architecture.source_shape(src_name)
    co, ho, wo = layer.shape
    tile_of = place.neuron_tiles()[0]
    syn = np.zeros((c * h * w, len(place.tiles)), dtype=np.int64)
    for n in range(c * h * w):
        y, x = (n // w) % h, n % w
        dy = y // p.pool + p.padding - np.arange(ho) * p.stride
        dx = x // p.pool + p.padding - np.arange(wo) * p.stride
        reach = ((dy >= 0) & (dy < p.kernel))[:, None] & ((dx >= 0) & (dx < p.kernel))[None, :]
        for o in range(co):
            flat = o * ho * wo + np.flatnonzero(reach)
            np.add.at(syn[n], tile_of[flat], 1)
    spilled = (np.arange(c * h * w) // (h * w))[:, None] >= rows.rows_in_sram[None, :]
    bits = syn * weight_bits
    return syn, np.where(spilled, 0, bits), np.where(spilled, bits, 0)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(c=st.integers(1, 3), size=st.integers(1, 4), pool=st.sampled_from([1, 2]),
       kernel=st.integers(1, 3), stride=st.integers(1, 2), padding=st.integers(0, 1),
       c_out=st.integers(1, 3), capacity=st.sampled_from([40, 200, 524288]), data=st.data())
def test_fanout_is_exact_at_band_boundaries(c, size, pool, kernel, stride, padding, c_out,
                                            capacity, data):
    """Any conv geometry on any split (channel blocks or row bands): a spike's packets go to the
    tiles its window reaches, with exactly the synops, SRAM and DRAM bits of those neurons."""
    h, w = size * pool, size * pool + pool
    out = [(s + 2 * padding - kernel) // stride + 1 for s in (size, size + 1)]
    if min(out) < 1:
        return
    conv = Projection(source="a", op="conv", weight="b", pool=pool, kernel=kernel,
                      stride=stride, padding=padding)
    layers = (Layer(name="a", kind="spiking", shape=(c, h, w), inputs=(
                  Projection(source=INPUT, op="conv", weight="a"),)),
              Layer(name="b", kind="spiking", shape=(c_out, *out), inputs=(conv,)),
              Layer(name="out", kind="output", shape=(1,), inputs=(
                  Projection(source="b", op="linear", weight="o"),)))
    shapes = {"a": (c, c, 1, 1), "b": (c_out, c, kernel, kernel), "o": (1, c_out * out[0] * out[1])}
    net = Network(architecture=Architecture(name="g", input_shape=(c, h, w), num_classes=1,
                                            layers=layers),
                  weights={k: np.ones(v, dtype=np.float32) for k, v in shapes.items()},
                  timesteps=1, input_mean=(0.0,) * c, input_std=(1.0,) * c)
    n = data.draw(st.integers(1, c_out * out[0]))
    hw = tiny_hw(mesh__rows=8, mesh__cols=8, tile__weight_sram_capacity_bits=capacity)
    mapping = map_network(net, hw, {"a": 1, "b": n, "out": 1})
    plan = build_plan(net, hw, mapping)
    fo = plan.fanout[0]
    cols = fo.dest_layer == 1
    syn, sram, dram = _naive_fanout(net, mapping.placement("b"), "a", hw.tile.weight_bits)
    np.testing.assert_array_equal(fo.synops[fo.neuron_class][:, cols], syn)
    np.testing.assert_array_equal(fo.sram_bits[fo.neuron_class][:, cols], sram)
    np.testing.assert_array_equal(fo.dram_bits[fo.neuron_class][:, cols], dram)
    # the analog input's MACs are shared out exactly over the tiles of a split layer
    assert plan.mac_count[plan.layer_tiles[0]].sum() == c * c * h * w


@st.composite
def split_cases(draw):
    """A small VGG or ResNet with every layer on a random number of tiles (row bands where that
    exceeds its channels) under either placement policy, spikes from the functional core."""
    kind = draw(st.sampled_from(["vgg5", "resnet-small"]))
    net = _net(kind, width=0.05, threshold=draw(st.sampled_from([0.1, 0.3])),
               seed=draw(st.integers(0, 3)))
    counts = {layer.name: draw(st.integers(1, min(6, max_tiles(layer)))) for layer in net.layers}
    cols = draw(st.integers(3, 6))
    hw = tiny_hw(**{**draw(chips), "mesh__cols": cols,
                    "mesh__rows": -(-sum(counts.values()) // cols),
                    "mapping__policy": draw(st.sampled_from(["spread", "compact"]))})
    images = _images(draw(st.integers(1, 2)), seed=draw(st.integers(0, 99)))
    return net, images, counts, hw, draw(st.sampled_from(["barrier", "pipelined"]))


@settings(max_examples=20, deadline=None, derandomize=True)
@given(case=split_cases())
def test_random_splits_fast_equals_reference_and_conserve_spikes(case):
    net, images, counts, hw, schedule = case
    T = net.timesteps
    f = functional.run(net, images, record_spikes=True)
    fast, tls = assert_modes_equal(net, f.spikes, hw, T, schedule=schedule,
                                   tiles_per_layer=counts, counts=f.counts)
    # the chip's synaptic ops and spikes are the functional core's, on any split
    keys = [col.IMAGE, col.LAYER, col.TIMESTEP]
    merged = fast.layers.merge(f.counts, on=keys, suffixes=("", "_f"))
    for c in (col.SPIKES_OUT, col.SYNAPTIC_OPS):
        np.testing.assert_array_equal(merged[c], merged[f"{c}_f"], err_msg=c)
    for i, tl in enumerate(tls):
        _check_image(net, hw, schedule, fast.layers[fast.layers[col.IMAGE] == i],
                     fast.tiles[fast.tiles[col.IMAGE] == i], tl,
                     int(fast.images[col.TOTAL_CYCLES][i]), fast.mapping)
