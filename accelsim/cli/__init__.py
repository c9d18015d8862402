"""The ``accelsim`` command line: a thin layer over the public Python API.

Each command group lives in its own module and registers itself on :data:`app`.

User errors are reported the same way by every command: the library raises a ``ValueError``
(``ScenarioError``, ``ModelFileError``, ``HardwareError``, ``MappingError``, ...) or an
``OSError`` naming the file, the field and the fix; the command prints it as ``error: ...``
lines on stderr and exits with :data:`USER_ERROR` — never a traceback.
"""

from __future__ import annotations

import click
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

USER_ERROR = 2
"""Exit code of a command refused because of its input."""


def error_lines(exc: BaseException) -> list[str]:
    """``exc`` as ``error: ...`` lines (one per problem)."""
    if isinstance(exc, ValidationError):
        text = "\n".join(
            f"{'.'.join(str(k) for k in e['loc']) or exc.title}: {e['msg']}"
            + (f" (got {e['input']!r})" if not isinstance(e.get("input"), dict | list) else "")
            for e in exc.errors())
    elif isinstance(exc, OSError) and exc.strerror:
        where = exc.filename if exc.filename is not None else ""
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return [f"error: {line}" for line in text.splitlines() if line.strip()]


def fail(exc: BaseException) -> typer.Exit:
    """Print ``exc`` as ``error:`` lines on stderr; the ``Exit`` to raise (code 2)."""
    for line in error_lines(exc):
        typer.echo(line, err=True)
    return typer.Exit(code=USER_ERROR)


class _Commands(TyperGroup):
    """Runs a command; a user error (ValueError, OSError) becomes ``error: ...`` and exit 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (ValueError, OSError) as exc:
            raise fail(exc) from None


app = typer.Typer(
    name="accelsim",
    help="Cycle-level simulation of trained DIET-SNNs on a tiled neuromorphic accelerator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=_Commands,
)

from accelsim.cli import hardware, scenarios, training  # noqa: E402, F401  (registers commands)
