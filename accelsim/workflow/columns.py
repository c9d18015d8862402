"""Column names of every table accelsim produces, in one place (units are in the names)."""

# -- identifiers ---------------------------------------------------------------------------
IMAGE = "image"
LAYER = "layer"
TIMESTEP = "timestep"  # 1..T
TILE = "tile"

# -- functional counts (hardware-independent; accelsim.spiking.functional) -------------------------
SPIKES_IN = "spikes_in"
SPIKES_OUT = "spikes_out"
NEURONS = "neurons"
SYNAPTIC_OPS = "synaptic_ops"  # = NeuroBench Effective_ACs of spike inputs, but zero weights count
MACS = "macs"  # NeuroBench Effective_MACs counts non-zero inputs at every step; this: dense, once
NEURON_UPDATES = "neuron_updates"
ACTIVE_NEURON_UPDATES = "active_neuron_updates"

FUNCTIONAL_COUNTS = (IMAGE, LAYER, TIMESTEP, SPIKES_IN, SPIKES_OUT, NEURONS, SYNAPTIC_OPS, MACS,
                     NEURON_UPDATES, ACTIVE_NEURON_UPDATES)

# -- hardware counters (accelsim.chip) -------------------------------------------------------
WEIGHT_SRAM_READ_BITS = "weight_sram_read_bits"
MEMBRANE_READ_BITS = "membrane_read_bits"
MEMBRANE_WRITE_BITS = "membrane_write_bits"
QUEUE_PEAK = "queue_peak"
NOC_PACKETS = "noc_packets"
NOC_HOPS = "noc_hops"
DRAM_READ_BYTES = "dram_read_bytes"
CYCLES = "cycles"
BUSY_CYCLES = "busy_cycles"
STALL_CYCLES = "stall_cycles"

# -- energy (accelsim.chip.pricing), picojoules -------------------------------------------------
ENERGY_COMPONENTS = ("accumulate", "mac", "weight_sram", "membrane", "neuron_update",
                     "spike_out", "mesh", "dram", "static")
ENERGY_COLUMNS = tuple(f"energy_{c}_pj" for c in ENERGY_COMPONENTS)
ENERGY = "energy_pj"
COMPUTE_ONLY_SNN = "compute_only_snn_pj"
COMPUTE_ONLY_ANN = "compute_only_ann_pj"

# -- per-image table -----------------------------------------------------------------------
PREDICTION = "prediction"
LABEL = "label"
CORRECT = "correct"
TOTAL_CYCLES = "total_cycles"
LATENCY_US = "latency_us"
ENERGY_UJ = "energy_uj"

# -- mapping table (accelsim.chip.mapping) ------------------------------------------------------
TILES = "tiles"
FIRST_TILE = "first_tile"
NEURONS_PER_TILE = "neurons_per_tile"
WEIGHT_BITS_PER_TILE = "weight_bits_per_tile"
SRAM_UTILISATION = "sram_utilisation"
SPILLED_BYTES = "spilled_bytes"

# -- chip counters used by pricing (accelsim.chip) ----------------------------------------
NOC_HOPS_X = "noc_hops_x"
NOC_HOPS_Y = "noc_hops_y"
DRAM_READ_BITS = "dram_read_bits"
STATIC_CYCLES = "static_cycles"  # powered tiles x wall cycles charged to this row
SYNAPTIC_OPS_BY_KIND = {"conv": "synaptic_ops_conv", "dense": "synaptic_ops_dense",
                        "sparse": "synaptic_ops_sparse"}
"""synaptic_ops split by projection kind (accelsim.chip.hardware.SYNAPSE_KINDS)."""
NOC_PACKETS_IN = "noc_packets_in"
END_CYCLE = "end_cycle"

CHIP_COUNTERS = (IMAGE, LAYER, TIMESTEP, SPIKES_IN, SPIKES_OUT, NEURONS, SYNAPTIC_OPS,
                 *SYNAPTIC_OPS_BY_KIND.values(), MACS, NEURON_UPDATES, ACTIVE_NEURON_UPDATES,
                 WEIGHT_SRAM_READ_BITS, MEMBRANE_READ_BITS, MEMBRANE_WRITE_BITS, QUEUE_PEAK,
                 NOC_PACKETS, NOC_HOPS, NOC_HOPS_X, NOC_HOPS_Y, DRAM_READ_BITS, DRAM_READ_BYTES,
                 CYCLES, BUSY_CYCLES, STALL_CYCLES, STATIC_CYCLES)
"""Integer counter columns of the chip's per-layer table, before pricing."""

# -- summary (one row per run; accelsim.workflow.results) ------------------------------------------
POINT = "point"  # sweep point (0 for a single run)
KEY = "key"  # first 16 hex digits of the point's cache key
ACCURACY = "accuracy"
NUM_IMAGES = "images"
TIMESTEPS = "timesteps"
LATENCY_CYCLES = "latency_cycles"
EDP = "edp_uj_us"
COMPUTE_ONLY_SNN_UJ = "compute_only_snn_uj"
COMPUTE_ONLY_ANN_UJ = "compute_only_ann_uj"
FULL_TO_COMPUTE_ONLY = "full_to_compute_only"
SPIKES = "spikes_per_inference"
DRAM_BYTES = "dram_bytes_per_inference"
COMPONENT_UJ = tuple(f"energy_{c}_uj" for c in ENERGY_COMPONENTS)

# -- the ANN on the same chip (accelsim.chip.ann), beside the SNN ---------------------------------
ANN_ENERGY = "ann_energy_pj"  # per-layer table, on the timestep-1 row (0 on the others)
ANN_CYCLES = "ann_cycles"  # per-layer table, on the timestep-1 row (0 on the others)
ANN_PREDICTION = "ann_prediction"  # per-image table; -1 when the model ships no ANN weights
ANN_CORRECT = "ann_correct"
ANN_TOTAL_CYCLES = "ann_total_cycles"
ANN_LATENCY_US = "ann_latency_us"
ANN_ENERGY_UJ = "ann_energy_uj"
ANN_ACCURACY = "ann_accuracy"  # summary; NaN when the model ships no ANN weights
SNN_TO_ANN_ENERGY = "snn_to_ann_energy"  # full-system energy, SNN / ANN
SNN_TO_ANN_COMPUTE_ONLY = "snn_to_ann_compute_only"  # compute-only estimate, SNN / ANN
SNN_TO_ANN_LATENCY = "snn_to_ann_latency"

# -- the mapping search (accelsim.chip.mapping_search; summary columns of a scenario with one) -----
MAPPING_POLICY = "mapping_policy"  # the chosen policy
MAPPING_TILES = "mapping_tiles"  # the chosen tiles per layer, "layer:count ..."
SEARCH_OBJECTIVE = "search_objective"  # energy, latency or edp
SEARCH_DEFAULT = "search_default"  # the objective on the sample with the hardware's own mapping
SEARCH_BEST = "search_best"  # ... with the chosen one
SEARCH_GAIN = "search_gain"  # 1 - best / default
SEARCH_CANDIDATES = "search_candidates"  # mappings replayed
SEARCH_COLUMNS = (MAPPING_POLICY, MAPPING_TILES, SEARCH_OBJECTIVE, SEARCH_DEFAULT, SEARCH_BEST,
                  SEARCH_GAIN, SEARCH_CANDIDATES)

SUMMARY_COLUMNS = (ACCURACY, NUM_IMAGES, TIMESTEPS, LATENCY_CYCLES, LATENCY_US, ENERGY_UJ, EDP,
                   COMPUTE_ONLY_SNN_UJ, COMPUTE_ONLY_ANN_UJ, FULL_TO_COMPUTE_ONLY, SPIKES,
                   DRAM_BYTES, *COMPONENT_UJ, ANN_ACCURACY, ANN_LATENCY_US, ANN_ENERGY_UJ,
                   SNN_TO_ANN_ENERGY, SNN_TO_ANN_COMPUTE_ONLY, SNN_TO_ANN_LATENCY)
"""Columns of ``summary.parquet``, per inference (mean over the images of a run)."""


# -- labels for people ----------------------------------------------------------------------
_COMPONENT_LABELS = {"weight_sram": "weight SRAM", "neuron_update": "neuron update",
                     "dram": "DRAM", "mac": "MAC"}


def component_label(component: str) -> str:
    """Display name of an energy component (``weight_sram`` -> ``weight SRAM``)."""
    return _COMPONENT_LABELS.get(component, component.replace("_", " "))


def short_param(param: str) -> str:
    """Short label of a dotted sweep parameter: without the section it lives in
    (``hardware.overrides.``, ``simulation.``, ``data.``, ``hardware.``), at most two parts."""
    for prefix in ("hardware.overrides.", "simulation.", "data.", "hardware."):
        if param.startswith(prefix):
            param = param.removeprefix(prefix)
            break
    return "T" if param == "timesteps" else ".".join(param.split(".")[-2:])
