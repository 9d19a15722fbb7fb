"""A platform VM whose guest kernel locks up (seen under TCG: both vCPUs in a soft lockup
at a container's start) panics and exits instead of hanging; the matrix boots one new VM
(labctl.platform_matrix.guest_lockup, labctl.backends.platform_vm.guest_kernel_failed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import platform_matrix
from labctl.backends import platform_vm
from labctl.backends.platform_vm import KERNEL_ARGS, VmResult, guest_kernel_failed

pytestmark = pytest.mark.unit

LOCKED = [
    "labctl-guest: mark docker 23.1",
    "[   77.209994] watchdog: BUG: soft lockup - CPU#0 stuck for 44s! [runc:275]",
    "[   77.301817] watchdog: BUG: soft lockup - CPU#1 stuck for 44s! [exe:276]",
    "[   78.1] Kernel panic - not syncing: softlockup: hung tasks",
]


def test_a_locked_up_guest_panics_and_so_ends_its_vm() -> None:
    assert "softlockup_panic=1" in KERNEL_ARGS and "panic=-1" in KERNEL_ARGS


def test_the_console_tells_a_kernel_failure_from_a_lab_failure() -> None:
    assert guest_kernel_failed(LOCKED) == LOCKED[1]
    assert guest_kernel_failed(["==> cell 1/3: ovs-kernel, offload on", "exit 1"]) is None


def test_only_a_vm_without_a_result_is_booted_again() -> None:
    no_result = VmResult(None, 80.0, LOCKED, job_files={"result.json": b""})
    assert platform_matrix.guest_lockup(no_result) == (
        "watchdog: BUG: soft lockup - CPU#0 stuck for 44s! [runc:275]"
    )
    finished = VmResult(0, 80.0, LOCKED, job_files={"result.json": b'{"cells": []}'})
    assert platform_matrix.guest_lockup(finished) is None
    failed_lab = VmResult(1, 80.0, ["==> cell 1/1"], job_files={"result.json": b""})
    assert platform_matrix.guest_lockup(failed_lab) is None


def test_the_matrix_boots_one_new_vm_after_a_lockup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from labctl.core import platforms as plat
    from labctl.core.matrix import load_lab

    lab = load_lab(Path(__file__).resolve().parents[2] / "labs" / "veth-checksum")
    good = VmResult(0, 90.0, ["==> cell 1/1"], job_files={"result.json": b'{"cells": []}'})
    results = [VmResult(None, 80.0, LOCKED, job_files={"result.json": b""}), good, good]
    runs: list[object] = []

    class FakeVM:
        def run(self, spec: object) -> VmResult:
            runs.append(spec)
            return results[len(runs) - 1]

    class FakeImage:
        kernel = initrd = boot_disk = Path("/nonexistent")
        versions: dict[str, str] = {}

    monkeypatch.setattr(platform_vm, "PlatformVM", FakeVM)
    monkeypatch.setattr("labctl.backends.platform_image.ensure", lambda *a, **k: FakeImage())
    monkeypatch.setattr(platform_matrix, "prime", lambda *a, **k: None)
    said: list[str] = []
    block = platform_matrix.run_on_platform(
        lab, plat.get("debian-12"), [], None, tmp_path, said.append
    )
    assert len(runs) == 2
    assert "error" not in block and "second VM" in block["retried"]
    assert any("booting a new VM" in line for line in said)
