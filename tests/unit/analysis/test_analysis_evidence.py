"""TCP's own evidence: what a capture proves about checksums without knowing
where its taps sit (a pcap from anywhere, `labctl analyze` without --sender)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from labctl.analysis.diagnose import diagnose
from labctl.analysis.diagnosis import Diagnosis, Tap

from .pcap_builders import CLIENT, SERVER, Seg
from .scenarios import (
    C_ISN,
    REQUEST,
    S_ISN,
    Sent,
    client_seg,
    http_exchange,
    server_seg,
    syn,
    synack,
    write_scenario,
)

pytestmark = pytest.mark.unit

FLOW = "TCP 10.0.0.1:41234 -> 10.0.0.2:80"
BACK = "TCP 10.0.0.2:80 -> 10.0.0.1:41234"
ONE_TAP = [("capture", frozenset[str]())]


def summary(diagnosis: Diagnosis) -> list[tuple[str, str, str, str]]:
    return [(f.kind, f.severity, f.tap, f.flow) for f in diagnosis.findings]


def unpositioned(taps: list[Tap]) -> list[Tap]:
    return [replace(t, positioned=False) for t in taps]


def test_healthy_offload_capture_is_ok_from_tcp_evidence_alone(tmp_path: Path) -> None:
    """The issue's capture: one host, offload on, every checksum unfinished,
    every segment answered. Nothing is a fault, nothing is even a warning."""
    at = {"capture": "unfinished"}
    taps = unpositioned(write_scenario(tmp_path, ONE_TAP, http_exchange(at, at)))
    diagnosis = diagnose(taps)
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    cells = [e.cells for e in diagnosis.flows[0].events]
    assert cells == [("accepted",)] * 9
    assert diagnosis.taps[0].verdicts["accepted"] == 9


def test_same_capture_told_the_tap_is_past_the_kernel_says_both_sides(tmp_path: Path) -> None:
    """With a position (as --sender or a lab gives), the acknowledged segments
    contradict it: a warning naming both, never a fault."""
    at = {"capture": "unfinished"}
    taps = write_scenario(tmp_path, ONE_TAP, http_exchange(at, at))
    diagnosis = diagnose(taps)
    assert diagnosis.ok
    assert summary(diagnosis) == [
        ("position-contradicted", "warning", "capture", FLOW),
        ("position-contradicted", "warning", "capture", BACK),
    ]


def test_syn_sent_again_and_never_answered_stays_a_fault(tmp_path: Path) -> None:
    at = {"capture": "unfinished"}
    sent = [Sent(t, syn(0x1001 + n, 100 + n), at) for n, t in enumerate([0.0, 1.0, 3.0])]
    diagnosis = diagnose(unpositioned(write_scenario(tmp_path, ONE_TAP, sent)))
    assert not diagnosis.ok
    assert summary(diagnosis) == [
        ("bad-checksum", "fault", "capture", FLOW),
        ("syn-unanswered", "fault", "capture", FLOW),
    ]
    message = diagnosis.findings[0].message
    assert "its receiver did not accept it: sent 3 times, never answered (no SYN/ACK)" in message
    # One tap of unknown position cannot tell the checksum from another cause.
    assert "where this tap sits is not known" in message
    assert "--sender TAP=ADDR" in message
    assert diagnosis.findings[0].evidence["tcp_evidence"] == (
        "sent 3 times, never answered (no SYN/ACK)"
    )


def test_data_sent_again_and_never_acknowledged_is_a_fault(tmp_path: Path) -> None:
    at = {"capture": "unfinished"}
    fine = {"capture": "valid"}
    c1, s1 = C_ISN + 1, S_ISN + 1
    request = client_seg("PA", c1, s1, 0x1003, REQUEST)
    sent = [
        Sent(0.000, syn(0x1001, 100), fine),
        Sent(0.001, synack(), fine),
        Sent(0.002, client_seg("A", c1, s1, 0x1002), fine),
        Sent(0.003, request, at),
        Sent(0.300, replace(request, ip_id=0x1004), at),
        Sent(0.900, replace(request, ip_id=0x1005), at),
    ]
    diagnosis = diagnose(unpositioned(write_scenario(tmp_path, ONE_TAP, sent)))
    assert summary(diagnosis) == [("bad-checksum", "fault", "capture", FLOW)]
    assert "sent 3 times, never acknowledged" in diagnosis.findings[0].message


def test_capture_that_ends_before_the_ack_is_a_warning_that_says_how_to_prove(
    tmp_path: Path,
) -> None:
    at = {"capture": "unfinished"}
    fine = {"capture": "valid"}
    c1, s1 = C_ISN + 1, S_ISN + 1
    sent = [
        Sent(0.000, syn(0x1001, 100), fine),
        Sent(0.001, synack(), fine),
        Sent(0.002, client_seg("PA", c1, s1, 0x1003, REQUEST), at),
    ]
    diagnosis = diagnose(unpositioned(write_scenario(tmp_path, ONE_TAP, sent)))
    assert diagnosis.ok
    assert summary(diagnosis) == [("checksum-unproven", "warning", "capture", FLOW)]
    (finding,) = diagnosis.findings
    assert "it was not acknowledged before the capture ended, nor sent again" in finding.message
    assert "--sender TAP=ADDR" in finding.message
    assert "labctl run" in finding.message
    assert finding.evidence["missing"] == "capture-ended"
    assert diagnosis.flows[0].events[-1].cells == ("unfinished?",)


def test_one_direction_only_is_a_warning(tmp_path: Path) -> None:
    at = {"capture": "unfinished"}
    c1, s1 = C_ISN + 1, S_ISN + 1
    sent = [
        Sent(0.000, client_seg("PA", c1, s1, 0x1003, REQUEST), at),
        Sent(0.010, client_seg("FA", c1 + len(REQUEST), s1, 0x1004), at),
    ]
    diagnosis = diagnose(unpositioned(write_scenario(tmp_path, ONE_TAP, sent)))
    assert diagnosis.ok
    assert [f.evidence["missing"] for f in diagnosis.findings] == ["one-direction"]
    assert "no packet of the other direction" in diagnosis.findings[0].message


def test_udp_has_no_evidence(tmp_path: Path) -> None:
    datagram = Seg(CLIENT, SERVER, 5353, 9999, "udp", payload=b"hello", ip_id=7)
    sent = [Sent(0.0, datagram, {"capture": "unfinished"})]
    diagnosis = diagnose(unpositioned(write_scenario(tmp_path, ONE_TAP, sent)))
    assert diagnosis.ok
    (finding,) = diagnosis.findings
    assert (finding.kind, finding.severity) == ("checksum-unproven", "warning")
    assert "UDP has no acknowledgements" in finding.message
    # A position proves it: the receiver's tap, the client listed nowhere.
    (tmp_path / "p").mkdir()
    positioned = diagnose(write_scenario(tmp_path / "p", ONE_TAP, sent))
    assert summary(positioned) == [
        ("bad-checksum", "fault", "capture", "UDP 10.0.0.1:5353 -> 10.0.0.2:9999")
    ]
    assert positioned.findings[0].evidence["by_position"] is True


def test_only_the_copy_with_a_finished_checksum_was_acknowledged(tmp_path: Path) -> None:
    """An unfinished copy went unanswered, its resend with a correct checksum was
    answered: the unfinished one was dropped (a fault), the correct one taken."""
    c1, s1 = C_ISN + 1, S_ISN + 1
    fine = {"capture": "valid"}
    request = client_seg("PA", c1, s1, 0x1003, REQUEST)
    sent = [
        Sent(0.000, syn(0x1001, 100), fine),
        Sent(0.001, synack(), fine),
        Sent(0.002, request, {"capture": "unfinished"}),
        Sent(0.300, replace(request, ip_id=0x1004), fine),
        Sent(0.301, server_seg("A", s1, c1 + len(REQUEST), 0x2001), fine),
    ]
    diagnosis = diagnose(unpositioned(write_scenario(tmp_path, ONE_TAP, sent)))
    assert summary(diagnosis) == [("bad-checksum", "fault", "capture", FLOW)]
    assert "a later copy (frame 4, checksum valid) was acknowledged, this one (unfinished)" in (
        diagnosis.findings[0].message
    )


SERVER_ONLY_PATH = [
    ("server-eth0", frozenset({SERVER})),
    ("server-host", frozenset({SERVER})),
    ("client-port", frozenset[str]()),
]


def server_only(tmp_path: Path) -> list[Tap]:
    """The seed's three taps: the client finishes its SYN (offload off), the
    server offloads, a userspace switch forwards its SYN/ACK unfinished."""
    forward = {"client-port": "valid", "server-host": "valid", "server-eth0": "valid"}
    backward = {"server-eth0": "unfinished", "server-host": "unfinished"}
    backward["client-port"] = "unfinished"
    sent = []
    for n, t in enumerate([0.0, 1.0, 3.0]):
        sent.append(Sent(t, syn(0x1001 + n, 100 + n), forward))
        sent.append(Sent(t + 0.001, synack(0, 900 + n), backward))
    return write_scenario(tmp_path, SERVER_ONLY_PATH, sent)


def test_server_only_synack_is_the_fault_and_no_signature_is_claimed(tmp_path: Path) -> None:
    diagnosis = diagnose(server_only(tmp_path))
    assert summary(diagnosis) == [("bad-checksum", "fault", "client-port", BACK)]
    message = diagnosis.findings[0].message
    assert message.startswith(
        "TCP SYN/ACK 10.0.0.2:80 -> 10.0.0.1:41234 reaches tap 'client-port' with an "
        "unfinished checksum"
    )
    assert "sent 3 times, never acknowledged" in message
    cells = {e.packet.split()[0]: e.cells for e in diagnosis.flows[0].events}
    assert cells["SYN"] == ("ok", "ok", "ok")
    assert cells["SYN/ACK"] == ("offload", "offload", "UNFINISHED")
