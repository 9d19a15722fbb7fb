"""Tunnels: a capture on the underlay (VXLAN, Geneve, GRE, ERSPAN, IP in IP) is judged
by the packets inside, which are what the endpoints' TCP checks, and those packets
are matched with the same packets captured on the overlay."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest

from labctl.analysis.checksums import read_pcap
from labctl.analysis.diagnose import diagnose
from labctl.analysis.diagnosis import Tap
from labctl.analysis.diagnosis_text import render_text

from .pcap_builders import ethernet, ip_packet, write_pcap
from .scenarios import START, http_exchange, syn, write_scenario

pytestmark = pytest.mark.unit

UNDERLAY_A, UNDERLAY_B = "192.168.7.1", "192.168.7.2"
UNDERLAY6_A, UNDERLAY6_B = "fd07::1", "fd07::2"


def _outer_ip(src: str, dst: str, proto: int, payload: bytes | dpkt.Packet) -> bytes:
    """dpkt computes the checksum of a UDP datagram given as a dpkt.udp.UDP."""
    ends = {
        "src": ipaddress.ip_address(src).packed,
        "dst": ipaddress.ip_address(dst).packed,
        "data": payload,
    }
    if ":" in src:
        return bytes(dpkt.ip6.IP6(nxt=proto, hlim=64, plen=len(bytes(payload)), **ends))
    return bytes(dpkt.ip.IP(p=proto, ttl=64, **ends))


def _outer_udp(inner: bytes, dport: int, zero_checksum: bool = False, v6: bool = False) -> bytes:
    src, dst = (UNDERLAY6_A, UNDERLAY6_B) if v6 else (UNDERLAY_A, UNDERLAY_B)
    datagram = dpkt.udp.UDP(sport=51000, dport=dport, data=inner)
    datagram.ulen = len(datagram)
    packet = bytearray(_outer_ip(src, dst, dpkt.ip.IP_PROTO_UDP, datagram))
    if zero_checksum:
        struct.pack_into("!H", packet, (40 if v6 else 20) + 6, 0)
    return ethernet(bytes(packet))


def vxlan(frame: bytes, dport: int = 4789, **outer: bool) -> bytes:
    return _outer_udp(struct.pack("!II", 0x08000000, 100 << 8) + frame, dport, **outer)


def vxlan_gpe(packet: bytes) -> bytes:
    next_protocol = 2 if packet[0] >> 4 == 6 else 1
    return _outer_udp(struct.pack("!BxxBI", 0x0C, next_protocol, 7 << 8) + packet, 4790)


def geneve(frame: bytes) -> bytes:
    option = struct.pack("!HBB", 0x0102, 0x80, 1) + b"\xaa\xbb\xcc\xdd"  # 8 bytes of options
    header = struct.pack("!BBHI", 2, 0, 0x6558, 5000 << 8)
    return _outer_udp(header + option + frame, 6081)


def gre(payload: bytes, ethertype: int, key: int | None = None, checksum: bool = False) -> bytes:
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0)
    header = struct.pack("!HH", flags, ethertype)
    if checksum:
        header += b"\x00\x00\x00\x00"
    if key is not None:
        header += struct.pack("!I", key)
    return ethernet(_outer_ip(UNDERLAY_A, UNDERLAY_B, 47, header + payload))


def erspan2(frame: bytes) -> bytes:
    # GRE with a sequence number, then the 8-byte ERSPAN type II header (session 42).
    header = struct.pack("!HHI", 0x1000, 0x88BE, 1) + struct.pack("!HHI", 0x1000, 42, 0)
    return ethernet(_outer_ip(UNDERLAY_A, UNDERLAY_B, 47, header + frame))


def erspan3(frame: bytes) -> bytes:
    # ERSPAN type III (session 43) with the optional 8-byte platform subheader (O bit).
    erspan = struct.pack("!HHIHH", 0x2000, 43, 0, 0, 0x0001) + b"\x00" * 8
    header = struct.pack("!HHI", 0x1000, 0x22EB, 1) + erspan
    return ethernet(_outer_ip(UNDERLAY_A, UNDERLAY_B, 47, header + frame))


def ipip(packet: bytes) -> bytes:
    proto = 41 if packet[0] >> 4 == 6 else 4
    return ethernet(_outer_ip(UNDERLAY6_A, UNDERLAY6_B, proto, packet))


Wrap = Callable[[bytes], bytes]  # an inner IP packet -> an outer Ethernet frame

ENCAPSULATIONS: dict[str, tuple[Wrap, str]] = {
    "vxlan": (lambda p: vxlan(ethernet(p)), "vxlan vni 100"),
    "vxlan on linux's port": (lambda p: vxlan(ethernet(p), dport=8472), "vxlan vni 100"),
    "vxlan with a vlan inside": (lambda p: vxlan(ethernet(p, vlan_ids=[10])), "vxlan vni 100"),
    "vxlan over ipv6, zero checksum": (
        lambda p: vxlan(ethernet(p), zero_checksum=True, v6=True),
        "vxlan vni 100",
    ),
    "vxlan-gpe": (vxlan_gpe, "vxlan-gpe vni 7"),
    "geneve with options": (lambda p: geneve(ethernet(p)), "geneve vni 5000"),
    "gre": (lambda p: gre(p, 0x0800), "gre"),
    "gretap with key and checksum": (
        lambda p: gre(ethernet(p), 0x6558, key=77, checksum=True),
        "gre key 77",
    ),
    "erspan type ii": (lambda p: erspan2(ethernet(p)), "erspan session 42"),
    "erspan type iii": (lambda p: erspan3(ethernet(p)), "erspan session 43"),
    "ipip over ipv6": (ipip, "ipip"),
}


@pytest.mark.parametrize("name", list(ENCAPSULATIONS))
def test_the_packet_inside_a_tunnel_is_judged(tmp_path: Path, name: str) -> None:
    wrap, tunnel = ENCAPSULATIONS[name]
    good = ip_packet(syn(0x1001, 100))
    bad = ip_packet(replace(syn(0x1002, 200), csum=0x1234))
    unfinished = ip_packet(replace(syn(0x1003, 300), csum="unfinished"))
    path = write_pcap(
        tmp_path / "underlay.pcap",
        [(START, wrap(good)), (START + 1, wrap(bad)), (START + 2, wrap(unfinished))],
    )
    records = read_pcap(path).records
    inner = [r for r in records if r.depth == 1]
    assert [(r.index, r.tcp_flags, r.l4_verdict) for r in inner] == [
        (1, "S", "valid"),
        (2, "S", "wrong"),
        (3, "S", "unfinished"),
    ]
    assert {(r.src, r.sport, r.dst, r.dport, r.tunnel) for r in inner} == {
        ("10.0.0.1", 41234, "10.0.0.2", 80, tunnel)
    }
    carriers = [r for r in records if r.depth == 0]
    # A UDP tunnel's own datagram is judged too (a zero over IPv6 is allowed for tunnels);
    # GRE and IP in IP have no TCP/UDP outside.
    outer_verdict = "zero-udp" if "zero checksum" in name else "valid"
    assert all(r.carries == tunnel and r.l4_verdict == outer_verdict for r in carriers)
    assert len(carriers) == (3 if name.startswith(("vxlan", "geneve")) else 0)


def test_a_wrong_checksum_inside_vxlan_is_a_fault_that_names_the_tunnel(tmp_path: Path) -> None:
    bad = ip_packet(replace(syn(0x1001, 100), csum=0x1234))
    frames = [(START + n, vxlan(ethernet(bad))) for n in range(3)]  # resent, never answered
    path = write_pcap(tmp_path / "underlay.pcap", frames)
    diagnosis = diagnose([Tap("underlay", path, frozenset())])
    assert not diagnosis.ok
    fault = next(f for f in diagnosis.findings if f.kind == "bad-checksum")
    assert fault.severity == "fault" and fault.flow == "TCP 10.0.0.1:41234 -> 10.0.0.2:80"
    assert fault.packets[0].endswith(f"(in vxlan vni 100, {UNDERLAY_A} -> {UNDERLAY_B})")
    labels = {flow.label for flow in diagnosis.flows}
    assert "TCP 10.0.0.1:41234 <-> 10.0.0.2:80 in vxlan vni 100" in labels
    assert f"UDP {UNDERLAY_A}:51000 <-> {UNDERLAY_B}:4789 (carries vxlan vni 100)" in labels
    assert "in vxlan vni 100" in render_text(diagnosis)


def test_overlay_and_underlay_taps_see_the_same_packets_and_no_loss(tmp_path: Path) -> None:
    """client's veth, the VXLAN underlay at both tunnel ends, server's veth: the inner
    packets match across all four; the tunnel's own datagrams exist only on the
    underlay, and not reaching the server's veth is no loss."""
    names = ["client", "underlay-a", "underlay-b", "server"]
    taps = write_scenario(
        tmp_path,
        [(name, frozenset()) for name in names],
        http_exchange(dict.fromkeys(names, "valid"), dict.fromkeys(names[::-1], "valid")),
    )
    for underlay in taps[1:3]:
        write_pcap(underlay.pcap, [(ts, vxlan(frame)) for ts, frame in _frames(underlay.pcap)])
    diagnosis = diagnose(taps)
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    tcp = next(flow for flow in diagnosis.flows if flow.proto == "tcp")
    assert all(event.cells == ("ok",) * 4 for event in tcp.events)
    assert tcp.tunnels == ("vxlan vni 100",)
    carriers = [flow for flow in diagnosis.flows if flow.carries]
    assert carriers and all(e.cells == (".", "ok", "ok", ".") for f in carriers for e in f.events)


def test_an_unfinished_checksum_inside_the_tunnel_that_tcp_answered_is_accepted(
    tmp_path: Path,
) -> None:
    """What the underlay of a Linux VXLAN with offload on shows: the inner checksums are
    left for the far end to skip (CHECKSUM_PARTIAL all the way), and TCP answered them."""
    taps = write_scenario(
        tmp_path,
        [("underlay", frozenset())],
        http_exchange({"underlay": "unfinished"}, {"underlay": "unfinished"}),
    )
    # The outer checksum as Linux leaves it there: computed as if the inner one were
    # finished (local checksum offload), so wrong for the bytes as captured.
    frames = [(ts, _spoil_outer_checksum(vxlan(frame))) for ts, frame in _frames(taps[0].pcap)]
    write_pcap(taps[0].pcap, frames)
    diagnosis = diagnose([replace(taps[0], positioned=False)])  # a capture from anywhere
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    # Every TCP segment inside was answered; so was the datagram that carried it.
    assert diagnosis.taps[0].verdicts["accepted"] == 2 * len(frames)
    carrier_flows = [flow for flow in diagnosis.flows if flow.carries]
    assert carrier_flows and all(
        event.cells == ("accepted",) for flow in carrier_flows for event in flow.events
    )


def _spoil_outer_checksum(frame: bytes) -> bytes:
    spoiled = bytearray(frame)
    struct.pack_into("!H", spoiled, 14 + 20 + 6, 0x1111)
    return bytes(spoiled)


def test_udp_to_a_tunnel_port_that_is_no_tunnel_stays_plain_udp(tmp_path: Path) -> None:
    # No VXLAN "I" flag: a datagram that only happens to use port 4789.
    plain = _outer_udp(b"\x00" * 8 + b"not a tunnel", 4789)
    records = read_pcap(write_pcap(tmp_path / "u.pcap", [(START, plain)])).records
    assert [(r.proto, r.depth, r.carries) for r in records] == [("udp", 0, "")]


def test_an_inner_packet_cut_by_the_snaplen_cannot_be_checked(tmp_path: Path) -> None:
    request = ip_packet(replace(syn(0x1001, 100), payload=b"x" * 400))
    path = write_pcap(tmp_path / "cut.pcap", [(START, vxlan(ethernet(request)))], snaplen=200)
    records = read_pcap(path).records
    assert [(r.depth, r.l4_verdict) for r in records] == [(0, "truncated"), (1, "truncated")]


def _frames(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as stream:
        return [(float(ts), bytes(frame)) for ts, frame in dpkt.pcap.Reader(stream)]
