"""accelsim: cycle-level simulation of trained DIET-SNNs on a tiled neuromorphic accelerator.

The public API, in the order a researcher meets it::

    net = accelsim.load_model("trained_models/mnist5k-vgg9")      # no torch, no pickle
    hw = accelsim.load_hardware("45nm-generic", {"tile.accumulate_units": 4})
    out = accelsim.run(net, images)                                 # functional core only
    res = accelsim.simulate(net, images, labels, hw)                # cycles, traffic, energy
    wl = accelsim.workload("vgg16", spike_rate=0.4)                 # no data set, no training
    report = accelsim.run_scenario("scenarios/quickstart.yaml")     # files on disk
    tables = accelsim.results.load(report.folder)
"""

from accelsim.chip.hardware import Hardware, list_presets, load_hardware
from accelsim.chip.simulation import SimulationResult, simulate
from accelsim.model.modelfile import load_model, read_manifest
from accelsim.model.network import Architecture, Layer, Network, Projection
from accelsim.model.workloads import workload
from accelsim.spiking.core import FunctionalResult, SpikeTrain
from accelsim.spiking.functional import run
from accelsim.workflow import results
from accelsim.workflow.runner import run as run_scenario

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "FunctionalResult",
    "Hardware",
    "Layer",
    "Network",
    "Projection",
    "SimulationResult",
    "SpikeTrain",
    "list_presets",
    "load_hardware",
    "load_model",
    "read_manifest",
    "results",
    "run",
    "run_scenario",
    "simulate",
    "workload",
]
