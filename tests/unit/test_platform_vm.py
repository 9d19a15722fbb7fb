"""The platform VM's command line, job script and run-directory bookkeeping (no qemu)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from labctl.backends import platform_vm
from labctl.backends.platform_vm import Share, VmSpec

pytestmark = pytest.mark.unit


def spec(**changes: object) -> VmSpec:
    base = VmSpec(
        lab="pl-lab",
        platform="debian-13",
        kernel=Path("/img/vmlinuz"),
        initrd=Path("/img/initrd.img"),
        image=Path("/img/root.qcow2"),
        script="echo hi",
        shares=(Share(Path("/src")), Share(Path("/out dir"), readonly=False)),
    )
    return VmSpec(**{**base.__dict__, **changes})


def test_qemu_boots_the_image_kernel_through_the_overlay_with_the_shares(tmp_path: Path) -> None:
    argv = platform_vm.qemu_argv(spec(), tmp_path)
    joined = " ".join(argv)
    assert argv[argv.index("-accel") + 1] == "tcg,thread=multi"
    assert argv[argv.index("-cpu") + 1] == "max"
    assert argv[argv.index("-kernel") + 1] == "/img/vmlinuz"
    assert f"file={tmp_path / 'overlay.qcow2'},if=virtio" in joined
    assert "/img/root.qcow2" not in joined  # the image itself is never written
    assert f"init={platform_vm.GUEST_INIT}" in argv[argv.index("-append") + 1]
    virtfs = [argv[i + 1] for i, a in enumerate(argv) if a == "-virtfs"]
    assert virtfs[0].startswith(f"local,path={tmp_path / 'job'},mount_tag=labctl-job")
    assert virtfs[1].endswith(",readonly=on") and "mount_tag=share0" in virtfs[1]
    assert "readonly" not in virtfs[2] and "mount_tag=share1" in virtfs[2]
    assert "-nic" not in argv and "-netdev" not in argv  # no guest network, no tap
    kvm = platform_vm.qemu_argv(spec(accel="kvm", cpus=4, memory_mib=2048), tmp_path)
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"
    assert kvm[kvm.index("-smp") + 1] == "4" and kvm[kvm.index("-m") + 1] == "2048"
    # No AppArmor (dockerd loads no profile at its start).
    assert "apparmor=0" in argv[argv.index("-append") + 1].split()


def test_job_script_mounts_each_share_at_its_host_path_before_the_job() -> None:
    script = platform_vm.job_script(spec())
    lines = script.splitlines()
    assert (
        "mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none,ro share0 /src"
        in script
    )
    assert (
        "mkdir -p '/out dir' && mount -t 9p -o "
        "trans=virtio,version=9p2000.L,msize=262144,cache=none share1 '/out dir'" in script
    )
    assert lines.index("mark shares") < lines.index("echo hi")


def test_marks_are_read_from_the_console() -> None:
    console = [
        "[    1.0] noise",
        "labctl-guest: mark shares 5.12",
        "x labctl-guest: mark docker 9.5",
    ]
    assert platform_vm.parse_marks(console) == {"shares": 5.12, "docker": 9.5}


def test_listing_and_sweep_remove_what_a_dead_labctl_left(tmp_path: Path) -> None:
    dead = tmp_path / "pl-lab-debian-13-aaaaaa"
    live = tmp_path / "pl-lab-debian-12-bbbbbb"
    for run_dir, owner in ((dead, 2**22 + 12345), (live, os.getppid())):
        run_dir.mkdir()
        (run_dir / "overlay.qcow2").write_bytes(b"")
        meta = {"lab": "pl-lab", "platform": run_dir.name.split("-")[-2], "labctl_pid": owner}
        (run_dir / "meta.json").write_text(json.dumps(meta))
    found = {vm.run_dir.name: vm for vm in platform_vm.listing(tmp_path)}
    assert set(found) == {dead.name, live.name}
    assert not found[dead.name].alive  # no qemu pid recorded: nothing runs
    gone = platform_vm.sweep(tmp_path)
    assert [vm.run_dir for vm in gone] == [dead]
    assert not dead.exists() and live.exists()  # its labctl still runs
    platform_vm.remove(found[live.name])
    assert not live.exists()
