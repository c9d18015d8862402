"""accelsim's operation counts next to NeuroBench's definitions (README, "NeuroBench names").

NeuroBench counts a layer's synaptic operations by running a copy of the layer with every
non-zero weight set to 1 on the input with every non-zero value set to 1, and summing the output
(``Effective_ACs`` when the input is binary spikes, ``Effective_MACs`` otherwise; ``Dense`` with
all inputs and weights set to 1), on every forward call. The same computation is written here in
torch, independently of accelsim's kernels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from accelsim.model.network import INPUT, Architecture, Layer, Network, Projection
from accelsim.spiking.functional import run


def _net(zero_some_weights: bool) -> Network:
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.6, size=(4, 2, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.5, size=(6, 4, 3, 3)).astype(np.float32)
    w3 = rng.normal(0, 0.3, size=(5, 6 * 6 * 6)).astype(np.float32)
    if zero_some_weights:
        w2[:, :, 1, 1] = 0.0
        w3[:, ::3] = 0.0
    layers = (
        Layer(name="c1", kind="spiking", shape=(4, 6, 6), threshold=0.8, leak=0.9, inputs=(
            Projection(source=INPUT, op="conv", weight="c1.w", kernel=3, padding=1),)),
        Layer(name="c2", kind="spiking", shape=(6, 6, 6), threshold=0.6, leak=0.95, inputs=(
            Projection(source="c1", op="conv", weight="c2.w", kernel=3, padding=1),)),
        Layer(name="out", kind="output", shape=(5,), inputs=(
            Projection(source="c2", op="linear", weight="out.w"),)),
    )
    arch = Architecture(name="nb", input_shape=(2, 6, 6), num_classes=5, layers=layers)
    return Network(architecture=arch, weights={"c1.w": w1, "c2.w": w2, "out.w": w3},
                   timesteps=4, input_mean=(0.0, 0.0), input_std=(1.0, 1.0))


def _neurobench_counts(net: Network, image: np.ndarray, trains) -> dict[tuple[str, int], int]:
    """Effective operations per (layer, timestep) by NeuroBench's rule."""
    w = {k: torch.from_numpy((v != 0).astype(np.float64)) for k, v in net.weights.items()}
    x = torch.from_numpy((image != 0).astype(np.float64))[None]
    ops = {}
    for t in range(net.timesteps):
        ops[("c1", t + 1)] = int(F.conv2d(x, w["c1.w"], padding=1).sum())
        s1 = np.zeros(4 * 6 * 6)
        s1[trains["c1"].at(t)] = 1
        ops[("c2", t + 1)] = int(F.conv2d(torch.from_numpy(s1.reshape(1, 4, 6, 6)), w["c2.w"],
                                          padding=1).sum())
        s2 = np.zeros(6 * 6 * 6)
        s2[trains["c2"].at(t)] = 1
        ops[("out", t + 1)] = int(F.linear(torch.from_numpy(s2[None]), w["out.w"]).sum())
    return ops


def _accelsim(net, image):
    result = run(net, image[None], record_spikes=True)
    rows = result.counts.set_index(["layer", "timestep"])
    return rows, result.spikes[0]


def test_synaptic_ops_are_neurobench_effective_acs_when_no_weight_is_zero():
    net = _net(zero_some_weights=False)
    image = np.random.default_rng(1).normal(size=(2, 6, 6))
    rows, trains = _accelsim(net, image)
    nb = _neurobench_counts(net, image, trains)
    assert sum(len(tr.indices) for tr in trains.values()) > 0
    for layer in ("c2", "out"):
        for t in range(1, net.timesteps + 1):
            assert rows.loc[(layer, t), "synaptic_ops"] == nb[(layer, t)]
    # the analog first layer: accelsim counts its dense MACs (every real tap, zero pixels
    # included) once per image; NeuroBench counts non-zero inputs x non-zero weights at every
    # forward call, i.e. T times when the model recomputes the constant current
    dense = int(F.conv2d(torch.ones(1, 2, 6, 6), torch.ones(4, 2, 3, 3), padding=1).sum())
    assert rows.loc[("c1", 1), "macs"] == dense
    assert [rows.loc[("c1", t), "macs"] for t in range(2, net.timesteps + 1)] == [0, 0, 0]
    assert nb[("c1", 1)] == dense  # no zero pixel or weight here, so one call's counts agree


def test_zero_weights_count_in_accelsim_not_in_neurobench():
    net = _net(zero_some_weights=True)
    image = np.random.default_rng(1).normal(size=(2, 6, 6))
    rows, trains = _accelsim(net, image)
    nb = _neurobench_counts(net, image, trains)
    mine = sum(int(rows.loc[("c2", t), "synaptic_ops"]) for t in range(1, 5))
    theirs = sum(nb[("c2", t)] for t in range(1, 5))
    assert mine > theirs > 0  # an event-driven core adds the zero weight all the same
