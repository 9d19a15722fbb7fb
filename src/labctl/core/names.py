"""Every name labctl gives to something it creates, generated in one place.

Kernel interface names are at most 15 bytes. They are derived from a short
hash of the lab name so that two labs never collide, and every created
object also carries the full lab name (Docker labels, interface alias, OVS
external_ids, iptables comments) so `down` finds it by identity, never by a
name pattern.
"""

from __future__ import annotations

import hashlib
import re

IFNAMSIZ = 15
LAB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
NODE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,30}$")
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
PORT_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,7}$")
SWITCH_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,6}$")
"""A switch of `switches:`: short, as it becomes part of its bridge's 15-byte name."""
TAP_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

LABEL_LAB = "labctl.lab"
LABEL_NODE = "labctl.node"
LABEL_ROLE = "labctl.role"
EXTERNAL_ID_LAB = "labctl-lab"
ALIAS_PREFIX = "labctl lab="


def lab_id(lab: str) -> str:
    """Five hex digits identifying a lab in names that must fit 15 bytes."""
    return hashlib.sha256(lab.encode()).hexdigest()[:5]


def bridge_name(lab: str, switch: str | None = None) -> str:
    """The bridge of the single `switch:` (switch None), or of the switch `switch` of
    `switches:`. The dot keeps the second apart from every host veth name (port names
    have no dot)."""
    if switch is None:
        return f"lc{lab_id(lab)}-br"
    return f"lc{lab_id(lab)}.{switch}"


def host_veth_name(lab: str, port: str) -> str:
    """Host end of the veth of a node-to-switch link, named after the switch port."""
    return f"lc{lab_id(lab)}-{port}"


def dpdk_port_name(lab: str, port: str) -> str:
    """OVS port name of a DPDK port; DPDK netdev names are global in ovs-vswitchd."""
    return f"lc{lab_id(lab)}d-{port}"


def container_name(lab: str, node: str) -> str:
    return f"labctl-{lab}-{node}"


def interface_alias(lab: str, role: str) -> str:
    """IFLA_IFALIAS value: 'labctl lab=<lab> <role>'."""
    return f"{ALIAS_PREFIX}{lab} {role}"


def lab_of_alias(alias: str | None) -> str | None:
    """The lab named in an alias labctl wrote, or None for anything else."""
    if not alias or not alias.startswith(ALIAS_PREFIX):
        return None
    return alias[len(ALIAS_PREFIX) :].split(" ", 1)[0] or None


def firewall_comment(lab: str) -> str:
    return f"labctl lab={lab}"


def check_generated(name: str) -> str:
    """Guard: generated kernel names must be valid; a failure here is a labctl bug."""
    if len(name.encode()) > IFNAMSIZ or not IFNAME_RE.match(name):
        raise ValueError(f"generated interface name {name!r} is invalid")
    return name
