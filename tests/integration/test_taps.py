"""Taps and checksum forensics on real labs: captures at every tap, then the diagnosis."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl import Lab
from labctl.analysis.checksums import read_pcap
from labctl.run import RunRecorder
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED, labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]


def test_linux_bridge_run_captures_every_tap_and_finds_no_fault(
    lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    with Lab.from_file(SEED, switch="linux-bridge", name=lab_name) as lab:
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert HostSnapshot.take().added_since(before) == {}
    assert record.http is not None and record.http.ok
    assert record.diagnosis is not None
    assert record.diagnosis.ok, record.diagnosis.verdict
    assert record.diagnosis.verdict.startswith("OK")
    # Every tap saw every TCP segment of every request: 5 connections.
    for tap in record.diagnosis.taps:
        assert tap.packets >= 5 * 7, tap
        assert tap.verdicts["wrong"] == 0 and tap.verdicts["unfinished"] == 0
    manifest = json.loads((record.run_dir / "manifest.json").read_text())
    assert [t["name"] for t in manifest["taps"]] == ["server-eth0", "server-host", "client-port"]
    assert manifest["versions"]["kernel"] and manifest["versions"]["tcpdump"]
    assert manifest["versions"]["docker"]
    assert all(c["packets_captured"] and c["packets_captured"] > 0 for c in manifest["captures"])
    for name in ("server-eth0", "server-host", "client-port"):
        pcap = record.run_dir / f"{name}.pcap"
        assert len(read_pcap(pcap).records) == record.diagnosis.taps[0].packets
        if shutil.which("tshark"):  # what a user opens in Wireshark must open
            done = subprocess.run(
                ["tshark", "-r", str(pcap), "-c", "1"], capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
    for artifact in ("diagnosis.json", "diagnosis.txt", "http.json"):
        assert (record.run_dir / artifact).is_file()


def test_cli_run_prints_http_then_diagnosis_and_analyze_rereads_it(
    lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    labctl("up", str(SEED), "--name", lab_name)
    try:
        done = labctl("run", lab_name, "--runs-dir", str(tmp_path / "runs"))
    finally:
        labctl("down", lab_name)
    out = done.stdout
    assert out.index("5/5 succeeded") < out.index("OK: no checksum a receiver checks is bad")
    run_dir = Path(out.strip().splitlines()[-1].split("artifacts: ")[1].split(" (")[0])
    analyzed = json.loads(labctl("analyze", str(run_dir), "--json").stdout)
    assert analyzed == json.loads((run_dir / "diagnosis.json").read_text())
    pcaps = [str(run_dir / f"{n}.pcap") for n in ("client-port", "server-host")]
    # Without sender context TCP's own evidence decides: every unfinished checksum was
    # acknowledged by the peer, so it was accepted: exit 0, no fault.
    raw = labctl("analyze", *pcaps, "--json")
    raw_findings = json.loads(raw.stdout)["findings"]
    assert [f for f in raw_findings if f["severity"] == "fault"] == []
    cells = {
        cell
        for flow in json.loads(raw.stdout)["flows"]
        for event in flow["events"]
        for cell in event["at"].values()
    }
    assert "accepted" in cells and "UNFINISHED" not in cells
    ok = labctl(
        "analyze",
        *pcaps,
        "--sender",
        "client-port=10.0.0.1,10.0.0.2",
        "--sender",
        "server-host=10.0.0.1,10.0.0.2",
    )
    assert "OK: no checksum a receiver checks is bad" in ok.stdout


def test_capture_on_demand(lab_name: str, state_dir: Path, tmp_path: Path) -> None:
    labctl("up", str(SEED), "--name", lab_name)
    try:
        output = tmp_path / "on-demand.pcap"
        capture = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "labctl.cli",
                "capture",
                "server-host",
                "--lab",
                lab_name,
                "--seconds",
                "4",
                "-o",
                str(output),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # `capture` says "capturing at" once tcpdump listens: traffic before it is not seen.
        assert capture.stderr is not None
        said = capture.stderr.readline()
        assert said.startswith("capturing at server-host"), said
        labctl("run", lab_name, "--runs-dir", str(tmp_path / "runs"))
        stdout, stderr = capture.communicate(timeout=60)
        assert capture.returncode == 0, said + stderr
    finally:
        labctl("down", lab_name)
    assert output.is_file() and len(read_pcap(output).records) > 0
    assert "packets" in stdout
