"""Reaching a node's network namespace from the host's, without a helper process.

A socket belongs to the network namespace it was created in, for its whole life, and
/proc/sys/net shows the namespace of the thread that opens it. So a short-lived thread
enters the node's namespace (setns, which moves only the calling thread), opens the
socket or writes the sysctl, and ends. labctl's own threads never change namespace, so
nothing else it does can land in a node's namespace, also when a request fails
half-way; and no process is forked for it (pyroute2's NetNS forks one per handle, and
its child runs `ldconfig -p` to find libc: about 0.1 s each).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
NETLINK_GENERIC = 16

T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


def run_in_netns(netns_path: str, work: Callable[[], T]) -> T:
    """`work()` in a new thread that has entered the network namespace at `netns_path`.

    Its result or exception is this call's. Anything `work` opens stays in that
    namespace after the thread has ended (sockets); nothing else it does outlives it.
    """
    outcome: list[tuple[bool, object]] = []

    def enter_and_work() -> None:
        try:
            # The open fd pins the namespace until the thread is in it.
            fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    reason = "not a network namespace" if code == errno.EINVAL else None
                    raise OSError(
                        code,
                        f"cannot enter network namespace {netns_path}: "
                        f"{reason or os.strerror(code)}",
                    )
            finally:
                os.close(fd)
            outcome.append((True, work()))
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome.append((False, error))

    thread = threading.Thread(target=enter_and_work, name=f"netns {netns_path}", daemon=True)
    thread.start()
    thread.join()
    ok, value = outcome[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]


def netlink_fd(netns_path: str, protocol: int) -> int:
    """A netlink socket of `protocol` created inside the namespace at `netns_path`, as an
    fd (not inheritable, like every socket Python opens) the caller owns."""

    def open_socket() -> int:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol).detach()

    return run_in_netns(netns_path, open_socket)


def write_sysctl(netns_path: str, key: str, value: str) -> None:
    """Write /proc/sys/<key> (slash form: net/ipv6/conf/eth0/disable_ipv6) as seen from
    the namespace at `netns_path`."""

    def write() -> None:
        with open(f"/proc/sys/{key}", "w") as sysctl:
            sysctl.write(value)

    run_in_netns(netns_path, write)
