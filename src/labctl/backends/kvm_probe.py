"""Does KVM run a 64-bit guest here? A short real probe, not the presence of /dev/kvm.

On some hosts /dev/kvm exists and even runs real-mode code, yet a guest hangs once it
enters protected or long mode (nested virtualisation without the vmx/svm flag: the
vCPU spins in the host kernel). So the probe boots what a Linux guest does first: a
64 KiB firmware image whose reset vector switches to 32-bit protected mode, then to
64-bit long mode with paging, and writes to qemu's isa-debug-exit port. qemu exits
with status 99 when the guest got there; a hang until the timeout, or any other exit,
means KVM cannot run guests and VMs must use TCG (software emulation).

The same probe runs under TCG to check the probe itself.

Standalone: only the standard library, so the Vagrantfile can run it from a checkout
without labctl installed (`python3 src/labctl/backends/kvm_probe.py` prints the
libvirt driver to use: kvm or qemu). The firmware is assembled from kvm_probe.S beside
this file; tests/unit/test_kvm_probe.py checks that the bytes below match it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

# Code at offset 0 (real mode -> protected mode -> long mode -> out 0x31, 0xf4), and
# the far jump at the reset vector (offset 0xFFF0), from kvm_probe.S.
FIRMWARE_CODE = bytes.fromhex(
    "fa31c08ed82e660f0116b0000f20c06683c8010f22c066ea1e000f00080066b810008ed88ec08ed0"
    "bf0010000031c0b9000c0000f3abc7050010000003200000c7050020000003300000c70500300000"
    "830000000f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d00"
    "0000800f22c0ea85000f001800b031e6f4f4ebfd8db400000000000000000000ffff0000009acf00"
    "ffff00000092cf00ffff0000009aaf001f0090000f00"
)
RESET_VECTOR = bytes.fromhex("ea0000" + "00f0")
FIRMWARE_SIZE = 0x10000
EXIT_REACHED_LONG_MODE = (0x31 << 1) | 1  # isa-debug-exit: (value << 1) | 1
QEMU = "qemu-system-x86_64"


def firmware() -> bytes:
    image = bytearray(FIRMWARE_SIZE)
    image[: len(FIRMWARE_CODE)] = FIRMWARE_CODE
    image[0xFFF0 : 0xFFF0 + len(RESET_VECTOR)] = RESET_VECTOR
    return bytes(image)


@dataclass(frozen=True)
class ProbeResult:
    accel: str  # "kvm" or "tcg"
    works: bool | None  # None: could not probe (no qemu, no /dev/kvm access)
    detail: str


def probe(accel: str = "kvm", timeout: float = 3.0) -> ProbeResult:
    """Boot the probe firmware with qemu's `accel` and say whether it reached long mode."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        return ProbeResult(accel, None, f"{QEMU} is not installed")
    if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return ProbeResult(accel, False, "/dev/kvm is missing or not accessible")
    with tempfile.NamedTemporaryFile(prefix="labctl-kvm-probe-", suffix=".bin") as image:
        image.write(firmware())
        image.flush()
        argv = [
            qemu,
            "-accel",
            accel,
            "-machine",
            "pc",
            "-m",
            "16",
            "-nodefaults",
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-bios",
            image.name,
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=1",
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return ProbeResult(
                accel,
                False,
                f"a 64-bit guest did not get to long mode within {timeout:g} s (it hangs)",
            )
    if done.returncode == EXIT_REACHED_LONG_MODE:
        return ProbeResult(accel, True, "a 64-bit guest reached long mode")
    reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return ProbeResult(accel, False, f"qemu failed: {reason}")


if __name__ == "__main__":
    result = probe("kvm")
    print("kvm" if result.works else "qemu")
    print(f"kvm probe: {result.detail}", file=sys.stderr)
    sys.exit(0)
