"""A private ovsdb-server + ovs-vswitchd (dummy datapath) in a tmp dir.

`--enable-dummy=override` replaces the system and netdev datapaths and every
netdev type with in-memory dummies: no root, no kernel devices, no hugepages.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from labctl.backends import processes
from labctl.backends.ovs import ovsdb
from labctl.backends.ovs.daemons import OVS_SCHEMA, VSWITCHD

DUMMY_ARGS = ("--enable-dummy=override", "--disable-system")


@dataclass
class PrivateOvs:
    directory: Path

    @property
    def socket(self) -> Path:
        return self.directory / "db.sock"

    @property
    def connection(self) -> str:
        return f"unix:{self.socket}"

    def pid(self, daemon: str) -> int:
        return int((self.directory / f"{daemon}.pid").read_text())

    def start(self) -> None:
        d = self.directory
        subprocess.run(["ovsdb-tool", "create", str(d / "conf.db"), str(OVS_SCHEMA)], check=True)
        init = [
            "ovsdb-tool",
            "transact",
            str(d / "conf.db"),
            '["Open_vSwitch", {"op": "insert", "table": "Open_vSwitch", "row": {}}]',
        ]
        subprocess.run(init, check=True, capture_output=True)
        common = ["--detach", "--no-chdir"]
        for daemon, argv in (
            ("ovsdb-server", ["ovsdb-server", str(d / "conf.db"), f"--remote=punix:{self.socket}"]),
            ("ovs-vswitchd", [str(VSWITCHD), self.connection, *DUMMY_ARGS]),
        ):
            subprocess.run(
                [
                    *argv,
                    *common,
                    f"--pidfile={d / daemon}.pid",
                    f"--unixctl={d / daemon}.ctl",
                    f"--log-file={d / daemon}.log",
                ],
                check=True,
                timeout=30,
                env={**os.environ, "OVS_RUNDIR": str(d)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 30
        while not ovsdb.unix_socket_answers(str(self.socket)):
            assert time.monotonic() < deadline, "private ovsdb-server does not answer"
            time.sleep(0.05)

    def stop(self) -> None:
        for daemon in ("ovs-vswitchd", "ovsdb-server"):
            with contextlib.suppress(OSError, ValueError):
                stop_pid(self.pid(daemon))


def stop_pid(pid: int, timeout: float = 10) -> None:
    processes.terminate(
        lambda sig: processes.signal_pid(pid, sig), lambda: pid_running(pid), timeout, 0
    )


def pid_running(pid: int) -> bool:
    return processes.running(pid)
