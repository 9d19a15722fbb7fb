"""Interfaces between the engine and the backends.

The engine only talks to these protocols; tests pass in-memory fakes, the CLI
passes the real backends. Every method that creates is idempotent (`ensure_*`),
every method that removes tolerates absence (`remove_*`), and `sweep` removes
whatever still carries the lab's identity, for crash recovery.
Backends raise labctl.errors.BackendError / PrerequisiteError, never library
exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from labctl.core.events import EventSink
from labctl.core.model import (
    Node,
    Offload,
    PortOptions,
    RuntimeKind,
    Switch,
    SwitchKind,
    Topology,
)
from labctl.core.plan import PatchEnd
from labctl.errors import BackendError


@dataclass(frozen=True)
class NodeHandle:
    """A running node: what the other backends need to reach its namespaces."""

    name: str
    container_id: str  # the Docker container id, or the netns name for the netns runtime
    pid: int  # a process in the node's namespace; 0 when the namespace is a bind mount
    netns: str | None = None  # path of a bind-mounted namespace (/run/netns/...)

    @property
    def netns_path(self) -> str:
        return self.netns or f"/proc/{self.pid}/ns/net"


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: str
    stderr: str = ""


@dataclass(frozen=True)
class AddressSpec:
    """Layer-3 settings of one interface, already validated by the core."""

    addresses: tuple[str, ...] = ()  # "10.0.0.2/24", "fd00::2/64"
    mac: str | None = None
    mtu: int | None = None


@dataclass(frozen=True)
class Owned:
    """Something that exists on the host and carries a lab's identity."""

    kind: str  # "container", "link", "bridge", "ovs-bridge", "iptables-rule", "daemon", ...
    name: str
    lab: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind} {self.name} (lab {self.lab})"


@dataclass(frozen=True)
class CaptureSpec:
    tap: str
    ifname: str
    pcap: Path
    netns_path: str | None = None  # None: the host namespace
    filter: str | None = None


@dataclass
class CaptureResult:
    tap: str
    pcap: Path
    packets_captured: int | None = None
    packets_dropped: int | None = None
    stderr_tail: list[str] = field(default_factory=list)


class CaptureBackend(Protocol):
    def capturing(
        self, specs: Sequence[CaptureSpec]
    ) -> AbstractContextManager[list[CaptureResult]]: ...

    def stream(
        self,
        spec: CaptureSpec,
        seconds: float | None = None,
        listening: Callable[[], None] | None = None,
    ) -> CaptureResult:
        """Capture to this process's stdout as pcap until `seconds` pass or Ctrl-C;
        `listening` is called once tcpdump listens."""
        ...


class OffloadBackend(Protocol):
    def read(self, netns_path: str | None, ifname: str) -> dict[str, bool]: ...
    def apply(self, netns_path: str | None, ifname: str, offload: Offload) -> dict[str, bool]: ...


class NodeRuntime(Protocol):
    def prepare(self, topology: Topology, emit: EventSink) -> None:
        """Make the host ready for the topology's nodes before anything is created, or
        raise PrerequisiteError: Docker builds the default node image if a node uses it
        and it is missing; netns checks the host tools it runs nodes with."""
        ...

    def ensure_node(self, lab: str, name: str, node: Node) -> NodeHandle: ...
    def remove_node(self, lab: str, name: str) -> None: ...
    def get_node(self, lab: str, name: str) -> NodeHandle | None: ...
    def image_exists(self, image: str) -> bool: ...
    def exec(
        self, handle: NodeHandle, argv: Sequence[str], *, detach: bool = False, timeout: float = 60
    ) -> ExecResult: ...
    def attach(self, handle: NodeHandle, argv: Sequence[str], *, tty: bool) -> int:
        """Run argv in the node on the caller's stdin/stdout/stderr (as a terminal session
        when `tty`) until it exits; its exit code. For `labctl exec`."""
        ...

    def sweep(self, lab: str) -> list[Owned]: ...
    def list_owned(self, lab: str | None = None) -> list[Owned]: ...


class LinkBackend(Protocol):
    def ensure_veth_to_node(
        self,
        lab: str,
        host_ifname: str,
        node: NodeHandle,
        node_ifname: str,
        settings: AddressSpec,
        role: str,
        host_mtu: int | None = None,
    ) -> dict[str, Any]:
        """veth with one end in the host namespace (up, IPv6 off, for the switch, MTU
        `host_mtu`, else `settings.mtu`) and the other end in the node, renamed, addressed
        and up."""
        ...

    def ensure_veth_between_nodes(
        self,
        lab: str,
        a: tuple[NodeHandle, str, AddressSpec],
        b: tuple[NodeHandle, str, AddressSpec],
        role: str,
    ) -> dict[str, Any]: ...

    def ensure_veth_between_switches(
        self,
        lab: str,
        a: tuple[str, int | None],
        b: tuple[str, int | None],
        via: NodeHandle,
        role: str,
    ) -> dict[str, Any]:
        """veth with both ends (name, MTU) in the host namespace, up, IPv6 off, each to
        become a port of one switch. Born inside `via` (a node of the lab) and moved out
        labelled, so a labctl killed half-way leaves nothing unlabelled on the host."""
        ...

    def remove_link(self, lab: str, host_ifname: str) -> None: ...
    def sweep(self, lab: str) -> list[Owned]: ...
    def list_owned(self, lab: str | None = None) -> list[Owned]: ...


class SwitchBackend(Protocol):
    def check(self, switch: Switch) -> None:
        """Raise PrerequisiteError if this switch kind cannot run on this host."""
        ...

    def ensure_switch(self, lab: str, bridge: str, switch: Switch) -> dict[str, Any]: ...
    def ensure_port(
        self,
        lab: str,
        bridge: str,
        port: str,
        host_ifname: str,
        switch: Switch,
        options: PortOptions | None = None,
    ) -> dict[str, Any]:
        """Attach the host veth `host_ifname` as `port`, with the port's VLAN settings and
        (where the switch has its own, as OVS's mtu_request) MTU."""
        ...

    def remove_port(self, lab: str, bridge: str, port: str, host_ifname: str) -> None: ...

    def ensure_patch(self, lab: str, a: PatchEnd, b: PatchEnd) -> dict[str, Any]:
        """Join two bridges of this backend with a pair of patch ports, each the other's
        peer. Only OVS has them (validation never asks another kind)."""
        raise BackendError(f"joining {a.bridge} and {b.bridge}", "this switch has no patch ports")

    def remove_patch(self, lab: str, a: PatchEnd, b: PatchEnd) -> None:
        raise BackendError(f"removing the patch {a.port}-{b.port}", "this switch has none")

    def remove_switch(self, lab: str, bridge: str) -> None: ...
    def sweep(self, lab: str) -> list[Owned]: ...
    def list_owned(self, lab: str | None = None) -> list[Owned]: ...

    def health(self) -> list[str]:
        """Problems of what the switch runs on (e.g. a daemon that died), for a run's
        manifest; none by default."""
        return []

    def close(self) -> None:
        """Release what the backend holds open (connections); nothing by default."""
        return None


SwitchFactory = Callable[[SwitchKind], SwitchBackend]


@dataclass(frozen=True)
class Backends:
    """Every backend the engine uses, wired by labctl.backends.registry (or a test)."""

    runtimes: Mapping[RuntimeKind, NodeRuntime]
    """Node runtime per topology `runtime:`."""
    links: LinkBackend
    switch_for: SwitchFactory
    """Maps a switch kind to its backend: one table, see labctl.backends.registry."""
    all_switches: Callable[[], list[SwitchBackend]]
    """Every switch backend, for sweeping a lab whose switch kind is unknown."""
    capture: CaptureBackend | None = None
    offload: OffloadBackend | None = None
    host_versions: Callable[[], dict[str, Any]] = dict
