"""Processes labctl started: is it still the same process, stop it, show its log.

Shared by the OVS daemons (backends/ovs/daemons.py) and the processes of netns
nodes (backends/netns_runtime.py), so both read /proc, escalate from TERM to
KILL and quote logs the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

POLL_INTERVAL = 0.05


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z (zombie), X (dead), ...
    starttime: int  # clock ticks after boot: with the pid, names one process for good

    @property
    def running(self) -> bool:
        # A detached daemon is reaped by whatever pid 1 is, sometimes late.
        return self.state not in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    """State and start time of a process, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return ProcStat(fields[0], int(fields[19]))
    except (IndexError, ValueError):
        return None


def starttime(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat.starttime if stat else None


def running(pid: int) -> bool:
    """The process exists and is neither a zombie nor dead."""
    stat = proc_stat(pid)
    return stat is not None and stat.running


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll `done` until it is true or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def terminate(
    send: Callable[[signal.Signals], None],
    alive: Callable[[], bool],
    term_grace: float,
    kill_grace: float,
) -> bool:
    """SIGTERM, up to `term_grace` seconds to exit, then SIGKILL and `kill_grace` more.

    `send` delivers a signal (to a pid, a process group, or every member of a
    namespace); `alive` says whether anything is left. True once nothing is."""
    for sig, grace in ((signal.SIGTERM, term_grace), (signal.SIGKILL, kill_grace)):
        send(sig)
        if wait_until(lambda: not alive(), grace):
            return True
    return False


def signal_pid(pid: int, sig: signal.Signals) -> None:
    """Signal one process; one that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group; one that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def log_tail(path: Path, lines: int) -> list[str] | None:
    """The last `lines` lines of a log, or None when it cannot be read."""
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return None
