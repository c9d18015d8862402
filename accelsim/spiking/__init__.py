"""The spiking core: what spikes, exactly, in floating or fixed point."""
