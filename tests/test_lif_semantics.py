"""The PyTorch reference against hand-computed LIF trajectories (docs/design.md §2).

Every number here was worked out on paper from the update rule
``u = leak * u + I; o = u > v; u -= v * o`` (no delay between layers, output accumulates only).
Values are binary fractions so float64 reproduces them exactly.
"""

import numpy as np
import pytest
import torch

from accelsim.model.network import Architecture, Layer, Projection
from accelsim.training.torch_snn import SpikeFunction, SpikingNetwork, spike


def _module(layers, input_shape, weights, classes=2):
    arch = Architecture(name="t", input_shape=input_shape, num_classes=classes,
                        layers=tuple(layers))
    module = SpikingNetwork(arch).double()
    with torch.no_grad():
        for name, w in weights.items():
            module.weights[name.replace(".", "__")].copy_(torch.tensor(w, dtype=torch.float64))
    return module


def _linear(name, source, units, kind="spiking", leak=1.0, threshold=1.0, pool=1):
    return Layer(name=name, kind=kind, shape=(units,), leak=leak, threshold=threshold,
                 inputs=(Projection(source=source, op="linear", weight=f"{name}.w", pool=pool),))


def _spikes(module, x, timesteps):
    out = module.forward_snn(torch.tensor(x, dtype=torch.float64), timesteps, record=True)
    return out.logits.detach().numpy(), out.spike_counts.detach().numpy()


def test_soft_reset_strict_threshold_and_no_delay():
    # Constant current 0.75, leak 1, threshold 1:
    #   u: .75, 1.5 -> spike (.5), 1.25 -> spike (.25), 1.0 (not > 1), 1.75 -> spike (.75)
    # A reset-to-zero neuron would give 0,1,0,1,0 instead.
    hidden = _linear("h", "input", 1)
    out = _linear("out", "h", 2, kind="output")
    module = _module([hidden, out], (1,), {"h.w": [[1.0]], "out.w": [[1.0], [-2.0]]})
    logits, counts = _spikes(module, [[0.75]], 5)
    assert counts[0, 0].tolist() == [0, 1, 1, 0, 1]
    # The output integrates the hidden spikes of the *same* timestep, with no leak or threshold.
    assert logits[0].tolist() == [3.0, -6.0]


def test_leak_decays_the_membrane():
    # leak 0.5, current 0.75, threshold 1:
    #   .75; .375 + .75 = 1.125 -> spike (.125); .0625 + .75 = .8125;
    #   .40625 + .75 = 1.15625 -> spike (.15625); .078125 + .75 = .828125
    hidden = _linear("h", "input", 2, leak=0.5)
    out = _linear("out", "h", 2, kind="output")
    module = _module([hidden, out], (2,), {"h.w": [[1.0, 0.0], [0.0, 1.0]],
                                           "out.w": [[1.0, 0.0], [0.0, 1.0]]})
    logits, counts = _spikes(module, [[0.75, 2.5]], 5)
    # Second neuron: 2.5 -> spike (1.5); .75 + 2.5 = 3.25 -> spike (2.25); 1.125 + 2.5 -> spike
    # ... one spike per step (soft reset never lets it fall below threshold).
    assert counts[0, 0].tolist() == [1, 2, 1, 2, 1]
    assert logits[0].tolist() == [2.0, 5.0]


def test_pooled_spikes_arrive_as_fractions():
    # 1x1 conv (weight 1) over a 2x2 image [[2, 0], [.75, 2]], threshold 1, leak 1:
    #   t1 spikes [[1, 0], [0, 1]] (pool: .5); t2 [[1, 0], [1, 1]] (pool: .75)
    hidden = Layer(name="h", kind="spiking", shape=(1, 2, 2), inputs=(
        Projection(source="input", op="conv", weight="h.w", kernel=1),))
    out = _linear("out", "h", 2, kind="output", pool=2)
    module = _module([hidden, out], (1, 2, 2), {"h.w": [[[[1.0]]]], "out.w": [[1.0], [4.0]]})
    logits, counts = _spikes(module, [[[[2.0, 0.0], [0.75, 2.0]]]], 2)
    assert counts[0, 0].tolist() == [2, 3]
    assert logits[0].tolist() == [1.25, 5.0]


def test_identity_shortcut_adds_into_second_membrane():
    # h1: current .75 -> spikes 0, 1, 1, 0 (as in the soft-reset test).
    # h2: current = 0.5 * o1 (1x1 conv) + o1 (identity) = 1.5 * o1, threshold 1.25, leak 1:
    #   t2 1.5 -> spike (.25); t3 .25 + 1.5 = 1.75 -> spike (.5); t4 .5.
    # Without the shortcut h2 would see 0.5 * o1 and never reach 1.25.
    h1 = Layer(name="h1", kind="spiking", shape=(1, 1, 1), inputs=(
        Projection(source="input", op="conv", weight="h1.w", kernel=1),))
    h2 = Layer(name="h2", kind="spiking", shape=(1, 1, 1), threshold=1.25, inputs=(
        Projection(source="h1", op="conv", weight="h2.w", kernel=1),
        Projection(source="h1", op="identity")))
    out = _linear("out", "h2", 2, kind="output")
    module = _module([h1, h2, out], (1, 1, 1), {"h1.w": [[[[1.0]]]], "h2.w": [[[[0.5]]]],
                                                "out.w": [[1.0], [-1.0]]})
    logits, counts = _spikes(module, [[[[0.75]]]], 4)
    assert counts[0, 0].tolist() == [0, 1, 1, 0]
    assert counts[0, 1].tolist() == [0, 1, 1, 0]
    assert logits[0].tolist() == [2.0, -2.0]


@pytest.mark.parametrize(("u", "v", "grad_u", "grad_v"), [
    (3.0, 2.0, 0.3 * 0.5 / 2.0, 0.3 * 0.5 * (-3.0 / 4.0)),  # z = 0.5
    (2.0, 2.0, 0.3 / 2.0, 0.3 * (-2.0 / 4.0)),              # z = 0: the peak
    (1.0, 2.0, 0.3 * 0.5 / 2.0, 0.3 * 0.5 * (-1.0 / 4.0)),  # z = -0.5
    (5.0, 2.0, 0.0, 0.0),                                   # z = 1.5: outside the support
])
def test_surrogate_gradient_values(u, v, grad_u, grad_v):
    """d o / d z = 0.3 max(0, 1 - |z|), z = u / v - 1, chained to u and v."""
    ut = torch.tensor(u, dtype=torch.float64, requires_grad=True)
    vt = torch.tensor(v, dtype=torch.float64, requires_grad=True)
    spike(ut, vt).backward()
    assert ut.grad.item() == pytest.approx(grad_u, abs=1e-15)
    assert vt.grad.item() == pytest.approx(grad_v, abs=1e-15)


def _ramp(z: torch.Tensor) -> torch.Tensor:
    """An antiderivative of the surrogate 0.3 max(0, 1 - |z|) (smooth enough for FD)."""
    zc = z.clamp(-1.0, 1.0)
    return 0.3 * (zc - zc * zc.abs() / 2.0 + 0.5)


def test_leak_and_threshold_gradients_match_finite_differences(monkeypatch):
    """BPTT through leak, threshold and soft reset is the exact derivative of the network.

    With the spike's forward replaced by an antiderivative of the surrogate (the backward
    untouched), the network is differentiable and autograd must agree with central finite
    differences in float64: this checks the wiring through time (leak * u[t-1], u / v and the
    reset -v * o) and the surrogate backward formula together.
    """

    def smooth_forward(ctx, u, v):
        ctx.save_for_backward(u, v)
        return _ramp(u / v - 1.0)

    monkeypatch.setattr(SpikeFunction, "forward", staticmethod(smooth_forward))
    h1 = _linear("h1", "input", 3, leak=0.8, threshold=0.9)
    h2 = _linear("h2", "h1", 2, leak=0.7, threshold=0.6)
    out = _linear("out", "h2", 2, kind="output")
    rng = np.random.default_rng(3)
    module = _module([h1, h2, out], (2,), {"h1.w": rng.uniform(0.2, 1.0, (3, 2)),
                                           "h2.w": rng.uniform(0.1, 0.8, (2, 3)),
                                           "out.w": rng.normal(size=(2, 2))})
    x = torch.tensor(rng.uniform(0.0, 1.0, (4, 2)), dtype=torch.float64)
    params = [module.leak["h1"], module.leak["h2"], module.threshold["h1"],
              module.threshold["h2"]]
    originals = [p.detach().clone() for p in params]

    def functional(*values):
        # Rebind the parameters to the inputs so gradients flow into them.
        names = [("leak", "h1"), ("leak", "h2"), ("threshold", "h1"), ("threshold", "h2")]
        saved = {}
        for (group, name), value in zip(names, values, strict=True):
            d = getattr(module, group)
            saved[(group, name)] = d[name]
            d._parameters[name] = value  # plain tensor in place of the Parameter
        try:
            return module.forward_snn(x, 4).logits
        finally:
            for (group, name), p in saved.items():
                getattr(module, group)._parameters[name] = p

    inputs = tuple(o.clone().requires_grad_(True) for o in originals)
    assert torch.autograd.gradcheck(functional, inputs, eps=1e-6, atol=1e-7)
    # And the gradients are not trivially zero: leak and threshold really steer the output.
    grads = torch.autograd.grad(functional(*inputs).sum(), inputs)
    assert all(g.abs() > 1e-6 for g in grads)
