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
"""

from __future__ import annotations

import ipaddress
import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from labctl.analysis.checksums import Capture, PacketRecord, read_pcap
from labctl.analysis.evidence import Evidence, Observed, judge
from labctl.analysis.tables import format_table
from labctl.errors import UsageError

# ok: checksum correct. offload: unfinished where the tap's position says TX offload
# leaves it. accepted: unfinished or wrong, yet TCP shows its receiver took it.
# bad: a receiver drops it (TCP's evidence, or the tap's position where the capture
# has none). unproven: unfinished or wrong, and nothing proves either way.
Status = Literal["ok", "offload", "accepted", "bad", "unproven", "unknown"]
Severity = Literal["fault", "warning"]
JsonScalar = str | int | float | bool | None
FlowTuple = tuple[str, str, int, str, int]  # proto, src, sport, dst, dport

# Findings in the order a reader wants them: the cause before its symptoms.
FINDING_KINDS = (
    "bad-checksum",
    "synack-repeats-syn-checksum",
    "position-contradicted",
    "checksum-unproven",
    "lost-between-taps",
    "syn-unanswered",
    "syn-refused",
)
VERDICT_KEYS = (
    "valid",
    "offload",
    "accepted",
    "unfinished",
    "wrong",
    "zero-udp",
    "truncated",
    "fragment",
)


# --------------------------------------------------------------------------
# Input


@dataclass(frozen=True)
class Tap:
    """One capture point on the path.

    offload_senders: source addresses whose packets reach this tap still
    inside their sender's checksum offload domain (see the module doc),
    e.g. the container's own address for a tap inside the container or on
    the host end of its veth.
    """

    name: str
    pcap: str | Path
    offload_senders: frozenset[str] = frozenset()
    capture_drops: int = 0  # packets the capture itself dropped (tcpdump's kernel drops)
    # The position is known (a lab's topology, or --sender): a source not in
    # offload_senders has left its sender's kernel here. False for a pcap from
    # anywhere: then only TCP's evidence can call an unfinished checksum bad.
    positioned: bool = True

    def __post_init__(self) -> None:
        # Compare addresses, not spellings: "fd00::0001" is "fd00::1".
        try:
            normalized = frozenset(str(ipaddress.ip_address(a)) for a in self.offload_senders)
        except ValueError as error:
            raise UsageError(f"tap {self.name!r}: {error}") from error
        object.__setattr__(self, "offload_senders", normalized)


@dataclass(frozen=True)
class TapCapture:
    tap: Tap
    capture: Capture


# --------------------------------------------------------------------------
# Output


@dataclass(frozen=True)
class TapSummary:
    name: str
    pcap: str
    frames: int
    packets: int
    skipped: Mapping[str, int]
    ip_header_wrong: int
    verdicts: Mapping[str, int]  # VERDICT_KEYS; "offload" = unfinished, expected here

    def to_dict(self) -> dict[str, object]:
        return _fields_as_json(self)


@dataclass(frozen=True)
class TimelineEvent:
    time: float  # seconds since the flow's first packet
    direction: str  # "->" from the client, "<-" towards it
    packet: str  # e.g. "SYN/ACK seq=0 ack=1", sequence numbers relative
    retransmission: int  # 0, or n for the n-th resend of the same segment
    cells: tuple[str, ...]  # per tap in path order, see CELL_LEGEND

    def to_dict(self, tap_names: Sequence[str]) -> dict[str, object]:
        return {
            "time": round(self.time, 6),
            "direction": self.direction,
            "packet": self.packet,
            "retransmission": self.retransmission,
            "at": dict(zip(tap_names, self.cells, strict=True)),
        }


CELL_LEGEND = (
    "ok = checksum correct; offload = unfinished where TX offload leaves it, normal; "
    "accepted = unfinished or wrong here, yet TCP shows the receiver took it; "
    "unfinished?/wrong? = nothing proves whether the receiver took it; "
    "UNFINISHED = pseudo-header sum only, receiver drops it; WRONG = any other bad value; "
    "BAD-IP = IPv4 header checksum wrong; trunc/frag = cannot be checked; . = not seen"
)


@dataclass(frozen=True)
class FlowTimeline:
    proto: str
    client: str  # "10.0.0.1:41234", the SYN's sender (or the first sender)
    server: str
    events: tuple[TimelineEvent, ...]

    @property
    def label(self) -> str:
        return f"{self.proto.upper()} {self.client} <-> {self.server}"

    def to_dict(self, tap_names: Sequence[str]) -> dict[str, object]:
        return {
            "flow": self.label,
            "proto": self.proto,
            "client": self.client,
            "server": self.server,
            "events": [event.to_dict(tap_names) for event in self.events],
        }


@dataclass(frozen=True)
class Finding:
    kind: str  # one of FINDING_KINDS
    severity: Severity
    tap: str  # where it shows (for a loss: the last tap that saw the packets)
    flow: str  # "TCP 10.0.0.1:41234 -> 10.0.0.2:80"
    message: str  # one sentence a user can act on
    packets: tuple[str, ...]  # the packets concerned, as seen at `tap`
    evidence: Mapping[str, JsonScalar] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return _fields_as_json(self)


@dataclass(frozen=True)
class Diagnosis:
    ok: bool  # no finding of severity "fault"
    verdict: str  # one line: "FAULT: ..." / "WARNING: ..." / "OK: ..."
    taps: tuple[TapSummary, ...]
    flows: tuple[FlowTimeline, ...]
    findings: tuple[Finding, ...]

    def to_dict(self) -> dict[str, object]:
        names = [tap.name for tap in self.taps]
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "taps": [tap.to_dict() for tap in self.taps],
            "flows": [flow.to_dict(names) for flow in self.flows],
            "findings": [finding.to_dict() for finding in self.findings],
        }


def _fields_as_json(instance: TapSummary | Finding) -> dict[str, object]:
    """Fields in declaration order (stable keys), mappings and tuples made plain."""
    plain: dict[str, object] = {}
    for item in fields(instance):
        value = getattr(instance, item.name)
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, tuple):
            value = list(value)
        plain[item.name] = value
    return plain


# --------------------------------------------------------------------------
# Entry points


def diagnose(taps: Sequence[Tap]) -> Diagnosis:
    """Read each tap's capture and analyse them together."""
    return analyse([TapCapture(tap, _read(tap)) for tap in taps])


def _read(tap: Tap) -> Capture:
    try:
        return read_pcap(tap.pcap)
    except (OSError, ValueError) as error:
        raise UsageError(f"tap {tap.name!r}: cannot read capture {tap.pcap}: {error}") from error


def analyse(captures: Sequence[TapCapture]) -> Diagnosis:
    """Pure: the diagnosis of captures already read, taps in path order."""
    taps = [c.tap for c in captures]
    packets = _match_packets(captures)
    directions = _flow_directions(packets, taps)
    connections = _connections(packets)
    findings = _sorted_findings(
        _checksum_findings(packets, taps, directions)
        + _signature_findings(packets, taps, directions)
        + _contradiction_findings(packets, taps)
        + _unproven_findings(packets, taps)
        + _loss_findings(packets, taps, directions)
        + _handshake_findings(connections, taps, directions)
    )
    ok = not any(f.severity == "fault" for f in findings)
    return Diagnosis(
        ok=ok,
        verdict=_headline(findings, packets),
        taps=tuple(_tap_summary(c, i, packets) for i, c in enumerate(captures)),
        flows=tuple(_timeline(c, len(taps)) for c in connections),
        findings=tuple(findings),
    )


# --------------------------------------------------------------------------
# Matching packets across taps


@dataclass(frozen=True)
class _Seen:
    tap: int
    record: PacketRecord
    status: Status


@dataclass
class _Packet:
    """One packet on the wire, as seen at zero or more taps."""

    flow: FlowTuple
    seen: dict[int, _Seen] = field(default_factory=dict)
    retransmission: int = 0
    evidence: Evidence = field(default_factory=lambda: Evidence("none", "unjudged", ""))

    @property
    def first(self) -> _Seen:
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


def _match_packets(captures: Sequence[TapCapture]) -> list[_Packet]:
    packets: dict[tuple[object, ...], _Packet] = {}
    positions: dict[tuple[int, int], PositionStatus] = {}
    for tap_index, capture in enumerate(captures):
        ordinals: Counter[tuple[object, ...]] = Counter()
        for record in capture.capture:
            identity = packet_identity(record)
            key = (identity, ordinals[identity])
            ordinals[identity] += 1
            packet = packets.setdefault(key, _Packet(record.flow))
            positions[(tap_index, record.index)] = position_status(record, capture.tap)
            packet.seen[tap_index] = _Seen(tap_index, record, "unknown")
    ordered = sorted(packets.values(), key=lambda p: (p.first.record.timestamp, p.first.tap))
    _mark_retransmissions(ordered)
    observed = [
        Observed(p.flow, p.record, {t: s.record for t, s in p.seen.items()}) for p in ordered
    ]
    for packet, evidence in zip(ordered, judge(observed), strict=True):
        packet.evidence = evidence
        for tap_index, seen in packet.seen.items():
            position = positions[(tap_index, seen.record.index)]
            status = resolve_status(position, evidence, captures[tap_index].tap)
            packet.seen[tap_index] = _Seen(tap_index, seen.record, status)
    return ordered


def _mark_retransmissions(packets: Sequence[_Packet]) -> None:
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


def _flow_directions(packets: Sequence[_Packet], taps: Sequence[Tap]) -> dict[FlowTuple, int]:
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


def _path_order(direction: int, tap_count: int) -> list[int]:
    """Tap indexes in the order a packet passes them (path order if unknown)."""
    order = list(range(tap_count))
    return order[::-1] if direction < 0 else order


# --------------------------------------------------------------------------
# Findings


def _checksum_findings(
    packets: Sequence[_Packet], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
) -> list[Finding]:
    """The first tap, along the packet's way, where its checksum is bad."""
    groups: dict[tuple[object, ...], list[tuple[_Packet, _Seen, _Seen | None]]] = defaultdict(list)
    for packet in packets:
        first_bad, before = _first_bad(packet, directions[packet.flow], len(taps))
        if first_bad is None:
            continue
        history = None if before is None else (before.tap, before.status)
        kind = _bad_kind(first_bad.record)
        key = (packet.flow, first_bad.tap, kind, history, packet.evidence.reason)
        groups[key].append((packet, first_bad, before))
    return [_checksum_finding(group, taps) for group in groups.values()]


def _first_bad(
    packet: _Packet, direction: int, tap_count: int
) -> tuple[_Seen | None, _Seen | None]:
    before: _Seen | None = None
    for tap_index in _path_order(direction, tap_count):
        seen = packet.seen.get(tap_index)
        if seen is None:
            continue
        if seen.status == "bad":
            return seen, before
        before = seen
    return None, None


def _bad_kind(record: PacketRecord) -> str:
    return "ip-header" if record.ip_csum == "wrong" else record.l4_verdict


def _checksum_finding(
    group: Sequence[tuple[_Packet, _Seen, _Seen | None]], taps: Sequence[Tap]
) -> Finding:
    packet, seen, before = group[0]
    record = seen.record
    kind = _bad_kind(record)
    message = (
        f"{_subject(record)} reaches tap '{taps[seen.tap].name}' with {_what_is_bad(record)}; "
        f"{_why_bad(packet.evidence, taps[seen.tap])}; {_history(before, taps)}"
        f"{_count_note([s.record for _, s, _ in group])}"
    )
    return Finding(
        kind="bad-checksum",
        severity="fault",
        tap=taps[seen.tap].name,
        flow=_flow_label(record),
        message=message,
        packets=tuple(_packet_ref(s.record) for _, s, _ in group),
        evidence={
            "tcp_evidence": packet.evidence.text if packet.evidence.proven else None,
            "by_position": not packet.evidence.proven,
            "verdict": kind,
            "checksum": _hex(record.l4_csum),
            "expected": _hex(record.l4_expected),
            "pseudo_header": _hex(record.l4_pseudo),
            "pseudo_header_signature": record.l4_csum == record.l4_pseudo,
            "previous_tap": None if before is None else taps[before.tap].name,
            "previous_status": None if before is None else before.status,
            "count": len(group),
            "first_time": record.timestamp,
        },
    )


def _what_is_bad(record: PacketRecord) -> str:
    if record.ip_csum == "wrong":
        return "a wrong IPv4 header checksum"
    if record.l4_verdict == "unfinished":
        return f"an unfinished checksum (pseudo-header only, {_hex(record.l4_csum)})"
    return (
        f"a wrong checksum {_hex(record.l4_csum)} (correct: {_hex(record.l4_expected)}; "
        f"not the pseudo-header sum {_hex(record.l4_pseudo)})"
    )


def _why_bad(evidence: Evidence, tap: Tap) -> str:
    if evidence.proven and not tap.positioned:
        return (
            f"its receiver did not accept it: {evidence.text} (where this tap sits is not "
            f"known: if it is on the sender's side, the checksum may have been finished "
            f"later and the loss have another cause; {HOW_TO_PROVE})"
        )
    if evidence.proven:
        return f"its receiver did not accept it: {evidence.text}"
    return (
        f"its receiver drops it: by the tap's position the packet has left its sender's "
        f"kernel, where receivers check the checksum (TCP shows nothing either way: "
        f"{evidence.text})"
    )


def _history(before: _Seen | None, taps: Sequence[Tap]) -> str:
    if before is None:
        return "no tap before it saw it"
    name = taps[before.tap].name
    if before.status == "ok":
        return f"it was correct at tap '{name}'"
    if before.status in ("accepted", "unproven"):
        return f"it was already {_bad_kind(before.record)} at tap '{name}'"
    if before.status == "offload":
        return (
            f"it left its sender unfinished at tap '{name}', as TX offload does, "
            "and nothing on the way finished it"
        )
    return f"at tap '{name}' it could not be checked ({before.record.l4_verdict})"


HOW_TO_PROVE = (
    "to prove it, say where each tap sits with --sender TAP=ADDR (the senders whose packets "
    "are still inside their own kernel there; every other source has left its kernel), or "
    "reproduce it as a lab run (labctl run), where every tap's position is known; a second "
    "tap at the receiver's side shows whether anything on the way finished the checksum"
)


def _contradiction_findings(packets: Sequence[_Packet], taps: Sequence[Tap]) -> list[Finding]:
    """Position says a receiver after the tap checks the checksum and drops the
    packet; TCP says the receiver took it. Say so, do not pick one silently."""
    findings = []
    groups = _first_sightings(
        packets, lambda t, s: s.status == "accepted" and taps[t].positioned, by_evidence=False
    )
    for (_, tap_index, _, _), group in groups.items():
        packet, seen = group[0]
        message = (
            f"{_subject(seen.record)} carries {_what_is_bad(seen.record)} at tap "
            f"'{taps[tap_index].name}', past its sender's kernel by the topology, where its "
            f"receiver should drop it; yet TCP shows the receiver took it "
            f"({packet.evidence.text}): something after the tap finished the checksum, or the "
            "receiver did not check it (as a veth did before Linux 4.4, marking such packets "
            "CHECKSUM_UNNECESSARY)"
        )
        evidence = {"tcp_evidence": packet.evidence.text}
        tap = taps[tap_index]
        findings.append(_warning("position-contradicted", group, tap, message, evidence))
    return findings


def _unproven_findings(packets: Sequence[_Packet], taps: Sequence[Tap]) -> list[Finding]:
    """Unfinished or wrong where nothing proves whether its receiver took it."""
    findings = []
    groups = _first_sightings(packets, lambda _, s: s.status == "unproven")
    for (_, tap_index, kind, _), group in groups.items():
        packet, seen = group[0]
        normal = (
            "an unfinished checksum is normal where the packet is still inside its sender's "
            "kernel (TX offload) and a fault where its receiver checks it"
            if kind == "unfinished"
            else "a capture can show a checksum wrong that the receiver never checks "
            "(e.g. segments merged by GRO)"
        )
        message = (
            f"{_subject(seen.record)} carries {_what_is_bad(seen.record)} at tap "
            f"'{taps[tap_index].name}', and the capture cannot prove whether its receiver took "
            f"it: {packet.evidence.text}; {normal}; {HOW_TO_PROVE}"
        )
        evidence = {"verdict": kind, "missing": packet.evidence.reason}
        findings.append(_warning("checksum-unproven", group, taps[tap_index], message, evidence))
    return findings


_Sighting = tuple[_Packet, _Seen]


def _first_sightings(
    packets: Sequence[_Packet], wanted: Callable[[int, _Seen], bool], by_evidence: bool = True
) -> dict[tuple[FlowTuple, int, str, str], list[_Sighting]]:
    """Per packet the first tap (in path order) where `wanted` holds, grouped by
    flow, tap, checksum verdict and (by_evidence) what the evidence lacks."""
    groups: dict[tuple[FlowTuple, int, str, str], list[_Sighting]] = defaultdict(list)
    for packet in packets:
        for tap_index, seen in sorted(packet.seen.items()):
            if wanted(tap_index, seen):
                reason = packet.evidence.reason if by_evidence else ""
                key = (packet.flow, tap_index, _bad_kind(seen.record), reason)
                groups[key].append((packet, seen))
                break
    return groups


def _warning(
    kind: str,
    group: Sequence[_Sighting],
    tap: Tap,
    message: str,
    evidence: Mapping[str, JsonScalar],
) -> Finding:
    records = [seen.record for _, seen in group]
    return Finding(
        kind=kind,
        severity="warning",
        tap=tap.name,
        flow=_flow_label(records[0]),
        message=message + _count_note(records),
        packets=tuple(_packet_ref(r) for r in records),
        evidence={**evidence, "count": len(records), "first_time": records[0].timestamp},
    )


def _signature_findings(
    packets: Sequence[_Packet], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
) -> list[Finding]:
    """The seed bug's fingerprint: a bad SYN/ACK whose checksum field holds
    the very value the client's SYN carried. Both are the pseudo-header sum,
    which does not depend on the direction."""
    syn_values: dict[tuple[FlowTuple, int | None], list[_Seen]] = defaultdict(list)
    for packet in packets:
        if packet.record.tcp_flags == "S":
            for seen in packet.seen.values():
                # Only an unfinished SYN: a finished one matching by chance proves nothing.
                if seen.record.l4_verdict == "unfinished":
                    syn_values[(packet.flow, seen.record.l4_csum)].append(seen)
    findings: list[Finding] = []
    reported: set[FlowTuple] = set()
    for packet in packets:
        if packet.record.tcp_flags != "SA" or packet.flow in reported:
            continue
        bad, _ = _first_bad(packet, directions[packet.flow], len(taps))
        # Where a tap's position is unknown, a SYN/ACK unfinished like its SYN is what
        # offload looks like on any host; only past the sender's kernel is it the seed's mark.
        if bad is None or not bad.record.looks_unfinished or not taps[bad.tap].positioned:
            continue
        syns = syn_values.get((_reverse(packet.flow), bad.record.l4_csum))
        if syns:
            reported.add(packet.flow)
            findings.append(_signature_finding(bad, syns[0], taps))
    return findings


def _signature_finding(synack: _Seen, syn: _Seen, taps: Sequence[Tap]) -> Finding:
    record = synack.record
    value = record.l4_csum
    message = (
        f"TCP SYN/ACK {_endpoint(record.src, record.sport)} -> "
        f"{_endpoint(record.dst, record.dport)} carries at tap '{taps[synack.tap].name}' "
        f"the checksum {_hex(value)} that the client's SYN carried at tap '{taps[syn.tap].name}'"
    )
    message += (
        ": both hold only the pseudo-header sum, which is the same in both directions "
        "for segments of equal length (TX checksum offload on both ends, and a switch that "
        "forwards the packets without finishing their checksums)"
    )
    return Finding(
        kind="synack-repeats-syn-checksum",
        severity="fault",
        tap=taps[synack.tap].name,
        flow=_flow_label(record),
        message=message,
        packets=(_packet_ref(record), f"{_packet_ref(syn.record)} at '{taps[syn.tap].name}'"),
        evidence={
            "checksum": _hex(value),
            "syn_tap": taps[syn.tap].name,
            "pseudo_header_signature": value == record.l4_pseudo,
            "first_time": record.timestamp,
        },
    )


def _loss_findings(
    packets: Sequence[_Packet], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
) -> list[Finding]:
    """Seen at a tap, never at the next one nor any after it. Taps are
    assumed to capture over the same time span; flows whose direction is
    unknown are not judged."""
    groups: dict[tuple[FlowTuple, int, int], list[PacketRecord]] = defaultdict(list)
    for packet in packets:
        direction = directions[packet.flow]
        if direction == 0:
            continue
        order = _path_order(direction, len(taps))
        last = max(order.index(tap) for tap in packet.seen)
        if last + 1 < len(order):
            last_tap, next_tap = order[last], order[last + 1]
            groups[(packet.flow, last_tap, next_tap)].append(packet.seen[last_tap].record)
    last_seen = _last_timestamps(packets)
    end = max(last_seen.values(), default=0.0)
    findings = []
    for (_, last_tap, next_tap), records in groups.items():
        # Packets at the very end that a working next tap (it captured other packets) could
        # not have seen before the captures stopped are in flight, not lost: a warning.
        in_flight = [
            r
            for r in records
            if next_tap in last_seen
            and r.timestamp > last_seen[next_tap]
            and end - r.timestamp <= TAIL_SECONDS
        ]
        lost = [r for r in records if r not in in_flight]
        if lost:
            # A tap whose capture dropped packets cannot prove that a packet never came.
            severity: Severity = "warning" if taps[next_tap].capture_drops else "fault"
            findings.append(_loss_finding(lost, severity, taps, last_tap, next_tap))
        if in_flight:
            findings.append(_loss_finding(in_flight, "warning", taps, last_tap, next_tap))
    return findings


TAIL_SECONDS = 0.05
"""Packets this close to the end of the captures may still have been in flight."""


def _last_timestamps(packets: Sequence[_Packet]) -> dict[int, float]:
    last: dict[int, float] = {}
    for packet in packets:
        for tap, seen in packet.seen.items():
            last[tap] = max(last.get(tap, 0.0), seen.record.timestamp)
    return last


def _loss_finding(
    records: Sequence[PacketRecord],
    severity: Severity,
    taps: Sequence[Tap],
    last_tap: int,
    next_tap: int,
) -> Finding:
    first = records[0]
    message = (
        f"{_subject(first)} seen at tap '{taps[last_tap].name}' never reached "
        f"tap '{taps[next_tap].name}'{_count_note(records)}"
    )
    drops = taps[next_tap].capture_drops
    if severity == "warning" and drops:
        message += (
            f"; but the capture at tap '{taps[next_tap].name}' itself dropped {drops} packets, "
            "so it may have missed them"
        )
    elif severity == "warning":
        message += (
            f"; they were the last packets captured and tap '{taps[next_tap].name}' saw "
            "nothing after them, so they were probably still in flight when the captures stopped"
        )
    return Finding(
        kind="lost-between-taps",
        severity=severity,
        tap=taps[last_tap].name,
        flow=_flow_label(first),
        message=message,
        packets=tuple(_packet_ref(r) for r in records),
        evidence={
            "next_tap": taps[next_tap].name,
            "count": len(records),
            "first_time": first.timestamp,
        },
    )


@dataclass
class _Connection:
    proto: str
    client: tuple[str, int]
    server: tuple[str, int]
    packets: list[_Packet] = field(default_factory=list)

    @property
    def forward(self) -> FlowTuple:
        return (self.proto, *self.client, *self.server)


def _connections(packets: Sequence[_Packet]) -> list[_Connection]:
    """Both directions of a flow together; the client is who sent the SYN."""
    by_pair: dict[tuple[object, ...], list[_Packet]] = defaultdict(list)
    for packet in packets:
        proto, src, sport, dst, dport = packet.flow
        by_pair[(proto, *sorted([(src, sport), (dst, dport)]))].append(packet)
    connections = []
    for members in by_pair.values():
        opener = next((p for p in members if p.record.tcp_flags == "S"), members[0])
        proto, src, sport, dst, dport = opener.flow
        connections.append(_Connection(proto, (src, sport), (dst, dport), members))
    return connections


def _handshake_findings(
    connections: Sequence[_Connection], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
) -> list[Finding]:
    findings = []
    for connection in connections:
        syns = [p for p in connection.packets if p.flow == connection.forward and _is_syn(p)]
        if not syns:
            continue
        replies = {p.record.tcp_flags for p in connection.packets if p.flow != connection.forward}
        if any("S" in flags and "A" in flags for flags in replies):
            continue
        refused = any("R" in flags for flags in replies)
        findings.append(_handshake_finding(syns, refused, taps, directions[connection.forward]))
    return findings


def _is_syn(packet: _Packet) -> bool:
    return packet.record.tcp_flags == "S"


def _handshake_finding(
    syns: Sequence[_Packet], refused: bool, taps: Sequence[Tap], direction: int
) -> Finding:
    order = _path_order(direction, len(taps))
    furthest = max((order.index(t) for p in syns for t in p.seen), default=0)
    tap_index = order[furthest]
    at_tap = [p.seen[tap_index].record for p in syns if tap_index in p.seen]
    first = syns[0].record
    times = "once" if len(syns) == 1 else f"{len(syns)} times"
    subject = f"TCP SYN {_endpoint(first.src, first.sport)} -> {_endpoint(first.dst, first.dport)}"
    if refused:
        message = f"{subject} was refused: the answer was a RST, nothing listens on that port"
    else:
        message = (
            f"{subject} was sent {times} and never answered: no SYN/ACK at any tap; "
            f"last seen at tap '{taps[tap_index].name}'"
        )
    return Finding(
        kind="syn-refused" if refused else "syn-unanswered",
        severity="fault" if len(syns) > 1 and not refused else "warning",
        tap=taps[tap_index].name,
        flow=_flow_label(first),
        message=message,
        packets=tuple(_packet_ref(r) for r in at_tap),
        evidence={"transmissions": len(syns), "first_time": first.timestamp},
    )


def _sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    def key(finding: Finding) -> tuple[int, float, str, str]:
        first_time = finding.evidence.get("first_time")
        time = float(first_time) if isinstance(first_time, int | float) else 0.0
        return (FINDING_KINDS.index(finding.kind), time, finding.tap, finding.flow)

    return sorted(findings, key=key)


def _headline(findings: Sequence[Finding], packets: Sequence[_Packet]) -> str:
    if findings:
        worst = next((f for f in findings if f.severity == "fault"), findings[0])
        return f"{worst.severity.upper()}: {worst.message}"
    unknown = sum(1 for p in packets if all(s.status == "unknown" for s in p.seen.values()))
    plural = "s" if unknown != 1 else ""
    note = f" ({unknown} packet{plural} could not be checked)" if unknown else ""
    return f"OK: no checksum a receiver checks is bad, no packet lost between taps{note}"


# --------------------------------------------------------------------------
# Summaries and timelines


def _tap_summary(capture: TapCapture, tap_index: int, packets: Sequence[_Packet]) -> TapSummary:
    statuses = {
        seen.record.index: seen.status
        for packet in packets
        if (seen := packet.seen.get(tap_index)) is not None
    }
    verdicts: Counter[str] = Counter()
    for record in capture.capture:
        status = statuses.get(record.index)
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
    )


def _timeline(connection: _Connection, tap_count: int) -> FlowTimeline:
    start = connection.packets[0].first.record.timestamp
    initial = _initial_sequences(connection.packets)
    events = tuple(
        TimelineEvent(
            time=packet.first.record.timestamp - start,
            direction="->" if packet.flow == connection.forward else "<-",
            packet=_describe(packet.record, initial),
            retransmission=packet.retransmission,
            cells=tuple(_cell(packet.seen.get(t)) for t in range(tap_count)),
        )
        for packet in connection.packets
    )
    return FlowTimeline(
        proto=connection.proto,
        client=_endpoint(*connection.client),
        server=_endpoint(*connection.server),
        events=events,
    )


def _initial_sequences(packets: Sequence[_Packet]) -> dict[FlowTuple, int]:
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


def _cell(seen: _Seen | None) -> str:
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


# --------------------------------------------------------------------------
# Words


def tcp_label(record: PacketRecord) -> str:
    """SYN, SYN/ACK, ACK, DATA, FIN/ACK, RST, RST/ACK; UDP for datagrams."""
    if record.proto != "tcp":
        return "UDP"
    flags = record.tcp_flags
    parts = [name for letter, name in (("S", "SYN"), ("F", "FIN"), ("R", "RST")) if letter in flags]
    if record.payload_len:
        parts.append("DATA")
    if "A" in flags and (len(parts) == 1 and parts[0] != "DATA" or not parts):
        parts.append("ACK")
    return "/".join(parts) or "NULL"


def _describe(record: PacketRecord, initial: Mapping[FlowTuple, int] | None = None) -> str:
    """Like "SYN/ACK seq=0 ack=1": relative to `initial` when given, else absolute."""
    label = tcp_label(record)
    if record.proto != "tcp" or record.seq is None or record.ack is None:
        return f"{label} len={record.payload_len}"
    initial = initial or {}
    seq = (record.seq - initial.get(record.flow, 0)) % 2**32
    text = f"{label} seq={seq}"
    if "A" in record.tcp_flags:
        ack = (record.ack - initial.get(_reverse(record.flow), 0)) % 2**32
        text += f" ack={ack}"
    if record.payload_len:
        text += f" len={record.payload_len}"
    return text


def _packet_ref(record: PacketRecord) -> str:
    ip_id = f" id={_hex(record.ip_id)}" if record.ip_id is not None else ""
    return f"frame {record.index}: {_describe(record)}{ip_id} csum={_hex(record.l4_csum)}"


def _subject(record: PacketRecord) -> str:
    """Like "TCP SYN 10.0.0.1:41234 -> 10.0.0.2:80"; UDP has no flags to name."""
    label = f" {tcp_label(record)}" if record.proto == "tcp" else ""
    return (
        f"{record.proto.upper()}{label} {_endpoint(record.src, record.sport)} -> "
        f"{_endpoint(record.dst, record.dport)}"
    )


def _flow_label(record: PacketRecord) -> str:
    return (
        f"{record.proto.upper()} {_endpoint(record.src, record.sport)} -> "
        f"{_endpoint(record.dst, record.dport)}"
    )


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _reverse(flow: FlowTuple) -> FlowTuple:
    proto, src, sport, dst, dport = flow
    return (proto, dst, dport, src, sport)


def _hex(value: int | None) -> str | None:
    return None if value is None else f"0x{value:04x}"


def _count_note(records: Sequence[PacketRecord]) -> str:
    if len(records) < 2:
        return ""
    labels = Counter(tcp_label(r) for r in records)
    parts = ", ".join(f"{label} x{n}" if n > 1 else label for label, n in labels.items())
    return f" ({len(records)} packets: {parts})"


# --------------------------------------------------------------------------
# Text


def render_text(
    diagnosis: Diagnosis,
    width: int = 100,
    max_events: int = 40,
    max_flows: int | None = None,
    findings_per_kind: int | None = None,
) -> str:
    """A report for a terminal: verdict, taps, per-flow timelines, findings.

    With max_flows, the flows that findings name come first and the rest are
    counted, so a run of many healthy requests still fits a screen.
    """
    flows = _flows_to_show(diagnosis, max_flows)
    hidden = len(diagnosis.flows) - len(flows)
    sections = [
        _wrap(diagnosis.verdict, width),
        _render_taps(diagnosis),
        *(_render_flow(flow, diagnosis, width, max_events) for flow in flows),
        *([f"(+{hidden} more flows like these; all are in the JSON report)"] if hidden else []),
        *([_wrap("Legend: " + CELL_LEGEND, width)] if flows else []),
        _render_findings(diagnosis, width, findings_per_kind),
    ]
    return "\n\n".join(sections) + "\n"


def _flows_to_show(diagnosis: Diagnosis, max_flows: int | None) -> list[FlowTimeline]:
    flows = list(diagnosis.flows)
    if max_flows is None or len(flows) <= max_flows:
        return flows

    def named(flow: FlowTimeline) -> bool:
        return any(flow.client in f.flow and flow.server in f.flow for f in diagnosis.findings)

    chosen = [flow for flow in flows if named(flow)][:max_flows]
    chosen += [flow for flow in flows if flow not in chosen][: max_flows - len(chosen)]
    return [flow for flow in flows if flow in chosen]


# Short headers for VERDICT_KEYS so that the tap table fits 100 columns.
VERDICT_HEADERS = (
    "valid",
    "offload",
    "accepted",
    "unfinished",
    "wrong",
    "no-csum",
    "trunc",
    "frag",
)


def _render_taps(diagnosis: Diagnosis) -> str:
    headers = ["#", "tap", "tcp/udp", *VERDICT_HEADERS, "bad-ip"]
    rows = [
        [
            str(number),
            tap.name,
            str(tap.packets),
            *(str(tap.verdicts[key]) for key in VERDICT_KEYS),
            str(tap.ip_header_wrong),
        ]
        for number, tap in enumerate(diagnosis.taps, start=1)
    ]
    frames = [
        f"  [{number}] {tap.name}: {tap.frames} frames"
        + "".join(f", {n} {reason}" for reason, n in tap.skipped.items())
        for number, tap in enumerate(diagnosis.taps, start=1)
        if tap.skipped
    ]
    skipped = "\nSkipped frames\n" + "\n".join(frames) if frames else ""
    return "Taps, in path order\n" + format_table(headers, rows, indent=2) + skipped


def _render_flow(flow: FlowTimeline, diagnosis: Diagnosis, width: int, max_events: int) -> str:
    names = [tap.name for tap in diagnosis.taps]
    events = flow.events[:max_events]
    rows = [
        [
            f"{event.time:.6f}",
            event.direction,
            event.packet + (f" (resent #{event.retransmission})" if event.retransmission else ""),
            *event.cells,
        ]
        for event in events
    ]
    table = format_table(["time", "dir", "packet", *names], rows, indent=2)
    if max(len(line) for line in table.splitlines()) > width:
        # Long tap names: number the columns as in the tap table.
        numbers = [f"[{n}]" for n in range(1, len(names) + 1)]
        table = format_table(["time", "dir", "packet", *numbers], rows, indent=2)
    more = len(flow.events) - len(events)
    tail = f"\n  ... {more} more packets" if more > 0 else ""
    return f"Flow {flow.label}\n{table}{tail}"


def _render_findings(diagnosis: Diagnosis, width: int, per_kind: int | None = None) -> str:
    if not diagnosis.findings:
        return "Findings: none"
    lines = ["Findings"]
    shown: Counter[tuple[str, str]] = Counter()
    hidden: Counter[tuple[str, str]] = Counter()
    for number, finding in enumerate(diagnosis.findings, start=1):
        key = (finding.kind, finding.tap)
        if per_kind is not None and shown[key] >= per_kind:
            hidden[key] += 1
            continue
        shown[key] += 1
        head = f"{number}. {finding.severity.upper()} {finding.kind} at '{finding.tap}': "
        lines.append(_wrap(head + finding.message, width, indent="  ", hanging="     "))
        lines.extend(_wrap(p, width, indent="     - ", hanging="       ") for p in finding.packets)
    for (kind, tap), count in hidden.items():
        lines.append(f"  (+{count} more {kind} at '{tap}' in other flows; see the JSON report)")
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "", hanging: str = "") -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=hanging or indent,
        break_on_hyphens=False,
        break_long_words=False,
    )
