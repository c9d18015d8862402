"""Workflow: scenarios, sweeps, execution, result folders, tables and plots."""
