"""OVSDB sessions through ovsdbapp: one connection per session, always closed.

ovsdbapp keeps the connection of a Backend on the *class*, so a second API
object silently reuses the first server's connection. labctl talks to more
than one server (the system OVS, its own, a test's private one), so the API
here keeps its connection on the instance.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from labctl.errors import BackendError

if TYPE_CHECKING:
    from labctl.backends.ovs.ovsdb_idl import OvsdbApi as OvsdbApi  # for ovsdb.OvsdbApi

DEFAULT_TIMEOUT = 30.0


def __getattr__(name: str) -> Any:
    # OvsdbApi lives with the rest of ovsdbapp's side, imported on first use.
    if name == "OvsdbApi":
        from labctl.backends.ovs.ovsdb_idl import OvsdbApi

        return OvsdbApi
    raise AttributeError(name)


ApiFactory = Callable[[str], "OvsdbApi"]


def connect(endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> OvsdbApi:
    """Connect to the ovsdb-server at `endpoint` ("unix:/path/db.sock")."""
    from labctl.backends.ovs import ovsdb_idl

    return ovsdb_idl.connect(endpoint, timeout)


@contextlib.contextmanager
def session(endpoint: str, factory: ApiFactory = connect) -> Iterator[OvsdbApi]:
    api = factory(endpoint)
    try:
        yield api
    finally:
        api.close()


def execute(action: str, command: Any) -> Any:
    """Run one read or write command, wrapping ovsdbapp's errors."""
    try:
        return command.execute(check_error=True, log_errors=False)
    except Exception as exc:
        raise BackendError(action, exc) from exc


def commit(action: str, api: OvsdbApi, commands: Iterable[Any]) -> None:
    """Run write commands in one transaction (all or none), wrapping ovsdbapp's errors."""
    try:
        with api.transaction(check_error=True, log_errors=False) as txn:
            for command in commands:
                txn.add(command)
    except Exception as exc:
        raise BackendError(action, exc) from exc


def init_database(api: OvsdbApi) -> None:
    """Create the Open_vSwitch root row of a fresh database (`ovs-vsctl init`)."""
    if api.tables["Open_vSwitch"].rows:
        return
    with api.transaction(check_error=True, log_errors=False, wait_for_vswitchd=False) as txn:
        txn.add(api.db_create("Open_vSwitch"))


def unix_socket_answers(path: str, timeout: float = 2.0) -> bool:
    """True if an ovsdb-server answers a JSON-RPC echo on the unix socket `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(json.dumps({"method": "echo", "params": [], "id": 0}).encode())
            reply = sock.recv(4096)
    except OSError:
        return False
    return b'"result"' in reply
