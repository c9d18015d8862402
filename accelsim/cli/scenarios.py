"""accelsim CLI commands (scenarios)."""
