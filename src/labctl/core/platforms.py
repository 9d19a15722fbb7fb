"""Platforms: where a matrix cell runs. `host` is this machine; every other platform is
a Debian release (and kernel) booted in a throwaway qemu VM from a locally built image.

Pure: the definitions, their image recipes (what the image is built from, hashed), and
which cells go to which platform. Building images is scripts/build-platform-image.sh
(through labctl.backends.platform_image); booting them is labctl.backends.platform_vm.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from labctl.core.model import SwitchKind
from labctl.errors import UsageError

HOST = "host"
# Files every platform image is made from (relative to the repository root), besides
# the ones scripts/guest-rootfs.sh names itself (--print-recipe-files).
IMAGE_SCRIPTS = (
    "scripts/build-platform-image.sh",
    "scripts/platform-guest-init",
    "scripts/extract-pvh-kernel.py",
)


@dataclass(frozen=True)
class Platform:
    name: str
    description: str
    suite: str | None = None  # Debian release of the image; None: the host itself
    kernel_suite: str | None = None  # where linux-image-amd64 comes from (default: suite)

    @property
    def is_host(self) -> bool:
        return self.suite is None

    def builder_args(self) -> list[str]:
        """The options of scripts/build-platform-image.sh for this platform."""
        if self.suite is None:
            raise ValueError("the host platform has no image")
        args = ["--suite", self.suite]
        if self.kernel_suite:
            args += ["--kernel-suite", self.kernel_suite]
        return args


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(HOST, "this machine, as it is"),
        Platform(
            "debian-12", "Debian 12 bookworm: kernel 6.1, Open vSwitch 3.1, DPDK 22.11", "bookworm"
        ),
        Platform(
            "debian-12-kernel-6.12",
            "Debian 12 bookworm with the bookworm-backports kernel (6.12)",
            "bookworm",
            "bookworm-backports",
        ),
        Platform(
            "debian-13", "Debian 13 trixie: kernel 6.12, Open vSwitch 3.5, DPDK 24.11", "trixie"
        ),
    )
}


def get(name: str, where: str = "--platform") -> Platform:
    try:
        return PLATFORMS[name]
    except KeyError:
        raise UsageError(
            f"{where}: unknown platform {name!r}; known: {', '.join(PLATFORMS)}"
        ) from None


def recipe_digest(platform: Platform, files: Mapping[str, bytes]) -> str:
    """12 hex digits naming the image: the platform's definition and the content of every
    file the image is made from (path -> bytes). A change to either makes a new image."""
    if platform.is_host:
        raise ValueError("the host platform has no image")
    digest = hashlib.sha256()
    digest.update(
        json.dumps([platform.name, platform.suite, platform.kernel_suite]).encode() + b"\0"
    )
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()[:12]


def image_dir(platform: Platform, digest: str, cache_root: Path) -> Path:
    """Where the image of that recipe lives: <cache>/platforms/<name>-<digest>."""
    return cache_root / "platforms" / f"{platform.name}-{digest}"


def stale_image_dirs(platform: Platform, current: Path, present: Iterable[Path]) -> list[Path]:
    """Images of older recipes of that platform (never used again)."""
    prefix = f"{platform.name}-"
    return sorted(
        p
        for p in present
        if p.name.startswith(prefix)
        and p != current
        and len(p.name) == len(prefix) + 12
        and all(c in "0123456789abcdef" for c in p.name[len(prefix) :])
    )


def choose(
    requested: Sequence[str] | None,
    from_lab: Sequence[str] | None,
) -> list[Platform]:
    """--platform wins over lab.yaml's matrix.platforms; the default is the host alone."""
    names = list(requested or from_lab or [HOST])
    where = "--platform" if requested else "matrix.platforms"
    seen: dict[str, Platform] = {}
    for name in names:
        platform = get(name, where)
        if name in seen:
            raise UsageError(f"{where}: platform {name!r} given twice")
        seen[name] = platform
    return list(seen.values())


def plan_cells(
    platforms: Sequence[Platform],
    switches: Sequence[SwitchKind],
    host_has_ovs_module: bool,
    ovs_kernel_vm: str | None,
) -> dict[str, list[SwitchKind]]:
    """The switch kinds each platform runs. With `ovs_kernel_vm` (a platform name) and a
    host without the openvswitch module, the host's ovs-kernel cells run on that
    platform's VM instead of being skipped (added to its platforms when not there)."""
    plan = {p.name: list(switches) for p in platforms}
    if (
        HOST in plan
        and ovs_kernel_vm
        and not host_has_ovs_module
        and SwitchKind.OVS_KERNEL in plan[HOST]
    ):
        if get(ovs_kernel_vm, "--ovs-kernel-vm").is_host:
            raise UsageError("--ovs-kernel-vm: give a VM platform, not host")
        plan[HOST].remove(SwitchKind.OVS_KERNEL)
        target = plan.setdefault(ovs_kernel_vm, [])
        if SwitchKind.OVS_KERNEL not in target:
            target.append(SwitchKind.OVS_KERNEL)
    return {name: kinds for name, kinds in plan.items() if kinds}


# Where a host without the openvswitch module runs its ovs-kernel cells unless the lab
# (matrix.ovs_kernel_vm) or the command line (--ovs-kernel-vm, --no-ovs-kernel-vm) says
# otherwise: the oldest supported Debian, whose kernel has the module.
DEFAULT_OVS_KERNEL_VM = "debian-12"


@dataclass(frozen=True)
class OvsKernelVm:
    """Where the host's ovs-kernel cells go when the host has no openvswitch module:
    `platform` (None: they are skipped) and which setting chose that (for the report)."""

    platform: str | None
    chosen_by: str


def ovs_kernel_vm(option: str | None, no_option: bool, from_lab: str | bool | None) -> OvsKernelVm:
    """--no-ovs-kernel-vm, then --ovs-kernel-vm P, then lab.yaml's matrix.ovs_kernel_vm (a
    platform, or false to skip), then the default (debian-12)."""
    if no_option and option:
        raise UsageError("--ovs-kernel-vm and --no-ovs-kernel-vm: give one of them")
    if no_option:
        return OvsKernelVm(None, "--no-ovs-kernel-vm")
    if option:
        choice = OvsKernelVm(option, f"--ovs-kernel-vm {option}")
        where = "--ovs-kernel-vm"
    elif from_lab is False:
        return OvsKernelVm(None, "matrix.ovs_kernel_vm: false in lab.yaml")
    elif isinstance(from_lab, str):
        choice = OvsKernelVm(from_lab, f"matrix.ovs_kernel_vm: {from_lab} in lab.yaml")
        where = "matrix.ovs_kernel_vm"
    else:
        return OvsKernelVm(DEFAULT_OVS_KERNEL_VM, "the default on such a host")
    assert choice.platform is not None
    if get(choice.platform, where).is_host:
        raise UsageError(f"{where}: give a VM platform, not host")
    return choice


def needs_ovs_kernel_vm(
    platforms: Sequence[Platform], switches: Sequence[SwitchKind], host_has_ovs_module: bool
) -> bool:
    """The host is one of the platforms, has ovs-kernel cells and cannot run them."""
    return (
        not host_has_ovs_module
        and any(p.is_host for p in platforms)
        and SwitchKind.OVS_KERNEL in switches
    )


def ovs_kernel_note(choice: OvsKernelVm) -> str:
    """The report's note on a host without the module: where its ovs-kernel cells went."""
    if choice.platform is None:
        return (
            "this host has no openvswitch kernel module (the OVS kernel datapath cannot run "
            f"here): its ovs-kernel cells are skipped ({choice.chosen_by}); without that, "
            f"they run in a {DEFAULT_OVS_KERNEL_VM} VM"
        )
    return (
        "this host has no openvswitch kernel module (the OVS kernel datapath cannot run "
        f"here): its ovs-kernel cells ran in a {choice.platform} VM ({choice.chosen_by}; "
        "--no-ovs-kernel-vm skips them instead)"
    )


VM_CPUS = 2
VM_MEMORY_MIB = 4096
HOST_RESERVE_MIB = 2048


def parallel_vms(host_cpus: int, host_memory_mib: int, count: int) -> int:
    """How many platform VMs may run side by side: each wants its vCPUs as host cores
    (a TCG vCPU is a busy host thread) and its memory, with some left for the host."""
    by_cpu = host_cpus // VM_CPUS
    by_memory = (host_memory_mib - HOST_RESERVE_MIB) // VM_MEMORY_MIB
    return max(1, min(count, by_cpu, by_memory))
