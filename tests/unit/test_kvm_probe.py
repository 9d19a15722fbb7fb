"""The KVM probe's firmware is what kvm_probe.S assembles to, and doctor's verdicts on it."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import pytest

from labctl.backends import kvm_probe
from labctl.core.doctor import HostFacts, blocking, evaluate

pytestmark = pytest.mark.unit
SOURCE = Path(kvm_probe.__file__).with_name("kvm_probe.S")


def test_firmware_bytes_are_the_assembled_source(tmp_path: Path) -> None:
    # binutils comes with gcc, which scripts/provision.sh installs.
    assert shutil.which("as") and shutil.which("ld"), "binutils missing: scripts/provision.sh"
    obj, binary = tmp_path / "p.o", tmp_path / "p.bin"
    subprocess.run(["as", "--32", "-o", str(obj), str(SOURCE)], check=True)
    subprocess.run(
        ["ld", "-m", "elf_i386", "-Ttext", "0", "-e", "0", "--oformat", "binary"]
        + ["-o", str(binary), str(obj)],
        check=True,
    )
    assert binary.read_bytes() == kvm_probe.firmware()
    assert len(kvm_probe.firmware()) == 0x10000


def test_doctor_warns_without_blocking_when_kvm_hangs() -> None:
    facts = HostFacts(kvm_works=False, kvm_detail="a 64-bit guest did not get to long mode")
    (check,) = [c for c in evaluate(facts) if c.name == "kvm"]
    assert not check.ok and not check.required
    assert "TCG" in check.detail and "long mode" in check.detail
    assert check not in blocking(evaluate(facts), None)


def test_doctor_reports_working_kvm_and_says_nothing_when_not_probed() -> None:
    facts = HostFacts(kvm_works=True, kvm_detail="a 64-bit guest reached long mode")
    (check,) = [c for c in evaluate(facts) if c.name == "kvm"]
    assert check.ok and "hardware virtualisation" in check.detail
    assert not [
        c
        for c in evaluate(dataclasses.replace(facts, kvm_works=None, kvm_detail=None))
        if c.name == "kvm"
    ]


def test_doctor_says_when_kvm_could_not_be_probed() -> None:
    facts = HostFacts(kvm_works=None, kvm_detail="qemu-system-x86_64 is not installed")
    (check,) = [c for c in evaluate(facts) if c.name == "kvm"]
    assert not check.ok and not check.required
    assert check.detail == "could not probe KVM (qemu-system-x86_64 is not installed)"
    assert check.fix and "--vm" in check.fix
