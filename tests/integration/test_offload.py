"""Offload control over ethtool netlink, on real veths in throwaway namespaces.

The ethtool binary is the independent witness: every state the backend reads
or sets is cross-checked with `ethtool -k` run inside the same namespace. The
last test shows why the lab cares: with TX checksum offload on, the sender's
own tap sees TCP checksums that are only the pseudo-header sum.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

from labctl.analysis.checksums import unfinished_value
from labctl.backends.base import NodeHandle
from labctl.backends.offload import FEATURE_NAMES, OffloadControl
from labctl.core import names
from labctl.core.model import Offload
from labctl.errors import BackendError

if TYPE_CHECKING:
    from tests.integration.netns_fixtures import HostProbe

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.integration.netns_fixtures"]

VETH_DEFAULTS = {"tx": True, "rx": True, "tso": True, "gso": True, "gro": False}
ALL_FLIPPED = Offload(tx=False, rx=False, tso=False, gso=False, gro=True)
BACK_TO_DEFAULTS = Offload(**VETH_DEFAULTS)

SERVER_IP, CLIENT_IP, PORT = "10.78.0.1", "10.78.0.2", 5078
STEP_TIMEOUT = 15.0


@pytest.fixture
def offload() -> OffloadControl:
    return OffloadControl()


@pytest.fixture
def tools(privileged: None) -> None:
    from tests.skips import skip_or_fail

    for tool in ("ethtool", "tcpdump"):
        if shutil.which(tool) is None:
            skip_or_fail(f"needs the {tool} command (apt-get install {tool})")


@dataclass(frozen=True)
class NodeVeth:
    """A veth: `host_ifname` in the host namespace, eth0 in `node`."""

    host_ifname: str
    node: NodeHandle


@pytest.fixture
def node_veth(
    host: HostProbe, lab: str, make_node: Callable[..., NodeHandle], tools: None
) -> Iterator[NodeVeth]:
    node = make_node("n1")
    # The lab prefix: the `lab` fixture's fallback sweep removes it if this test cannot.
    host_ifname = f"lc{names.lab_id(lab)}-of"
    host.run(["ip", "link", "add", host_ifname, "type", "veth", "peer", "name", f"{host_ifname}P"])
    try:
        host.run(["ip", "link", "set", f"{host_ifname}P", "netns", str(node.pid), "name", "eth0"])
        yield NodeVeth(host_ifname, node)
    finally:
        host.run(["ip", "link", "del", host_ifname], check=False)


# -- the witness: ethtool -k ---------------------------------------------------

_ETHTOOL_LINE = re.compile(r"^(\t?)([\w.-]+): (on|off)(.*)$")


@dataclass(frozen=True)
class EthtoolK:
    values: dict[str, bool]  # group lines and features alike
    members: dict[str, list[str]]  # group line -> the indented features under it
    text: str


def ethtool_k(host: HostProbe, ifname: str, node: NodeHandle | None = None) -> EthtoolK:
    argv = ["ethtool", "-k", ifname]
    result = host.in_node(node, argv) if node is not None else host.run(argv, check=False)
    assert result.returncode == 0, result.stderr
    values: dict[str, bool] = {}
    members: dict[str, list[str]] = {}
    group = ""
    for line in result.stdout.splitlines():
        match = _ETHTOOL_LINE.match(line)
        if match is None:
            continue
        indent, name, state, _flags = match.groups()
        values[name] = state == "on"
        if indent:
            members.setdefault(group, []).append(name)
        else:
            group = name
    return EthtoolK(values, members, result.stdout)


def ethtool_groups(host: HostProbe, ifname: str, node: NodeHandle | None = None) -> dict[str, bool]:
    """Our five keys as `ethtool -k` prints them."""
    values = ethtool_k(host, ifname, node).values
    return {key: values[group.ethtool_name] for key, group in FEATURE_NAMES.items()}


def ethtool_set(host: HostProbe, node: NodeHandle, *settings: str) -> str:
    result = host.in_node(node, ["ethtool", "-K", "eth0", *settings])
    assert result.returncode == 0, result.stderr
    return result.stdout


def namespaces_of_this_process() -> set[str]:
    return {os.readlink(f"/proc/self/task/{task}/ns/net") for task in os.listdir("/proc/self/task")}


# -- reading and setting ---------------------------------------------------------


def test_feature_names_are_what_ethtool_groups_and_toggles(
    host: HostProbe, offload: OffloadControl, node_veth: NodeVeth
) -> None:
    node = node_veth.node
    shown = ethtool_k(host, "eth0", node)
    # Groups with several members: ethtool lists them, indented, under the group line.
    for key in ("tx", "tso"):
        assert shown.members[FEATURE_NAMES[key].ethtool_name] == list(
            FEATURE_NAMES[key].kernel_names
        )
    # Every key: what `ethtool -K eth0 <key> <flip>` asks for is exactly the
    # group's changeable members. Changes ethtool marks "[not requested]" are
    # the kernel's own follow-ups (no TSO without a TX checksum).
    for key, default in VETH_DEFAULTS.items():
        before = offload.features(node.netns_path, "eth0")
        report = ethtool_set(host, node, key, "off" if default else "on")
        after = offload.features(node.netns_path, "eth0")
        follow_ups = {
            line.split(":")[0] for line in report.splitlines() if "[not requested]" in line
        }
        asked = (before.active ^ after.active) - follow_ups
        assert asked == {n for n in FEATURE_NAMES[key].kernel_names if n in before.changeable}, key
        assert offload.read(node.netns_path, "eth0")[key] is not default
        ethtool_set(host, node, key, "on" if default else "off")
        assert offload.read(node.netns_path, "eth0") == VETH_DEFAULTS


def test_defaults_in_a_node_read_back_like_ethtool(
    host: HostProbe, offload: OffloadControl, node_veth: NodeVeth
) -> None:
    node = node_veth.node
    assert offload.read(node.netns_path, "eth0") == VETH_DEFAULTS  # veth: tx on, gro off
    assert ethtool_groups(host, "eth0", node) == VETH_DEFAULTS


def test_apply_in_a_node_and_back(
    host: HostProbe, offload: OffloadControl, node_veth: NodeVeth
) -> None:
    node = node_veth.node
    namespaces = namespaces_of_this_process()
    flipped = {"tx": False, "rx": False, "tso": False, "gso": False, "gro": True}

    assert offload.apply(node.netns_path, "eth0", ALL_FLIPPED) == flipped
    assert offload.read(node.netns_path, "eth0") == flipped
    assert ethtool_groups(host, "eth0", node) == flipped
    shown = ethtool_k(host, "eth0", node).values
    assert not shown["tx-checksum-ip-generic"] and not shown["tx-tcp-segmentation"]
    # Only the node's end changed: the host end of the same veth kept its defaults.
    assert offload.read(None, node_veth.host_ifname) == VETH_DEFAULTS

    assert offload.apply(node.netns_path, "eth0", BACK_TO_DEFAULTS) == VETH_DEFAULTS
    assert ethtool_groups(host, "eth0", node) == VETH_DEFAULTS
    # Every thread of this process is still where it was.
    assert namespaces_of_this_process() == namespaces


def test_apply_on_a_host_interface(
    host: HostProbe, offload: OffloadControl, node_veth: NodeVeth
) -> None:
    host_ifname = node_veth.host_ifname
    result = offload.apply(None, host_ifname, Offload(tx=False, gro=True))
    # tso still reads on: the kernel keeps tx-tcp-accecn-segmentation (ethtool agrees).
    assert result == {**VETH_DEFAULTS, "tx": False, "gro": True}
    assert ethtool_groups(host, host_ifname) == result
    assert offload.read(node_veth.node.netns_path, "eth0") == VETH_DEFAULTS

    assert offload.apply(None, host_ifname, Offload(tx=True, gro=False)) == VETH_DEFAULTS
    assert ethtool_groups(host, host_ifname) == VETH_DEFAULTS


def test_apply_with_nothing_set_changes_nothing(
    host: HostProbe, offload: OffloadControl, node_veth: NodeVeth
) -> None:
    node = node_veth.node
    ethtool_set(host, node, "gro", "on", "rx", "off")  # not the defaults, so "reset" would show
    before = ethtool_k(host, "eth0", node).text
    expected = {**VETH_DEFAULTS, "gro": True, "rx": False}

    assert offload.apply(node.netns_path, "eth0", Offload()) == expected
    assert ethtool_k(host, "eth0", node).text == before
    # Asking for what is already there changes nothing either.
    assert offload.apply(node.netns_path, "eth0", Offload(gro=True, tx=True)) == expected
    assert ethtool_k(host, "eth0", node).text == before


def test_a_refused_request_raises_and_leaves_the_interface_as_it_was(
    host: HostProbe, offload: OffloadControl, node_veth: NodeVeth
) -> None:
    node = node_veth.node
    before = ethtool_k(host, "eth0", node).text
    # The kernel keeps TCP segmentation off without a TX checksum.
    with pytest.raises(BackendError) as refused:
        offload.apply(node.netns_path, "eth0", Offload(tx=False, tso=True))
    message = str(refused.value)
    assert "eth0" in message and "tso=on" in message
    assert "tx-tcp-segmentation off [requested on]" in message
    assert ethtool_k(host, "eth0", node).text == before

    # A fixed feature: a namespace's loopback always checksums in software.
    with pytest.raises(BackendError) as fixed:
        offload.apply(node.netns_path, "lo", Offload(rx=False))
    assert "lo" in str(fixed.value) and "rx-checksum on [fixed]" in str(fixed.value)
    assert offload.read(node.netns_path, "lo")["rx"] is True


def test_missing_interface_or_namespace_is_a_clear_error(
    offload: OffloadControl, node_veth: NodeVeth
) -> None:
    netns = node_veth.node.netns_path
    with pytest.raises(BackendError, match=f"no interface nope0 in namespace {netns}"):
        offload.read(netns, "nope0")
    with pytest.raises(BackendError, match="no interface nope0 in the host"):
        offload.apply(None, "nope0", Offload(tx=False))
    # The host end does not exist inside the node: names are looked up per namespace.
    with pytest.raises(BackendError, match="no interface"):
        offload.read(netns, node_veth.host_ifname)
    with pytest.raises(BackendError, match="the node's process is gone"):
        offload.read("/proc/999999999/ns/net", "eth0")
    with pytest.raises(BackendError, match="not a network namespace"):
        offload.read("/proc/self/ns/uts", "eth0")


# -- the effect the lab is about -------------------------------------------------

# tcpdump -vv prints a TCP packet on two lines: the IP header, then the segment.
_TCPDUMP_TCP = re.compile(
    r"proto TCP \(6\), length (?P<length>\d+)\)\n\s+(?P<src>[\d.]+)\.\d+ > (?P<dst>[\d.]+)\.\d+: "
    r"Flags \[[^\]]*\], cksum 0x(?P<field>[0-9a-f]{4}) \((?P<verdict>correct|incorrect[^)]*)\)"
)


@dataclass(frozen=True)
class SeenSegment:
    src: str
    dst: str
    tcp_length: int
    field: int
    verdict: str


SERVER_SCRIPT = f"""
import socket
with socket.create_server(("{SERVER_IP}", {PORT})) as server:
    server.settimeout({STEP_TIMEOUT})
    conn, _ = server.accept()
    with conn:
        conn.settimeout({STEP_TIMEOUT})
        conn.sendall(conn.recv(100).upper())
"""

CLIENT_SCRIPT = f"""
import socket, time
deadline = time.monotonic() + {STEP_TIMEOUT}
while True:
    try:
        conn = socket.create_connection(("{SERVER_IP}", {PORT}), timeout=2)
        break
    except ConnectionRefusedError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
with conn:
    conn.sendall(b"offload?")
    assert conn.recv(100) == b"OFFLOAD?"
"""


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def start_in(
    node: NodeHandle, argv: list[str], started: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        ["nsenter", f"--net={node.netns_path}", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(process)
    return process


def wait_for_listening(tcpdump: subprocess.Popen[str]) -> None:
    assert tcpdump.stderr is not None
    deadline = time.monotonic() + STEP_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([tcpdump.stderr], [], [], 0.2)
        if ready and "listening on" in tcpdump.stderr.readline():
            return
        assert tcpdump.poll() is None, "tcpdump exited early"
    raise AssertionError("tcpdump did not start listening")


def capture_client_segments(
    server: NodeHandle, client: NodeHandle, started: list[subprocess.Popen[str]]
) -> list[SeenSegment]:
    """One small TCP exchange; what tcpdump on the client's eth0 saw the client send."""
    tcpdump_argv = ["tcpdump", "-i", "eth0", "-nn", "-vv", "-l", "-U"]
    tcpdump = start_in(client, [*tcpdump_argv, f"tcp and src host {CLIENT_IP}"], started)
    wait_for_listening(tcpdump)
    server_process = start_in(server, [sys.executable, "-c", SERVER_SCRIPT], started)
    client_process = start_in(client, [sys.executable, "-c", CLIENT_SCRIPT], started)
    for process in (client_process, server_process):
        _out, err = process.communicate(timeout=STEP_TIMEOUT + 5)
        assert process.returncode == 0, err
    time.sleep(0.3)  # the last ACK and FIN reach the tap
    tcpdump.send_signal(signal.SIGINT)
    out, _err = tcpdump.communicate(timeout=STEP_TIMEOUT)
    return [
        SeenSegment(m["src"], m["dst"], int(m["length"]) - 20, int(m["field"], 16), m["verdict"])
        for m in _TCPDUMP_TCP.finditer(out)
    ]


def test_tx_offload_leaves_unfinished_checksums_on_the_senders_tap(
    host: HostProbe,
    offload: OffloadControl,
    lab: str,
    make_node: Callable[..., NodeHandle],
    processes: list[subprocess.Popen[str]],
    tools: None,
) -> None:
    server, client = make_node("server"), make_node("client")
    transient = f"lc{names.lab_id(lab)}-ck"
    host.run(
        ["ip", "link", "add", f"{transient}a", "type", "veth", "peer", "name", f"{transient}b"]
    )
    for node, end, address in ((server, "a", SERVER_IP), (client, "b", CLIENT_IP)):
        host.run(["ip", "link", "set", f"{transient}{end}", "netns", str(node.pid), "name", "eth0"])
        for argv in (
            ["ip", "addr", "add", f"{address}/24", "dev", "eth0"],
            ["ip", "link", "set", "eth0", "up"],
            ["ip", "link", "set", "lo", "up"],
        ):
            assert host.in_node(node, argv).returncode == 0

    # Offload on (the default): every segment leaves with only the pseudo-header sum.
    assert offload.read(client.netns_path, "eth0")["tx"] is True
    seen = capture_client_segments(server, client, processes)
    assert len(seen) >= 3, seen  # SYN, ACK, data, FIN...
    for segment in seen:
        assert segment.verdict.startswith("incorrect -> "), segment
        expected = unfinished_value(
            ipaddress.ip_address(segment.src).packed,
            ipaddress.ip_address(segment.dst).packed,
            6,
            segment.tcp_length,
        )
        assert segment.field == expected, segment

    # TX checksum offload off on the sender: the stack finishes every checksum itself.
    assert offload.apply(client.netns_path, "eth0", Offload(tx=False))["tx"] is False
    seen = capture_client_segments(server, client, processes)
    assert len(seen) >= 3, seen
    assert all(segment.verdict == "correct" for segment in seen), seen
