"""Diagnoses of multi-tap scenarios: the seed bug, healthy paths, losses."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from labctl.analysis.diagnose import analyse, diagnose
from labctl.analysis.diagnosis import Diagnosis, Finding, Tap
from labctl.analysis.diagnosis_text import render_text
from labctl.errors import UsageError

from .pcap_builders import CLIENT, SERVER, Checksum, Seg, pseudo_header_value
from .scenarios import C_ISN, Sent, client_seg, http_exchange, syn, synack, write_scenario

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
CAPTURES = GOLDEN / "captures"
SYN_PSEUDO = pseudo_header_value(CLIENT, SERVER, 6, 40)  # 0x1431
FLOW = "TCP 10.0.0.1:41234 -> 10.0.0.2:80"
BACK = "TCP 10.0.0.2:80 -> 10.0.0.1:41234"


def summary(diagnosis: Diagnosis) -> list[tuple[str, str, str, str]]:
    return [(f.kind, f.severity, f.tap, f.flow) for f in diagnosis.findings]


def assert_golden(name: str, text: str) -> None:
    """Compare with golden/<name>; LABCTL_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("LABCTL_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with LABCTL_UPDATE_GOLDEN=1"
    assert text == path.read_text()


# --------------------------------------------------------------------------
# The seed bug


def seed_two_taps(tmp_path: Path) -> list[Tap]:
    """SYN correct where the client sends it, unfinished where the server
    receives it, never answered, resent twice (1 s and 3 s later)."""
    taps = [("client-eth0", frozenset({CLIENT})), ("server-eth0", frozenset({SERVER}))]
    at = {"client-eth0": "valid", "server-eth0": "unfinished"}
    sent = [Sent(0.0, syn(0x1001, 100), at), Sent(1.0, syn(0x1002, 1100), at)]
    sent.append(Sent(3.0, syn(0x1003, 3100), at))
    return write_scenario(tmp_path, taps, sent)


def test_seed_bug_findings(tmp_path: Path) -> None:
    diagnosis = diagnose(seed_two_taps(tmp_path))
    assert not diagnosis.ok
    assert summary(diagnosis) == [
        ("bad-checksum", "fault", "server-eth0", FLOW),
        ("syn-unanswered", "fault", "server-eth0", FLOW),
    ]
    bad, unanswered = diagnosis.findings
    assert SYN_PSEUDO == 0x1431
    assert bad.message == (
        "TCP SYN 10.0.0.1:41234 -> 10.0.0.2:80 reaches tap 'server-eth0' with an unfinished "
        "checksum (pseudo-header only, 0x1431); its receiver did not accept it: sent 3 times, "
        "never answered (no SYN/ACK); it was correct at tap 'client-eth0' (3 packets: SYN x3)"
    )
    assert dict(bad.evidence) == {
        "tcp_evidence": "sent 3 times, never answered (no SYN/ACK)",
        "by_position": False,
        "verdict": "unfinished",
        "checksum": "0x1431",
        "expected": bad.evidence["expected"],
        "pseudo_header": "0x1431",
        "pseudo_header_signature": True,
        "previous_tap": "client-eth0",
        "previous_status": "ok",
        "count": 3,
        "first_time": 1700000000.0001,
    }
    assert bad.evidence["expected"] != "0x1431"
    assert bad.packets == (
        "frame 1: SYN seq=1000 id=0x1001 csum=0x1431",
        "frame 2: SYN seq=1000 id=0x1002 csum=0x1431",
        "frame 3: SYN seq=1000 id=0x1003 csum=0x1431",
    )
    assert unanswered.message == (
        "TCP SYN 10.0.0.1:41234 -> 10.0.0.2:80 was sent 3 times and never answered: "
        "no SYN/ACK at any tap; last seen at tap 'server-eth0'"
    )
    assert diagnosis.verdict == "FAULT: " + bad.message


def test_seed_bug_timeline(tmp_path: Path) -> None:
    (flow,) = diagnose(seed_two_taps(tmp_path)).flows
    assert (flow.label, flow.client, flow.server) == (
        "TCP 10.0.0.1:41234 <-> 10.0.0.2:80",
        "10.0.0.1:41234",
        "10.0.0.2:80",
    )
    events = [
        (round(e.time, 3), e.direction, e.packet, e.retransmission, e.cells) for e in flow.events
    ]
    assert events == [
        (0.0, "->", "SYN seq=0", 0, ("ok", "UNFINISHED")),
        (1.0, "->", "SYN seq=0", 1, ("ok", "UNFINISHED")),
        (3.0, "->", "SYN seq=0", 2, ("ok", "UNFINISHED")),
    ]


def test_seed_bug_tap_summaries(tmp_path: Path) -> None:
    client, server = diagnose(seed_two_taps(tmp_path)).taps
    assert (client.frames, client.packets, client.verdicts["valid"]) == (3, 3, 3)
    assert server.verdicts == {
        "valid": 0,
        "offload": 0,
        "accepted": 0,
        "unfinished": 3,
        "wrong": 0,
        "zero-udp": 0,
        "truncated": 0,
        "fragment": 0,
    }


SEED_PATH = [
    ("client-eth0", frozenset({CLIENT})),  # inside the client container
    ("client-veth", frozenset({CLIENT})),  # host end of its veth: OVS reads here
    ("server-veth", frozenset({SERVER})),  # host end of the server's veth: OVS writes here
    ("server-eth0", frozenset({SERVER})),  # inside the server container
]


def seed_four_taps(tmp_path: Path) -> list[Tap]:
    """As measured on this project's machines: offload on, OVS userspace."""
    at = {name: "unfinished" for name, _ in SEED_PATH}
    sent = [Sent(t, syn(0x1001 + n, 100 + int(t * 1000)), at) for n, t in enumerate([0, 1, 3])]
    return write_scenario(tmp_path, SEED_PATH, sent)


def test_seed_bug_four_taps_golden(tmp_path: Path) -> None:
    diagnosis = diagnose(seed_four_taps(tmp_path))
    assert summary(diagnosis) == [
        ("bad-checksum", "fault", "server-veth", FLOW),
        ("syn-unanswered", "fault", "server-eth0", FLOW),
    ]
    assert "left its sender unfinished at tap 'client-veth'" in diagnosis.findings[0].message
    assert_golden("seed-ovs-userspace.txt", render_text(diagnosis))
    as_json = json.dumps(diagnosis.to_dict(), indent=2).replace(str(tmp_path), "<tmp>") + "\n"
    assert_golden("seed-ovs-userspace.json", as_json)


def test_seed_signature_synack_repeats_syn_checksum(tmp_path: Path) -> None:
    """The original write-up: old veth let the unfinished SYN in, the server
    answered, its SYN/ACK reached the client unfinished with the SYN's value.
    The SYN was answered, so TCP proves the server took it although the tap's
    position says it should not have: a warning that says both, not a fault."""
    taps = [("client-eth0", frozenset({CLIENT})), ("server-eth0", frozenset({SERVER}))]
    forward = {"client-eth0": "unfinished", "server-eth0": "unfinished"}
    backward = {"server-eth0": "unfinished", "client-eth0": "unfinished"}
    sent = [
        Sent(0.0, syn(0x1001, 100), forward),
        Sent(0.001, synack(0, 900), backward),
        Sent(1.0, syn(0x1002, 1100), forward),
        Sent(1.001, synack(0, 1900), backward),
    ]
    diagnosis = diagnose(write_scenario(tmp_path, taps, sent))
    assert summary(diagnosis) == [
        ("bad-checksum", "fault", "client-eth0", BACK),
        ("synack-repeats-syn-checksum", "fault", "client-eth0", BACK),
        ("position-contradicted", "warning", "server-eth0", FLOW),
    ]
    assert "sent 2 times, never acknowledged" in diagnosis.findings[0].message
    contradicted = diagnosis.findings[2]
    assert "yet TCP shows the receiver took it (answered by the SYN/ACK in frame 2)" in (
        contradicted.message
    )
    assert "before Linux 4.4" in contradicted.message
    signature = diagnosis.findings[1]
    assert signature.message.startswith(
        "TCP SYN/ACK 10.0.0.2:80 -> 10.0.0.1:41234 carries at tap 'client-eth0' the checksum "
        "0x1431 that the client's SYN carried at tap 'client-eth0': both hold only the "
        "pseudo-header sum"
    )
    assert signature.evidence["pseudo_header_signature"] is True
    assert [e.retransmission for e in diagnosis.flows[0].events] == [0, 0, 1, 1]


def test_switch_that_corrupts_differently_is_not_unfinished(tmp_path: Path) -> None:
    taps = [("client-eth0", frozenset({CLIENT})), ("server-eth0", frozenset({SERVER}))]
    at: dict[str, Checksum] = {"client-eth0": "valid", "server-eth0": 0xBEEF}
    diagnosis = diagnose(write_scenario(tmp_path, taps, [Sent(0.0, syn(0x1001, 100), at)]))
    bad = diagnosis.findings[0]
    assert bad.evidence["verdict"] == "wrong"
    assert bad.evidence["pseudo_header_signature"] is False
    assert "with a wrong checksum 0xbeef (correct: 0x" in bad.message
    assert "not the pseudo-header sum 0x1431" in bad.message
    # Sent once: not answered yet may be the end of the capture, not a fault.
    assert summary(diagnosis)[1] == ("syn-unanswered", "warning", "server-eth0", FLOW)


# --------------------------------------------------------------------------
# Healthy paths


def test_healthy_linux_bridge_path_has_no_findings(tmp_path: Path) -> None:
    """Through a Linux bridge the skb keeps CHECKSUM_PARTIAL from sender to
    receiver: unfinished checksums show at every tap and nobody checks them."""
    both = frozenset({CLIENT, SERVER})
    taps = [("client-eth0", both), ("bridge", both), ("server-eth0", both)]
    forward = dict.fromkeys(["client-eth0", "bridge", "server-eth0"], "unfinished")
    backward = dict.fromkeys(["server-eth0", "bridge", "client-eth0"], "unfinished")
    diagnosis = diagnose(write_scenario(tmp_path, taps, http_exchange(forward, backward)))
    assert diagnosis.ok
    assert diagnosis.findings == ()
    assert diagnosis.verdict == (
        "OK: no checksum a receiver checks is bad, no packet lost between taps"
    )
    assert [tap.verdicts["offload"] for tap in diagnosis.taps] == [9, 9, 9]
    assert_golden("healthy-linux-bridge.txt", render_text(diagnosis))


def test_captures_without_tcp_or_udp_say_there_was_nothing_to_check(tmp_path: Path) -> None:
    """A capture filter that missed the traffic is no proof of a healthy path."""
    diagnosis = diagnose(write_scenario(tmp_path, [("client-eth0", frozenset({CLIENT}))], []))
    assert diagnosis.ok
    assert diagnosis.verdict.startswith("OK: nothing to check: the captures hold no TCP or UDP")
    assert "no checksum a receiver checks is bad" not in render_text(diagnosis)


def test_an_interface_tap_that_saw_nothing_of_a_connection_is_not_on_its_path(
    tmp_path: Path,
) -> None:
    """dumpcap -i veth1 -i veth2 -i lo on a host: lo, last in file order, sees other
    traffic. Where the order is a guess (one file's interfaces), nothing is lost before
    it; where the user gave the order, a capture that saw nothing of it is a loss."""
    forward = {"veth1": "unfinished", "veth2": "unfinished"}
    backward = {"veth2": "unfinished", "veth1": "unfinished"}
    other = Seg("127.0.0.1", "127.0.0.1", 48076, 1, "S", seq=7, ip_id=0x3001)
    sent = [*http_exchange(forward, backward), Sent(0.009, other, {"lo": "valid"})]
    names = ("veth1", "veth2", "lo")
    taps = write_scenario(tmp_path, [(name, frozenset()) for name in names], sent)
    guessed = [replace(tap, positioned=False, order_known=False) for tap in taps]
    assert "lost-between-taps" not in {f.kind for f in diagnose(guessed).findings}
    given = [replace(tap, positioned=False) for tap in taps]
    assert "lost-between-taps" in {f.kind for f in diagnose(given).findings}


def test_healthy_finished_checksums(tmp_path: Path) -> None:
    """Offload off, or a switch that finishes checksums: correct past the
    sender, unfinished only where the sender's offload leaves them."""
    taps = [("client-eth0", frozenset({CLIENT})), ("server-eth0", frozenset({SERVER}))]
    forward = {"client-eth0": "unfinished", "server-eth0": "valid"}
    backward = {"server-eth0": "unfinished", "client-eth0": "valid"}
    diagnosis = diagnose(write_scenario(tmp_path, taps, http_exchange(forward, backward)))
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    packets = [e.packet for e in diagnosis.flows[0].events]
    assert packets == [
        "SYN seq=0",
        "SYN/ACK seq=0 ack=1",
        "ACK seq=1 ack=1",
        "DATA seq=1 ack=1 len=18",
        "ACK seq=1 ack=19",
        "DATA seq=1 ack=19 len=25",
        "FIN/ACK seq=26 ack=19",
        "FIN/ACK seq=19 ack=27",
        "ACK seq=27 ack=20",
    ]


def test_real_veth_captures_with_the_right_model_are_ok() -> None:
    """Two namespaces on one veth pair, offload on: unfinished checksums on
    both sides, and the exchange worked. Both ends share one kernel."""
    everyone = frozenset({"10.77.0.1", "10.77.0.2", "fd77::1", "fd77::2"})
    taps = [
        Tap("ns1", CAPTURES / "veth-offload-on-sender.pcap", everyone),
        Tap("ns2", CAPTURES / "veth-offload-on-receiver.pcap", everyone),
    ]
    diagnosis = diagnose(taps)
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    assert len(diagnosis.flows) == 4  # TCP and UDP, IPv4 and IPv6
    cells = {cell for flow in diagnosis.flows for e in flow.events for cell in e.cells}
    assert cells == {"offload"}  # every packet matched at both taps


def test_real_veth_captures_if_the_path_left_the_kernel() -> None:
    """Same bytes, but told that each side's packets leave the sender's
    offload domain (as through OVS userspace). TCP was answered and
    acknowledged, so position and evidence disagree: said, not a fault. UDP
    has no evidence: its position decides, a fault."""
    taps = [
        Tap("ns1", CAPTURES / "veth-offload-on-sender.pcap", frozenset({"10.77.0.1", "fd77::1"})),
        Tap("ns2", CAPTURES / "veth-offload-on-receiver.pcap", frozenset({"10.77.0.2", "fd77::2"})),
    ]
    diagnosis = diagnose(taps)
    kinds = [(f.kind, f.severity, f.tap) for f in diagnosis.findings]
    assert kinds == [
        ("bad-checksum", "fault", "ns2"),  # UDP, v4 and v6
        ("bad-checksum", "fault", "ns2"),
        ("position-contradicted", "warning", "ns2"),  # client's TCP, v4 and v6
        ("position-contradicted", "warning", "ns1"),  # server's TCP
        ("position-contradicted", "warning", "ns2"),
        ("position-contradicted", "warning", "ns1"),
    ]
    assert diagnosis.verdict.startswith(
        "FAULT: UDP 10.77.0.1:56540 -> 10.77.0.2:9999 reaches tap 'ns2' with an "
        "unfinished checksum (pseudo-header only, 0x14c1); its receiver drops it: by the "
        "tap's position"
    )
    assert diagnosis.findings[0].evidence["by_position"] is True
    # A SYN/ACK that was acknowledged is no fault, so no seed signature either.
    assert all(f.kind != "synack-repeats-syn-checksum" for f in diagnosis.findings)


def test_truncated_captures_cannot_be_judged(tmp_path: Path) -> None:
    taps = [("client-eth0", frozenset({CLIENT})), ("server-eth0", frozenset({SERVER}))]
    at = {"client-eth0": "valid", "server-eth0": "unfinished"}
    big = client_seg("PA", C_ISN + 1, 5001, 0x1001, b"z" * 500)
    diagnosis = diagnose(write_scenario(tmp_path, taps, [Sent(0.0, big, at)], snaplen=96))
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    assert diagnosis.verdict.endswith("(1 packet could not be checked)")
    assert diagnosis.flows[0].events[0].cells == ("trunc", "trunc")


# --------------------------------------------------------------------------
# Losses


LOSS_PATH = [
    ("client-eth0", frozenset({CLIENT})),
    ("switch-out", frozenset()),
    ("server-eth0", frozenset({SERVER})),
]


def test_loss_between_taps(tmp_path: Path) -> None:
    forward = {"client-eth0": "valid", "switch-out": "valid", "server-eth0": "valid"}
    backward = {"server-eth0": "valid", "switch-out": "valid", "client-eth0": "valid"}
    sent = http_exchange(forward, backward)
    request = sent[3]
    lost = replace(request, at={"client-eth0": "valid", "switch-out": "valid"})
    resent = Sent(0.0035, replace(request.seg, ip_id=0x1005), forward)
    sent[3:4] = [lost, resent]
    diagnosis = diagnose(write_scenario(tmp_path, LOSS_PATH, sent))
    assert summary(diagnosis) == [("lost-between-taps", "fault", "switch-out", FLOW)]
    (finding,) = diagnosis.findings
    assert finding.message == (
        "TCP DATA 10.0.0.1:41234 -> 10.0.0.2:80 seen at tap 'switch-out' never reached "
        "tap 'server-eth0'"
    )
    assert finding.packets == (
        "frame 4: DATA seq=1001 ack=5001 len=18 id=0x1003 csum=0x" + finding.packets[0][-4:],
    )
    assert finding.evidence["next_tap"] == "server-eth0"
    events = diagnosis.flows[0].events
    assert [(e.packet, e.retransmission, e.cells) for e in events[3:5]] == [
        ("DATA seq=1 ack=1 len=18", 0, ("ok", "ok", ".")),
        ("DATA seq=1 ack=1 len=18", 1, ("ok", "ok", "ok")),
    ]


def test_loss_of_every_packet_uses_offload_senders_for_direction(tmp_path: Path) -> None:
    """No packet reached two taps, so timestamps cannot tell the direction;
    the client is listed at the first tap only, so its packets go forward."""
    at = {"client-eth0": "valid"}
    sent = [Sent(0.0, syn(0x1001, 100), at), Sent(1.0, syn(0x1002, 1100), at)]
    diagnosis = diagnose(write_scenario(tmp_path, LOSS_PATH, sent))
    assert summary(diagnosis) == [
        ("lost-between-taps", "fault", "client-eth0", FLOW),
        ("syn-unanswered", "fault", "client-eth0", FLOW),
    ]
    assert diagnosis.findings[0].message.endswith(
        "never reached tap 'switch-out' (2 packets: SYN x2)"
    )


def test_syn_refused(tmp_path: Path) -> None:
    taps = [("client-eth0", frozenset({CLIENT})), ("server-eth0", frozenset({SERVER}))]
    forward = {"client-eth0": "valid", "server-eth0": "valid"}
    backward = {"server-eth0": "valid", "client-eth0": "valid"}
    rst = replace(synack(), flags="RA", seq=0, ack=C_ISN + 1, options=b"")
    sent = [Sent(0.0, syn(0x1001, 100), forward), Sent(0.001, rst, backward)]
    diagnosis = diagnose(write_scenario(tmp_path, taps, sent))
    assert diagnosis.ok  # a warning only
    assert summary(diagnosis) == [("syn-refused", "warning", "server-eth0", FLOW)]
    assert diagnosis.verdict.startswith(
        "WARNING: TCP SYN 10.0.0.1:41234 -> 10.0.0.2:80 was refused"
    )
    assert [e.packet for e in diagnosis.flows[0].events] == [
        "SYN seq=0",
        "RST/ACK seq=0 ack=1",
    ]


# --------------------------------------------------------------------------
# Inputs and outputs


def test_to_dict_is_json_with_stable_keys(tmp_path: Path) -> None:
    data = diagnose(seed_two_taps(tmp_path)).to_dict()
    assert list(data) == ["ok", "verdict", "taps", "flows", "findings"]
    assert json.loads(json.dumps(data)) == data
    finding = data["findings"][0]  # type: ignore[index]
    assert list(finding) == ["kind", "severity", "tap", "flow", "message", "packets", "evidence"]
    event = data["flows"][0]["events"][0]  # type: ignore[index]
    assert event["at"] == {"client-eth0": "ok", "server-eth0": "UNFINISHED"}


def test_render_numbers_tap_columns_when_names_are_long(tmp_path: Path) -> None:
    taps = seed_two_taps(tmp_path)
    long = [replace(t, name=t.name + "-with-a-very-long-descriptive-name") for t in taps]
    text = render_text(diagnose(long), width=100)
    assert "  time      dir  packet                 [1]  [2]" in text
    # Only the tap table, which names the numbers, may run past the width.
    after_taps = text[text.index("Flow ") :]
    assert max(len(line) for line in after_taps.splitlines()) <= 100


def test_render_caps_long_timelines(tmp_path: Path) -> None:
    text = render_text(diagnose(seed_two_taps(tmp_path)), max_events=1)
    assert "  ... 2 more packets" in text


def test_offload_senders_are_normalized_and_validated() -> None:
    assert Tap("t", "x.pcap", frozenset({"fd00::0001"})).offload_senders == frozenset({"fd00::1"})
    with pytest.raises(UsageError, match="tap 't'"):
        Tap("t", "x.pcap", frozenset({"not-an-address"}))


def test_unreadable_capture_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "junk.pcap").write_bytes(b"not a capture at all")
    with pytest.raises(UsageError, match="tap 'a': cannot read capture"):
        diagnose([Tap("a", tmp_path / "junk.pcap")])
    with pytest.raises(UsageError, match="tap 'b'"):
        diagnose([Tap("b", tmp_path / "missing.pcap")])


def test_analyse_of_nothing_is_ok() -> None:
    diagnosis = analyse([])
    assert (diagnosis.ok, diagnosis.taps, diagnosis.flows) == (True, (), ())


def test_findings_are_frozen(tmp_path: Path) -> None:
    finding = diagnose(seed_two_taps(tmp_path)).findings[0]
    assert isinstance(finding, Finding)
    with pytest.raises(AttributeError):
        finding.tap = "elsewhere"  # type: ignore[misc]


def test_last_packets_missing_at_the_next_tap_are_in_flight_not_lost(tmp_path: Path) -> None:
    """The captures stop right after the traffic: the final ACK, seen at the first
    taps only and later than anything the next tap captured, was still in flight."""
    forward = {"client-eth0": "valid", "switch-out": "valid", "server-eth0": "valid"}
    backward = {"server-eth0": "valid", "switch-out": "valid", "client-eth0": "valid"}
    sent = http_exchange(forward, backward)
    # The last packet goes from the server back to the client.
    sent[-1] = replace(sent[-1], at={"server-eth0": "valid", "switch-out": "valid"})
    diagnosis = diagnose(write_scenario(tmp_path, LOSS_PATH, sent))
    assert diagnosis.ok
    back = "TCP 10.0.0.2:80 -> 10.0.0.1:41234"
    assert summary(diagnosis) == [("lost-between-taps", "warning", "switch-out", back)]
    assert "probably still in flight when the captures stopped" in diagnosis.findings[0].message
    # The same packet followed by more traffic that the next tap did capture is lost.
    sent.append(Sent(sent[-1].time + 1.0, syn(0x2001, 5000), backward))
    (tmp_path / "later").mkdir()
    again = diagnose(write_scenario(tmp_path / "later", LOSS_PATH, sent))
    assert ("lost-between-taps", "fault", "switch-out", back) in summary(again)


def test_the_far_ends_own_later_packets_do_not_prove_a_tail_was_lost(tmp_path: Path) -> None:
    """Seen in CI on ovs-dpdk with busy CPUs: the client's FIN/ACK is still in the switch
    when the captures stop, while the server, waiting for it, resends its FIN, which the
    server's side captures later. That later packet went the other way: it does not show
    that the switch had passed everything the client sent, so the FIN/ACK is in flight."""
    forward = {"client-eth0": "valid", "switch-out": "valid", "server-eth0": "valid"}
    backward = {"server-eth0": "valid", "switch-out": "valid", "client-eth0": "valid"}
    sent = http_exchange(forward, backward)[:-1]  # the server never got to ACK the FIN/ACK
    client_fin = sent[-1]
    sent[-1] = replace(client_fin, at={"client-eth0": "valid"})
    server_fin = next(p for p in sent if p.seg.flags == "FA" and p.seg.sport == 80)
    resent = replace(server_fin, time=client_fin.time + 0.006)
    sent.append(replace(resent, at={"server-eth0": "valid", "switch-out": "valid"}))
    diagnosis = diagnose(write_scenario(tmp_path, LOSS_PATH, sent))
    assert diagnosis.ok, summary(diagnosis)
    assert sorted(summary(diagnosis)) == [
        ("lost-between-taps", "warning", "client-eth0", FLOW),
        ("lost-between-taps", "warning", "switch-out", BACK),
    ]
    assert all("probably still in flight" in f.message for f in diagnosis.findings)


def test_loss_at_a_tap_whose_capture_dropped_packets_is_only_a_warning(tmp_path: Path) -> None:
    forward = {"client-eth0": "valid", "switch-out": "valid", "server-eth0": "valid"}
    backward = {"server-eth0": "valid", "switch-out": "valid", "client-eth0": "valid"}
    sent = http_exchange(forward, backward)
    sent[3] = replace(sent[3], at={"client-eth0": "valid", "switch-out": "valid"})
    taps = write_scenario(tmp_path, LOSS_PATH, sent)
    taps = [replace(t, capture_drops=4) if t.name == "server-eth0" else t for t in taps]
    diagnosis = diagnose(taps)
    assert diagnosis.ok
    assert summary(diagnosis) == [("lost-between-taps", "warning", "switch-out", FLOW)]
    assert diagnosis.findings[0].message.endswith(
        "but the capture at tap 'server-eth0' itself dropped 4 packets, so it may have missed them"
    )
