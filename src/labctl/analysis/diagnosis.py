"""What a diagnosis says: the taps it was given, and per tap, per flow and per finding
what it found. Plain data, written to diagnosis.json by `to_dict`; see
labctl.analysis.diagnose for how it is made."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from labctl.analysis.checksums import Capture
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
    "seen-off-path",
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
    # A tap on a port the traffic under test should not cross (another VLAN, a branch off
    # the path): left out of the path order and reported as `seen-off-path` when it
    # captured anything. `isolation` says why the traffic can never reach it (e.g. "port oth
    # carries VLAN 20 only; ..."): then anything seen there is a leak, a fault. Empty: a
    # branch where a switch may flood a first packet, a warning.
    off_path: bool = False
    isolation: str = ""
    # Which interface of a pcapng file with several is this tap (its number in the file,
    # see labctl.analysis.checksums.read_pcap); None: every frame of the file.
    interface: int | None = None
    # Its place in the path order is a guess (one of several interfaces of one file, no
    # --order): a connection it saw nothing of does not pass it, so nothing of that
    # connection is "lost" before it.
    order_known: bool = True

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
    off_path: bool = False  # not on the path: its frames count is what reached it
    isolation: str = ""  # why the traffic cannot reach it (see Tap); "" for a branch

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
    tunnels: tuple[str, ...] = ()  # the tunnels its packets were seen in, like "vxlan vni 100"
    carries: tuple[str, ...] = ()  # a tunnel's own flow (VXLAN, Geneve): the tunnels it carries

    @property
    def label(self) -> str:
        inside = f" in {', '.join(self.tunnels)}" if self.tunnels else ""
        carries = f" (carries {', '.join(self.carries)})" if self.carries else ""
        return f"{self.proto.upper()} {self.client} <-> {self.server}{inside}{carries}"

    def to_dict(self, tap_names: Sequence[str]) -> dict[str, object]:
        return {
            "flow": self.label,
            "proto": self.proto,
            "client": self.client,
            "server": self.server,
            "tunnels": list(self.tunnels),
            "carries": list(self.carries),
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

    @property
    def path_taps(self) -> tuple[TapSummary, ...]:
        """The taps on the path, in path order: the columns of the flows' timelines."""
        return tuple(tap for tap in self.taps if not tap.off_path)

    def to_dict(self) -> dict[str, object]:
        names = [tap.name for tap in self.path_taps]
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
