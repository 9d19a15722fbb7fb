"""Follow packets across taps on a path and say where a checksum goes bad.

The model
---------
The caller lists the taps in path order (one end of the path to the other)
and says for each tap which source addresses are still inside their
sender's *checksum offload domain* there (`Tap.offload_senders`).

A packet is inside its sender's offload domain while it has not left the
sender's kernel as a plain sequence of bytes: inside the sending container,
on the host end of its veth, and also across a Linux bridge or the OVS
kernel datapath into another container, because the skb travels on with
its CHECKSUM_PARTIAL mark and the receiving stack trusts it. There an
*unfinished* checksum (only the pseudo-header sum) is normal: a tcpdump
shows it, nobody checks it. The domain ends where the bytes alone go on:
through userspace (the OVS netdev/DPDK datapath reads the frame with
AF_PACKET and sends a new one), over a wire, through a tap device. Past
that point every receiver verifies the checksum, so an unfinished one is a
fault. The caller knows the topology (a lab run) or says it (--sender); a
tap whose position nobody knows (`Tap.positioned` false: a pcap from
anywhere) has only the capture's own evidence.

That evidence comes first (labctl.analysis.evidence): a segment its peer
answered or acknowledged passed the receiver's checksum check, whatever a
tap showed; a segment sent again and again and never acknowledged, a SYN
never answered, did not. So, per packet and tap:

- `valid` (or a zero UDP checksum over IPv4): ok;
- `unfinished` where the source is in `offload_senders`: "offload", normal;
- `unfinished` elsewhere, `wrong`, a wrong IPv4 header checksum:
  - acknowledged by the peer: "accepted", never a fault; where the tap's
    position says a receiver checks it, a warning says that position and
    evidence disagree;
  - sent again and never acknowledged: bad, a fault quoting the evidence;
  - no evidence (UDP, the capture ended, one direction only): bad by the
    tap's position where that is known, otherwise "unproven", a warning
    that says how to prove it;
- `truncated`, `fragment`: cannot be judged.

Packets are matched across taps by their identity (`packet_identity`), and
the n-th packet of an identity at one tap is the n-th at another. Direction
along the path is decided per flow from timestamps (all taps are captured
on one host clock) and, where no packet of the flow reached two taps, from
which end of the path lists the source in `offload_senders`.

A tap off the path (`Tap.off_path`: another VLAN's port, a branch) is no hop
of it: it is left out of the matching, the directions and every detector above,
and reported on its own with what reached it (`seen-off-path`): a fault where
the caller knows the traffic can never get there (`Tap.isolation`, e.g. a port
of another VLAN), a warning elsewhere, since a learning switch floods
broadcasts and frames to unknown MAC addresses to every port of their VLAN.

This module reads the captures and puts the diagnosis together; the packets are
matched in labctl.analysis.matching, the findings come from the detectors in
labctl.analysis.findings, the data types are in labctl.analysis.diagnosis and
labctl.analysis.diagnosis_text renders a diagnosis as text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from labctl.analysis.checksums import Capture, capture_interfaces, capture_stem, read_pcap
from labctl.analysis.diagnosis import (
    VERDICT_KEYS,
    Diagnosis,
    FlowTimeline,
    FlowTuple,
    Tap,
    TapCapture,
    TapSummary,
    TimelineEvent,
)
from labctl.analysis.findings import (
    checksum_findings,
    contradiction_findings,
    handshake_findings,
    headline,
    loss_findings,
    off_path_findings,
    signature_findings,
    sorted_findings,
    unproven_findings,
)
from labctl.analysis.matching import (
    Connection,
    Packet,
    Seen,
    flow_directions,
    group_connections,
    match_packets,
)
from labctl.analysis.packet_words import describe_packet, endpoint
from labctl.errors import UsageError


def diagnose(taps: Sequence[Tap]) -> Diagnosis:
    """Read each tap's capture and analyse them together."""
    return analyse([TapCapture(tap, _read(tap)) for tap in taps])


def _read(tap: Tap) -> Capture:
    try:
        return read_pcap(tap.pcap, tap.interface)
    except (OSError, ValueError) as error:
        raise UsageError(f"tap {tap.name!r}: cannot read capture {tap.pcap}: {error}") from error


def capture_points(path: Path) -> list[tuple[str, int | None]]:
    """The taps one capture file makes, as (name, interface) in file order.

    A pcapng file with frames on several interfaces (dumpcap -i eth0 -i any)
    holds several capture points: one tap per interface, named
    `<stem>:<if_name>`, or `<stem>:if<N>` (N: the interface's number in the
    file, see read_pcap) when the interface has no name or shares it with
    another one of the file. A `tcpdump -i any` file (SLL2) with frames of
    several kernel interfaces is one tap per interface, `<stem>:ifindex<N>`.
    Any other file is one tap named by its stem (without .pcap, .pcapng, .gz),
    reading every frame (interface None).
    """
    try:
        interfaces = [i for i in capture_interfaces(path) if i.frames]
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot read capture {path}: {error}") from error
    stem = capture_stem(path)
    if len(interfaces) <= 1:
        return [(stem, None)]
    names = Counter(i.name for i in interfaces)
    return [
        (f"{stem}:{i.name if i.name and names[i.name] == 1 else f'if{i.number}'}", i.number)
        for i in interfaces
    ]


def analyse(captures: Sequence[TapCapture]) -> Diagnosis:
    """Pure: the diagnosis of captures already read, taps in path order. Taps off the
    path (`Tap.off_path`) may stand anywhere in the list: they are left out of the path
    order and only say what of the traffic reached them."""
    on_path = [c for c in captures if not c.tap.off_path]
    off_path = [c for c in captures if c.tap.off_path]
    if off_path and not on_path:
        raise UsageError(
            "every tap is off the path: an off-path tap's count means something only beside "
            "a tap on the path that saw the traffic; put at least one tap on the path"
        )
    taps = [c.tap for c in on_path]
    packets = match_packets(on_path)
    directions = flow_directions(packets, taps)
    connections = group_connections(packets)
    findings = sorted_findings(
        checksum_findings(packets, taps, directions)
        + signature_findings(packets, taps, directions)
        + contradiction_findings(packets, taps)
        + unproven_findings(packets, taps)
        + loss_findings(packets, taps, directions)
        + handshake_findings(connections, taps, directions)
        + off_path_findings(packets, off_path)
    )
    ok = not any(f.severity == "fault" for f in findings)
    path_index = {id(c): i for i, c in enumerate(on_path)}
    return Diagnosis(
        ok=ok,
        verdict=headline(findings, packets, [c.tap.name for c in off_path]),
        taps=tuple(_tap_summary(c, path_index.get(id(c)), packets) for c in captures),
        flows=tuple(_timeline(c, len(taps)) for c in connections),
        findings=tuple(findings),
    )


def _tap_summary(
    capture: TapCapture, tap_index: int | None, packets: Sequence[Packet]
) -> TapSummary:
    """`tap_index`: the tap's place in the path order; None for a tap off the path, whose
    packets are not matched and keep their bare checksum verdicts."""
    statuses = {
        seen.record.key: seen.status
        for packet in packets
        if tap_index is not None and (seen := packet.seen.get(tap_index)) is not None
    }
    verdicts: Counter[str] = Counter()
    for record in capture.capture:
        status = statuses.get(record.key)
        if status in ("offload", "accepted") and record.l4_verdict in ("unfinished", "wrong"):
            verdicts[status] += 1
        else:
            verdicts[record.l4_verdict] += 1
    return TapSummary(
        name=capture.tap.name,
        pcap=str(capture.tap.pcap),
        frames=capture.capture.frames,
        packets=len(capture.capture),
        skipped=dict(capture.capture.skipped),
        ip_header_wrong=sum(1 for r in capture.capture if r.ip_csum == "wrong"),
        verdicts={key: verdicts[key] for key in VERDICT_KEYS},
        off_path=capture.tap.off_path,
        isolation=capture.tap.isolation,
    )


def _timeline(connection: Connection, tap_count: int) -> FlowTimeline:
    start = connection.packets[0].first.record.timestamp
    initial = _initial_sequences(connection.packets)
    events = tuple(
        TimelineEvent(
            time=packet.first.record.timestamp - start,
            direction="->" if packet.flow == connection.forward else "<-",
            packet=describe_packet(packet.record, initial),
            retransmission=packet.retransmission,
            cells=tuple(_cell(packet.seen.get(t)) for t in range(tap_count)),
        )
        for packet in connection.packets
    )
    records = [seen.record for packet in connection.packets for seen in packet.seen.values()]
    return FlowTimeline(
        proto=connection.proto,
        client=endpoint(*connection.client),
        server=endpoint(*connection.server),
        events=events,
        tunnels=tuple(sorted({r.tunnel for r in records if r.tunnel})),
        carries=tuple(sorted({r.carries for r in records if r.carries})),
    )


def _initial_sequences(packets: Sequence[Packet]) -> dict[FlowTuple, int]:
    """Per direction the first sequence number, so timelines read like
    tcpdump's relative numbers (SYN seq=0, SYN/ACK ack=1)."""
    initial: dict[FlowTuple, int] = {}
    for packet in packets:
        record = packet.record
        if record.seq is None:
            continue
        if "S" in record.tcp_flags:
            initial[packet.flow] = record.seq
        else:
            initial.setdefault(packet.flow, record.seq)
    return initial


def _cell(seen: Seen | None) -> str:
    if seen is None:
        return "."
    record = seen.record
    if seen.status == "ok":
        return "ok"
    if seen.status in ("offload", "accepted"):
        return seen.status
    if seen.status == "unproven":
        return "unfinished?" if record.l4_verdict == "unfinished" else "wrong?"
    if seen.status == "bad":
        if record.ip_csum == "wrong":
            return "BAD-IP"
        return "UNFINISHED" if record.l4_verdict == "unfinished" else "WRONG"
    return "trunc" if record.l4_verdict == "truncated" else "frag"
