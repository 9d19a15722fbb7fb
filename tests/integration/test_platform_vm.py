"""A real qemu boot of a platform image (TCG here): the job runs at the guest's PID 1
with the shares at their host paths, results come back, and nothing stays on the host,
also when the labctl that started the VM is killed.

The debian-12 image is built on first use (minutes) and cached under
/var/cache/labctl/platforms/."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from labctl.backends import platform_image, platform_vm
from labctl.backends.platform_vm import PlatformVM, Share, VmSpec
from labctl.core.platforms import PLATFORMS
from labctl.platform_matrix import accel
from tests.integration.lab_fixtures import ROOT, labctl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image() -> platform_image.PlatformImage:
    return platform_image.ensure(PLATFORMS["debian-12"])


def qemu_processes(marker: str) -> list[str]:
    found = subprocess.run(["ps", "-eo", "args="], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "qemu-system" in line and marker in line]


def veth_checksum_matrix(tmp_path: Path, *options: str) -> dict[str, Any]:
    """`labctl matrix labs/veth-checksum OPTIONS --json`, its runs under tmp_path."""
    done = labctl(
        "matrix",
        str(ROOT / "labs" / "veth-checksum"),
        *options,
        "--runs-dir",
        str(tmp_path / "runs"),
        "--json",
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def vm_spec(image: platform_image.PlatformImage, out: Path, script: str) -> VmSpec:
    return VmSpec(
        lab="pl-test",
        platform="debian-12",
        kernel=image.kernel,
        initrd=image.initrd,
        image=image.root,
        script=script,
        shares=(Share(out, readonly=False),),
        accel=accel(),
        memory_mib=1024,
    )


@pytest.mark.usefixtures("state_dir")
def test_boot_runs_the_job_and_leaves_nothing(
    image: platform_image.PlatformImage, tmp_path: Path
) -> None:
    before = image.root.stat().st_mtime
    out = tmp_path / "out"
    out.mkdir()
    script = (
        f"uname -r >{out}/kernel\n"
        f"modprobe openvswitch && echo yes >{out}/ovs-module\n"
        f"ovs-vswitchd --version | head -n 1 >{out}/ovs\n"
        "exit 7\n"
    )
    result = PlatformVM().run(vm_spec(image, out, script))
    assert result.exit_status == 7, result.console[-10:]
    assert (out / "kernel").read_text().strip() == image.versions["kernel"]
    assert (out / "ovs-module").read_text().strip() == "yes"
    assert "3.1.0" in (out / "ovs").read_text()
    # labctl's initrd and the PVH kernel: about 8 s here under TCG (Debian's own took 18 s)
    boot = result.mark("shares")
    assert boot is not None and boot < 15, result.console[-10:]
    assert image.root.stat().st_mtime == before  # the overlay took every write
    assert platform_vm.listing() == []
    assert qemu_processes("pl-test-debian-12") == []


@pytest.mark.usefixtures("state_dir")
def test_a_killed_labctl_takes_its_vm_along(
    image: platform_image.PlatformImage, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    spec = vm_spec(image, out, "sleep 600\n")
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pickle; from labctl.backends.platform_vm import PlatformVM; "
            "PlatformVM().run(pickle.loads(sys.stdin.buffer.read()))",
        ],
        stdin=subprocess.PIPE,
    )

    assert starter.stdin is not None
    starter.stdin.write(pickle.dumps(spec))
    starter.stdin.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
        vm.alive for vm in platform_vm.listing() if vm.lab == "pl-test"
    ):
        time.sleep(0.5)
    (vm,) = [vm for vm in platform_vm.listing() if vm.lab == "pl-test"]
    assert vm.alive and vm.pid is not None
    os.kill(starter.pid, signal.SIGKILL)
    starter.wait()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and platform_vm._qemu_of(vm.run_dir, vm.pid):
        time.sleep(0.2)
    assert not platform_vm._qemu_of(vm.run_dir, vm.pid)  # PR_SET_PDEATHSIG
    # What it left (the run directory with the overlay) is listed, then swept.
    left = [v for v in platform_vm.listing() if v.run_dir == vm.run_dir]
    assert left and not left[0].alive
    # `labctl status` lists it (never `down --all` here: it would take other labs along).
    status = json.loads(labctl("status", "--json").stdout)
    listed = [v for v in status["platform_vms"] if v["vm"] == vm.run_dir.name]
    assert listed and listed[0]["running"] is False and listed[0]["platform"] == "debian-12"
    assert [v.run_dir for v in platform_vm.sweep()] == [vm.run_dir]
    assert not vm.run_dir.exists()


@pytest.mark.usefixtures("docker_host")
def test_matrix_on_host_and_a_platform_is_one_report(
    image: platform_image.PlatformImage, state_dir: Path, tmp_path: Path
) -> None:
    result = veth_checksum_matrix(
        tmp_path,
        "--platform",
        "host",
        "--platform",
        "debian-12",
        "--switch",
        "linux-bridge",
        "--offload",
        "off",
    )
    cells = {c["platform"]: c for c in result["cells"]}
    assert set(cells) == {"host", "debian-12"}
    assert all(c["status"] == "passed" for c in cells.values()), cells
    guest = cells["debian-12"]
    assert guest["platform_versions"]["kernel"] == image.versions["kernel"]
    assert "3.1.0" in guest["platform_versions"]["ovs"]
    assert guest["platform_versions"]["docker"] and guest["platform_versions"]["dpdk"]
    # the guest's pcaps came back, under the one report directory
    report_dir = Path(result["report_dir"])
    assert guest["pcaps"] and all(Path(p).is_file() for p in guest["pcaps"].values())
    assert all(Path(p).is_relative_to(report_dir) for p in guest["pcaps"].values())
    block = result["platforms"]["debian-12"]
    assert block["boot_seconds"] > 0 and block["first_cell_seconds"] > block["boot_seconds"]
    assert block["imports_seconds"] > block["boot_seconds"]  # imported in the guest, timed
    markdown = (report_dir / "report.md").read_text()
    assert "## Platforms" in markdown and image.versions["kernel"] in markdown
    assert [vm for vm in platform_vm.listing(state_dir / "vms")] == []
    assert qemu_processes(str(state_dir)) == []


@pytest.mark.usefixtures("docker_host")
def test_a_host_without_the_module_runs_its_ovs_kernel_cells_in_a_debian_12_vm(
    image: platform_image.PlatformImage, state_dir: Path, tmp_path: Path
) -> None:
    """The default: no option, yet no skipped cell; the reports say where it ran."""
    from labctl.platform_matrix import host_has_ovs_module

    result = veth_checksum_matrix(tmp_path, "--switch", "ovs-kernel", "--offload", "on")
    (cell,) = result["cells"]
    assert cell["status"] == "passed", cell
    if host_has_ovs_module():
        assert cell["platform"] == "host" and not result["platforms"]
        return
    assert cell["platform"] == "debian-12"
    assert cell["platform_versions"]["kernel"] == image.versions["kernel"]
    (note,) = result["platform_notes"]
    assert "ran in a debian-12 VM (the default on such a host" in note
    report_dir = Path(result["report_dir"])
    assert (
        'name="ovs-kernel offload=on platform=debian-12"' in (report_dir / "junit.xml").read_text()
    )
    markdown = (report_dir / "report.md").read_text()
    assert "(in the debian-12 VM)" in markdown and note in markdown
    assert [vm for vm in platform_vm.listing(state_dir / "vms")] == []
