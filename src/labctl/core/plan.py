"""Deciding what to create: a topology becomes an ordered list of steps.

Pure: every name is derived here (via labctl.core.names), so the plan can be
shown, tested and diffed without touching the host. The engine applies the
steps in order and undoes completed ones in reverse on failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from labctl.core import names
from labctl.core.model import SWITCH_ENDPOINT, HttpProbe, Offload, PortOptions, Switch, Topology
from labctl.core.validate import Endpoint, parse_endpoint, patch_datapath
from labctl.errors import UsageError


@dataclass(frozen=True)
class InterfaceSettings:
    addresses: tuple[str, ...]
    mac: str | None
    mtu: int | None
    offload: Offload


@dataclass(frozen=True)
class Step:
    key: str
    description: str

    @property
    def action(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class CreateNode(Step):
    node: str
    image: str


@dataclass(frozen=True)
class CreateSwitch(Step):
    bridge: str
    switch: Switch
    name: str = SWITCH_ENDPOINT
    """The switch's name: "switch" for the single `switch:`, else its key in `switches:`."""


@dataclass(frozen=True)
class CreateSwitchPair(Step):
    """A veth between two switches: both ends on the host, `a_ifname` to become a port of
    one switch, `b_ifname` of the other (AttachPort steps follow)."""

    a_ifname: str
    b_ifname: str
    a_mtu: int | None = None
    b_mtu: int | None = None


@dataclass(frozen=True)
class PatchEnd:
    """One end of an OVS patch link: port `port` (OVS port `ovs_port`) on `bridge`."""

    bridge: str
    port: str
    ovs_port: str
    switch: Switch
    options: PortOptions = PortOptions()


@dataclass(frozen=True)
class ConnectPatch(Step):
    """Two OVS patch ports, each the other's peer, between two bridges of one datapath type
    in one ovs-vswitchd: made (and removed) in one OVSDB transaction."""

    a: PatchEnd
    b: PatchEnd


@dataclass(frozen=True)
class CreateSwitchLink(Step):
    """veth: host end `host_ifname` (a switch port), other end `node:ifname`; the host end's
    MTU is `host_mtu` (the port's), the node end's is in `settings`."""

    node: str
    ifname: str
    host_ifname: str
    settings: InterfaceSettings
    host_mtu: int | None = None


@dataclass(frozen=True)
class AttachPort(Step):
    bridge: str
    port: str
    host_ifname: str
    switch: Switch
    options: PortOptions = PortOptions()
    """The port's options, its MTU resolved (the port's own, else its node interface's)."""


@dataclass(frozen=True)
class CreateNodeLink(Step):
    index: int
    a: tuple[str, str]
    b: tuple[str, str]
    a_settings: InterfaceSettings
    b_settings: InterfaceSettings


@dataclass(frozen=True)
class ConfigureOffload(Step):
    """Offload features of a node interface and, for switch links, of its host end."""

    node: str
    ifname: str
    offload: Offload
    host_ifname: str | None = None
    host_offload: Offload | None = None


@dataclass(frozen=True)
class StartHttpServer(Step):
    node: str
    port: int
    path: str


@dataclass(frozen=True)
class TapPoint:
    """Where a tap captures: an interface in a node's namespace, or on the host."""

    name: str
    namespace: str  # a node name, or "host"
    ifname: str
    description: str
    filter: str | None = None
    node: str = ""  # the node whose interface this tap sits on (or next to); "" for a port
    # between two switches (see labctl.core.taps for whose packets it sees)
    off_path: bool = False  # the topology's `off_path`: not a hop of the traffic's path


@dataclass(frozen=True)
class Plan:
    lab: str
    switch_kind: str | None
    """The kind of the single switch; with `switches:`, "name=kind" of each joined by "+"."""
    bridge: str | None
    """The bridge of the single `switch:`; None with `switches:` (see `bridges`)."""
    steps: tuple[Step, ...]
    taps: tuple[TapPoint, ...] = field(default_factory=tuple)
    bridges: tuple[tuple[str, str], ...] = ()
    """(switch name, bridge) of every switch, in the topology's order."""

    def describe(self) -> list[str]:
        return [f"{i + 1:2d}. {s.description}" for i, s in enumerate(self.steps)]


def interface_settings(topology: Topology, node: str, ifname: str) -> InterfaceSettings:
    spec = topology.nodes[node]
    iface = spec.interfaces[ifname]
    addresses = tuple(a for a in (iface.ipv4, iface.ipv6) if a)
    return InterfaceSettings(addresses, iface.mac, iface.mtu, spec.effective_offload(ifname))


def switch_link_mtus(
    topology: Topology, node: str, ifname: str, port: str, switch: str = SWITCH_ENDPOINT
) -> tuple[int | None, int | None]:
    """(node end, host end) MTU of a switch link. Each end has its own setting (the interface's
    mtu, the port's mtu) and takes the other's when it has none, as both ends of a node-to-node
    link do; a veth whose ends differ drops what is larger than the receiving end's MTU."""
    own = topology.nodes[node].interfaces[ifname].mtu
    options = topology.all_switches()[switch].ports.get(port)
    port_mtu = options.mtu if options is not None else None
    return (own if own is not None else port_mtu, port_mtu if port_mtu is not None else own)


def _port_description(options: PortOptions) -> str:
    parts = []
    if options.mtu is not None:
        parts.append(f"mtu {options.mtu}")
    if options.vlan is not None:
        parts.append(f"vlan {options.vlan}")
    if options.trunks:
        parts.append("trunks " + ",".join(str(v) for v in options.trunks))
    return f" ({', '.join(parts)})" if parts else ""


def make_plan(topology: Topology) -> Plan:
    """The ordered steps that build `topology`. The topology must be valid."""
    lab = topology.name
    steps: list[Step] = []
    for node_name, node in topology.nodes.items():
        steps.append(
            CreateNode(
                f"node:{node_name}",
                f"start node {node_name} ({node.image})",
                node=node_name,
                image=node.image,
            )
        )
    switches = topology.all_switches()
    bridges = {
        name: names.check_generated(
            names.bridge_name(lab, None if topology.switch is not None else name)
        )
        for name in switches
    }
    # The DPDK switches first: the first OVS switch starts the lab's ovs-vswitchd, which
    # must then be the DPDK build if any switch needs it (see engine._batches).
    for name in sorted(switches, key=lambda n: switches[n].kind.value != "ovs-dpdk"):
        steps.append(
            CreateSwitch(
                "switch" if topology.switch is not None else f"switch:{name}",
                f"create {switches[name].kind.value} switch "
                + (f"{name} ({bridges[name]})" if topology.switches else bridges[name]),
                bridge=bridges[name],
                switch=switches[name],
                name=name,
            )
        )
    host_ends: dict[tuple[str, str], str] = {}
    port_of_host_end: dict[str, str] = {}
    switch_names = topology.switch_names()
    for index, link in enumerate(topology.links):
        a = parse_endpoint(link.a, switch_names)
        b = parse_endpoint(link.b, switch_names)
        assert a is not None and b is not None, "make_plan needs a validated topology"
        if a.is_switch and b.is_switch:
            steps.extend(_inter_switch_steps(topology, index, a, b, bridges, port_of_host_end))
        elif b.is_switch:
            switch = switches[b.node]
            bridge = bridges[b.node]
            host_ifname = names.check_generated(names.host_veth_name(lab, b.name))
            host_ends[(a.node, a.name)] = host_ifname
            port_of_host_end[b.name] = host_ifname
            node_mtu, host_mtu = switch_link_mtus(topology, a.node, a.name, b.name, b.node)
            settings = interface_settings(topology, a.node, a.name)
            mtus = ""
            if node_mtu is not None:
                mtus = (
                    f" (mtu {host_mtu} <-> {node_mtu})"
                    if node_mtu != host_mtu
                    else f" (mtu {node_mtu})"
                )
            steps.append(
                CreateSwitchLink(
                    f"link:{index}",
                    f"veth {host_ifname} <-> {a.node}:{a.name}{mtus}",
                    node=a.node,
                    ifname=a.name,
                    host_ifname=host_ifname,
                    settings=InterfaceSettings(
                        settings.addresses, settings.mac, node_mtu, settings.offload
                    ),
                    host_mtu=host_mtu,
                )
            )
            options = switch.ports.get(b.name, PortOptions()).model_copy(update={"mtu": host_mtu})
            steps.extend(_offload_step(topology, a.node, a.name, host_ifname))
            steps.append(
                AttachPort(
                    f"port:{b.name}",
                    f"attach {host_ifname} to {bridge} as port {b.name}"
                    + _port_description(options),
                    bridge=bridge,
                    port=b.name,
                    host_ifname=host_ifname,
                    switch=switch,
                    options=options,
                )
            )
        else:
            steps.append(
                CreateNodeLink(
                    f"link:{index}",
                    f"veth {a.node}:{a.name} <-> {b.node}:{b.name}",
                    index=index,
                    a=(a.node, a.name),
                    b=(b.node, b.name),
                    a_settings=interface_settings(topology, a.node, a.name),
                    b_settings=interface_settings(topology, b.node, b.name),
                )
            )
            steps.extend(_offload_step(topology, a.node, a.name, None))
            steps.extend(_offload_step(topology, b.node, b.name, None))
    servers: set[tuple[str, int]] = set()
    for index, (_name, probe) in enumerate(topology.named_probes()):
        if not isinstance(probe, HttpProbe) or not probe.start_server:
            continue
        if (probe.server, probe.port) in servers:
            continue
        servers.add((probe.server, probe.port))
        # The traffic block's server keeps the key it always had (state files name it).
        key = (
            f"http:{probe.server}"
            if index == 0 and topology.traffic
            else (f"http:{probe.server}:{probe.port}")
        )
        steps.append(
            StartHttpServer(
                key,
                f"start HTTP server on {probe.server}:{probe.port}",
                node=probe.server,
                port=probe.port,
                path=probe.path,
            )
        )
    taps = tuple(
        replace(
            _tap_point(topology, tap_index, host_ends, port_of_host_end),
            off_path=topology.taps[tap_index].off_path,
        )
        for tap_index in range(len(topology.taps))
    )
    return Plan(
        lab=lab,
        switch_kind=switch_kinds_text(topology),
        bridge=bridges.get(SWITCH_ENDPOINT) if topology.switch is not None else None,
        steps=tuple(steps),
        taps=taps,
        bridges=tuple(bridges.items()),
    )


def switch_kinds_text(topology: Topology) -> str | None:
    """The single switch's kind, or "name=kind" of every switch joined by "+"; None: none."""
    if topology.switch is not None:
        return topology.switch.kind.value
    if not topology.switches:
        return None
    return "+".join(f"{name}={spec.kind.value}" for name, spec in topology.switches.items())


def _inter_switch_steps(
    topology: Topology,
    index: int,
    a: Endpoint,
    b: Endpoint,
    bridges: dict[str, str],
    port_of_host_end: dict[str, str],
) -> list[Step]:
    """A link between two switch ports: OVS patch ports when both switches share a datapath
    type, else a host veth whose ends are attached one to each switch."""
    lab = topology.name
    switches = topology.all_switches()
    a_options = switches[a.node].ports.get(a.name, PortOptions())
    b_options = switches[b.node].ports.get(b.name, PortOptions())
    where = f"{a} <-> {b}"
    a_ifname = names.check_generated(names.host_veth_name(lab, a.name))
    b_ifname = names.check_generated(names.host_veth_name(lab, b.name))
    if patch_datapath(switches[a.node].kind, switches[b.node].kind):
        return [
            ConnectPatch(
                f"link:{index}",
                f"patch ports {where} ({bridges[a.node]} <-> {bridges[b.node]})",
                a=PatchEnd(bridges[a.node], a.name, a_ifname, switches[a.node], a_options),
                b=PatchEnd(bridges[b.node], b.name, b_ifname, switches[b.node], b_options),
            )
        ]
    # Each end has its port's MTU, or the other port's, as a node link's two ends do.
    a_mtu = a_options.mtu if a_options.mtu is not None else b_options.mtu
    b_mtu = b_options.mtu if b_options.mtu is not None else a_options.mtu
    port_of_host_end[a.name] = a_ifname
    port_of_host_end[b.name] = b_ifname
    steps: list[Step] = [
        CreateSwitchPair(
            f"link:{index}",
            f"veth {a_ifname} <-> {b_ifname} between switches {a.node} and {b.node}",
            a_ifname=a_ifname,
            b_ifname=b_ifname,
            a_mtu=a_mtu,
            b_mtu=b_mtu,
        )
    ]
    for end, ifname, options, mtu in (
        (a, a_ifname, a_options, a_mtu),
        (b, b_ifname, b_options, b_mtu),
    ):
        options = options.model_copy(update={"mtu": mtu})
        steps.append(
            AttachPort(
                f"port:{end.name}",
                f"attach {ifname} to {bridges[end.node]} as port {end.name}"
                + _port_description(options),
                bridge=bridges[end.node],
                port=end.name,
                host_ifname=ifname,
                switch=switches[end.node],
                options=options,
            )
        )
    return steps


def _offload_step(
    topology: Topology, node: str, ifname: str, host_ifname: str | None
) -> list[Step]:
    """A ConfigureOffload step, or none when the topology leaves both ends at their defaults."""
    offload = topology.nodes[node].effective_offload(ifname)
    host_offload = topology.nodes[node].interfaces[ifname].host_offload if host_ifname else None
    if not offload.as_dict() and not (host_offload and host_offload.as_dict()):
        return []
    settings = ", ".join(f"{k} {'on' if v else 'off'}" for k, v in offload.as_dict().items())
    where = f"{node}:{ifname}"
    if host_offload and host_offload.as_dict():
        host = ", ".join(f"{k} {'on' if v else 'off'}" for k, v in host_offload.as_dict().items())
        settings = f"{settings or 'defaults'}; host end {host}"
    return [
        ConfigureOffload(
            f"offload:{where}",
            f"offload {where}: {settings}",
            node=node,
            ifname=ifname,
            offload=offload,
            host_ifname=host_ifname,
            host_offload=host_offload,
        )
    ]


def _tap_point(
    topology: Topology,
    index: int,
    host_ends: dict[tuple[str, str], str],
    port_of_host_end: dict[str, str],
) -> TapPoint:
    tap = topology.taps[index]
    if tap.switch_port is not None:
        host_ifname = port_of_host_end.get(tap.switch_port)
        if host_ifname is None:
            # Valid as written, but this cell's switch kinds made the link a patch.
            raise UsageError(
                f"tap {tap.name}: switch port {tap.switch_port} is an OVS patch port with "
                "these switch kinds (both OVS of one datapath type), with no device to "
                "capture on; tap the nodes' host ends instead, or choose kinds that make "
                "the link a veth"
            )
        node = next((n for (n, _i), h in host_ends.items() if h == host_ifname), "")
        return TapPoint(
            tap.name,
            "host",
            host_ifname,
            f"switch port {tap.switch_port}" + ("" if node else " (between switches)"),
            tap.filter,
            node,
        )
    where = tap.node or tap.host
    end = parse_endpoint(where or "", topology.switch_names())
    assert end is not None
    if tap.node is not None:
        return TapPoint(
            tap.name, end.node, end.name, f"{end} inside the node", tap.filter, end.node
        )
    return TapPoint(
        tap.name,
        "host",
        host_ends[(end.node, end.name)],
        f"host end of {end}",
        tap.filter,
        end.node,
    )
