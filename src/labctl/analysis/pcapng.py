"""Read pcapng files block by block, each packet with its own interface.

Pure, no dependencies. Follows the pcapng specification
(draft-ietf-opsawg-pcapng): a file is one or more sections, each opened by a
Section Header Block (SHB) that sets the byte order of the blocks after it
and starts the numbering of interfaces anew. An Interface Description Block
(IDB) declares an interface: its link type, snaplen and the options read here,
if_name, if_tsresol (ticks per second, a power of 10 or of 2) and if_tsoffset
(seconds added to every timestamp). Packets come in Enhanced Packet Blocks
(EPB: interface id, timestamp, captured length), Simple Packet Blocks (SPB:
interface 0 of the section, no timestamp, captured length min(original
length, snaplen)) and the obsolete Packet Block (PB). Every other block is
skipped by its length.

dpkt's pcapng reader, used before, takes the first interface's link type and
time resolution for every packet, so the second interface of
`dumpcap -i eth0 -i any` (Ethernet, then Linux cooked) was read as Ethernet
and lost; it also stops at a second section and ignores SPBs.

A file that ends inside a block (a capture still being written, a copy cut
short) ends the packets with `PcapngReader.truncated` set; only a file that
does not start with a section header is an error (ValueError).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

SHB_TYPE = 0x0A0D0D0A  # the same bytes in both byte orders
IDB_TYPE = 0x00000001
PB_TYPE = 0x00000002  # obsolete Packet Block
SPB_TYPE = 0x00000003
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
IF_NAME = 2
IF_TSRESOL = 9
IF_TSOFFSET = 14

DEFAULT_TICKS_PER_SECOND = 1_000_000  # no if_tsresol: microseconds
# A block header (type, total length) plus the trailing total length.
BLOCK_OVERHEAD = 12
# Refuse block lengths beyond this instead of reading gigabytes into memory
# from a corrupt length field; a pcapng block holds one packet.
MAX_BLOCK_LENGTH = 256 * 1024 * 1024


def is_pcapng(head: bytes) -> bool:
    """Whether the first four bytes of a file are a pcapng section header."""
    return head[:4] == struct.pack("!I", SHB_TYPE)


@dataclass(frozen=True)
class Interface:
    """One IDB. `number` counts the IDBs of the whole file from 0 (a second
    section's interface 0 has the number after the first section's last);
    `section_index` is the id its own section's packets name it by."""

    number: int
    section: int
    section_index: int
    link_type: int
    snaplen: int  # 0: no limit
    name: str  # if_name, "" when the IDB has none
    ticks_per_second: int  # if_tsresol
    offset_seconds: int  # if_tsoffset

    def timestamp(self, ticks: int) -> float:
        return self.offset_seconds + ticks / self.ticks_per_second


@dataclass(frozen=True)
class Packet:
    """One EPB, SPB or PB. `interface` is None when the block names an
    interface its section never declared."""

    interface: Interface | None
    timestamp: float
    data: bytes
    original_length: int


class _Truncated(Exception):
    """The file ends inside a block, or a block's length cannot be right."""


class PcapngReader:
    """Iterate over the packets of a pcapng stream.

    `interfaces` grows as IDBs are read; after the iteration it lists every
    interface of the file. `truncated` is set when the file ends inside a
    block (or a block's length field is impossible): the packets before it
    were all read.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.interfaces: list[Interface] = []
        self.truncated = False
        self._section = -1
        self._section_interfaces: list[Interface] = []
        self._order = "<"
        self._last_timestamp = 0.0
        head = stream.read(12)
        if len(head) < 12 or not is_pcapng(head):
            raise ValueError("no pcapng section header block at its start")
        if self._byte_order(head[8:12]) is None:
            raise ValueError("a pcapng section header without its byte-order magic")
        self._pending_shb: bytes | None = head

    @staticmethod
    def _byte_order(magic: bytes) -> str | None:
        if struct.unpack("<I", magic)[0] == BYTE_ORDER_MAGIC:
            return "<"
        if struct.unpack(">I", magic)[0] == BYTE_ORDER_MAGIC:
            return ">"
        return None

    def __iter__(self) -> Iterator[Packet]:
        try:
            while True:
                block = self._next_block()
                if block is None:
                    return
                block_type, body = block
                packet = self._handle(block_type, body)
                if packet is not None:
                    yield packet
        except _Truncated:
            self.truncated = True

    # ----------------------------------------------------------------------
    # Blocks

    def _next_block(self) -> tuple[int, bytes] | None:
        """(type, body without the type and the two lengths), None at the end."""
        if self._pending_shb is not None:
            head, self._pending_shb = self._pending_shb, None
        else:
            head = self._stream.read(8)
            if not head:
                return None
            if len(head) < 8:
                raise _Truncated
            if is_pcapng(head):
                head += self._read(4)
        block_type = struct.unpack_from(self._order + "I", head)[0]
        if block_type == SHB_TYPE:
            order = self._byte_order(head[8:12])
            if order is None:
                raise _Truncated
            self._order = order
        length = struct.unpack_from(self._order + "I", head, 4)[0]
        if length < len(head) + 4 or length % 4 or length > MAX_BLOCK_LENGTH:
            raise _Truncated
        rest = self._read(length - len(head))
        body = head[8:] + rest[:-4]
        return block_type, body

    def _read(self, size: int) -> bytes:
        data = self._stream.read(size)
        if len(data) < size:
            raise _Truncated
        return data

    def _handle(self, block_type: int, body: bytes) -> Packet | None:
        if block_type == SHB_TYPE:
            self._section += 1
            self._section_interfaces = []
        elif block_type == IDB_TYPE:
            self._add_interface(body)
        elif block_type == EPB_TYPE:
            return self._enhanced_packet(body)
        elif block_type == SPB_TYPE:
            return self._simple_packet(body)
        elif block_type == PB_TYPE:
            return self._obsolete_packet(body)
        return None

    def _add_interface(self, body: bytes) -> None:
        if len(body) < 8:
            raise _Truncated
        link_type, _reserved, snaplen = struct.unpack_from(self._order + "HHI", body)
        name, ticks, offset = "", DEFAULT_TICKS_PER_SECOND, 0
        for code, value in self._options(body[8:]):
            if code == IF_NAME:
                name = value.decode("utf-8", "replace").rstrip("\x00")
            elif code == IF_TSRESOL and len(value) >= 1:
                ticks = _ticks_per_second(value[0])
            elif code == IF_TSOFFSET and len(value) >= 8:
                offset = struct.unpack_from(self._order + "q", value)[0]
        interface = Interface(
            number=len(self.interfaces),
            section=self._section,
            section_index=len(self._section_interfaces),
            link_type=link_type,
            snaplen=snaplen,
            name=name,
            ticks_per_second=ticks,
            offset_seconds=offset,
        )
        self.interfaces.append(interface)
        self._section_interfaces.append(interface)

    def _options(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        at = 0
        while at + 4 <= len(data):
            code, length = struct.unpack_from(self._order + "HH", data, at)
            if code == OPT_ENDOFOPT:
                return
            yield code, data[at + 4 : at + 4 + length]
            at += 4 + (length + 3) // 4 * 4

    def _interface(self, section_index: int) -> Interface | None:
        if section_index < len(self._section_interfaces):
            return self._section_interfaces[section_index]
        return None

    def _enhanced_packet(self, body: bytes) -> Packet:
        if len(body) < 20:
            raise _Truncated
        index, high, low, caplen, length = struct.unpack_from(self._order + "5I", body)
        return self._packet(index, (high << 32) | low, body[20 : 20 + caplen], length)

    def _obsolete_packet(self, body: bytes) -> Packet:
        if len(body) < 20:
            raise _Truncated
        index, _drops, high, low, caplen, length = struct.unpack_from(self._order + "HH4I", body)
        return self._packet(index, (high << 32) | low, body[20 : 20 + caplen], length)

    def _simple_packet(self, body: bytes) -> Packet:
        if len(body) < 4:
            raise _Truncated
        length = struct.unpack_from(self._order + "I", body)[0]
        interface = self._interface(0)
        caplen = length
        if interface is not None and interface.snaplen:
            caplen = min(caplen, interface.snaplen)
        # An SPB carries no time: it takes the time of the packet before it,
        # so the order of packets in the file holds.
        return Packet(interface, self._last_timestamp, body[4 : 4 + caplen], length)

    def _packet(self, section_index: int, ticks: int, data: bytes, length: int) -> Packet:
        interface = self._interface(section_index)
        # A packet of an undeclared interface is skipped by the caller; its
        # time does not move the clock the next SPB takes.
        if interface is None:
            return Packet(None, ticks / DEFAULT_TICKS_PER_SECOND, data, length)
        self._last_timestamp = interface.timestamp(ticks)
        return Packet(interface, self._last_timestamp, data, length)


def _ticks_per_second(tsresol: int) -> int:
    """if_tsresol: the high bit clear, a negative power of 10; set, of 2."""
    exponent = tsresol & 0x7F
    return int(2**exponent if tsresol & 0x80 else 10**exponent)
