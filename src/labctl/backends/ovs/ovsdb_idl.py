"""The ovsdbapp side of labctl's OVSDB sessions, imported only when labctl talks to an
OVSDB server (ovsdbapp and the OVS Python library take a while to import; a lab without
OVS, or a teardown with no OVS daemon running, never needs them)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from ovsdbapp.backend.ovs_idl import connection, transaction
from ovsdbapp.schema.open_vswitch import impl_idl

from labctl.errors import BackendError

SCHEMA_NAME = "Open_vSwitch"

# ovsdbapp logs failed transactions and post-commit checks with tracebacks;
# labctl raises them as BackendError instead, so a library caller sees no output.
logging.getLogger("ovsdbapp").addHandler(logging.NullHandler())


class _Transaction(impl_idl.OvsVsctlTransaction):
    """An ovs-vsctl-like transaction that waits for ovs-vswitchd to apply it
    (Open_vSwitch cur_cfg), unless the daemon is not running yet."""

    def __init__(
        self,
        api: OvsdbApi,
        conn: connection.Connection,
        *,
        check_error: bool,
        log_errors: bool,
        wait_for_vswitchd: bool,
    ):
        super().__init__(api, conn, check_error=check_error, log_errors=log_errors)
        self.wait_for_vswitchd = wait_for_vswitchd

    def pre_commit(self, txn: Any) -> None:
        if self.wait_for_vswitchd:
            super().pre_commit(txn)
        else:
            txn.expected_ifaces = set()  # AddPortCommand records into it

    def post_commit(self, txn: Any) -> None:
        transaction.Transaction.post_commit(self, txn)
        if not self.wait_for_vswitchd:
            return
        # Callers read Interface.error themselves and roll back.
        with contextlib.suppress(impl_idl.VswitchdInterfaceAddException):
            self.do_post_commit(txn)


class OvsdbApi(impl_idl.OvsdbIdl):
    """ovsdbapp's Open_vSwitch API bound to one connection of its own."""

    @property
    def ovsdb_connection(self) -> connection.Connection:
        return self.__dict__["_labctl_connection"]

    @ovsdb_connection.setter
    def ovsdb_connection(self, conn: connection.Connection) -> None:
        self.__dict__["_labctl_connection"] = conn

    def create_transaction(
        self,
        check_error: bool = False,
        log_errors: bool = True,
        wait_for_vswitchd: bool = True,
        **kwargs: Any,
    ) -> _Transaction:
        return _Transaction(
            self,
            self.ovsdb_connection,
            check_error=check_error,
            log_errors=log_errors,
            wait_for_vswitchd=wait_for_vswitchd,
        )

    def close(self, timeout: float = 5.0) -> None:
        """Stop the connection thread (it would otherwise outlive the caller's work)."""
        self.ovsdb_connection.stop(timeout)


def connect(endpoint: str, timeout: float) -> OvsdbApi:
    """Connect to the ovsdb-server at `endpoint` ("unix:/path/db.sock")."""
    try:
        idl = connection.OvsdbIdl.from_server(endpoint, SCHEMA_NAME)
        conn = connection.Connection(idl, timeout)
        return OvsdbApi(conn, start=True)
    except Exception as exc:  # ovsdbapp raises bare Exception/TimeoutException
        raise BackendError(f"connecting to OVSDB at {endpoint}", exc) from exc
