"""Ctrl-C that cannot be lost.

Python raises KeyboardInterrupt wherever the main thread happens to be when SIGINT
arrives. If that is inside a weakref callback or a __del__ (the Docker SDK and
pyroute2 both leave objects to the collector), the interpreter prints "Exception
ignored" and carries on: a `labctl up` interrupted at that moment would finish
building the lab and exit 0. The handler installed here also remembers the signal,
and long operations call `raise_if_received()` at their safe points (between the
steps of `up`), so a swallowed Ctrl-C still stops them there.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received = threading.Event()


def _on_sigint(_signum: int, _frame: FrameType | None) -> None:
    _received.set()
    raise KeyboardInterrupt


def install() -> None:
    """Handle SIGINT in this process (main thread only; elsewhere nothing changes)."""
    _received.clear()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)


def received() -> bool:
    return _received.is_set()


def raise_if_received() -> None:
    """Raise KeyboardInterrupt if SIGINT arrived, even if its first raise was swallowed."""
    if _received.is_set():
        raise KeyboardInterrupt
