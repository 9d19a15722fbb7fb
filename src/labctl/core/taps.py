"""What the analysis needs to know about each tap, derived from the topology.

A checksum left unfinished by TX offload is normal while the packet is still
inside its sender's kernel (see labctl.analysis.diagnose). Which senders that
covers at a tap depends on the path: a Linux bridge or the OVS kernel
datapath keep the packet in the kernel between containers; the OVS userspace
and DPDK datapaths take it out, so past them every receiver checks.
"""

from __future__ import annotations

import ipaddress

from labctl.core.model import SwitchKind, Tap, Topology
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


def _switch_port_of(topology: Topology, node: str, iface: str) -> Endpoint | None:
    """The switch port a node interface is linked to, if any."""
    for a, b in _links(topology):
        if b.is_switch and not a.is_switch and (a.node, a.name) == (node, iface):
            return b
    return None


def _tap_port(topology: Topology, tap: Tap) -> Endpoint | None:
    if tap.switch_port is not None:
        for a, b in _links(topology):
            for end in (a, b):
                if end.is_switch and end.name == tap.switch_port:
                    return end
        return None
    spot = parse_endpoint(tap.node or tap.host or "", topology.switch_names())
    return None if spot is None else _switch_port_of(topology, spot.node, spot.name)


def _vlans(topology: Topology, port: Endpoint) -> set[int] | None:
    """The VLANs a port carries; None where it carries untagged frames of no VLAN or every
    VLAN (no vlan, no trunks: nothing can be said)."""
    options = topology.all_switches()[port.node].ports.get(port.name)
    if options is None or (options.vlan is None and options.trunks is None):
        return None
    carried = set(options.trunks or ())
    if options.vlan is not None:
        carried.add(options.vlan)
    return carried


def isolation(topology: Topology, tap_name: str) -> str:
    """Why the traffic under test can never reach a tap off the path, or "" where the
    topology does not prove it. Proven: every node interface where a probe's traffic starts
    or ends sits on an access port (`vlan:`), and the tap's port (or the port its node
    interface is linked to) carries none of those VLANs. Switches do not rewrite VLAN ids,
    so that holds across inter-switch links too. Anything else (a port of the traffic's
    VLAN, a port without VLANs, a tap on a link between nodes) is a branch, where a switch
    may flood a first packet."""
    tap = next(t for t in topology.taps if t.name == tap_name)
    if not tap.off_path:
        return ""
    port = _tap_port(topology, tap)
    carried = None if port is None else _vlans(topology, port)
    ends = topology.traffic_ends()
    if carried is None or not ends:
        return ""
    traffic: set[int] = set()
    for node, iface in ends:
        end_port = _switch_port_of(topology, node, iface)
        options = (
            None
            if end_port is None
            else topology.all_switches()[end_port.node].ports.get(end_port.name)
        )
        if options is None or options.vlan is None:
            return ""
        traffic.add(options.vlan)
    if carried & traffic:
        return ""
    assert port is not None
    return (
        f"port {port.name} carries {_vlan_words(carried)} only; the traffic under test "
        f"runs on {_vlan_words(traffic)}"
    )


def _vlan_words(vlans: set[int]) -> str:
    ordered = [str(v) for v in sorted(vlans)]
    return ("VLAN " if len(ordered) == 1 else "VLANs ") + ", ".join(ordered)
