"""Real veths, a real Linux bridge and real iptables rules, between two namespaces.

Runs as root on a host where dockerd has set FORWARD's policy to DROP and
turned on bridge-nf-call-iptables: the setting that breaks naive lab bridges.
Every test ends by checking that the host is as clean as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from labctl.backends.base import AddressSpec, NodeHandle
from labctl.backends.firewall import Iptables
from labctl.backends.links import NetlinkLinks
from labctl.backends.linux_bridge import LinuxBridge
from labctl.core import names
from labctl.core.model import Switch
from labctl.errors import BackendError

if TYPE_CHECKING:
    from tests.integration.netns_fixtures import HostProbe

pytestmark = pytest.mark.integration
# Fixtures (lab, host, make_node, make_decoy, ...) live in a plugin module that
# other netlink tests share; loaded as a plugin so its asserts are rewritten.

SERVER = AddressSpec(addresses=("10.77.0.2/24", "fd00:77::2/64"), mac="02:00:00:77:00:02", mtu=1400)
CLIENT = AddressSpec(addresses=("10.77.0.3/24", "fd00:77::3/64"), mac="02:00:00:77:00:03")


@pytest.fixture
def links() -> NetlinkLinks:
    return NetlinkLinks()


@pytest.fixture
def switch_backend(links: NetlinkLinks) -> LinuxBridge:
    return LinuxBridge(firewall=Iptables(), netlink=links)


def wire(
    lab: str,
    links: NetlinkLinks,
    switch_backend: LinuxBridge,
    node: NodeHandle,
    port: str,
    spec: AddressSpec,
) -> str:
    """Node eth0 <-> switch port, the way the engine does it; returns the host veth."""
    host_ifname = names.host_veth_name(lab, port)
    links.ensure_veth_to_node(lab, host_ifname, node, "eth0", spec, role=f"{node.name}:eth0")
    switch_backend.ensure_port(lab, names.bridge_name(lab), port, host_ifname, Switch())
    return host_ifname


def test_bridge_carries_traffic_through_docker_forward_drop(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    switch_backend: LinuxBridge,
    make_node: Callable[..., NodeHandle],
    docker_forward_drop: None,
) -> None:
    before = host.snapshot()
    bridge = names.bridge_name(lab)
    switch_backend.check(Switch())
    result = switch_backend.ensure_switch(lab, bridge, Switch())
    # The client is like a Docker container: IPv6 off until labctl turns it on.
    server, client = make_node("server"), make_node("client", docker_like=True)
    server_veth = wire(lab, links, switch_backend, server, "p1", SERVER)
    client_veth = wire(lab, links, switch_backend, client, "p2", CLIENT)

    assert host.ping(client, "10.77.0.2")
    assert host.ping(server, "fd00:77::3")

    # Identity: aliases on everything, ports enslaved, node end configured.
    assert host.link_info(bridge)["ifalias"] == names.interface_alias(lab, "switch")
    assert host.link_info(server_veth)["ifalias"] == names.interface_alias(lab, "server:eth0")
    assert host.link_info(server_veth)["master"] == bridge
    assert host.link_info(client_veth)["master"] == bridge
    # The host takes no part in the lab: no IPv6 link-local chatter into captures.
    for host_side in (bridge, server_veth, client_veth):
        assert host.link_info(host_side)["inet6_addr_gen_mode"] == "none"
    server_eth0 = host.link_info("eth0", server.netns_path)
    assert (server_eth0["address"], server_eth0["mtu"]) == ("02:00:00:77:00:02", 1400)
    assert host.link_info(server_veth)["mtu"] == 1400  # both ends share the MTU
    # NODAD: the lab's IPv6 addresses are usable at once (only the link-local waits).
    global_v6 = [a for a in host.node_addresses(server, "eth0") if a["family"] == "inet6"]
    global_v6 = [a for a in global_v6 if a["scope"] == "global"]
    assert global_v6 and not any(a.get("tentative") for a in global_v6)

    # The rule is narrow: in and out of this bridge only, with the lab's comment.
    rules = host.firewall_rules(names.firewall_comment(lab))
    assert ("iptables", result["firewall"]["iptables"]) in {(b, c) for b, c, _ in rules}
    for _binary, _chain, spec in rules:
        assert spec[:4] == ["-i", bridge, "-o", bridge] and spec[-2:] == ["-j", "ACCEPT"]
    assert result["firewall"]["iptables"] == "DOCKER-USER"

    # And it is what makes the bridge work: without it FORWARD DROP wins.
    Iptables().remove_bridge_accept(lab, bridge)
    assert not host.ping(client, "10.77.0.2", timeout=1.5)
    switch_backend.ensure_switch(lab, bridge, Switch())
    assert host.ping(client, "10.77.0.2")

    for port, host_ifname in (("p1", server_veth), ("p2", client_veth)):
        switch_backend.remove_port(lab, bridge, port, host_ifname)
        assert "master" not in host.link_info(host_ifname)
        links.remove_link(lab, host_ifname)
    switch_backend.remove_switch(lab, bridge)
    assert host.link_info("eth0", server.netns_path) is None  # the peer went with the host end
    assert links.list_owned(lab) == [] and switch_backend.list_owned(lab) == []
    host.assert_clean(lab, before)


def test_ensure_twice_changes_nothing(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    switch_backend: LinuxBridge,
    make_node: Callable[..., NodeHandle],
) -> None:
    before = host.snapshot()
    bridge = names.bridge_name(lab)
    server = make_node("server")
    host_ifname = names.host_veth_name(lab, "p1")

    first = [
        switch_backend.ensure_switch(lab, bridge, Switch()),
        links.ensure_veth_to_node(lab, host_ifname, server, "eth0", SERVER, "server:eth0"),
        switch_backend.ensure_port(lab, bridge, "p1", host_ifname, Switch()),
    ]
    second = [
        switch_backend.ensure_switch(lab, bridge, Switch()),
        links.ensure_veth_to_node(lab, host_ifname, server, "eth0", SERVER, "server:eth0"),
        switch_backend.ensure_port(lab, bridge, "p1", host_ifname, Switch()),
    ]

    assert first == second
    assert len(host.node_addresses(server, "eth0")) == 3  # two addresses + the link-local
    families = [
        binary for binary, _chain, _spec in host.firewall_rules(names.firewall_comment(lab))
    ]
    assert sorted(families) == sorted(set(families))  # one rule per family, not two

    assert sorted(o.name for o in links.sweep(lab)) == [host_ifname]
    swept = switch_backend.sweep(lab)
    assert {o.kind for o in swept} == {"bridge", "iptables-rule"}
    assert links.sweep(lab) == [] and switch_backend.sweep(lab) == []
    host.assert_clean(lab, before)


def test_stp_setting_is_applied_and_reconciled(
    host: HostProbe, lab: str, switch_backend: LinuxBridge
) -> None:
    bridge = names.bridge_name(lab)
    with_stp = Switch.model_validate({"bridge": {"stp": True}})
    switch_backend.ensure_switch(lab, bridge, Switch())
    data = host.link_info(bridge)["linkinfo"]["info_data"]
    assert (data["stp_state"], data["forward_delay"]) == (0, 0)
    switch_backend.ensure_switch(lab, bridge, with_stp)
    data = host.link_info(bridge)["linkinfo"]["info_data"]
    assert data["stp_state"] != 0 and data["forward_delay"] == 200
    switch_backend.ensure_switch(lab, bridge, Switch())
    assert host.link_info(bridge)["linkinfo"]["info_data"]["stp_state"] == 0
    switch_backend.remove_switch(lab, bridge)
    assert host.link_info(bridge) is None


def test_foreign_interface_with_our_name_is_an_error_and_survives(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    switch_backend: LinuxBridge,
    make_node: Callable[..., NodeHandle],
    make_decoy: Callable[..., str],
) -> None:
    host_ifname = make_decoy(names.host_veth_name(lab, "p1"))
    bridge = make_decoy(names.bridge_name(lab))
    server = make_node("server")

    with pytest.raises(BackendError) as veth_error:
        links.ensure_veth_to_node(lab, host_ifname, server, "eth0", SERVER, "server:eth0")
    assert host_ifname in str(veth_error.value) and "ip link del" in str(veth_error.value)
    with pytest.raises(BackendError, match=bridge):
        switch_backend.ensure_switch(lab, bridge, Switch())

    links.remove_link(lab, host_ifname)
    switch_backend.remove_port(lab, bridge, "p1", host_ifname)
    switch_backend.remove_switch(lab, bridge)
    links.sweep(lab)
    switch_backend.sweep(lab)
    assert host.link_info(host_ifname) is not None and host.link_info(bridge) is not None
    assert host.link_info("eth0", server.netns_path) is None  # nothing half-made in the node


def test_sweep_spares_lookalikes(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    switch_backend: LinuxBridge,
    make_node: Callable[..., NodeHandle],
    make_decoy: Callable[..., str],
    make_foreign_rule: Callable[[str, str], None],
) -> None:
    bridge = names.bridge_name(lab)
    other_lab = f"{lab}x"  # its comment starts with ours: only an exact match may go
    no_alias = make_decoy(f"lc{names.lab_id(lab)}-zz")
    other_alias = make_decoy(f"lc{names.lab_id(lab)}-zy", names.interface_alias(other_lab, "x"))
    make_foreign_rule(bridge, names.firewall_comment(other_lab))
    make_foreign_rule(bridge, "labctl")
    server = make_node("server")
    switch_backend.ensure_switch(lab, bridge, Switch())
    wire(lab, links, switch_backend, server, "p1", SERVER)

    swept = {(o.kind, o.lab) for o in links.sweep(lab) + switch_backend.sweep(lab)}

    assert swept == {("link", lab), ("bridge", lab), ("iptables-rule", lab)}
    assert host.link_info(no_alias) is not None and host.link_info(other_alias) is not None
    assert len(host.firewall_rules(names.firewall_comment(other_lab))) == 1
    assert len(host.firewall_rules("labctl")) == 1
    assert host.link_info(bridge) is None and links.list_owned(lab) == []
    assert [o.name for o in links.list_owned(other_lab)] == [other_alias]
    assert [o.lab for o in switch_backend.list_owned(other_lab)] == [other_lab]


def test_node_to_node_veth(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    make_node: Callable[..., NodeHandle],
) -> None:
    before = host.snapshot()
    left, right = make_node("left"), make_node("right")
    a = (left, "eth1", AddressSpec(addresses=("10.78.0.1/30", "fd00:78::1/64"), mtu=1300))
    b = (right, "eth2", AddressSpec(addresses=("10.78.0.2/30", "fd00:78::2/64")))

    first = links.ensure_veth_between_nodes(lab, a, b, role="left-right")
    again = links.ensure_veth_between_nodes(lab, a, b, role="left-right")

    assert first == again
    assert host.ping(left, "10.78.0.2") and host.ping(right, "fd00:78::1")
    alias = names.interface_alias(lab, "left-right")
    left_end, right_end = (
        host.link_info("eth1", left.netns_path),
        host.link_info("eth2", right.netns_path),
    )
    assert left_end["ifalias"] == right_end["ifalias"] == alias
    assert left_end["mtu"] == right_end["mtu"] == 1300
    assert links.list_owned(lab) == []  # nothing of it is on the host
    host.assert_clean(lab, before)


def test_stale_host_veth_of_a_recreated_node_is_rebuilt(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    make_node: Callable[..., NodeHandle],
) -> None:
    host_ifname = names.host_veth_name(lab, "p1")
    old, new = make_node("server"), make_node("server")
    links.ensure_veth_to_node(lab, host_ifname, old, "eth0", SERVER, "server:eth0")

    result = links.ensure_veth_to_node(lab, host_ifname, new, "eth0", SERVER, "server:eth0")

    assert host.link_info("eth0", old.netns_path) is None
    assert host.link_info("eth0", new.netns_path)["ifindex"] == result["node_ifindex"]
    links.remove_link(lab, host_ifname)
    assert host.link_info(host_ifname) is None


def test_missing_node_is_a_backend_error(host: HostProbe, lab: str, links: NetlinkLinks) -> None:
    gone = NodeHandle(name="ghost", container_id="-", pid=2**22 + 7)
    with pytest.raises(BackendError, match="ghost"):
        links.ensure_veth_to_node(
            lab, names.host_veth_name(lab, "p1"), gone, "eth0", SERVER, "ghost:eth0"
        )
    assert host.link_info(names.host_veth_name(lab, "p1")) is None


def test_node_to_node_veth_resumes_after_an_interrupted_run(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    make_node: Callable[..., NodeHandle],
) -> None:
    left, right = make_node("left"), make_node("right")
    # What a run killed right after creating the pair leaves: each end in its node
    # under its final name, not yet labelled; nothing on the host.
    made = host.run(
        [
            "ip",
            "link",
            "add",
            "eth1",
            "netns",
            str(left.pid),
            "type",
            "veth",
            "peer",
            "name",
            "eth1",
            "netns",
            str(right.pid),
        ]
    )
    assert made.returncode == 0, made.stderr
    assert links.list_owned(lab) == []

    links.ensure_veth_between_nodes(
        lab,
        (left, "eth1", AddressSpec(addresses=("10.79.0.1/30",))),
        (right, "eth1", AddressSpec(addresses=("10.79.0.2/30",))),
        role="left-right",
    )

    assert host.ping(left, "10.79.0.2")
    alias = names.interface_alias(lab, "left-right")
    assert host.link_info("eth1", left.netns_path)["ifalias"] == alias
    assert host.link_info("eth1", right.netns_path)["ifalias"] == alias
    assert links.list_owned(lab) == []


def test_host_veth_resumes_after_a_run_killed_before_moving_it_out(
    host: HostProbe,
    lab: str,
    links: NetlinkLinks,
    make_node: Callable[..., NodeHandle],
) -> None:
    """The pair is born inside the node: a kill before its host end is labelled and moved
    out leaves nothing on the host, and the next run finishes the job."""
    before = host.snapshot()
    node = make_node("server")
    host_ifname = names.host_veth_name(lab, "p1")
    made = host.run(
        [
            "ip",
            "link",
            "add",
            host_ifname,
            "netns",
            str(node.pid),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            str(node.pid),
        ]
    )
    assert made.returncode == 0, made.stderr
    assert host.link_info(host_ifname) is None

    links.ensure_veth_to_node(lab, host_ifname, node, "eth0", SERVER, "server:eth0")

    assert host.link_info(host_ifname)["ifalias"] == names.interface_alias(lab, "server:eth0")
    assert host.link_info(host_ifname, node.netns_path) is None
    assert host.link_info("eth0", node.netns_path) is not None
    links.remove_link(lab, host_ifname)
    assert host.link_info("eth0", node.netns_path) is None
    host.assert_clean(lab, before)
