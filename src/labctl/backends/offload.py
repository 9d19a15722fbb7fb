"""Offload backend: checksum/segmentation offload of one interface, via ethtool netlink.

What `ethtool -k` shows and `ethtool -K` sets, through the kernel's ETHTOOL_GENL
generic netlink family (ETHTOOL_MSG_FEATURES_GET / _SET), never through the
ethtool binary. pyroute2 0.7 reads features with the SIOCETHTOOL ioctl, in the
caller's namespace only, so the two messages are defined here on top of its
generic netlink socket and its ethtool header and bitset attributes.

A node's namespace is reached by path (`/proc/<pid>/ns/net`): a short-lived
thread enters it and opens the netlink socket there (netns_thread). A netlink
socket keeps the namespace it was created in, so labctl's own threads talk to
the node's kernel without ever leaving their namespace, even if a request fails
half-way.

Our five keys are ethtool's legacy flags (`ethtool -K eth0 tx off`), each a
group of kernel features. As in ethtool, a group reads "on" if any of its
features is active, and a request changes only the features the device lets
change. On a veth, `tx off` turns off tx-checksum-ip-generic and
tx-checksum-sctp; the kernel then also drops TCP segmentation, which needs a
TX checksum, but (kernel 6.18) keeps tx-tcp-accecn-segmentation.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST, genlmsg
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.generic import GenericNetlinkSocket
from pyroute2.netlink.generic.ethtool import (
    ETHTOOL_GENL_NAME,
    ETHTOOL_GENL_VERSION,
    ETHTOOL_MSG_FEATURES_GET,
    ETHTOOL_MSG_FEATURES_SET,
    ethtoolbitset,
    ethtoolheader,
)

from labctl.backends import netns_thread
from labctl.backends.links import netlink_action
from labctl.core.model import Offload
from labctl.errors import BackendError, PrerequisiteError

NETLINK_GENERIC = netns_thread.NETLINK_GENERIC
ETHTOOL_FLAG_OMIT_REPLY = 1 << 1

DEFAULT_TIMEOUT = 5.0
"""Seconds for each netlink reply."""


@dataclass(frozen=True)
class FeatureGroup:
    """One of our offload keys: ethtool's name for it and the kernel features it covers."""

    ethtool_name: str  # the group line of `ethtool -k`, e.g. "tx-checksumming"
    kernel_names: tuple[str, ...]  # netdev feature strings, as ETHTOOL_MSG_FEATURES_GET names them


# Members as ethtool groups them (its patterns tx-checksum-*, tx-tcp*-segmentation),
# checked against `ethtool -k` / `ethtool -K` on kernel 6.18 by tests/integration/test_offload.py.
# A name the running kernel does not know is simply never reported.
FEATURE_NAMES: Mapping[str, FeatureGroup] = MappingProxyType(
    {
        "tx": FeatureGroup(
            "tx-checksumming",
            (
                "tx-checksum-ipv4",
                "tx-checksum-ip-generic",
                "tx-checksum-ipv6",
                "tx-checksum-fcoe-crc",
                "tx-checksum-sctp",
            ),
        ),
        "rx": FeatureGroup("rx-checksumming", ("rx-checksum",)),
        "tso": FeatureGroup(
            "tcp-segmentation-offload",
            (
                "tx-tcp-segmentation",
                "tx-tcp-ecn-segmentation",
                "tx-tcp-mangleid-segmentation",
                "tx-tcp6-segmentation",
                "tx-tcp-accecn-segmentation",
            ),
        ),
        "gso": FeatureGroup("generic-segmentation-offload", ("tx-generic-segmentation",)),
        "gro": FeatureGroup("generic-receive-offload", ("rx-gro",)),
    }
)

# Why the kernel may keep a feature off although it is wanted (netdev_fix_features).
_DEPENDENCY_HINTS = {
    "tso": "TCP segmentation needs TX checksum offload: set tx on too",
    "gso": "generic segmentation may need scatter-gather, which needs TX checksum offload",
}


# -- ethtool netlink messages ------------------------------------------------


class EthtoolFeaturesMsg(genlmsg):
    """ETHTOOL_MSG_FEATURES_GET / _SET and their replies (include/uapi/linux/ethtool_netlink.h)."""

    nla_map = (
        ("ETHTOOL_A_FEATURES_UNSPEC", "none"),
        ("ETHTOOL_A_FEATURES_HEADER", "ethtoolheader"),
        ("ETHTOOL_A_FEATURES_HW", "ethtoolbitset"),
        ("ETHTOOL_A_FEATURES_WANTED", "ethtoolbitset"),
        ("ETHTOOL_A_FEATURES_ACTIVE", "ethtoolbitset"),
        ("ETHTOOL_A_FEATURES_NOCHANGE", "ethtoolbitset"),
    )

    ethtoolheader = ethtoolheader
    ethtoolbitset = ethtoolbitset


def _read_bitset(bitset: Any) -> tuple[frozenset[str], frozenset[str]]:
    """(names listed, names set) of a verbose ethtool bitset.

    With NOMASK the kernel lists only set bits; with a mask it lists every
    masked bit and flags the set ones with BIT_VALUE.
    """
    bits = bitset.get_attr("ETHTOOL_A_BITSET_BITS") if bitset is not None else None
    if bits is None:
        return frozenset(), frozenset()
    listed_means_set = bool(bitset.get_attr("ETHTOOL_A_BITSET_NOMASK"))
    listed, on = set(), set()
    for bit in bits.get_attrs("ETHTOOL_A_BITSET_BITS_BIT"):
        name = bit.get_attr("ETHTOOL_A_BITSET_BIT_NAME")
        if not name:  # unused bit numbers have empty names
            continue
        listed.add(name)
        if listed_means_set or bit.get_attr("ETHTOOL_A_BITSET_BIT_VALUE"):
            on.add(name)
    return frozenset(listed), frozenset(on)


class EthtoolSocket(GenericNetlinkSocket):
    """ETHTOOL_GENL features requests on one generic netlink socket.

    `fileno`: a netlink socket opened elsewhere (in another namespace); None
    opens one in this process's namespace.
    """

    def bind_ethtool(self) -> None:
        self.bind(ETHTOOL_GENL_NAME, EthtoolFeaturesMsg)

    def get_features(self, ifname: str) -> Any:
        msg = self._message(ETHTOOL_MSG_FEATURES_GET, ifname, flags=0)
        return self.nlm_request(msg, msg_type=self.prid, msg_flags=NLM_F_REQUEST)[0]

    def set_features(self, ifname: str, wanted: Mapping[str, bool]) -> None:
        """Set the `wanted` bits by name; bits not named keep their wanted value."""
        msg = self._message(ETHTOOL_MSG_FEATURES_SET, ifname, flags=ETHTOOL_FLAG_OMIT_REPLY)
        bits = []
        for name, value in wanted.items():
            bit_attrs: list[tuple[str, Any]] = [("ETHTOOL_A_BITSET_BIT_NAME", name)]
            if value:
                bit_attrs.append(("ETHTOOL_A_BITSET_BIT_VALUE", True))
            bits.append(("ETHTOOL_A_BITSET_BITS_BIT", {"attrs": bit_attrs}))
        # No NOMASK: a bitset with a mask changes only the bits it lists.
        bitset = {"attrs": [("ETHTOOL_A_BITSET_BITS", {"attrs": bits})]}
        msg["attrs"].append(("ETHTOOL_A_FEATURES_WANTED", bitset))
        self.nlm_request(msg, msg_type=self.prid, msg_flags=NLM_F_REQUEST | NLM_F_ACK)

    @staticmethod
    def _message(cmd: int, ifname: str, flags: int) -> EthtoolFeaturesMsg:
        msg = EthtoolFeaturesMsg()
        msg["cmd"] = cmd
        msg["version"] = ETHTOOL_GENL_VERSION
        header: list[tuple[str, Any]] = [("ETHTOOL_A_HEADER_DEV_NAME", ifname)]
        if flags:
            header.append(("ETHTOOL_A_HEADER_FLAGS", flags))
        msg["attrs"].append(("ETHTOOL_A_FEATURES_HEADER", {"attrs": header}))
        return msg


# -- reaching a namespace ------------------------------------------------------


def open_ethtool_socket(netns_path: str | None, timeout: float) -> EthtoolSocket:
    """A bound ethtool netlink socket in the namespace at `netns_path` (None: ours)."""
    fd = None if netns_path is None else netns_thread.netlink_fd(netns_path, NETLINK_GENERIC)
    try:
        sock = EthtoolSocket(fileno=fd, ext_ack=True)
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    try:
        sock.settimeout(timeout)
        sock.bind_ethtool()
    except NetlinkError as error:
        sock.close()
        if error.code in (errno.ENOENT, errno.EOPNOTSUPP):
            raise PrerequisiteError(
                "the kernel has no ethtool netlink family",
                "Linux >= 5.6 built with CONFIG_ETHTOOL_NETLINK",
            ) from error
        raise
    except BaseException:
        sock.close()
        raise
    return sock


# -- kernel state --------------------------------------------------------------


@dataclass(frozen=True)
class KernelFeatures:
    """One interface's netdev features, as ETHTOOL_MSG_FEATURES_GET reports them."""

    known: frozenset[str]  # every feature name the kernel has
    changeable: frozenset[str]  # hw_features minus "nochange": what a request may change
    wanted: frozenset[str]
    active: frozenset[str]

    @classmethod
    def from_reply(cls, reply: Any) -> KernelFeatures:
        bitsets = {
            kind: _read_bitset(reply.get_attr(f"ETHTOOL_A_FEATURES_{kind}"))
            for kind in ("HW", "WANTED", "ACTIVE", "NOCHANGE")
        }
        return cls(
            known=frozenset().union(*(listed for listed, _on in bitsets.values())),
            changeable=bitsets["HW"][1] - bitsets["NOCHANGE"][1],
            wanted=bitsets["WANTED"][1],
            active=bitsets["ACTIVE"][1],
        )

    def members(self, key: str) -> tuple[str, ...]:
        """The kernel features of group `key` that this kernel knows."""
        return tuple(n for n in FEATURE_NAMES[key].kernel_names if n in self.known)

    def group_value(self, key: str) -> bool:
        # ethtool's rule for a group line: on if any member is on.
        return any(name in self.active for name in self.members(key))

    def offload(self) -> dict[str, bool]:
        return {key: self.group_value(key) for key in FEATURE_NAMES}

    def describe(self, name: str) -> str:
        """One feature the way `ethtool -k` prints it: `tx-tcp-segmentation off [requested on]`."""
        text = f"{name} {_on_off(name in self.active)}"
        if name not in self.changeable:
            text += " [fixed]"
        elif (name in self.wanted) != (name in self.active):
            text += f" [requested {_on_off(name in self.wanted)}]"
        return text

    def describe_group(self, key: str) -> str:
        members = ", ".join(self.describe(name) for name in self.members(key))
        return f"{FEATURE_NAMES[key].ethtool_name} {_on_off(self.group_value(key))} ({members})"


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _where(netns_path: str | None) -> str:
    return "the host" if netns_path is None else f"namespace {netns_path}"


# -- the backend ---------------------------------------------------------------


class OffloadControl:
    """OffloadBackend on ethtool netlink. One socket per call, always closed.

    `socket_factory(netns_path, timeout)` returns a bound EthtoolSocket; tests
    may inject a fake.
    """

    def __init__(
        self,
        socket_factory: Callable[[str | None, float], EthtoolSocket] = open_ethtool_socket,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._socket_factory = socket_factory
        self._timeout = timeout

    def read(self, netns_path: str | None, ifname: str) -> dict[str, bool]:
        """All five keys as the kernel reports them now."""
        return self.features(netns_path, ifname).offload()

    def features(self, netns_path: str | None, ifname: str) -> KernelFeatures:
        """The interface's individual kernel features (what the keys are made of)."""
        action = f"reading offload features of {ifname} in {_where(netns_path)}"
        with self._ethtool(netns_path, action) as ethtool:
            return self._get(ethtool, netns_path, ifname, action)

    def apply(self, netns_path: str | None, ifname: str, offload: Offload) -> dict[str, bool]:
        """Set the keys that are not None; return all five as the kernel reports them after.

        All or nothing: a key the device does not let change raises before any
        change; a key the kernel overrides (a feature it depends on is off)
        raises after the wanted bits were put back as they were.
        """
        requested = offload.as_dict()
        where = _where(netns_path)
        summary = " ".join(f"{key}={_on_off(value)}" for key, value in requested.items())
        action = f"setting offload {summary or '(no change)'} on {ifname} in {where}"
        with self._ethtool(netns_path, action) as ethtool:
            before = self._get(ethtool, netns_path, ifname, action)
            if not requested:
                return before.offload()
            self._refuse_fixed(before, requested, action, ifname)
            wanted = {
                name: value
                for key, value in requested.items()
                for name in before.members(key)
                if name in before.changeable
                and ((name in before.wanted) != value or (name in before.active) != value)
            }
            if not wanted:
                return before.offload()
            ethtool.set_features(ifname, wanted)
            after = self._get(ethtool, netns_path, ifname, action)
            unmet = [key for key, value in requested.items() if not _met(after, before, key, value)]
            if unmet:
                # Put the wanted bits back so a refused request leaves the interface as it was.
                with suppress(NetlinkError, OSError):
                    ethtool.set_features(ifname, {name: name in before.wanted for name in wanted})
                raise self._refused(after, requested, unmet, action, ifname)
            return after.offload()

    # -- internals -----------------------------------------------------------

    @contextmanager
    def _ethtool(self, netns_path: str | None, action: str) -> Iterator[EthtoolSocket]:
        with netlink_action(action):
            ethtool = self._socket_factory(netns_path, self._timeout)
            try:
                yield ethtool
            finally:
                ethtool.close()

    @staticmethod
    def _get(
        ethtool: EthtoolSocket, netns_path: str | None, ifname: str, action: str
    ) -> KernelFeatures:
        try:
            return KernelFeatures.from_reply(ethtool.get_features(ifname))
        except NetlinkError as error:
            if error.code == errno.ENODEV:
                raise BackendError(
                    action, f"no interface {ifname} in {_where(netns_path)}"
                ) from error
            raise

    @staticmethod
    def _refuse_fixed(
        before: KernelFeatures, requested: Mapping[str, bool], action: str, ifname: str
    ) -> None:
        """Raise if a requested value cannot come out whatever is changed.

        A group ends up on if a fixed member is on, or if anything changeable
        is asked on; that is all a request can influence.
        """
        for key, value in requested.items():
            members = before.members(key)
            fixed_on = any(n in before.active and n not in before.changeable for n in members)
            can_be_on = fixed_on or any(n in before.changeable for n in members)
            possible = can_be_on if value else not fixed_on
            if not possible:
                raise BackendError(
                    action,
                    f"{key} cannot be set {_on_off(value)} on {ifname}: the kernel reports "
                    f"{before.describe_group(key)}",
                    "the device does not let this feature change",
                )

    @staticmethod
    def _refused(
        after: KernelFeatures,
        requested: Mapping[str, bool],
        unmet: list[str],
        action: str,
        ifname: str,
    ) -> BackendError:
        problems = [
            f"{key}={_on_off(requested[key])} refused by the kernel on {ifname}, "
            f"which reports {after.describe_group(key)}"
            for key in unmet
        ]
        hints = [_DEPENDENCY_HINTS[key] for key in unmet if key in _DEPENDENCY_HINTS]
        return BackendError(
            action,
            "; ".join(problems),
            "; ".join(hints) or "the kernel overrode the request; the interface is unchanged",
        )


def _met(after: KernelFeatures, before: KernelFeatures, key: str, value: bool) -> bool:
    """Every member a request could change has the value, and so has the group.

    Checking members, not only the group: after `tx off` the kernel keeps
    tx-tcp-segmentation off although wanted on, while tx-tcp-accecn-segmentation
    stays on and keeps the group reading "on".
    """
    changeable = [n for n in before.members(key) if n in before.changeable]
    return after.group_value(key) == value and all((n in after.active) == value for n in changeable)
