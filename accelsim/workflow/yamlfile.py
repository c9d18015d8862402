"""Reading the YAML a researcher writes by hand (scenarios, hardware presets, ``--set`` values).

PyYAML's safe loader keeps the last of two equal keys in a mapping, so a copy-pasted
``images: 100`` below ``images: 10`` would silently win. :class:`StrictLoader` refuses that and
names both lines; :func:`read_text` names a file that is not text instead of failing on a byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError


class DuplicateKeyError(ConstructorError):
    """Two equal keys in one mapping; ``problem_mark`` is the second one."""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate mapping keys (top level and nested)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # resolve merge keys (<<) first: they may override
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class explains it
                break
            if first is not None:
                raise DuplicateKeyError(
                    None, None,
                    f"duplicate key {key!r}: first at line {first.start_mark.line + 1}, again "
                    f"at line {key_node.start_mark.line + 1}; keep one of them",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """``text`` parsed with :class:`StrictLoader`."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)


def error_line(exc: yaml.YAMLError) -> int | None:
    """1-based line a YAML error points at, if any."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else None


def error_message(exc: yaml.YAMLError) -> str:
    """A one-line description of a YAML error (without PyYAML's quoted source excerpt)."""
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [exc.context, exc.problem]
        return "; ".join(p for p in parts if p) or type(exc).__name__
    return " ".join(str(exc).split())


def read_text(path: Path) -> str:
    """The text of ``path``; a ``ValueError`` naming the file when it is not UTF-8 text."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected "
                         "YAML text") from None
