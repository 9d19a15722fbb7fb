"""The netns node runtime, for real: named namespaces, host binaries, no Docker.

First the runtime on its own (ensure / exec / detach / remove / sweep, the
private /etc/hosts and /srv, the records, and never touching a namespace or a
process without a record of ours), then the seed lab on it through the Python
API: the Linux bridge works, the userspace OVS datapaths fail with TX checksum
offload on and work with it off, and the host is clean afterwards.

The host is observed with `ip`, /proc and the file system, independently of
the code under test.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from labctl import Lab
from labctl.backends.base import NodeHandle
from labctl.backends.netns_runtime import (
    ETC_NETNS,
    RECORDS_ROOT,
    RUN_NETNS,
    NetnsRuntime,
    netns_name,
)
from labctl.core.model import Node
from labctl.errors import BackendError
from labctl.run import RunRecorder
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED
from tests.skips import skip_or_fail

pytestmark = pytest.mark.integration

SERVER = Node.model_validate(
    {"interfaces": {"eth0": {"ipv4": "10.77.0.2/24", "ipv6": "fd77::2/64"}}}
)
CLIENT = Node.model_validate({"interfaces": {"eth0": {"ipv4": "10.77.0.1/24"}}})


# -- fixtures and witnesses ------------------------------------------------------


@pytest.fixture
def netns_host(privileged: None) -> None:
    for tool, package in (("busybox", "busybox"), ("curl", "curl")):
        if shutil.which(tool) is None:
            skip_or_fail(f"needs the host's {tool} (apt-get install {package})")


@pytest.fixture
def lab(netns_host: None, lab_name: str, state_dir: Path) -> Iterator[str]:
    """A unique lab name; afterwards nothing of it may remain, whatever the runtime did.

    The fallback works by the lab's unique name, without the code under test, so a
    bug in `sweep` cannot leave the host dirty for the next test.
    """
    yield lab_name
    prefix = f"labctl-{lab_name}-"
    for ns in namespaces():
        if ns.startswith(prefix):
            for pid in subprocess.run(
                ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30
            ).stdout.split():
                os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "delete", ns], timeout=30)
    for etc in ETC_NETNS.glob(f"{prefix}*"):
        shutil.rmtree(etc)
    shutil.rmtree(RECORDS_ROOT / lab_name, ignore_errors=True)


@pytest.fixture
def runtime() -> NetnsRuntime:
    return NetnsRuntime()


def namespaces() -> set[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def record_of(lab: str, node: str) -> dict:  # type: ignore[type-arg]
    return json.loads((RECORDS_ROOT / lab / f"{node}.json").read_text())


def in_netns(ns: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """The witness: iproute2 itself, not the runtime."""
    return subprocess.run(
        ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=30
    )


def listening(runtime: NetnsRuntime, node: NodeHandle, port: int) -> bool:
    tables = runtime.exec(node, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout
    return any(
        line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
        for line in tables.splitlines()[1:]
        if len(line.split()) > 3
    )


def assert_nothing_of(lab: str) -> None:
    prefix = f"labctl-{lab}-"
    assert not [ns for ns in namespaces() if ns.startswith(prefix)]
    assert not (RECORDS_ROOT / lab).exists()
    assert not list(ETC_NETNS.glob(f"{prefix}*"))


# -- the runtime on its own --------------------------------------------------------


def test_ensure_exec_remove(lab: str, runtime: NetnsRuntime) -> None:
    ns = netns_name(lab, "server")
    srv_before = sorted(os.listdir("/srv"))
    hosts_before = Path("/etc/hosts").read_text()

    node = runtime.ensure_node(lab, "server", SERVER)

    assert node == NodeHandle("server", ns, 0, f"/run/netns/{ns}")
    assert ns in namespaces() and Path(node.netns_path).exists()
    assert runtime.get_node(lab, "server") == node
    assert runtime.image_exists("any/image:whatever")
    lo = json.loads(in_netns(ns, ["ip", "-j", "link", "show", "lo"]).stdout)[0]
    assert "UP" in lo["flags"]
    record = record_of(lab, "server")
    workdir = RECORDS_ROOT / lab / "server"
    assert record["lab"] == lab and record["node"] == "server" and record["netns"] == ns
    assert record["workdir"] == str(workdir) and record["processes"] == []
    assert (workdir / "srv" / "www" / "index.html").is_file()

    # exec: the host's binaries, in the node's namespace, exit codes and output kept.
    links = runtime.exec(node, ["ip", "-o", "link", "show"])
    assert links.exit_code == 0 and links.stdout.count("\n") == 1 and " lo:" in links.stdout
    assert runtime.exec(node, ["hostname"]).stdout.strip() == "server"
    failed = runtime.exec(node, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (failed.exit_code, failed.stdout, failed.stderr) == (3, "out\n", "err\n")
    missing = runtime.exec(node, ["no-such-binary-here"])
    assert missing.exit_code == 127 and "no-such-binary-here" in missing.stderr
    # A clean environment: nothing of the caller's (proxies, state dirs) leaks in.
    env = dict(
        line.split("=", 1)
        for line in runtime.exec(node, ["env"]).stdout.splitlines()
        if "=" in line
    )
    assert "LABCTL_STATE_DIR" not in env and env["HOME"] == str(workdir)
    # The node's /srv is its own directory; the host's /srv is untouched.
    page = runtime.exec(node, ["cat", "/srv/www/index.html"])
    assert page.exit_code == 0 and f"lab {lab}" in page.stdout
    assert sorted(os.listdir("/srv")) == srv_before
    assert Path("/etc/hosts").read_text() == hosts_before

    # Bounded: a command that does not end is killed, with its children.
    started = time.monotonic()
    with pytest.raises(BackendError, match="no exit after 0.5 s"):
        runtime.exec(node, ["sh", "-c", "sleep 30 & sleep 30"], timeout=0.5)
    assert time.monotonic() - started < 5
    assert wait_until(lambda: not members(ns))

    # Idempotent ensure, tolerant remove.
    assert runtime.ensure_node(lab, "server", SERVER) == node
    runtime.remove_node(lab, "server")
    assert runtime.get_node(lab, "server") is None
    assert_nothing_of(lab)
    runtime.remove_node(lab, "server")
    with pytest.raises(BackendError, match="is gone"):
        runtime.exec(node, ["true"])


def members(ns: str) -> list[str]:
    return subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30
    ).stdout.split()


def test_each_node_has_a_private_etc_hosts(lab: str, runtime: NetnsRuntime) -> None:
    hosts_before = Path("/etc/hosts").read_text()
    server = runtime.ensure_node(lab, "server", SERVER)
    client = runtime.ensure_node(lab, "client", CLIENT)

    def hosts(node: NodeHandle) -> list[list[str]]:
        text = runtime.exec(node, ["cat", "/etc/hosts"]).stdout
        return [line.split() for line in text.splitlines() if line and not line.startswith("#")]

    on_server, on_client = hosts(server), hosts(client)
    for table in (on_server, on_client):
        assert ["127.0.0.1", "localhost"] in table
        assert ["10.77.0.2", "server"] in table and ["fd77::2", "server"] in table
        assert ["10.77.0.1", "client"] in table
    # Names resolve through it (getent reads /etc/hosts through nsswitch).
    assert runtime.exec(server, ["getent", "hosts", "client"]).stdout.split() == [
        "10.77.0.1",
        "client",
    ]
    assert Path("/etc/hosts").read_text() == hosts_before
    assert (ETC_NETNS / netns_name(lab, "server") / "hosts").is_file()

    runtime.remove_node(lab, "client")
    assert ["10.77.0.1", "client"] not in hosts(server)
    assert not (ETC_NETNS / netns_name(lab, "client")).exists()
    runtime.remove_node(lab, "server")
    assert_nothing_of(lab)


def test_detached_processes_are_recorded_and_swept(lab: str, runtime: NetnsRuntime) -> None:
    before = HostSnapshot.take()
    command_node = Node.model_validate({"command": ["sleep", "600"]})
    sleeper = runtime.ensure_node(lab, "client", command_node)
    server = runtime.ensure_node(lab, "server", SERVER)
    [command] = record_of(lab, "client")["processes"]
    assert command["role"] == "command" and command["argv"] == ["sleep", "600"]
    assert alive(command["pid"])
    # ensure_node again does not start the command twice.
    assert runtime.ensure_node(lab, "client", command_node) == sleeper
    assert [p["pid"] for p in record_of(lab, "client")["processes"]] == [command["pid"]]

    assert (
        runtime.exec(
            server, ["busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"], detach=True
        ).exit_code
        == 0
    )
    assert wait_until(lambda: listening(runtime, server, 8080))
    [httpd] = record_of(lab, "server")["processes"]
    assert httpd["argv"][:2] == ["busybox", "httpd"] and Path(httpd["log"]).parent == (
        RECORDS_ROOT / lab / "server" / "log"
    )
    # The recorded pid is the server itself, inside the node's namespace.
    assert str(httpd["pid"]) in members(netns_name(lab, "server"))
    page = runtime.exec(server, ["curl", "-sS", "--max-time", "5", "http://[::1]:8080/"])
    assert page.exit_code == 0 and f"node server of lab {lab}" in page.stdout, page.stderr

    owned = runtime.list_owned(lab)
    assert {(o.kind, o.name, o.lab) for o in owned} == {
        ("netns", netns_name(lab, "client"), lab),
        ("netns", netns_name(lab, "server"), lab),
    }
    assert {o.lab for o in runtime.list_owned()} >= {lab}

    swept = runtime.sweep(lab)
    assert sorted(o.details["node"] for o in swept) == ["client", "server"]
    assert wait_until(lambda: not alive(httpd["pid"]) and not alive(command["pid"]))
    assert_nothing_of(lab)
    assert runtime.list_owned(lab) == [] and runtime.sweep(lab) == []
    assert HostSnapshot.take().added_since(before) == {}


def test_sweep_by_another_process_after_a_crash(lab: str) -> None:
    """Records are the identity: a fresh runtime (another labctl process) finds it all."""
    first = NetnsRuntime()
    server = first.ensure_node(lab, "server", SERVER)
    first.exec(server, ["busybox", "httpd", "-f", "-p", "8081", "-h", "/srv/www"], detach=True)
    [httpd] = record_of(lab, "server")["processes"]
    # A process in the namespace that no record names (e.g. started by hand).
    stray = subprocess.Popen(["ip", "netns", "exec", netns_name(lab, "server"), "sleep", "600"])
    try:
        assert wait_until(lambda: str(stray.pid) in members(netns_name(lab, "server")))
        swept = NetnsRuntime().sweep(lab)
        assert [o.name for o in swept] == [netns_name(lab, "server")]
        assert wait_until(lambda: not alive(httpd["pid"]))
        assert stray.wait(timeout=10) == -signal.SIGTERM
        assert_nothing_of(lab)
    finally:
        stray.kill()
        stray.wait(timeout=10)


def test_never_touches_a_namespace_without_our_record(lab: str, runtime: NetnsRuntime) -> None:
    ns = netns_name(lab, "server")
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        with pytest.raises(BackendError, match="was not created by labctl"):
            runtime.ensure_node(lab, "server", SERVER)
        assert runtime.get_node(lab, "server") is None
        assert runtime.list_owned(lab) == [] and runtime.sweep(lab) == []
        runtime.remove_node(lab, "server")
        assert ns in namespaces()
        assert not (RECORDS_ROOT / lab).exists()
        assert not (ETC_NETNS / ns).exists()
    finally:
        subprocess.run(["ip", "netns", "delete", ns], timeout=30)


def test_never_kills_a_recycled_pid(lab: str, runtime: NetnsRuntime) -> None:
    """A recorded pid whose start time differs belongs to someone else now."""
    runtime.ensure_node(lab, "server", SERVER)
    foreign = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        path = RECORDS_ROOT / lab / "server.json"
        record = json.loads(path.read_text())
        starttime = int(Path(f"/proc/{foreign.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        record["processes"].append(
            {"pid": foreign.pid, "starttime": starttime - 1, "role": "exec", "argv": ["x"]}
        )
        path.write_text(json.dumps(record))
        assert [o.details["node"] for o in NetnsRuntime().sweep(lab)] == ["server"]
        assert foreign.poll() is None
        assert_nothing_of(lab)
    finally:
        foreign.kill()
        foreign.wait(timeout=10)


def test_failed_ensure_leaves_nothing(lab: str, runtime: NetnsRuntime) -> None:
    broken = Node.model_validate({"command": ["no-such-daemon", "--foreground"]})
    with pytest.raises(BackendError, match="exited at once") as raised:
        runtime.ensure_node(lab, "server", broken)
    assert "no-such-daemon" in str(raised.value)
    assert_nothing_of(lab)


# -- the seed lab on the netns runtime ---------------------------------------------


def seed_on_netns(tmp_path: Path, offload_tx: bool | None = None) -> Path:
    data = yaml.safe_load(SEED.read_text())
    data["runtime"] = "netns"
    if offload_tx is not None:
        for node in data["nodes"].values():
            node["offload"] = {"tx": offload_tx}
    path = tmp_path / "seed-netns.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def assert_lab_is_netns(lab: Lab) -> None:
    for node in ("client", "server"):
        handle = lab.engine.node(lab.name, node)
        assert handle.netns == str(RUN_NETNS / netns_name(lab.name, node))


def test_seed_lab_on_linux_bridge(lab: str, tmp_path: Path) -> None:
    before = HostSnapshot.take()
    with Lab.from_file(seed_on_netns(tmp_path), switch="linux-bridge", name=lab) as built:
        assert_lab_is_netns(built)
        added = HostSnapshot.take().added_since(before)
        assert sorted(added["netns"]) == [netns_name(lab, "client"), netns_name(lab, "server")]
        assert "containers" not in added
        record = RunRecorder(built.engine, tmp_path / "runs").run(lab)
    assert HostSnapshot.take().added_since(before) == {}
    assert_nothing_of(lab)
    assert record.http is not None and record.http.succeeded == 5, record.http.render_text()
    assert record.diagnosis is not None and record.diagnosis.ok, record.diagnosis.verdict


@pytest.mark.parametrize("kind", ["ovs-userspace", "ovs-dpdk"])
def test_seed_lab_on_userspace_ovs_fails_with_tx_offload(
    kind: str, lab: str, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    with Lab.from_file(seed_on_netns(tmp_path), switch=kind, name=lab) as built:
        assert_lab_is_netns(built)
        record = RunRecorder(built.engine, tmp_path / "runs").run(lab)
    assert HostSnapshot.take().added_since(before) == {}
    assert_nothing_of(lab)
    assert record.http is not None and (record.http.succeeded, record.http.failed) == (0, 5)
    assert record.diagnosis is not None and not record.diagnosis.ok
    assert "bad-checksum" in {f.kind for f in record.diagnosis.findings}


@pytest.mark.parametrize("kind", ["ovs-userspace", "ovs-dpdk"])
def test_seed_lab_on_userspace_ovs_works_with_tx_offload_off(
    kind: str, lab: str, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    with Lab.from_file(seed_on_netns(tmp_path, offload_tx=False), switch=kind, name=lab) as built:
        assert_lab_is_netns(built)
        record = RunRecorder(built.engine, tmp_path / "runs").run(lab)
        offload = record.manifest["offload"]
        assert offload["client:eth0"]["tx"] is False and offload["server:eth0"]["tx"] is False
    assert HostSnapshot.take().added_since(before) == {}
    assert_nothing_of(lab)
    assert record.http is not None and record.http.ok, record.http.render_text()
    assert record.diagnosis is not None and record.diagnosis.ok, record.diagnosis.verdict


NETNS_PROBES = """
probes:
  - {kind: tcp, name: bulk, client: client, server: server, seconds: 1, bitrate: 20M}
  - {kind: udp, client: client, server: server, family: ipv6, seconds: 1, bitrate: 1M}
  - {kind: icmp, name: ping6, client: client, server: server, family: ipv6, count: 3,
     interval: 0.2}
  - {kind: command, name: link, node: server, argv: [ip, -o, link, show, eth0],
     output: 'mtu 1500 '}
"""


def test_every_probe_kind_runs_the_hosts_programs_in_netns_nodes(lab: str, tmp_path: Path) -> None:
    topology = tmp_path / "probes.yaml"
    topology.write_text(seed_on_netns(tmp_path).read_text() + NETNS_PROBES)
    before = HostSnapshot.take()
    with Lab.from_file(topology, switch="linux-bridge", name=lab) as built:
        record = RunRecorder(built.engine, tmp_path / "runs").run(lab)
    assert HostSnapshot.take().added_since(before) == {}
    by_name = {p.name: p for p in record.probes}
    assert list(by_name) == ["http", "bulk", "udp", "ping6", "link"]
    assert all(p.ok for p in record.probes), [p.render_text() for p in record.probes]
    assert (by_name["ping6"].sent, by_name["ping6"].received) == (3, 3)
    assert record.diagnosis is not None and record.diagnosis.ok, record.diagnosis.verdict


def test_a_probe_whose_program_the_host_lacks_is_refused_before_anything_exists(
    lab: str, tmp_path: Path
) -> None:
    """netns nodes run the host's programs: `up` names the probe's line and the fix, and
    creates nothing."""
    topology = tmp_path / "probes.yaml"
    text = seed_on_netns(tmp_path).read_text() + (
        "probes:\n"
        "  - {kind: icmp, client: client, server: server}\n"
        "  - {kind: command, node: server, argv: [no-such-program-here, --version]}\n"
    )
    topology.write_text(text)
    line = text.splitlines().index(
        "  - {kind: command, node: server, argv: [no-such-program-here, --version]}"
    )
    before = HostSnapshot.take()
    done = labctl_cli("up", str(topology), "--name", lab)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{topology}:{line + 1}:" in done.stderr
    assert "runs `no-such-program-here`, which this host does not have" in done.stderr
    assert "install it on the host, or give its full path" in done.stderr
    assert "`ping`" not in done.stderr  # the host has ping (scripts/provision.sh)
    assert HostSnapshot.take().added_since(before) == {}


def labctl_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labctl.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
