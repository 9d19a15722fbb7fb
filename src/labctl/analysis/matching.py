"""Matching packets across taps: one packet on the wire as seen at each tap, its checksum
status there (the tap's position and TCP's evidence together), which way each flow runs
along the path, and the connections the packets belong to."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from labctl.analysis.checksums import PacketRecord
from labctl.analysis.diagnosis import FlowTuple, Status, Tap, TapCapture
from labctl.analysis.evidence import Evidence, Observed, judge


@dataclass(frozen=True)
class Seen:
    tap: int
    record: PacketRecord
    status: Status


@dataclass
class Packet:
    """One packet on the wire, as seen at zero or more taps."""

    flow: FlowTuple
    seen: dict[int, Seen] = field(default_factory=dict)
    retransmission: int = 0
    evidence: Evidence = field(default_factory=lambda: Evidence("none", "unjudged", ""))

    @property
    def first(self) -> Seen:
        return min(self.seen.values(), key=lambda s: (s.record.timestamp, s.tap))

    @property
    def record(self) -> PacketRecord:
        return self.first.record


def packet_identity(record: PacketRecord) -> tuple[object, ...]:
    """What stays the same for one packet at every tap: no checksum, no
    link layer. TSval tells apart IPv6 retransmissions, which lack an IP id."""
    if record.proto == "tcp":
        return (
            record.flow,
            record.tcp_flags,
            record.seq,
            record.ack,
            record.payload_len,
            record.ip_id,
            record.tsval,
        )
    return (record.flow, record.ip_id, record.payload_len, record.payload_digest)


PositionStatus = Literal["ok", "offload", "suspect", "unknown"]


def position_status(record: PacketRecord, tap: Tap) -> PositionStatus:
    """What the checksums and the tap's position alone say; "suspect" is
    unfinished or wrong where no offload explains it (see `resolve_status`)."""
    if record.ip_csum == "wrong":
        return "suspect"
    verdict = record.l4_verdict
    if verdict in ("valid", "zero-udp"):
        return "ok"
    if verdict == "unfinished" and record.src in tap.offload_senders:
        return "offload"
    if verdict in ("unfinished", "wrong"):
        return "suspect"
    return "unknown"


def resolve_status(position: PositionStatus, evidence: Evidence, tap: Tap) -> Status:
    """How a receiver after this tap sees the packet: TCP's evidence first, then
    the tap's position, else unproven."""
    if position != "suspect":
        return position
    if evidence.outcome == "accepted":
        return "accepted"
    if evidence.outcome == "rejected" or tap.positioned:
        return "bad"
    return "unproven"


def match_packets(captures: Sequence[TapCapture]) -> list[Packet]:
    packets: dict[tuple[object, ...], Packet] = {}
    positions: dict[tuple[int, tuple[int, int]], PositionStatus] = {}
    for tap_index, capture in enumerate(captures):
        ordinals: Counter[tuple[object, ...]] = Counter()
        for record in capture.capture:
            identity = packet_identity(record)
            key = (identity, ordinals[identity])
            ordinals[identity] += 1
            packet = packets.setdefault(key, Packet(record.flow))
            positions[(tap_index, record.key)] = position_status(record, capture.tap)
            packet.seen[tap_index] = Seen(tap_index, record, "unknown")
    ordered = sorted(packets.values(), key=lambda p: (p.first.record.timestamp, p.first.tap))
    _mark_retransmissions(ordered)
    observed = [
        Observed(p.flow, p.record, {t: s.record for t, s in p.seen.items()}) for p in ordered
    ]
    for packet, evidence in zip(ordered, judge(observed), strict=True):
        packet.evidence = evidence
        for tap_index, seen in packet.seen.items():
            position = positions[(tap_index, seen.record.key)]
            status = resolve_status(position, evidence, captures[tap_index].tap)
            packet.seen[tap_index] = Seen(tap_index, seen.record, status)
    return ordered


def _mark_retransmissions(packets: Sequence[Packet]) -> None:
    """A TCP segment that occupies sequence space (SYN, FIN, data) sent again
    with the same sequence number. Pure ACKs repeat theirs legitimately."""
    sent: Counter[tuple[object, ...]] = Counter()
    for packet in packets:
        record = packet.record
        consumes = record.payload_len > 0 or "S" in record.tcp_flags or "F" in record.tcp_flags
        if record.proto != "tcp" or not consumes:
            continue
        key = (packet.flow, record.seq, record.payload_len, "S" in record.tcp_flags)
        packet.retransmission = sent[key]
        sent[key] += 1


def flow_directions(packets: Sequence[Packet], taps: Sequence[Tap]) -> dict[FlowTuple, int]:
    """+1 if a flow travels from the first tap to the last, -1 back, 0 unknown."""
    votes: Counter[FlowTuple] = Counter()
    for packet in packets:
        if len(packet.seen) < 2:
            continue
        low, high = packet.seen[min(packet.seen)], packet.seen[max(packet.seen)]
        delta = high.record.timestamp - low.record.timestamp
        votes[packet.flow] += (delta > 0) - (delta < 0)
    directions: dict[FlowTuple, int] = {}
    for flow in {p.flow for p in packets}:
        vote = votes[flow]
        directions[flow] = (vote > 0) - (vote < 0) or _direction_from_senders(flow[1], taps)
    return directions


def _direction_from_senders(source: str, taps: Sequence[Tap]) -> int:
    listed = [i for i, tap in enumerate(taps) if source in tap.offload_senders]
    at_start, at_end = 0 in listed, len(taps) - 1 in listed
    if at_start and not at_end:
        return 1
    if at_end and not at_start:
        return -1
    return 0


def path_order(direction: int, tap_count: int) -> list[int]:
    """Tap indexes in the order a packet passes them (path order if unknown)."""
    order = list(range(tap_count))
    return order[::-1] if direction < 0 else order


@dataclass
class Connection:
    proto: str
    client: tuple[str, int]
    server: tuple[str, int]
    packets: list[Packet] = field(default_factory=list)

    @property
    def forward(self) -> FlowTuple:
        return (self.proto, *self.client, *self.server)


def connection_key(flow: FlowTuple) -> tuple[object, ...]:
    """The same for both directions of a flow."""
    proto, src, sport, dst, dport = flow
    return (proto, *sorted([(src, sport), (dst, dport)]))


def group_connections(packets: Sequence[Packet]) -> list[Connection]:
    """Both directions of a flow together; the client is who sent the SYN."""
    by_pair: dict[tuple[object, ...], list[Packet]] = defaultdict(list)
    for packet in packets:
        by_pair[connection_key(packet.flow)].append(packet)
    connections = []
    for members in by_pair.values():
        opener = next((p for p in members if p.record.tcp_flags == "S"), members[0])
        proto, src, sport, dst, dport = opener.flow
        connections.append(Connection(proto, (src, sport), (dst, dport), members))
    return connections
