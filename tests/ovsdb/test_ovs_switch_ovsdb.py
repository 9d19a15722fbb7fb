"""OvsSwitch and OvsDaemons against a private ovsdb-server/ovs-vswitchd (dummy datapath)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.backends.ovs import ExternalOvs, OvsDaemons, OvsPaths, OvsSwitch, make_ovs_switch, ovsdb
from labctl.backends.ovs.daemons import DaemonNeeds
from labctl.backends.ovs.switch import EXTERNAL_ID_PORT
from labctl.core import names
from labctl.core.model import DpdkOptions, PortOptions, Switch, SwitchKind
from labctl.errors import BackendError, PrerequisiteError
from tests.ovsdb.private_ovs import DUMMY_ARGS, PrivateOvs, pid_running

pytestmark = pytest.mark.ovsdb

LAB = "alpha"
OTHER_LAB = "beta"
USERSPACE = Switch(kind=SwitchKind.OVS_USERSPACE)
DPDK = Switch(kind=SwitchKind.OVS_DPDK)


def no_link(ifname: str) -> None:
    """Dummy ports need no host interface."""


def switch_for(ovs: PrivateOvs, kind: SwitchKind = SwitchKind.OVS_USERSPACE) -> OvsSwitch:
    return OvsSwitch(kind, ExternalOvs(ovs.connection), link_up=no_link, port_timeout=10)


def rows(ovs: PrivateOvs, table: str) -> dict[str, dict[str, Any]]:
    with ovsdb.session(ovs.connection) as api:
        return {row["name"]: row for row in api.db_list(table).execute(check_error=True)}


def add_foreign_bridge(ovs: PrivateOvs, name: str, external_ids: dict[str, str] | None = None):
    with ovsdb.session(ovs.connection) as api, api.transaction(check_error=True) as txn:
        txn.add(api.add_br(name, datapath_type="netdev"))
        if external_ids:
            txn.add(api.db_set("Bridge", name, ("external_ids", external_ids)))


def test_ensure_switch_and_port_are_idempotent_and_labelled(private_ovs: PrivateOvs) -> None:
    switch = switch_for(private_ovs)
    bridge = names.bridge_name(LAB)
    first = switch.ensure_switch(LAB, bridge, USERSPACE)
    again = switch.ensure_switch(LAB, bridge, USERSPACE)
    assert first["uuid"] == again["uuid"]
    assert first["datapath_type"] == "netdev"

    host_veth = names.host_veth_name(LAB, "p1")
    port = switch.ensure_port(LAB, bridge, "p1", host_veth, USERSPACE)
    assert port == switch.ensure_port(LAB, bridge, "p1", host_veth, USERSPACE)
    assert port["ofport"] > 0 and port["type"] == ""

    bridge_row = rows(private_ovs, "Bridge")[bridge]
    assert bridge_row["datapath_type"] == "netdev"
    assert bridge_row["fail_mode"] == ["standalone"] or bridge_row["fail_mode"] == "standalone"
    assert bridge_row["external_ids"] == {names.EXTERNAL_ID_LAB: LAB}
    for table in ("Port", "Interface"):
        table_rows = rows(private_ovs, table)
        assert table_rows[host_veth]["external_ids"] == {
            names.EXTERNAL_ID_LAB: LAB,
            EXTERNAL_ID_PORT: "p1",
        }
        assert table_rows[bridge]["external_ids"] == {names.EXTERNAL_ID_LAB: LAB}

    for _ in range(2):
        switch.remove_port(LAB, bridge, "p1", host_veth)
        assert host_veth not in rows(private_ovs, "Port")
    for _ in range(2):
        switch.remove_switch(LAB, bridge)
        assert rows(private_ovs, "Bridge") == {}


def test_remove_of_nothing_is_fine(private_ovs: PrivateOvs) -> None:
    switch = switch_for(private_ovs)
    switch.remove_port(LAB, "lcnone-br", "p1", "lcnone-p1")
    switch.remove_switch(LAB, "lcnone-br")
    assert switch.sweep(LAB) == []


def test_fail_mode_secure_is_applied(private_ovs: PrivateOvs) -> None:
    secure = Switch(kind=SwitchKind.OVS_USERSPACE, ovs={"fail_mode": "secure"})
    switch_for(private_ovs).ensure_switch(LAB, "lc-secure", secure)
    assert rows(private_ovs, "Bridge")["lc-secure"]["fail_mode"] in ("secure", ["secure"])


class _FailingSwitch(OvsSwitch):
    """Adds a command that fails after the bridge, port and interface rows are inserted."""

    def _bridge_commands(self, api, bridge, switch, ids):  # type: ignore[no-untyped-def]
        commands = super()._bridge_commands(api, bridge, switch, ids)
        return [
            *commands,
            api.db_set("Bridge", "no-such-bridge", ("fail_mode", "secure"), if_exists=False),
        ]


def test_failed_transaction_leaves_no_half_bridge(private_ovs: PrivateOvs) -> None:
    switch = _FailingSwitch(SwitchKind.OVS_USERSPACE, ExternalOvs(private_ovs.connection))
    with pytest.raises(BackendError, match="creating OVS bridge lc-half"):
        switch.ensure_switch(LAB, "lc-half", USERSPACE)
    assert rows(private_ovs, "Bridge") == {}
    assert rows(private_ovs, "Port") == {}
    assert rows(private_ovs, "Interface") == {}


def test_port_error_is_reported_and_rolled_back(private_ovs: PrivateOvs) -> None:
    # The non-DPDK vswitchd has no "dpdk" netdev type: vswitchd fills Interface.error.
    switch = switch_for(private_ovs, SwitchKind.OVS_DPDK)
    bridge = names.bridge_name(LAB)
    switch.ensure_switch(LAB, bridge, DPDK)
    with pytest.raises(BackendError, match="Interface error: .*") as raised:
        switch.ensure_port(LAB, bridge, "p1", names.host_veth_name(LAB, "p1"), DPDK)
    assert names.dpdk_port_name(LAB, "p1") in str(raised.value)
    assert set(rows(private_ovs, "Port")) == {bridge}
    assert set(rows(private_ovs, "Interface")) == {bridge}


def test_dpdk_devargs_are_unique_and_keep_the_qdisc(private_ovs: PrivateOvs) -> None:
    switch = switch_for(private_ovs, SwitchKind.OVS_DPDK)
    port_name = names.dpdk_port_name(LAB, "p1")
    with ovsdb.session(private_ovs.connection) as api:
        first = switch._devargs(api, DPDK, port_name, "lcveth1")
        assert first.endswith(",iface=lcveth1,qdisc_bypass=0")
        vdev = first.split(",")[0]
        # Someone else's interface already uses that vdev name.
        with api.transaction(check_error=True) as txn:
            txn.add(api.add_br("foreign", datapath_type="netdev"))
            txn.add(api.add_port("foreign", "f1", options={"dpdk-devargs": f"{vdev},iface=x"}))
        second = switch._devargs(api, DPDK, port_name, "lcveth1")
    assert second.split(",")[0] != vdev
    assert second.startswith("net_af_packet")


def test_bridge_of_someone_else_is_never_taken_over(private_ovs: PrivateOvs) -> None:
    add_foreign_bridge(private_ovs, "br-theirs")
    switch = switch_for(private_ovs)
    with pytest.raises(BackendError, match="belongs to not labctl"):
        switch.ensure_switch(LAB, "br-theirs", USERSPACE)
    switch.remove_switch(LAB, "br-theirs")
    switch.remove_port(LAB, "br-theirs", "p1", "br-theirs")
    assert "br-theirs" in rows(private_ovs, "Bridge")


def test_sweep_removes_only_this_labs_rows(private_ovs: PrivateOvs) -> None:
    add_foreign_bridge(private_ovs, "br-theirs")
    add_foreign_bridge(private_ovs, "br-tagged", {"owner": "someone"})
    switch = switch_for(private_ovs)
    ours, theirs = names.bridge_name(LAB), names.bridge_name(OTHER_LAB)
    switch.ensure_switch(LAB, ours, USERSPACE)
    switch.ensure_port(LAB, ours, "p1", names.host_veth_name(LAB, "p1"), USERSPACE)
    switch.ensure_switch(OTHER_LAB, theirs, USERSPACE)
    switch.ensure_port(OTHER_LAB, theirs, "p1", names.host_veth_name(OTHER_LAB, "p1"), USERSPACE)

    owned = {(o.kind, o.name, o.lab) for o in switch.list_owned()}
    assert owned == {
        ("ovs-bridge", ours, LAB),
        ("ovs-port", names.host_veth_name(LAB, "p1"), LAB),
        ("ovs-bridge", theirs, OTHER_LAB),
        ("ovs-port", names.host_veth_name(OTHER_LAB, "p1"), OTHER_LAB),
    }
    assert {o.lab for o in switch.list_owned(LAB)} == {LAB}

    swept = switch.sweep(LAB)
    assert {(o.kind, o.name) for o in swept} == {
        ("ovs-bridge", ours),
        ("ovs-port", names.host_veth_name(LAB, "p1")),
    }
    assert set(rows(private_ovs, "Bridge")) == {"br-theirs", "br-tagged", theirs}
    assert switch.sweep(LAB) == []
    assert {o.lab for o in switch.list_owned()} == {OTHER_LAB}


def test_ovs_kernel_check_names_the_missing_module(private_ovs: PrivateOvs) -> None:
    switch = OvsSwitch(
        SwitchKind.OVS_KERNEL,
        ExternalOvs(private_ovs.connection),
        kernel_module_available=lambda: False,
    )
    with pytest.raises(PrerequisiteError, match="openvswitch kernel module is missing") as err:
        switch.ensure_switch(LAB, "lc-kernel", Switch(kind=SwitchKind.OVS_KERNEL))
    assert "ovs-userspace" in err.value.fix and "ovs-dpdk" in err.value.fix
    assert rows(private_ovs, "Bridge") == {}


# -- OvsDaemons: our own daemons, started and stopped by labctl ---------------------


def own_daemons(tmp: Path, system: PrivateOvs | None = None, **kwargs: Any) -> OvsDaemons:
    return OvsDaemons(
        OvsPaths(run_dir=tmp / "run", log_dir=tmp / "log"),
        system_socket=system.socket if system else tmp / "no-system.sock",
        vswitchd_extra_args=DUMMY_ARGS,
        timeout=15,
        **kwargs,
    )


def test_own_daemons_start_once_and_stop_with_the_last_bridge(short_tmp: Path) -> None:
    daemons = own_daemons(short_tmp)
    alpha = make_ovs_switch("ovs-userspace", daemons, link_up=no_link)
    beta = make_ovs_switch(SwitchKind.OVS_USERSPACE, daemons, link_up=no_link)
    try:
        alpha.ensure_switch(LAB, "lc-a", USERSPACE)
        state = json.loads(daemons.paths.state_file.read_text())
        pids = [state["ovsdb_server"]["pid"], state["ovs_vswitchd"]["pid"]]
        assert all(pid_running(pid) for pid in pids)
        assert state["labs"] == [LAB]
        assert (short_tmp / "log" / "ovs-vswitchd.log").exists()

        beta.ensure_switch(OTHER_LAB, "lc-b", USERSPACE)
        state = json.loads(daemons.paths.state_file.read_text())
        assert [state["ovsdb_server"]["pid"], state["ovs_vswitchd"]["pid"]] == pids
        assert state["labs"] == [LAB, OTHER_LAB]
        assert {o.lab for o in alpha.list_owned() if o.kind == "daemon"} == {LAB, OTHER_LAB}

        alpha.ensure_port(LAB, "lc-a", "p1", "lc-a-p1", USERSPACE)
        alpha.remove_switch(LAB, "lc-a")
        assert all(pid_running(pid) for pid in pids), "beta still uses the daemons"

        swept = beta.sweep(OTHER_LAB)
        assert ("ovs-bridge", "lc-b") in {(o.kind, o.name) for o in swept}
        assert {o.name for o in swept if o.kind == "daemon"} == {"ovs-vswitchd", "ovsdb-server"}
        assert not any(pid_running(pid) for pid in pids)
        assert not daemons.paths.state_file.exists()
        assert daemons.current() is None
        assert alpha.sweep(LAB) == []
    finally:
        daemons.release(LAB)
        daemons.release(OTHER_LAB)


def test_a_daemon_we_did_not_start_is_used_and_never_stopped(
    private_ovs: PrivateOvs, short_tmp: Path
) -> None:
    daemons = own_daemons(short_tmp, system=private_ovs)
    switch = make_ovs_switch("ovs-userspace", daemons, link_up=no_link)
    details = switch.ensure_switch(LAB, "lc-a", USERSPACE)
    assert details["endpoint"]["managed"] is False
    assert details["endpoint"]["connection"] == private_ovs.connection
    switch.ensure_port(LAB, "lc-a", "p1", "lc-a-p1", USERSPACE)
    switch.remove_switch(LAB, "lc-a")
    assert switch.sweep(LAB) == []
    assert pid_running(private_ovs.pid("ovs-vswitchd"))
    assert pid_running(private_ovs.pid("ovsdb-server"))
    assert not daemons.paths.state_file.exists()


def test_system_ovs_without_dpdk_is_not_reconfigured(
    private_ovs: PrivateOvs, short_tmp: Path
) -> None:
    daemons = own_daemons(short_tmp, system=private_ovs)
    with pytest.raises(PrerequisiteError, match="has not initialised DPDK"):
        daemons.ensure(LAB, DaemonNeeds(dpdk=DpdkOptions()))
    with ovsdb.session(private_ovs.connection) as api:
        config = api.db_get("Open_vSwitch", ".", "other_config").execute(check_error=True)
    assert "dpdk-init" not in config


def fake_host(tmp: Path, free_pages: int, mounted: bool) -> dict[str, Any]:
    meminfo = tmp / "meminfo"
    meminfo.write_text(
        f"HugePages_Total: {free_pages}\nHugePages_Free: {free_pages}\nHugepagesize: 2048 kB\n"
    )
    mounts = tmp / "mounts"
    mounts.write_text("nodev /dev/hugepages hugetlbfs rw 0 0\n" if mounted else "")
    for plugin in ("net_af_packet", "mempool_ring"):
        (tmp / f"librte_{plugin}.so.23").write_text("")
    return {"meminfo": meminfo, "mounts": mounts, "pmd_glob": str(tmp / "librte_{plugin}.so*")}


@pytest.mark.parametrize(
    ("free_pages", "mounted", "message"),
    [(0, True, "needs 256 MiB of free hugepages, 0 MiB are free"), (512, False, "no hugetlbfs")],
)
def test_dpdk_hugepage_prerequisites(
    short_tmp: Path, free_pages: int, mounted: bool, message: str
) -> None:
    daemons = own_daemons(short_tmp, **fake_host(short_tmp, free_pages, mounted))
    with pytest.raises(PrerequisiteError, match=message) as err:
        daemons.check(DaemonNeeds(dpdk=DpdkOptions()))
    assert "nr_hugepages" in err.value.fix and "provision.sh" in err.value.fix


@pytest.mark.parametrize("abi", ["23", "24"])  # Debian 12's DPDK 22.11, Ubuntu 24.04's 23.11
def test_missing_dpdk_driver_names_the_package_of_the_installed_dpdk(
    short_tmp: Path, abi: str
) -> None:
    daemons = own_daemons(short_tmp, pmd_glob=str(short_tmp / "none-{plugin}"), dpdk_abi=abi)
    with pytest.raises(PrerequisiteError, match="net_af_xdp") as err:
        daemons.check(DaemonNeeds(dpdk=DpdkOptions(port_driver="af_xdp")))
    assert err.value.fix == f"apt-get install librte-net-af-xdp{abi}"


def test_wrong_build_in_use_is_not_restarted(short_tmp: Path) -> None:
    daemons = own_daemons(short_tmp, **fake_host(short_tmp, 512, True))
    try:
        endpoint = daemons.ensure(LAB, DaemonNeeds())
        assert endpoint.managed and not endpoint.dpdk
        pid = json.loads(daemons.paths.state_file.read_text())["ovs_vswitchd"]["pid"]
        with pytest.raises(PrerequisiteError, match="not the DPDK build and is still used"):
            daemons.ensure(OTHER_LAB, DaemonNeeds(dpdk=DpdkOptions()))
        assert pid_running(pid)
        assert json.loads(daemons.paths.state_file.read_text())["labs"] == [LAB]
    finally:
        daemons.release(LAB)
    assert not pid_running(pid)


def test_unused_daemon_with_other_startup_settings_is_restarted(short_tmp: Path) -> None:
    daemons = own_daemons(short_tmp)
    try:
        daemons.ensure(LAB, DaemonNeeds())
        before = json.loads(daemons.paths.state_file.read_text())
        daemons.ensure(LAB, DaemonNeeds(other_config=(("userspace-tso-enable", "true"),)))
        after = json.loads(daemons.paths.state_file.read_text())
        assert after["ovsdb_server"]["pid"] == before["ovsdb_server"]["pid"]
        assert after["ovs_vswitchd"]["pid"] != before["ovs_vswitchd"]["pid"]
        assert not pid_running(before["ovs_vswitchd"]["pid"])
        with ovsdb.session(daemons.own_connection) as api:
            config = api.db_get("Open_vSwitch", ".", "other_config").execute(check_error=True)
        assert config["userspace-tso-enable"] == "true"
    finally:
        daemons.release(LAB)
    assert daemons.current() is None


def test_port_options_become_vlan_and_mtu_columns(private_ovs: PrivateOvs) -> None:
    """Each port's VLAN settings land in its Port row and its MTU in mtu_request, when the
    port is added and again when a re-run finds it (options changed meanwhile)."""
    switch = switch_for(private_ovs)
    bridge = names.bridge_name(LAB)
    switch.ensure_switch(LAB, bridge, USERSPACE)
    access, trunk, both = (names.host_veth_name(LAB, p) for p in ("pa", "pt", "pn"))
    switch.ensure_port(LAB, bridge, "pa", access, USERSPACE, PortOptions(vlan=10, mtu=9000))
    switch.ensure_port(LAB, bridge, "pt", trunk, USERSPACE, PortOptions(trunks=[30, 20]))
    switch.ensure_port(LAB, bridge, "pn", both, USERSPACE, PortOptions(vlan=10, trunks=[20]))
    ports, interfaces = rows(private_ovs, "Port"), rows(private_ovs, "Interface")
    assert (ports[access]["tag"], ports[access]["vlan_mode"]) == (10, "access")
    assert interfaces[access]["mtu_request"] == 9000
    assert (ports[trunk]["trunks"], ports[trunk]["vlan_mode"]) == ([20, 30], "trunk")
    assert ports[trunk]["tag"] == []
    assert (ports[both]["tag"], ports[both]["trunks"]) == (10, [10, 20])
    assert ports[both]["vlan_mode"] == "native-untagged"
    # A re-run with other options updates the existing port.
    switch.ensure_port(LAB, bridge, "pa", access, USERSPACE, PortOptions(vlan=11))
    assert rows(private_ovs, "Port")[access]["tag"] == 11
    switch.remove_switch(LAB, bridge)


def test_dpdk_af_packet_port_above_mtu_1500_is_refused_before_ovsdb(
    private_ovs: PrivateOvs,
) -> None:
    switch = switch_for(private_ovs, SwitchKind.OVS_DPDK)
    with pytest.raises(PrerequisiteError, match="refuses any MTU above 1500"):
        switch.ensure_port(
            LAB, "nobridge", "p1", names.host_veth_name(LAB, "p1"), DPDK, PortOptions(mtu=9000)
        )
    assert rows(private_ovs, "Port") == {}


def test_patch_ports_join_two_bridges_idempotently_and_go_with_sweep(
    private_ovs: PrivateOvs,
) -> None:
    from labctl.core.plan import PatchEnd

    switch = switch_for(private_ovs)
    sw1, sw2 = names.bridge_name(LAB, "sw1"), names.bridge_name(LAB, "sw2")
    for bridge in (sw1, sw2):
        switch.ensure_switch(LAB, bridge, USERSPACE)
    a = PatchEnd(sw1, "up", names.host_veth_name(LAB, "up"), USERSPACE, PortOptions(vlan=7))
    b = PatchEnd(sw2, "down", names.host_veth_name(LAB, "down"), USERSPACE)
    made = switch.ensure_patch(LAB, a, b)
    assert made == switch.ensure_patch(LAB, a, b)
    assert made["up"]["ofport"] > 0 and made["down"]["ofport"] > 0
    interfaces = rows(private_ovs, "Interface")
    assert interfaces[a.ovs_port]["type"] == "patch"
    assert interfaces[a.ovs_port]["options"] == {"peer": b.ovs_port}
    assert interfaces[b.ovs_port]["options"] == {"peer": a.ovs_port}
    ports = rows(private_ovs, "Port")
    assert ports[a.ovs_port]["external_ids"] == {
        names.EXTERNAL_ID_LAB: LAB,
        EXTERNAL_ID_PORT: "up",
    }
    assert ports[a.ovs_port]["tag"] == 7
    switch.remove_patch(LAB, a, b)
    switch.remove_patch(LAB, a, b)  # tolerates absence
    assert not {a.ovs_port, b.ovs_port} & set(rows(private_ovs, "Port"))
    switch.ensure_patch(LAB, a, b)
    swept = {o.name for o in switch.sweep(LAB)}
    assert {sw1, sw2} <= swept
    assert not {a.ovs_port, b.ovs_port, sw1, sw2} & set(rows(private_ovs, "Port"))


def test_switches_with_other_other_config_never_share_our_vswitchd(short_tmp: Path) -> None:
    """Through the switch backend, as a lab builds it: a second lab whose other_config
    differs is refused while the first uses the daemon (nothing of the first changes);
    once the first is gone the daemon restarts with the second's settings, and the keys
    the first set are gone from the database."""
    daemons = own_daemons(short_tmp)
    alpha = make_ovs_switch("ovs-userspace", daemons, link_up=no_link)
    beta = make_ovs_switch("ovs-userspace", daemons, link_up=no_link)
    tso = Switch.model_validate(
        {"kind": "ovs-userspace", "ovs": {"other_config": {"userspace-tso-enable": "true"}}}
    )
    idle = Switch.model_validate(
        {"kind": "ovs-userspace", "ovs": {"other_config": {"max-idle": "2000"}}}
    )

    def other_config() -> dict[str, str]:
        with ovsdb.session(daemons.own_connection) as api:
            return dict(api.db_get("Open_vSwitch", ".", "other_config").execute(check_error=True))

    try:
        alpha.ensure_switch(LAB, "lc-a", tso)
        pid = json.loads(daemons.paths.state_file.read_text())["ovs_vswitchd"]["pid"]
        assert other_config()["userspace-tso-enable"] == "true"
        # The same settings written otherwise share the daemon.
        alpha.ensure_switch(
            OTHER_LAB,
            "lc-b",
            tso.model_copy(
                update={
                    "ovs": tso.ovs.model_copy(update={"other_config": {}, "userspace_tso": True})
                }
            ),
        )
        alpha.remove_switch(OTHER_LAB, "lc-b")
        with pytest.raises(PrerequisiteError, match="max-idle=2000") as refused:
            beta.ensure_switch(OTHER_LAB, "lc-b", idle)
        assert "userspace-tso-enable=true" in str(refused.value)
        assert pid_running(pid) and other_config()["userspace-tso-enable"] == "true"
        alpha.remove_switch(LAB, "lc-a")
        beta.ensure_switch(OTHER_LAB, "lc-b", idle)
        after = json.loads(daemons.paths.state_file.read_text())["ovs_vswitchd"]["pid"]
        assert after != pid and not pid_running(pid)
        config = other_config()
        assert config["max-idle"] == "2000" and "userspace-tso-enable" not in config
        beta.remove_switch(OTHER_LAB, "lc-b")
    finally:
        daemons.release(LAB)
        daemons.release(OTHER_LAB)
    assert daemons.current() is None


def test_system_ovs_with_other_settings_is_refused_not_reconfigured(
    private_ovs: PrivateOvs, short_tmp: Path
) -> None:
    daemons = own_daemons(short_tmp, system=private_ovs)
    needs = DaemonNeeds(other_config=(("max-idle", "2000"),))
    with pytest.raises(
        PrerequisiteError, match="max-idle at OVS's default, the lab needs max-idle=2000"
    ):
        daemons.ensure(LAB, needs)
    with ovsdb.session(private_ovs.connection) as api:
        config = api.db_get("Open_vSwitch", ".", "other_config").execute(check_error=True)
    assert "max-idle" not in config


def test_system_ovs_must_run_what_the_lab_names_even_at_the_default(
    private_ovs: PrivateOvs, short_tmp: Path
) -> None:
    """A system OVS with userspace TSO on: a lab that names userspace-tso-enable=false is
    refused (it would run with TSO while its report says off); a lab that does not name
    the key runs, with a warning."""
    daemons = own_daemons(short_tmp, system=private_ovs)
    with ovsdb.session(private_ovs.connection) as api:
        api.db_set("Open_vSwitch", ".", ("other_config", {"userspace-tso-enable": "true"})).execute(
            check_error=True
        )
    off = Switch.model_validate(
        {"kind": "ovs-userspace", "ovs": {"other_config": {"userspace-tso-enable": "false"}}}
    )
    switch = make_ovs_switch("ovs-userspace", daemons, link_up=no_link)
    with pytest.raises(PrerequisiteError, match="userspace-tso-enable=true, the lab needs"):
        switch.ensure_switch(LAB, "lc-a", off)
    endpoint = daemons.ensure(LAB, DaemonNeeds())
    assert endpoint.warnings == (
        "the system OVS runs with userspace-tso-enable=true (not OVS's default), which the "
        "lab did not ask for",
    )
    with ovsdb.session(private_ovs.connection) as api:
        config = api.db_get("Open_vSwitch", ".", "other_config").execute(check_error=True)
    assert config["userspace-tso-enable"] == "true"
