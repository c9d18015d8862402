"""Training: the PyTorch DIET-SNN and its three training stages."""
