"""What the chart and the topology drawing share: short coordinates, text that fits, and
the <text> elements both place (templates/svg.j2 writes them, escaped)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


def n(value: float) -> str:
    """A coordinate, short and stable."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def fit(words: str, width: float, size: float) -> str:
    """`words` cut to about `width` pixels at font `size` (no measuring without a browser)."""
    limit = max(3, int(width / (size * 0.6)))
    return words if len(words) <= limit else words[: limit - 1] + "…"


@dataclass(frozen=True)
class Text:
    """A <text> element: coordinates already formatted, `content` as plain text."""

    kind: ClassVar[str] = "text"
    x: str
    y: str
    content: str
    cls: str
    anchor: str = "start"
    rotate: int | None = None  # degrees, around (x, y)


def text(
    x: float, y: float, content: str, cls: str, anchor: str = "start", rotate: int | None = None
) -> Text:
    return Text(n(x), n(y), content, cls, anchor, rotate)
