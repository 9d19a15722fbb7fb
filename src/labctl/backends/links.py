"""Links backend: veth pairs between the host, nodes and the switch, via netlink.

Every interface labctl creates in the host namespace carries the alias
`labctl lab=<lab> <role>` (IFLA_IFALIAS); removal and sweeps go by that alias,
never by a name pattern, so an interface someone else created with a similar
name is never touched.

Node namespaces are reached by path (`/proc/<pid>/ns/net`): a short-lived
thread enters the namespace and opens the netlink socket there (netns_thread),
so labctl's own threads never leave the host namespace, even if a request fails
half-way.
"""

from __future__ import annotations

import errno
import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkDumpInterrupted, NetlinkError
from pyroute2.netlink.rtnl.ifaddrmsg import IFA_F_NODAD

from labctl.backends import netns_thread
from labctl.backends.base import AddressSpec, NodeHandle, Owned
from labctl.core import names
from labctl.errors import BackendError

VETH = "veth"
BRIDGE = "bridge"
# Owned.kind for each interface kind labctl creates in the host namespace.
OWNED_KIND = {VETH: "link", BRIDGE: "bridge"}

_HINTS = {
    errno.EEXIST: "name clash: an interface with that name already exists (host or node)",
    errno.EPERM: "needs root or CAP_NET_ADMIN",
    errno.EACCES: "refused by the kernel (an IPv6 address where disable_ipv6=1?)",
    errno.ENODEV: "the interface disappeared meanwhile",
    errno.EOPNOTSUPP: "the kernel lacks the needed driver (veth or bridge module)",
}

ADDR_GEN_NONE = 1  # IN6_ADDR_GEN_MODE_NONE

# A netlink handle: IPRoute, on a socket of the host's or of a node's namespace.
Netlink = Any


def _open_node_netns(path: str) -> IPRoute:
    # A missing path means the node is gone (FileNotFoundError); nothing is ever created.
    fd = netns_thread.netlink_fd(path, netns_thread.NETLINK_ROUTE)
    try:
        return IPRoute(fileno=fd)
    except BaseException:
        os.close(fd)
        raise


@contextmanager
def netlink_action(action: str) -> Iterator[None]:
    """Turn pyroute2 / namespace errors into BackendError naming what labctl was doing."""
    try:
        yield
    except NetlinkDumpInterrupted as error:  # a NetlinkError: first
        raise BackendError(
            action,
            f"the kernel interrupted {DUMP_ATTEMPTS} dumps in a row (links kept changing)",
            "run it again when fewer labs are being built or torn down",
        ) from error
    except NetlinkError as error:
        raise BackendError(action, error, _HINTS.get(error.code)) from error
    except FileNotFoundError as error:
        raise BackendError(action, error, "the node's process is gone; is it running?") from error
    except OSError as error:
        raise BackendError(action, error, _HINTS.get(error.errno or 0)) from error


DUMP_ATTEMPTS = 10


def dump(request: Callable[[], Iterable[Any]]) -> list[Any]:
    """A netlink dump, asked again when the kernel flags it interrupted.

    The kernel sets NLM_F_DUMP_INTR when the table changed while it was being read;
    labs built side by side (matrix cells) change the host's links all the time, so
    such a dump is normal and its answer must not be used."""
    for _ in range(DUMP_ATTEMPTS - 1):
        try:
            return list(request())
        except NetlinkDumpInterrupted:
            continue
    return list(request())


def link_alias(link: Any) -> str | None:
    alias: str | None = link.get_attr("IFLA_IFALIAS")
    return alias


def link_kind(link: Any) -> str | None:
    info = link.get_attr("IFLA_LINKINFO")
    return info.get_attr("IFLA_INFO_KIND") if info is not None else None


def find_link(handle: Netlink, ifname: str) -> Any | None:
    """The link message of `ifname` in the handle's namespace, or None."""
    indexes = handle.link_lookup(ifname=ifname)
    return handle.get_links(indexes[0])[0] if indexes else None


def existing_link(handle: Netlink, ifname: str, where: str = "the host") -> Any:
    """Like find_link, for an interface that must be there: BackendError if not."""
    link = find_link(handle, ifname)
    if link is None:
        raise BackendError(f"looking up {ifname}", f"no interface {ifname} in {where}")
    return link


def clash_error(action: str, ifname: str, alias: str | None, expected: str) -> BackendError:
    """An interface is in the way of one labctl wants to create under the same name."""
    owner_lab = names.lab_of_alias(alias)
    if owner_lab is not None:
        hint = f"it belongs to labctl lab {owner_lab}: run `labctl down` for that lab"
    else:
        hint = f"it is not labctl's: rename or delete it (ip link del {ifname})"
    owner = f"alias {alias!r}" if alias else "no labctl alias"
    return BackendError(
        action, f"interface {ifname} already exists with {owner}, expected {expected!r}", hint
    )


def label_new_link(handle: Netlink, ifname: str, alias: str, where: str = "the host") -> Any:
    """Alias a link just created, or delete it: an unlabelled link would escape every sweep.

    The kernel ignores IFLA_IFALIAS in a create request, hence the second request.
    """
    link = existing_link(handle, ifname, where)
    try:
        handle.link("set", index=link["index"], ifalias=alias)
    except NetlinkError:
        handle.link("del", index=link["index"])
        raise
    return existing_link(handle, ifname, where)


def keep_host_out_of_lab(handle: Netlink, index: int) -> None:
    """No IPv6 link-local address on a host-side lab interface (call before it goes up).

    Otherwise the host sends router solicitations and MLD reports into the lab,
    and they show up in every capture as traffic nobody asked for.
    """
    if not os.path.isdir("/proc/sys/net/ipv6"):
        return
    handle.link(
        "set",
        index=index,
        af_spec={"attrs": [["AF_INET6", {"attrs": [["IFLA_INET6_ADDR_GEN_MODE", ADDR_GEN_NONE]]}]]},
    )


def enable_ipv6(node: NodeHandle, ifname: str) -> None:
    """Turn IPv6 on for one interface of a node.

    Docker starts containers without an IPv6 network with disable_ipv6=1 for
    all and default, so new interfaces inherit it and adding an IPv6 address
    fails with EACCES. No netlink message sets this, only /proc/sys, which
    shows the namespace of whoever opens it: a thread in the node's namespace.
    """
    # Slash form: interface names may contain dots, which sysctl reads as separators.
    key = f"net/ipv6/conf/{ifname}/disable_ipv6"
    try:
        netns_thread.write_sysctl(node.netns_path, key, "0")
    except OSError as error:
        raise BackendError(f"enabling IPv6 on {node.name}:{ifname}", error) from error


def _peers(a: Any, b: Any) -> bool:
    """True if two veth ends (each read in its own namespace) name each other as peer."""
    return bool(a.get_attr("IFLA_LINK") == b["index"] and b.get_attr("IFLA_LINK") == a["index"])


@contextmanager
def _netns_fd(path: str) -> Iterator[int]:
    # An open fd pins the namespace for the whole request, unlike a pid.
    fd = os.open(path, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def _split_address(address: str) -> tuple[str, int, int]:
    interface = ipaddress.ip_interface(address)
    return str(interface.ip), interface.network.prefixlen, interface.version


def _end_mtu(own: AddressSpec, other: AddressSpec) -> int | None:
    # Each end of a pair gets its own MTU, or the other end's when it asks for none. The
    # veth driver drops frames larger than the receiving end's MTU, so ends that differ
    # are what an MTU-mismatch lab asks for, and ends that match are the default.
    return own.mtu if own.mtu is not None else other.mtu


class NetlinkLinks:
    """LinkBackend on pyroute2. Handles are opened per call and always closed."""

    def __init__(
        self,
        host_factory: Callable[[], IPRoute] = IPRoute,
        netns_factory: Callable[[str], IPRoute] = _open_node_netns,
    ) -> None:
        self._host_factory = host_factory
        self._netns_factory = netns_factory

    # -- handles ----------------------------------------------------------

    @contextmanager
    def host(self) -> Iterator[Netlink]:
        """A netlink handle on the host namespace, closed on exit."""
        with self._host_factory() as handle:
            yield handle

    @contextmanager
    def node_netns(self, node: NodeHandle, action: str) -> Iterator[Netlink]:
        """A netlink handle inside a node's namespace, closed on exit."""
        with netlink_action(action):
            handle = self._netns_factory(node.netns_path)
        try:
            yield handle
        finally:
            handle.close()

    def owned_links(self, lab: str | None, kind: str) -> list[Owned]:
        """Host links of `kind` whose alias names `lab` (any lab if None)."""
        with netlink_action(f"listing {kind} interfaces"), self.host() as ipr:
            return [self._owned(link) for link in self._links_owned_by(ipr, lab, kind)]

    def sweep_kind(self, lab: str, kind: str) -> list[Owned]:
        """Delete every host link of `kind` whose alias names `lab`."""
        removed = []
        with netlink_action(f"sweeping {kind} interfaces of lab {lab}"), self.host() as ipr:
            for link in self._links_owned_by(ipr, lab, kind):
                if self._delete_tolerant(ipr, link["index"]):
                    removed.append(self._owned(link))
        return removed

    def remove_owned(self, lab: str, ifname: str, kind: str) -> bool:
        """Delete host link `ifname` if it is a `kind` owned by `lab`; True if deleted."""
        with netlink_action(f"removing {kind} {ifname} of lab {lab}"), self.host() as ipr:
            link = find_link(ipr, ifname)
            if link is None or link_kind(link) != kind:
                return False
            # Same name but not ours: ours is already gone, and theirs is not ours to delete.
            if names.lab_of_alias(link_alias(link)) != lab:
                return False
            return self._delete_tolerant(ipr, link["index"])

    # -- LinkBackend -------------------------------------------------------

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
        """veth `host_ifname` (host, up, aliased) <-> `node_ifname` (node, configured, up).

        The host end's MTU is `host_mtu` (the switch port's), else the node end's."""
        alias = names.interface_alias(lab, role)
        action = f"creating veth {host_ifname} for {node.name}:{node_ifname}"
        with netlink_action(action), self.host() as ipr:
            host_link = self._reusable_host_veth(ipr, host_ifname, node, node_ifname, alias, action)
            if host_link is None:
                self._create_pair_in_node(ipr, host_ifname, node, node_ifname, alias, action)
                host_link = existing_link(ipr, host_ifname)
                keep_host_out_of_lab(ipr, host_link["index"])
            host_index = host_link["index"]
            host_attrs: dict[str, Any] = {"state": "up"}
            if host_mtu is None:
                host_mtu = settings.mtu
            if host_mtu is not None:
                host_attrs["mtu"] = host_mtu
            ipr.link("set", index=host_index, **host_attrs)
        node_index = self._configure_node_end(node, node_ifname, settings, settings.mtu, action)
        return {
            "host_ifname": host_ifname,
            "host_ifindex": host_index,
            "node": node.name,
            "node_ifname": node_ifname,
            "node_ifindex": node_index,
            "alias": alias,
        }

    def ensure_veth_between_nodes(
        self,
        lab: str,
        a: tuple[NodeHandle, str, AddressSpec],
        b: tuple[NodeHandle, str, AddressSpec],
        role: str,
    ) -> dict[str, Any]:
        """veth between two nodes, born with each end in its node under its final name.

        The pair never exists in the host namespace: a labctl killed at any point
        leaves it only inside the nodes, whose removal takes it with them."""
        alias = names.interface_alias(lab, role)
        ends = (a, b)
        action = f"creating veth {a[0].name}:{a[1]} <-> {b[0].name}:{b[1]}"
        found = [self._node_end(end, alias, action) for end in ends]
        if found[0] is None and found[1] is None:
            with (
                netlink_action(action),
                self.host() as ipr,
                _netns_fd(a[0].netns_path) as fd_a,
                _netns_fd(b[0].netns_path) as fd_b,
            ):
                ipr.link(
                    "add",
                    ifname=a[1],
                    kind=VETH,
                    net_ns_fd=fd_a,
                    peer={"ifname": b[1], "net_ns_fd": fd_b},
                )
        elif found[0] is None or found[1] is None:
            # One end of a veth cannot exist without the other: a half-built pair
            # means someone deleted ours meanwhile; a rebuild must start clean.
            raise BackendError(
                action, "found only one end of the veth pair", "run `labctl down` and retry"
            )
        elif not _peers(found[0], found[1]):
            raise BackendError(
                action,
                f"{a[0].name}:{a[1]} and {b[0].name}:{b[1]} exist but are not one veth pair",
                "run `labctl down` and retry",
            )
        for (node, ifname, _spec), link in zip(ends, found, strict=True):
            if link is None or link_alias(link) is None:
                # New, or left unlabelled by a run killed right after creating it.
                with self.node_netns(node, action) as ns, netlink_action(action):
                    label_new_link(ns, ifname, alias, where=f"node {node.name}")
        result: dict[str, Any] = {"alias": alias}
        for key, (node, ifname, spec), other in zip(("a", "b"), ends, (b, a), strict=True):
            mtu = _end_mtu(spec, other[2])
            index = self._configure_node_end(node, ifname, spec, mtu, action)
            result[key] = {"node": node.name, "ifname": ifname, "ifindex": index}
        return result

    def ensure_veth_between_switches(
        self,
        lab: str,
        a: tuple[str, int | None],
        b: tuple[str, int | None],
        via: NodeHandle,
        role: str,
    ) -> dict[str, Any]:
        """veth `a` <-> `b`, both ends on the host (up, aliased, IPv6 off), for two switches.

        Born inside the node `via` and labelled there, then moved out, as a node's own veth
        (_create_pair_in_node): a labctl killed before the move leaves the pair in a node of
        the lab, which goes with the node."""
        alias = names.interface_alias(lab, role)
        (a_name, a_mtu), (b_name, b_mtu) = a, b
        action = f"creating veth {a_name} <-> {b_name} between switches"
        with netlink_action(action), self.host() as ipr:
            found = [find_link(ipr, name) for name in (a_name, b_name)]
            for link, name in zip(found, (a_name, b_name), strict=True):
                if link is not None and (link_alias(link) != alias or link_kind(link) != VETH):
                    raise clash_error(action, name, link_alias(link), alias)
            pair = found[0] is not None and found[1] is not None and _peers(found[0], found[1])
            if not pair:
                # Half a pair, or ends of two pairs: ours (the alias says so), rebuilt clean.
                for link in found:
                    if link is not None:
                        self._delete_tolerant(ipr, link["index"])
                self._create_pair_for_host(ipr, (a_name, b_name), via, alias, action)
            indexes = []
            for name, mtu in ((a_name, a_mtu), (b_name, b_mtu)):
                link = existing_link(ipr, name)
                keep_host_out_of_lab(ipr, link["index"])
                attrs: dict[str, Any] = {"state": "up"}
                if mtu is not None:
                    attrs["mtu"] = mtu
                ipr.link("set", index=link["index"], **attrs)
                indexes.append(link["index"])
        return {
            "a_ifname": a_name,
            "a_ifindex": indexes[0],
            "b_ifname": b_name,
            "b_ifindex": indexes[1],
            "alias": alias,
        }

    def _create_pair_for_host(
        self, ipr: Netlink, ends: tuple[str, str], via: NodeHandle, alias: str, action: str
    ) -> None:
        with self.node_netns(via, action) as ns, netlink_action(action):
            for name in ends:
                # Left in the node by a run killed before the move (the name carries this
                # lab's id, the node is this lab's): start again.
                link = find_link(ns, name)
                if link is not None:
                    if link_alias(link) not in (None, alias) or link_kind(link) != VETH:
                        raise clash_error(
                            f"{action} (in node {via.name})", name, link_alias(link), alias
                        )
                    self._delete_tolerant(ns, link["index"])
            with _netns_fd(via.netns_path) as ns_fd:
                ipr.link(
                    "add",
                    ifname=ends[0],
                    kind=VETH,
                    net_ns_fd=ns_fd,
                    peer={"ifname": ends[1], "net_ns_fd": ns_fd},
                )
            for name in ends:
                label_new_link(ns, name, alias, where=f"node {via.name}")
            for name in ends:
                link = existing_link(ns, name, where=f"node {via.name}")
                # As in _create_pair_in_node: the pid of this process names the host.
                ns.link("set", index=link["index"], net_ns_pid=os.getpid())

    def remove_link(self, lab: str, host_ifname: str) -> None:
        # Deleting one end of a veth deletes its peer inside the node too.
        self.remove_owned(lab, host_ifname, VETH)

    def sweep(self, lab: str) -> list[Owned]:
        return self.sweep_kind(lab, VETH)

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        return self.owned_links(lab, VETH)

    # -- internals ---------------------------------------------------------

    def _reusable_host_veth(
        self,
        ipr: Netlink,
        host_ifname: str,
        node: NodeHandle,
        node_ifname: str,
        alias: str,
        action: str,
    ) -> Any | None:
        """The existing host end if it is ours and still leads into `node`, else None.

        Ours but leading elsewhere (a node that was recreated) is deleted, so the
        caller builds it again: the alias proves this lab created it.
        """
        link = find_link(ipr, host_ifname)
        if link is None:
            return None
        if link_alias(link) != alias or link_kind(link) != VETH:
            raise clash_error(action, host_ifname, link_alias(link), alias)
        if self._peer_in_node(node, node_ifname, link["index"], action):
            return link
        self._delete_tolerant(ipr, link["index"])
        return None

    def _peer_in_node(
        self, node: NodeHandle, node_ifname: str, host_index: int, action: str
    ) -> bool:
        with self.node_netns(node, action) as ns:
            peer = find_link(ns, node_ifname)
        return peer is not None and peer.get_attr("IFLA_LINK") == host_index

    def _node_end(
        self, end: tuple[NodeHandle, str, AddressSpec], alias: str, action: str
    ) -> Any | None:
        """The end already in its node under its final name (a re-run), or None.

        Ours if it carries the pair's alias, or no alias at all as a veth: a run
        killed between creating the pair and labelling it (the pair is born inside
        the lab's own nodes, never on the host). Anything else is in the way."""
        node, ifname, _spec = end
        with self.node_netns(node, action) as ns:
            link = find_link(ns, ifname)
        if link is None:
            return None
        # The alias survives the move into the namespace, so it still proves ownership.
        if link_alias(link) not in (alias, None) or link_kind(link) != VETH:
            raise clash_error(f"{action} (in node {node.name})", ifname, link_alias(link), alias)
        return link

    def _create_pair_in_node(
        self,
        ipr: Netlink,
        host_ifname: str,
        node: NodeHandle,
        node_ifname: str,
        alias: str,
        action: str,
    ) -> None:
        """Create the veth with both ends in the node's namespace, label the host end
        there, then move it out into the host namespace.

        The kernel ignores IFLA_IFALIAS in a create request, so a link is unlabelled
        for a moment after it is born. Born on the host, a labctl killed in that moment
        (Ctrl-C, SIGKILL) would leave a link no sweep can prove is its own; born in the
        node, it goes with the node. The alias survives the move. The node end never
        exists on the host under node_ifname, where it could clash with host names.
        """
        with self.node_netns(node, action) as ns, netlink_action(action):
            link = find_link(ns, host_ifname)
            if link is not None and link_alias(link) not in (None, alias):
                raise clash_error(
                    f"{action} (in node {node.name})", host_ifname, link_alias(link), alias
                )
            if link is None:
                with _netns_fd(node.netns_path) as ns_fd:
                    ipr.link(
                        "add",
                        ifname=host_ifname,
                        kind=VETH,
                        net_ns_fd=ns_fd,
                        peer={"ifname": node_ifname, "net_ns_fd": ns_fd},
                    )
            # else: left in the node by a run killed before it moved this end out (the
            # name carries this lab's id, and the node is this lab's): finish the job.
            link = label_new_link(ns, host_ifname, alias, where=f"node {node.name}")
            # The handle's socket was opened inside the node (by a thread that entered
            # it); IFLA_NET_NS_PID names a process, and the kernel takes the namespace of
            # this process's main thread, which never leaves the host's.
            ns.link("set", index=link["index"], net_ns_pid=os.getpid())

    def _configure_node_end(
        self,
        node: NodeHandle,
        ifname: str,
        spec: AddressSpec,
        mtu: int | None,
        action: str,
    ) -> int:
        """Set MAC, MTU and addresses of the node end, bring it and lo up; its ifindex."""
        configuring = f"configuring {node.name}:{ifname}"
        with self.node_netns(node, action) as ns, netlink_action(configuring):
            link = existing_link(ns, ifname, where=f"node {node.name}")
            index: int = link["index"]
            attrs: dict[str, Any] = {}
            if spec.mac and link.get_attr("IFLA_ADDRESS") != spec.mac.lower():
                attrs["address"] = spec.mac
            if mtu is not None and link.get_attr("IFLA_MTU") != mtu:
                attrs["mtu"] = mtu
            if attrs:
                ns.link("set", index=index, **attrs)
            if any(_split_address(address)[2] == 6 for address in spec.addresses):
                enable_ipv6(node, ifname)
            self._add_addresses(ns, index, spec.addresses)
            ns.link("set", index=index, state="up")
            loopback = find_link(ns, "lo")
            if loopback is not None:
                ns.link("set", index=loopback["index"], state="up")
            return index

    @staticmethod
    def _add_addresses(ns: Netlink, index: int, addresses: tuple[str, ...]) -> None:
        present = {
            (addr.get_attr("IFA_ADDRESS"), addr["prefixlen"])
            for addr in dump(lambda: ns.get_addr(index=index))
        }
        for address in addresses:
            ip, prefixlen, version = _split_address(address)
            if (ip, prefixlen) in present:
                continue
            extra: dict[str, Any] = {}
            if version == 6:
                # Without NODAD the address stays "tentative" for about a second
                # and the first packets of a test are sent from nowhere.
                extra["flags"] = IFA_F_NODAD
            ns.addr("add", index=index, address=ip, prefixlen=prefixlen, **extra)

    @staticmethod
    def _links_owned_by(ipr: Netlink, lab: str | None, kind: str) -> list[Any]:
        owned = []
        for link in dump(ipr.get_links):
            owner = names.lab_of_alias(link_alias(link))
            if owner is None or link_kind(link) != kind:
                continue
            if lab is None or owner == lab:
                owned.append(link)
        return owned

    @staticmethod
    def _delete_tolerant(ipr: Netlink, index: int) -> bool:
        try:
            ipr.link("del", index=index)
        except NetlinkError as error:
            # Deleting one end of a veth takes its peer with it: a later ENODEV is success.
            if error.code == errno.ENODEV:
                return False
            raise
        return True

    @staticmethod
    def _owned(link: Any) -> Owned:
        alias = link_alias(link)
        return Owned(
            kind=OWNED_KIND.get(link_kind(link) or "", "link"),
            name=link.get_attr("IFLA_IFNAME"),
            lab=names.lab_of_alias(alias) or "",
            details={"ifindex": link["index"], "alias": alias},
        )
