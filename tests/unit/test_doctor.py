"""Doctor: each requirement missing in turn, at the level of the check's inputs."""

from __future__ import annotations

import dataclasses

import pytest

from labctl.core.doctor import (
    HostFacts,
    blocking,
    evaluate,
    hugepage_problem,
    hugepages_mib,
    hugetlbfs_mounted,
    runnable,
    runnable_line,
    socket_mem_mib,
)
from labctl.core.model import RuntimeKind, SwitchKind

pytestmark = pytest.mark.unit

HEALTHY = HostFacts(
    is_root=True,
    docker_error=None,
    node_image="labctl-node:abc",
    tools={
        t: True
        for t in (
            "tcpdump",
            "nsenter",
            "iptables",
            "debootstrap",
            "ovsdb-server",
            "ovs-vswitchd",
            "ovsdb-tool",
            "busybox",
            "curl",
            "iperf3",
            "ping",
        )
    },
    kernel_modules={"veth": True, "bridge": True, "openvswitch": True},
    forward_policy="DROP",
    bridge_nf_call_iptables=True,
    docker_user_chain=True,
    ovs_schema=True,
    vswitchd_dpdk=True,
    dpdk_drivers={"net_af_packet": True, "mempool_ring": True},
    dpdk_abi="23",
    hugepages_free_mib=2048,
    hugepages_total_mib=2048,
    hugetlbfs_mounted=True,
    dpdk_socket_mem_mib=256,
    kernel="6.1.0",
)


def failing_names(facts: HostFacts, kind: SwitchKind | None) -> list[str]:
    return [c.name for c in blocking(evaluate(facts), kind)]


def test_healthy_host_runs_every_switch_kind() -> None:
    assert runnable(evaluate(HEALTHY)) == {k.value: True for k in SwitchKind}
    assert all(c.ok for c in evaluate(HEALTHY))


@pytest.mark.parametrize(
    ("change", "check", "kinds_blocked", "fix_mentions"),
    [
        ({"is_root": False}, "root", set(SwitchKind), "sudo"),
        ({"docker_error": "connection refused"}, "docker daemon", set(SwitchKind), "dockerd"),
        (
            {"kernel_modules": {"veth": False, "bridge": True, "openvswitch": True}},
            "kernel: veth",
            set(SwitchKind),
            "modprobe veth",
        ),
        (
            {"kernel_modules": {"veth": True, "bridge": False, "openvswitch": True}},
            "kernel: bridge",
            {SwitchKind.LINUX_BRIDGE},
            "modprobe bridge",
        ),
        (
            {"kernel_modules": {"veth": True, "bridge": True, "openvswitch": False}},
            "kernel: openvswitch",
            {SwitchKind.OVS_KERNEL},
            "--switch ovs-userspace",
        ),
        (
            {"tools": {**HEALTHY.tools, "tcpdump": False}},
            "tcpdump",
            set(SwitchKind),
            "apt-get install tcpdump",
        ),
        (
            {"tools": {**HEALTHY.tools, "iptables": False}},
            "iptables",
            {SwitchKind.LINUX_BRIDGE},
            "apt-get install iptables",
        ),
        (
            {"tools": {**HEALTHY.tools, "ovs-vswitchd": False}},
            "ovs tools",
            {SwitchKind.OVS_KERNEL, SwitchKind.OVS_USERSPACE, SwitchKind.OVS_DPDK},
            "openvswitch-switch-dpdk",
        ),
        (
            {"vswitchd_dpdk": False},
            "dpdk ovs-vswitchd",
            {SwitchKind.OVS_DPDK},
            "openvswitch-switch-dpdk",
        ),
        (
            {"dpdk_drivers": {"net_af_packet": False, "mempool_ring": True}},
            "dpdk driver net_af_packet",
            {SwitchKind.OVS_DPDK},
            "librte-net-af-packet23",
        ),
        (
            {"dpdk_drivers": {"net_af_packet": True, "mempool_ring": False}},
            "dpdk driver mempool_ring",
            {SwitchKind.OVS_DPDK},
            "librte-mempool-ring23",
        ),
        ({"hugepages_free_mib": 0}, "hugepages", {SwitchKind.OVS_DPDK}, "nr_hugepages"),
        ({"hugetlbfs_mounted": False}, "hugepages", {SwitchKind.OVS_DPDK}, "hugetlbfs"),
    ],
)
def test_each_missing_requirement_blocks_exactly_the_kinds_that_need_it(
    change: dict[str, object], check: str, kinds_blocked: set[SwitchKind], fix_mentions: str
) -> None:
    facts = dataclasses.replace(HEALTHY, **change)  # type: ignore[arg-type]
    results = {c.name: c for c in evaluate(facts)}
    assert not results[check].ok
    assert fix_mentions in (results[check].fix or "")
    for kind in SwitchKind:
        assert (check in failing_names(facts, kind)) == (kind in kinds_blocked), kind


def test_missing_image_is_a_warning_not_a_blocker() -> None:
    facts = dataclasses.replace(HEALTHY, node_image=None)
    image = next(c for c in evaluate(facts) if c.name == "node image")
    assert not image.ok and not image.required and image.fix == "labctl image build"
    assert runnable(evaluate(facts))["linux-bridge"]


def test_unknown_module_tree_assumes_built_in_but_not_openvswitch() -> None:
    facts = dataclasses.replace(HEALTHY, kernel_modules={})
    assert failing_names(facts, SwitchKind.LINUX_BRIDGE) == []
    assert failing_names(facts, SwitchKind.OVS_KERNEL) == ["kernel: openvswitch"]


def test_hugepages_need_the_socket_memory() -> None:
    assert hugepage_problem(256, True, 256) is None
    problem = hugepage_problem(128, True, 256)
    assert problem is not None
    assert problem[0] == "OVS-DPDK needs 256 MiB of free hugepages, 128 MiB are free"
    assert hugepage_problem(512, False, 256) == (
        "no hugetlbfs is mounted (OVS-DPDK needs one)",
        problem[1],
    )


def test_forward_drop_is_explained_not_blocking() -> None:
    forward = next(c for c in evaluate(HEALTHY) if c.name == "iptables forwarding")
    assert forward.ok and not forward.required
    assert "labctl adds an ACCEPT rule for its bridge in DOCKER-USER" in forward.detail


def test_netns_runtime_needs_no_docker_but_host_tools() -> None:
    no_docker = dataclasses.replace(
        HEALTHY,
        docker_error="no socket",
        node_image=None,
        tools={**HEALTHY.tools, "busybox": True, "curl": True},
    )
    assert failing_names(no_docker, SwitchKind.LINUX_BRIDGE) == ["docker daemon"]
    assert [
        c.name for c in blocking(evaluate(no_docker), SwitchKind.LINUX_BRIDGE, RuntimeKind.NETNS)
    ] == []
    no_busybox = dataclasses.replace(no_docker, tools={**no_docker.tools, "busybox": False})
    assert [c.name for c in blocking(evaluate(no_busybox), None, RuntimeKind.NETNS)] == ["busybox"]
    assert runnable(evaluate(no_busybox), RuntimeKind.DOCKER)["linux-bridge"] is False
    # Without ping or iperf3 a netns lab still runs: only a probe that needs one is refused
    # (by `up`, at the probe's line), so doctor warns and blocks nothing.
    no_ping = dataclasses.replace(no_docker, tools={**no_docker.tools, "ping": False})
    assert [c.name for c in blocking(evaluate(no_ping), None, RuntimeKind.NETNS)] == []
    ping = next(c for c in evaluate(no_ping) if c.name == "ping")
    assert (ping.ok, ping.required) == (False, False) and "iputils-ping" in (ping.fix or "")


def test_hugepage_facts_are_read_from_proc_text() -> None:
    meminfo = "MemTotal:  24000000 kB\nHugePages_Total:    1024\nHugePages_Free:      896\n"
    meminfo += "Hugepagesize:       2048 kB\n"
    assert hugepages_mib(meminfo) == (1792, 2048)
    assert hugepages_mib("") == (0, 0)
    assert hugetlbfs_mounted("nodev /dev/hugepages hugetlbfs rw,relatime 0 0\n")
    assert not hugetlbfs_mounted("proc /proc proc rw 0 0\n")
    assert socket_mem_mib("256,256") == 512
    assert socket_mem_mib("lots") == 0


def test_runnable_line_says_none_when_no_switch_kind_can_run() -> None:
    nothing = dataclasses.replace(HEALTHY, is_root=False, docker_error="no socket")
    can = runnable(evaluate(nothing))
    assert not any(can.values())
    assert runnable_line(can) == "switch kinds that can run here: none"
    assert runnable_line({"linux-bridge": True, "ovs-dpdk": False, "ovs-userspace": True}) == (
        "switch kinds that can run here: linux-bridge, ovs-userspace"
    )


def test_dpdk_driver_fix_names_the_installed_dpdks_package() -> None:
    ubuntu = dataclasses.replace(
        HEALTHY, dpdk_abi="24", dpdk_drivers={"net_af_packet": False, "mempool_ring": True}
    )
    (check,) = [c for c in evaluate(ubuntu) if c.name == "dpdk driver net_af_packet"]
    assert check.fix == "apt-get install librte-net-af-packet24"
