"""In-memory backends for engine tests: a fake host that records what exists.

They implement the backend protocols faithfully (idempotent ensure, tolerant
remove, sweep by lab) and can be told to fail at a given operation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from labctl.backends.base import (
    AddressSpec,
    ExecResult,
    LinkBackend,
    NodeHandle,
    NodeRuntime,
    OffloadBackend,
    Owned,
    SwitchBackend,
    SwitchFactory,
)
from labctl.core.events import EventSink
from labctl.core.model import Node, PortOptions, Switch, SwitchKind, Topology
from labctl.core.plan import PatchEnd
from labctl.errors import BackendError, PrerequisiteError


@dataclass
class FakeHost:
    containers: dict[str, str] = field(default_factory=dict)  # name -> lab
    links: dict[str, str] = field(default_factory=dict)  # host ifname -> lab
    bridges: dict[str, str] = field(default_factory=dict)  # bridge -> lab
    ports: dict[str, str] = field(default_factory=dict)  # host ifname -> bridge
    port_options: dict[str, PortOptions] = field(default_factory=dict)  # host ifname -> options
    mtus: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # node, host
    peers: dict[str, str] = field(default_factory=dict)  # veth end between switches -> other
    patches: dict[str, str] = field(default_factory=dict)  # OVS patch port -> bridge
    log: list[str] = field(default_factory=list)
    fail_on: set[str] = field(default_factory=set)  # operation names, e.g. "ensure_port:srv"
    fail_once: set[str] = field(default_factory=set)  # fail the next call only
    interrupt_on: set[str] = field(default_factory=set)
    http_listening: set[str] = field(default_factory=set)
    curl_exit: int = 0
    failing_labs: set[str] = field(default_factory=set)  # curl times out in these labs
    curl_seconds: float = 0.0  # how long each curl batch takes
    intervals: list[tuple[str, float, float]] = field(default_factory=list)  # lab, start, end

    def op(self, name: str) -> None:
        self.log.append(name)
        if name in self.fail_on:
            raise BackendError(name, "injected failure")
        if name in self.fail_once:
            self.fail_once.discard(name)
            raise BackendError(name, "injected passing failure")
        if name in self.interrupt_on:
            raise KeyboardInterrupt

    def passing_failure(self, name: str) -> None:
        """Fails a call named in fail_once, once, without logging it (queries are not
        operations the engine tests count)."""
        if name in self.fail_once:
            self.fail_once.discard(name)
            raise BackendError(name, "injected passing failure")

    def empty(self) -> bool:
        return not (self.containers or self.links or self.bridges or self.ports or self.patches)


class FakeRuntime(NodeRuntime):
    def __init__(self, host: FakeHost):
        self.host = host
        self.images = {"labctl-node"}

    def prepare(self, topology: Topology, emit: EventSink) -> None:
        self.host.op(f"prepare:{topology.name}")

    def image_exists(self, image: str) -> bool:
        return image in self.images

    def ensure_node(self, lab: str, name: str, node: Node) -> NodeHandle:
        self.host.op(f"ensure_node:{name}")
        self.host.containers[f"{lab}/{name}"] = lab
        # pid 0: no host process to read /proc from, so probes go through exec().
        return NodeHandle(name, f"id-{lab}-{name}", 0)

    def get_node(self, lab: str, name: str) -> NodeHandle | None:
        if f"{lab}/{name}" not in self.host.containers:
            return None
        return NodeHandle(name, f"id-{lab}-{name}", 0)

    def remove_node(self, lab: str, name: str) -> None:
        self.host.op(f"remove_node:{name}")
        self.host.containers.pop(f"{lab}/{name}", None)

    def exec(
        self, handle: NodeHandle, argv: Sequence[str], *, detach: bool = False, timeout: float = 60
    ) -> ExecResult:
        self.host.op(f"exec:{handle.name}:{argv[0]}")
        if argv[0] == "busybox":
            self.host.http_listening.add(handle.name)
            return ExecResult(0, "")
        if argv[0] == "cat":  # /proc/net/tcp probe: port 80 listening
            listening = handle.name in self.host.http_listening
            row = "  0: 00000000:0050 00000000:0000 0A 0" if listening else ""
            return ExecResult(0, "  sl  local_address rem_address   st\n" + row + "\n")
        if argv[0] == "curl":
            requests = argv.count("--output")
            lab = handle.container_id.split("-", 1)[1].rsplit("-", 1)[0]
            started = time.monotonic()
            time.sleep(self.host.curl_seconds)
            self.host.intervals.append((lab, started, time.monotonic()))
            code = self.host.curl_exit or (28 if lab in self.host.failing_labs else 0)
            if code:
                lines = "".join(f"{i} {code} 000 0.000000 3.000000\n" for i in range(requests))
                return ExecResult(code, lines, f"curl: ({code}) timed out\n" * requests)
            # --parallel: transfers finish in any order, each line names its URL index.
            lines = "".join(f"{i} 0 200 0.000100 0.000500\n" for i in reversed(range(requests)))
            return ExecResult(0, lines)
        return ExecResult(127, "", "not found")

    def attach(self, handle: NodeHandle, argv: Sequence[str], *, tty: bool) -> int:
        return self.exec(handle, argv).exit_code

    def sweep(self, lab: str) -> list[Owned]:
        gone = [k for k, v in self.host.containers.items() if v == lab]
        for key in gone:
            del self.host.containers[key]
        return [Owned("container", k, lab) for k in gone]

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        return [
            Owned("container", k, v)
            for k, v in self.host.containers.items()
            if lab is None or v == lab
        ]


class FakeLinks(LinkBackend):
    def __init__(self, host: FakeHost):
        self.host = host

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
        self.host.op(f"ensure_veth:{host_ifname}")
        self.host.links[host_ifname] = lab
        self.host.mtus[host_ifname] = (settings.mtu, host_mtu)
        return {"host_ifname": host_ifname}

    def ensure_veth_between_nodes(self, lab: str, a: Any, b: Any, role: str) -> dict[str, Any]:
        self.host.op(f"ensure_pair:{a[0].name}:{a[1]}")
        return {}

    def ensure_veth_between_switches(
        self,
        lab: str,
        a: tuple[str, int | None],
        b: tuple[str, int | None],
        via: NodeHandle,
        role: str,
    ) -> dict[str, Any]:
        self.host.op(f"ensure_switch_pair:{a[0]}")
        # One pair: removing either end removes both (as deleting a veth end does).
        self.host.links[a[0]] = lab
        self.host.peers[a[0]] = b[0]
        self.host.mtus[a[0]], self.host.mtus[b[0]] = (a[1], b[1]), (b[1], a[1])
        return {"a_ifname": a[0], "b_ifname": b[0], "via": via.name}

    def remove_link(self, lab: str, host_ifname: str) -> None:
        self.host.op(f"remove_link:{host_ifname}")
        if self.host.links.get(host_ifname) == lab:
            del self.host.links[host_ifname]
            self.host.peers.pop(host_ifname, None)

    def sweep(self, lab: str) -> list[Owned]:
        gone = [k for k, v in self.host.links.items() if v == lab]
        for key in gone:
            del self.host.links[key]
        return [Owned("link", k, lab) for k in gone]

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        self.host.passing_failure("list_links")
        return [Owned("link", k, v) for k, v in self.host.links.items() if lab in (None, v)]


class FakeSwitch(SwitchBackend):
    def __init__(self, host: FakeHost, unavailable: str | None = None):
        self.host = host
        self.unavailable = unavailable

    def check(self, switch: Switch) -> None:
        if self.unavailable:
            raise PrerequisiteError(self.unavailable, "use another switch kind")

    def ensure_switch(self, lab: str, bridge: str, switch: Switch) -> dict[str, Any]:
        self.host.op(f"ensure_switch:{bridge}")
        self.host.bridges[bridge] = lab
        return {"bridge": bridge}

    def ensure_port(
        self,
        lab: str,
        bridge: str,
        port: str,
        host_ifname: str,
        switch: Switch,
        options: PortOptions | None = None,
    ) -> dict[str, Any]:
        options = options or PortOptions()
        self.host.op(f"ensure_port:{port}")
        self.host.ports[host_ifname] = bridge
        self.host.port_options[host_ifname] = options
        return {"port": port}

    def remove_port(self, lab: str, bridge: str, port: str, host_ifname: str) -> None:
        self.host.op(f"remove_port:{port}")
        self.host.ports.pop(host_ifname, None)

    def ensure_patch(self, lab: str, a: PatchEnd, b: PatchEnd) -> dict[str, Any]:
        self.host.op(f"ensure_patch:{a.port}")
        self.host.patches.update({a.ovs_port: a.bridge, b.ovs_port: b.bridge})
        return {a.port: {"bridge": a.bridge}, b.port: {"bridge": b.bridge}}

    def remove_patch(self, lab: str, a: PatchEnd, b: PatchEnd) -> None:
        self.host.op(f"remove_patch:{a.port}")
        for end in (a, b):
            self.host.patches.pop(end.ovs_port, None)

    def remove_switch(self, lab: str, bridge: str) -> None:
        self.host.op(f"remove_switch:{bridge}")
        if self.host.bridges.get(bridge) == lab:
            del self.host.bridges[bridge]

    def sweep(self, lab: str) -> list[Owned]:
        gone = [k for k, v in self.host.bridges.items() if v == lab]
        for key in gone:
            del self.host.bridges[key]
            for port in [p for p, b in self.host.ports.items() if b == key]:
                del self.host.ports[port]
            for port in [p for p, b in self.host.patches.items() if b == key]:
                del self.host.patches[port]
        return [Owned("bridge", k, lab) for k in gone]

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        return [Owned("bridge", k, v) for k, v in self.host.bridges.items() if lab in (None, v)]


def switch_table(
    host: FakeHost, unavailable: dict[SwitchKind, str] | None = None
) -> tuple[SwitchFactory, Callable[[], list[SwitchBackend]]]:
    unavailable = unavailable or {}
    backends = {kind: FakeSwitch(host, unavailable.get(kind)) for kind in SwitchKind}
    return backends.__getitem__, lambda: [backends[SwitchKind.LINUX_BRIDGE]]


class FakeOffload(OffloadBackend):
    def __init__(self, host: FakeHost):
        self.host = host
        self.state: dict[tuple[str | None, str], dict[str, bool]] = {}

    def read(self, netns_path: str | None, ifname: str) -> dict[str, bool]:
        defaults = {"tx": True, "rx": True, "tso": True, "gso": True, "gro": False}
        return {**defaults, **self.state.get((netns_path, ifname), {})}

    def apply(self, netns_path: str | None, ifname: str, offload: Any) -> dict[str, bool]:
        self.host.op(f"offload:{ifname}")
        self.state.setdefault((netns_path, ifname), {}).update(offload.as_dict())
        return self.read(netns_path, ifname)
