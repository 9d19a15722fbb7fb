"""Fixtures for privileged netlink tests: node stand-ins, decoys, host snapshots.

A node stand-in is an `unshare --net sleep` process: it has its own network
namespace reachable as /proc/<pid>/ns/net, exactly like a container's, without
needing Docker. Killing the process destroys the namespace and every interface
in it.

Run as a script (`python netns_fixtures.py ping ADDRESS TIMEOUT`) inside a
namespace (via nsenter) this module is also the ICMP echo probe, so the tests
do not depend on an installed `ping`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from labctl.backends.base import NodeHandle
from labctl.core import names

IPTABLES_BINARIES = ("iptables", "ip6tables")
FIREWALL_CHAINS = ("DOCKER-USER", "FORWARD")


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=60)


# -- prerequisites --------------------------------------------------------


def skip_or_fail(reason: str) -> None:
    # Imported here, not at the top: this file also runs as a script inside a node's
    # namespace (the ping probe below), where the tests package is not importable.
    from tests.skips import skip_or_fail as skip

    skip(reason)


@pytest.fixture
def privileged() -> None:
    """Root and the host tools these tests drive."""
    if os.geteuid() != 0:
        skip_or_fail("needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) for netns and veths")
    for tool in ("unshare", "nsenter", "ip", "iptables"):
        if shutil.which(tool) is None:
            skip_or_fail(f"needs the {tool} command")


@pytest.fixture
def docker_forward_drop(privileged: None) -> None:
    """The hostile setting the firewall backend exists for: bridged frames hit FORWARD DROP."""
    policy = run(["iptables", "-w", "-S", "FORWARD"]).stdout.splitlines()[0]
    if policy != "-P FORWARD DROP" or sysctl("net/bridge/bridge-nf-call-iptables") != "1":
        skip_or_fail(
            "needs dockerd's setting: iptables FORWARD policy DROP and "
            "net.bridge.bridge-nf-call-iptables=1 (start dockerd)"
        )


def sysctl(path: str) -> str | None:
    try:
        with open(f"/proc/sys/{path}") as handle:
            return handle.read().strip()
    except FileNotFoundError:
        return None


# -- lab identity and cleanup ------------------------------------------------


@pytest.fixture
def lab(privileged: None) -> Iterator[str]:
    """A unique lab name; afterwards everything named or labelled for it is removed.

    The fallback removes by the lab's unique name prefix and comment, without the
    code under test, so a bug in the sweeps cannot leave the host dirty.
    """
    name = f"t-{secrets.token_hex(4)}"
    yield name
    remove_leftovers(name)


def lab_prefix(lab: str) -> str:
    return f"lc{names.lab_id(lab)}"


def remove_leftovers(lab: str) -> None:
    for ifname in host_link_names():
        if ifname.startswith(lab_prefix(lab)):
            run(["ip", "link", "del", ifname], check=False)
    for binary, chain, spec in firewall_rules(names.firewall_comment(lab)):
        run([binary, "-w", "-D", chain, *spec], check=False)


def host_link_names() -> set[str]:
    lines = run(["ip", "-o", "link", "show"]).stdout.splitlines()
    return {line.split(": ", 2)[1].split("@", 1)[0] for line in lines}


def link_info(ifname: str, netns_path: str | None = None) -> dict[str, Any] | None:
    """`ip -j -d link show` of one interface (host or a namespace), None if absent."""
    argv = ["ip", "-j", "-d", "link", "show", "dev", ifname]
    if netns_path:
        argv = ["nsenter", f"--net={netns_path}", *argv]
    result = run(argv, check=False)
    if result.returncode != 0:
        return None
    info: dict[str, Any] = json.loads(result.stdout)[0]
    return info


def firewall_rules(comment: str) -> list[tuple[str, str, list[str]]]:
    """(binary, chain, spec) of every FORWARD/DOCKER-USER rule with exactly `comment`."""
    found = []
    for binary in IPTABLES_BINARIES:
        if shutil.which(binary) is None:
            continue
        for chain in FIREWALL_CHAINS:
            listing = run([binary, "-w", "-S", chain], check=False)
            for line in listing.stdout.splitlines():
                tokens = shlex.split(line)
                if tokens[:2] != ["-A", chain] or "--comment" not in tokens:
                    continue
                if tokens[tokens.index("--comment") + 1] == comment:
                    found.append((binary, chain, tokens[2:]))
    return found


@dataclass(frozen=True)
class HostSnapshot:
    links: frozenset[str]
    rules: frozenset[str]


def host_snapshot() -> HostSnapshot:
    rules = []
    for binary in IPTABLES_BINARIES:
        if shutil.which(binary) is not None:
            rules += [f"{binary} {line}" for line in run([binary, "-w", "-S"]).stdout.splitlines()]
    return HostSnapshot(frozenset(host_link_names()), frozenset(rules))


def assert_host_clean(lab: str, before: HostSnapshot) -> None:
    """Nothing of the lab is left, and nothing that was there before is gone.

    Other test sessions may share this host, so interfaces and rules they add
    meanwhile are ignored: only names with this lab's unique prefix and rules
    with its comment count as leftovers.
    """
    after = host_snapshot()
    leftovers = sorted(n for n in after.links - before.links if n.startswith(lab_prefix(lab)))
    assert leftovers == [], f"interfaces left behind: {leftovers}"
    comment = names.firewall_comment(lab)
    assert firewall_rules(comment) == [], "firewall rules left behind"
    lost_links = sorted(n for n in before.links - after.links if n.startswith(lab_prefix(lab)))
    assert lost_links == [], f"pre-existing interfaces deleted: {lost_links}"
    lost_rules = sorted(r for r in before.rules - after.rules if "labctl" in r)
    assert lost_rules == [], f"pre-existing rules deleted: {lost_rules}"


# -- node stand-ins ----------------------------------------------------------


@pytest.fixture
def make_node(privileged: None) -> Iterator[Callable[..., NodeHandle]]:
    """Factory of node stand-ins: processes in a fresh network namespace each.

    `docker_like=True` disables IPv6 for all and new interfaces, as Docker does
    in a container without an IPv6 network (network_mode none included).
    """
    processes: list[subprocess.Popen[bytes]] = []

    def make(name: str, docker_like: bool = False) -> NodeHandle:
        # unshare execs sleep in the same process: its pid is the namespace's holder.
        process = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"])
        processes.append(process)
        netns = f"/proc/{process.pid}/ns/net"
        deadline = time.monotonic() + 5
        while os.readlink(netns) == os.readlink("/proc/self/ns/net"):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("unshare --net did not create a namespace")
            time.sleep(0.01)
        node = NodeHandle(name=name, container_id="-", pid=process.pid)
        if docker_like:
            keys = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
            assert in_node(node, ["sysctl", "-q", "-w", *keys]).returncode == 0
        return node

    yield make
    for process in reversed(processes):
        process.kill()
        process.wait(timeout=10)


def in_node(node: NodeHandle, argv: list[str]) -> subprocess.CompletedProcess[str]:
    return run(["nsenter", f"--net={node.netns_path}", *argv], check=False)


def ping(node: NodeHandle, address: str, timeout: float = 5.0) -> bool:
    """ICMP echo from inside `node` to `address`; True if any reply came back in time."""
    probe = in_node(node, [sys.executable, __file__, "ping", address, str(timeout)])
    return probe.returncode == 0


def node_addresses(node: NodeHandle, ifname: str) -> list[dict[str, Any]]:
    listing = in_node(node, ["ip", "-j", "addr", "show", "dev", ifname])
    addresses: list[dict[str, Any]] = json.loads(listing.stdout)[0]["addr_info"]
    return addresses


class HostProbe:
    """The host as tests observe it through ip, iptables and nsenter: independent of
    the code under test. Handed out by the `host` fixture, so test modules load this
    file only as a plugin (`pytest_plugins`), which keeps its asserts rewritten."""

    run = staticmethod(run)
    snapshot = staticmethod(host_snapshot)
    assert_clean = staticmethod(assert_host_clean)
    link_info = staticmethod(link_info)
    firewall_rules = staticmethod(firewall_rules)
    in_node = staticmethod(in_node)
    node_addresses = staticmethod(node_addresses)
    ping = staticmethod(ping)


@pytest.fixture
def host(privileged: None) -> HostProbe:
    return HostProbe()


# -- decoys: things labctl must never touch ------------------------------------


@pytest.fixture
def make_decoy(privileged: None) -> Iterator[Callable[..., str]]:
    """Factory of host veths labctl did not make, optionally aliased; deleted afterwards.

    Veths, because that is the kind the links backend owns: the hardest decoy.
    """
    created: list[str] = []

    def make(ifname: str, alias: str | None = None) -> str:
        peer = f"{ifname[:14]}P"
        run(["ip", "link", "add", ifname, "type", "veth", "peer", "name", peer])
        created.append(ifname)
        if alias is not None:
            run(["ip", "link", "set", "dev", ifname, "alias", alias])
        return ifname

    yield make
    for ifname in created:
        run(["ip", "link", "del", ifname], check=False)


@pytest.fixture
def make_foreign_rule(privileged: None) -> Iterator[Callable[[str, str], None]]:
    """Factory of iptables rules labctl did not make (in FORWARD); deleted afterwards."""
    created: list[list[str]] = []

    def make(bridge: str, comment: str) -> None:
        spec = ["-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]
        run(["iptables", "-w", "-I", "FORWARD", "1", *spec])
        created.append(spec)

    yield make
    for spec in created:
        run(["iptables", "-w", "-D", "FORWARD", *spec], check=False)


# -- the ICMP probe, run inside a namespace -------------------------------------


def _inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _echo_reply_seen(sock: socket.socket, ipv6: bool, ident: int, until: float) -> bool:
    reply_type = 129 if ipv6 else 0
    while time.monotonic() < until:
        sock.settimeout(max(until - time.monotonic(), 0.01))
        try:
            data, _source = sock.recvfrom(2048)
        except TimeoutError:
            return False
        # An IPv4 raw socket returns the IP header too; IPv6 returns ICMPv6 only.
        icmp = data if ipv6 else data[(data[0] & 0x0F) * 4 :]
        if len(icmp) >= 6 and icmp[0] == reply_type and struct.unpack("!H", icmp[4:6])[0] == ident:
            return True
    return False


def icmp_echo(address: str, timeout: float) -> bool:
    """Send echo requests every 0.3 s until a reply or the timeout (ARP/ND need a moment)."""
    ipv6 = ipaddress.ip_address(address).version == 6
    family, proto, request_type = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128)
        if ipv6
        else (socket.AF_INET, socket.IPPROTO_ICMP, 8)
    )
    ident = os.getpid() & 0xFFFF
    deadline = time.monotonic() + timeout
    with socket.socket(family, socket.SOCK_RAW, proto) as sock:
        sequence = 0
        while time.monotonic() < deadline:
            sequence += 1
            payload = b"labctl-probe"
            header = struct.pack("!BBHHH", request_type, 0, 0, ident, sequence)
            # The kernel fills the ICMPv6 checksum itself (it needs the pseudo-header).
            checksum = 0 if ipv6 else _inet_checksum(header + payload)
            packet = struct.pack("!BBHHH", request_type, 0, checksum, ident, sequence) + payload
            sock.sendto(packet, (address, 0))
            if _echo_reply_seen(sock, ipv6, ident, min(time.monotonic() + 0.3, deadline)):
                return True
    return False


if __name__ == "__main__" and sys.argv[1:2] == ["ping"]:
    sys.exit(0 if icmp_echo(sys.argv[2], float(sys.argv[3])) else 1)
