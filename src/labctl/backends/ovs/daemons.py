"""ovsdb-server and ovs-vswitchd: use the system's, or run labctl's own.

If a system OVS answers on its default socket, labctl uses it as it is and
never stops, restarts or reconfigures it. Otherwise labctl starts its own pair
with its own run directory, database and logs, and records what it started in
a small JSON file so that a later process (`labctl down`) can stop it. Our
daemons stop when no lab uses them and no bridge is left in their database
(bridges are deleted through OVSDB first: stopping a netdev vswitchd with
bridges left leaves the `ovs-netdev` tap and the bridge ports on the host).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labctl.backends import processes
from labctl.backends.base import Owned
from labctl.backends.host_probe import installed_dpdk_abi
from labctl.backends.host_probe import read_text_or_empty as _read
from labctl.backends.ovs import ovsdb
from labctl.core import dpdk, ovs_config
from labctl.core.doctor import (
    PROVISION,
    hugepage_problem,
    hugepages_mib,
    hugetlbfs_mounted,
    socket_mem_mib,
)
from labctl.core.model import DpdkOptions
from labctl.errors import BackendError, PrerequisiteError
from labctl.store import file_lock, read_json, write_json

SYSTEM_DB_SOCKET = Path("/var/run/openvswitch/db.sock")
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
VSWITCHD = Path("/usr/lib/openvswitch-switch/ovs-vswitchd")
VSWITCHD_DPDK = Path("/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk")
LOG_TAIL_LINES = 15
LOCK_WAIT = 180.0
"""How long to wait for another labctl process's daemon start or stop: starting
ovsdb-server and a DPDK vswitchd, each bounded by `timeout`, takes at most a few."""
KILL_WAIT = 5.0

# other_config keys labctl writes from switch.dpdk; vswitchd reads them once at start.
DPDK_KEYS = ("dpdk-init", "dpdk-socket-mem", "dpdk-extra", "dpdk-lcore-mask", "pmd-cpu-mask")


@dataclass(frozen=True)
class OvsPaths:
    run_dir: Path = Path("/run/labctl/ovs")
    log_dir: Path = Path("/var/log/labctl/ovs")

    @property
    def db_file(self) -> Path:
        return self.run_dir / "conf.db"

    @property
    def db_socket(self) -> Path:
        return self.run_dir / "db.sock"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "daemons.json"

    @property
    def lock_file(self) -> Path:
        return self.run_dir / "daemons.lock"

    def pidfile(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.pid"

    def ctl_socket(self, daemon: str) -> Path:
        return self.run_dir / f"{daemon}.ctl"

    def log_file(self, daemon: str) -> Path:
        return self.log_dir / f"{daemon}.log"


@dataclass(frozen=True)
class OvsBinaries:
    ovsdb_server: str = "ovsdb-server"
    ovsdb_tool: str = "ovsdb-tool"
    vswitchd: Path = VSWITCHD
    vswitchd_dpdk: Path = VSWITCHD_DPDK
    schema: Path = OVS_SCHEMA


@dataclass(frozen=True)
class DaemonNeeds:
    """What a switch needs from ovs-vswitchd's global configuration: the DPDK build with
    these options or the plain build, and the global other_config settings that differ
    from OVS's defaults (sorted, as labctl.core.ovs_config.normalized gives them; the
    switch backend takes both from labctl.core.schedule.vswitchd_config, as the matrix
    schedule does)."""

    dpdk: DpdkOptions | None = None
    other_config: tuple[tuple[str, str], ...] = ()
    asked: tuple[tuple[str, str], ...] = ()
    """other_config as the lab wrote it, OVS's defaults included: a system OVS, which
    labctl never reconfigures, must run with each of these values."""

    def settings(self) -> dict[str, str]:
        """Everything labctl writes to the Open_vSwitch table's other_config."""
        config = dict(self.other_config)
        if self.dpdk is not None:
            config["dpdk-init"] = "true"
            config["dpdk-socket-mem"] = self.dpdk.socket_mem
            config["dpdk-extra"] = self.dpdk.extra_eal_args
            if self.dpdk.lcore_mask:
                config["dpdk-lcore-mask"] = self.dpdk.lcore_mask
            if self.dpdk.pmd_cpu_mask:
                config["pmd-cpu-mask"] = self.dpdk.pmd_cpu_mask
        return config


@dataclass(frozen=True)
class OvsEndpoint:
    """Where the switch backend finds OVSDB, and whether labctl owns the daemons."""

    connection: str  # "unix:/run/labctl/ovs/db.sock"
    managed: bool
    dpdk: bool = False
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _global_settings(other_config: dict[str, str]) -> dict[str, str]:
    """The keys of ovs_config.KNOWN_KEYS in an Open_vSwitch other_config (not the DPDK
    ones, which the build and dpdk_initialized decide, nor keys labctl does not know)."""
    return {k: v for k, v in other_config.items() if k in ovs_config.KNOWN_KEYS}


def _value(config: dict[str, str], key: str) -> str | None:
    """A key's value as vswitchd uses it: as set, else OVS's default (None: it depends)."""
    known = ovs_config.KNOWN_KEYS.get(key)
    return config.get(key, known.default if known else None)


def _settings_text(config: dict[str, str], keys: list[str]) -> str:
    return ", ".join(f"{k}={config[k]}" if k in config else f"{k} at OVS's default" for k in keys)


class DaemonManager(Protocol):
    """What OvsSwitch needs from whoever runs the OVS daemons."""

    def check(self, needs: DaemonNeeds) -> None: ...
    def current(self) -> OvsEndpoint | None: ...
    def ensure(self, lab: str, needs: DaemonNeeds) -> OvsEndpoint: ...
    def release(self, lab: str) -> list[Owned]: ...
    def list_owned(self, lab: str | None = None) -> list[Owned]: ...
    def revive(self) -> None: ...
    def health(self) -> list[str]: ...


@dataclass
class ExternalOvs:
    """Daemons someone else runs (a test fixture, an operator): never started or stopped."""

    connection: str
    dpdk: bool = False
    api_factory: ovsdb.ApiFactory = ovsdb.connect

    def check(self, needs: DaemonNeeds) -> None:
        pass

    def current(self) -> OvsEndpoint:
        return OvsEndpoint(self.connection, managed=False, dpdk=self.dpdk)

    def ensure(self, lab: str, needs: DaemonNeeds) -> OvsEndpoint:
        return self.current()

    def release(self, lab: str) -> list[Owned]:
        return []

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        return []

    def revive(self) -> None:
        pass

    def health(self) -> list[str]:
        return []


@dataclass
class _State:
    """What labctl started, persisted in the run dir for later processes."""

    ovsdb_server: dict[str, Any] = field(default_factory=dict)  # pid, binary
    ovs_vswitchd: dict[str, Any] = field(default_factory=dict)  # pid, binary, dpdk
    labs: list[str] = field(default_factory=list)
    other_config: dict[str, str] = field(default_factory=dict)


class OvsDaemons:
    """Finds or starts ovsdb-server + ovs-vswitchd. See the module docstring."""

    def __init__(
        self,
        paths: OvsPaths | None = None,
        binaries: OvsBinaries | None = None,
        *,
        system_socket: Path | None = SYSTEM_DB_SOCKET,
        api_factory: ovsdb.ApiFactory = ovsdb.connect,
        timeout: float = 30.0,
        vswitchd_extra_args: Sequence[str] = (),
        meminfo: Path = Path("/proc/meminfo"),
        mounts: Path = Path("/proc/mounts"),
        pmd_glob: str | None = None,
        dpdk_abi: str | None = None,
        lock_wait: float = LOCK_WAIT,
    ):
        self.paths = paths or OvsPaths()
        self.binaries = binaries or OvsBinaries()
        self.system_socket = system_socket
        self.api_factory = api_factory
        self.timeout = timeout
        self.lock_wait = lock_wait
        self.vswitchd_extra_args = tuple(vswitchd_extra_args)
        self.meminfo = meminfo
        self.mounts = mounts
        # The installed DPDK's ABI names its plugin folder and its driver packages.
        self.dpdk_abi = dpdk_abi or installed_dpdk_abi()
        self.pmd_glob = pmd_glob or dpdk.plugin_glob(self.dpdk_abi)

    # -- queries ---------------------------------------------------------------

    @property
    def own_connection(self) -> str:
        return f"unix:{self.paths.db_socket}"

    def system_endpoint(self) -> OvsEndpoint | None:
        if self.system_socket is None or not ovsdb.unix_socket_answers(str(self.system_socket)):
            return None
        return OvsEndpoint(f"unix:{self.system_socket}", managed=False)

    def current(self) -> OvsEndpoint | None:
        """The OVS in use now (system first, then ours), without starting anything."""
        system = self.system_endpoint()
        if system is not None:
            return system
        state = self._read_state()
        if self._alive(state.ovsdb_server) and ovsdb.unix_socket_answers(str(self.paths.db_socket)):
            return OvsEndpoint(
                self.own_connection, managed=True, dpdk=bool(state.ovs_vswitchd.get("dpdk"))
            )
        return None

    def check(self, needs: DaemonNeeds) -> None:
        """Prerequisites of starting our own daemons (a system OVS is checked in ensure)."""
        if self.system_endpoint() is not None:
            return
        vswitchd = self.binaries.vswitchd_dpdk if needs.dpdk else self.binaries.vswitchd
        missing = [
            str(b)
            for b in (self.binaries.ovsdb_server, self.binaries.ovsdb_tool, str(vswitchd))
            if shutil.which(str(b)) is None
        ]
        if not Path(self.binaries.schema).is_file():
            missing.append(str(self.binaries.schema))
        if missing:
            package = "openvswitch-switch-dpdk" if needs.dpdk else "openvswitch-switch"
            raise PrerequisiteError(
                f"Open vSwitch is not installed ({', '.join(missing)} not found)",
                f"apt-get install {package} (or {PROVISION})",
            )
        if needs.dpdk is not None:
            self._check_pmd(needs.dpdk.port_driver)
            state = self._read_state()
            if not (self._alive(state.ovs_vswitchd) and state.ovs_vswitchd.get("dpdk")):
                self._check_hugepages(needs.dpdk)

    def _check_pmd(self, driver: str) -> None:
        """Debian ships DPDK drivers as plugins; without them vswitchd fails late and
        cryptically (no vdev driver; EINVAL creating mempools)."""
        plugins = {
            f"net_{driver}": f"the DPDK {driver} driver (net_{driver})",
            "mempool_ring": "the DPDK ring mempool driver (mempool_ring)",
        }
        for plugin, what in plugins.items():
            if not glob.glob(self.pmd_glob.format(plugin=plugin)):
                package = dpdk.package(plugin, self.dpdk_abi)
                raise PrerequisiteError(f"{what} is not installed", f"apt-get install {package}")

    def _check_hugepages(self, dpdk: DpdkOptions) -> None:
        free_mib, _total = hugepages_mib(_read(self.meminfo))
        mounted = hugetlbfs_mounted(_read(self.mounts))
        problem = hugepage_problem(free_mib, mounted, socket_mem_mib(dpdk.socket_mem))
        if problem is not None:
            raise PrerequisiteError(*problem)

    # -- ensure / release ------------------------------------------------------

    def ensure(self, lab: str, needs: DaemonNeeds) -> OvsEndpoint:
        system = self.system_endpoint()
        if system is not None:
            return self._check_system(system, needs)
        self.check(needs)
        with self._locked():
            state = self._read_state()
            if not self._alive(state.ovsdb_server):
                self._stop_all(state)  # a half-dead pair: start over cleanly
                state = _State()
                self._start_ovsdb_server(state)
            if self._alive(state.ovs_vswitchd):
                reason = self._mismatch(state, needs)
                if reason:
                    others = [other for other in state.labs if other != lab]
                    bridges = self._bridge_names()
                    if others or bridges:
                        raise PrerequisiteError(
                            f"labctl's own ovs-vswitchd {reason} and is still used "
                            f"(labs: {', '.join(others) or '-'}; bridges: "
                            f"{', '.join(bridges) or '-'})",
                            "take those labs down (labctl down) and retry",
                        )
                    self._stop_daemon(state.ovs_vswitchd, "ovs-vswitchd")
                    state.ovs_vswitchd = {}
            if not self._alive(state.ovs_vswitchd):
                self._start_vswitchd(state, needs)
            if lab not in state.labs:
                state.labs.append(lab)
            self._write_state(state)
            return OvsEndpoint(
                self.own_connection, managed=True, dpdk=bool(state.ovs_vswitchd.get("dpdk"))
            )

    def health(self) -> list[str]:
        """Problems of the daemons we started, each with the end of its log."""
        if self.system_endpoint() is not None or not self.paths.state_file.exists():
            return []
        state = self._read_state()
        problems = []
        for daemon, info in (
            ("ovsdb-server", state.ovsdb_server),
            ("ovs-vswitchd", state.ovs_vswitchd),
        ):
            if info and not self._alive(info):
                tail = self._log_tail(daemon).splitlines()[-3:]
                problems.append(
                    f"labctl's {daemon} (pid {info.get('pid')}) is not running; " + " | ".join(tail)
                )
        return problems

    def revive(self) -> None:
        """Restart our daemons if one died while our bridges still exist.

        Only a running ovs-vswitchd, talking to its database, removes the tap devices of
        a netdev bridge (`ovs-netdev` and the bridge's internal port); stopping it with
        bridges left, or deleting them in a database it cannot reach, would leave those
        on the host. The database file keeps the bridges and the settings."""
        if self.system_endpoint() is not None or not self.paths.state_file.exists():
            return
        with self._locked():
            state = self._read_state()
            if state.ovsdb_server and not self._alive(state.ovsdb_server):
                if not self.paths.db_file.exists():
                    return
                self._start_ovsdb_server(state)
                self._write_state(state)
            info = state.ovs_vswitchd
            if not info or self._alive(info) or not self._bridge_names():
                return
            self._spawn(
                "ovs-vswitchd",
                [info["binary"], f"unix:{self.paths.db_socket}", *self.vswitchd_extra_args],
            )
            state.ovs_vswitchd = {**info, "pid": self._pid_of("ovs-vswitchd")}
            self._write_state(state)
            if info.get("dpdk"):
                self._wait_dpdk(state)

    def release(self, lab: str) -> list[Owned]:
        """Forget that `lab` uses our daemons; stop them if nothing uses them any more."""
        if self.system_endpoint() is not None or not self.paths.state_file.exists():
            return []
        with self._locked():
            state = self._read_state()
            if lab in state.labs:
                state.labs.remove(lab)
            if not self._alive(state.ovsdb_server):
                stopped = self._owned(state, lab)
                self._stop_all(state)
                self._forget()
                return stopped
            if state.labs or self._bridge_names():
                self._write_state(state)
                return []
            stopped = self._owned(state, lab)
            self._stop_all(state)
            self._forget(database=True)
            return stopped

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        state = self._read_state()
        labs = [x for x in state.labs if lab is None or x == lab]
        return [item for x in labs for item in self._owned(state, x)]

    def _owned(self, state: _State, lab: str) -> list[Owned]:
        return [
            Owned("daemon", name, lab, dict(info))
            for name, info in (
                ("ovs-vswitchd", state.ovs_vswitchd),
                ("ovsdb-server", state.ovsdb_server),
            )
            if info
        ]

    # -- the system OVS: look, never touch ---------------------------------------

    def _check_system(self, endpoint: OvsEndpoint, needs: DaemonNeeds) -> OvsEndpoint:
        with ovsdb.session(endpoint.connection, self.api_factory) as api:
            row = ovsdb.execute(
                "reading the system OVS configuration",
                api.db_list("Open_vSwitch", columns=["other_config", "dpdk_initialized"]),
            )[0]
        other_config = row.get("other_config", {})
        dpdk_ready = row.get("dpdk_initialized") is True
        fix = "configure the system OVS yourself, or stop it so labctl runs its own"
        if needs.dpdk is not None and not dpdk_ready:
            raise PrerequisiteError(
                f"the system OVS ({endpoint.connection}) has not initialised DPDK and "
                "labctl does not reconfigure a daemon it did not start",
                f"set other_config:dpdk-init=true and run {VSWITCHD_DPDK} ({fix})",
            )
        running = _global_settings(other_config)
        wanted = {**dict(needs.other_config), **dict(needs.asked)}
        missing = sorted(k for k in wanted if _value(running, k) != wanted[k])
        if missing:
            raise PrerequisiteError(
                f"the system OVS ({endpoint.connection}) runs with "
                f"{_settings_text(running, missing)}, the lab needs "
                f"{_settings_text(wanted, missing)}, and labctl does not reconfigure a "
                "daemon it did not start",
                f"set other_config:{', '.join(f'{k}={wanted[k]}' for k in missing)} and "
                f"restart ovs-vswitchd ({fix})",
            )
        warnings = [
            f"the system OVS runs with {k}={v} (not OVS's default), which the lab did not ask for"
            for k, v in ovs_config.normalized(running)
            if k not in wanted
        ]
        return OvsEndpoint(endpoint.connection, False, dpdk_ready, tuple(warnings))

    # -- our daemons -------------------------------------------------------------

    def _mismatch(self, state: _State, needs: DaemonNeeds) -> str | None:
        """Why the running vswitchd cannot serve `needs`, or None."""
        binary = state.ovs_vswitchd.get("binary")
        if needs.dpdk is not None:
            if binary != str(self.binaries.vswitchd_dpdk):
                return f"runs {binary}, not the DPDK build"
            if not self._dpdk_initialized():
                return "has not initialised DPDK"
            wanted = {k: v for k, v in needs.settings().items() if k in DPDK_KEYS}
            running_dpdk = {k: v for k, v in state.other_config.items() if k in DPDK_KEYS}
            if running_dpdk != wanted:
                return (
                    f"runs with {ovs_config.describe(sorted(running_dpdk.items()))}, not "
                    f"{ovs_config.describe(sorted(wanted.items()))}"
                )
        running = ovs_config.normalized(_global_settings(state.other_config))
        if running != needs.other_config:
            return (
                f"runs with other_config {ovs_config.describe(running)}, not "
                f"{ovs_config.describe(needs.other_config)}"
            )
        return None

    def _start_ovsdb_server(self, state: _State) -> None:
        self.paths.run_dir.mkdir(parents=True, exist_ok=True)
        self.paths.log_dir.mkdir(parents=True, exist_ok=True)
        db = self.paths.db_file
        if not db.exists():
            self._run(
                [self.binaries.ovsdb_tool, "create", str(db), str(self.binaries.schema)],
                "creating labctl's OVS database",
            )
        else:
            needs = subprocess.run(
                [self.binaries.ovsdb_tool, "needs-conversion", str(db), str(self.binaries.schema)],
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
            if needs.stdout.strip() == "yes":
                self._run(
                    [self.binaries.ovsdb_tool, "convert", str(db), str(self.binaries.schema)],
                    "converting labctl's OVS database",
                )
        with contextlib.suppress(FileNotFoundError):
            self.paths.db_socket.unlink()
        binary = shutil.which(self.binaries.ovsdb_server) or self.binaries.ovsdb_server
        self._spawn(
            "ovsdb-server",
            [binary, str(db), f"--remote=punix:{self.paths.db_socket}"],
        )
        state.ovsdb_server = {"pid": self._pid_of("ovsdb-server"), "binary": binary}
        deadline = time.monotonic() + self.timeout
        while not ovsdb.unix_socket_answers(str(self.paths.db_socket)):
            if time.monotonic() > deadline or not self._alive(state.ovsdb_server):
                raise BackendError(
                    "starting ovsdb-server",
                    f"no answer on {self.paths.db_socket} within {self.timeout:.0f} s",
                    self._log_tail("ovsdb-server"),
                )
            time.sleep(0.1)
        with ovsdb.session(self.own_connection, self.api_factory) as api:
            try:
                ovsdb.init_database(api)
            except Exception as exc:
                raise BackendError("initialising labctl's OVS database", exc) from exc

    def _start_vswitchd(self, state: _State, needs: DaemonNeeds) -> None:
        other_config = needs.settings()
        # vswitchd reads the DPDK settings, userspace-tso-enable and hw-offload once, at
        # start: write them first, and drop what an earlier daemon of ours ran with.
        with (
            ovsdb.session(self.own_connection, self.api_factory) as api,
            api.transaction(check_error=True, log_errors=False, wait_for_vswitchd=False) as txn,
        ):
            for key in (*DPDK_KEYS, *ovs_config.KNOWN_KEYS):
                if key not in other_config:
                    txn.add(api.db_remove("Open_vSwitch", ".", "other_config", key, if_exists=True))
            txn.add(api.db_set("Open_vSwitch", ".", ("other_config", other_config)))
        binary = self.binaries.vswitchd_dpdk if needs.dpdk else self.binaries.vswitchd
        self._spawn(
            "ovs-vswitchd",
            [str(binary), f"unix:{self.paths.db_socket}", *self.vswitchd_extra_args],
        )
        state.ovs_vswitchd = {
            "pid": self._pid_of("ovs-vswitchd"),
            "binary": str(binary),
            "dpdk": needs.dpdk is not None,
        }
        state.other_config = other_config
        if needs.dpdk is not None:
            self._wait_dpdk(state)

    def _wait_dpdk(self, state: _State) -> None:
        deadline = time.monotonic() + self.timeout
        while not self._dpdk_initialized():
            if not self._alive(state.ovs_vswitchd):
                raise BackendError(
                    "starting ovs-vswitchd with DPDK",
                    "the daemon exited",
                    self._log_tail("ovs-vswitchd"),
                )
            if time.monotonic() > deadline:
                raise BackendError(
                    "starting ovs-vswitchd with DPDK",
                    f"DPDK not initialised within {self.timeout:.0f} s",
                    self._log_tail("ovs-vswitchd"),
                )
            time.sleep(0.2)

    def _dpdk_initialized(self) -> bool:
        with ovsdb.session(self.own_connection, self.api_factory) as api:
            value = ovsdb.execute(
                "reading Open_vSwitch dpdk_initialized",
                api.db_get("Open_vSwitch", ".", "dpdk_initialized"),
            )
        return value is True

    def _bridge_names(self) -> list[str]:
        with ovsdb.session(self.own_connection, self.api_factory) as api:
            return sorted(ovsdb.execute("listing bridges", api.list_br()))

    def _spawn(self, daemon: str, argv: list[str]) -> None:
        """Start a daemon with --detach: the call returns once it is initialised."""
        argv = [
            *argv,
            "--detach",
            "--no-chdir",
            f"--pidfile={self.paths.pidfile(daemon)}",
            f"--unixctl={self.paths.ctl_socket(daemon)}",
            f"--log-file={self.paths.log_file(daemon)}",
        ]
        # The detached daemon must not hold a pipe of ours open: use a file.
        # OVS_RUNDIR: bridge management sockets (<bridge>.mgmt) go to our run dir,
        # not the system OVS's /var/run/openvswitch.
        env = {
            **os.environ,
            "OVS_RUNDIR": str(self.paths.run_dir),
            "OVS_LOGDIR": str(self.paths.log_dir),
            "OVS_DBDIR": str(self.paths.run_dir),
        }
        with tempfile.TemporaryFile(mode="w+") as output:
            try:
                result = subprocess.run(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=output,
                    timeout=self.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise BackendError(
                    f"starting {daemon}",
                    f"not ready within {self.timeout:.0f} s",
                    self._log_tail(daemon),
                ) from exc
            except OSError as exc:
                raise BackendError(f"starting {daemon}", exc) from exc
            output.seek(0)
            text = output.read().strip()
        if result.returncode != 0:
            raise BackendError(
                f"starting {daemon} ({argv[0]})",
                f"exit status {result.returncode}: {text[-500:]}",
                self._log_tail(daemon),
            )

    def _pid_of(self, daemon: str) -> int:
        try:
            return int(self.paths.pidfile(daemon).read_text().strip())
        except (OSError, ValueError) as exc:
            raise BackendError(f"starting {daemon}", f"no pidfile: {exc}") from exc

    def _stop_all(self, state: _State) -> None:
        self._stop_daemon(state.ovs_vswitchd, "ovs-vswitchd")
        self._stop_daemon(state.ovsdb_server, "ovsdb-server")

    def _stop_daemon(self, info: dict[str, Any], daemon: str) -> None:
        if not self._alive(info):
            return
        pid = int(info["pid"])
        if not processes.terminate(
            lambda sig: processes.signal_pid(pid, sig),
            lambda: processes.running(pid),
            self.timeout,
            KILL_WAIT,
        ):
            raise BackendError(f"stopping {daemon}", f"pid {pid} does not exit")
        for path in (self.paths.pidfile(daemon), self.paths.ctl_socket(daemon)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    @staticmethod
    def _alive(info: dict[str, Any]) -> bool:
        """The recorded pid runs the recorded binary (pids get reused)."""
        if not info.get("pid"):
            return False
        pid = int(info["pid"])
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False
        same = os.path.realpath(exe) == os.path.realpath(str(info.get("binary", "")))
        return same and processes.running(pid)

    def _log_tail(self, daemon: str) -> str:
        path = self.paths.log_file(daemon)
        lines = processes.log_tail(path, LOG_TAIL_LINES)
        if lines is None:
            return f"no log at {path}"
        return f"last lines of {path}:\n" + "\n".join(lines)

    def _run(self, argv: list[str], action: str) -> None:
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BackendError(action, exc) from exc
        if result.returncode != 0:
            raise BackendError(action, result.stderr.strip() or f"exit {result.returncode}")

    # -- state file ----------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with file_lock(self.paths.lock_file, "labctl's OVS daemons", self.lock_wait):
            yield

    def _read_state(self) -> _State:
        try:
            data = read_json(self.paths.state_file)
        except (OSError, ValueError):
            return _State()
        if not isinstance(data, dict):
            return _State()
        return _State(**{k: v for k, v in data.items() if k in _State.__dataclass_fields__})

    def _write_state(self, state: _State) -> None:
        write_json(self.paths.state_file, asdict(state))

    def _forget(self, database: bool = False) -> None:
        paths = [self.paths.state_file, self.paths.db_socket]
        # A daemon that was killed leaves its pidfile and sockets behind.
        for daemon in ("ovsdb-server", "ovs-vswitchd"):
            paths += [self.paths.pidfile(daemon), self.paths.ctl_socket(daemon)]
        paths += list(self.paths.run_dir.glob("*.mgmt")) + list(self.paths.run_dir.glob("*.snoop"))
        if database:  # empty by now: no bridges are left in it
            db = self.paths.db_file
            paths += [db, db.with_name(f".{db.name}.~lock~")]
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
