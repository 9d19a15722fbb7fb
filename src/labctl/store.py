"""Small files labctl keeps at run time: JSON written atomically, and file locks.

The lab state (labctl/state.py), the record of labctl's own OVS daemons
(daemons.json) and the records of netns nodes all go through here: a reader
sees the old file or the new one, never half of one, and a process waiting on
a lock gives up after a bounded time with an error naming the lock file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from labctl.errors import UsageError

LOCK_POLL = 0.02
"""flock cannot block with a timeout, so a waiter polls: often enough that matrix cells
sharing the OVS daemons do not wait noticeably longer than a blocking lock would."""


def temporary_path(path: Path) -> Path:
    """Where a new version of `path` is written before it replaces the file."""
    return path.with_name(f".{path.name}.tmp")


def write_text_atomic(path: Path, text: str) -> None:
    temporary = temporary_path(path)
    temporary.write_text(text)
    os.replace(temporary, path)


def write_json(path: Path, data: Any, *, sort_keys: bool = False) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path: Path) -> Any:
    """The parsed file, or None if it does not exist.

    Raises OSError or ValueError for a file that cannot be read or is not JSON:
    each caller decides what a damaged file means."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return json.loads(text)


@contextlib.contextmanager
def file_lock(
    path: Path,
    what: str,
    wait_seconds: float,
    remove_after: Callable[[], bool] | None = None,
) -> Iterator[None]:
    """Hold an exclusive lock on `path`; after `wait_seconds` raise UsageError naming it.

    `what` names what the lock guards ("lab 'x'"). When `remove_after` returns true at
    release, the lock file is removed, so it leaves no trace. A process that waited
    on a file removed meanwhile notices (its inode is no longer the path's) and locks
    the new file instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        handle = open(path, "a")  # noqa: SIM115 - closed below, after the lock
        try:
            if _try_lock(handle, path, what, deadline):
                break
        except BaseException:
            handle.close()
            raise
        handle.close()
    try:
        yield
    finally:
        if remove_after is not None and remove_after():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _try_lock(handle: IO[str], path: Path, what: str, deadline: float) -> bool:
    """True when `handle` holds the lock on the file now at `path`."""
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise UsageError(
                    f"{what} is locked by another labctl process ({path}); wait for it to "
                    "finish, or stop it (the lock is freed when that process exits)"
                ) from None
            time.sleep(LOCK_POLL)
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    mine = os.fstat(handle.fileno())
    if current is not None and (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
        return True
    fcntl.flock(handle, fcntl.LOCK_UN)
    return False
