"""Progress events. The engine emits them; the CLI and invoke tasks render them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    kind: str  # "phase", "step-start", "step-done", "step-failed", "undo", "info", "warning"
    message: str
    index: int | None = None  # 1-based step number
    total: int | None = None
    seconds: float | None = None


EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """The default sink: a library caller gets no output."""
