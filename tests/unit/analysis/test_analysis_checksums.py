"""Checksum verdicts for single frames, built with dpkt and read back from files."""

from __future__ import annotations

import socket
import struct
from dataclasses import replace
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest

from labctl.analysis.checksums import (
    Capture,
    PacketRecord,
    internet_checksum,
    read_pcap,
    unfinished_value,
)

from .pcap_builders import (
    CLIENT,
    CLIENT6,
    SERVER,
    SERVER6,
    Seg,
    arp_frame,
    ethernet,
    ip_packet,
    pseudo_header_value,
    sll,
    sll2,
    syn_options,
    write_pcap,
    write_pcapng,
)

pytestmark = pytest.mark.unit

CAPTURES = Path(__file__).parent / "golden" / "captures"

SYN = Seg(CLIENT, SERVER, 41234, 80, "S", seq=1000, ip_id=0x1111, options=syn_options(7))
SYN6 = replace(SYN, src=CLIENT6, dst=SERVER6)
DATA = Seg(CLIENT, SERVER, 41234, 80, "PA", seq=1001, ack=5001, payload=b"GET / HTTP/1.0\r\n\r\n")
DNS = Seg(CLIENT, SERVER, 5353, 53, "udp", payload=b"\x12\x34query", ip_id=0x2222)
DNS6 = replace(DNS, src=CLIENT6, dst=SERVER6)


def read_frames(
    tmp_path: Path, frames: list[bytes], linktype: int = 1, snaplen: int = 65535
) -> Capture:
    path = write_pcap(
        tmp_path / "t.pcap", [(1.0 + i, f) for i, f in enumerate(frames)], linktype, snaplen
    )
    return read_pcap(path)


def only(capture: Capture) -> PacketRecord:
    assert capture.skipped == {}
    assert len(capture) == 1
    return capture[0]


def field_of(seg: Seg) -> int:
    """The L4 checksum dpkt computed for a correct packet."""
    raw = ip_packet(seg)
    header_len = 40 if raw[0] >> 4 == 6 else 20
    return int(struct.unpack_from("!H", raw, header_len + (6 if seg.is_udp else 16))[0])


# --------------------------------------------------------------------------
# The convention, against values a Linux 6.18 kernel wrote


def test_unfinished_value_matches_the_kernel() -> None:
    # tcpdump on the sending veth, TX offload on: 40-byte SYN and SYN/ACK
    # between 10.77.0.1 and 10.77.0.2 both carried 0x14cb; 11-byte UDP 0x14c1;
    # SYN on lo 0xfe30.
    ten_1, ten_2 = socket.inet_aton("10.77.0.1"), socket.inet_aton("10.77.0.2")
    assert unfinished_value(ten_1, ten_2, 6, 40) == 0x14CB
    assert unfinished_value(ten_2, ten_1, 6, 40) == 0x14CB
    assert unfinished_value(ten_1, ten_2, 17, 19) == 0x14C1
    loopback = socket.inet_aton("127.0.0.1")
    assert unfinished_value(loopback, loopback, 6, 40) == 0xFE30
    assert pseudo_header_value("10.77.0.1", "10.77.0.2", 6, 40) == 0x14CB
    six_1 = socket.inet_pton(socket.AF_INET6, "fd77::1")
    six_2 = socket.inet_pton(socket.AF_INET6, "fd77::2")
    assert unfinished_value(six_1, six_2, 6, 40) == 0xFB20


def test_internet_checksum_rfc1071_example() -> None:
    assert internet_checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0x220D
    assert internet_checksum(b"\x01") == 0xFEFF  # odd length: padded with zero


def test_real_capture_sending_side_with_offload_is_all_unfinished() -> None:
    capture = read_pcap(CAPTURES / "veth-offload-on-sender.pcap")
    assert (capture.link_type, capture.frames, len(capture)) == (1, 23, 22)
    assert capture.skipped == {"not-tcp-udp": 1}  # the ICMP port unreachable
    assert {r.l4_verdict for r in capture} == {"unfinished"}
    assert all(r.l4_csum == r.l4_pseudo for r in capture)
    syn, synack = capture[0], capture[1]
    assert (syn.tcp_flags, synack.tcp_flags) == ("S", "SA")
    assert syn.l4_csum == synack.l4_csum == 0x14CB
    assert (syn.l4_expected, synack.l4_expected) == (0x3214, 0x2CD5)  # what tcpdump -vv says
    assert syn.tsval == 2041391849
    assert {r.ip_csum for r in capture if r.ip_version == 4} == {"valid"}


def test_real_capture_pcapng_offload_off_is_all_valid() -> None:
    capture = read_pcap(CAPTURES / "veth-offload-off.pcapng")
    assert (capture.frames, len(capture), capture.skipped) == (10, 10, {})
    assert {r.l4_verdict for r in capture} == {"valid"}
    assert capture[0].l4_csum == 0x80EB


def test_real_capture_sll2_any_interface() -> None:
    capture = read_pcap(CAPTURES / "veth-offload-off-any-sll2.pcap")
    assert capture.link_type == 276
    verdicts = [(r.src, r.tcp_flags, r.l4_verdict) for r in capture]
    # lo keeps offload on: local SYNs unfinished; the kernel's RSTs are computed
    # in full; the veth had TX offload turned off.
    assert verdicts.count(("127.0.0.1", "S", "unfinished")) == 10
    assert verdicts.count(("127.0.0.1", "RA", "valid")) == 10
    assert sum(1 for r in capture if r.src.startswith("10.77.") and r.l4_verdict == "valid") == 10
    assert {r.link for r in capture} == {"sll2"}


# --------------------------------------------------------------------------
# Verdicts on constructed packets


@pytest.mark.parametrize(
    ("seg", "verdict"),
    [
        pytest.param(SYN, "valid", id="tcp4-valid"),
        pytest.param(replace(SYN, csum="unfinished"), "unfinished", id="tcp4-unfinished"),
        pytest.param(replace(SYN, csum=field_of(SYN) ^ 0x0101), "wrong", id="tcp4-corrupted"),
        pytest.param(DATA, "valid", id="tcp4-data-valid"),
        pytest.param(replace(DATA, csum="unfinished"), "unfinished", id="tcp4-data-unfinished"),
        pytest.param(SYN6, "valid", id="tcp6-valid"),
        pytest.param(replace(SYN6, csum="unfinished"), "unfinished", id="tcp6-unfinished"),
        pytest.param(replace(SYN6, csum=0x1234), "wrong", id="tcp6-corrupted"),
        pytest.param(DNS, "valid", id="udp4-valid"),
        pytest.param(replace(DNS, csum="unfinished"), "unfinished", id="udp4-unfinished"),
        pytest.param(replace(DNS, csum=field_of(DNS) ^ 0x8000), "wrong", id="udp4-corrupted"),
        pytest.param(replace(DNS, csum=0), "zero-udp", id="udp4-zero-means-unused"),
        pytest.param(DNS6, "valid", id="udp6-valid"),
        pytest.param(replace(DNS6, csum="unfinished"), "unfinished", id="udp6-unfinished"),
        pytest.param(replace(DNS6, csum=0), "wrong", id="udp6-zero-is-mandatory"),
    ],
)
def test_l4_verdict(tmp_path: Path, seg: Seg, verdict: str) -> None:
    record = only(read_frames(tmp_path, [ethernet(ip_packet(seg))]))
    assert record.l4_verdict == verdict
    correct = field_of(replace(seg, csum="valid"))
    assert record.l4_expected == (None if verdict == "zero-udp" else correct)
    assert record.l4_pseudo == pseudo_header_value(
        seg.src,
        seg.dst,
        17 if seg.is_udp else 6,
        len(ip_packet(seg)) - (40 if ":" in seg.src else 20),
    )
    assert record.looks_unfinished == (verdict == "unfinished")


def test_record_fields(tmp_path: Path) -> None:
    record = only(read_frames(tmp_path, [ethernet(ip_packet(DATA))]))
    assert record == PacketRecord(
        index=1,
        timestamp=1.0,
        link="ethernet",
        vlan_ids=(),
        ip_version=4,
        src=CLIENT,
        dst=SERVER,
        ip_id=1,
        proto="tcp",
        sport=41234,
        dport=80,
        tcp_flags="PA",
        seq=1001,
        ack=5001,
        tsval=None,
        payload_len=18,
        payload_digest=record.payload_digest,
        ip_csum="valid",
        l4_csum=field_of(DATA),
        l4_expected=field_of(DATA),
        l4_pseudo=pseudo_header_value(CLIENT, SERVER, 6, 38),
        l4_verdict="valid",
    )
    assert record.flow == ("tcp", CLIENT, 41234, SERVER, 80)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [("S", "S"), ("SA", "SA"), ("A", "A"), ("PA", "PA"), ("FA", "FA"), ("R", "R"), ("RA", "RA")],
)
def test_tcp_flag_letters(tmp_path: Path, flags: str, expected: str) -> None:
    record = only(read_frames(tmp_path, [ethernet(ip_packet(replace(SYN, flags=flags)))]))
    assert record.tcp_flags == expected


def test_syn_tsval_is_read(tmp_path: Path) -> None:
    assert only(read_frames(tmp_path, [ethernet(ip_packet(SYN))])).tsval == 7


def test_ipv4_header_checksum_wrong(tmp_path: Path) -> None:
    raw = bytearray(ip_packet(SYN))
    raw[10] ^= 0xFF
    record = only(read_frames(tmp_path, [ethernet(bytes(raw))]))
    assert (record.ip_csum, record.l4_verdict) == ("wrong", "valid")


def test_ipv6_has_no_header_checksum(tmp_path: Path) -> None:
    assert only(read_frames(tmp_path, [ethernet(ip_packet(SYN6))])).ip_csum == "n/a"


def test_ethernet_padding_is_not_checksummed(tmp_path: Path) -> None:
    frame = ethernet(ip_packet(replace(SYN, options=b"")))  # 54 bytes
    padded = frame + b"\xaa" * (60 - len(frame))
    record = only(read_frames(tmp_path, [padded]))
    assert (record.l4_verdict, record.payload_len) == ("valid", 0)


# --------------------------------------------------------------------------
# Link layers and file formats


@pytest.mark.parametrize(
    ("vlan_ids",),
    [pytest.param((100,), id="802.1q"), pytest.param((200, 100), id="qinq")],
)
def test_vlan_tags(tmp_path: Path, vlan_ids: tuple[int, ...]) -> None:
    frames = [
        ethernet(ip_packet(SYN), vlan_ids),
        ethernet(ip_packet(replace(SYN6, csum=1)), vlan_ids),
    ]
    capture = read_frames(tmp_path, frames)
    assert [(r.vlan_ids, r.l4_verdict) for r in capture] == [
        (vlan_ids, "valid"),
        (vlan_ids, "wrong"),
    ]


def _mpls(packet: bytes, labels: tuple[int, ...], control_word: bool = False) -> bytes:
    """An Ethernet frame with an MPLS label stack; with `control_word`, `packet` is an
    Ethernet frame carried as a pseudowire (RFC 4385)."""
    stack = b"".join(
        struct.pack("!I", label << 12 | (last == len(labels) - 1) << 8 | 64)
        for last, label in enumerate(labels)
    )
    head = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x88\x47"
    return head + stack + (b"\x00\x00\x00\x00" if control_word else b"") + packet


def _pppoe(packet: bytes) -> bytes:
    protocol = 0x0057 if packet[0] >> 4 == 6 else 0x0021
    session = struct.pack("!BBHHH", 0x11, 0, 0x1234, len(packet) + 2, protocol)
    return ethernet(session + packet, ethertype=0x8864)


def test_mpls_label_stacks_and_pseudowires(tmp_path: Path) -> None:
    frames = [
        _mpls(ip_packet(SYN), (16,)),
        _mpls(ip_packet(replace(SYN6, csum=1)), (16, 24001, 3)),
        _mpls(ethernet(ip_packet(SYN), vlan_ids=(30,)), (299776, 16), control_word=True),
        _mpls(ip_packet(SYN), (16, 17))[: -len(ip_packet(SYN)) - 2],  # cut inside the stack
    ]
    capture = read_frames(tmp_path, frames)
    assert [(r.index, r.ip_version, r.vlan_ids, r.l4_verdict) for r in capture] == [
        (1, 4, (), "valid"),
        (2, 6, (), "wrong"),
        (3, 4, (30,), "valid"),
    ]
    assert capture.skipped == {"truncated-header": 1}


def test_pppoe_sessions(tmp_path: Path) -> None:
    capture = read_frames(tmp_path, [_pppoe(ip_packet(SYN)), _pppoe(ip_packet(DNS6))])
    assert [(r.ip_version, r.proto, r.l4_verdict) for r in capture] == [
        (4, "tcp", "valid"),
        (6, "udp", "valid"),
    ]


def test_linux_cooked_v1(tmp_path: Path) -> None:
    frames = [sll(ip_packet(replace(SYN, csum="unfinished"))), sll(ip_packet(DNS6))]
    capture = read_frames(tmp_path, frames, linktype=dpkt.pcap.DLT_LINUX_SLL)
    assert [(r.link, r.l4_verdict) for r in capture] == [("sll", "unfinished"), ("sll", "valid")]


def test_linux_cooked_v2(tmp_path: Path) -> None:
    frames = [sll2(ip_packet(replace(SYN6, csum="unfinished"))), sll2(ip_packet(DNS))]
    capture = read_frames(tmp_path, frames, linktype=276)
    assert [(r.link, r.l4_verdict) for r in capture] == [("sll2", "unfinished"), ("sll2", "valid")]


def test_raw_ip_link_type(tmp_path: Path) -> None:
    capture = read_frames(tmp_path, [ip_packet(SYN)], linktype=101)
    assert [(r.link, r.l4_verdict) for r in capture] == [("raw", "valid")]


def test_pcapng(tmp_path: Path) -> None:
    frames = [(1.5, ethernet(ip_packet(SYN))), (2.25, ethernet(ip_packet(replace(DNS, csum=0))))]
    capture = read_pcap(write_pcapng(tmp_path / "t.pcapng", frames))
    assert [(r.timestamp, r.l4_verdict) for r in capture] == [(1.5, "valid"), (2.25, "zero-udp")]


def test_unsupported_link_type_is_counted(tmp_path: Path) -> None:
    capture = read_frames(tmp_path, [ip_packet(SYN)], linktype=105)  # 802.11
    assert (len(capture), capture.skipped) == (0, {"unsupported-link-type 105": 1})


# --------------------------------------------------------------------------
# What is skipped, and truncation


def test_non_ip_and_non_tcp_udp_frames_are_counted(tmp_path: Path) -> None:
    icmp = dpkt.ip.IP(
        src=socket.inet_aton(CLIENT),
        dst=socket.inet_aton(SERVER),
        p=dpkt.ip.IP_PROTO_ICMP,
        data=dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1)),
    )
    frames = [arp_frame(), ethernet(bytes(icmp)), ethernet(ip_packet(SYN)), arp_frame()]
    capture = read_frames(tmp_path, frames)
    assert capture.frames == 4
    assert capture.skipped == {"non-ip": 2, "not-tcp-udp": 1}
    assert [r.index for r in capture] == [3]


def test_truncated_by_snaplen(tmp_path: Path) -> None:
    big = replace(DATA, payload=b"x" * 400)
    frames = [ethernet(ip_packet(big)), ethernet(ip_packet(replace(big, csum="unfinished")))]
    capture = read_frames(tmp_path, frames, snaplen=96)
    assert [r.l4_verdict for r in capture] == ["truncated", "truncated"]
    assert [r.payload_len for r in capture] == [400, 400]  # from the IP header
    assert [r.l4_expected for r in capture] == [None, None]
    # The pseudo-header sum needs no payload: an unfinished field still shows.
    assert [r.looks_unfinished for r in capture] == [False, True]


def test_truncated_udp_zero_checksum_is_still_known(tmp_path: Path) -> None:
    big = replace(DNS, payload=b"y" * 300, csum=0)
    record = only(read_frames(tmp_path, [ethernet(ip_packet(big))], snaplen=64))
    assert record.l4_verdict == "zero-udp"


@pytest.mark.parametrize("snaplen", [10, 14, 30, 40, 50])
def test_truncated_inside_headers_is_skipped(tmp_path: Path, snaplen: int) -> None:
    capture = read_frames(tmp_path, [ethernet(ip_packet(SYN))], snaplen=snaplen)
    assert (len(capture), capture.skipped) == (0, {"truncated-header": 1})


def test_truncated_vlan_tag_is_skipped(tmp_path: Path) -> None:
    capture = read_frames(tmp_path, [ethernet(ip_packet(SYN), (5,))], snaplen=16)
    assert capture.skipped == {"truncated-header": 1}


def test_file_cut_mid_record(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "t.pcap", [(1.0, ethernet(ip_packet(SYN)))] * 2)
    path.write_bytes(path.read_bytes()[:-30])
    capture = read_pcap(path)
    # The cut record is read short, like a snaplen cut: 44 bytes end inside TCP.
    assert (len(capture), capture.frames, capture.skipped) == (1, 2, {"truncated-header": 1})


def test_file_cut_inside_record_header(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "t.pcap", [(1.0, ethernet(ip_packet(SYN)))])
    path.write_bytes(path.read_bytes() + b"\x00" * 7)  # half a record header
    capture = read_pcap(path)
    assert (len(capture), capture.skipped) == (1, {"truncated-file": 1})


def test_malformed_ip_header(tmp_path: Path) -> None:
    raw = bytearray(ip_packet(SYN))
    raw[0] = 0x43  # IHL 3: shorter than the fixed header
    capture = read_frames(tmp_path, [ethernet(bytes(raw)), ethernet(b"\x50" + bytes(39))])
    assert capture.skipped == {"malformed": 2}  # and IP version 5


# --------------------------------------------------------------------------
# Fragments and IPv6 extension headers


def _fragment(seg: Seg, more: bool, offset8: int) -> bytes:
    raw = bytearray(ip_packet(seg))
    struct.pack_into("!H", raw, 6, (0x2000 if more else 0) | offset8)
    struct.pack_into("!H", raw, 10, 0)
    struct.pack_into("!H", raw, 10, internet_checksum(bytes(raw[:20])))
    return bytes(raw)


def test_ipv4_fragments(tmp_path: Path) -> None:
    frames = [
        ethernet(_fragment(DATA, more=True, offset8=0)),
        ethernet(_fragment(DATA, more=False, offset8=3)),
    ]
    capture = read_frames(tmp_path, frames)
    assert [(r.l4_verdict, r.ip_csum, r.sport) for r in capture] == [("fragment", "valid", 41234)]
    assert capture.skipped == {"ip-fragment": 1}


def _first_fragment_cut(packet: bytes, l4_bytes: int, header_len: int) -> bytes:
    """A real first fragment: the IP header says how much of the datagram this
    packet carries (`l4_bytes`), the UDP/TCP header still tells the whole length."""
    raw = bytearray(packet[: header_len + l4_bytes])
    if packet[0] >> 4 == 4:
        struct.pack_into("!HH", raw, 2, len(raw), 0)
        struct.pack_into("!H", raw, 6, 0x2000)
        struct.pack_into("!H", raw, 10, 0)
        struct.pack_into("!H", raw, 10, internet_checksum(bytes(raw[:20])))
    else:
        struct.pack_into("!H", raw, 4, len(raw) - 40)
    return bytes(raw)


def test_first_fragment_of_a_long_datagram_is_a_fragment_not_malformed(tmp_path: Path) -> None:
    """`sendto` of 4000 bytes over a 1500-byte MTU: the first fragment's UDP
    length (4008) runs past the packet. Measured: such fragments were counted
    as malformed before."""
    long_v4 = replace(DNS, payload=b"x" * 4000)
    first_v4 = _first_fragment_cut(ip_packet(long_v4), 1480, 20)
    frag_header = (44, b"\x00\x00" + struct.pack("!HI", 1, 0xBEEF))  # offset 0, more
    long_v6 = _ipv6_with_extensions(replace(DNS6, payload=b"x" * 4000), [frag_header])
    first_v6 = _first_fragment_cut(long_v6, 8 + 1448, 40)
    capture = read_frames(tmp_path, [ethernet(first_v4), ethernet(first_v6)])
    assert [(r.ip_version, r.l4_verdict, r.payload_len) for r in capture] == [
        (4, "fragment", 4000),
        (6, "fragment", 4000),
    ]
    assert capture.skipped == {}


def _ipv6_with_extensions(
    seg: Seg, extensions: list[tuple[int, bytes]], final_dst: str | None = None
) -> bytes:
    """Insert extension headers (type, body incl. its next-header byte slot)
    between the IPv6 header and the L4 bytes of `seg`. The L4 checksum was
    computed for `final_dst` when given (RFC 8200 8.1)."""
    l4_source = replace(seg, dst=final_dst) if final_dst else seg
    l4 = ip_packet(l4_source)[40:]
    chain = b""
    types = [t for t, _ in extensions] + [17 if seg.is_udp else 6]
    for index, (_, body) in enumerate(extensions):
        chain += bytes([types[index + 1]]) + body[1:]
    header = bytearray(ip_packet(seg)[:40])
    struct.pack_into("!H", header, 4, len(chain) + len(l4))
    header[6] = types[0]
    return bytes(header) + chain + l4


def test_ipv6_extension_headers_are_skipped(tmp_path: Path) -> None:
    hop_by_hop = (0, b"\x00\x00" + b"\x01\x04\x00\x00\x00\x00")  # PadN to 8 bytes
    dest_opts = (60, b"\x00\x01" + b"\x01\x0c" + bytes(12))  # 16 bytes
    packet = _ipv6_with_extensions(SYN6, [hop_by_hop, dest_opts])
    record = only(read_frames(tmp_path, [ethernet(packet)]))
    assert (record.l4_verdict, record.tcp_flags, record.tsval) == ("valid", "S", 7)
    unfinished = _ipv6_with_extensions(replace(SYN6, csum="unfinished"), [hop_by_hop, dest_opts])
    assert only(read_frames(tmp_path, [ethernet(unfinished)])).l4_verdict == "unfinished"


def test_ipv6_fragment_headers(tmp_path: Path) -> None:
    def fragment_header(offset8: int, more: bool) -> tuple[int, bytes]:
        return (44, b"\x00\x00" + struct.pack("!HI", offset8 << 3 | more, 0xABCD))

    frames = [
        ethernet(_ipv6_with_extensions(DNS6, [fragment_header(0, False)])),  # atomic
        ethernet(_ipv6_with_extensions(DNS6, [fragment_header(0, True)])),  # first of several
        ethernet(_ipv6_with_extensions(DNS6, [fragment_header(5, False)])),  # a later one
    ]
    capture = read_frames(tmp_path, frames)
    assert [(r.l4_verdict, r.ip_id) for r in capture] == [("valid", 0xABCD), ("fragment", 0xABCD)]
    assert capture.skipped == {"ip-fragment": 1}


def test_ipv6_routing_header_uses_final_destination(tmp_path: Path) -> None:
    final = "fd00::99"
    routing = (43, b"\x00\x02\x00\x01" + bytes(4) + socket.inet_pton(socket.AF_INET6, final))
    packet = _ipv6_with_extensions(SYN6, [routing], final_dst=final)
    record = only(read_frames(tmp_path, [ethernet(packet)]))
    assert (record.dst, record.l4_verdict) == (SERVER6, "valid")


def test_ipv6_esp_is_not_tcp_udp(tmp_path: Path) -> None:
    header = bytearray(ip_packet(SYN6)[:40])
    header[6] = 50
    capture = read_frames(tmp_path, [ethernet(bytes(header) + bytes(40))])
    assert capture.skipped == {"not-tcp-udp": 1}


def test_capture_behaves_as_a_sequence(tmp_path: Path) -> None:
    capture = read_frames(tmp_path, [ethernet(ip_packet(SYN)), ethernet(ip_packet(DATA))])
    assert len(capture) == 2
    assert [r.tcp_flags for r in capture] == ["S", "PA"]
    assert capture[-1].tcp_flags == "PA"
    assert [r.index for r in capture[0:1]] == [1]
