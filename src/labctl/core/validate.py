"""Checks that need the whole topology: references, names, addresses.

Runs after the structural (pydantic) check; returns every problem found.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from labctl.core import names, ovs_config
from labctl.core.document import Document, PathKey, format_path
from labctl.core.model import (
    PROBE_NAME_PATTERN,
    SWITCH_ENDPOINT,
    TRAFFIC_PROBE,
    CommandProbe,
    HttpProbe,
    SwitchKind,
    TcpProbe,
    Topology,
    UdpProbe,
)
from labctl.errors import Problem

IPV6_MIN_MTU = 1280
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
RESERVED_IFNAMES = {"lo", ".", ".."}


@dataclass(frozen=True)
class Endpoint:
    node: str  # a node's name, or a switch's
    name: str  # interface name, or the port name when the endpoint is a switch port
    is_switch: bool = False

    def __str__(self) -> str:
        return f"{self.node}:{self.name}"


def parse_endpoint(text: str, switches: Collection[str] = (SWITCH_ENDPOINT,)) -> Endpoint | None:
    """'node:interface', or 'switch:port' where `switch` is one of `switches` (the names of
    the topology's switches: Topology.switch_names())."""
    node, sep, name = text.partition(":")
    if not sep or not node or not name or ":" in name:
        return None
    return Endpoint(node, name, node in switches)


def patch_datapath(a: SwitchKind, b: SwitchKind) -> str | None:
    """The OVS datapath type two switches share, when a link between them is a pair of OVS
    patch ports (both OVS, same datapath type: one vswitchd, one datapath); None: a veth."""
    if a.ovs_datapath is not None and a.ovs_datapath == b.ovs_datapath:
        return a.ovs_datapath
    return None


class _Checker:
    def __init__(self, topology: Topology, doc: Document):
        self.topo = topology
        self.doc = doc
        self.problems: list[Problem] = []
        self.port_switch: dict[str, str] = {}
        self.patch_ports: set[str] = set()

    def add(self, path: PathKey, message: str) -> None:
        self.problems.append(self.doc.problem(path, message))

    def run(self) -> list[Problem]:
        self.check_name()
        self.check_nodes()
        self.check_switches()
        linked = self.check_links()
        self.check_unlinked(linked)
        self.check_switch_use()
        self.check_port_options()
        self.check_ovs_other_config()
        self.check_taps(linked)
        self.check_off_path(linked)
        self.check_traffic()
        self.check_probes()
        return self.problems

    def check_name(self) -> None:
        if not names.LAB_NAME_RE.match(self.topo.name):
            self.add(
                ("name",),
                f"lab name {self.topo.name!r} must be 1-31 characters of a-z, 0-9 "
                "and '-', starting with a letter or digit",
            )

    def check_nodes(self) -> None:
        if not self.topo.nodes:
            self.add(("nodes",), "a lab needs at least one node")
        seen_addresses: dict[str, PathKey] = {}
        seen_macs: dict[str, PathKey] = {}
        for node_name, node in self.topo.nodes.items():
            base: PathKey = ("nodes", node_name)
            if node_name == SWITCH_ENDPOINT and self.topo.switches is None:
                self.add(
                    base,
                    "'switch' is reserved: links use 'switch:port' for the lab's "
                    "switch; rename the node",
                )
            elif not names.NODE_NAME_RE.match(node_name):
                self.add(
                    base,
                    f"node name {node_name!r} must be 1-31 characters of a-z, 0-9, "
                    "'_' and '-', starting with a letter or digit",
                )
            if node.command is not None and not node.command:
                self.add(
                    (*base, "command"),
                    "command is an empty list; leave it out for the default (sleep until stopped)",
                )
            for key in node.env:
                if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                    self.add(
                        (*base, "env", key), f"{key!r} is not a valid environment variable name"
                    )
            for if_name, iface in node.interfaces.items():
                path = (*base, "interfaces", if_name)
                self.check_ifname(path, if_name)
                for family, value in (("ipv4", iface.ipv4), ("ipv6", iface.ipv6)):
                    if value is not None:
                        self.check_address((*path, family), family, value, seen_addresses)
                if iface.mac is not None:
                    self.check_mac((*path, "mac"), iface.mac, seen_macs)
                if iface.ipv6 is not None and iface.mtu is not None and iface.mtu < IPV6_MIN_MTU:
                    self.add(
                        (*path, "mtu"),
                        f"mtu {iface.mtu} is below IPv6's minimum of {IPV6_MIN_MTU}: the kernel "
                        "turns IPv6 off on such an interface and its ipv6 address goes away; "
                        f"raise the mtu to {IPV6_MIN_MTU} or more, or drop the ipv6 address",
                    )

    def check_ifname(self, path: PathKey, if_name: str) -> None:
        if len(if_name.encode()) > names.IFNAMSIZ:
            self.add(
                path,
                f"interface name {if_name!r} is {len(if_name.encode())} bytes; Linux "
                f"allows at most {names.IFNAMSIZ}",
            )
        elif not names.IFNAME_RE.match(if_name) or if_name in RESERVED_IFNAMES:
            self.add(
                path,
                f"interface name {if_name!r} may use only A-Z a-z 0-9 _ . - and "
                "must not be 'lo', '.' or '..'",
            )

    def check_address(
        self, path: PathKey, family: str, value: str, seen: dict[str, PathKey]
    ) -> None:
        cls = ipaddress.IPv4Interface if family == "ipv4" else ipaddress.IPv6Interface
        example = "10.0.0.2/24" if family == "ipv4" else "fd00::2/64"
        if "/" not in value:
            self.add(path, f"{value!r} needs a prefix length, e.g. {example}")
            return
        try:
            address = cls(value)
        except ValueError:
            self.add(path, f"{value!r} is not a valid {family} address with prefix, e.g. {example}")
            return
        network = address.network
        if network.num_addresses > 2 and address.ip in (
            network.network_address,
            getattr(network, "broadcast_address", None),
        ):
            self.add(path, f"{value!r} is the network or broadcast address of {network}")
            return
        if address.ip.is_loopback or address.ip.is_multicast or address.ip.is_unspecified:
            self.add(path, f"{value!r} is not a unicast host address")
            return
        key = str(address.ip)
        if key in seen:
            self.add(path, f"address {key} is already used at {format_path(seen[key])}")
        else:
            seen[key] = path

    def check_mac(self, path: PathKey, mac: str, seen: dict[str, PathKey]) -> None:
        if not MAC_RE.match(mac):
            self.add(path, f"{mac!r} is not a MAC address like 02:00:00:00:00:01")
            return
        if int(mac[:2], 16) & 1 or mac.replace(":", "") == "0" * 12:
            self.add(path, f"{mac!r} is not a unicast MAC address (first octet must be even)")
            return
        key = mac.lower()
        if key in seen:
            self.add(path, f"MAC {key} is already used at {format_path(seen[key])}")
        else:
            seen[key] = path

    def switch_path(self, name: str) -> PathKey:
        return ("switch",) if self.topo.switch is not None else ("switches", name)

    def check_switches(self) -> None:
        if self.topo.switch is not None and self.topo.switches is not None:
            self.add(
                ("switches",),
                "a topology has `switch:` (one switch) or `switches:` (several, by name), "
                "not both; move the `switch:` under `switches:` with a name",
            )
        if self.topo.switches is not None:
            if not self.topo.switches:
                self.add(
                    ("switches",), "switches is empty; name at least one switch or leave it out"
                )
            for name in self.topo.switches:
                if not names.SWITCH_NAME_RE.match(name):
                    self.add(
                        ("switches", name),
                        f"switch name {name!r} must be 1-7 characters of a-z, 0-9, '_' and "
                        "'-', starting with a letter or digit (it becomes part of a 15-byte "
                        "bridge name)",
                    )
                elif name in self.topo.nodes:
                    self.add(
                        ("switches", name),
                        f"{name!r} names a node and a switch; link endpoints '{name}:...' "
                        "would be ambiguous: rename one",
                    )
        self.check_shared_daemon()

    def check_shared_daemon(self) -> None:
        """Every OVS switch of a lab runs in one ovs-vswitchd, whose global settings are one
        value each: the switches must agree on them."""
        switches = self.topo.all_switches()
        ovs = [n for n, s in switches.items() if s.kind.is_ovs]
        wanted = {n: ovs_config.normalized(switches[n].ovs.effective_other_config()) for n in ovs}
        for name in ovs[1:]:
            if wanted[name] != wanted[ovs[0]]:
                self.add(
                    (*self.switch_path(name), "ovs"),
                    f"switches {ovs[0]!r} and {name!r} differ in their OVS other_config "
                    f"({ovs_config.describe(wanted[ovs[0]])} against "
                    f"{ovs_config.describe(wanted[name])}), but the OVS switches of a lab share "
                    "one ovs-vswitchd and its one global other_config; set the same values on "
                    "both",
                )
        dpdk = [n for n, s in switches.items() if s.kind is SwitchKind.OVS_DPDK]
        for name in dpdk[1:]:
            own = switches[name].dpdk.model_copy(update={"port_driver": "af_packet"})
            other = switches[dpdk[0]].dpdk.model_copy(update={"port_driver": "af_packet"})
            if own != other:
                self.add(
                    (*self.switch_path(name), "dpdk"),
                    f"switches {dpdk[0]!r} and {name!r} differ in their dpdk settings "
                    "(other than port_driver), but both run in the one DPDK ovs-vswitchd of "
                    "the lab; give them the same socket_mem, masks and extra_eal_args",
                )

    def resolve_endpoint(self, path: PathKey, text: str) -> Endpoint | None:
        """A node interface or a switch port (checked in check_port) named by `text`."""
        switch_names = self.topo.switch_names()
        endpoint = parse_endpoint(text, switch_names)
        if endpoint is None:
            self.add(path, f"{text!r} must be 'node:interface' (or 'switch:port' for b)")
            return None
        if endpoint.is_switch:
            return endpoint
        node = self.topo.nodes.get(endpoint.node)
        if node is None:
            if endpoint.node == SWITCH_ENDPOINT and self.topo.switches:
                self.add(
                    path,
                    f"{endpoint} refers to the switch, but the topology has no `switch:`; "
                    f"name one of its switches ({', '.join(sorted(switch_names))})",
                )
            elif endpoint.node == SWITCH_ENDPOINT:
                self.add(
                    path, f"{endpoint} refers to the switch, but the topology has no `switch:`"
                )
            elif self.topo.switches:
                known = [*self.topo.nodes, *switch_names]
                self.add(
                    path,
                    f"unknown node or switch {endpoint.node!r}{_suggest(endpoint.node, known)}",
                )
            else:
                self.add(
                    path,
                    f"unknown node {endpoint.node!r}{_suggest(endpoint.node, self.topo.nodes)}",
                )
            return None
        if endpoint.name not in node.interfaces:
            self.add(
                path,
                f"node {endpoint.node!r} has no interface {endpoint.name!r}"
                f"{_suggest(endpoint.name, node.interfaces)}",
            )
            return None
        return endpoint

    def check_links(self) -> dict[tuple[str, str], Endpoint | None]:
        """Returns node interface -> switch port endpoint (None for node-to-node links).
        Fills self.port_switch (every switch port used: its switch) and self.patch_ports."""
        used: dict[tuple[str, str], PathKey] = {}
        ports: dict[str, PathKey] = {}
        linked: dict[tuple[str, str], Endpoint | None] = {}
        # Switches joined so far by inter-switch links: a link within one group closes a loop.
        group = {name: name for name in self.topo.switch_names()}

        def root(name: str) -> str:
            while group[name] != name:
                name = group[name]
            return name

        switches = self.topo.all_switches()
        for index, link in enumerate(self.topo.links):
            base: PathKey = ("links", index)
            a = self.resolve_endpoint((*base, "a"), link.a)
            b = self.resolve_endpoint((*base, "b"), link.b)
            # A switch port in `a` is fine when `b` is one too (a link between switches);
            # when `b` did not resolve, its own problem says enough.
            if a is not None and a.is_switch and b is not None and not b.is_switch:
                self.add((*base, "a"), "a must be a node interface; put the switch port in b")
                a = None
            if a is not None and b is not None and a.is_switch and a.node == b.node:
                self.add(
                    base,
                    f"link connects switch {a.node!r} to itself; a link between switches "
                    "joins two different switches",
                )
                continue
            if a is not None and a.is_switch:
                a = self.check_port((*base, "a"), a, ports)
            if b is not None and b.is_switch:
                b = self.check_port((*base, "b"), b, ports)
            for end, path in ((a, (*base, "a")), (b, (*base, "b"))):
                if end is None or end.is_switch:
                    continue
                key = (end.node, end.name)
                if key in used:
                    self.add(path, f"interface {end} is already linked at {format_path(used[key])}")
                else:
                    used[key] = path
            if a is None or b is None:
                continue
            if a.is_switch:
                if root(a.node) == root(b.node):
                    self.add(
                        base,
                        f"this link closes a loop of switches ({a.node} ... {b.node} are "
                        "already joined): frames would circle it forever, as labctl's "
                        "switches run no spanning tree between them; drop one of the links",
                    )
                group[root(a.node)] = root(b.node)
                if patch_datapath(switches[a.node].kind, switches[b.node].kind):
                    self.patch_ports.update((a.name, b.name))
                continue
            if not b.is_switch and a.node == b.node:
                self.add(base, f"link connects node {a.node!r} to itself")
            linked[(a.node, a.name)] = b if b.is_switch else None
            if not b.is_switch:
                linked[(b.node, b.name)] = None
        return linked

    def check_port(
        self, path: PathKey, end: Endpoint, ports: dict[str, PathKey]
    ) -> Endpoint | None:
        if not names.PORT_NAME_RE.match(end.name):
            self.add(
                path,
                f"switch port name {end.name!r} must be 1-7 characters of A-Z a-z 0-9 _ "
                "(it becomes part of a 15-byte interface name)",
            )
            return None
        if end.name in ports:
            self.add(
                path,
                f"switch port {end.name!r} is already used at {format_path(ports[end.name])}"
                + (
                    "; port names are unique across all switches of a topology"
                    if self.port_switch.get(end.name) not in (None, end.node)
                    else ""
                ),
            )
            return None
        ports[end.name] = path
        self.port_switch[end.name] = end.node
        return end

    def check_switch_use(self) -> None:
        if (
            self.topo.switches is None
            or self.topo.switch is not None
            or not self._all_link_ends_resolved()
        ):
            return
        used = set(self.port_switch.values())
        for name in self.topo.switches:
            if name not in used:
                self.add(
                    ("switches", name),
                    f"switch {name!r} has no links; link a node or another switch to it "
                    f"('{name}:PORT'), or remove it",
                )

    def check_ovs_other_config(self) -> None:
        for switch_name, switch in self.topo.all_switches().items():
            base: PathKey = (*self.switch_path(switch_name), "ovs", "other_config")
            for key, value in switch.ovs.other_config.items():
                problem = ovs_config.key_problem(key, value)
                if problem is not None:
                    self.add((*base, key), problem)
            tso = switch.ovs.other_config.get(ovs_config.TSO_KEY)
            if switch.ovs.userspace_tso and tso is not None and tso != "true":
                self.add(
                    (*base, ovs_config.TSO_KEY),
                    f"userspace_tso: true means {ovs_config.TSO_KEY}=true, but other_config "
                    f"sets it to {tso!r}; keep one of them",
                )

    def check_port_options(self) -> None:
        for switch_name, switch in self.topo.all_switches().items():
            base_switch = self.switch_path(switch_name)
            used = {p for p, s in self.port_switch.items() if s == switch_name}
            for port, options in switch.ports.items():
                base: PathKey = (*base_switch, "ports", port)
                if port not in used and self._all_link_ends_resolved():
                    elsewhere = self.port_switch.get(port)
                    self.add(
                        base,
                        f"no link uses switch port {port!r}, so its options would be ignored"
                        + (
                            f"; the port is on switch {elsewhere!r}: move its options there"
                            if elsewhere is not None
                            else _suggest(port, used)
                        ),
                    )
                if port in self.patch_ports and port in used and options.mtu is not None:
                    self.add(
                        (*base, "mtu"),
                        f"port {port!r} is an OVS patch port (its link joins two OVS switches "
                        "of one datapath type), which has no device and so no MTU; drop mtu",
                    )
                if options.trunks is None:
                    continue
                if not options.trunks:
                    self.add(
                        (*base, "trunks"),
                        "trunks is an empty list; leave it out for an access port (vlan) or "
                        "name the VLANs the port carries tagged",
                    )
                seen: dict[int, int] = {}
                for index, vid in enumerate(options.trunks):
                    path = (*base, "trunks", index)
                    if vid in seen:
                        self.add(path, f"VLAN {vid} is already in trunks at trunks[{seen[vid]}]")
                    elif vid == options.vlan:
                        self.add(
                            path,
                            f"VLAN {vid} is the port's untagged vlan; trunks lists only the "
                            "VLANs carried tagged",
                        )
                    seen.setdefault(vid, index)

    def check_unlinked(self, linked: dict[tuple[str, str], Endpoint | None]) -> None:
        for node_name, node in self.topo.nodes.items():
            for if_name in node.interfaces:
                if (node_name, if_name) not in linked and self._all_link_ends_resolved():
                    self.add(
                        ("nodes", node_name, "interfaces", if_name),
                        f"interface {node_name}:{if_name} is not connected by any link",
                    )

    def _all_link_ends_resolved(self) -> bool:
        # An interface whose link has a typo is reported there, not twice.
        return not any(p.path.startswith("links") for p in self.problems)

    def check_taps(self, linked: dict[tuple[str, str], Endpoint | None]) -> None:
        seen: dict[str, PathKey] = {}
        ports = set(self.port_switch)
        for index, tap in enumerate(self.topo.taps):
            base: PathKey = ("taps", index)
            if not names.TAP_NAME_RE.match(tap.name):
                self.add(
                    (*base, "name"),
                    f"tap name {tap.name!r} may use only A-Z a-z 0-9 _ . - "
                    "(it names the pcap file)",
                )
            elif tap.name in seen:
                self.add(
                    (*base, "name"),
                    f"tap name {tap.name!r} is already used at {format_path(seen[tap.name])}",
                )
            else:
                seen[tap.name] = (*base, "name")
            given = [k for k in ("node", "host", "switch_port") if getattr(tap, k) is not None]
            if len(given) != 1:
                self.add(
                    base,
                    "a tap needs exactly one of node, host, switch_port"
                    + (f" (got {', '.join(given)})" if given else ""),
                )
                continue
            where = given[0]
            value = getattr(tap, where)
            if where == "switch_port":
                if value not in ports:
                    self.add((*base, where), f"no switch port {value!r}{_suggest(value, ports)}")
                elif value in self.patch_ports:
                    self.add(
                        (*base, where),
                        f"switch port {value!r} is an OVS patch port (its link joins two OVS "
                        "switches of one datapath type): no network device carries its "
                        "frames, so there is nothing to capture on; tap the nodes' host ends "
                        "(`host:`) instead, or make one switch a linux-bridge so the link is "
                        "a veth",
                    )
                continue
            end = self.resolve_endpoint((*base, where), value)
            if end is None:
                continue
            if end.is_switch:
                self.add((*base, where), f"use `switch_port: {end.name}` for a switch port")
            elif where == "host" and linked.get((end.node, end.name)) is None:
                self.add(
                    (*base, where),
                    f"{end} is not linked to the switch, so it has no host "
                    "end to capture on; tap it with `node:` instead",
                )

    def check_off_path(self, linked: dict[tuple[str, str], Endpoint | None]) -> None:
        """A tap off the path must be off it: not where a probe's traffic starts or ends, and
        not alone (an empty tap off the path proves isolation only beside one on it)."""
        taps = self.topo.taps
        if taps and all(tap.off_path for tap in taps):
            self.add(
                ("taps", 0, "off_path"),
                "every tap is off the path: what a tap off the path saw (or did not) means "
                "something only beside a tap on the path that saw the traffic; drop off_path "
                "from at least one tap on the way between client and server",
            )
            return
        ends = self.topo.traffic_ends()
        for index, tap in enumerate(taps):
            if not tap.off_path:
                continue
            if tap.switch_port is not None:
                at = [i for i, port in linked.items() if port and port.name == tap.switch_port]
            else:
                end = parse_endpoint(tap.node or tap.host or "", self.topo.switch_names())
                at = [] if end is None else [(end.node, end.name)]
            for node, iface in at:
                if (node, iface) in ends:
                    self.add(
                        ("taps", index, "off_path"),
                        f"tap {tap.name!r} captures where probe {ends[(node, iface)]!r} starts "
                        f"or ends ({node}:{iface}): it is on the path; drop off_path",
                    )

    def check_traffic(self) -> None:
        traffic = self.topo.traffic
        if traffic is None:
            return
        for role in ("client", "server"):
            name = getattr(traffic, role)
            node = self.topo.nodes.get(name)
            if node is None:
                self.add(
                    ("traffic", role), f"unknown node {name!r}{_suggest(name, self.topo.nodes)}"
                )
                continue
            if not any(getattr(i, traffic.family) for i in node.interfaces.values()):
                self.add(
                    ("traffic", role),
                    f"node {name!r} has no {traffic.family} address; add "
                    f"one to an interface or set traffic.family",
                )
        if traffic.client == traffic.server:
            self.add(("traffic", "server"), "client and server must be different nodes")
        if not traffic.path.startswith("/") or any(c in traffic.path for c in " \t\r\n"):
            self.add(
                ("traffic", "path"),
                f"{traffic.path!r} must start with '/' and contain no white space",
            )

    def check_probes(self) -> None:
        probe_name = re.compile(PROBE_NAME_PATTERN)
        names_seen: dict[str, PathKey] = {}
        if self.topo.traffic is not None:
            names_seen[TRAFFIC_PROBE] = ("traffic",)
        listed = self.topo.named_probes()[1 if self.topo.traffic is not None else 0 :]
        http_ports: dict[tuple[str, int], str] = {}
        if self.topo.traffic is not None and self.topo.traffic.start_server:
            http_ports[(self.topo.traffic.server, self.topo.traffic.port)] = "traffic"
        for index, (name, probe) in enumerate(listed):
            base: PathKey = ("probes", index)
            if probe.name is not None and not probe_name.match(probe.name):
                self.add(
                    (*base, "name"),
                    f"probe name {probe.name!r} must be 1-31 characters of a-z, 0-9, "
                    "'_' and '-', starting with a letter or digit",
                )
            elif name in names_seen:
                self.add(
                    (*base, "name") if probe.name is not None else base,
                    f"probe name {name!r} is already used at {format_path(names_seen[name])}"
                    + ("" if probe.name is not None else "; give this probe a `name:`"),
                )
            else:
                names_seen[name] = (*base, "name") if probe.name is not None else base
            if isinstance(probe, CommandProbe):
                self.check_probe_node((*base, "node"), probe.node, None)
                if not probe.argv or not probe.argv[0]:
                    self.add((*base, "argv"), "argv needs at least the program to run")
                if probe.output is not None:
                    try:
                        re.compile(probe.output)
                    except re.error as error:
                        self.add((*base, "output"), f"not a regular expression: {error}")
                continue
            client = self.check_probe_node((*base, "client"), probe.client, probe.family)
            server = self.check_probe_node((*base, "server"), probe.server, probe.family)
            if client and server and probe.client == probe.server:
                self.add((*base, "server"), "client and server must be different nodes")
            if isinstance(probe, HttpProbe):
                if not probe.path.startswith("/") or any(c in probe.path for c in " \t\r\n"):
                    self.add(
                        (*base, "path"),
                        f"{probe.path!r} must start with '/' and contain no white space",
                    )
                if probe.start_server:
                    http_ports.setdefault((probe.server, probe.port), format_path(base))
        for index, probe in enumerate(self.topo.probes):
            if isinstance(probe, TcpProbe | UdpProbe):
                taken = http_ports.get((probe.server, probe.port))
                if taken is not None:
                    self.add(
                        ("probes", index, "port"),
                        f"port {probe.port} on {probe.server} is the HTTP server's "
                        f"(started for {taken}); iperf3 needs a free port, e.g. 5201",
                    )

    def check_probe_node(self, path: PathKey, name: str, family: str | None) -> bool:
        node = self.topo.nodes.get(name)
        if node is None:
            self.add(path, f"unknown node {name!r}{_suggest(name, self.topo.nodes)}")
            return False
        if family is not None and not any(getattr(i, family) for i in node.interfaces.values()):
            self.add(
                path,
                f"node {name!r} has no {family} address; add one to an interface "
                "or set the probe's family",
            )
            return False
        return True


def _suggest(word: str, choices: Iterable[str]) -> str:
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f"; did you mean {close[0]!r}?"
    if options:
        return f" (known: {', '.join(options)})"
    return ""


def semantic_problems(topology: Topology, doc: Document) -> list[Problem]:
    return _Checker(topology, doc).run()
