"""accelsim CLI commands (hardware): ``presets``."""

from __future__ import annotations

import typer

from accelsim.chip.hardware import list_presets, load_hardware, to_yaml
from accelsim.cli import app


@app.command()
def presets(name: str = typer.Argument(None, help="a preset to print as resolved YAML")) -> None:
    """List the shipped hardware presets, or print one of them in full."""
    if name is None:
        rows = list_presets()
        width = max(len(n) for n, _ in rows)
        for preset, description in rows:
            typer.echo(f"{preset:<{width}}  {description}")
        return
    typer.echo(to_yaml(load_hardware(name)), nl=False)
