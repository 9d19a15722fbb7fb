"""Node runtime of plain network namespaces (`runtime: netns`): no Docker, no images.

Each node is a named network namespace as `ip netns add` makes it (a bind mount
at /run/netns/<netns>), and its processes are the host's own binaries. Images
are not used: `node.image` is ignored.

Identity. Everything a node consists of is written down before it is created,
in one JSON record per node: /run/labctl/netns/<lab>/<node>.json (lab, node,
namespace, working directory, the processes started). `remove_node` and
`sweep` act on records only, never on name patterns: a namespace that merely
looks like ours (same name, no record) is refused by `ensure_node` and left
alone by `sweep`. The record is removed last, so a teardown that fails half way
can be retried.

What a node's processes see. Every process is started as
`ip netns exec <netns> <python> -c HELPER ...`:
- `ip netns exec` enters the namespace, gives the process a private mount
  namespace (a slave of the host's: nothing propagates back to the host) and
  bind-mounts every file of /etc/netns/<netns>/ over /etc. labctl writes
  /etc/netns/<netns>/hosts, so each node has its own /etc/hosts: localhost, its
  own name and the addresses of every node of the lab that labctl knows.
- HELPER (a few lines of stdlib Python, no shell) then bind-mounts the node's
  directory /run/labctl/netns/<lab>/<node>/srv over /srv, sets the node's
  hostname in a private UTS namespace and execs the command. So
  `busybox httpd -h /srv/www` serves the node's own srv/www/index.html, with no
  argv rewriting, and whatever the topology's `command` expects under /srv works
  the same way. The mounts live as long as the process: nothing to unmount.
Processes run with a clean environment (PATH, HOME=<node dir>, the node's
`env`): the host's proxy variables or ~/.curlrc must not leak into a lab.

Processes started with `detach=True` (and the node's `command`) run in their
own session, log to <node dir>/log/, and are recorded with their start time so
that a recycled pid is never killed. Removing a node kills the recorded process
groups, then any other process still inside the node's namespace (the namespace
is ours, and a live member would keep its veth ends, and so the host ends,
alive), then deletes the namespace.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labctl.backends import processes
from labctl.backends.base import ExecResult, NodeHandle, Owned
from labctl.core import names
from labctl.core.events import EventSink
from labctl.core.model import Node, Topology
from labctl.errors import BackendError, PrerequisiteError
from labctl.store import read_json, temporary_path, write_json, write_text_atomic

RECORDS_ROOT = Path("/run/labctl/netns")
RUN_NETNS = Path("/run/netns")  # iproute2's compiled-in NETNS_RUN_DIR
ETC_NETNS = Path(
    "/etc/netns"
)  # iproute2's NETNS_ETC_DIR: bind-mounted over /etc by `ip netns exec`
SRV_MOUNTPOINT = "/srv"

NETNS_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
IP_TIMEOUT = 15.0
KILL_GRACE = 3.0
START_CHECK = 0.1
START_LOG_LINES = 5
"""How long a detached start waits for an immediate failure (a missing binary)."""

INDEX_HTML = "<!doctype html><title>labctl</title><p>labctl node {node} of lab {lab}</p>\n"

# Runs inside `ip netns exec` (already a private mount namespace), as argv, never a shell:
#   python -I -S -c HELPER <node srv dir> /srv <hostname> <argv...>
HELPER = """\
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
srv, mountpoint, hostname, *argv = sys.argv[1:]
def fail(what, code):
    sys.stderr.write("labctl netns: " + what + "\\n")
    sys.exit(code)
if libc.unshare(0x04000000) != 0:  # CLONE_NEWUTS: the node's own hostname
    fail("unshare(CLONE_NEWUTS): " + os.strerror(ctypes.get_errno()), 126)
socket.sethostname(hostname)
if libc.mount(srv.encode(), mountpoint.encode(), None, 4096 | 16384, None) != 0:  # MS_BIND|MS_REC
    fail("bind-mounting " + srv + " on " + mountpoint + ": " + os.strerror(ctypes.get_errno()), 126)
try:
    os.execvp(argv[0], argv)
except OSError as error:
    fail(argv[0] + ": " + (error.strerror or str(error)), 127 if error.errno == 2 else 126)
"""


def netns_name(lab: str, node: str) -> str:
    """The network namespace name of a node: labctl-<lab>-<node>.

    Two (lab, node) pairs can map to one name ("a-b"/"c" and "a"/"b-c"); the
    records decide ownership, so the second one is refused, never shared.
    """
    if not names.LAB_NAME_RE.match(lab):
        raise ValueError(f"lab name {lab!r} is invalid")
    if not names.NODE_NAME_RE.match(node):
        raise ValueError(f"node name {node!r} is invalid")
    return f"labctl-{lab}-{node}"


@dataclass
class NodeRecord:
    """What labctl created for one node; the JSON file is the node's identity."""

    lab: str
    node: str
    netns: str
    workdir: str
    etc_dir: str
    created_at: float = field(default_factory=time.time)
    addresses: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    processes: list[dict[str, Any]] = field(default_factory=list)
    """{pid, starttime, role, argv, log}; starttime guards against pid reuse."""

    @property
    def netns_path(self) -> str:
        return str(RUN_NETNS / self.netns)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NetnsRuntime:
    """NodeRuntime on named network namespaces. All subprocesses are argv lists with
    bounded timeouts."""

    def __init__(
        self,
        records_root: Path = RECORDS_ROOT,
        *,
        ip: str = "ip",
        python: str = sys.executable,
        command_timeout: float = IP_TIMEOUT,
    ) -> None:
        self.records_root = Path(records_root)
        self.ip = ip
        self.python = python
        self.command_timeout = command_timeout
        self._lock = threading.RLock()
        # Detached processes started by this object, reaped when they are stopped.
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # ---- NodeRuntime --------------------------------------------------------------

    def prepare(self, topology: Topology, emit: EventSink) -> None:
        """Nodes run the host's own binaries: check root, `ip` and /srv up front."""
        self._check_host()

    def image_exists(self, image: str) -> bool:
        return True  # netns nodes run the host's binaries; node.image is ignored

    def ensure_node(self, lab: str, name: str, node: Node) -> NodeHandle:
        action = f"starting node {name}"
        self._check_host()
        ns = netns_name(lab, name)
        with self._lock:
            record = self._load(lab, name)
            present = _ns_mounted(ns)
            if record is None and present:
                raise BackendError(
                    action,
                    f"a network namespace named {ns} exists but was not created by labctl for "
                    f"lab {lab}",
                    f"delete it (`ip netns delete {ns}`) if it is stale, or rename the lab",
                )
            if record is not None and present:
                record.addresses = _addresses(node)
                record.env = dict(node.env)
                self._save(record)
                self._prepare_files(record)
                self._ip(["-n", ns, "link", "set", "dev", "lo", "up"], action)
                if node.command and not any(
                    p["role"] == "command" and self._alive(p) for p in record.processes
                ):
                    self._start(record, node.command, "command")
                return self._handle(record)
            if record is not None:  # the namespace vanished under its record
                self._stop_processes(record)
            record = self._new_record(lab, name, node)
            created = False
            try:
                # The record comes first: a crash after `ip netns add` must leave a trace.
                self._save(record)
                self._ip(["netns", "add", ns], action)
                created = True
                self._prepare_files(record)
                self._ip(["-n", ns, "link", "set", "dev", "lo", "up"], action)
                if node.command:
                    started = self._start(record, node.command, "command")
                    if started.exit_code != 0:
                        raise BackendError(
                            action,
                            f"its command {node.command[0]} exited at once "
                            f"(code {started.exit_code})",
                            f"its last output: {started.stderr.strip() or '(none)'}",
                        )
            except BaseException:
                with contextlib.suppress(Exception):
                    self._remove(record, delete_netns=created)
                raise
            return self._handle(record)

    def get_node(self, lab: str, name: str) -> NodeHandle | None:
        if not (_valid_lab(lab) and names.NODE_NAME_RE.match(name)):
            return None
        record = self._load(lab, name)
        if record is None or not _ns_mounted(record.netns):
            return None
        return self._handle(record)

    def remove_node(self, lab: str, name: str) -> None:
        with self._lock:
            record = self._load(lab, name) if _valid_lab(lab) else None
            if record is not None:
                self._remove(record)

    def exec(
        self, handle: NodeHandle, argv: Sequence[str], *, detach: bool = False, timeout: float = 60
    ) -> ExecResult:
        argv = list(argv)
        action = f"running {argv[0] if argv else '(nothing)'} in node {handle.name}"
        if not argv:
            raise BackendError(action, "empty command")
        record = self._record_of(handle)
        if record is None or not _ns_mounted(record.netns):
            raise BackendError(
                action,
                f"the node's network namespace {handle.container_id} is gone",
                "`labctl down` the lab and bring it up again",
            )
        self._reap()
        if detach:
            with self._lock:
                return self._start(record, argv, "exec")
        try:
            process = subprocess.Popen(
                self._wrap(record, argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=record.workdir,
                env=_env(record),
                start_new_session=True,  # so a timeout kills what it started, too
            )
        except OSError as error:
            raise BackendError(action, error) from None
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            processes.signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=KILL_GRACE)
            raise BackendError(action, f"no exit after {timeout:g} s; killed it") from None
        return ExecResult(
            process.returncode,
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
        )

    def attach(self, handle: NodeHandle, argv: Sequence[str], *, tty: bool) -> int:
        argv = list(argv)
        action = f"running {argv[0] if argv else '(nothing)'} in node {handle.name}"
        record = self._record_of(handle)
        if not argv or record is None or not _ns_mounted(record.netns):
            raise BackendError(action, "empty command" if not argv else "the node is gone")
        env = _env(record)
        if tty and "TERM" in os.environ:
            env["TERM"] = os.environ["TERM"]  # the caller's terminal, for a shell or an editor
        # Ctrl-C on the terminal reaches the command (same process group); labctl waits
        # for its exit. A Python handler, not SIG_IGN: the command must not inherit it.
        previous = signal.signal(signal.SIGINT, lambda *_: None)
        try:
            # The caller's stdio is inherited: a terminal stays the process's terminal.
            return subprocess.run(self._wrap(record, argv), cwd=record.workdir, env=env).returncode
        except OSError as error:
            raise BackendError(action, error) from None
        finally:
            signal.signal(signal.SIGINT, previous)

    def sweep(self, lab: str) -> list[Owned]:
        removed: list[Owned] = []
        failures: list[BackendError] = []
        with self._lock:
            for record in self._lab_records(lab):
                owned = self._owned(record)
                try:
                    self._remove(record)
                except BackendError as error:
                    failures.append(error)
                    continue
                removed.append(owned)
        if failures:
            raise failures[0]
        return removed

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        labs = [lab] if lab is not None else self._labs()
        return [self._owned(r) for each in labs for r in self._lab_records(each)]

    # ---- records ------------------------------------------------------------------

    def _lab_dir(self, lab: str) -> Path:
        return self.records_root / lab

    def _record_path(self, lab: str, node: str) -> Path:
        return self._lab_dir(lab) / f"{node}.json"

    def _labs(self) -> list[str]:
        try:
            entries = sorted(self.records_root.iterdir())
        except FileNotFoundError:
            return []
        return [p.name for p in entries if p.is_dir() and _valid_lab(p.name)]

    def _lab_records(self, lab: str) -> list[NodeRecord]:
        if not _valid_lab(lab):
            return []  # no record can exist under a name labctl would not create
        try:
            paths = sorted(self._lab_dir(lab).glob("*.json"))
        except OSError:
            return []
        records = []
        for path in paths:
            if names.NODE_NAME_RE.match(path.stem):
                record = self._load(lab, path.stem)
                if record is not None:
                    records.append(record)
        return records

    def _load(self, lab: str, node: str) -> NodeRecord | None:
        path = self._record_path(lab, node)
        try:
            data = read_json(path)
        except (OSError, ValueError):
            data = {}
        if data is None:
            return None
        if not isinstance(data, dict):
            data = {}  # a damaged record is still ours: fall back to what its path says
        netns = data.get("netns")
        if not (isinstance(netns, str) and NETNS_NAME_RE.match(netns)):
            netns = netns_name(lab, node)
        return NodeRecord(
            lab=lab,
            node=node,
            # The recorded name wins (it survives a change of the naming scheme); paths are
            # derived, never read back, so a record cannot point labctl at other files.
            netns=netns,
            workdir=str(self._lab_dir(lab) / node),
            etc_dir=str(ETC_NETNS / netns),
            created_at=float(data.get("created_at") or 0),
            addresses=[a for a in data.get("addresses", []) if isinstance(a, str)],
            env={str(k): str(v) for k, v in dict(data.get("env") or {}).items()},
            processes=[
                p
                for p in data.get("processes", [])
                if isinstance(p, dict) and isinstance(p.get("pid"), int) and p["pid"] > 1
            ],
        )

    def _new_record(self, lab: str, node: str, spec: Node | None) -> NodeRecord:
        ns = netns_name(lab, node)
        return NodeRecord(
            lab=lab,
            node=node,
            netns=ns,
            workdir=str(self._lab_dir(lab) / node),
            etc_dir=str(ETC_NETNS / ns),
            addresses=_addresses(spec) if spec is not None else [],
            env=dict(spec.env) if spec is not None else {},
        )

    def _save(self, record: NodeRecord) -> None:
        path = self._record_path(record.lab, record.node)
        try:
            _mkdir(path.parent)
            write_json(path, record.as_dict())
        except OSError as error:
            raise BackendError(f"writing the record of node {record.node}", error) from None

    def _record_of(self, handle: NodeHandle) -> NodeRecord | None:
        """The record behind a handle: the handle carries the node and namespace, not the lab."""
        for lab in self._labs():
            record = self._load(lab, handle.name) if names.NODE_NAME_RE.match(handle.name) else None
            if record is not None and record.netns == handle.container_id:
                return record
        return None

    # ---- files the node sees ------------------------------------------------------

    def _prepare_files(self, record: NodeRecord) -> None:
        try:
            www = Path(record.workdir) / "srv" / "www"
            _mkdir(www)
            _mkdir(Path(record.workdir) / "log")
            index = www / "index.html"
            if not index.exists():
                index.write_text(INDEX_HTML.format(node=record.node, lab=record.lab))
            self._write_hosts(record)
            self._refresh_peers(record)
        except OSError as error:
            raise BackendError(f"preparing the files of node {record.node}", error) from None

    def _refresh_peers(self, record: NodeRecord) -> None:
        """Rewrite the hosts files of the other nodes of the lab after `record` came or went."""
        for peer in self._lab_records(record.lab):
            # A peer without its /etc/netns dir is half built or half removed: leave it.
            if peer.node != record.node and Path(peer.etc_dir).is_dir():
                self._write_hosts(peer)

    def _write_hosts(self, record: NodeRecord) -> None:
        """/etc/hosts of one node: itself first, then every other node of its lab."""
        etc_dir = Path(record.etc_dir)
        peers = [r for r in self._lab_records(record.lab) if r.node != record.node]
        lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
        ]
        own = [f"{address}\t{record.node}" for address in record.addresses]
        lines += own or [f"127.0.1.1\t{record.node}"]
        for peer in peers:
            lines += [f"{address}\t{peer.node}" for address in peer.addresses]
        _mkdir(etc_dir)
        write_text_atomic(
            etc_dir / "hosts", "# written by labctl (netns runtime)\n" + "\n".join(lines) + "\n"
        )

    # ---- processes ----------------------------------------------------------------

    def _wrap(self, record: NodeRecord, argv: Sequence[str]) -> list[str]:
        srv = str(Path(record.workdir) / "srv")
        helper = [self.python, "-I", "-S", "-c", HELPER, srv, SRV_MOUNTPOINT, record.node]
        return [self.ip, "netns", "exec", record.netns, *helper, *argv]

    def _start(self, record: NodeRecord, argv: Sequence[str], role: str) -> ExecResult:
        """A detached process in the node, recorded before this returns."""
        action = f"starting {argv[0]} in node {record.node}"
        record.processes = [p for p in record.processes if self._alive(p)]
        log_dir = Path(record.workdir) / "log"
        try:
            _mkdir(log_dir)
            sequence = len(list(log_dir.glob("*.log"))) + 1
            log_path = log_dir / f"{sequence:03d}-{_safe_basename(argv[0])}.log"
            with open(log_path, "ab") as log:
                process = subprocess.Popen(
                    self._wrap(record, argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=record.workdir,
                    env=_env(record),
                    start_new_session=True,  # its own process group: removal kills all of it
                )
        except OSError as error:
            raise BackendError(action, error) from None
        self._children[process.pid] = process
        record.processes.append(
            {
                "pid": process.pid,
                "starttime": processes.starttime(process.pid),
                "role": role,
                "argv": list(argv),
                "log": str(log_path),
            }
        )
        self._save(record)
        try:
            code = process.wait(timeout=START_CHECK)
        except subprocess.TimeoutExpired:
            return ExecResult(0, "")
        return ExecResult(code, "", "\n".join(processes.log_tail(log_path, START_LOG_LINES) or []))

    def _alive(self, entry: dict[str, Any]) -> bool:
        pid = int(entry["pid"])
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        stat = processes.proc_stat(pid)
        return stat is not None and stat.starttime == entry.get("starttime") and stat.state != "Z"

    def _reap(self) -> None:
        with self._lock:
            for pid, child in list(self._children.items()):
                if child.poll() is not None:
                    del self._children[pid]

    def _stop_processes(self, record: NodeRecord) -> None:
        """Stop the recorded process groups: TERM, a grace period, then KILL."""
        ours = []
        for entry in record.processes:
            pid = int(entry["pid"])
            stat = processes.proc_stat(pid)
            if stat is not None and stat.starttime != entry.get("starttime"):
                continue  # the pid was recycled: whatever has it now is not ours
            # A dead leader may leave members; its pid cannot be reused while they live.
            ours.append(entry)

        def send(sig: signal.Signals) -> None:
            for entry in ours:
                processes.signal_group(int(entry["pid"]), sig)

        processes.terminate(send, lambda: any(self._alive(e) for e in ours), KILL_GRACE, KILL_GRACE)
        for entry in ours:
            child = self._children.pop(int(entry["pid"]), None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=KILL_GRACE)

    def _stop_members(self, ns: str) -> None:
        """Kill whatever still runs in the namespace: a live member keeps it (and its
        veths) alive after `ip netns delete`."""

        def send(sig: signal.Signals) -> None:
            for pid in _namespace_members(RUN_NETNS / ns):
                processes.signal_pid(pid, sig)

        def alive() -> bool:
            self._reap()  # a member that is our own child is gone only once reaped
            return bool(_namespace_members(RUN_NETNS / ns))

        processes.terminate(send, alive, KILL_GRACE, KILL_GRACE)
        self._reap()

    # ---- removal ------------------------------------------------------------------

    def _remove(self, record: NodeRecord, delete_netns: bool = True) -> None:
        """Undo everything of one node; the record goes last so a failure can be retried."""
        action = f"removing node {record.node} of lab {record.lab}"
        self._stop_processes(record)
        if delete_netns and _ns_mounted(record.netns):
            self._stop_members(record.netns)
            self._ip(["netns", "delete", record.netns], action)
        elif delete_netns and (RUN_NETNS / record.netns).exists():
            # A mount point left by a failed `ip netns add`: an empty file, ours by the record.
            self._ip(["netns", "delete", record.netns], action)
        try:
            if Path(record.etc_dir).exists():
                shutil.rmtree(record.etc_dir)
            _rmdir_if_empty(ETC_NETNS)
            if Path(record.workdir).exists():
                shutil.rmtree(record.workdir)
            path = self._record_path(record.lab, record.node)
            temporary_path(path).unlink(missing_ok=True)  # from an interrupted save
            path.unlink(missing_ok=True)
            _rmdir_if_empty(self._lab_dir(record.lab))
            _rmdir_if_empty(self.records_root)
            self._refresh_peers(record)
        except OSError as error:
            raise BackendError(action, error) from None

    # ---- helpers ------------------------------------------------------------------

    def _check_host(self) -> None:
        if os.geteuid() != 0:
            raise PrerequisiteError(
                "netns nodes need root (CAP_SYS_ADMIN, CAP_NET_ADMIN)", "run labctl as root (sudo)"
            )
        if shutil.which(self.ip) is None:
            raise PrerequisiteError(
                "the ip command is missing (netns nodes are made with `ip netns`)",
                "apt-get install iproute2",
            )
        if not os.path.isdir(SRV_MOUNTPOINT):
            raise PrerequisiteError(
                f"the host has no {SRV_MOUNTPOINT} directory to mount each netns node's own "
                f"{SRV_MOUNTPOINT} on",
                f"mkdir {SRV_MOUNTPOINT}",
            )

    def _ip(self, argv: list[str], action: str) -> None:
        command = [self.ip, *argv]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.command_timeout,
                stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError:
            raise PrerequisiteError(
                f"the ip command ({self.ip}) is missing", "apt-get install iproute2"
            ) from None
        except subprocess.TimeoutExpired:
            raise BackendError(
                action, f"`{' '.join(command)}` did not finish in {self.command_timeout:g} s"
            ) from None
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise BackendError(action, f"`{' '.join(command)}`: {reason}")

    def _handle(self, record: NodeRecord) -> NodeHandle:
        return NodeHandle(
            name=record.node, container_id=record.netns, pid=0, netns=record.netns_path
        )

    def _owned(self, record: NodeRecord) -> Owned:
        return Owned(
            "netns",
            record.netns,
            record.lab,
            {
                "node": record.node,
                "path": record.netns_path,
                "present": _ns_mounted(record.netns),
                "workdir": record.workdir,
                "pids": [p["pid"] for p in record.processes if self._alive(p)],
            },
        )


# ---- module helpers ---------------------------------------------------------------


def _valid_lab(lab: str) -> bool:
    return bool(names.LAB_NAME_RE.match(lab))


def _ns_mounted(ns: str) -> bool:
    """True if /run/netns/<ns> is a mounted namespace (an nsfs file has its own device)."""
    path = RUN_NETNS / ns
    try:
        return os.stat(path).st_dev != os.stat(RUN_NETNS).st_dev
    except OSError:
        return False


def _namespace_members(ns_path: Path) -> list[int]:
    """Pids whose network namespace is the one mounted at ns_path (`ip netns pids`)."""
    try:
        target = os.stat(ns_path)
    except OSError:
        return []
    members = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            info = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (info.st_ino, info.st_dev) == (target.st_ino, target.st_dev):
            stat = processes.proc_stat(int(entry.name))
            if stat is not None and stat.state != "Z":
                members.append(int(entry.name))
    return members


def _env(record: NodeRecord) -> dict[str, str]:
    return {
        "PATH": DEFAULT_PATH,
        "HOME": record.workdir,
        "HOSTNAME": record.node,
        "LANG": "C.UTF-8",
        **record.env,
    }


def _addresses(node: Node) -> list[str]:
    found = []
    for interface in node.interfaces.values():
        for value in (interface.ipv4, interface.ipv6):
            if value:
                with contextlib.suppress(ValueError):
                    found.append(str(ipaddress.ip_interface(value).ip))
    return found


def _mkdir(path: Path) -> None:
    # A concurrent teardown may remove an empty parent between the steps: retry.
    for attempt in range(3):
        try:
            path.mkdir(parents=True, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 2:
                raise


def _rmdir_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _safe_basename(command: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.basename(command))[:40] or "command"
