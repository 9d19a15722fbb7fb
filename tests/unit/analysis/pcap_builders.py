"""Frames and capture files built with dpkt, for the analysis tests.

dpkt fills in correct IP and L4 checksums when a packet is serialised, so a
"valid" packet here does not depend on the code under test. "unfinished"
values are computed by `pseudo_header_value` below, written out longhand
from RFC 793/768/8200 rather than imported, and spot-checked against values
a real Linux kernel produced (see test_analysis_checksums.py).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dpkt  # type: ignore[import-untyped]

CLIENT = "10.0.0.1"
SERVER = "10.0.0.2"
CLIENT6 = "fd00::1"
SERVER6 = "fd00::2"

TH = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}


# 20 bytes of SYN options (MSS, SACK permitted, timestamps, window scale), so
# SYN and SYN/ACK have the same length, as Linux sends them.
def syn_options(tsval: int, tsecr: int = 0) -> bytes:
    return (
        b"\x02\x04\x05\xb4"  # MSS 1460
        + b"\x04\x02"  # SACK permitted
        + b"\x08\x0a"
        + struct.pack("!II", tsval, tsecr)
        + b"\x01"  # NOP
        + b"\x03\x03\x07"  # window scale 7
    )


def _pack_address(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def pseudo_header_value(src: str, dst: str, proto: int, length: int) -> int:
    """Folded, not inverted, ones-complement sum of the pseudo header."""
    words = _pack_address(src) + _pack_address(dst)
    total: int = sum(struct.unpack(f"!{len(words) // 2}H", words)) + proto + length
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


Checksum = str | int  # "valid", "unfinished", or a literal value


@dataclass(frozen=True)
class Seg:
    """One TCP segment or UDP datagram to build."""

    src: str
    dst: str
    sport: int
    dport: int
    flags: str = "A"  # TCP flags as letters; "udp" for a datagram
    seq: int = 0
    ack: int = 0
    payload: bytes = b""
    ip_id: int = 1
    options: bytes = b""
    csum: Checksum = "valid"

    @property
    def is_udp(self) -> bool:
        return self.flags == "udp"


def ip_packet(seg: Seg) -> bytes:
    """IPv4 or IPv6 packet bytes with the L4 checksum set as asked."""
    l4 = _l4(seg)
    proto = dpkt.ip.IP_PROTO_UDP if seg.is_udp else dpkt.ip.IP_PROTO_TCP
    if ":" in seg.src:
        packet = dpkt.ip6.IP6(
            src=_pack_address(seg.src),
            dst=_pack_address(seg.dst),
            nxt=proto,
            hlim=64,
            data=l4,
            plen=len(l4),
        )
        header_len = 40
    else:
        packet = dpkt.ip.IP(
            src=_pack_address(seg.src),
            dst=_pack_address(seg.dst),
            p=proto,
            id=seg.ip_id,
            ttl=64,
            data=l4,
        )
        header_len = 20
    raw = bytearray(bytes(packet))
    _set_l4_checksum(raw, header_len, seg, proto)
    return bytes(raw)


def _l4(seg: Seg) -> dpkt.Packet:
    if seg.is_udp:
        datagram = dpkt.udp.UDP(sport=seg.sport, dport=seg.dport, data=seg.payload)
        datagram.ulen = len(datagram)
        return datagram
    bits = 0
    for letter in seg.flags:
        bits |= TH[letter]
    return dpkt.tcp.TCP(
        sport=seg.sport,
        dport=seg.dport,
        seq=seg.seq,
        ack=seg.ack,
        flags=bits,
        win=64240,
        off=(20 + len(seg.options)) // 4,
        opts=seg.options,
        data=seg.payload,
    )


def _set_l4_checksum(raw: bytearray, header_len: int, seg: Seg, proto: int) -> None:
    if seg.csum == "valid":
        return
    at = header_len + (6 if seg.is_udp else 16)
    if seg.csum == "unfinished":
        value = pseudo_header_value(seg.src, seg.dst, proto, len(raw) - header_len)
    else:
        assert isinstance(seg.csum, int)
        value = seg.csum
    struct.pack_into("!H", raw, at, value)


def ethernet(packet: bytes, vlan_ids: Sequence[int] = (), ethertype: int | None = None) -> bytes:
    """An Ethernet frame; with two VLAN ids the first is the outer 802.1ad tag."""
    if ethertype is None:
        ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    tpids = [
        0x88A8 if depth == 0 and len(vlan_ids) > 1 else 0x8100 for depth in range(len(vlan_ids))
    ]
    types = [*tpids, ethertype]  # each tag is followed by the type of what comes next
    frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + struct.pack("!H", types[0])
    for depth, vlan_id in enumerate(vlan_ids):
        frame += struct.pack("!HH", vlan_id, types[depth + 1])
    return frame + packet


def sll(packet: bytes) -> bytes:
    """Linux cooked capture v1 (tcpdump -i any, older libpcap)."""
    ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    return (
        bytes(dpkt.sll.SLL(type=4, hrd=1, hlen=6, hdr=b"\x02\0\0\0\0\x01\0\0", ethtype=ethertype))
        + packet
    )


def sll2(packet: bytes, ifindex: int = 3) -> bytes:
    """Linux cooked capture v2 (tcpdump -i any -y LINUX_SLL2) from interface `ifindex`."""
    ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    header = dpkt.sll2.SLL2(
        ethtype=ethertype, intindex=ifindex, hrd=1, type=4, hlen=6, hdr=b"\x02\0\0\0\0\x01\0\0"
    )
    return bytes(header) + packet


def arp_frame() -> bytes:
    request = dpkt.arp.ARP(
        spa=socket.inet_aton(CLIENT), tpa=socket.inet_aton(SERVER), sha=b"\x02\0\0\0\0\x01"
    )
    return ethernet(bytes(request), ethertype=0x0806)


Frame = tuple[float, bytes]


def write_pcap(
    path: Path, frames: Iterable[Frame], linktype: int = dpkt.pcap.DLT_EN10MB, snaplen: int = 65535
) -> Path:
    """A classic pcap; frames longer than snaplen are cut as tcpdump -s does."""
    with open(path, "wb") as stream:
        writer = dpkt.pcap.Writer(stream, snaplen=snaplen, linktype=linktype)
        for timestamp, frame in frames:
            writer.writepkt(frame[:snaplen], ts=timestamp)
    return path


def write_pcapng(path: Path, frames: Iterable[Frame], linktype: int = dpkt.pcap.DLT_EN10MB) -> Path:
    with open(path, "wb") as stream:
        writer = dpkt.pcapng.Writer(stream, linktype=linktype)
        for timestamp, frame in frames:
            writer.writepkt(frame, ts=timestamp)
    return path


def eth_frames(segments: Iterable[tuple[float, Seg]]) -> list[Frame]:
    return [(timestamp, ethernet(ip_packet(seg))) for timestamp, seg in segments]


# --------------------------------------------------------------------------
# Capture files written byte by byte: what dpkt's writers cannot make (several
# interfaces and sections, big-endian sections, SPB, nanosecond or big-endian
# classic pcap), following the pcapng draft and the pcap file format.


@dataclass(frozen=True)
class Idb:
    """A pcapng interface. tsresol: the raw if_tsresol byte (0x09: nanoseconds,
    0x8a: 2^-10 s); tsoffset: if_tsoffset seconds."""

    link_type: int = 1
    name: str = ""
    snaplen: int = 0
    tsresol: int | None = None
    tsoffset: int | None = None


@dataclass(frozen=True)
class Epb:
    """An Enhanced Packet Block; `ticks` in its interface's resolution."""

    interface: int
    ticks: int
    frame: bytes
    original_length: int | None = None  # default len(frame)


@dataclass(frozen=True)
class Spb:
    """A Simple Packet Block: interface 0, no time; the frame as on the wire."""

    frame: bytes


@dataclass(frozen=True)
class ObsoletePb:
    """The obsolete Packet Block (type 2)."""

    interface: int
    ticks: int
    frame: bytes


@dataclass(frozen=True)
class OtherBlock:
    """Any block a reader must skip by its length (e.g. 5: interface statistics)."""

    block_type: int
    body: bytes = b"\x00" * 8


Block = Epb | Spb | ObsoletePb | OtherBlock


@dataclass(frozen=True)
class Section:
    interfaces: Sequence[Idb]
    blocks: Sequence[Block]
    big_endian: bool = False


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _block(order: str, block_type: int, body: bytes) -> bytes:
    body = _pad4(body)
    length = len(body) + 12
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def _option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad4(value)


def _idb(order: str, idb: Idb) -> bytes:
    options = _option(order, 3, b"a description before the name")  # if_description
    if idb.name:
        options += _option(order, 2, idb.name.encode())
    if idb.tsresol is not None:
        options += _option(order, 9, bytes([idb.tsresol]))
    if idb.tsoffset is not None:
        options += _option(order, 14, struct.pack(order + "q", idb.tsoffset))
    options += struct.pack(order + "HH", 0, 0)  # opt_endofopt
    return _block(order, 1, struct.pack(order + "HHI", idb.link_type, 0, idb.snaplen) + options)


def _packet_block(order: str, block: Block, snaplen_of_0: int) -> bytes:
    if isinstance(block, Epb):
        length = len(block.frame) if block.original_length is None else block.original_length
        header = struct.pack(
            order + "5I",
            block.interface,
            block.ticks >> 32,
            block.ticks & 0xFFFFFFFF,
            len(block.frame),
            length,
        )
        return _block(order, 6, header + block.frame)
    if isinstance(block, Spb):
        captured = block.frame[:snaplen_of_0] if snaplen_of_0 else block.frame
        return _block(order, 3, struct.pack(order + "I", len(block.frame)) + captured)
    if isinstance(block, ObsoletePb):
        header = struct.pack(
            order + "HH4I",
            block.interface,
            0,
            block.ticks >> 32,
            block.ticks & 0xFFFFFFFF,
            len(block.frame),
            len(block.frame),
        )
        return _block(order, 2, header + block.frame)
    return _block(order, block.block_type, block.body)


def pcapng_bytes(*sections: Section) -> bytes:
    data = b""
    for section in sections:
        order = ">" if section.big_endian else "<"
        shb = struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1)  # section length unknown
        data += _block(order, 0x0A0D0D0A, shb)
        data += b"".join(_idb(order, idb) for idb in section.interfaces)
        snaplen_of_0 = section.interfaces[0].snaplen if section.interfaces else 0
        data += b"".join(_packet_block(order, b, snaplen_of_0) for b in section.blocks)
    return data


def write_sections(path: Path, *sections: Section) -> Path:
    path.write_bytes(pcapng_bytes(*sections))
    return path


def classic_pcap_bytes(
    frames: Iterable[tuple[int, int, bytes]],
    linktype: int = 1,
    big_endian: bool = False,
    nano: bool = False,
) -> bytes:
    """A classic pcap; frames as (seconds, micro- or nanoseconds, bytes)."""
    order = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    data = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for seconds, fraction, frame in frames:
        data += struct.pack(order + "IIII", seconds, fraction, len(frame), len(frame)) + frame
    return data


def null_loopback(packet: bytes, family: int, order: str) -> bytes:
    """LINKTYPE_NULL (host byte order, `order`) or LINKTYPE_LOOP (">") framing."""
    return struct.pack(order + "I", family) + packet
