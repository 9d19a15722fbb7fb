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
from labctl.core.validate import parse_endpoint

KERNEL_SWITCHES = frozenset({SwitchKind.LINUX_BRIDGE, SwitchKind.OVS_KERNEL})


def node_addresses(topology: Topology, node: str) -> set[str]:
    found = set()
    for iface in topology.nodes[node].interfaces.values():
        for value in (iface.ipv4, iface.ipv6):
            if value:
                found.add(str(ipaddress.ip_interface(value).ip))
    return found


def kernel_neighbours(topology: Topology, node: str) -> set[str]:
    """Nodes whose packets reach `node` without leaving the kernel."""
    neighbours = set()
    on_switch = set()
    for link in topology.links:
        a, b = parse_endpoint(link.a), parse_endpoint(link.b)
        if a is None or b is None:
            continue
        if b.is_switch:
            on_switch.add(a.node)
        elif node in (a.node, b.node):
            neighbours.add(b.node if a.node == node else a.node)
    switch = topology.switch
    if switch is not None and switch.kind in KERNEL_SWITCHES and node in on_switch:
        neighbours |= on_switch
    neighbours.discard(node)
    return neighbours


def offload_senders(topology: Topology, tap: TapPoint) -> frozenset[str]:
    senders = node_addresses(topology, tap.node)
    for other in kernel_neighbours(topology, tap.node):
        senders |= node_addresses(topology, other)
    return frozenset(senders)


def default_filter(topology: Topology) -> str:
    """Every probe's traffic, plus what explains its failures (ARP, ICMP, ND)."""
    from labctl.core.probes import capture_filter

    return capture_filter(topology) or "tcp or udp or arp or icmp or icmp6"
