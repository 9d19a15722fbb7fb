"""Capture files as users bring them: pcapng with several interfaces, sections,
time resolutions and block kinds, classic pcap in either byte order and with
nanoseconds, and the link types laptops write. Files are built byte by byte in
pcap_builders, not with the reader under test."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from labctl.analysis.checksums import CaptureInterface, capture_interfaces, read_pcap
from labctl.analysis.diagnose import capture_points
from labctl.errors import UsageError

from .pcap_builders import (
    CLIENT,
    CLIENT6,
    SERVER,
    SERVER6,
    Epb,
    Idb,
    ObsoletePb,
    OtherBlock,
    Section,
    Seg,
    Spb,
    arp_frame,
    classic_pcap_bytes,
    ethernet,
    ip_packet,
    null_loopback,
    sll,
    sll2,
    syn_options,
    write_sections,
)

pytestmark = pytest.mark.unit

SYN = Seg(CLIENT, SERVER, 41234, 80, "S", seq=1000, options=syn_options(7), csum="unfinished")
SYNACK = Seg(SERVER, CLIENT, 80, 41234, "SA", seq=5000, ack=1001, options=syn_options(9, 7))
ACK = Seg(CLIENT, SERVER, 41234, 80, "A", seq=1001, ack=5001)
DNS6 = Seg(CLIENT6, SERVER6, 5353, 53, "udp", payload=b"\x12\x34query")


def two_link_types(path: Path) -> Path:
    """dumpcap -i eth0 -i any: each packet once on eth0 (Ethernet), once on any (SLL)."""
    blocks = []
    for n, seg in enumerate((SYN, SYNACK, ACK)):
        blocks.append(Epb(0, 1_000_000 + n * 10, ethernet(ip_packet(seg))))
        blocks.append(Epb(1, 1_000_000 + n * 10 + 5, sll(ip_packet(seg))))
    blocks.append(Epb(0, 2_000_000, arp_frame()))
    interfaces = [Idb(1, "eth0"), Idb(113, "any")]
    return write_sections(path, Section(interfaces, blocks))


# --------------------------------------------------------------------------
# pcapng


def test_every_interface_keeps_its_link_type(tmp_path: Path) -> None:
    capture = read_pcap(two_link_types(tmp_path / "x.pcapng"))
    # dpkt's reader took Ethernet for all 7: the three SLL frames became non-ip.
    assert (capture.frames, len(capture), capture.skipped) == (7, 6, {"non-ip": 1})
    assert [(r.link, r.tcp_flags) for r in capture] == [
        ("ethernet", "S"),
        ("sll", "S"),
        ("ethernet", "SA"),
        ("sll", "SA"),
        ("ethernet", "A"),
        ("sll", "A"),
    ]
    assert [r.l4_verdict for r in capture][:2] == ["unfinished", "unfinished"]
    assert capture.link_type == 1


def test_one_interface_read_alone_keeps_file_frame_numbers(tmp_path: Path) -> None:
    path = two_link_types(tmp_path / "x.pcapng")
    any_ = read_pcap(path, interface=1)
    assert (any_.link_type, any_.frames, any_.skipped) == (113, 3, {})
    assert [r.index for r in any_] == [2, 4, 6]  # Wireshark's frame numbers
    assert [r.timestamp for r in any_] == [1.000005, 1.000015, 1.000025]
    eth0 = read_pcap(path, interface=0)
    assert (eth0.frames, len(eth0), eth0.skipped) == (4, 3, {"non-ip": 1})
    with pytest.raises(ValueError, match="no interface 2"):
        read_pcap(path, interface=2)
    assert capture_interfaces(path) == (
        CaptureInterface(0, "eth0", 1, 4),
        CaptureInterface(1, "any", 113, 3),
    )


def test_sections_restart_interface_numbering(tmp_path: Path) -> None:
    """`cat a.pcapng b.pcapng`: the second section's interface 0 is the file's third."""
    first = Section(
        [Idb(1, "eth0"), Idb(113, "any")],
        [Epb(0, 1_000_000, ethernet(ip_packet(SYN))), Epb(1, 1_000_001, sll(ip_packet(SYN)))],
    )
    second = Section(
        [Idb(101, "tun0", tsresol=9)],
        [Epb(0, 3_000_000_000, ip_packet(SYNACK)), OtherBlock(5)],  # then interface stats
    )
    path = write_sections(tmp_path / "cat.pcapng", first, second)
    capture = read_pcap(path)
    assert [(r.index, r.link, r.timestamp) for r in capture] == [
        (1, "ethernet", 1.0),
        (2, "sll", 1.000001),
        (3, "raw", 3.0),
    ]
    assert [(i.number, i.name, i.frames) for i in capture_interfaces(path)] == [
        (0, "eth0", 1),
        (1, "any", 1),
        (2, "tun0", 1),
    ]
    assert [r.tcp_flags for r in read_pcap(path, interface=2)] == ["SA"]


def test_big_endian_section_after_a_little_endian_one(tmp_path: Path) -> None:
    little = Section([Idb(1, "eth0")], [Epb(0, 1_000_000, ethernet(ip_packet(SYN)))])
    big = Section(
        [Idb(1, "eth0", tsresol=3, tsoffset=1_700_000_000)],
        [
            Epb(0, 2_500, ethernet(ip_packet(SYNACK))),
            ObsoletePb(0, 2_600, ethernet(ip_packet(ACK))),
        ],
        big_endian=True,
    )
    capture = read_pcap(write_sections(tmp_path / "be.pcapng", little, big))
    assert capture.skipped == {}
    assert [(r.tcp_flags, r.timestamp) for r in capture] == [
        ("S", 1.0),
        ("SA", 1_700_000_002.5),
        ("A", 1_700_000_002.6),
    ]
    assert [r.l4_verdict for r in capture] == ["unfinished", "valid", "valid"]


def test_time_resolution_power_of_two_and_offset(tmp_path: Path) -> None:
    # 0x8a: 2^-10 s ticks; 1536 ticks = 1.5 s, plus a 100 s offset.
    interfaces = [Idb(1, "eth0", tsresol=0x8A, tsoffset=100), Idb(1, "eth1", tsresol=9)]
    blocks = [
        Epb(0, 1536, ethernet(ip_packet(SYN))),
        Epb(1, 1_250_000_000, ethernet(ip_packet(SYNACK))),
    ]
    capture = read_pcap(write_sections(tmp_path / "t.pcapng", Section(interfaces, blocks)))
    assert [r.timestamp for r in capture] == [101.5, 1.25]


def test_simple_packet_blocks(tmp_path: Path) -> None:
    """SPB: interface 0, cut to its snaplen, no time (takes the packet's before it)."""
    big = replace(ACK, flags="PA", payload=b"x" * 400)
    blocks = [
        Epb(0, 4_000_000, ethernet(ip_packet(SYN))),
        Spb(ethernet(ip_packet(SYNACK))),
        Spb(ethernet(ip_packet(big))),
    ]
    capture = read_pcap(write_sections(tmp_path / "s.pcapng", Section([Idb(snaplen=200)], blocks)))
    assert [(r.tcp_flags, r.timestamp, r.l4_verdict) for r in capture] == [
        ("S", 4.0, "unfinished"),
        ("SA", 4.0, "valid"),
        ("PA", 4.0, "truncated"),  # 200 of 454 bytes captured
    ]
    assert capture[2].payload_len == 400


def test_a_packet_of_an_undeclared_interface_is_malformed(tmp_path: Path) -> None:
    blocks = [Epb(3, 0, ethernet(ip_packet(SYN))), Epb(0, 0, ethernet(ip_packet(SYN)))]
    capture = read_pcap(write_sections(tmp_path / "u.pcapng", Section([Idb()], blocks)))
    assert (capture.frames, len(capture), capture.skipped) == (2, 1, {"malformed": 1})


ARP_EPB = 12 + 20 + 44  # the last block of two_link_types: 42-byte ARP padded to 44


@pytest.mark.parametrize("cut", [1, 4, 30, ARP_EPB - 3, ARP_EPB - 8])
def test_cut_off_pcapng_keeps_what_came_before(tmp_path: Path, cut: int) -> None:
    """Cut inside the last block: its trailing length, its data, its header."""
    path = two_link_types(tmp_path / "cut.pcapng")
    path.write_bytes(path.read_bytes()[:-cut])
    capture = read_pcap(path)
    assert (capture.frames, len(capture), capture.skipped) == (6, 6, {"truncated-file": 1})
    path = two_link_types(tmp_path / "whole-blocks.pcapng")
    path.write_bytes(path.read_bytes()[:-ARP_EPB])
    assert read_pcap(path).skipped == {}


def test_not_a_capture_is_an_error(tmp_path: Path) -> None:
    for content in (b"", b"\x0a\x0d\x0d\x0a", b"\x0a\x0d\x0d\x0a" + b"\x00" * 20, b"hello world!"):
        path = tmp_path / "bad.pcapng"
        path.write_bytes(content)
        with pytest.raises(ValueError, match="not a pcap or pcapng file"):
            read_pcap(path)


# --------------------------------------------------------------------------
# Classic pcap


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_pcap_byte_orders_and_nanoseconds(
    tmp_path: Path, big_endian: bool, nano: bool
) -> None:
    fraction = 250_000_000 if nano else 250_000
    frames = [(7, fraction, ethernet(ip_packet(SYN))), (8, 0, ethernet(ip_packet(SYNACK)))]
    path = tmp_path / "c.pcap"
    path.write_bytes(classic_pcap_bytes(frames, big_endian=big_endian, nano=nano))
    capture = read_pcap(path)
    assert [(r.timestamp, r.tcp_flags, r.l4_verdict) for r in capture] == [
        (7.25, "S", "unfinished"),
        (8.0, "SA", "valid"),
    ]
    assert capture_interfaces(path) == (CaptureInterface(0, "", 1, 2),)


def test_gzip_compressed_captures_are_read_and_named_without_their_extensions(
    tmp_path: Path,
) -> None:
    """`tcpdump -w - | gzip > server.pcap.gz`, and a pcapng gzip'ed by Wireshark."""
    frames = [(7, 0, ethernet(ip_packet(SYN))), (8, 0, ethernet(ip_packet(SYNACK)))]
    classic = tmp_path / "server.pcap.gz"
    classic.write_bytes(gzip.compress(classic_pcap_bytes(frames)))
    assert [r.tcp_flags for r in read_pcap(classic)] == ["S", "SA"]
    assert capture_points(classic) == [("server", None)]
    pcapng = two_link_types(tmp_path / "plain.pcapng")
    packed = tmp_path / "srv.pcapng.gz"
    packed.write_bytes(gzip.compress(pcapng.read_bytes()))
    assert [name for name, _ in capture_points(packed)] == ["srv:eth0", "srv:any"]
    assert len(read_pcap(packed, interface=1)) == 3


def test_gzip_stream_cut_short_reads_up_to_the_cut(tmp_path: Path) -> None:
    frames = [(n, 0, ethernet(ip_packet(SYN))) for n in range(200)]
    whole = gzip.compress(classic_pcap_bytes(frames))
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    capture = read_pcap(cut)
    assert 0 < len(capture) < 200


def test_tcpdump_any_makes_one_tap_per_kernel_interface(tmp_path: Path) -> None:
    """`tcpdump -i any` on a host that bridges two veths: each packet shows on both
    (SLL2 names the ifindex); they are two capture points, in the order they first show,
    not one packet sent twice."""
    frames = []
    for n, seg in enumerate((SYN, SYNACK, ACK)):
        first, second = (7, 5) if seg.src == CLIENT else (5, 7)
        frames.append((1000 + n, 0, sll2(ip_packet(seg), first)))
        frames.append((1000 + n, 5, sll2(ip_packet(seg), second)))
    path = tmp_path / "host.pcap"
    path.write_bytes(classic_pcap_bytes(frames, linktype=276))
    assert capture_points(path) == [("host:ifindex7", 7), ("host:ifindex5", 5)]
    assert [r.tcp_flags for r in read_pcap(path, interface=5)] == ["S", "SA", "A"]
    assert len(read_pcap(path)) == 6
    done = labctl("analyze", str(path), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [t["name"] for t in data["taps"]] == ["host:ifindex7", "host:ifindex5"]
    events = data["flows"][0]["events"]
    assert len(events) == 3, events  # each packet once, seen at both taps
    assert all(set(e["at"]) == {"host:ifindex7", "host:ifindex5"} for e in events)
    one = tmp_path / "one.pcap"
    alone = [(n, 0, sll2(ip_packet(seg), 4)) for n, seg in enumerate((SYN, SYNACK))]
    one.write_bytes(classic_pcap_bytes(alone, linktype=276))
    assert capture_points(one) == [("one", None)]


# --------------------------------------------------------------------------
# Link types


@pytest.mark.parametrize(
    ("link_type", "frame", "name"),
    [
        (0, null_loopback(ip_packet(SYN), 2, "<"), "null"),  # little-endian host
        (0, null_loopback(ip_packet(DNS6), 30, "<"), "null"),  # macOS AF_INET6
        (0, null_loopback(ip_packet(DNS6), 24, ">"), "null"),  # big-endian NetBSD
        (0, null_loopback(ip_packet(SYN), 2, ">"), "null"),
        (108, null_loopback(ip_packet(DNS6), 28, ">"), "loop"),  # FreeBSD number
        (108, null_loopback(ip_packet(SYN), 2, ">"), "loop"),
        (0, null_loopback(ip_packet(DNS6), 10, "<"), "null"),  # Linux AF_INET6
        (228, ip_packet(SYN), "ipv4"),
        (229, ip_packet(DNS6), "ipv6"),
        (12, ip_packet(SYN), "raw"),
        (14, ip_packet(DNS6), "raw"),
    ],
)
def test_link_types_laptops_write(tmp_path: Path, link_type: int, frame: bytes, name: str) -> None:
    path = write_sections(
        tmp_path / "l.pcapng", Section([Idb(link_type, "lo0")], [Epb(0, 0, frame)])
    )
    capture = read_pcap(path)
    assert capture.skipped == {}
    assert [r.link for r in capture] == [name]
    assert capture[0].l4_verdict in ("valid", "unfinished")
    pcap = tmp_path / "l.pcap"
    pcap.write_bytes(classic_pcap_bytes([(1, 0, frame)], linktype=link_type))
    assert [r.link for r in read_pcap(pcap)] == [name]


def test_loopback_family_other_than_ip_and_short_header(tmp_path: Path) -> None:
    blocks = [
        Epb(0, 0, null_loopback(b"\x00" * 20, 7, "<")),  # AF 7: no IP
        Epb(0, 0, b"\x02\x00"),
        Epb(1, 0, null_loopback(ip_packet(SYN), 2, "<")),  # LOOP is big-endian: AF 2<<24
    ]
    path = write_sections(tmp_path / "n.pcapng", Section([Idb(0), Idb(108)], blocks))
    capture = read_pcap(path)
    assert capture.skipped == {"non-ip": 2, "truncated-header": 1}


def test_unsupported_link_types_are_named(tmp_path: Path) -> None:
    interfaces = [Idb(105, "wlan0"), Idb(1, "eth0"), Idb(127, "mon0")]
    blocks = [Epb(0, 0, b"\x00" * 40), Epb(1, 0, ethernet(ip_packet(SYN))), Epb(2, 0, b"\x00")]
    capture = read_pcap(write_sections(tmp_path / "w.pcapng", Section(interfaces, blocks)))
    assert (len(capture), capture.skipped) == (
        1,
        {"unsupported-link-type 105": 1, "unsupported-link-type 127": 1},
    )


# --------------------------------------------------------------------------
# Taps: one per interface that has packets


def test_capture_points_name_each_interface(tmp_path: Path) -> None:
    assert capture_points(two_link_types(tmp_path / "srv.pcapng")) == [
        ("srv:eth0", 0),
        ("srv:any", 1),
    ]
    # No name, or one shared with another interface: the number in the file.
    sections = (
        Section([Idb(1, "eth0"), Idb(1)], [Epb(0, 0, arp_frame()), Epb(1, 0, arp_frame())]),
        Section([Idb(1, "eth0")], [Epb(0, 0, arp_frame())]),
    )
    assert capture_points(write_sections(tmp_path / "c.pcapng", *sections)) == [
        ("c:if0", 0),
        ("c:if1", 1),
        ("c:if2", 2),
    ]


def test_one_interface_with_packets_keeps_the_file_stem(tmp_path: Path) -> None:
    section = Section([Idb(1, "eth0"), Idb(113, "any")], [Epb(1, 0, sll(ip_packet(SYN)))])
    assert capture_points(write_sections(tmp_path / "one.pcapng", section)) == [("one", None)]
    pcap = tmp_path / "old.pcap"
    pcap.write_bytes(classic_pcap_bytes([(1, 0, ethernet(ip_packet(SYN)))]))
    assert capture_points(pcap) == [("old", None)]
    (tmp_path / "bad.pcap").write_bytes(b"nope")
    with pytest.raises(UsageError, match="cannot read capture .*bad.pcap: not a pcap"):
        capture_points(tmp_path / "bad.pcap")


def labctl(*argv: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("labctl")
    return subprocess.run([str(command), *argv], capture_output=True, text=True, timeout=60)


def test_analyze_makes_one_tap_per_interface(tmp_path: Path) -> None:
    path = two_link_types(tmp_path / "srv.pcapng")
    done = labctl("analyze", str(path), "--json")
    assert done.returncode == 0, done.stderr
    taps = json.loads(done.stdout)["taps"]
    assert [(t["name"], t["frames"], t["packets"]) for t in taps] == [
        ("srv:eth0", 4, 3),
        ("srv:any", 3, 3),
    ]
    done = labctl("analyze", str(path), "--order", "srv:any,srv:eth0", "--json")
    assert [t["name"] for t in json.loads(done.stdout)["taps"]] == ["srv:any", "srv:eth0"]
    # The SYN is unfinished at both; --sender says it is still in its sender's kernel.
    done = labctl("analyze", str(path), "--sender", f"srv:eth0={CLIENT}", "--json")
    statuses = json.loads(done.stdout)["flows"][0]["events"][0]["at"]
    assert statuses == {"srv:eth0": "offload", "srv:any": "accepted"}
    done = labctl("analyze", str(path), "--off-path", "srv:any")
    assert done.returncode == 0, done.stderr
    assert "srv:any: 3 frames, 3 TCP/UDP" in done.stdout


def test_analyze_names_the_taps_a_pcapng_makes_when_a_name_is_wrong(tmp_path: Path) -> None:
    path = two_link_types(tmp_path / "srv.pcapng")
    expected = {
        ("--order", "srv"): "labctl: --order must name each tap exactly once "
        "(taps: srv:eth0, srv:any; mismatch: srv, srv:any, srv:eth0)",
        ("--sender", "srv=10.0.0.1"): "labctl: --sender 'srv=10.0.0.1': expected "
        "TAP=ADDR[,ADDR] with TAP one of srv:eth0, srv:any",
        ("--off-path", "srv"): "labctl: --off-path names no tap: srv (taps: srv:eth0, srv:any)",
    }
    for argv, message in expected.items():
        done = labctl("analyze", str(path), *argv)
        assert (done.returncode, done.stderr.strip()) == (2, message)
    twice = labctl("analyze", str(path), "--order", "srv:any,srv:eth0,srv:any")
    assert twice.stderr.strip().endswith("mismatch: srv:any twice)")


def test_an_interface_with_other_traffic_is_no_hop_of_the_path(tmp_path: Path) -> None:
    """dumpcap -i veth1 -i veth2 -i lo: the exchange crosses veth1 and veth2, lo carries
    something else. In file order (a guess) lo is not on the exchange's path; named in
    --order it is, and the exchange never reached it."""
    other = Seg("127.0.0.1", "127.0.0.1", 48076, 1, "S", seq=7, options=syn_options(3))
    blocks = []
    for n, seg in enumerate((SYN, SYNACK, ACK)):
        first, second = (0, 1) if seg.src == CLIENT else (1, 0)
        blocks.append(Epb(first, 1_000_000 + n * 10, ethernet(ip_packet(seg))))
        blocks.append(Epb(second, 1_000_000 + n * 10 + 5, ethernet(ip_packet(seg))))
    blocks.append(Epb(2, 1_000_100, ethernet(ip_packet(other))))
    interfaces = [Idb(1, "veth1"), Idb(1, "veth2"), Idb(1, "lo")]
    path = write_sections(tmp_path / "host.pcapng", Section(interfaces, blocks))
    guessed = labctl("analyze", str(path), "--json")
    kinds = {f["kind"] for f in json.loads(guessed.stdout)["findings"]}
    assert "lost-between-taps" not in kinds, guessed.stdout
    given = labctl("analyze", str(path), "--order", "host:veth1,host:veth2,host:lo", "--json")
    kinds = {f["kind"] for f in json.loads(given.stdout)["findings"]}
    assert "lost-between-taps" in kinds, given.stdout
