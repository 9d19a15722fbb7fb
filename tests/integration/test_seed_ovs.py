"""The seed lab on Open vSwitch, for real: the bug this project exists to reproduce.

ovs-userspace and ovs-dpdk run here (root, Debian's openvswitch-switch-dpdk,
hugepages from scripts/provision.sh); ovs-kernel needs the openvswitch kernel
module, which this machine's kernel lacks: there labctl must refuse with a
message naming the cause.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from labctl import Lab
from labctl.errors import PrerequisiteError
from labctl.run import RunRecorder
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED, labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]

USERSPACE_KINDS = ["ovs-userspace", "ovs-dpdk"]
LAB = Path(__file__).resolve().parents[2] / "labs" / "veth-checksum"


def has_ovs_module() -> bool:
    return os.path.isdir("/sys/module/openvswitch")


def seed_with_offload_off(tmp_path: Path) -> Path:
    data = yaml.safe_load(SEED.read_text())
    for node in data["nodes"].values():
        node["offload"] = {"tx": False}
    path = tmp_path / "seed-offload-off.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ping(lab: Lab, source: str, address: str) -> int:
    node = lab.engine.node(lab.name, source)
    return (
        lab.engine.runtime(lab.topology)
        .exec(node, ["ping", "-c", "2", "-W", "2", address])
        .exit_code
    )


@pytest.mark.parametrize("kind", USERSPACE_KINDS)
def test_seed_on_userspace_ovs_reproduces_the_bug(
    kind: str, lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    """Offload on: ARP and ICMP pass, TCP does not; the report names the unfinished SYN."""
    before = HostSnapshot.take()
    with Lab.from_file(SEED, switch=kind, name=lab_name) as lab:
        assert ping(lab, "client", "10.0.0.2") == 0
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert HostSnapshot.take().added_since(before) == {}
    assert record.http is not None and (record.http.succeeded, record.http.failed) == (0, 5)
    diagnosis = record.diagnosis
    assert diagnosis is not None and not diagnosis.ok
    kinds = {(f.kind, f.tap) for f in diagnosis.findings}
    assert ("bad-checksum", "server-host") in kinds
    assert ("syn-unanswered", "server-eth0") in kinds
    first = diagnosis.findings[0]
    assert first.kind == "bad-checksum" and "SYN" in first.message
    assert "unfinished checksum (pseudo-header only" in first.message
    assert diagnosis.verdict.startswith("FAULT: TCP SYN 10.0.0.1:")
    # Before the switch the same value is normal TX offload, not a fault.
    client_port = next(t for t in diagnosis.taps if t.name == "client-port")
    assert client_port.verdicts["offload"] > 0 and client_port.verdicts["unfinished"] == 0
    # The server-side pcap alone, positions unknown: TCP's evidence (SYNs sent again,
    # never answered) still makes it a fault, as `labctl analyze` on a pcap from anywhere.
    alone = labctl("analyze", str(record.run_dir / "server-host.pcap"), check=False)
    assert alone.returncode == 1, alone.stdout
    assert alone.stdout.startswith("FAULT: TCP SYN 10.0.0.1:")
    assert "never answered (no SYN/ACK)" in alone.stdout


@pytest.mark.parametrize("kind", USERSPACE_KINDS)
def test_seed_on_userspace_ovs_works_with_tx_offload_off(
    kind: str, lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    with Lab.from_file(seed_with_offload_off(tmp_path), switch=kind, name=lab_name) as lab:
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
        offload = record.manifest["offload"]
        assert offload["client:eth0"]["tx"] is False and offload["server:eth0"]["tx"] is False
    assert HostSnapshot.take().added_since(before) == {}
    assert record.http is not None and record.http.ok, record.http.render_text()
    assert record.diagnosis is not None and record.diagnosis.ok, record.diagnosis.verdict


def test_ovs_kernel(lab_name: str, state_dir: Path, tmp_path: Path) -> None:
    if not has_ovs_module():
        before = HostSnapshot.take()
        done = labctl("up", str(SEED), "--switch", "ovs-kernel", "--name", lab_name, check=False)
        assert done.returncode == 3, done.stderr
        assert "openvswitch kernel module is missing" in done.stderr
        assert "--switch ovs-userspace or --switch ovs-dpdk" in done.stderr
        assert HostSnapshot.take().added_since(before) == {}
        with (
            pytest.raises(PrerequisiteError),
            Lab.from_file(SEED, switch="ovs-kernel", name=lab_name),
        ):
            pass
        return
    with Lab.from_file(SEED, switch="ovs-kernel", name=lab_name) as lab:
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert record.http is not None and record.http.ok


def test_cli_headline_ovs_dpdk_up_and_down(lab_name: str, state_dir: Path) -> None:
    before = HostSnapshot.take()
    up = labctl("up", str(SEED), "--switch", "ovs-dpdk", "--name", lab_name)
    assert f"lab {lab_name} is up (ovs-dpdk)" in up.stdout
    labctl("down", lab_name)
    assert HostSnapshot.take().added_since(before) == {}


def test_server_only_column_is_the_seed_reports_picture(
    lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    """labs/veth-checksum's server-only cell, built as the matrix builds it: the
    client's SYN valid everywhere and answered, the server's SYN/ACK right at taps 1
    and 2 and unfinished at tap 3; no claim that the SYN/ACK repeats the SYN's value."""
    from labctl.core.matrix import cells, load_lab

    lab_spec = load_lab(LAB)
    (cell,) = cells(lab_spec, ["ovs-userspace"], ["server-only"])
    topology = cell.topology(lab_spec.topology, lab_spec.name).with_name(lab_name)
    with Lab(topology, lab_spec.topology_document) as lab:
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    offload_read = record.manifest["offload"]
    assert offload_read["client:eth0"]["tx"] is False and offload_read["server:eth0"]["tx"] is True
    assert record.http is not None and record.http.succeeded == 0
    diagnosis = record.diagnosis
    assert diagnosis is not None
    assert {f.kind for f in diagnosis.findings if f.severity == "fault"} == {"bad-checksum"}
    assert all(f.kind != "synack-repeats-syn-checksum" for f in diagnosis.findings)
    assert [t.name for t in diagnosis.taps] == ["server-eth0", "server-host", "client-port"]
    for flow in diagnosis.flows:
        cells_by_packet = {(event.packet.split()[0], event.cells) for event in flow.events}
        assert cells_by_packet == {
            ("SYN", ("ok", "ok", "ok")),
            ("SYN/ACK", ("offload", "offload", "UNFINISHED")),
        }, flow
