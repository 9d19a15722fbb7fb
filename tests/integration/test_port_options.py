"""Switch-port options for real: VLAN access ports on OVS and the Linux bridge, and an MTU
that differs between a node interface and its switch port.

Root and Docker (the node image). The Linux bridge filters by VLAN only on a kernel with
CONFIG_BRIDGE_VLAN_FILTERING; where it has none (this project's machines), labctl must
refuse before building, naming the cause, and these tests check exactly that.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import dpkt
import pytest
import yaml

from labctl import Lab
from labctl.backends.linux_bridge import LinuxBridge
from labctl.core.plan import AttachPort
from labctl.errors import PrerequisiteError
from labctl.run import RunRecorder
from tests.integration.host_snapshot import HostSnapshot

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def offload_off(tmp_path: Path, name: str, *extra_taps: dict[str, str]) -> Path:
    data = yaml.safe_load((TOPOLOGIES / f"{name}.yaml").read_text())
    for node in data["nodes"].values():
        node["offload"] = {"tx": False, "rx": False}
    data["taps"] += list(extra_taps)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def frames(pcap: Path) -> list[bytes]:
    with pcap.open("rb") as handle:
        return [bytes(buf) for _ts, buf in dpkt.pcap.Reader(handle)]


def arp_requests_for(pcap: Path, target: str) -> int:
    count = 0
    for frame in frames(pcap):
        eth = dpkt.ethernet.Ethernet(frame)
        if isinstance(eth.data, dpkt.arp.ARP) and eth.data.op == dpkt.arp.ARP_OP_REQUEST:
            count += bytes(eth.data.tpa) == bytes(int(x) for x in target.split("."))
    return count


def ovs_port_columns(lab: Lab, host_ifname: str) -> dict[str, str]:
    state = lab.engine.store.load(lab.name)
    assert state is not None
    switch = next(c["result"] for c in state.completed if c["key"] == "switch")
    db = switch["endpoint"]["connection"]
    columns = {}
    for column in ("tag", "vlan_mode", "trunks"):
        done = subprocess.run(
            ["ovs-vsctl", f"--db={db}", "get", "Port", host_ifname, column],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        columns[column] = done.stdout.strip()
    return columns


def attached_ports(lab: Lab) -> dict[str, str]:
    return {s.port: s.host_ifname for s in lab.plan().steps if isinstance(s, AttachPort)}


def host_mtu(ifname: str) -> int:
    done = subprocess.run(
        ["ip", "-j", "link", "show", ifname], capture_output=True, text=True, check=True
    )
    return int(json.loads(done.stdout)[0]["mtu"])


def refuses_vlans_here(kind: str) -> bool:
    return kind == "linux-bridge" and not LinuxBridge._vlan_filtering_available()


@pytest.mark.parametrize("kind", ["linux-bridge", "ovs-userspace"])
def test_same_vlan_talks_and_other_vlan_hears_nothing(
    kind: str, lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    # The topology's third tap, other-port (other's port, on VLAN 20), is off the path.
    topology = offload_off(tmp_path, "vlan-isolation")
    before = HostSnapshot.take()
    if refuses_vlans_here(kind):
        refused = Lab.from_file(topology, switch=kind, name=lab_name)
        try:
            with pytest.raises(PrerequisiteError, match="CONFIG_BRIDGE_VLAN_FILTERING"):
                refused.up()
        finally:
            refused.close()
        assert HostSnapshot.take().added_since(before) == {}
        return
    with Lab.from_file(topology, switch=kind, name=lab_name) as lab:
        plan_ports = {s.port: s.host_ifname for s in lab.plan().steps if s.action == "AttachPort"}
        if kind == "ovs-userspace":
            columns = ovs_port_columns(lab, plan_ports["cli"])
            assert columns == {"tag": "10", "vlan_mode": "access", "trunks": "[]"}
            assert ovs_port_columns(lab, plan_ports["oth"])["tag"] == "20"
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert HostSnapshot.take().added_since(before) == {}
    assert record.http is not None and (record.http.succeeded, record.http.failed) == (3, 0)
    # The client's ARP for the server floods VLAN 10 (the server's port) and not VLAN 20.
    assert arp_requests_for(record.run_dir / "server-port.pcap", "10.0.0.2") >= 1
    assert frames(record.run_dir / "other-port.pcap") == []
    # The diagnosis keeps other-port out of the path (no loss) and reports its count: 0.
    diagnosis = record.diagnosis
    assert diagnosis is not None
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    other = next(tap for tap in diagnosis.taps if tap.name == "other-port")
    assert (other.off_path, other.frames) == (True, 0)
    assert (
        other.isolation == "port oth carries VLAN 20 only; the traffic under test runs on VLAN 10"
    )
    assert [tap.name for tap in diagnosis.path_taps] == ["client-port", "server-port"]


@pytest.mark.parametrize("kind", ["ovs-userspace"])
def test_different_vlans_do_not_talk(
    kind: str, lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    topology = offload_off(tmp_path, "vlan-apart")
    with Lab.from_file(topology, switch=kind, name=lab_name) as lab:
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert record.http is not None and (record.http.succeeded, record.http.failed) == (0, 3)
    # The ARP request for the server reaches the client's VLAN-mate, never the server.
    assert arp_requests_for(record.run_dir / "other-port.pcap", "10.0.0.2") >= 1
    assert arp_requests_for(record.run_dir / "server-port.pcap", "10.0.0.2") == 0
    # other-port is off the path, on the client's VLAN: the flooded ARP requests are reported
    # with their count, as a warning (flooding within a VLAN is what a switch does).
    diagnosis = record.diagnosis
    assert diagnosis is not None and diagnosis.ok
    seen = [f for f in diagnosis.findings if f.kind == "seen-off-path"]
    assert [(f.tap, f.severity) for f in seen] == [("other-port", "warning")]
    arps = arp_requests_for(record.run_dir / "other-port.pcap", "10.0.0.2")
    assert seen[0].evidence["frames"] == len(frames(record.run_dir / "other-port.pcap"))
    assert seen[0].evidence["other_frames"] == seen[0].evidence["frames"] >= arps


def test_mtu_mismatch_drops_at_the_smaller_veth_end(
    lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    """Node end 9000, host end (the switch port) 1500: the server's full-size segments are
    on its eth0 and never on its port; the answer never arrives."""
    topology = offload_off(tmp_path, "mtu-mismatch")
    with Lab.from_file(topology, switch="linux-bridge", name=lab_name) as lab:
        ports = attached_ports(lab)
        assert (host_mtu(ports["srv"]), host_mtu(ports["cli"])) == (1500, 9000)
        server = lab.engine.node(lab_name, "server")
        shown = lab.engine.runtime(lab.topology).exec(server, ["cat", "/sys/class/net/eth0/mtu"])
        assert shown.stdout.strip() == "9000"
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert record.http is not None and record.http.succeeded == 0
    assert record.diagnosis is not None
    lost = [f for f in record.diagnosis.findings if f.kind == "lost-between-taps"]
    assert lost and all(f.tap == "server-eth0" for f in lost)
    big = [len(f) for f in frames(record.run_dir / "server-eth0.pcap") if len(f) > 1514]
    assert big, "the server sent frames larger than its port's MTU"
    assert all(len(f) <= 1514 for f in frames(record.run_dir / "server-port.pcap"))
