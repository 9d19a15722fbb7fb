"""Taps off the path (another VLAN, a branch): left out of the path order, reported with
what of the traffic reached them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from labctl.analysis.diagnose import diagnose
from labctl.analysis.diagnosis import Tap
from labctl.analysis.diagnosis_text import render_text
from labctl.analysis.findings import OFF_PATH_PACKETS
from labctl.errors import UsageError

from .pcap_builders import arp_frame, write_pcap
from .scenarios import START, http_exchange, write_scenario

pytestmark = pytest.mark.unit

FLOW = "TCP 10.0.0.1:41234 -> 10.0.0.2:80"
ISOLATION = "port oth carries VLAN 20 only; the traffic's ports: VLAN 10"
PATH = ["client-port", "server-port"]


def _taps(tmp_path: Path, leak: bool = False, isolation: str = "") -> list[Tap]:
    """client-port and server-port on the path (offload off: every checksum finished),
    other-port off it; with `leak`, every packet of the exchange shows there too."""
    names = [*PATH, "other-port"] if leak else PATH
    forward = dict.fromkeys(names, "valid")
    backward = dict.fromkeys([PATH[1], PATH[0], *names[2:]], "valid")
    taps = write_scenario(
        tmp_path,
        [("client-port", frozenset()), ("other-port", frozenset()), ("server-port", frozenset())],
        http_exchange(forward, backward),
    )
    return [
        replace(tap, off_path=True, isolation=isolation) if tap.name == "other-port" else tap
        for tap in taps
    ]


def test_an_empty_tap_off_the_path_is_not_a_loss(tmp_path: Path) -> None:
    taps = _taps(tmp_path, isolation=ISOLATION)
    diagnosis = diagnose(taps)
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    assert diagnosis.verdict.endswith("; nothing reached the taps off the path ('other-port')")
    other = next(tap for tap in diagnosis.taps if tap.name == "other-port")
    assert (other.off_path, other.frames, other.isolation) == (True, 0, ISOLATION)
    # The timelines have a column per tap on the path only, in path order.
    assert [t.name for t in diagnosis.path_taps] == PATH
    assert all(len(event.cells) == 2 for event in diagnosis.flows[0].events)
    as_json = json.loads(json.dumps(diagnosis.to_dict()))
    assert list(as_json["flows"][0]["events"][0]["at"]) == PATH
    assert [t["off_path"] for t in as_json["taps"]] == [False, True, False]


def test_the_same_tap_on_the_path_reads_as_a_loss(tmp_path: Path) -> None:
    """What off_path is for: listed as one more hop after server-port (as labs/vlan-isolation
    once had it), the empty tap loses every packet the server received."""
    client, other, server = (replace(tap, off_path=False) for tap in _taps(tmp_path))
    taps = [client, server, other]
    kinds = {(f.kind, f.severity) for f in diagnose(taps).findings}
    assert ("lost-between-taps", "fault") in kinds


def test_traffic_at_an_isolated_tap_is_a_leak(tmp_path: Path) -> None:
    diagnosis = diagnose(_taps(tmp_path, leak=True, isolation=ISOLATION))
    assert not diagnosis.ok
    assert [(f.kind, f.severity, f.tap, f.flow) for f in diagnosis.findings] == [
        ("seen-off-path", "fault", "other-port", FLOW)
    ]
    finding = diagnosis.findings[0]
    assert dict(finding.evidence) == {
        "frames": 9,
        "packets": 9,
        "on_path": 9,
        "other_frames": 0,
        "isolation": ISOLATION,
        "first_time": pytest.approx(START + 0.0002),
    }
    assert finding.message.startswith(
        "tap 'other-port' is off the path, yet it captured 9 frames: 9 TCP/UDP packets "
        "(9 of them also seen on the path); the traffic under test must never reach it "
        f"({ISOLATION}): it leaks"
    )
    assert len(finding.packets) == min(9, OFF_PATH_PACKETS)
    assert finding.packets[0].startswith("frame 1: SYN")
    assert diagnosis.verdict.startswith("FAULT: tap 'other-port' is off the path")
    # Nothing else: no loss, no checksum reasoning through the tap off the path.
    other = next(tap for tap in diagnosis.taps if tap.name == "other-port")
    assert (other.frames, other.verdicts["valid"]) == (9, 9)


def test_traffic_on_a_branch_is_a_warning(tmp_path: Path) -> None:
    """No isolation known: a learning switch floods first packets within a VLAN."""
    diagnosis = diagnose(_taps(tmp_path, leak=True))
    assert diagnosis.ok
    assert [(f.kind, f.severity) for f in diagnosis.findings] == [("seen-off-path", "warning")]
    assert "can be normal" in diagnosis.findings[0].message
    assert diagnosis.findings[0].evidence["isolation"] is None


def test_arp_broadcasts_count_as_other_frames(tmp_path: Path) -> None:
    taps = _taps(tmp_path)
    arps = [(START + n, arp_frame()) for n in range(3)]
    other = write_pcap(tmp_path / "other-port.pcap", arps)
    taps = [replace(t, pcap=other) if t.name == "other-port" else t for t in taps]
    diagnosis = diagnose(taps)
    finding = diagnosis.findings[-1]
    assert (finding.kind, finding.severity, finding.flow, finding.packets) == (
        "seen-off-path",
        "warning",
        "",
        (),
    )
    assert finding.evidence["frames"] == finding.evidence["other_frames"] == 3
    assert "captured 3 frames: 3 non-IP (ARP); a switch floods" in finding.message


def test_a_packet_not_on_the_path_is_counted_apart(tmp_path: Path) -> None:
    """The count of packets also seen on the path tells the traffic under test from
    anything else the tap's filter let through."""
    forward = {"other-port": "valid"}
    taps = write_scenario(
        tmp_path,
        [("client-port", frozenset()), ("server-port", frozenset()), ("other-port", frozenset())],
        http_exchange(dict.fromkeys(PATH, "valid"), dict.fromkeys(PATH[::-1], "valid"))[:1]
        + [replace(s, at=forward) for s in http_exchange(forward, forward)[2:3]],
    )
    taps = [replace(t, off_path=t.name == "other-port") for t in taps]
    evidence = diagnose(taps).findings[-1].evidence
    assert (evidence["packets"], evidence["on_path"]) == (1, 0)


def test_render_text_lists_the_taps_off_the_path(tmp_path: Path) -> None:
    text = render_text(diagnose(_taps(tmp_path, isolation=ISOLATION)))
    assert (
        "Off the path (what of the traffic under test reached them)\n"
        f"  other-port: 0 frames, 0 TCP/UDP; isolated: {ISOLATION}\n"
    ) in text
    table = text.split("Taps, in path order\n")[1].split("Off the path")[0]
    assert "other-port" not in table


def test_every_tap_off_the_path_is_refused(tmp_path: Path) -> None:
    taps = [replace(t, off_path=True) for t in _taps(tmp_path)]
    with pytest.raises(UsageError, match="every tap is off the path"):
        diagnose(taps)
