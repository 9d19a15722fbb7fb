"""What the analysis needs to know about each tap, derived from the topology.

A checksum left unfinished by TX offload is normal while the packet is still
inside its sender's kernel (see labctl.analysis.diagnose). Which senders that
covers at a tap depends on the path: a Linux bridge or the OVS kernel
datapath keep the packet in the kernel between containers; the OVS userspace
and DPDK datapaths take it out, so past them every receiver checks.
"""

from __future__ import annotations

import ipaddress

from labctl.core.model import SwitchKind, Topology
from labctl.core.plan import TapPoint
from labctl.core.validate import Endpoint, parse_endpoint

KERNEL_SWITCHES = frozenset({SwitchKind.LINUX_BRIDGE, SwitchKind.OVS_KERNEL})


def node_addresses(topology: Topology, node: str) -> set[str]:
    found = set()
    for iface in topology.nodes[node].interfaces.values():
        for value in (iface.ipv4, iface.ipv6):
            if value:
                found.add(str(ipaddress.ip_interface(value).ip))
    return found


def _links(topology: Topology) -> list[tuple[Endpoint, Endpoint]]:
    ends = [
        (
            parse_endpoint(link.a, topology.switch_names()),
            parse_endpoint(link.b, topology.switch_names()),
        )
        for link in topology.links
    ]
    return [(a, b) for a, b in ends if a is not None and b is not None]


def kernel_reach(topology: Topology, switch: str) -> set[str]:
    """Nodes whose packets reach `switch`'s ports without leaving the kernel: none if the
    switch itself takes packets out of the kernel; else the nodes on it and on every kernel
    switch joined to it by inter-switch links, switch after switch."""
    kinds = {name: spec.kind for name, spec in topology.all_switches().items()}
    if kinds.get(switch) not in KERNEL_SWITCHES:
        return set()
    joined: dict[str, set[str]] = {}
    members: dict[str, set[str]] = {}
    for a, b in _links(topology):
        if a.is_switch and b.is_switch:
            joined.setdefault(a.node, set()).add(b.node)
            joined.setdefault(b.node, set()).add(a.node)
        elif b.is_switch:
            members.setdefault(b.node, set()).add(a.node)
    seen = {switch}
    todo = [switch]
    while todo:
        for other in joined.get(todo.pop(), set()):
            if other not in seen and kinds.get(other) in KERNEL_SWITCHES:
                seen.add(other)
                todo.append(other)
    return {node for name in seen for node in members.get(name, set())}


def kernel_neighbours(topology: Topology, node: str) -> set[str]:
    """Nodes whose packets reach `node` without leaving the kernel."""
    neighbours = set()
    for a, b in _links(topology):
        if b.is_switch and not a.is_switch and a.node == node:
            neighbours |= kernel_reach(topology, b.node)
        elif not b.is_switch and node in (a.node, b.node):
            neighbours.add(b.node if a.node == node else a.node)
    neighbours.discard(node)
    return neighbours


def offload_senders(topology: Topology, tap: TapPoint) -> frozenset[str]:
    """Addresses whose packets may reach the tap with a checksum left to the "hardware",
    as they have not left the kernel yet."""
    if not tap.node:
        return frozenset(
            address
            for node in _port_tap_reach(topology, tap)
            for address in node_addresses(topology, node)
        )
    senders = node_addresses(topology, tap.node)
    for other in kernel_neighbours(topology, tap.node):
        senders |= node_addresses(topology, other)
    return frozenset(senders)


def _port_tap_reach(topology: Topology, tap: TapPoint) -> set[str]:
    """For a tap on the veth between two switches: the nodes that reach either end of it in
    the kernel (the veth itself keeps a packet in the kernel)."""
    port = next((t.switch_port for t in topology.taps if t.name == tap.name), None)
    for a, b in _links(topology):
        if a.is_switch and b.is_switch and port in (a.name, b.name):
            return kernel_reach(topology, a.node) | kernel_reach(topology, b.node)
    return set()


def default_filter(topology: Topology) -> str:
    """Every probe's traffic, plus what explains its failures (ARP, ICMP, ND)."""
    from labctl.core.probes import capture_filter

    return capture_filter(topology) or "tcp or udp or arp or icmp or icmp6"
