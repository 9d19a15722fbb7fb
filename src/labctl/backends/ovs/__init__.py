"""Open vSwitch switch backend (ovs-kernel, ovs-userspace, ovs-dpdk)."""

from labctl.backends.ovs.daemons import (
    DaemonManager,
    DaemonNeeds,
    ExternalOvs,
    OvsBinaries,
    OvsDaemons,
    OvsEndpoint,
    OvsPaths,
)
from labctl.backends.ovs.switch import KIND_PROFILES, OvsSwitch, make_ovs_switch

__all__ = [
    "KIND_PROFILES",
    "DaemonManager",
    "DaemonNeeds",
    "ExternalOvs",
    "OvsBinaries",
    "OvsDaemons",
    "OvsEndpoint",
    "OvsPaths",
    "OvsSwitch",
    "make_ovs_switch",
]
