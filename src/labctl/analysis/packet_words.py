"""How a packet, a flow and an endpoint are named in findings and timelines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from labctl.analysis.checksums import PacketRecord
from labctl.analysis.diagnosis import FlowTuple


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


def describe_packet(record: PacketRecord, initial: Mapping[FlowTuple, int] | None = None) -> str:
    """Like "SYN/ACK seq=0 ack=1": relative to `initial` when given, else absolute."""
    label = tcp_label(record)
    if record.proto != "tcp" or record.seq is None or record.ack is None:
        return f"{label} len={record.payload_len}"
    initial = initial or {}
    seq = (record.seq - initial.get(record.flow, 0)) % 2**32
    text = f"{label} seq={seq}"
    if "A" in record.tcp_flags:
        ack = (record.ack - initial.get(reverse_flow(record.flow), 0)) % 2**32
        text += f" ack={ack}"
    if record.payload_len:
        text += f" len={record.payload_len}"
    return text


def packet_ref(record: PacketRecord) -> str:
    ip_id = f" id={as_hex(record.ip_id)}" if record.ip_id is not None else ""
    tunnel = f" (in {record.tunnel}, {record.tunnel_ends})" if record.tunnel else ""
    return (
        f"frame {record.index}: {describe_packet(record)}{ip_id} "
        f"csum={as_hex(record.l4_csum)}{tunnel}"
    )


def subject(record: PacketRecord) -> str:
    """Like "TCP SYN 10.0.0.1:41234 -> 10.0.0.2:80"; UDP has no flags to name."""
    label = f" {tcp_label(record)}" if record.proto == "tcp" else ""
    return (
        f"{record.proto.upper()}{label} {endpoint(record.src, record.sport)} -> "
        f"{endpoint(record.dst, record.dport)}"
    )


def flow_label(record: PacketRecord) -> str:
    return (
        f"{record.proto.upper()} {endpoint(record.src, record.sport)} -> "
        f"{endpoint(record.dst, record.dport)}"
    )


def endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def reverse_flow(flow: FlowTuple) -> FlowTuple:
    proto, src, sport, dst, dport = flow
    return (proto, dst, dport, src, sport)


def as_hex(value: int | None) -> str | None:
    return None if value is None else f"0x{value:04x}"


def count_note(records: Sequence[PacketRecord]) -> str:
    if len(records) < 2:
        return ""
    labels = Counter(tcp_label(r) for r in records)
    parts = ", ".join(f"{label} x{n}" if n > 1 else label for label, n in labels.items())
    return f" ({len(records)} packets: {parts})"
