#!/usr/bin/env python3
"""Extract the uncompressed kernel (vmlinux, ELF) from a bzImage, when it has a PVH entry
point (an ELF note "Xen", type XEN_ELFNOTE_PHYS32_ENTRY) that qemu can start directly.

    scripts/extract-pvh-kernel.py BZIMAGE OUT

Exits 0 with OUT written, or 1 (a message, no OUT) when the payload is not xz, gzip or
zstd, or the kernel has no PVH entry point. Used by scripts/build-platform-image.sh.
"""

from __future__ import annotations

import lzma
import shutil
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable

XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4


def _xz(data: bytes) -> bytes:
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)


def _gzip(data: bytes) -> bytes:
    return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)


def _zstd(data: bytes) -> bytes:
    if shutil.which("zstd") is None:
        return b""
    return subprocess.run(["zstd", "-dcq"], input=data, capture_output=True).stdout


UNPACKERS: tuple[tuple[bytes, Callable[[bytes], bytes]], ...] = (
    (b"\xfd7zXZ\x00", _xz),
    (b"\x1f\x8b\x08", _gzip),
    (b"\x28\xb5\x2f\xfd", _zstd),
)


def payload(image: bytes) -> bytes | None:
    """The ELF inside a bzImage: the first compressed stream that inflates to one."""
    for magic, unpack in UNPACKERS:
        at = image.find(magic)
        while at != -1:
            try:
                data = unpack(image[at:])
            except (lzma.LZMAError, zlib.error, EOFError):
                data = b""
            if data.startswith(b"\x7fELF\x02"):
                return data
            at = image.find(magic, at + 1)
    return None


def has_pvh_entry(elf: bytes) -> bool:
    """A 64-bit little-endian ELF with the Xen PHYS32_ENTRY note in a PT_NOTE segment."""
    if elf[5] != 1:
        return False
    (phoff,) = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    for index in range(phnum):
        kind, _flags, offset, _vaddr, _paddr, size = struct.unpack_from(
            "<IIQQQQ", elf, phoff + index * phentsize
        )
        if kind != PT_NOTE:
            continue
        at, end = offset, offset + size
        while at + 12 <= end:
            namesz, descsz, note_type = struct.unpack_from("<III", elf, at)
            name = elf[at + 12 : at + 12 + namesz].rstrip(b"\0")
            if name == b"Xen" and note_type == XEN_ELFNOTE_PHYS32_ENTRY:
                return True
            at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return False


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: scripts/extract-pvh-kernel.py BZIMAGE OUT", file=sys.stderr)
        return 2
    source, out = argv
    with open(source, "rb") as handle:
        elf = payload(handle.read())
    if elf is None:
        print(f"extract-pvh-kernel: no xz, gzip or zstd kernel in {source}", file=sys.stderr)
        return 1
    if not has_pvh_entry(elf):
        print(f"extract-pvh-kernel: the kernel in {source} has no PVH entry", file=sys.stderr)
        return 1
    with open(out, "wb") as handle:
        handle.write(elf)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
