"""Switch backend: a plain Linux bridge, plus the firewall rule it needs under Docker.

The bridge carries the alias `labctl lab=<lab> switch`; ports are the host
ends of the lab's veths, which carry their own labctl alias. Nothing without
this lab's alias is ever enslaved, released or deleted.
"""

from __future__ import annotations

import errno
import functools
import os
import platform
import shutil
import subprocess
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from labctl.backends.base import Owned, SwitchBackend
from labctl.backends.firewall import Iptables
from labctl.backends.links import (
    BRIDGE,
    Netlink,
    NetlinkLinks,
    clash_error,
    find_link,
    keep_host_out_of_lab,
    label_new_link,
    link_alias,
    link_kind,
    netlink_action,
)
from labctl.core import names
from labctl.core.model import PortOptions, Switch
from labctl.errors import BackendError, PrerequisiteError

SWITCH_ROLE = "switch"
BRIDGE_MODULE_DIR = "/sys/module/bridge"
# IFLA_BR_FORWARD_DELAY is in hundredths of a second. Without STP the ports
# forward at once; with STP the kernel refuses less than 2 s.
NO_STP_FORWARD_DELAY = 0
STP_FORWARD_DELAY = 200
# Every port of a bridge starts in VLAN 1, untagged (the bridge's default_pvid).
DEFAULT_PVID = 1


class LinuxBridge(SwitchBackend):
    """SwitchBackend for kind linux-bridge."""

    def __init__(self, firewall: Iptables, netlink: NetlinkLinks | None = None) -> None:
        self._firewall = firewall
        self._netlink = netlink or NetlinkLinks()

    def check(self, switch: Switch) -> None:
        if not self._bridge_module_loaded():
            raise PrerequisiteError(
                "the Linux bridge kernel module is not available",
                "modprobe bridge (install your kernel's modules package if that fails)",
            )
        if switch.uses_vlans and not self._vlan_filtering_available():
            raise PrerequisiteError(
                "this kernel's Linux bridge has no VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING, "
                f"which needs CONFIG_VLAN_8021Q), so the ports' vlan/trunks cannot work on "
                f"linux-bridge here ({platform.release()})",
                "use an OVS switch kind for VLANs, or a kernel built with "
                "CONFIG_BRIDGE_VLAN_FILTERING=y (Debian's and Ubuntu's are)",
            )
        self._firewall.check()

    def ensure_switch(self, lab: str, bridge: str, switch: Switch) -> dict[str, Any]:
        alias = names.interface_alias(lab, SWITCH_ROLE)
        action = f"creating bridge {bridge} for lab {lab}"
        with netlink_action(action), self._netlink.host() as ipr:
            link = find_link(ipr, bridge)
            if link is None:
                ipr.link("add", ifname=bridge, kind=BRIDGE)
                link = label_new_link(ipr, bridge, alias)
                keep_host_out_of_lab(ipr, link["index"])
            elif link_alias(link) != alias or link_kind(link) != BRIDGE:
                raise clash_error(action, bridge, link_alias(link), alias)
            self._apply_stp(ipr, link["index"], switch.bridge.stp)
            # Only a lab whose ports have VLANs filters (and needs a kernel that can): any
            # other bridge forwards every frame, tagged or not, as it always did.
            if switch.uses_vlans:
                ipr.link("set", index=link["index"], kind=BRIDGE, br_vlan_filtering=1)
            ipr.link("set", index=link["index"], state="up")
        chains = self._firewall.ensure_bridge_accept(lab, bridge)
        return {
            "bridge": bridge,
            "ifindex": link["index"],
            "alias": alias,
            "firewall": chains,
            "vlan_filtering": switch.uses_vlans,
        }

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
        action = f"attaching {host_ifname} to bridge {bridge} as port {port}"
        with netlink_action(action), self._netlink.host() as ipr:
            bridge_index = self._own_bridge_index(ipr, lab, bridge, action)
            if bridge_index is None:
                missing = f"bridge {bridge} does not exist"
                raise BackendError(action, missing, "create the switch first")
            link = self._own_port(ipr, lab, host_ifname, action)
            if link is None:
                raise BackendError(action, f"{host_ifname} does not exist", "create the link first")
            if link.get_attr("IFLA_MASTER") != bridge_index:
                ipr.link("set", index=link["index"], master=bridge_index)
            if options.uses_vlans:
                self._apply_vlans(ipr, link["index"], options)
            ipr.link("set", index=link["index"], state="up")
        details: dict[str, Any] = {
            "bridge": bridge,
            "port": port,
            "host_ifname": host_ifname,
            "ifindex": link["index"],
        }
        if options.uses_vlans:
            details["vlans"] = {"pvid": options.vlan, "tagged": list(options.trunks or [])}
        return details

    def remove_port(self, lab: str, bridge: str, port: str, host_ifname: str) -> None:
        action = f"detaching {host_ifname} (port {port}) from bridge {bridge}"
        with netlink_action(action), self._netlink.host() as ipr:
            bridge_link = find_link(ipr, bridge)
            link = find_link(ipr, host_ifname)
            # Either one missing or not ours: our port is already gone.
            if bridge_link is None or link is None:
                return
            if link_alias(bridge_link) != names.interface_alias(lab, SWITCH_ROLE):
                return
            if names.lab_of_alias(link_alias(link)) != lab:
                return
            if link.get_attr("IFLA_MASTER") == bridge_link["index"]:
                ipr.link("set", index=link["index"], master=0)

    def remove_switch(self, lab: str, bridge: str) -> None:
        # Deleting a bridge releases its ports; the veths themselves stay.
        self._netlink.remove_owned(lab, bridge, BRIDGE)
        self._firewall.remove_bridge_accept(lab, bridge)

    def sweep(self, lab: str) -> list[Owned]:
        return self._netlink.sweep_kind(lab, BRIDGE) + self._firewall.sweep(lab)

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        return self._netlink.owned_links(lab, BRIDGE) + self._firewall.list_owned(lab)

    # -- internals ---------------------------------------------------------

    @staticmethod
    def _bridge_module_loaded() -> bool:
        if os.path.isdir(BRIDGE_MODULE_DIR):
            return True
        modprobe = shutil.which("modprobe")
        if modprobe is None:
            return False
        subprocess.run([modprobe, "bridge"], capture_output=True, check=False, timeout=30)
        return os.path.isdir(BRIDGE_MODULE_DIR)

    @staticmethod
    @functools.cache
    def _vlan_filtering_available() -> bool:
        """Ask the kernel itself: make a VLAN-filtering bridge in a throwaway network
        namespace (`unshare --net`), so the host sees nothing of the probe."""
        unshare, ip = shutil.which("unshare"), shutil.which("ip")
        if unshare is None or ip is None:
            return False
        argv = [unshare, "--net", "--", ip, "link", "add", "probe", "type", BRIDGE]
        try:
            done = subprocess.run(
                [*argv, "vlan_filtering", "1"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return done.returncode == 0

    @staticmethod
    def _apply_stp(ipr: Netlink, index: int, stp: bool) -> None:
        # Two requests, STP state first: the kernel checks the forward delay
        # against the STP state already in force (0 is refused while STP is on).
        ipr.link("set", index=index, kind=BRIDGE, br_stp_state=1 if stp else 0)
        delay = STP_FORWARD_DELAY if stp else NO_STP_FORWARD_DELAY
        ipr.link("set", index=index, kind=BRIDGE, br_forward_delay=delay)

    @staticmethod
    def _apply_vlans(ipr: Netlink, index: int, options: PortOptions) -> None:
        """The port's VLANs: `vlan` as its pvid, untagged (an access port); `trunks` tagged.
        VLAN 1, where the bridge put every port, goes unless the port asked for it."""
        wanted = {vid for vid in (options.vlan, *(options.trunks or [])) if vid is not None}
        if DEFAULT_PVID not in wanted:
            try:
                ipr.vlan_filter("del", index=index, vlan_info={"vid": DEFAULT_PVID})
            except NetlinkError as error:
                if error.code != errno.ENOENT:  # already gone: a re-run
                    raise
        for vid in options.trunks or []:
            ipr.vlan_filter("add", index=index, vlan_info={"vid": vid})
        if options.vlan is not None:
            ipr.vlan_filter(
                "add", index=index, vlan_info={"vid": options.vlan, "flags": ["pvid", "untagged"]}
            )

    @staticmethod
    def _own_bridge_index(ipr: Netlink, lab: str, bridge: str, action: str) -> int | None:
        """Index of `bridge` if it is this lab's bridge; None if absent; error if not ours."""
        link = find_link(ipr, bridge)
        if link is None:
            return None
        alias = names.interface_alias(lab, SWITCH_ROLE)
        if link_alias(link) != alias or link_kind(link) != BRIDGE:
            raise clash_error(action, bridge, link_alias(link), alias)
        return int(link["index"])

    @staticmethod
    def _own_port(ipr: Netlink, lab: str, host_ifname: str, action: str) -> Any | None:
        link = find_link(ipr, host_ifname)
        if link is not None and names.lab_of_alias(link_alias(link)) != lab:
            expected = names.interface_alias(lab, "<role>")
            raise clash_error(action, host_ifname, link_alias(link), expected)
        return link
