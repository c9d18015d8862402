"""Model in/out: the layer graph, the paper's plans, model files, importers and exporters,
calibrated workloads and the embedded data sets."""
