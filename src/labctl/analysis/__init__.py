"""Pure analysis of packet captures: no root, no Docker, no netlink, no OVS.

`checksums` reads pcap/pcapng files and judges every TCP/UDP checksum
(valid, unfinished = pseudo-header sum only as TX offload leaves it, wrong,
zero-udp, truncated, fragment). `evidence` reads TCP's own proof of what a
receiver accepted (answered, acknowledged, resent and never acknowledged).
`diagnose` follows packets across taps on a path and, from that evidence and
the taps' positions, says where a checksum that a receiver checks first goes
bad, where packets are lost between taps, and which handshakes never completed:
it matches packets across taps with `matching`, runs the detectors of
`findings` and returns a `diagnosis.Diagnosis` (the data types);
`diagnosis_text` renders one for a terminal, `packet_words` names packets and
flows for both.
"""

from labctl.analysis.checksums import Capture, PacketRecord, read_pcap
from labctl.analysis.diagnose import analyse, diagnose
from labctl.analysis.diagnosis import (
    Diagnosis,
    Finding,
    FlowTimeline,
    Tap,
    TapCapture,
    TapSummary,
    TimelineEvent,
)
from labctl.analysis.diagnosis_text import render_text

__all__ = [
    "Capture",
    "Diagnosis",
    "Finding",
    "FlowTimeline",
    "PacketRecord",
    "Tap",
    "TapCapture",
    "TapSummary",
    "TimelineEvent",
    "analyse",
    "diagnose",
    "read_pcap",
    "render_text",
]
