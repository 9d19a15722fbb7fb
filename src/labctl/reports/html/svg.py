"""What the chart and the topology drawing share: short coordinates, text that fits, and
<text> elements whose content is escaped."""

from __future__ import annotations

from markupsafe import escape


def n(value: float) -> str:
    """A coordinate, short and stable."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def fit(words: str, width: float, size: float) -> str:
    """`words` cut to about `width` pixels at font `size` (no measuring without a browser)."""
    limit = max(3, int(width / (size * 0.6)))
    return words if len(words) <= limit else words[: limit - 1] + "…"


def text(x: float, y: float, content: str, cls: str, anchor: str = "start", extra: str = "") -> str:
    """A <text> element; `content` is escaped, the other arguments are labctl's own."""
    return (
        f'<text x="{n(x)}" y="{n(y)}" class="{cls}" text-anchor="{anchor}"{extra}>'
        f"{escape(content)}</text>"
    )
