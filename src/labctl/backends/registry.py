"""The explicit table from switch kind to backend, and the wiring of real backends."""

from __future__ import annotations

from collections.abc import Callable

from labctl.backends.base import Backends, SwitchBackend
from labctl.core.events import EventSink, discard
from labctl.core.model import RuntimeKind, SwitchKind
from labctl.errors import LabctlError


def _linux_bridge(kind: SwitchKind) -> SwitchBackend:
    from labctl.backends.firewall import Iptables
    from labctl.backends.linux_bridge import LinuxBridge

    return LinuxBridge(firewall=Iptables())


def _ovs(kind: SwitchKind) -> SwitchBackend:
    from labctl.backends.ovs import make_ovs_switch

    return make_ovs_switch(kind)


SWITCH_BACKENDS: dict[SwitchKind, Callable[[SwitchKind], SwitchBackend]] = {
    SwitchKind.LINUX_BRIDGE: _linux_bridge,
    SwitchKind.OVS_KERNEL: _ovs,
    SwitchKind.OVS_USERSPACE: _ovs,
    SwitchKind.OVS_DPDK: _ovs,
}


class SwitchTable:
    """Builds each switch backend once, on first use."""

    def __init__(self, table: dict[SwitchKind, Callable[[SwitchKind], SwitchBackend]]):
        self.table = table
        self._built: dict[SwitchKind, SwitchBackend] = {}

    def __call__(self, kind: SwitchKind) -> SwitchBackend:
        if kind not in self._built:
            self._built[kind] = self.table[kind](kind)
        return self._built[kind]

    def sweepers(self) -> list[SwitchBackend]:
        # One backend per distinct factory: the three OVS kinds share one sweep.
        seen: dict[object, SwitchBackend] = {}
        for kind, factory in self.table.items():
            if factory not in seen:
                seen[factory] = self(kind)
        return list(seen.values())

    def close(self) -> None:
        for backend in self._built.values():
            backend.close()


def real_backends(on_event: EventSink = discard) -> tuple[Backends, Callable[[], None]]:
    """The production wiring: Docker or netns nodes, netlink, Linux bridge, OVS, tcpdump,
    ethtool netlink. Docker is connected on first use. Returns a closer."""
    from labctl.backends.capture import TcpdumpCapture
    from labctl.backends.docker_runtime import DockerRuntime, connect
    from labctl.backends.hostinfo import host_versions
    from labctl.backends.image import Recipe
    from labctl.backends.links import NetlinkLinks
    from labctl.backends.netns_runtime import NetnsRuntime
    from labctl.backends.offload import OffloadControl

    docker_runtime = DockerRuntime(connect, default_image=Recipe().tag)
    switches = SwitchTable(SWITCH_BACKENDS)

    def versions() -> dict[str, object]:
        try:
            return host_versions(docker_runtime.client)
        except LabctlError:
            return host_versions(None)

    backends = Backends(
        runtimes={RuntimeKind.DOCKER: docker_runtime, RuntimeKind.NETNS: NetnsRuntime()},
        links=NetlinkLinks(),
        switch_for=switches,
        all_switches=switches.sweepers,
        capture=TcpdumpCapture(),
        offload=OffloadControl(),
        host_versions=versions,
    )

    def close() -> None:
        switches.close()
        docker_runtime.close()

    return backends, close
