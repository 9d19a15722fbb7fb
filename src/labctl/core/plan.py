"""Deciding what to create: a topology becomes an ordered list of steps.

Pure: every name is derived here (via labctl.core.names), so the plan can be
shown, tested and diffed without touching the host. The engine applies the
steps in order and undoes completed ones in reverse on failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from labctl.core import names
from labctl.core.model import HttpProbe, Offload, Switch, Topology
from labctl.core.validate import parse_endpoint


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


@dataclass(frozen=True)
class CreateSwitchLink(Step):
    """veth: host end `host_ifname` (a switch port), other end `node:ifname`."""

    node: str
    ifname: str
    host_ifname: str
    settings: InterfaceSettings


@dataclass(frozen=True)
class AttachPort(Step):
    bridge: str
    port: str
    host_ifname: str
    switch: Switch


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
    node: str = ""  # the node whose interface this tap sits on (or next to)


@dataclass(frozen=True)
class Plan:
    lab: str
    switch_kind: str | None
    bridge: str | None
    steps: tuple[Step, ...]
    taps: tuple[TapPoint, ...] = field(default_factory=tuple)

    def describe(self) -> list[str]:
        return [f"{i + 1:2d}. {s.description}" for i, s in enumerate(self.steps)]


def interface_settings(topology: Topology, node: str, ifname: str) -> InterfaceSettings:
    spec = topology.nodes[node]
    iface = spec.interfaces[ifname]
    addresses = tuple(a for a in (iface.ipv4, iface.ipv6) if a)
    return InterfaceSettings(addresses, iface.mac, iface.mtu, spec.effective_offload(ifname))


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
    bridge = None
    if topology.switch is not None:
        bridge = names.check_generated(names.bridge_name(lab))
        steps.append(
            CreateSwitch(
                "switch",
                f"create {topology.switch.kind.value} switch {bridge}",
                bridge=bridge,
                switch=topology.switch,
            )
        )
    host_ends: dict[tuple[str, str], str] = {}
    port_of_host_end: dict[str, str] = {}
    for index, link in enumerate(topology.links):
        a = parse_endpoint(link.a)
        b = parse_endpoint(link.b)
        assert a is not None and b is not None, "make_plan needs a validated topology"
        if b.is_switch:
            assert topology.switch is not None and bridge is not None
            host_ifname = names.check_generated(names.host_veth_name(lab, b.name))
            host_ends[(a.node, a.name)] = host_ifname
            port_of_host_end[b.name] = host_ifname
            steps.append(
                CreateSwitchLink(
                    f"link:{index}",
                    f"veth {host_ifname} <-> {a.node}:{a.name}",
                    node=a.node,
                    ifname=a.name,
                    host_ifname=host_ifname,
                    settings=interface_settings(topology, a.node, a.name),
                )
            )
            steps.extend(_offload_step(topology, a.node, a.name, host_ifname))
            steps.append(
                AttachPort(
                    f"port:{b.name}",
                    f"attach {host_ifname} to {bridge} as port {b.name}",
                    bridge=bridge,
                    port=b.name,
                    host_ifname=host_ifname,
                    switch=topology.switch,
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
        _tap_point(topology, tap_index, host_ends, port_of_host_end)
        for tap_index in range(len(topology.taps))
    )
    kind = topology.switch.kind.value if topology.switch else None
    return Plan(lab=lab, switch_kind=kind, bridge=bridge, steps=tuple(steps), taps=taps)


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
        host_ifname = port_of_host_end[tap.switch_port]
        node = next(n for (n, _i), h in host_ends.items() if h == host_ifname)
        return TapPoint(
            tap.name, "host", host_ifname, f"switch port {tap.switch_port}", tap.filter, node
        )
    where = tap.node or tap.host
    end = parse_endpoint(where or "")
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
