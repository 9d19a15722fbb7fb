"""TCP's own evidence of what a receiver accepted.

A capture shows a checksum, not what the receiver did with it. TCP tells:
a segment that its peer answered (a SYN answered by a SYN/ACK, data or a FIN
covered by a later ACK from the other side, even a RST/ACK) passed the
receiving host's checksum check, because Linux verifies the checksum before
TCP looks at the segment. Whatever its checksum looked like at a tap, it was
finished on the way or never needed (offload inside one kernel).

The reverse also holds, with care: a segment sent again and again and never
acknowledged did not get through, or its answer did not; a SYN never
answered never reached a listening TCP. Where a capture has neither (UDP,
a capture that ends before the answer, one direction only), nothing is
proven either way, and the analysis has to say so instead of guessing.

A tunnel's own datagram (VXLAN, Geneve) takes the evidence of the packet it
carries: the far end checked the datagram before it could unwrap and answer it.

Pure; the unit is one packet as matched across taps (`Observed`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from labctl.analysis.checksums import PacketRecord

Outcome = Literal["accepted", "rejected", "none"]
FlowTuple = tuple[str, str, int, str, int]  # proto, src, sport, dst, dport

# Why a packet has no evidence; the words the analysis quotes.
NO_EVIDENCE = {
    "udp": "UDP has no acknowledgements",
    "one-direction": "the captures hold no packet of the other direction",
    "capture-ended": "it was not acknowledged before the capture ended, nor sent again",
    "no-data": (
        "it carries nothing to acknowledge, and no segment of its flow with the same "
        "checksum was acknowledged"
    ),
    "acked-before": "an earlier copy was acknowledged already and this copy differs from it",
}


@dataclass(frozen=True)
class Observed:
    """One packet on the wire: its flow, its first sighting, and every tap's record."""

    flow: FlowTuple
    first: PacketRecord
    at: Mapping[int, PacketRecord]


@dataclass(frozen=True)
class Evidence:
    outcome: Outcome
    reason: str  # a category: "answered", "acknowledged", "never-answered", "udp", ...
    text: str  # the evidence as a user reads it
    proof: PacketRecord | None = None  # the answer that proves acceptance

    @property
    def proven(self) -> bool:
        return self.outcome != "none"


def judge(packets: Sequence[Observed]) -> list[Evidence]:
    """The evidence for each packet, in the order given (time order)."""
    index = _Index(packets)
    results: list[Evidence | None] = [None] * len(packets)
    for number, packet in enumerate(packets):
        if packet.first.proto != "tcp":
            results[number] = _none("udp")
        elif _consumes_sequence(packet.first):
            results[number] = _segment_evidence(number, packet, index)
    _flow_evidence(packets, results)
    judged = [r if r is not None else _none("no-data") for r in results]
    _carrier_evidence(packets, judged)
    return judged


def _none(reason: str) -> Evidence:
    return Evidence("none", reason, NO_EVIDENCE[reason])


def _consumes_sequence(record: PacketRecord) -> bool:
    flags = record.tcp_flags
    return record.payload_len > 0 or ("S" in flags or "F" in flags) and "R" not in flags


def _segment_end(record: PacketRecord) -> int:
    flags = record.tcp_flags
    length = record.payload_len + ("S" in flags) + ("F" in flags)
    return ((record.seq or 0) + length) % 2**32


def _seq_at_least(value: int, bound: int) -> bool:
    """value >= bound in TCP's modular sequence space."""
    return (value - bound) % 2**32 < 2**31


def _copy_key(packet: Observed) -> tuple[object, ...]:
    record = packet.first
    return (packet.flow, record.seq, record.payload_len, record.tcp_flags)


def _signed(delta: int) -> int:
    """A 32-bit sequence difference as a signed step."""
    delta %= 2**32
    return delta - 2**32 if delta >= 2**31 else delta


class _Acks:
    """One direction's acknowledgements in time order, with their sequence numbers
    unwrapped and the largest one still to come, so that "is this segment ever
    acknowledged later" is answered without scanning (captures can be large)."""

    def __init__(self) -> None:
        self.numbers: list[int] = []
        self.times: list[float] = []
        self.unwrapped: list[int] = []
        self.max_from: list[int] = []

    def add(self, number: int, time: float, ack: int) -> None:
        previous = self.unwrapped[-1] if self.unwrapped else ack
        last_raw = previous % 2**32
        self.numbers.append(number)
        self.times.append(time)
        self.unwrapped.append(previous + _signed(ack - last_raw))

    def seal(self) -> None:
        best = -(2**63)
        self.max_from = [0] * len(self.unwrapped)
        for at in range(len(self.unwrapped) - 1, -1, -1):
            best = max(best, self.unwrapped[at])
            self.max_from[at] = best

    def first_covering(self, end: int, after: float) -> int | None:
        start = bisect_right(self.times, after)
        if start >= len(self.numbers):
            return None
        target = self.unwrapped[start] + _signed(end - self.unwrapped[start])
        if self.max_from[start] < target:
            return None
        for at in range(start, len(self.numbers)):
            if self.unwrapped[at] >= target:
                return self.numbers[at]
        return None


class _Index:
    """Lookups over the packets: acknowledgements per flow, copies per segment."""

    def __init__(self, packets: Sequence[Observed]) -> None:
        self.packets = packets
        self.flows = {p.flow for p in packets}
        self.acks: dict[FlowTuple, _Acks] = defaultdict(_Acks)
        self.copies: dict[tuple[object, ...], list[int]] = defaultdict(list)
        for number, packet in enumerate(packets):
            record = packet.first
            if record.proto == "tcp" and "A" in record.tcp_flags and record.ack is not None:
                self.acks[packet.flow].add(number, record.timestamp, record.ack)
            if record.proto == "tcp" and _consumes_sequence(record):
                self.copies[_copy_key(packet)].append(number)
        for acks in self.acks.values():
            acks.seal()

    def time(self, number: int) -> float:
        return self.packets[number].first.timestamp

    def first_answer(self, packet: Observed, after: float) -> int | None:
        """The first packet of the other direction, later than `after`, whose ACK
        covers the whole segment."""
        acks = self.acks.get(_reverse(packet.flow))
        return None if acks is None else acks.first_covering(_segment_end(packet.first), after)


def _segment_evidence(number: int, packet: Observed, index: _Index) -> Evidence:
    record = packet.first
    copies = index.copies[_copy_key(packet)]
    answer = index.first_answer(packet, record.timestamp)
    if answer is not None:
        answered = max(c for c in copies if index.time(c) < index.time(answer))
        proof = index.packets[answer].first
        if answered == number or _same_checksums(packet, index.packets[answered]):
            return Evidence("accepted", *_answered_words(record, proof), proof)
        other = index.packets[answered].first
        return Evidence(
            "rejected",
            "later-copy-acknowledged",
            f"a later copy (frame {other.index}, checksum {_state(other)}) was "
            f"{_answer_verb(record)}, this one ({_state(record)}) was not",
            proof,
        )
    earlier = index.first_answer(packet, index.time(copies[0]) - 1e-9)
    if earlier is not None:
        answered = max(c for c in copies if index.time(c) < index.time(earlier))
        if _same_checksums(packet, index.packets[answered]):
            proof = index.packets[earlier].first
            return Evidence("accepted", *_answered_words(record, proof), proof)
        return _none("acked-before")
    reverse_seen = _reverse(packet.flow) in index.flows
    syn = record.tcp_flags == "S"
    if len(copies) > 1 and (reverse_seen or syn):
        what = "never answered (no SYN/ACK)" if syn else "never acknowledged"
        return Evidence("rejected", "never-answered", f"sent {len(copies)} times, {what}")
    return _none("capture-ended" if reverse_seen else "one-direction")


def _answered_words(record: PacketRecord, proof: PacketRecord) -> tuple[str, str]:
    if "S" in record.tcp_flags and "A" not in record.tcp_flags:
        label = "SYN/ACK" if "S" in proof.tcp_flags else "RST" if "R" in proof.tcp_flags else "ACK"
        return "answered", f"answered by the {label} in frame {proof.index}"
    return "acknowledged", f"acknowledged by frame {proof.index}, ack {proof.ack}"


def _answer_verb(record: PacketRecord) -> str:
    return "answered" if record.tcp_flags == "S" else "acknowledged"


def _flow_evidence(packets: Sequence[Observed], results: list[Evidence | None]) -> None:
    """A segment that carries nothing to acknowledge (a pure ACK, a RST) takes the
    evidence of its flow: a segment with the same checksums at the same taps that
    was acknowledged proves the path delivers such checksums."""
    accepted: dict[tuple[FlowTuple, tuple[tuple[int, str], ...]], int] = {}
    for number, packet in enumerate(packets):
        found = results[number]
        if found is not None and found.outcome == "accepted":
            accepted.setdefault((packet.flow, _signature(packet)), number)
    for number, packet in enumerate(packets):
        if results[number] is not None:
            continue
        other = accepted.get((packet.flow, _signature(packet)))
        if other is None:
            results[number] = _none("no-data")
            continue
        proof = results[other]
        results[number] = Evidence(
            "accepted",
            "flow-acknowledged",
            f"segments of its flow with the same checksums were acknowledged "
            f"(frame {packets[other].first.index})",
            proof.proof if proof is not None else None,
        )


def _carrier_evidence(packets: Sequence[Observed], results: list[Evidence]) -> None:
    """A tunnel's own datagram (VXLAN, Geneve) whose inner packet was accepted reached
    the tunnel's far end, which checks the datagram's checksum before it unwraps it."""
    inner_at: dict[tuple[int, int, int], int] = {}
    for number, packet in enumerate(packets):
        for tap, record in packet.at.items():
            if record.depth:
                inner_at[(tap, record.index, record.depth)] = number
    for number, packet in enumerate(packets):
        if not packet.first.carrier:
            continue
        for tap, record in packet.at.items():
            inner = inner_at.get((tap, record.index, record.depth + 1))
            if inner is None or results[inner].outcome != "accepted":
                continue
            carried = packets[inner].first
            results[number] = Evidence(
                "accepted",
                "inner-accepted",
                f"the packet it carries (frame {record.index}, {carried.proto.upper()} "
                f"{carried.tcp_flags or 'datagram'}) reached the far end: {results[inner].text}",
                results[inner].proof,
            )
            break


def _signature(packet: Observed) -> tuple[tuple[int, str], ...]:
    return tuple(sorted((tap, _state(record)) for tap, record in packet.at.items()))


def _same_checksums(one: Observed, other: Observed) -> bool:
    """Both copies look alike to a receiver: the same checksum verdicts at the
    taps that saw both (or at their first taps)."""
    common = set(one.at) & set(other.at)
    if not common:
        return _state(one.first) == _state(other.first)
    return all(_state(one.at[t]) == _state(other.at[t]) for t in common)


def _state(record: PacketRecord) -> str:
    return "IP header wrong" if record.ip_csum == "wrong" else record.l4_verdict


def _reverse(flow: FlowTuple) -> FlowTuple:
    proto, src, sport, dst, dport = flow
    return (proto, dst, dport, src, sport)
