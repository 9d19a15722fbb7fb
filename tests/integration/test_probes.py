"""Probes on real labs: iperf3, ping and commands in Docker nodes, over IPv4 and IPv6."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl import Lab
from labctl.run import RunRecorder
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]
ROOT = SEED.parents[1]  # the repository

EVERY_KIND = """
probes:
  - {kind: tcp, name: bulk, client: client, server: server, family: ipv6, seconds: 1,
     bitrate: 50M}
  - {kind: udp, client: client, server: server, seconds: 1, bitrate: 1M}
  - {kind: icmp, name: ping6, client: client, server: server, family: ipv6, count: 3,
     interval: 0.1}
  - {kind: command, name: mtu, node: server, argv: [ip, -o, link, show, eth0],
     output: 'mtu 1500 '}
  - {kind: command, name: refused, node: client, argv: [sh, -c, 'echo no; exit 3'],
     exit_code: 3, output: '^no$'}
"""


def test_every_probe_kind_passes_on_a_linux_bridge(
    lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    topology = tmp_path / "probes.yaml"
    topology.write_text(SEED.read_text() + EVERY_KIND)
    before = HostSnapshot.take()
    with Lab.from_file(topology, switch="linux-bridge", name=lab_name) as lab:
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert HostSnapshot.take().added_since(before) == {}
    by_name = {p.name: p for p in record.probes}
    assert list(by_name) == ["http", "bulk", "udp", "ping6", "mtu", "refused"]
    assert all(p.ok for p in record.probes), [p.render_text() for p in record.probes]
    assert record.ok
    bulk = by_name["bulk"]
    assert bulk.throughput_mbps is not None and 10 < bulk.throughput_mbps <= 60
    udp = by_name["udp"]
    assert udp.sent and udp.received == udp.sent and udp.loss_percent == 0
    ping6 = by_name["ping6"]
    assert (ping6.sent, ping6.received) == (3, 3) and ping6.rtt_ms is not None
    assert by_name["refused"].exit_code == 3
    saved = json.loads((record.run_dir / "probes.json").read_text())
    assert [p["name"] for p in saved] == list(by_name)
    # The default tap filter covers the iperf3 port: its packets are in the captures.
    assert record.diagnosis is not None and record.diagnosis.ok


def test_udp_through_ovs_userspace_with_offload_on_is_dropped_for_its_checksum(
    lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    """What labs/udp-offload measured, in one cell: every datagram arrives unfinished and
    the receiving kernel counts it as a checksum error; iperf3 cannot even connect."""
    before = HostSnapshot.take()
    with Lab.from_file(
        ROOT / "topologies" / "udp.yaml", switch="ovs-userspace", name=lab_name
    ) as lab:
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert HostSnapshot.take().added_since(before) == {}
    by_name = {p.name: p for p in record.probes}
    assert not by_name["udp"].ok
    assert "unable to connect" in by_name["udp"].problems[0]
    assert by_name["udp-send"].ok
    csum = by_name["udp-csum"]
    assert not csum.ok and csum.output is not None
    assert "UdpInCsumErrors=20\n" in csum.output and "UdpNoPorts=0\n" in csum.output
    assert record.diagnosis is not None
    udp_faults = [
        f
        for f in record.diagnosis.findings
        if f.kind == "bad-checksum" and f.flow.startswith("UDP") and f.tap == "server-port"
    ]
    assert len(udp_faults) == 20
