"""The Open vSwitch switch backend: one class for ovs-kernel, ovs-userspace and
ovs-dpdk, which differ only in datapath type and port type (see KIND_PROFILES).

All configuration goes through OVSDB (ovsdbapp), each change in one
transaction so that a half-made bridge or port never survives. Everything
created carries external_ids {labctl-lab: <lab>, labctl-port: <port>}; removal
and sweeps only ever touch rows carrying the lab's name.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from labctl.backends.base import Owned, SwitchBackend
from labctl.backends.ovs import ovsdb
from labctl.backends.ovs.daemons import DaemonManager, DaemonNeeds, OvsDaemons, OvsEndpoint
from labctl.core import names
from labctl.core.doctor import OVS_KERNEL_MISSING_FIX
from labctl.core.model import PortOptions, Switch, SwitchKind
from labctl.core.plan import PatchEnd
from labctl.core.schedule import vswitchd_config
from labctl.errors import BackendError, PrerequisiteError

EXTERNAL_ID_PORT = "labctl-port"
IFF_UP = 0x1
VDEV_INDEX_RANGE = 1000
_VDEV_RE = re.compile(r"^(net_[a-z_]+?)(\d+)(?:,|$)")
_DPDK_VDEV_LOCK = threading.Lock()
PORT_POLL = 0.02
"""Seconds between looks at a new port's OpenFlow number (the IDL replica: no round trip)."""


@dataclass(frozen=True)
class KindProfile:
    datapath_type: str
    port_type: str  # "" = a system (kernel) netdev opened by vswitchd; "dpdk" = a DPDK vdev


KIND_PROFILES: dict[SwitchKind, KindProfile] = {
    SwitchKind.OVS_KERNEL: KindProfile(datapath_type="system", port_type=""),
    SwitchKind.OVS_USERSPACE: KindProfile(datapath_type="netdev", port_type=""),
    SwitchKind.OVS_DPDK: KindProfile(datapath_type="netdev", port_type="dpdk"),
}


def lab_external_ids(lab: str, port: str | None = None) -> dict[str, str]:
    ids = {names.EXTERNAL_ID_LAB: lab}
    if port is not None:
        ids[EXTERNAL_ID_PORT] = port
    return ids


def openvswitch_module_available() -> bool:
    """The kernel datapath module is loaded, or modprobe could load it."""
    if os.path.isdir("/sys/module/openvswitch"):
        return True
    try:
        probe = subprocess.run(
            ["modprobe", "-n", "-q", "openvswitch"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def bring_link_up(ifname: str) -> None:
    """Set a host interface up (it may already be up)."""
    action = f"bringing up host interface {ifname}"
    try:
        with IPRoute() as ipr:
            index = ipr.link_lookup(ifname=ifname)
            if not index:
                raise BackendError(action, "no such interface in the host namespace")
            link = ipr.get_links(index[0])[0]
            if not link["flags"] & IFF_UP:
                ipr.link("set", index=index[0], state="up")
    except NetlinkError as exc:
        raise BackendError(action, exc) from exc


def _scalar(value: Any) -> Any:
    """ovsdbapp returns optional columns as [] or [value]."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


AF_PACKET_MAX_MTU = 1500
"""DPDK's af_packet PMD reports max_rx_pktlen RTE_ETHER_MAX_LEN (1518 bytes), so ethdev
refuses any larger MTU for it (checked in DPDK 22.11: EINVAL, and OVS drops the port)."""


def port_settings(options: PortOptions) -> dict[str, Any]:
    """The Port and Interface columns that carry a port's options: the VLAN as OVS's tag,
    trunks and vlan_mode, the MTU as mtu_request (which OVS applies to the device, and which
    a DPDK port needs: it has an MTU of its own, 1500 unless asked)."""
    columns: dict[str, Any] = {}
    if options.vlan is not None and not options.trunks:
        columns.update(tag=options.vlan, vlan_mode="access")
    elif options.trunks:
        trunks = sorted({*options.trunks, *([options.vlan] if options.vlan else [])})
        columns["trunks"] = trunks
        if options.vlan is not None:
            # Untagged frames belong to the port's vlan, and leave it untagged.
            columns.update(tag=options.vlan, vlan_mode="native-untagged")
        else:
            columns["vlan_mode"] = "trunk"
    if options.mtu is not None:
        columns["mtu_request"] = options.mtu
    return columns


def port_settings_commands(api: ovsdb.OvsdbApi, ovs_port: str, options: PortOptions) -> list[Any]:
    columns = port_settings(options)
    port_columns = [(k, v) for k, v in columns.items() if k != "mtu_request"]
    commands = []
    if port_columns:
        commands.append(api.db_set("Port", ovs_port, *port_columns, if_exists=False))
    if "mtu_request" in columns:
        commands.append(
            api.db_set(
                "Interface", ovs_port, ("mtu_request", columns["mtu_request"]), if_exists=False
            )
        )
    return commands


class OvsSwitch(SwitchBackend):
    """SwitchBackend for the three OVS kinds. Build it with make_ovs_switch()."""

    def __init__(
        self,
        kind: SwitchKind,
        daemons: DaemonManager,
        *,
        api_factory: ovsdb.ApiFactory = ovsdb.connect,
        link_up: Callable[[str], None] = bring_link_up,
        kernel_module_available: Callable[[], bool] = openvswitch_module_available,
        datapath_type: str | None = None,
        port_timeout: float = 30.0,
    ):
        if kind not in KIND_PROFILES:
            raise ValueError(f"{kind} is not an Open vSwitch kind")
        self.kind = kind
        profile = KIND_PROFILES[kind]
        self.datapath_type = datapath_type or profile.datapath_type
        self.port_type = profile.port_type
        self.daemons = daemons
        self.api_factory = api_factory
        self.link_up = link_up
        self.kernel_module_available = kernel_module_available
        self.port_timeout = port_timeout

    # -- SwitchBackend ---------------------------------------------------------------

    def check(self, switch: Switch) -> None:
        if self.kind is SwitchKind.OVS_KERNEL and not self.kernel_module_available():
            raise PrerequisiteError(
                f"the openvswitch kernel module is missing on this kernel "
                f"({platform.release()}), so the OVS kernel datapath (ovs-kernel) cannot run",
                OVS_KERNEL_MISSING_FIX,
            )
        self.daemons.check(self._needs(switch))

    def ensure_switch(self, lab: str, bridge: str, switch: Switch) -> dict[str, Any]:
        self.check(switch)
        if self.kind is SwitchKind.OVS_KERNEL and not os.path.isdir("/sys/module/openvswitch"):
            subprocess.run(
                ["modprobe", "openvswitch"], capture_output=True, timeout=30, check=False
            )
        endpoint = self.daemons.ensure(lab, self._needs(switch))
        ids = lab_external_ids(lab)
        with ovsdb.session(endpoint.connection, self.api_factory) as api:
            existing = self._bridge_row(api, bridge)
            if existing is not None:
                self._require_ours("bridge", bridge, existing, lab)
            ovsdb.commit(
                f"creating OVS bridge {bridge}",
                api,
                self._bridge_commands(api, bridge, switch, ids),
            )
            row = self._bridge_row(api, bridge)
        if row is None:
            raise BackendError(f"creating OVS bridge {bridge}", "the bridge is not in OVSDB")
        return {
            "bridge": bridge,
            "uuid": str(row["_uuid"]),
            "datapath_type": self.datapath_type,
            "fail_mode": switch.ovs.fail_mode,
            "endpoint": endpoint.as_dict(),
        }

    def _bridge_commands(
        self, api: ovsdb.OvsdbApi, bridge: str, switch: Switch, ids: dict[str, str]
    ) -> list[Any]:
        """The commands of one all-or-nothing transaction that makes the bridge."""
        return [
            api.add_br(bridge, may_exist=True, datapath_type=self.datapath_type),
            api.db_set(
                "Bridge",
                bridge,
                ("external_ids", ids),
                ("fail_mode", switch.ovs.fail_mode),
                if_exists=False,
            ),
            # The bridge's own internal port, so a sweep recognises it too.
            api.db_set("Port", bridge, ("external_ids", ids), if_exists=False),
            api.db_set("Interface", bridge, ("external_ids", ids), if_exists=False),
        ]

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
        if (
            self.port_type == "dpdk"
            and switch.dpdk.port_driver == "af_packet"
            and options.mtu is not None
            and options.mtu > AF_PACKET_MAX_MTU
        ):
            raise PrerequisiteError(
                f"switch port {port} asks for mtu {options.mtu}, but DPDK's af_packet driver "
                f"(ovs-dpdk's ports here) refuses any MTU above {AF_PACKET_MAX_MTU}",
                f"use mtu {AF_PACKET_MAX_MTU} or less on ovs-dpdk ports, or --switch "
                "ovs-userspace for larger frames",
            )
        endpoint = self._endpoint_or_fail(f"adding port {port} to OVS bridge {bridge}")
        ovs_port = self.ovs_port_name(lab, port, host_ifname)
        action = f"adding {host_ifname} to OVS bridge {bridge} as port {ovs_port}"
        ids = lab_external_ids(lab, port)
        with ovsdb.session(endpoint.connection, self.api_factory) as api:
            bridge_row = self._bridge_row(api, bridge)
            if bridge_row is None:
                raise BackendError(action, f"bridge {bridge} does not exist")
            self._require_ours("bridge", bridge, bridge_row, lab)
            self.link_up(host_ifname)
            existing = self._port_row(api, ovs_port)
            if existing is not None:
                self._require_ours("port", ovs_port, existing, lab)
                if existing["_uuid"] not in bridge_row["ports"]:
                    raise BackendError(action, f"port {ovs_port} is on another bridge")
                settings = port_settings_commands(api, ovs_port, options)
                if settings:
                    ovsdb.commit(action, api, settings)
                details = self._port_details(api, action, ovs_port, host_ifname, rollback=False)
            else:
                self._add_port(api, action, bridge, ovs_port, host_ifname, switch, ids, options)
                details = self._port_details(api, action, ovs_port, host_ifname, rollback=True)
        details.update(port_settings(options))
        if self.port_type == "dpdk" and switch.dpdk.port_driver == "af_xdp":
            details["warning"] = (
                f"af_xdp: XDP takes frames before packet taps and AF_XDP transmits past "
                f"them, so a tcpdump on {host_ifname} sees none of this port's traffic; "
                "use port_driver af_packet to capture there"
            )
        return details

    def _add_port(
        self,
        api: ovsdb.OvsdbApi,
        action: str,
        bridge: str,
        ovs_port: str,
        host_ifname: str,
        switch: Switch,
        ids: dict[str, str],
        options: PortOptions | None = None,
    ) -> None:
        options = options or PortOptions()
        attrs: dict[str, Any] = {"type": self.port_type, "external_ids": ids}
        # Labs built side by side (matrix cells) share vswitchd: choosing a free DPDK vdev
        # index and taking it must not interleave with another lab doing the same.
        with _DPDK_VDEV_LOCK if self.port_type == "dpdk" else contextlib.nullcontext():
            if self.port_type == "dpdk":
                devargs = self._devargs(api, switch, ovs_port, host_ifname)
                attrs["options"] = {"dpdk-devargs": devargs}
            try:
                # Committed, not waited for: vswitchd applies ports one after another (a
                # DPDK port takes it most of a second), and _port_details waits for this
                # one's OpenFlow port number anyway, outside the lock, so cells side by
                # side wait together instead of in turn.
                with api.transaction(
                    check_error=True, log_errors=False, wait_for_vswitchd=False
                ) as txn:
                    txn.add(api.add_port(bridge, ovs_port, may_exist=False, **attrs))
                    txn.add(api.db_set("Port", ovs_port, ("external_ids", ids), if_exists=False))
                    for command in port_settings_commands(api, ovs_port, options):
                        txn.add(command)
            except Exception as exc:
                raise BackendError(action, exc) from exc

    def ensure_patch(self, lab: str, a: PatchEnd, b: PatchEnd) -> dict[str, Any]:
        """Patch ports `a.ovs_port` on `a.bridge` and `b.ovs_port` on `b.bridge`, each the
        other's peer, in one transaction: both exist or neither."""
        action = f"joining OVS bridges {a.bridge} and {b.bridge} with patch ports"
        endpoint = self._endpoint_or_fail(action)
        with ovsdb.session(endpoint.connection, self.api_factory) as api:
            commands = []
            for end, peer in ((a, b), (b, a)):
                bridge_row = self._bridge_row(api, end.bridge)
                if bridge_row is None:
                    raise BackendError(action, f"bridge {end.bridge} does not exist")
                self._require_ours("bridge", end.bridge, bridge_row, lab)
                existing = self._port_row(api, end.ovs_port)
                if existing is not None:
                    self._require_ours("port", end.ovs_port, existing, lab)
                    if existing["_uuid"] not in bridge_row["ports"]:
                        raise BackendError(action, f"port {end.ovs_port} is on another bridge")
                ids = lab_external_ids(lab, end.port)
                commands += [
                    api.add_port(
                        end.bridge,
                        end.ovs_port,
                        may_exist=True,
                        type="patch",
                        options={"peer": peer.ovs_port},
                        external_ids=ids,
                    ),
                    api.db_set("Port", end.ovs_port, ("external_ids", ids), if_exists=False),
                    api.db_set(
                        "Interface",
                        end.ovs_port,
                        ("type", "patch"),
                        ("options", {"peer": peer.ovs_port}),
                        if_exists=False,
                    ),
                    # A patch port has no device, so no MTU (validation refuses one).
                    *port_settings_commands(
                        api, end.ovs_port, end.options.model_copy(update={"mtu": None})
                    ),
                ]
            ovsdb.commit(action, api, commands)
            details = {
                end.port: self._port_details(api, action, end.ovs_port, "", rollback=False)
                for end in (a, b)
            }
        for end in (a, b):
            details[end.port].pop("host_ifname", None)
            details[end.port]["bridge"] = end.bridge
        return details

    def remove_patch(self, lab: str, a: PatchEnd, b: PatchEnd) -> None:
        self.daemons.revive()
        endpoint = self.daemons.current()
        if endpoint is None:
            return
        with ovsdb.session(endpoint.connection, self.api_factory) as api:
            ours = []
            for end in (a, b):
                bridge_row = self._bridge_row(api, end.bridge)
                row = self._port_row(api, end.ovs_port)
                if bridge_row is None or row is None or not self._is_ours(row, lab):
                    continue
                if row["_uuid"] in bridge_row["ports"]:
                    ours.append(end)
            if ours:
                try:
                    with api.transaction(check_error=True, log_errors=False) as txn:
                        for end in ours:
                            txn.add(api.del_port(end.ovs_port, bridge=end.bridge, if_exists=True))
                except Exception as exc:
                    raise BackendError(f"removing patch ports of lab {lab}", exc) from exc

    def health(self) -> list[str]:
        """Why the switch may not be forwarding (a daemon of ours died), else []."""
        return self.daemons.health()

    def remove_port(self, lab: str, bridge: str, port: str, host_ifname: str) -> None:
        # A transaction waits for ovs-vswitchd to apply it: a dead one must come back first.
        self.daemons.revive()
        endpoint = self.daemons.current()
        if endpoint is None:
            return
        with ovsdb.session(endpoint.connection, self.api_factory) as api:
            bridge_row = self._bridge_row(api, bridge)
            if bridge_row is None or not self._is_ours(bridge_row, lab):
                return
            ovs_port = self.ovs_port_name(lab, port, host_ifname)
            row = self._port_row(api, ovs_port)
            if row is None or not self._is_ours(row, lab):
                return
            if row["_uuid"] not in bridge_row["ports"]:
                return
            self._delete_port(api, bridge, ovs_port)

    def remove_switch(self, lab: str, bridge: str) -> None:
        self.daemons.revive()
        endpoint = self.daemons.current()
        if endpoint is not None:
            with ovsdb.session(endpoint.connection, self.api_factory) as api:
                row = self._bridge_row(api, bridge)
                if row is not None and self._is_ours(row, lab):
                    ovsdb.execute(
                        f"deleting OVS bridge {bridge}", api.del_br(bridge, if_exists=True)
                    )
        # Also when our ovsdb-server died: release() then clears the stale record.
        self.daemons.release(lab)

    def sweep(self, lab: str) -> list[Owned]:
        removed: list[Owned] = []
        self.daemons.revive()
        endpoint = self.daemons.current()
        if endpoint is not None:
            with ovsdb.session(endpoint.connection, self.api_factory) as api:
                bridges, ports = self._owned_rows(api, lab)
                bridge_names = {row["name"] for row in bridges}
                strays = [
                    row
                    for row in ports
                    if row["name"] not in bridge_names and not self._on_any(row, bridges)
                ]
                if bridges or strays:
                    try:
                        with api.transaction(check_error=True, log_errors=False) as txn:
                            for row in strays:
                                txn.add(api.del_port(row["name"], if_exists=True))
                            for row in bridges:
                                txn.add(api.del_br(row["name"], if_exists=True))
                    except Exception as exc:
                        raise BackendError(f"sweeping OVS bridges of lab {lab}", exc) from exc
                removed += [self._owned("ovs-bridge", row, lab, endpoint) for row in bridges]
                removed += [
                    self._owned("ovs-port", row, lab, endpoint)
                    for row in ports
                    if row["name"] not in bridge_names
                ]
        removed += self.daemons.release(lab)
        return removed

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        endpoint = self.daemons.current()
        owned: list[Owned] = []
        if endpoint is not None:
            with ovsdb.session(endpoint.connection, self.api_factory) as api:
                bridges, ports = self._owned_rows(api, lab)
            bridge_names = {row["name"] for row in bridges}
            for kind, rows in (("ovs-bridge", bridges), ("ovs-port", ports)):
                for row in rows:
                    if kind == "ovs-port" and row["name"] in bridge_names:
                        continue
                    owner = row["external_ids"][names.EXTERNAL_ID_LAB]
                    owned.append(self._owned(kind, row, owner, endpoint))
        return owned + self.daemons.list_owned(lab)

    # -- helpers ---------------------------------------------------------------------

    def ovs_port_name(self, lab: str, port: str, host_ifname: str) -> str:
        if self.port_type == "dpdk":
            return names.check_generated(names.dpdk_port_name(lab, port))
        return host_ifname

    def _needs(self, switch: Switch) -> DaemonNeeds:
        # The matrix schedule decides which cells may share vswitchd by the same value.
        config = vswitchd_config(switch.model_copy(update={"kind": self.kind}))
        assert config is not None  # an OVS kind
        asked = tuple(sorted(switch.ovs.effective_other_config().items()))
        return DaemonNeeds(dpdk=config.dpdk, other_config=config.other_config, asked=asked)

    def _endpoint_or_fail(self, action: str) -> OvsEndpoint:
        endpoint = self.daemons.current()
        if endpoint is None:
            raise BackendError(action, "no OVS daemon is running (ensure_switch first)")
        return endpoint

    def _devargs(self, api: ovsdb.OvsdbApi, switch: Switch, ovs_port: str, host_ifname: str) -> str:
        """DPDK vdev arguments attaching `host_ifname`, with a vdev name unique in vswitchd."""
        driver = f"net_{switch.dpdk.port_driver}"
        rows = ovsdb.execute(
            "listing OVS interfaces", api.db_list("Interface", columns=["options"])
        )
        used = set()
        for row in rows:
            match = _VDEV_RE.match(row["options"].get("dpdk-devargs", ""))
            if match:
                used.add((match.group(1), int(match.group(2))))
        start = zlib.crc32(ovs_port.encode()) % VDEV_INDEX_RANGE
        for step in range(VDEV_INDEX_RANGE):
            index = (start + step) % VDEV_INDEX_RANGE
            if (driver, index) not in used:
                break
        else:
            raise BackendError(f"adding DPDK port {ovs_port}", "no free DPDK vdev index")
        if switch.dpdk.port_driver == "af_packet":
            # qdisc_bypass=0: DPDK's af_packet would otherwise bypass the qdisc and a
            # tcpdump on the host veth would miss everything DPDK transmits.
            return f"{driver}{index},iface={host_ifname},qdisc_bypass=0"
        return f"{driver}{index},iface={host_ifname},start_queue=0,queue_count=1"

    def _port_details(
        self, api: ovsdb.OvsdbApi, action: str, ovs_port: str, host_ifname: str, *, rollback: bool
    ) -> dict[str, Any]:
        """Wait until vswitchd has a port number for the interface, or report its error."""
        deadline = time.monotonic() + self.port_timeout
        while True:
            rows = ovsdb.execute(
                action,
                api.db_list(
                    "Interface",
                    [ovs_port],
                    columns=["_uuid", "ofport", "error", "type", "options"],
                    if_exists=True,
                ),
            )
            row = rows[0] if rows else {}
            error = _scalar(row.get("error"))
            ofport = _scalar(row.get("ofport"))
            if not rows or error or time.monotonic() > deadline:
                cause = error or (
                    "the interface vanished"
                    if not rows
                    else f"no OpenFlow port number after {self.port_timeout:.0f} s"
                )
                if rollback:
                    self._delete_port(api, None, ovs_port)
                raise BackendError(action, f"Interface error: {cause}" if error else cause)
            if ofport is not None and ofport != -1:
                return {
                    "ovs_port": ovs_port,
                    "host_ifname": host_ifname,
                    "ofport": ofport,
                    "type": row.get("type", ""),
                    "options": dict(row.get("options", {})),
                    "uuid": str(row["_uuid"]),
                }
            time.sleep(PORT_POLL)

    def _delete_port(self, api: ovsdb.OvsdbApi, bridge: str | None, ovs_port: str) -> None:
        ovsdb.execute(
            f"deleting OVS port {ovs_port}", api.del_port(ovs_port, bridge=bridge, if_exists=True)
        )

    @staticmethod
    def _bridge_row(api: ovsdb.OvsdbApi, bridge: str) -> dict[str, Any] | None:
        rows = ovsdb.execute(
            f"reading OVS bridge {bridge}",
            api.db_list(
                "Bridge",
                [bridge],
                columns=["_uuid", "name", "external_ids", "ports"],
                if_exists=True,
            ),
        )
        return rows[0] if rows else None

    @staticmethod
    def _port_row(api: ovsdb.OvsdbApi, ovs_port: str) -> dict[str, Any] | None:
        rows = ovsdb.execute(
            f"reading OVS port {ovs_port}",
            api.db_list(
                "Port", [ovs_port], columns=["_uuid", "name", "external_ids"], if_exists=True
            ),
        )
        return rows[0] if rows else None

    @staticmethod
    def _is_ours(row: dict[str, Any], lab: str) -> bool:
        return bool(row.get("external_ids", {}).get(names.EXTERNAL_ID_LAB) == lab)

    def _require_ours(self, what: str, name: str, row: dict[str, Any], lab: str) -> None:
        if not self._is_ours(row, lab):
            owner = row.get("external_ids", {}).get(names.EXTERNAL_ID_LAB)
            whose = f"lab {owner}" if owner else "not labctl"
            raise BackendError(
                f"using OVS {what} {name} for lab {lab}",
                f"it already exists and belongs to {whose}",
                "labctl never takes over what it did not create",
            )

    @staticmethod
    def _owned_rows(api: ovsdb.OvsdbApi, lab: str | None) -> tuple[list[Any], list[Any]]:
        def find(table: str, columns: list[str]) -> list[Any]:
            rows = ovsdb.execute(f"listing OVS {table} rows", api.db_list(table, columns=columns))
            return [
                row
                for row in rows
                if names.EXTERNAL_ID_LAB in row["external_ids"]
                and (lab is None or row["external_ids"][names.EXTERNAL_ID_LAB] == lab)
            ]

        return (
            find("Bridge", ["_uuid", "name", "external_ids", "ports"]),
            find("Port", ["_uuid", "name", "external_ids"]),
        )

    @staticmethod
    def _on_any(port_row: dict[str, Any], bridges: list[Any]) -> bool:
        return any(port_row["_uuid"] in bridge["ports"] for bridge in bridges)

    @staticmethod
    def _owned(kind: str, row: dict[str, Any], lab: str, endpoint: OvsEndpoint) -> Owned:
        return Owned(
            kind,
            row["name"],
            lab,
            {
                "uuid": str(row["_uuid"]),
                "external_ids": dict(row["external_ids"]),
                "ovsdb": endpoint.connection,
            },
        )


def make_ovs_switch(
    kind: SwitchKind | str, daemons: DaemonManager | None = None, **kwargs: Any
) -> OvsSwitch:
    """The OVS backend for one kind, with labctl's own daemon manager by default."""
    kind = SwitchKind(kind)
    return OvsSwitch(kind, daemons if daemons is not None else OvsDaemons(), **kwargs)
