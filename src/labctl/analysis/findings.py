"""The finding detectors: from the packets matched across taps, where a checksum a
receiver checks goes bad, what contradicts a tap's position, what nothing proves, where
packets are lost between taps, and which handshakes never completed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from labctl.analysis.checksums import PacketRecord, Skip
from labctl.analysis.diagnosis import (
    FINDING_KINDS,
    Finding,
    FlowTuple,
    JsonScalar,
    Severity,
    Tap,
    TapCapture,
)
from labctl.analysis.evidence import Evidence
from labctl.analysis.matching import (
    Connection,
    Packet,
    Seen,
    connection_key,
    packet_identity,
    path_order,
)
from labctl.analysis.packet_words import (
    as_hex,
    count_note,
    endpoint,
    flow_label,
    packet_ref,
    reverse_flow,
    subject,
)


def checksum_findings(
    packets: Sequence[Packet], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
) -> list[Finding]:
    """The first tap, along the packet's way, where its checksum is bad."""
    groups: dict[tuple[object, ...], list[tuple[Packet, Seen, Seen | None]]] = defaultdict(list)
    for packet in packets:
        first_bad, before = _first_bad(packet, directions[packet.flow], len(taps))
        if first_bad is None:
            continue
        history = None if before is None else (before.tap, before.status)
        kind = _bad_kind(first_bad.record)
        key = (packet.flow, first_bad.tap, kind, history, packet.evidence.reason)
        groups[key].append((packet, first_bad, before))
    return [_checksum_finding(group, taps) for group in groups.values()]


def _first_bad(packet: Packet, direction: int, tap_count: int) -> tuple[Seen | None, Seen | None]:
    before: Seen | None = None
    for tap_index in path_order(direction, tap_count):
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
    group: Sequence[tuple[Packet, Seen, Seen | None]], taps: Sequence[Tap]
) -> Finding:
    packet, seen, before = group[0]
    record = seen.record
    kind = _bad_kind(record)
    message = (
        f"{subject(record)} reaches tap '{taps[seen.tap].name}' with {_what_is_bad(record)}; "
        f"{_why_bad(packet.evidence, taps[seen.tap])}; {_history(before, taps)}"
        f"{count_note([s.record for _, s, _ in group])}"
    )
    return Finding(
        kind="bad-checksum",
        severity="fault",
        tap=taps[seen.tap].name,
        flow=flow_label(record),
        message=message,
        packets=tuple(packet_ref(s.record) for _, s, _ in group),
        evidence={
            "tcp_evidence": packet.evidence.text if packet.evidence.proven else None,
            "by_position": not packet.evidence.proven,
            "verdict": kind,
            "checksum": as_hex(record.l4_csum),
            "expected": as_hex(record.l4_expected),
            "pseudo_header": as_hex(record.l4_pseudo),
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
        return f"an unfinished checksum (pseudo-header only, {as_hex(record.l4_csum)})"
    return (
        f"a wrong checksum {as_hex(record.l4_csum)} (correct: {as_hex(record.l4_expected)}; "
        f"not the pseudo-header sum {as_hex(record.l4_pseudo)})"
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


def _history(before: Seen | None, taps: Sequence[Tap]) -> str:
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


def contradiction_findings(packets: Sequence[Packet], taps: Sequence[Tap]) -> list[Finding]:
    """Position says a receiver after the tap checks the checksum and drops the
    packet; TCP says the receiver took it. Say so, do not pick one silently."""
    findings = []
    groups = _first_sightings(
        packets, lambda t, s: s.status == "accepted" and taps[t].positioned, by_evidence=False
    )
    for (_, tap_index, _, _), group in groups.items():
        packet, seen = group[0]
        message = (
            f"{subject(seen.record)} carries {_what_is_bad(seen.record)} at tap "
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


def unproven_findings(packets: Sequence[Packet], taps: Sequence[Tap]) -> list[Finding]:
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
            f"{subject(seen.record)} carries {_what_is_bad(seen.record)} at tap "
            f"'{taps[tap_index].name}', and the capture cannot prove whether its receiver took "
            f"it: {packet.evidence.text}; {normal}; {HOW_TO_PROVE}"
        )
        evidence = {"verdict": kind, "missing": packet.evidence.reason}
        findings.append(_warning("checksum-unproven", group, taps[tap_index], message, evidence))
    return findings


_Sighting = tuple[Packet, Seen]


def _first_sightings(
    packets: Sequence[Packet], wanted: Callable[[int, Seen], bool], by_evidence: bool = True
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
        flow=flow_label(records[0]),
        message=message + count_note(records),
        packets=tuple(packet_ref(r) for r in records),
        evidence={**evidence, "count": len(records), "first_time": records[0].timestamp},
    )


def signature_findings(
    packets: Sequence[Packet], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
) -> list[Finding]:
    """The seed bug's fingerprint: a bad SYN/ACK whose checksum field holds
    the very value the client's SYN carried. Both are the pseudo-header sum,
    which does not depend on the direction."""
    syn_values: dict[tuple[FlowTuple, int | None], list[Seen]] = defaultdict(list)
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
        syns = syn_values.get((reverse_flow(packet.flow), bad.record.l4_csum))
        if syns:
            reported.add(packet.flow)
            findings.append(_signature_finding(bad, syns[0], taps))
    return findings


def _signature_finding(synack: Seen, syn: Seen, taps: Sequence[Tap]) -> Finding:
    record = synack.record
    value = record.l4_csum
    message = (
        f"TCP SYN/ACK {endpoint(record.src, record.sport)} -> "
        f"{endpoint(record.dst, record.dport)} carries at tap '{taps[synack.tap].name}' "
        f"the checksum {as_hex(value)} that the client's SYN carried at tap '{taps[syn.tap].name}'"
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
        flow=flow_label(record),
        message=message,
        packets=(packet_ref(record), f"{packet_ref(syn.record)} at '{taps[syn.tap].name}'"),
        evidence={
            "checksum": as_hex(value),
            "syn_tap": taps[syn.tap].name,
            "pseudo_header_signature": value == record.l4_pseudo,
            "first_time": record.timestamp,
        },
    )


def loss_findings(
    packets: Sequence[Packet], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
) -> list[Finding]:
    """Seen at a tap, never at the next one nor any after it. Taps are
    assumed to capture over the same time span; flows whose direction is
    unknown are not judged."""
    groups: dict[tuple[FlowTuple, int, int], list[PacketRecord]] = defaultdict(list)
    seen_by = _taps_per_connection(packets)
    for packet in packets:
        direction = directions[packet.flow]
        if direction == 0:
            continue
        passes = seen_by[connection_key(packet.flow)]
        # A tunnel's own datagrams exist only on the underlay: the taps that never saw
        # the tunnel (the overlay's) are not on its path.
        carrier = packet.record.carrier
        order = [
            tap
            for tap in path_order(direction, len(taps))
            if (taps[tap].order_known and not carrier) or tap in passes
        ]
        last = max(order.index(tap) for tap in packet.seen)
        if last + 1 < len(order):
            last_tap, next_tap = order[last], order[last + 1]
            groups[(packet.flow, last_tap, next_tap)].append(packet.seen[last_tap].record)
    last_seen = _last_timestamps(packets)
    passed = _latest_passed(packets, len(taps), directions)
    end = max(last_seen.values(), default=0.0)
    findings = []
    for (_, last_tap, next_tap), records in groups.items():
        # Packets at the very end that a working next tap (it captured other packets) could
        # not have seen before the captures stopped are in flight, not lost: a warning. What
        # proves the way was open is a later packet that went the same way: one the next tap
        # saw coming from the other side (the far end's own packets) proves nothing about
        # a switch still holding these (a busy OVS userspace or DPDK datapath).
        in_flight = [
            r
            for r in records
            if next_tap in last_seen
            and r.timestamp > passed.get((last_tap, next_tap), float("-inf"))
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


def _taps_per_connection(packets: Sequence[Packet]) -> dict[tuple[object, ...], set[int]]:
    """The taps that saw anything of each connection, either direction."""
    seen: dict[tuple[object, ...], set[int]] = defaultdict(set)
    for packet in packets:
        seen[connection_key(packet.flow)].update(packet.seen)
    return seen


TAIL_SECONDS = 0.05
"""Packets this close to the end of the captures may still have been in flight."""


def _latest_passed(
    packets: Sequence[Packet], tap_count: int, directions: Mapping[FlowTuple, int]
) -> dict[tuple[int, int], float]:
    """For each two taps in travel order, the latest time at the first of a packet that
    then showed at the second."""
    latest: dict[tuple[int, int], float] = {}
    for packet in packets:
        direction = directions[packet.flow]
        if direction == 0:
            continue
        route = [tap for tap in path_order(direction, tap_count) if tap in packet.seen]
        for at, earlier in enumerate(route):
            when = packet.seen[earlier].record.timestamp
            for later in route[at + 1 :]:
                latest[(earlier, later)] = max(latest.get((earlier, later), when), when)
    return latest


def _last_timestamps(packets: Sequence[Packet]) -> dict[int, float]:
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
        f"{subject(first)} seen at tap '{taps[last_tap].name}' never reached "
        f"tap '{taps[next_tap].name}'{count_note(records)}"
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
        flow=flow_label(first),
        message=message,
        packets=tuple(packet_ref(r) for r in records),
        evidence={
            "next_tap": taps[next_tap].name,
            "count": len(records),
            "first_time": first.timestamp,
        },
    )


def handshake_findings(
    connections: Sequence[Connection], taps: Sequence[Tap], directions: Mapping[FlowTuple, int]
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


def _is_syn(packet: Packet) -> bool:
    return packet.record.tcp_flags == "S"


def _handshake_finding(
    syns: Sequence[Packet], refused: bool, taps: Sequence[Tap], direction: int
) -> Finding:
    order = path_order(direction, len(taps))
    furthest = max((order.index(t) for p in syns for t in p.seen), default=0)
    tap_index = order[furthest]
    at_tap = [p.seen[tap_index].record for p in syns if tap_index in p.seen]
    first = syns[0].record
    times = "once" if len(syns) == 1 else f"{len(syns)} times"
    subject = f"TCP SYN {endpoint(first.src, first.sport)} -> {endpoint(first.dst, first.dport)}"
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
        flow=flow_label(first),
        message=message,
        packets=tuple(packet_ref(r) for r in at_tap),
        evidence={"transmissions": len(syns), "first_time": first.timestamp},
    )


def sorted_findings(findings: Iterable[Finding]) -> list[Finding]:
    def key(finding: Finding) -> tuple[int, float, str, str]:
        first_time = finding.evidence.get("first_time")
        time = float(first_time) if isinstance(first_time, int | float) else 0.0
        return (FINDING_KINDS.index(finding.kind), time, finding.tap, finding.flow)

    return sorted(findings, key=key)


OFF_PATH_PACKETS = 10
"""Packets quoted per seen-off-path finding (the first ones); the counts cover them all."""

_FRAME_WORDS = {Skip.NON_IP.value: "non-IP (ARP)", Skip.NOT_TCP_UDP.value: "IP, not TCP/UDP (ICMP)"}


def off_path_findings(packets: Sequence[Packet], captures: Sequence[TapCapture]) -> list[Finding]:
    """What of the traffic under test (what the tap's filter lets through) reached a tap
    off the path. Where the topology says the traffic can never get there (`isolation`,
    e.g. another VLAN) it is a leak: a fault. Elsewhere a switch floods broadcasts (ARP)
    and frames to a MAC it has not learnt yet to every port of the VLAN, so a first packet
    on a branch can be normal: a warning that gives the counts."""
    on_path = {packet_identity(seen.record) for p in packets for seen in p.seen.values()}
    findings = []
    for capture in captures:
        frames = capture.capture.frames
        if frames == 0:
            continue
        tap = capture.tap
        records = list(capture.capture)
        shared = sum(1 for r in records if packet_identity(r) in on_path)
        others = {_FRAME_WORDS.get(k, k): n for k, n in capture.capture.skipped.items() if n}
        parts = [f"{n} {what}" for what, n in others.items()]
        if records:
            on_path_note = f"{shared} of them also seen on the path"
            parts.insert(0, f"{_many(len(records), 'TCP/UDP packet')} ({on_path_note})")
        seen = f"tap '{tap.name}' is off the path, yet it captured {_many(frames, 'frame')}: "
        seen += ", ".join(parts)
        if tap.isolation:
            severity: Severity = "fault"
            why = f"; the traffic under test must never reach it ({tap.isolation}): it leaks"
        else:
            severity = "warning"
            why = (
                "; a switch floods broadcasts (ARP) and frames to a MAC address it has not "
                "learnt yet to every port of their VLAN, so a first packet here can be normal, "
                "a steady stream means the switch does not learn or the traffic takes this way"
            )
        findings.append(
            Finding(
                kind="seen-off-path",
                severity=severity,
                tap=tap.name,
                flow=flow_label(records[0]) if records else "",
                message=seen + why,
                packets=tuple(packet_ref(r) for r in records[:OFF_PATH_PACKETS]),
                evidence={
                    "frames": frames,
                    "packets": len(records),
                    "on_path": shared,
                    "other_frames": frames - len(records),
                    "isolation": tap.isolation or None,
                    "first_time": records[0].timestamp if records else None,
                },
            )
        )
    return findings


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def headline(
    findings: Sequence[Finding], packets: Sequence[Packet], off_path: Sequence[str] = ()
) -> str:
    if findings:
        worst = next((f for f in findings if f.severity == "fault"), findings[0])
        return f"{worst.severity.upper()}: {worst.message}"
    if not packets:
        # "No checksum is bad" would be true and misleading: nothing was there to judge.
        return (
            "OK: nothing to check: the captures hold no TCP or UDP packet; check the "
            "capture's filter and interface"
        )
    unknown = sum(1 for p in packets if all(s.status == "unknown" for s in p.seen.values()))
    plural = "s" if unknown != 1 else ""
    note = f" ({unknown} packet{plural} could not be checked)" if unknown else ""
    quiet = ", ".join(f"'{name}'" for name in off_path)
    away = f"; nothing reached the taps off the path ({quiet})" if off_path else ""
    return f"OK: no checksum a receiver checks is bad, no packet lost between taps{note}{away}"
