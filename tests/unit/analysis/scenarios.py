"""Multi-tap scenarios written as pcaps, one file per tap.

A scenario is a list of `Sent` packets; each says at which taps the packet
shows and with which checksum there, in the order it passes them. Each hop
adds 100 microseconds, so timestamps agree with the direction of travel as
they do for taps captured on one host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from labctl.analysis.diagnosis import Tap

from .pcap_builders import (
    CLIENT,
    SERVER,
    Checksum,
    Seg,
    ethernet,
    ip_packet,
    syn_options,
    write_pcap,
)

HOP = 0.0001
START = 1700000000.0


@dataclass(frozen=True)
class Sent:
    time: float  # seconds after START at the first tap it passes
    seg: Seg
    at: Mapping[str, Checksum]  # tap name -> checksum there, in travel order


def write_scenario(
    tmp_path: Path,
    taps: Sequence[tuple[str, frozenset[str]]],
    sent: Sequence[Sent],
    snaplen: int = 65535,
) -> list[Tap]:
    frames: dict[str, list[tuple[float, bytes]]] = {name: [] for name, _ in taps}
    for packet in sent:
        for hop, (tap_name, csum) in enumerate(packet.at.items()):
            frame = ethernet(ip_packet(replace(packet.seg, csum=csum)))
            frames[tap_name].append((START + packet.time + hop * HOP, frame))
    result = []
    for name, senders in taps:
        ordered = sorted(frames[name], key=lambda item: item[0])
        path = write_pcap(tmp_path / f"{name}.pcap", ordered, snaplen=snaplen)
        result.append(Tap(name, path, senders))
    return result


# Segments of one HTTP exchange, client 10.0.0.1:41234, server 10.0.0.2:80.
C_ISN, S_ISN = 1000, 5000


def syn(ip_id: int, tsval: int) -> Seg:
    return Seg(CLIENT, SERVER, 41234, 80, "S", seq=C_ISN, ip_id=ip_id, options=syn_options(tsval))


def synack(ip_id: int = 0, tsval: int = 900) -> Seg:
    return Seg(
        SERVER,
        CLIENT,
        80,
        41234,
        "SA",
        seq=S_ISN,
        ack=C_ISN + 1,
        ip_id=ip_id,
        options=syn_options(tsval, 100),
    )


def client_seg(flags: str, seq: int, ack: int, ip_id: int, payload: bytes = b"") -> Seg:
    return Seg(CLIENT, SERVER, 41234, 80, flags, seq=seq, ack=ack, ip_id=ip_id, payload=payload)


def server_seg(flags: str, seq: int, ack: int, ip_id: int, payload: bytes = b"") -> Seg:
    return Seg(SERVER, CLIENT, 80, 41234, flags, seq=seq, ack=ack, ip_id=ip_id, payload=payload)


REQUEST = b"GET / HTTP/1.0\r\n\r\n"
RESPONSE = b"HTTP/1.0 200 OK\r\n\r\nhello\n"


def http_exchange(forward: Mapping[str, Checksum], backward: Mapping[str, Checksum]) -> list[Sent]:
    """A whole healthy exchange; `forward` for the client's packets, `backward`
    (travel order from the server) for the server's."""
    c1, s1 = C_ISN + 1, S_ISN + 1
    return [
        Sent(0.000, syn(0x1001, 100), forward),
        Sent(0.001, synack(), backward),
        Sent(0.002, client_seg("A", c1, s1, 0x1002), forward),
        Sent(0.003, client_seg("PA", c1, s1, 0x1003, REQUEST), forward),
        Sent(0.004, server_seg("A", s1, c1 + len(REQUEST), 0x2001), backward),
        Sent(0.005, server_seg("PA", s1, c1 + len(REQUEST), 0x2002, RESPONSE), backward),
        Sent(0.006, server_seg("FA", s1 + len(RESPONSE), c1 + len(REQUEST), 0x2003), backward),
        Sent(0.007, client_seg("FA", c1 + len(REQUEST), s1 + len(RESPONSE) + 1, 0x1004), forward),
        Sent(
            0.008, server_seg("A", s1 + len(RESPONSE) + 1, c1 + len(REQUEST) + 1, 0x2004), backward
        ),
    ]
