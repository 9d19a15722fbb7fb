"""scripts/extract-pvh-kernel.py: the ELF inside a bzImage, kept only when qemu can start
it at its PVH entry point (platform images boot it: no self-inflating kernel under TCG)."""

from __future__ import annotations

import gzip
import importlib.util
import lzma
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.unit

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "extract-pvh-kernel.py"


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extract_pvh_kernel", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def elf(note_name: bytes = b"Xen\0", note_type: int = 18) -> bytes:
    """A 64-bit ELF whose one program header is a PT_NOTE with one note."""
    note = struct.pack("<III", len(note_name), 4, note_type) + note_name.ljust(4, b"\0")
    note += struct.pack("<I", 0x1000000)
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + struct.pack("<HHIQQQ", 2, 62, 1, 0, 64, 0)
    header += struct.pack("<IHHHHHH", 0, 64, 56, 1, 64, 0, 0)
    program = struct.pack("<IIQQQQQQ", 4, 4, 120, 0, 0, len(note), len(note), 4)
    return header + program + note


def bzimage(compress: bytes) -> bytes:
    """A setup stub before the compressed kernel and a trailer after it, as in a bzImage."""
    return b"MZ" + bytes(500) + b"HdrS" + bytes(300) + compress + b"\x00trailer"


def test_finds_the_elf_in_xz_or_gzip_and_checks_its_pvh_note() -> None:
    extract = script()
    kernel = elf()
    assert extract.payload(bzimage(lzma.compress(kernel, format=lzma.FORMAT_XZ))) == kernel
    assert extract.payload(bzimage(gzip.compress(kernel))) == kernel
    assert extract.payload(bzimage(b"not compressed at all")) is None
    assert extract.has_pvh_entry(kernel)
    assert not extract.has_pvh_entry(elf(note_type=17))  # another Xen note
    assert not extract.has_pvh_entry(elf(note_name=b"GNU\0", note_type=18))


def test_writes_the_kernel_only_when_it_has_a_pvh_entry(tmp_path: Path) -> None:
    def run(kernel: bytes) -> tuple[int, Path]:
        source, out = tmp_path / "vmlinuz", tmp_path / "vmlinux"
        out.unlink(missing_ok=True)
        source.write_bytes(bzimage(lzma.compress(kernel, format=lzma.FORMAT_XZ)))
        done = subprocess.run([sys.executable, str(SCRIPT), str(source), str(out)], check=False)
        return done.returncode, out

    code, out = run(elf())
    assert code == 0 and out.read_bytes() == elf()
    code, out = run(elf(note_type=17))
    assert code == 1 and not out.exists()
