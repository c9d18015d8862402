"""Locating a scenario problem in its YAML file: the line of a field, and the sweep point."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from accelsim.workflow.scenario import Problem, field_line


class Locator:
    """Builds :class:`Problem` objects that point into the scenario file; a problem of a sweep
    point names the swept values that concern the field."""

    def __init__(self, path: Path | None, params: Mapping[str, Any] | None = None):
        self.path, self.params = path, dict(params or {})

    def __call__(self, field: str, message: str) -> Problem:
        name = str(self.path) if self.path else "<scenario>"
        swept = [p for p in self.params if p == field or p.startswith(field + ".")
                 or field.startswith(p + ".")]
        if swept:
            message += f" (sweep point {', '.join(f'{p}={self.params[p]!r}' for p in swept)})"
        line = None
        if self.path is not None:
            loc: list[Any] = field.split(".")
            if field.startswith("hardware.overrides."):
                dotted = ["hardware", "overrides", field.removeprefix("hardware.overrides.")]
                line = field_line(self.path, dotted)
                if line == field_line(self.path, ["hardware", "overrides"]):
                    line = None
            line = line or field_line(self.path, loc)
        return Problem(name, line, field, message)
