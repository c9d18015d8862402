"""NIR export and import: accelsim networks as Neuromorphic Intermediate Representation graphs.

NIR (PyPI ``nir``, an optional dependency: ``pip install 'accelsim[interop]'``) describes a
spiking network as a graph of continuous-time primitives. The DIET-SNN neuron is discrete:

    u[t] = lambda * u[t-1] + I[t];   o[t] = u[t] > v;   u[t] -= v * o[t]        (soft reset)

Mapping at the time step ``dt`` (default :data:`DT` = 1e-4, the step snnTorch's and Norse's NIR
converters use). NIR's LIF, ``tau dv/dt = (v_leak - v) + r I``, integrated by forward Euler over
one step, is ``v <- (1 - dt/tau) v + (r dt / tau) I``. So a spiking layer with leak lambda < 1 is

    LIF(tau = dt / (1 - lambda), r = tau / dt, v_leak = 0, v_threshold = v, v_reset = 0)

(unit input gain ``r dt / tau = 1``), and a layer with lambda = 1 is ``IF(r = 1 / dt,
v_threshold = v, v_reset = 0)``. The accumulate-only output layer is NIR's integrator
``I(r = 1 / dt)`` feeding the ``Output`` node. Parameters are written per neuron (the layer's
shape), all equal; a conv or linear projection is a ``Conv2d`` (zero bias) / ``Linear``, except
that a layer's bias (a constant current every step, one value per channel or unit) rides on its
first weighted projection: that ``Conv2d``'s ``bias``, or an ``Affine`` instead of the
``Linear``; an average pool of the source's spikes is an ``AvgPool2d`` (kernel = stride); a
linear projection from a (C, H, W) layer goes through ``Flatten`` (C, H, W order, as accelsim
flattens); a ResNet shortcut is an edge from the source neuron (or its pool) straight into the
target neuron, and NIR sums the currents of every edge into a node, as accelsim does.

What NIR does not say, and how accelsim records it (node and graph ``metadata``, which NIR
files keep, so that export -> import is exact):

- the reset: NIR 1.0.8 resets to ``v_reset`` (hard reset); the DIET-SNN subtracts the threshold.
  Each neuron node carries ``reset = "subtract"``. On import every IF/LIF/CubaLIF is read as a
  soft reset with ``v_reset`` = 0 required, because exporters (snnTorch) write ``v_reset = 0``
  for their subtract-reset neurons; a node whose metadata says ``reset`` is anything else is
  refused. The comparison is strict ``v > v_threshold`` in both NIR and accelsim.
- the leak exactly: ``1 - dt / tau`` need not round back to lambda, so each neuron node also
  carries ``leak`` (float64); on import it is used when it agrees with ``tau`` to 1e-9.
- the discrete time step itself, the number of timesteps T, direct input encoding (the same
  analog image enters the first layer at every step), the input normalisation, the data set and
  the readout (argmax over the output layer's sum over T): graph metadata ``dt``,
  ``timesteps``, ``input_mean``, ``input_std``, ``dataset``, ``name``, ``architecture``.

Import accepts graphs built from Input, Output, IF, LIF, CubaLIF (when its synaptic current
does not outlast a step: ``tau_syn = dt``), I (accumulate-only output), Conv2d, Linear, Affine,
AvgPool2d, SumPool2d, Flatten and Scale. A foreign LIF's input gain ``r dt / tau`` (and a
CubaLIF's ``w_in``) is folded into its incoming weights, with a warning, when it differs from 1
by more than 1e-6. The biases of a neuron's incoming ``Conv2d`` / ``Affine`` nodes (times any
``Scale`` after them, and the input gain) add up to the layer's bias, named ``<layer>.bias``
(or the name in the neuron's ``bias`` metadata). Not supported, each with an error naming the
node: a bias on a layer without a weighted input (export), per-neuron leaks or thresholds that
differ within a layer, ``v_leak`` or ``v_reset`` not zero, pools with padding or kernel !=
stride, dilation, groups, non-square kernels, recurrent edges, nested graphs, and every other
primitive (Delay, Threshold, LI, Conv1d, ...). A graph that ends in a spiking neuron gets an
accumulate-only output layer ``readout`` that sums its spikes (the usual rate readout).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from accelsim.model.network import (
    INPUT,
    Architecture,
    Layer,
    Network,
    Projection,
    Shape,
    pooled_shape,
    projected_shape,
)

DT = 1e-4
"""Seconds per timestep in the NIR graphs accelsim writes and, by default, reads."""

GAIN_TOLERANCE = 1e-6
"""A foreign neuron's input gain within this of 1 is taken as exactly 1."""

NEURONS = ("IF", "LIF", "CubaLIF")
OPS = ("Conv2d", "Linear", "Affine")
POOLS = ("AvgPool2d", "SumPool2d")


class NIRError(ValueError):
    """A graph accelsim cannot express; the message names the node and the primitive."""


def _nir():
    try:
        import nir
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise NIRError("NIR support needs the 'nir' package: pip install 'accelsim[interop]'"
                       ) from exc
    return nir


# -- export --------------------------------------------------------------------------------------

def to_nir(network: Network, dt: float = DT) -> Any:
    """``network`` as a ``nir.NIRGraph`` (see the module docstring for the mapping)."""
    nir = _nir()
    arch = network.architecture
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(arch.input_shape))}
    edges: list[tuple[str, str]] = []
    names = {INPUT: "input"}
    for index, layer in enumerate(arch.layers):
        names[layer.name] = layer.name
        nodes[layer.name] = _neuron_node(nir, layer, index, dt)
        weighted = [p for p in layer.inputs if p.op != "identity"]
        if layer.bias is not None and not weighted:
            raise NIRError(f"layer {layer.name!r} has a bias but no conv or linear input; NIR "
                           "carries a bias only on a Conv2d or Affine node")
        for k, p in enumerate(layer.inputs):
            chain = [names[p.source]]
            shape = arch.source_shape(p.source)
            if p.pool > 1:
                pool = f"{layer.name}.in{k}.pool"
                nodes[pool] = nir.AvgPool2d(kernel_size=np.array([p.pool, p.pool]),
                                            stride=np.array([p.pool, p.pool]),
                                            padding=np.array([0, 0]))
                chain.append(pool)
                shape = pooled_shape(shape, p.pool)
            if p.op != "identity":
                w = np.asarray(network.weights[p.weight], dtype=np.float32)  # type: ignore[index]
                op = p.weight  # e.g. "conv1.weight": the neuron node is "conv1"
                bias = (np.asarray(network.weights[layer.bias], dtype=np.float32)
                        if layer.bias is not None and p is weighted[0] else None)
                if p.op == "conv":
                    nodes[op] = nir.Conv2d(input_shape=tuple(shape[1:]), weight=w,
                                           stride=p.stride, padding=p.padding, dilation=1,
                                           groups=1, bias=np.zeros(w.shape[0], np.float32)
                                           if bias is None else bias)
                else:
                    if len(shape) > 1:
                        flat = f"{layer.name}.in{k}.flatten"
                        nodes[flat] = nir.Flatten(input_type={"input": np.array(shape)},
                                                  start_dim=0, end_dim=-1)
                        chain.append(flat)
                    nodes[op] = (nir.Linear(weight=w) if bias is None else
                                 nir.Affine(weight=w, bias=bias))
                chain.append(op)
            chain.append(layer.name)
            edges += list(zip(chain[:-1], chain[1:], strict=False))
    last = arch.layers[-1].name
    out = "output" if "output" not in nodes else "output.node"
    nodes[out] = nir.Output(output_type=np.array(arch.layers[-1].shape))
    edges.append((last, out))
    metadata = {"format": "accelsim", "dt": float(dt), "timesteps": int(network.timesteps),
                "name": network.name, "architecture": arch.name, "dataset": network.dataset or "",
                "input_mean": np.array(network.input_mean, dtype=np.float64),
                "input_std": np.array(network.input_std, dtype=np.float64)}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _neuron_node(nir, layer: Layer, index: int, dt: float):
    full = np.ones(layer.shape, dtype=np.float64)
    meta: dict[str, Any] = {"accelsim_layer": index}
    if layer.bias is not None:
        meta["bias"] = layer.bias
    if layer.kind == "output":
        return nir.I(r=full / dt, metadata={**meta, "readout": "sum over timesteps"})
    meta.update(reset="subtract", leak=float(layer.leak))
    v = full * layer.threshold
    if layer.leak == 1.0:
        return nir.IF(r=full / dt, v_threshold=v, v_reset=0 * full, metadata=meta)
    tau = dt / (1.0 - layer.leak)
    return nir.LIF(tau=full * tau, r=full * (tau / dt), v_leak=0 * full, v_threshold=v,
                   v_reset=0 * full, metadata=meta)


def export_nir(network: Network, path: str | Path, dt: float = DT) -> Path:
    """Write ``network`` as a NIR file (HDF5); returns the path."""
    nir = _nir()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(str(path), to_nir(network, dt))
    return path


# -- import --------------------------------------------------------------------------------------

def import_nir(path: str | Path, *, dt: float | None = None, timesteps: int | None = None,
               name: str | None = None) -> Network:
    """Read a NIR file into a :class:`Network` (see :func:`from_nir`)."""
    nir = _nir()
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"{path}: NIR file not found")
    try:
        graph = nir.read(str(path))
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise NIRError(f"{path}: not a readable NIR file ({type(exc).__name__}: {exc})") from exc
    try:
        named = (getattr(graph, "metadata", None) or {}).get("name")
        return from_nir(graph, dt=dt, timesteps=timesteps, name=name or named or path.stem)
    except NIRError as exc:
        raise NIRError(f"{path}: {exc}") from exc


def from_nir(graph: Any, *, dt: float | None = None, timesteps: int | None = None,
             name: str | None = None) -> Network:
    """A ``nir.NIRGraph`` as a :class:`Network`.

    ``dt`` defaults to the graph's ``dt`` metadata, else :data:`DT`; ``timesteps`` to its
    ``timesteps`` metadata, else 5.
    """
    meta = dict(getattr(graph, "metadata", None) or {})
    dt = float(dt if dt is not None else meta.get("dt", DT))
    T = int(timesteps if timesteps is not None else meta.get("timesteps", 5))
    return _Reader(graph, dt).network(
        name=name or str(meta.get("name") or "nir-model"), timesteps=T,
        architecture=str(meta.get("architecture") or "") or None,
        dataset=str(meta.get("dataset") or "") or None,
        mean=meta.get("input_mean"), std=meta.get("input_std"))


def _kind(node: Any) -> str:
    return type(node).__name__


def _uniform(node_name: str, what: str, values: Any) -> float:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise NIRError(f"node {node_name!r}: {what} is empty")
    if not np.all(arr == arr[0]):
        raise NIRError(f"node {node_name!r}: {what} differs between neurons ({arr.min():g} .. "
                       f"{arr.max():g}); accelsim has one value per layer")
    return float(arr[0])


def _weight_name(op: str) -> str:
    """accelsim names a weight ``<layer>.weight`` and writes its NIR node under that name."""
    return op if op.endswith(".weight") else f"{op}.weight"


def _pair(node_name: str, what: str, value: Any) -> int:
    arr = np.atleast_1d(np.asarray(value)).ravel()
    if arr.size not in (1, 2) or not np.all(arr == arr[0]):
        raise NIRError(f"node {node_name!r}: {what} {arr.tolist()} is not square; accelsim "
                       "needs equal height and width")
    return int(arr[0])


def _per_output(chain: list[str], scale: np.ndarray, outputs: int) -> np.ndarray:
    """A scale on a projection's path as one factor per output channel or unit."""
    if scale.ndim > 0 and scale.size > 1:
        per_out = scale.reshape(scale.shape[0], -1)
        if scale.shape[0] != outputs or not np.all(per_out == per_out[:, :1]):
            raise NIRError(f"the scale on path {chain} is not one value per output channel "
                           "or unit; accelsim cannot fold it into the weights")
        return per_out[:, 0]
    return np.full(outputs, float(np.asarray(scale).ravel()[0]))


class _Reader:
    """Walks a NIR graph backwards from every neuron into accelsim projections."""

    def __init__(self, graph: Any, dt: float):
        self.dt = dt
        nodes = getattr(graph, "nodes", None)
        if not isinstance(nodes, Mapping):
            raise NIRError(f"expected a NIR graph, got {type(graph).__name__}")
        self.nodes = dict(nodes)
        self.preds: dict[str, list[str]] = {n: [] for n in self.nodes}
        self.succs: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in graph.edges:
            for end in (a, b):
                if end not in self.nodes:
                    raise NIRError(f"edge ({a!r}, {b!r}) names node {end!r}, which the graph "
                                   "does not have")
            self.preds[b].append(a)
            self.succs[a].append(b)
        supported = {"Input", "Output", "I", *NEURONS, *OPS, *POOLS, "Flatten", "Scale"}
        for n, node in self.nodes.items():
            if _kind(node) not in supported:
                raise NIRError(f"node {n!r} is a NIR {_kind(node)}, which accelsim cannot "
                               f"express; supported primitives: {', '.join(sorted(supported))}")
        self.inputs = [n for n, node in self.nodes.items() if _kind(node) == "Input"]
        self.outputs = [n for n, node in self.nodes.items() if _kind(node) == "Output"]
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise NIRError(f"the graph has inputs {self.inputs} and outputs {self.outputs}; "
                           "accelsim needs exactly one of each")

    # -- neurons -----------------------------------------------------------------------------

    def neuron(self, n: str) -> tuple[float, float, float]:
        """(leak, threshold, input gain) of a neuron node."""
        node, kind, dt = self.nodes[n], _kind(self.nodes[n]), self.dt
        meta = dict(getattr(node, "metadata", None) or {})
        reset = meta.get("reset", "subtract")
        if isinstance(reset, bytes):
            reset = reset.decode()
        if reset != "subtract":
            raise NIRError(f"node {n!r} ({kind}): metadata says reset {reset!r}; accelsim's "
                           "neuron resets by subtracting the threshold only")
        v = _uniform(n, "v_threshold", node.v_threshold)
        if not (math.isfinite(v) and v > 0):
            raise NIRError(f"node {n!r} ({kind}): v_threshold {v} must be finite and > 0")
        if getattr(node, "v_reset", None) is not None and _uniform(n, "v_reset",
                                                                   node.v_reset) != 0:
            raise NIRError(f"node {n!r} ({kind}): v_reset must be 0 (accelsim reads NIR neurons "
                           "as soft reset: subtract the threshold)")
        r = _uniform(n, "r", node.r)
        if kind == "IF":
            return 1.0, v, r * dt
        if _uniform(n, "v_leak", node.v_leak) != 0:
            raise NIRError(f"node {n!r} ({kind}): v_leak must be 0 (the DIET-SNN leaks "
                           "towards 0)")
        tau = _uniform(n, "tau" if kind == "LIF" else "tau_mem",
                       node.tau if kind == "LIF" else node.tau_mem)
        gain = 1.0 if math.isinf(tau) and math.isinf(r) else r * dt / tau
        if kind == "CubaLIF":
            tau_syn = _uniform(n, "tau_syn", node.tau_syn)
            if abs(1.0 - dt / tau_syn) > GAIN_TOLERANCE:
                raise NIRError(f"node {n!r} (CubaLIF): tau_syn {tau_syn:g} != dt {dt:g}: its "
                               "synaptic current outlasts a step, which the DIET-SNN neuron "
                               "cannot express (it reduces to a LIF only when tau_syn = dt)")
            gain *= _uniform(n, "w_in", node.w_in) * dt / tau_syn
        leak = 1.0 - dt / tau
        if "leak" in meta:
            recorded = float(meta["leak"])
            if abs(recorded - leak) > 1e-9:
                raise NIRError(f"node {n!r} ({kind}): metadata leak {recorded} disagrees with "
                               f"tau (1 - dt/tau = {leak}); was tau edited?")
            leak = recorded
        if not 0.0 <= leak <= 1.0:
            raise NIRError(f"node {n!r} ({kind}): leak 1 - dt/tau = {leak:g} is outside [0, 1] "
                           f"at dt = {dt:g}; pass the dt the graph was written for")
        return leak, v, gain

    # -- projections -------------------------------------------------------------------------

    def is_source(self, n: str) -> bool:
        return _kind(self.nodes[n]) in ("Input", *NEURONS)

    def chain(self, target: str, first: str) -> list[str]:
        """The non-neuron nodes between a source neuron (or the input) and ``target``,
        source first, ending with ``first`` (a predecessor of ``target``)."""
        chain = []
        n = first
        while not self.is_source(n):
            kind = _kind(self.nodes[n])
            if kind in ("Output", "I"):
                raise NIRError(f"node {n!r} ({kind}) feeds {target!r}; an output cannot be a "
                               "source")
            if len(self.preds[n]) != 1:
                raise NIRError(f"node {n!r} ({kind}) has {len(self.preds[n])} inputs; accelsim "
                               "sums currents only into neurons")
            if n in chain:
                raise NIRError(f"node {n!r} ({kind}) lies on a loop without a neuron")
            chain.append(n)
            n = self.preds[n][0]
        chain.append(n)
        return chain[::-1]

    def projection(self, chain: list[str], shapes: dict[str, Shape], names: dict[str, str],
                   weights: dict[str, np.ndarray]
                   ) -> tuple[Projection, Shape, np.ndarray | None]:
        """The projection a chain (source first) stands for, the shape of its current and its
        bias (one value per output channel or unit; None when it has none)."""
        source = chain[0]
        shape = shapes[source]
        pool, scale, op, flat = 1, np.float64(1.0), None, False
        after = np.float64(1.0)  # the scale after the op: it scales the bias too
        for n in chain[1:]:
            node, kind = self.nodes[n], _kind(self.nodes[n])
            if kind in POOLS:
                if op is not None or flat:
                    raise NIRError(f"node {n!r} ({kind}) pools after {op or 'a Flatten'!r}; "
                                   "accelsim pools spikes before a projection only")
                k = _pair(n, "kernel_size", node.kernel_size)
                if _pair(n, "stride", node.stride) != k or _pair(n, "padding",
                                                                 node.padding) != 0:
                    raise NIRError(f"node {n!r} ({kind}): accelsim pools with kernel = stride "
                                   "and no padding")
                if len(shape) != 3 or shape[1] % k or shape[2] % k:
                    raise NIRError(f"node {n!r} ({kind}): cannot pool shape {shape} by {k}")
                pool *= k
                shape = pooled_shape(shape, k)
                if kind == "SumPool2d":
                    scale = scale * (k * k)
            elif kind == "Flatten":
                flat = True
            elif kind == "Scale":
                s = np.asarray(node.scale, dtype=np.float64)
                scale = scale * (s if op is not None else np.float64(
                    _uniform(n, "scale before a projection", s)))
                if op is not None:
                    after = after * s
            else:  # Conv2d, Linear, Affine
                if op is not None:
                    raise NIRError(f"node {n!r} ({kind}) follows {op!r} without a neuron between "
                                   "them; accelsim needs a neuron after every projection")
                op = n
        if op is None:
            if np.any(scale != 1.0):
                raise NIRError(f"the path {chain} scales a shortcut; accelsim's identity "
                               "projection adds spikes unscaled")
            if flat:
                raise NIRError(f"the path {chain} flattens a shortcut; accelsim's identity "
                               "projection keeps the source's shape")
            return Projection(source=names[source], op="identity", pool=pool), shape, None
        node, kind = self.nodes[op], _kind(self.nodes[op])
        if len(self.succs[op]) != 1:
            raise NIRError(f"node {op!r} ({kind}) feeds {len(self.succs[op])} nodes; accelsim "
                           "gives each projection its own weights: give each target its own "
                           f"{kind}")
        w = np.asarray(node.weight, dtype=np.float64)
        bias = getattr(node, "bias", None)
        if bias is not None:
            bias = np.asarray(bias, dtype=np.float64)
            if bias.ndim == 0:  # one value for every output
                bias = np.full(w.shape[0], float(bias))
            if bias.shape != (w.shape[0],):
                raise NIRError(f"node {op!r} ({kind}): bias shape {bias.shape} is not one value "
                               f"per output ({w.shape[0]},)")
            if not np.any(bias != 0):
                bias = None
        if kind == "Conv2d":
            if len(shape) != 3 or flat:
                raise NIRError(f"node {op!r} (Conv2d) reads shape {shape}; it needs (C, H, W)")
            if int(np.asarray(node.groups)) != 1 or _pair(op, "dilation", node.dilation) != 1:
                raise NIRError(f"node {op!r} (Conv2d): groups and dilation must be 1")
            if isinstance(node.padding, str) or np.asarray(node.padding).dtype.kind in "SUO":
                raise NIRError(f"node {op!r} (Conv2d): padding {node.padding!r}; give it in "
                               "pixels")
            if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[1] != shape[0]:
                raise NIRError(f"node {op!r} (Conv2d): weight shape {w.shape} is not a square "
                               f"(C_out, {shape[0]}, k, k) kernel")
            stride, padding = _pair(op, "stride", node.stride), _pair(op, "padding", node.padding)
            proj = Projection(source=names[source], op="conv", weight=_weight_name(op), pool=pool,
                              kernel=w.shape[2], stride=stride, padding=padding)
        else:
            if len(shape) > 1 and not flat:
                raise NIRError(f"node {op!r} ({kind}) reads shape {shape} without a Flatten node "
                               "before it")
            if w.ndim != 2 or w.shape[1] != int(np.prod(shape)):
                raise NIRError(f"node {op!r} ({kind}): weight shape {w.shape} does not take the "
                               f"{int(np.prod(shape))} values of its source (shape {shape})")
            proj = Projection(source=names[source], op="linear", weight=_weight_name(op),
                              pool=pool)
        if bias is not None:
            bias = bias * _per_output(chain, after, w.shape[0])
        scale = _per_output(chain, scale, w.shape[0])
        if np.any(scale != 1.0):
            w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
        weights[proj.weight] = w  # type: ignore[index]
        out = projected_shape(shape, proj.model_copy(update={"pool": 1}), w.shape)
        return proj, out, bias

    # -- the network -------------------------------------------------------------------------

    def order(self, targets: list[str]) -> list[str]:
        """Neuron nodes in an order where every source comes first (accelsim's layer index
        from metadata breaks ties, then the graph's own order)."""
        def rank(n: str):
            meta = dict(getattr(self.nodes[n], "metadata", None) or {})
            return (int(meta.get("accelsim_layer", 1 << 30)), list(self.nodes).index(n))

        sources = {t: {c[0] for p in self.preds[t] for c in [self.chain(t, p)]} for t in targets}
        done = set(self.inputs)
        ordered: list[str] = []
        pending = sorted(targets, key=rank)
        while pending:
            ready = [t for t in pending if sources[t] <= done]
            if not ready:
                raise NIRError(f"neurons {pending} form a recurrent loop; accelsim runs "
                               "feed-forward networks only")
            ordered.append(ready[0])
            done.add(ready[0])
            pending.remove(ready[0])
        return ordered

    def network(self, *, name: str, timesteps: int, architecture: str | None,
                dataset: str | None, mean, std) -> Network:
        (inp,) = self.inputs
        (out,) = self.outputs
        input_shape = tuple(int(s) for s in np.asarray(
            self.nodes[inp].input_type["input"]).ravel())
        if len(self.preds[out]) != 1:
            raise NIRError(f"node {out!r} (Output) has {len(self.preds[out])} inputs; accelsim "
                           "needs one output layer")
        last = self.preds[out][0]
        readout = None  # the node whose current the output layer accumulates
        if _kind(self.nodes[last]) == "I":
            readout = last
            if abs(_uniform(last, "r", self.nodes[last].r) * self.dt - 1.0) > GAIN_TOLERANCE:
                raise NIRError(f"node {last!r} (I): r * dt != 1; accelsim's output layer sums "
                               "its input current unscaled")
        elif _kind(self.nodes[last]) in OPS + ("Scale",):
            readout = out  # the projection feeds the Output node directly
        elif _kind(self.nodes[last]) not in NEURONS:
            raise NIRError(f"node {last!r} ({_kind(self.nodes[last])}) feeds the output; "
                           "accelsim's output layer is a projection, an I node or a neuron")
        neurons = [n for n, node in self.nodes.items() if _kind(node) in NEURONS]
        for n in neurons:
            if not self.preds[n]:
                raise NIRError(f"node {n!r} ({_kind(self.nodes[n])}) has no input")
        ordered = self.order(neurons)
        shapes: dict[str, Shape] = {inp: input_shape}
        names = {inp: INPUT}
        weights: dict[str, np.ndarray] = {}
        layers: list[Layer] = []

        def add(target: str, layer_name: str, kind: str, leak=1.0, threshold=1.0, gain=1.0):
            built = [self.projection(self.chain(target, p), shapes, names, weights)
                     for p in self.preds[target]]
            biases = [b for _, _, b in built if b is not None]
            bias = sum(biases[1:], biases[0]) if biases else None
            if abs(gain - 1.0) > GAIN_TOLERANCE:
                warnings.warn(f"node {target!r}: input gain {gain:g} (r dt / tau at dt = "
                              f"{self.dt:g}) folded into its incoming weights; if the graph was "
                              "written for another time step, pass that dt", stacklevel=4)
                for p, _, _ in built:
                    if p.op == "identity":
                        raise NIRError(f"node {target!r}: input gain {gain:g} != 1 cannot be "
                                       "folded into an identity shortcut")
                    weights[p.weight] = weights[p.weight] * gain  # type: ignore[index]
                if bias is not None:
                    bias = bias * gain
            bias_name = None
            if bias is not None:
                meta = dict(getattr(self.nodes[target], "metadata", None) or {})
                bias_name = meta.get("bias", f"{layer_name}.bias")
                bias_name = bias_name.decode() if isinstance(bias_name, bytes) else str(bias_name)
                weights[bias_name] = bias
            out_shapes = {s for _, s, _ in built}
            if len(out_shapes) != 1:
                raise NIRError(f"node {target!r}: its inputs deliver currents of shapes "
                               f"{sorted(out_shapes)}; they must agree")
            (shape,) = out_shapes
            layers.append(Layer(name=layer_name, kind=kind, shape=shape,
                                inputs=tuple(p for p, _, _ in built), leak=leak,
                                threshold=threshold, bias=bias_name))
            shapes[target] = shape
            names[target] = layer_name

        # a source's shape is keyed by its node name; projections name accelsim layers
        for n in ordered:
            leak, v, gain = self.neuron(n)
            add(n, n, "spiking", leak, v, gain)
        if readout is None:
            if len(shapes[last]) != 1:
                raise NIRError(f"node {last!r} ({_kind(self.nodes[last])}) feeds the output with "
                               f"shape {shapes[last]}; accelsim's output is one value per class: "
                               "end the graph with a Linear layer")
            layers.append(Layer(name="readout", kind="output", shape=shapes[last],
                                inputs=(Projection(source=names[last], op="identity"),)))
        elif readout == out:
            add(out, str(self.preds[out][0]), "output")
        else:
            add(readout, readout, "output")
        channels = input_shape[0] if len(input_shape) == 3 else 1
        mean = tuple(np.asarray(mean, dtype=np.float64).ravel()) if mean is not None else (
            0.0,) * channels
        std = tuple(np.asarray(std, dtype=np.float64).ravel()) if std is not None else (
            1.0,) * channels
        try:
            arch = Architecture(name=architecture or name, input_shape=input_shape,
                                num_classes=int(np.prod(layers[-1].shape)), layers=tuple(layers))
            return Network(name=name, dataset=dataset, architecture=arch,
                           weights={k: w.astype(np.float32) for k, w in weights.items()},
                           timesteps=timesteps, input_mean=tuple(map(float, mean)),
                           input_std=tuple(map(float, std)))
        except ValidationError as exc:
            raise NIRError(f"the graph does not form a valid accelsim network: {exc}") from exc
