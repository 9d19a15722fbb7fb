"""Topology model: what the user asked for. Immutable.

The pydantic models check structure and types (unknown keys, wrong types,
missing keys); cross-references, names and addresses are checked by
labctl.core.validate, which knows the file positions.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
)

from labctl.core.ovs_config import TSO_KEY, as_text

DEFAULT_IMAGE = "labctl-node"
"""The node image labctl builds itself (`labctl image build`)."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SwitchKind(StrEnum):
    LINUX_BRIDGE = "linux-bridge"
    OVS_KERNEL = "ovs-kernel"
    OVS_USERSPACE = "ovs-userspace"
    OVS_DPDK = "ovs-dpdk"

    @property
    def is_ovs(self) -> bool:
        return self is not SwitchKind.LINUX_BRIDGE

    @property
    def ovs_datapath(self) -> str | None:
        """OVS's datapath_type of the kind's bridges (None: not OVS). Bridges of one type
        share one datapath in ovs-vswitchd, so patch ports can join them."""
        return {
            SwitchKind.OVS_KERNEL: "system",
            SwitchKind.OVS_USERSPACE: "netdev",
            SwitchKind.OVS_DPDK: "netdev",
        }.get(self)


class RuntimeKind(StrEnum):
    """Where nodes run: Docker containers, or plain network namespaces."""

    DOCKER = "docker"
    NETNS = "netns"


class Offload(_Spec):
    """Offload features of one interface. Unset means: leave the kernel default."""

    tx: StrictBool | None = Field(None, description="TX checksum offload (ethtool tx)")
    rx: StrictBool | None = Field(None, description="RX checksum offload (ethtool rx)")
    tso: StrictBool | None = Field(None, description="TCP segmentation offload")
    gso: StrictBool | None = Field(None, description="generic segmentation offload")
    gro: StrictBool | None = Field(None, description="generic receive offload")

    def merged_over(self, default: Offload | None) -> Offload:
        """This interface's settings, falling back to a node-wide default per feature."""
        if default is None:
            return self
        values = {
            name: getattr(self, name) if getattr(self, name) is not None else getattr(default, name)
            for name in Offload.model_fields
        }
        return Offload(**values)

    def as_dict(self) -> dict[str, bool]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Interface(_Spec):
    ipv4: StrictStr | None = Field(None, description="IPv4 address with prefix, e.g. 10.0.0.2/24")
    ipv6: StrictStr | None = Field(None, description="IPv6 address with prefix, e.g. fd00::2/64")
    mac: StrictStr | None = Field(None, description="unicast MAC address, e.g. 02:00:00:00:00:02")
    mtu: Annotated[StrictInt, Field(ge=68, le=65535)] | None = None
    offload: Offload | None = Field(None, description="offload of this (the node's) end")
    host_offload: Offload | None = Field(
        None, description="offload of the host end of its veth (links to the switch)"
    )


class Node(_Spec):
    image: StrictStr = Field(DEFAULT_IMAGE, description="container image (must exist locally)")
    command: list[StrictStr] | None = Field(
        None, description="container command; default: sleep until stopped"
    )
    env: dict[StrictStr, StrictStr] = Field(default_factory=dict)
    offload: Offload | None = Field(None, description="default offload for all its interfaces")
    interfaces: dict[StrictStr, Interface] = Field(default_factory=dict)

    def effective_offload(self, interface: str) -> Offload:
        own = self.interfaces[interface].offload or Offload()
        return own.merged_over(self.offload)


class BridgeOptions(_Spec):
    stp: StrictBool = Field(False, description="spanning tree on the Linux bridge")


class OvsOptions(_Spec):
    userspace_tso: StrictBool = Field(
        False,
        description="other_config:userspace-tso-enable=true (userspace datapaths); the same "
        "as that key in other_config",
    )
    fail_mode: Literal["standalone", "secure"] = "standalone"
    other_config: dict[StrictStr, StrictStr] = Field(
        default_factory=dict,
        description="ovs-vswitchd's global settings (the Open_vSwitch table's other_config), "
        'e.g. {userspace-tso-enable: "true"}; only keys labctl knows '
        "(labctl.core.ovs_config.KNOWN_KEYS); true/false and numbers are written as OVSDB "
        "stores them, as strings",
    )

    @field_validator("other_config", mode="before")
    @classmethod
    def _scalars_as_text(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {k: (as_text(v) if isinstance(v, bool | int) else v) for k, v in value.items()}

    def effective_other_config(self) -> dict[str, str]:
        """other_config with `userspace_tso: true` as the key it stands for."""
        if not self.userspace_tso:
            return dict(self.other_config)
        return {TSO_KEY: "true", **self.other_config}

    def with_other_config(self, overlay: dict[str, str]) -> OvsOptions:
        """These options with `overlay` laid over other_config (a matrix's ovs_config
        setting: its keys win); userspace_tso is folded into other_config."""
        merged = {**self.effective_other_config(), **overlay}
        return self.model_copy(update={"userspace_tso": False, "other_config": merged})


class DpdkOptions(_Spec):
    socket_mem: StrictStr = Field("256", description="other_config:dpdk-socket-mem (MiB per NUMA)")
    pmd_cpu_mask: StrictStr | None = Field(None, description="other_config:pmd-cpu-mask, e.g. 0x2")
    lcore_mask: StrictStr | None = Field(None, description="other_config:dpdk-lcore-mask")
    extra_eal_args: StrictStr = Field("--no-pci", description="other_config:dpdk-extra")
    port_driver: Literal["af_packet", "af_xdp"] = Field(
        "af_packet", description="DPDK vdev that attaches a host veth"
    )


VlanId = Annotated[StrictInt, Field(ge=1, le=4094)]


class PortOptions(_Spec):
    """Options of one switch port: the host end of a node's veth, as the switch sees it."""

    mtu: Annotated[StrictInt, Field(ge=68, le=65535)] | None = Field(
        None,
        description="MTU of the port (the host end of its veth; OVS mtu_request too); "
        "default: the node interface's mtu",
    )
    vlan: VlanId | None = Field(
        None,
        description="the port's untagged VLAN: an access port (OVS tag; Linux bridge pvid "
        "untagged, with vlan_filtering on the bridge)",
    )
    trunks: list[VlanId] | None = Field(
        None,
        description="VLANs the port carries tagged (OVS trunks; Linux bridge tagged vids); "
        "with vlan too, untagged frames belong to vlan (OVS native-untagged)",
    )

    @property
    def uses_vlans(self) -> bool:
        return self.vlan is not None or bool(self.trunks)


class Switch(_Spec):
    kind: SwitchKind = SwitchKind.LINUX_BRIDGE
    bridge: BridgeOptions = Field(default_factory=BridgeOptions)
    ovs: OvsOptions = Field(default_factory=OvsOptions)
    dpdk: DpdkOptions = Field(default_factory=DpdkOptions)
    ports: dict[StrictStr, PortOptions] = Field(
        default_factory=dict, description="options per switch port, by the port's name"
    )

    @property
    def uses_vlans(self) -> bool:
        """Some port has a VLAN: the Linux bridge then filters by VLAN (vlan_filtering=1)."""
        return any(options.uses_vlans for options in self.ports.values())


class Link(_Spec):
    """A veth pair: `a` is always a node interface ("node:iface"); `b` is another
    node interface or a switch port ("switch:port")."""

    a: StrictStr
    b: StrictStr


class Tap(_Spec):
    """A named capture point. Exactly one of node / host / switch_port."""

    name: StrictStr
    node: StrictStr | None = Field(None, description='inside a node: "node:iface"')
    host: StrictStr | None = Field(
        None, description='host end of the veth of a node interface: "node:iface"'
    )
    switch_port: StrictStr | None = Field(None, description="a switch port by name")
    filter: StrictStr | None = Field(
        None, description="pcap filter; default: the traffic under test"
    )
    off_path: StrictBool = Field(
        False,
        description="a capture point the traffic under test should not cross (another "
        "VLAN's port, a branch off the path): captured, but left out of the path order; "
        "the diagnosis reports what of the traffic reached it (seen-off-path)",
    )


class Traffic(_Spec):
    client: StrictStr
    server: StrictStr
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = 80
    path: StrictStr = "/"
    requests: Annotated[StrictInt, Field(ge=1, le=10000)] = 5
    timeout: Annotated[StrictFloat | StrictInt, Field(gt=0, le=600)] = 3
    family: Literal["ipv4", "ipv6"] = "ipv4"
    start_server: StrictBool = Field(
        True, description="start an HTTP server (busybox httpd) on the server node"
    )


Family = Literal["ipv4", "ipv6"]
Seconds = Annotated[StrictFloat | StrictInt, Field(gt=0, le=600)]
Percent = Annotated[StrictFloat | StrictInt, Field(ge=0, le=100)]
Bitrate = Annotated[StrictStr, Field(pattern=r"^[0-9]+(\.[0-9]+)?[KMG]?$")]

PROBE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,30}$"


class HttpProbe(Traffic):
    """Today's `traffic:` as one probe of a list: curl requests, each its own connection."""

    kind: Literal["http"]
    name: StrictStr | None = Field(None, description="default: the kind, numbered if repeated")


class _BetweenNodes(_Spec):
    """What every probe from a client node to a server node has."""

    name: StrictStr | None = Field(None, description="default: the kind, numbered if repeated")
    client: StrictStr
    server: StrictStr
    family: Family = Field(
        "ipv4",
        description="to the server's address of this family on the client's subnet, else its first",
    )


class _Iperf(_BetweenNodes):
    port: Annotated[StrictInt, Field(ge=1, le=65535)] = Field(
        5201, description="the iperf3 server's port (its control connection and the data)"
    )
    seconds: Annotated[StrictFloat | StrictInt, Field(gt=0, le=60)] = Field(
        2, description="iperf3 -t"
    )


class TcpProbe(_Iperf):
    """A bulk TCP transfer: iperf3 from client to server, throughput and retransmits."""

    kind: Literal["tcp"]
    bitrate: Bitrate = Field("0", description="iperf3 -b: bits/s with K/M/G; 0: unlimited")
    streams: Annotated[StrictInt, Field(ge=1, le=16)] = Field(1, description="iperf3 -P")
    min_mbps: Annotated[StrictFloat | StrictInt, Field(ge=0)] | None = Field(
        None, description="passes only at this throughput (Mbit/s, received) or more"
    )
    max_retransmits: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None, description="passes only with at most this many retransmitted segments"
    )


class UdpProbe(_Iperf):
    """UDP datagrams at a fixed rate: iperf3 -u from client to server, loss."""

    kind: Literal["udp"]
    bitrate: Bitrate = Field("10M", description="iperf3 -b: bits/s with K/M/G")
    length: Annotated[StrictInt, Field(ge=16, le=65507)] | None = Field(
        None, description="iperf3 -l: datagram payload bytes; default: iperf3's (path MTU)"
    )
    max_loss_percent: Percent = Field(
        0, description="passes only if at most this share of the datagrams sent is lost"
    )


class IcmpProbe(_BetweenNodes):
    """ping from client to server: loss and round-trip time."""

    kind: Literal["icmp"]
    count: Annotated[StrictInt, Field(ge=1, le=1000)] = 5
    interval: Annotated[StrictFloat | StrictInt, Field(ge=0.01, le=10)] = 0.2
    size: Annotated[StrictInt, Field(ge=0, le=65000)] = Field(56, description="ping -s")
    timeout: Seconds = Field(5, description="ping -W: seconds to wait for the last reply")
    max_loss_percent: Percent = Field(0, description="passes only at this loss or less")
    max_rtt_ms: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None = Field(
        None, description="passes only if the average round trip takes at most this"
    )


class CommandProbe(_Spec):
    """Any command in a node: it passes on the expected exit code (and output)."""

    kind: Literal["command"]
    name: StrictStr | None = Field(None, description="default: the kind, numbered if repeated")
    node: StrictStr
    argv: list[StrictStr] = Field(description="the command, run without a shell")
    exit_code: Annotated[StrictInt, Field(ge=0, le=255)] = 0
    output: StrictStr | None = Field(
        None, description="a regular expression that its standard output must contain"
    )
    timeout: Seconds = 10


Probe = Annotated[
    HttpProbe | TcpProbe | UdpProbe | IcmpProbe | CommandProbe, Field(discriminator="kind")
]
ProbeSpec = HttpProbe | TcpProbe | UdpProbe | IcmpProbe | CommandProbe
PROBE_KINDS: dict[str, type[_Spec]] = {
    "http": HttpProbe,
    "tcp": TcpProbe,
    "udp": UdpProbe,
    "icmp": IcmpProbe,
    "command": CommandProbe,
}
TRAFFIC_PROBE = "http"
"""The name of the http probe that a topology's `traffic:` block stands for."""


IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _addresses(node: Node, family: str) -> dict[str, IPInterface]:
    """The node's interfaces that have an address of `family`, with it; one that does not
    parse is left out (validation reports it)."""
    found = {}
    for if_name, iface in node.interfaces.items():
        value = getattr(iface, family)
        try:
            if value:
                found[if_name] = ipaddress.ip_interface(value)
        except ValueError:
            continue
    return found


class Topology(_Spec):
    name: StrictStr
    runtime: RuntimeKind = Field(
        RuntimeKind.DOCKER,
        description="node runtime: Docker containers, or plain network namespaces",
    )
    nodes: dict[StrictStr, Node]
    switch: Switch | None = Field(None, description='the lab\'s one switch, named "switch"')
    switches: dict[StrictStr, Switch] | None = Field(
        None,
        description="several switches by name, each of its own kind (instead of `switch:`); "
        'links name their ports "<switch>:<port>"',
    )
    links: list[Link] = Field(default_factory=list)
    taps: list[Tap] = Field(default_factory=list)
    traffic: Traffic | None = Field(
        None, description="one HTTP probe (named http), run before `probes:`"
    )
    probes: list[Probe] = Field(
        default_factory=list, description="traffic probes, run one after another"
    )

    def named_probes(self) -> list[tuple[str, ProbeSpec]]:
        """Every probe to run with its name: `traffic:` first (as the probe "http"),
        then `probes:`, each named by `name:` or its kind (numbered when repeated)."""
        found: list[tuple[str, ProbeSpec]] = []
        if self.traffic is not None:
            found.append((TRAFFIC_PROBE, HttpProbe(kind="http", **self.traffic.model_dump())))
        counts: dict[str, int] = {}
        for probe in self.probes:
            counts[probe.kind] = counts.get(probe.kind, 0) + 1
        seen: dict[str, int] = {}
        for probe in self.probes:
            if probe.name is not None:
                found.append((probe.name, probe))
                continue
            seen[probe.kind] = seen.get(probe.kind, 0) + 1
            repeated = counts[probe.kind] > 1 or (probe.kind == "http" and self.traffic is not None)
            found.append((f"{probe.kind}-{seen[probe.kind]}" if repeated else probe.kind, probe))
        return found

    def target(self, client: str, server: str, family: str) -> tuple[str, IPInterface] | None:
        """The server's interface and address a probe from `client` targets: the first one
        on a subnet of the client's (labctl sets no routes, so only those are reachable),
        else the server's first address of `family`; None when it has none."""
        served = _addresses(self.nodes[server], family)
        own = _addresses(self.nodes[client], family).values() if client in self.nodes else []
        for if_name, address in served.items():
            if any(address.ip in mine.network for mine in own):
                return if_name, address
        return next(iter(served.items()), None)

    def traffic_ends(self) -> dict[tuple[str, str], str]:
        """The node interfaces where a probe's traffic starts or ends, each with the name of
        the (first) probe: the server's interface that holds the address the probe targets,
        and the client's interfaces on that address's subnet (all its interfaces of the
        family where none is). Command probes send what they like and name no ends. Probes
        naming unknown nodes or lacking an address are left out (validation reports them)."""
        ends: dict[tuple[str, str], str] = {}
        for name, probe in self.named_probes():
            if isinstance(probe, CommandProbe):
                continue
            client, server = self.nodes.get(probe.client), self.nodes.get(probe.server)
            if client is None or server is None:
                continue
            found = self.target(probe.client, probe.server, probe.family)
            if found is None:
                continue
            server_if, target = found
            ends.setdefault((probe.server, server_if), name)
            of_family = _addresses(client, probe.family)
            same_subnet = [n for n, a in of_family.items() if target.ip in a.network]
            for if_name in same_subnet or of_family:
                ends.setdefault((probe.client, if_name), name)
        return ends

    def all_switches(self) -> dict[str, Switch]:
        """Every switch by name: `switch:` is the one named "switch"."""
        if self.switch is not None:
            return {SWITCH_ENDPOINT: self.switch}
        return dict(self.switches or {})

    def switch_names(self) -> frozenset[str]:
        """What the first part of a link endpoint names when it names a switch."""
        return frozenset(self.all_switches())

    def with_switch_kind(self, kind: SwitchKind) -> Topology:
        """Every switch of this kind (a topology without any gets a `switch:`)."""
        if self.switches:
            return self.with_switch_kinds({name: kind for name in self.switches})
        switch = self.switch or Switch()
        return self.model_copy(update={"switch": switch.model_copy(update={"kind": kind})})

    def with_switch_kinds(self, kinds: Mapping[str, SwitchKind]) -> Topology:
        """The named switches of these kinds, the others as they are. The caller checks the
        names (`switch` is the name of the single `switch:`)."""
        if self.switch is not None:
            kind = kinds.get(SWITCH_ENDPOINT)
            return self if kind is None else self.with_switch_kind(kind)
        switches = {
            name: spec.model_copy(update={"kind": kinds[name]}) if name in kinds else spec
            for name, spec in (self.switches or {}).items()
        }
        return self.model_copy(update={"switches": switches})

    def with_runtime(self, runtime: RuntimeKind | str) -> Topology:
        return self.model_copy(update={"runtime": RuntimeKind(runtime)})

    def with_name(self, name: str) -> Topology:
        return self.model_copy(update={"name": name})


SWITCH_ENDPOINT = "switch"
"""The node-name part of a link endpoint that means the lab's single `switch:`: "switch:port"
(with `switches:`, the switch's own name)."""
