"""A parsed YAML document that remembers where every value was written.

Shared by the loader (which builds it) and the semantic checks (which report
problems at its positions), so neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labctl.errors import Problem

PathKey = tuple[str | int, ...]


def format_path(path: PathKey) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class Document:
    """Parsed YAML plus the position of every mapping key and sequence item."""

    file: str
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    parse_problems: list[Problem] = field(default_factory=list)
    """Duplicate or non-string keys: reported together with the later checks."""

    def position(self, path: PathKey) -> tuple[int, int]:
        """Best position for a path: the path itself, else its nearest ancestor."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found:
                return found
        return (1, 1)

    def problem(self, path: PathKey, message: str) -> Problem:
        line, column = self.position(path)
        return Problem(self.file, line, column, format_path(path), message)
