"""ovs-vswitchd's global settings: the Open_vSwitch table's other_config. Pure.

A topology sets them under `switch.ovs.other_config`, a lab's matrix varies them
under `matrix.ovs_config`. They are daemon-wide: every bridge of one ovs-vswitchd
runs with the same ones, and some (userspace-tso-enable, hw-offload) are read only
when the daemon starts. So labctl runs its vswitchd with exactly the settings a
switch asks for, and two labs (two matrix cells) that ask for different ones never
share it: labctl.core.schedule makes such cells take turns, and
labctl.backends.ovs.daemons refuses a lab whose settings differ from those of a
vswitchd another lab still uses.

Keys are checked against KNOWN_KEYS, the keys whose meaning labctl knows (from
ovs-vswitchd.conf.db(5) of Open vSwitch 3.1): OVS itself ignores a key it does not
know, so a misspelt one would run the lab without the setting and say nothing.
The DPDK keys have their own place (`switch.dpdk`), and the other_config keys of
the Bridge and Interface tables are not daemon-wide: both are refused with the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

TSO_KEY = "userspace-tso-enable"


@dataclass(frozen=True)
class Key:
    """One global other_config key: what it means, what values it takes, OVS's default."""

    meaning: str
    check: Callable[[str], str | None]  # None when the value is good, else what it must be
    default: str | None = None  # OVS's value when the key is absent; None: it depends


def _boolean(value: str) -> str | None:
    return None if value in ("true", "false") else '"true" or "false"'


def _integer(low: int, high: int | None = None) -> Callable[[str], str | None]:
    wanted = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def check(value: str) -> str | None:
        if not re.fullmatch(r"[0-9]+", value):
            return wanted
        number = int(value)
        return None if number >= low and (high is None or number <= high) else wanted

    return check


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else "one of " + ", ".join(choices)

    return check


KNOWN_KEYS: dict[str, Key] = {
    TSO_KEY: Key(
        "TCP segmentation offload in the userspace datapath (read at vswitchd's start)",
        _boolean,
        "false",
    ),
    "hw-offload": Key("flow offload to hardware (read at vswitchd's start)", _boolean, "false"),
    "max-idle": Key("milliseconds an idle datapath flow is kept", _integer(500), "10000"),
    "max-revalidator": Key("milliseconds between flow revalidations", _integer(100), "500"),
    "min-revalidate-pps": Key(
        "packets per second below which a flow is not revalidated", _integer(1), "5"
    ),
    "flow-limit": Key("datapath flows at most", _integer(0), "200000"),
    "n-handler-threads": Key("upcall handler threads", _integer(1)),
    "n-revalidator-threads": Key("revalidator threads", _integer(1)),
    "emc-insert-inv-prob": Key(
        "1/N: chance of inserting a flow in the exact match cache (userspace)",
        _integer(0, 4294967295),
        "100",
    ),
    "smc-enable": Key("the signature match cache (userspace)", _boolean, "false"),
    "tx-flush-interval": Key(
        "microseconds a userspace output batch may wait", _integer(0, 1000000), "0"
    ),
    "pmd-rxq-assign": Key(
        "how receive queues are spread over PMD threads",
        _one_of("cycles", "group", "roundrobin"),
        "cycles",
    ),
    "pmd-perf-metrics": Key("detailed PMD performance metrics", _boolean, "false"),
    "vlan-limit": Key("VLAN headers matched at most (0: no limit)", _integer(0), "1"),
}

DPDK_FIELDS = {
    "dpdk-init": "the switch kind ovs-dpdk (labctl sets it)",
    "dpdk-socket-mem": "switch.dpdk.socket_mem",
    "dpdk-extra": "switch.dpdk.extra_eal_args",
    "dpdk-lcore-mask": "switch.dpdk.lcore_mask",
    "pmd-cpu-mask": "switch.dpdk.pmd_cpu_mask",
}
"""Global keys labctl sets from `switch.dpdk`: not allowed in other_config."""

NOT_GLOBAL = (
    "hwaddr",
    "datapath-id",
    "dp-desc",
    "disable-in-band",
    "in-band-queue",
    "forward-bpdu",
    "mac-aging-time",
    "mac-table-size",
    "mcast-snooping-aging-time",
    "mcast-snooping-table-size",
    "mcast-snooping-disable-flood-unregistered",
    "flow-eviction-threshold",
    "enable-recirc",
    "stp-enable",
    "rstp-enable",
    "tx-steering",
)
"""Bridge, Port and Interface other_config keys: set per row, not on the daemon."""


def as_text(value: object) -> str | None:
    """A YAML value as OVSDB stores it (strings): true -> "true", 3 -> "3"; None when
    it is not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return str(value)
    return None


def key_problem(key: str, value: str) -> str | None:
    """What is wrong with one other_config entry, with the fix; None when it is good."""
    if key in DPDK_FIELDS:
        return f"{key} is not set through other_config: use {DPDK_FIELDS[key]}"
    if key in NOT_GLOBAL:
        return (
            f"{key} is an other_config key of a Bridge, Port or Interface row, not of "
            "ovs-vswitchd (the Open_vSwitch table); labctl sets only the daemon's: " + known_list()
        )
    known = KNOWN_KEYS.get(key)
    if known is None:
        return f"unknown other_config key {key!r}; labctl knows " + known_list()
    wanted = known.check(value)
    if wanted is not None:
        return f"{key} must be {wanted}, not {value!r}"
    return None


def known_list() -> str:
    return ", ".join(KNOWN_KEYS)


def normalized(config: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The settings that differ from OVS's defaults, sorted: two configurations that
    make vswitchd behave alike compare equal ({} and {userspace-tso-enable: false})."""
    return tuple(sorted((k, v) for k, v in config.items() if not _is_default(k, v)))


def _is_default(key: str, value: str) -> bool:
    known = KNOWN_KEYS.get(key)
    return known is not None and known.default == value


def describe(config: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    """ "userspace-tso-enable=true, max-idle=500", or "OVS defaults"."""
    items = config.items() if isinstance(config, Mapping) else config
    return ", ".join(f"{k}={v}" for k, v in items) or "OVS defaults"
