"""Read pcap/pcapng captures and judge every TCP/UDP checksum in them.

Pure: dpkt reads classic pcap files, labctl.analysis.pcapng reads pcapng
(every packet with its own interface's link type); the link, IP and L4
headers are walked here by hand so that a frame cut short by the snaplen
or a malformed header becomes a verdict or a counted skip, never an
exception.

The checksum convention (the reason this module exists)
-------------------------------------------------------
With TX checksum offload the kernel marks a packet CHECKSUM_PARTIAL and
leaves in the TCP/UDP checksum field only the sum of the *pseudo header*
(source, destination, protocol, L4 length); the "hardware" is expected to add
the sum of the L4 header and payload, starting at csum_start, and store the
complement at csum_offset. Linux does it in `__tcp_v4_send_check()` and
`udp4_hwcsum()`::

    th->check = ~tcp_v4_check(len, saddr, daddr, 0);
              = ~csum_tcpudp_magic(saddr, daddr, len, IPPROTO_TCP, 0)
              = ~csum_fold(csum_tcpudp_nofold(...))      # csum_fold inverts
              = folded pseudo-header sum, NOT inverted

(IPv6: `__tcp_v6_send_check()` / `~tcp_v6_check()`, same shape.) So an
unfinished field holds `fold(pseudo header)`, read as a big-endian 16-bit
word; a finished one holds `~fold(pseudo header + L4 bytes)`. Because the
pseudo-header sum ignores the order of the two addresses, a SYN and its
SYN/ACK of the same length carry the same unfinished value (the seed bug's
signature).

Verified empirically on Linux 6.18: veth pair between two namespaces, TX
offload on, tcpdump on the sending side. 10.77.0.1 -> 10.77.0.2, 40-byte TCP
SYN: field 0x14cb = 0x0a4d + 0x0001 + 0x0a4d + 0x0002 + 0x0006 + 0x0028,
the same value on the SYN/ACK; 127.0.0.1 -> 127.0.0.1 on lo: 0xfe30. The
captures are kept as test fixtures in tests/unit/analysis/golden/captures/.
"""

from __future__ import annotations

import enum
import gzip
import hashlib
import ipaddress
import struct
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO, Literal, Protocol, overload

import dpkt  # type: ignore[import-untyped]

from labctl.analysis.pcapng import Interface, PcapngReader, is_pcapng

IpVerdict = Literal["valid", "wrong", "n/a"]
L4Verdict = Literal["valid", "unfinished", "wrong", "zero-udp", "truncated", "fragment"]

# Link types (tcpdump.org/linktypes.html). DLT_RAW is 12 on most systems
# and 14 on OpenBSD; 101 is the LINKTYPE_ value pcap files carry for it, but
# files written with the DLT_ value exist.
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in the writer's byte order
LINKTYPE_ETHERNET = 1
DLT_RAW = 12
DLT_RAW_OPENBSD = 14
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108  # OpenBSD loopback: the same family word, network byte order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SLL2_HEADER_LEN = 20
SLL2_IFINDEX_AT = 4  # after the protocol type and a reserved 16-bit field
LINK_NAMES: Mapping[int, str] = {
    LINKTYPE_NULL: "null",
    LINKTYPE_ETHERNET: "ethernet",
    DLT_RAW: "raw",
    DLT_RAW_OPENBSD: "raw",
    LINKTYPE_RAW: "raw",
    LINKTYPE_LOOP: "loop",
    LINKTYPE_LINUX_SLL: "sll",
    LINKTYPE_IPV4: "ipv4",
    LINKTYPE_IPV6: "ipv6",
    LINKTYPE_LINUX_SLL2: "sll2",
}
RAW_IP_LINKS = frozenset({DLT_RAW, DLT_RAW_OPENBSD, LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6})

# Address families in a NULL/LOOP header: AF_INET is 2 everywhere, AF_INET6
# is 10 on Linux, 24 on NetBSD/OpenBSD, 28 on FreeBSD, 30 on macOS.
AF_INET = 2
AF_INET6_VALUES = frozenset({10, 24, 28, 30})

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
# 802.1Q, 802.1ad (QinQ outer) and the pre-standard QinQ tag.
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})
MPLS_ETHERTYPES = frozenset({0x8847, 0x8848})  # unicast, multicast
ETH_P_PPPOE_SESSION = 0x8864
PPP_PROTOCOLS: Mapping[int, int] = {0x0021: 0x0800, 0x0057: 0x86DD}  # PPP IPv4, IPv6

IPPROTO_TCP = 6
IPPROTO_UDP = 17
PROTO_NAMES: Mapping[int, str] = {IPPROTO_TCP: "tcp", IPPROTO_UDP: "udp"}

# Tunnels whose inner packets are judged too (_parse_ip_tunnel, _udp_tunnel): IP in IP
# (ipip, sit, ip6tnl), GRE (gretap, ip6gre, OVS gre, ERSPAN), and over UDP
# VXLAN (IANA 4789, Linux's historical default 8472), VXLAN-GPE and Geneve.
IPPROTO_IPIP = 4
IPPROTO_IPV6_IN_IP = 41
IPPROTO_GRE = 47
IP_TUNNEL_PROTOS = frozenset({IPPROTO_IPIP, IPPROTO_IPV6_IN_IP, IPPROTO_GRE})
VXLAN_PORTS = frozenset({4789, 8472})
VXLAN_GPE_PORT = 4790
GENEVE_PORT = 6081
ETH_P_TEB = 0x6558  # transparent Ethernet bridging: an Ethernet frame inside
ETH_P_ERSPAN2 = 0x88BE
ETH_P_ERSPAN3 = 0x22EB
MAX_TUNNEL_DEPTH = 4

# Offsets of the checksum field inside the L4 header. Both are even, so the
# field is one aligned 16-bit word of the sum.
TCP_CSUM_OFFSET = 16
UDP_CSUM_OFFSET = 6

TCP_FLAG_LETTERS = (
    (0x01, "F"),
    (0x02, "S"),
    (0x04, "R"),
    (0x08, "P"),
    (0x10, "A"),
    (0x20, "U"),
    (0x40, "E"),
    (0x80, "C"),
)

# Bytes of L4 payload hashed to tell UDP datagrams apart across taps. Small
# enough that a typical 96-byte snaplen still covers it.
PAYLOAD_DIGEST_BYTES = 32


class Skip(enum.StrEnum):
    """Why a frame produced no PacketRecord."""

    NON_IP = "non-ip"
    NOT_TCP_UDP = "not-tcp-udp"
    IP_FRAGMENT = "ip-fragment"
    TRUNCATED_HEADER = "truncated-header"
    MALFORMED = "malformed"
    UNSUPPORTED_LINK = "unsupported-link-type"
    TRUNCATED_FILE = "truncated-file"


# --------------------------------------------------------------------------
# Ones-complement arithmetic (RFC 1071)


def word_sum(data: bytes | memoryview) -> int:
    """Unfolded sum of the big-endian 16-bit words of `data`, odd byte padded."""
    if len(data) % 2:
        data = bytes(data) + b"\x00"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def fold(total: int) -> int:
    """Fold a sum into 16 bits with end-around carry. Non-zero in, non-zero out."""
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes | memoryview) -> int:
    """The RFC 1071 checksum of `data` (for a header whose field is zeroed)."""
    return ~fold(word_sum(data)) & 0xFFFF


def pseudo_header_sum(src: bytes, dst: bytes, proto: int, l4_length: int) -> int:
    """Unfolded sum of the IPv4 (4-byte addresses) or IPv6 pseudo header.

    IPv6 puts a 32-bit length and a 24-bit zero before the next header; as
    16-bit words that adds the same as IPv4's zero byte + protocol + 16-bit
    length for any length below 64 KiB, and the split below covers jumbo
    lengths too.
    """
    return word_sum(src) + word_sum(dst) + proto + (l4_length >> 16) + (l4_length & 0xFFFF)


def unfinished_value(src: bytes, dst: bytes, proto: int, l4_length: int) -> int:
    """What Linux leaves in the L4 checksum field under CHECKSUM_PARTIAL.

    `~csum_tcpudp_magic(...)`: the folded pseudo-header sum, not inverted.
    """
    return fold(pseudo_header_sum(src, dst, proto, l4_length))


# --------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class PacketRecord:
    """One TCP or UDP packet of a capture and what its checksums say."""

    index: int  # 1-based frame number in the file, as Wireshark counts
    timestamp: float
    link: str  # a LINK_NAMES value: "ethernet", "sll", "sll2", "raw", "null"...
    vlan_ids: tuple[int, ...]  # outermost tag first (inside a tunnel: the inner frame's)
    ip_version: int
    src: str
    dst: str
    ip_id: int | None  # IPv4 identification, or an IPv6 fragment header's id
    proto: str  # "tcp" or "udp"
    sport: int
    dport: int
    tcp_flags: str  # "S", "SA", "A", "PA", "FA", "R"...; "" for UDP
    seq: int | None  # TCP only
    ack: int | None  # TCP only
    tsval: int | None  # TCP timestamp option; tells identical retransmissions apart
    payload_len: int  # L4 payload bytes on the wire (from the IP header), not captured
    payload_digest: str  # hash of the first captured payload bytes, to match UDP
    ip_csum: IpVerdict  # IPv6 has no header checksum: "n/a"
    l4_csum: int  # the checksum field as captured
    l4_expected: int | None  # the correct value; None when it cannot be computed
    l4_pseudo: int  # the pseudo-header-only value (what "unfinished" means)
    l4_verdict: L4Verdict
    # Tunnels: a packet inside another one has the outer frame's number, depth 1 or more,
    # and names its tunnel; a UDP datagram that carries one (VXLAN, Geneve) is a carrier.
    depth: int = 0
    tunnel: str = ""  # like "vxlan vni 100"; "" outside tunnels
    tunnel_ends: str = ""  # the outer addresses, like "192.168.1.1 -> 192.168.1.2"
    carries: str = ""  # a carrier: the tunnel it carries, like "vxlan vni 100"

    @property
    def carrier(self) -> bool:
        return bool(self.carries)

    @property
    def key(self) -> tuple[int, int]:
        """Unique within a capture: the frame's number and the depth in it."""
        return (self.index, self.depth)

    @property
    def flow(self) -> tuple[str, str, int, str, int]:
        """Directional 5-tuple: (proto, src, sport, dst, dport)."""
        return (self.proto, self.src, self.sport, self.dst, self.dport)

    @property
    def looks_unfinished(self) -> bool:
        """The field equals the pseudo-header sum, even where the payload is
        not captured and the verdict therefore says "truncated"."""
        return self.l4_csum == self.l4_pseudo


@dataclass(frozen=True)
class Capture(Sequence[PacketRecord]):
    """The TCP/UDP packets of one capture file plus what was skipped and why.

    Behaves as a sequence of its records.
    """

    path: str
    link_type: int | None  # of the interface read (the first one); None: the file declares none
    frames: int
    records: tuple[PacketRecord, ...]
    skipped: Mapping[str, int] = field(default_factory=dict)

    @overload
    def __getitem__(self, item: int) -> PacketRecord: ...
    @overload
    def __getitem__(self, item: slice) -> Sequence[PacketRecord]: ...
    def __getitem__(self, item: int | slice) -> PacketRecord | Sequence[PacketRecord]:
        return self.records[item]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[PacketRecord]:
        return iter(self.records)


# --------------------------------------------------------------------------
# Reading files


def read_pcap(path: str | Path, interface: int | None = None) -> Capture:
    """Read a pcap or pcapng file and judge every TCP/UDP packet in it.

    Each frame is walked with the link type of the interface it was captured
    on (a pcapng file may have several). `interface`: only the frames of that
    interface, by its number in the file (pcapng interface blocks counted
    from 0 across all sections; a classic pcap has interface 0 only); None
    reads them all. Frames keep their number in the whole file either way.

    A file cut in the middle of a record (a capture still being written)
    ends the reading with one "truncated-file" skip instead of an error.
    Raises OSError if the file cannot be opened, ValueError if it is not a
    capture or has no such interface.
    """
    records: list[PacketRecord] = []
    skipped: Counter[str] = Counter()
    frames = 0
    with open_capture(path) as stream:
        capture_file = _CaptureFile(stream)
        for frame in capture_file:
            if isinstance(frame, Skip):
                skipped[frame.value] += 1
                continue
            if interface is not None and frame.interface != interface:
                continue
            frames += 1
            if frame.interface is None or frame.link_type is None:
                skipped[Skip.MALFORMED.value] += 1  # names an interface never declared
                continue
            parsed = parse_frame(frame.data, frame.link_type, frame.number, frame.timestamp)
            if parsed is Skip.UNSUPPORTED_LINK:
                skipped[f"{parsed.value} {frame.link_type}"] += 1
            elif isinstance(parsed, Skip):
                skipped[parsed.value] += 1
            else:
                records.extend(parsed)
        interfaces = capture_file.interfaces
    numbers = {i.number: i for i in interfaces}
    if interface is not None and interface not in numbers:
        raise ValueError(f"it has no interface {interface} (interfaces: {sorted(numbers)})")
    read = numbers[interface] if interface is not None else interfaces[0] if interfaces else None
    link_type = read.link_type if read is not None else None
    return Capture(
        path=str(path),
        link_type=link_type,
        frames=frames,
        records=tuple(records),
        skipped=dict(sorted(skipped.items())),
    )


GZIP_MAGIC = b"\x1f\x8b"


def open_capture(path: str | Path) -> BinaryIO:
    """The capture's bytes, uncompressed when the file is gzip'ed (`tcpdump -w - | gzip`,
    Wireshark's "compress with gzip"), as Wireshark reads them. A gzip stream cut short
    reads as a capture cut short."""
    with open(path, "rb") as probe:
        compressed = probe.read(2) == GZIP_MAGIC
    if compressed:
        return _CutTolerantGzip(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


class _CutTolerantGzip(gzip.GzipFile):
    def read(self, size: int | None = -1) -> bytes:
        try:
            return super().read(size)
        except EOFError:  # "Compressed file ended before the end-of-stream marker"
            return b""


def capture_stem(path: Path) -> str:
    """A capture's name without its extensions: "server" for server.pcap, server.pcapng
    and server.pcap.gz."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return Path(name).stem


@dataclass(frozen=True)
class CaptureInterface:
    """An interface of a capture file and how many frames it holds."""

    number: int  # see read_pcap
    name: str  # pcapng if_name, "" when it has none (always for a classic pcap)
    link_type: int
    frames: int


def capture_interfaces(path: str | Path) -> tuple[CaptureInterface, ...]:
    """The interfaces of a capture file in file order, with their frame counts.

    Walks the file's records without judging any frame. Raises as read_pcap.
    """
    counts: Counter[int | None] = Counter()
    with open_capture(path) as stream:
        capture_file = _CaptureFile(stream)
        for frame in capture_file:
            if not isinstance(frame, Skip):
                counts[frame.interface] += 1
        return tuple(
            CaptureInterface(i.number, i.name, i.link_type, counts[i.number])
            for i in capture_file.interfaces
        )


@dataclass(frozen=True)
class _Frame:
    number: int  # 1-based in the file, as Wireshark counts
    interface: int | None  # None: a pcapng packet naming an undeclared interface
    link_type: int | None
    timestamp: float
    data: bytes


class _PcapReader(Protocol):
    """What dpkt's classic pcap reader offers (dpkt is untyped)."""

    snaplen: int

    def datalink(self) -> int: ...
    def __iter__(self) -> Iterator[tuple[float, bytes]]: ...


class _CaptureFile:
    """The frames of a classic pcap or a pcapng file, by the file's magic number.

    Classic pcap is read with dpkt (microsecond and nanosecond magic, either
    byte order): one interface, number 0. pcapng is read with
    labctl.analysis.pcapng, which gives every packet its own interface. A file
    cut short yields Skip.TRUNCATED_FILE last.
    """

    def __init__(self, stream: BinaryIO) -> None:
        head = stream.read(4)
        stream.seek(0)
        self._pcapng: PcapngReader | None = None
        self._pcap: _PcapReader | None = None
        self._pcap_interface: tuple[Interface, ...] = ()
        self._by_ifindex: dict[int, Interface] = {}
        try:
            if is_pcapng(head):
                self._pcapng = PcapngReader(stream)
            else:
                self._pcap = dpkt.pcap.Reader(stream)
        except (ValueError, dpkt.Error, struct.error) as error:
            # An empty file (tcpdump killed before its first write) ends up here too.
            raise ValueError(f"not a pcap or pcapng file ({error})") from error
        if self._pcap is not None:
            # The link type field's upper 16 bits carry FCS information, not the type.
            link_type = int(self._pcap.datalink()) & 0xFFFF
            self._pcap_interface = (
                Interface(0, 0, 0, link_type, int(self._pcap.snaplen), "", 1_000_000, 0),
            )

    @property
    def interfaces(self) -> Sequence[Interface]:
        """The file's interfaces; for a `tcpdump -i any` file (SLL2), the kernel
        interfaces its frames came from, as far as the file has been read."""
        if self._pcapng is not None:
            return self._pcapng.interfaces
        if self._by_ifindex:
            return tuple(self._by_ifindex.values())
        return self._pcap_interface

    def __iter__(self) -> Iterator[_Frame | Skip]:
        if self._pcapng is not None:
            yield from self._pcapng_frames(self._pcapng)
        elif self._pcap is not None:
            link_type = self._pcap_interface[0].link_type
            frames = self._pcap_frames(self._pcap, link_type)
            yield from self._by_sll2_ifindex(frames) if link_type == LINKTYPE_LINUX_SLL2 else frames

    def _by_sll2_ifindex(self, frames: Iterator[_Frame | Skip]) -> Iterator[_Frame | Skip]:
        """`tcpdump -i any` writes SLL2, whose header names the kernel interface of each
        frame (its ifindex): such a file is one capture point per interface, numbered by
        ifindex and named "ifindexN", in the order they first show."""
        template = self._pcap_interface[0]
        for frame in frames:
            if isinstance(frame, Skip) or len(frame.data) < SLL2_HEADER_LEN:
                yield frame
                continue
            ifindex = int(struct.unpack_from("!I", frame.data, SLL2_IFINDEX_AT)[0])
            if ifindex not in self._by_ifindex:
                self._by_ifindex[ifindex] = replace(
                    template, number=ifindex, section_index=ifindex, name=f"ifindex{ifindex}"
                )
            yield replace(frame, interface=ifindex)

    @staticmethod
    def _pcapng_frames(reader: PcapngReader) -> Iterator[_Frame | Skip]:
        for number, packet in enumerate(reader, start=1):
            interface = packet.interface
            yield _Frame(
                number,
                interface.number if interface else None,
                interface.link_type if interface else None,
                packet.timestamp,
                packet.data,
            )
        if reader.truncated:
            yield Skip.TRUNCATED_FILE

    @staticmethod
    def _pcap_frames(reader: _PcapReader, link_type: int) -> Iterator[_Frame | Skip]:
        packets = iter(reader)
        number = 0
        while True:
            try:
                timestamp, data = next(packets)
            except StopIteration:
                return
            except (dpkt.NeedData, dpkt.UnpackError, struct.error):
                yield Skip.TRUNCATED_FILE
                return
            number += 1
            # dpkt gives a nanosecond file's time as a Decimal.
            yield _Frame(number, 0, link_type, float(timestamp), bytes(data))


# --------------------------------------------------------------------------
# Walking one frame


def parse_frame(
    frame: bytes, link_type: int, index: int, timestamp: float
) -> tuple[PacketRecord, ...] | Skip:
    """Judge one captured frame: its TCP/UDP packets (outermost first; more than one
    when it carries a tunnel), or why there is none."""
    link = LINK_NAMES.get(link_type)
    if link is None:
        return Skip.UNSUPPORTED_LINK
    located = _locate_ip(frame, link_type)
    if isinstance(located, Skip):
        return located
    offset, vlan_ids = located
    return _parse_ip(memoryview(frame)[offset:], _FrameContext(index, timestamp, link, vlan_ids))


@dataclass(frozen=True)
class _FrameContext:
    index: int
    timestamp: float
    link: str
    vlan_ids: tuple[int, ...]
    depth: int = 0
    tunnel: str = ""
    tunnel_ends: str = ""


def _locate_ip(frame: bytes, link_type: int) -> tuple[int, tuple[int, ...]] | Skip:
    """Offset of the IP header in the frame and the VLAN ids on the way."""
    if link_type in RAW_IP_LINKS:
        return (0, ()) if frame else Skip.TRUNCATED_HEADER
    if link_type in (LINKTYPE_NULL, LINKTYPE_LOOP):
        return _locate_ip_after_family(frame, link_type)
    # Ethertype position: Ethernet 12, SLL 14 (after pkttype, hatype, halen,
    # 8 address bytes), SLL2 0 (protocol first, then a 20-byte header).
    if link_type == LINKTYPE_ETHERNET:
        type_at, header_len = 12, 14
    elif link_type == LINKTYPE_LINUX_SLL:
        type_at, header_len = 14, 16
    else:
        type_at, header_len = 0, 20
    if len(frame) < header_len:
        return Skip.TRUNCATED_HEADER
    ethertype = struct.unpack_from("!H", frame, type_at)[0]
    return _walk_ethertypes(frame, ethertype, header_len)


def _locate_ip_after_family(frame: bytes, link_type: int) -> tuple[int, tuple[int, ...]] | Skip:
    """BSD loopback: a 4-byte address family, then the IP packet."""
    if len(frame) < 4:
        return Skip.TRUNCATED_HEADER
    family = struct.unpack_from("!I", frame)[0]
    if link_type == LINKTYPE_NULL and family > 0xFFFF:
        # Written in the capturing host's byte order, which the file does not
        # say: every family value fits in 16 bits, so a big one is swapped.
        family = struct.unpack_from("<I", frame)[0]
    if family == AF_INET or family in AF_INET6_VALUES:
        return 4, ()
    return Skip.NON_IP


def _walk_ethertypes(
    frame: bytes, ethertype: int, offset: int
) -> tuple[int, tuple[int, ...]] | Skip:
    """Walk 802.1Q/802.1ad tags, an MPLS label stack and a PPPoE session header to the
    IP header. libpcap re-inserts the tag the kernel stripped into cooked (SLL)
    captures too, so this runs for every link."""
    vlan_ids: list[int] = []
    while ethertype in VLAN_ETHERTYPES:
        if len(frame) < offset + 4:
            return Skip.TRUNCATED_HEADER
        tci, ethertype = struct.unpack_from("!HH", frame, offset)
        vlan_ids.append(tci & 0x0FFF)
        offset += 4
    if ethertype in MPLS_ETHERTYPES:
        return _after_mpls(frame, offset, tuple(vlan_ids))
    if ethertype == ETH_P_PPPOE_SESSION:
        if len(frame) < offset + 8:
            return Skip.TRUNCATED_HEADER
        ethertype = PPP_PROTOCOLS.get(struct.unpack_from("!H", frame, offset + 6)[0], 0)
        offset += 8
    if ethertype not in (ETH_P_IP, ETH_P_IPV6):
        return Skip.NON_IP
    return offset, tuple(vlan_ids)


def _after_mpls(
    frame: bytes, offset: int, vlan_ids: tuple[int, ...]
) -> tuple[int, tuple[int, ...]] | Skip:
    """Past the label stack: IP by its version nibble, or an Ethernet pseudowire behind
    a control word (first nibble 0, RFC 4385). A pseudowire without one cannot be told
    from IP by the bytes: it counts as non-IP."""
    while True:
        if len(frame) < offset + 4:
            return Skip.TRUNCATED_HEADER
        bottom = frame[offset + 2] & 0x01
        offset += 4
        if bottom:
            break
    if len(frame) <= offset:
        return Skip.TRUNCATED_HEADER
    nibble = frame[offset] >> 4
    if nibble in (4, 6):
        return offset, vlan_ids
    if nibble == 0 and len(frame) >= offset + 4 + 14:
        inner = offset + 4  # the control word, then the customer's Ethernet frame
        ethertype = struct.unpack_from("!H", frame, inner + 12)[0]
        return _walk_ethertypes(frame, ethertype, inner + 14)
    return Skip.NON_IP


@dataclass(frozen=True)
class _L3:
    """What the L4 checksum needs from the IP layer."""

    version: int
    src: bytes
    dst: bytes  # final destination (IPv6 routing header) for the pseudo header
    header_dst: bytes  # as in the IP header, for display
    ip_id: int | None
    proto: int
    l4: memoryview  # captured L4 bytes, Ethernet padding removed
    l4_length: int  # L4 length on the wire, per the IP header
    first_fragment: bool
    ip_csum: IpVerdict


def _parse_ip(packet: memoryview, context: _FrameContext) -> tuple[PacketRecord, ...] | Skip:
    if len(packet) < 1:
        return Skip.TRUNCATED_HEADER
    version = packet[0] >> 4
    l3 = _parse_ipv4(packet) if version == 4 else _parse_ipv6(packet) if version == 6 else None
    if l3 is None:
        return Skip.MALFORMED
    if isinstance(l3, Skip):
        return l3
    if l3.proto in IP_TUNNEL_PROTOS:
        return _parse_ip_tunnel(l3, context)
    if l3.proto == IPPROTO_TCP:
        tcp = _parse_tcp(l3, context)
        return tcp if isinstance(tcp, Skip) else (tcp,)
    return _parse_udp(l3, context)


# --------------------------------------------------------------------------
# Tunnels: the inner packet is what the endpoints' TCP checks, so it is judged
# like any other, with the outer frame's number and the tunnel's name.


def _parse_ip_tunnel(l3: _L3, context: _FrameContext) -> tuple[PacketRecord, ...] | Skip:
    """IP in IP and GRE carry no checksum labctl judges: only the inner packets count."""
    if l3.first_fragment or context.depth >= MAX_TUNNEL_DEPTH:
        return Skip.IP_FRAGMENT if l3.first_fragment else Skip.NOT_TCP_UDP
    ends = f"{_address(l3.src)} -> {_address(l3.header_dst)}"
    if l3.proto == IPPROTO_GRE:
        inner = _gre_payload(l3.l4)
        if inner is None:
            return Skip.NOT_TCP_UDP
        name, ethertype, payload = inner
    else:
        name = "ipip" if l3.proto == IPPROTO_IPIP else "ip6-in-ip"
        ethertype, payload = (ETH_P_IP if l3.proto == IPPROTO_IPIP else ETH_P_IPV6), l3.l4
    inner_records = _parse_inner(payload, ethertype, context, name, ends)
    return inner_records if inner_records else Skip.NOT_TCP_UDP


def _gre_payload(gre: memoryview) -> tuple[str, int, memoryview] | None:
    """RFC 2784/2890 GRE version 0 (checksum, key, sequence); ERSPAN types II and III
    inside it. None for anything else (PPTP's version 1, source routing, cut short)."""
    if len(gre) < 4:
        return None
    flags, ethertype = struct.unpack_from("!HH", gre)
    if flags & 0x0007 or flags & 0x4000:  # version 1 (PPTP); routing present
        return None
    offset = 4 + 4 * sum(1 for bit in (0x8000, 0x2000, 0x1000) if flags & bit)
    name = "gre"
    if flags & 0x2000:
        name += f" key {struct.unpack_from('!I', gre, 8 if flags & 0x8000 else 4)[0]}"
    if ethertype in (ETH_P_ERSPAN2, ETH_P_ERSPAN3):
        if len(gre) < offset + 12:
            return None
        session = struct.unpack_from("!H", gre, offset + 2)[0] & 0x03FF
        name = f"erspan session {session}"
        if ethertype == ETH_P_ERSPAN2:
            offset += 8
        else:  # type III: 12 bytes, and an 8-byte platform subheader when O is set
            offset += 12 + (8 if gre[offset + 11] & 0x01 else 0)
        ethertype = ETH_P_TEB
    if len(gre) < offset:
        return None
    return name, ethertype, gre[offset:]


def _udp_tunnel(dport: int, payload: memoryview) -> tuple[str, int, memoryview] | None:
    """VXLAN, VXLAN-GPE and Geneve by their IANA ports (and Linux's 8472), when the
    header says so: the tunnel's name, the inner ethertype and the inner bytes."""
    if len(payload) < 8:
        return None
    if dport in VXLAN_PORTS and payload[0] & 0x08:
        vni = int(struct.unpack_from("!I", payload, 4)[0]) >> 8
        return f"vxlan vni {vni}", ETH_P_TEB, payload[8:]
    if dport == VXLAN_GPE_PORT and payload[0] & 0x08:
        vni = int(struct.unpack_from("!I", payload, 4)[0]) >> 8
        inner = {1: ETH_P_IP, 2: ETH_P_IPV6, 3: ETH_P_TEB}.get(payload[3])
        return None if inner is None else (f"vxlan-gpe vni {vni}", inner, payload[8:])
    if dport == GENEVE_PORT and payload[0] >> 6 == 0:
        options = (payload[0] & 0x3F) * 4
        ethertype = struct.unpack_from("!H", payload, 2)[0]
        vni = int(struct.unpack_from("!I", payload, 4)[0]) >> 8
        if len(payload) < 8 + options:
            return None
        return f"geneve vni {vni}", ethertype, payload[8 + options :]
    return None


def _parse_inner(
    payload: memoryview, ethertype: int, outer: _FrameContext, tunnel: str, ends: str
) -> tuple[PacketRecord, ...]:
    """The TCP/UDP packets inside a tunnel; () when there is none to judge."""
    vlan_ids: tuple[int, ...] = ()
    if ethertype == ETH_P_TEB:
        located = _locate_ip(bytes(payload), LINKTYPE_ETHERNET)
        if isinstance(located, Skip):
            return ()
        offset, vlan_ids = located
        payload = payload[offset:]
    elif ethertype not in (ETH_P_IP, ETH_P_IPV6):
        return ()
    context = replace(
        outer, vlan_ids=vlan_ids, depth=outer.depth + 1, tunnel=tunnel, tunnel_ends=ends
    )
    inner = _parse_ip(payload, context)
    return () if isinstance(inner, Skip) else inner


def _address(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def _parse_ipv4(packet: memoryview) -> _L3 | Skip:
    if len(packet) < 20:
        return Skip.TRUNCATED_HEADER
    header_len = (packet[0] & 0x0F) * 4
    total_len, ip_id, frag = struct.unpack_from("!HHH", packet, 2)
    proto = packet[9]
    if header_len < 20 or total_len < header_len:
        return Skip.MALFORMED
    if len(packet) < header_len:
        return Skip.TRUNCATED_HEADER
    if proto not in PROTO_NAMES and proto not in IP_TUNNEL_PROTOS:
        return Skip.NOT_TCP_UDP
    # A later fragment has no L4 header; the checksum spans the whole
    # datagram, which is not reassembled here.
    if frag & 0x1FFF:
        return Skip.IP_FRAGMENT
    ip_csum: IpVerdict = "valid" if fold(word_sum(packet[:header_len])) == 0xFFFF else "wrong"
    return _L3(
        version=4,
        src=bytes(packet[12:16]),
        dst=bytes(packet[16:20]),
        header_dst=bytes(packet[16:20]),
        ip_id=ip_id,
        proto=proto,
        l4=packet[header_len:total_len],
        l4_length=total_len - header_len,
        first_fragment=bool(frag & 0x2000),
        ip_csum=ip_csum,
    )


# IPv6 extension headers with the generic (next header, length in 8-octet
# units minus one) layout; AH counts in 4-octet units minus two.
IPV6_HOP_BY_HOP = 0
IPV6_ROUTING = 43
IPV6_FRAGMENT = 44
IPV6_AH = 51
IPV6_DEST_OPTS = 60
IPV6_GENERIC_EXTENSIONS = frozenset({IPV6_HOP_BY_HOP, IPV6_ROUTING, IPV6_DEST_OPTS, 139, 140})


@dataclass
class _Ipv6Walk:
    proto: int
    offset: int
    final_dst: bytes
    fragment_id: int | None = None
    first_fragment: bool = False


def _parse_ipv6(packet: memoryview) -> _L3 | Skip:
    if len(packet) < 40:
        return Skip.TRUNCATED_HEADER
    payload_len = struct.unpack_from("!H", packet, 4)[0]
    walk = _walk_ipv6_extensions(packet, _Ipv6Walk(packet[6], 40, bytes(packet[24:40])))
    if isinstance(walk, Skip):
        return walk
    l4_length = payload_len - (walk.offset - 40)
    if l4_length < 0:
        return Skip.MALFORMED
    return _L3(
        version=6,
        src=bytes(packet[8:24]),
        dst=walk.final_dst,
        header_dst=bytes(packet[24:40]),
        ip_id=walk.fragment_id,
        proto=walk.proto,
        l4=packet[walk.offset : 40 + payload_len],
        l4_length=l4_length,
        first_fragment=walk.first_fragment,
        ip_csum="n/a",
    )


def _walk_ipv6_extensions(packet: memoryview, walk: _Ipv6Walk) -> _Ipv6Walk | Skip:
    while walk.proto not in PROTO_NAMES and walk.proto not in IP_TUNNEL_PROTOS:
        if walk.proto == IPV6_FRAGMENT:
            if len(packet) < walk.offset + 8:
                return Skip.TRUNCATED_HEADER
            offset_flags, ident = struct.unpack_from("!HI", packet, walk.offset + 2)
            if offset_flags >> 3:
                return Skip.IP_FRAGMENT
            walk.fragment_id, walk.first_fragment = ident, bool(offset_flags & 1)
            length = 8
        elif walk.proto in IPV6_GENERIC_EXTENSIONS or walk.proto == IPV6_AH:
            if len(packet) < walk.offset + 2:
                return Skip.TRUNCATED_HEADER
            units = packet[walk.offset + 1]
            length = (units + 2) * 4 if walk.proto == IPV6_AH else (units + 1) * 8
            if len(packet) < walk.offset + length:
                return Skip.TRUNCATED_HEADER
            if walk.proto == IPV6_ROUTING:
                walk.final_dst = _routing_final_destination(packet, walk.offset, walk.final_dst)
        else:
            # ESP, no-next-header, mobility, ICMPv6...: no TCP/UDP to judge.
            return Skip.NOT_TCP_UDP
        walk.proto = packet[walk.offset]
        walk.offset += length
    return walk


def _routing_final_destination(packet: memoryview, offset: int, current: bytes) -> bytes:
    """RFC 8200 8.1: with a routing header the pseudo header carries the
    final destination, not the next hop in the IPv6 header."""
    units, routing_type, segments_left = packet[offset + 1], packet[offset + 2], packet[offset + 3]
    addresses = units // 2
    if segments_left == 0 or addresses == 0:
        return current
    if routing_type in (0, 2):  # list in visiting order: the last is final
        start = offset + 8 + (addresses - 1) * 16
    elif routing_type == 4:  # segment routing: Segment List[0] is final
        start = offset + 8
    else:
        return current
    return bytes(packet[start : start + 16])


# --------------------------------------------------------------------------
# L4


def _parse_tcp(l3: _L3, context: _FrameContext) -> PacketRecord | Skip:
    segment = l3.l4
    if len(segment) < 20:
        return Skip.TRUNCATED_HEADER
    sport, dport, seq, ack, offset_byte, flag_bits = struct.unpack_from("!HHIIBB", segment)
    header_len = (offset_byte >> 4) * 4
    if header_len < 20 or header_len > l3.l4_length:
        return Skip.MALFORMED
    field_value = struct.unpack_from("!H", segment, TCP_CSUM_OFFSET)[0]
    return _record(
        l3,
        context,
        sport=sport,
        dport=dport,
        tcp=(_tcp_flags(flag_bits), seq, ack, _tcp_tsval(segment[20:header_len])),
        payload=(l3.l4_length - header_len, segment[header_len:]),
        verdict=_l4_verdict(l3, segment, field_value, checked_length=l3.l4_length),
        field_value=field_value,
    )


def _parse_udp(l3: _L3, context: _FrameContext) -> tuple[PacketRecord, ...] | Skip:
    datagram = l3.l4
    if len(datagram) < 8:
        return Skip.TRUNCATED_HEADER
    sport, dport, udp_len, field_value = struct.unpack_from("!HHHH", datagram)
    # The kernel trims a datagram to the UDP length and uses that length in
    # the pseudo header; a UDP length beyond the IP payload is dropped. A first
    # fragment carries only the start of its datagram: there the UDP length
    # runs past this packet by design.
    if udp_len < 8 or (udp_len > l3.l4_length and not l3.first_fragment):
        return Skip.MALFORMED
    tunnel = (
        None
        if l3.first_fragment or context.depth >= MAX_TUNNEL_DEPTH
        else _udp_tunnel(dport, datagram[8:udp_len])
    )
    inner: tuple[PacketRecord, ...] = ()
    if tunnel is not None:
        name, ethertype, payload = tunnel
        ends = f"{_address(l3.src)} -> {_address(l3.header_dst)}"
        inner = _parse_inner(payload, ethertype, context, name, ends)
    outer = _record(
        l3,
        context,
        sport=sport,
        dport=dport,
        tcp=None,
        payload=(udp_len - 8, datagram[8:udp_len]),
        # RFC 6935: a tunnel over IPv6 may send a zero UDP checksum (Linux: udp6zerocsumtx).
        verdict=_l4_verdict(
            l3,
            datagram[:udp_len],
            field_value,
            checked_length=udp_len,
            zero_allowed=tunnel is not None,
        ),
        field_value=field_value,
    )
    return (replace(outer, carries=tunnel[0]) if tunnel else outer, *inner)


@dataclass(frozen=True)
class _Verdict:
    verdict: L4Verdict
    expected: int | None
    pseudo: int


def _l4_verdict(
    l3: _L3, segment: memoryview, field_value: int, checked_length: int, zero_allowed: bool = False
) -> _Verdict:
    pseudo_total = pseudo_header_sum(l3.src, l3.dst, l3.proto, checked_length)
    pseudo = fold(pseudo_total)
    if l3.proto == IPPROTO_UDP and field_value == 0 and (l3.version == 4 or zero_allowed):
        # RFC 768: zero means "no checksum" over IPv4. IPv6 makes the UDP
        # checksum mandatory (but for tunnels), so there a zero falls through to "wrong".
        return _Verdict("zero-udp", None, pseudo)
    if l3.first_fragment:
        return _Verdict("fragment", None, pseudo)
    if len(segment) < checked_length:
        return _Verdict("truncated", None, pseudo)
    total = pseudo_total + word_sum(segment)
    expected = ~fold(total - field_value) & 0xFFFF
    if l3.proto == IPPROTO_UDP and expected == 0:
        expected = 0xFFFF  # RFC 768: a computed zero is sent as all ones
    # Summing with the field included and getting all ones is how receivers
    # verify; it accepts both ones-complement zeros (0x0000 and 0xffff).
    if fold(total) == 0xFFFF:
        return _Verdict("valid", expected, pseudo)
    if field_value == pseudo:
        return _Verdict("unfinished", expected, pseudo)
    return _Verdict("wrong", expected, pseudo)


def _tcp_flags(bits: int) -> str:
    return "".join(letter for mask, letter in TCP_FLAG_LETTERS if bits & mask)


def _tcp_tsval(options: memoryview) -> int | None:
    """TSval of the timestamp option (kind 8), if present and captured."""
    at = 0
    while at < len(options):
        kind = options[at]
        if kind == 0:  # end of option list
            return None
        if kind == 1:  # no-op padding
            at += 1
            continue
        if at + 1 >= len(options) or options[at + 1] < 2:
            return None
        length = options[at + 1]
        if kind == 8 and length == 10 and at + 6 <= len(options):
            return int(struct.unpack_from("!I", options, at + 2)[0])
        at += length
    return None


def _record(
    l3: _L3,
    context: _FrameContext,
    *,
    sport: int,
    dport: int,
    tcp: tuple[str, int, int, int | None] | None,
    payload: tuple[int, memoryview],
    verdict: _Verdict,
    field_value: int,
) -> PacketRecord:
    flags, seq, ack, tsval = tcp if tcp is not None else ("", None, None, None)
    payload_len, captured_payload = payload
    digest = hashlib.sha1(bytes(captured_payload[:PAYLOAD_DIGEST_BYTES])).hexdigest()[:12]
    return PacketRecord(
        index=context.index,
        timestamp=context.timestamp,
        link=context.link,
        vlan_ids=context.vlan_ids,
        ip_version=l3.version,
        src=_address(l3.src),
        dst=_address(l3.header_dst),
        ip_id=l3.ip_id,
        proto=PROTO_NAMES[l3.proto],
        sport=sport,
        dport=dport,
        tcp_flags=flags,
        seq=seq,
        ack=ack,
        tsval=tsval,
        payload_len=payload_len,
        payload_digest=digest,
        ip_csum=l3.ip_csum,
        l4_csum=field_value,
        l4_expected=verdict.expected,
        l4_pseudo=verdict.pseudo,
        l4_verdict=verdict.verdict,
        depth=context.depth,
        tunnel=context.tunnel,
        tunnel_ends=context.tunnel_ends,
    )
