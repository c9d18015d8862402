"""The ``accelsim`` command line: a thin layer over the public Python API.

Each command group lives in its own module and registers itself on :data:`app`.
"""

import typer

app = typer.Typer(
    name="accelsim",
    help="Cycle-level simulation of trained DIET-SNNs on a tiled neuromorphic accelerator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

from accelsim.cli import hardware, interop, scenarios, training  # noqa: E402, F401  (registers commands)
