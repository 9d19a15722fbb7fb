"""Renders engine events and results for a terminal. The library itself never prints."""

from __future__ import annotations

import shutil
import sys
from typing import TextIO

from labctl.core.events import Event


class ProgressPrinter:
    """One line per finished step, `[ i/n] what ... ok 0.12 s`; fits the terminal width."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False):
        # sys.stderr as it is now, not as it was when this module was imported.
        self.stream = stream if stream is not None else sys.stderr
        self.verbose = verbose
        self.width = shutil.get_terminal_size((100, 20)).columns
        self.tty = self.stream.isatty()
        self._pending: str | None = None

    def _fit(self, text: str) -> str:
        limit = max(self.width - 1, 40)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def _write(self, text: str) -> None:
        self.stream.write(self._fit(text) + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        counter = f"[{event.index:>2}/{event.total}] " if event.index and event.total else ""
        if event.kind == "step-start":
            if self.tty:
                self._pending = f"{counter}{event.message} ..."
                self.stream.write("\r" + self._fit(self._pending))
                self.stream.flush()
            return
        if self._pending is not None:
            self.stream.write("\r\033[K")
            self._pending = None
        if event.kind == "step-done":
            took = f" {event.seconds:.2f} s" if event.seconds is not None else ""
            self._write(f"{counter}{event.message} ... ok{took}")
        elif event.kind == "step-failed":
            self._write(f"FAILED: {event.message}")
        elif event.kind == "phase":
            self._write(f"==> {event.message}")
        elif event.kind == "warning":
            self._write(f"warning: {event.message}")
        elif event.kind in ("undo", "info") and (self.verbose or event.kind == "undo"):
            self._write(f"    {event.message}")
        elif event.kind == "info" and not self.tty:
            return
