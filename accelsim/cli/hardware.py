"""accelsim CLI commands (hardware)."""
