"""accelsim CLI commands (training)."""
