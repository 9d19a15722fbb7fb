"""Gathers the facts labctl.core.doctor judges. Reads only; changes nothing."""

from __future__ import annotations

import contextlib
import glob
import os
import platform
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from labctl.backends import kvm_probe
from labctl.core.doctor import HostFacts, hugepages_mib, hugetlbfs_mounted, socket_mem_mib
from labctl.core.dpdk import abi_from_libraries, plugin_glob
from labctl.core.model import DpdkOptions
from labctl.errors import PrerequisiteError

TOOLS = (
    "tcpdump",
    "nsenter",
    "iptables",
    "debootstrap",
    "busybox",
    "curl",
    "iperf3",
    "ping",
    "ovsdb-server",
    "ovs-vswitchd",
    "ovsdb-tool",
)
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"


def installed_dpdk_abi() -> str | None:
    """The ABI of the installed DPDK (that OVS-DPDK links), from its EAL library."""
    return abi_from_libraries(glob.glob("/usr/lib/*/librte_eal.so.*"))


def _module_available(name: str) -> bool | None:
    """Loaded (/sys/module), built in (modules.builtin) or loadable (modprobe --dry-run);
    None when the kernel has no module tree to tell from."""
    if Path(f"/sys/module/{name}").exists():
        return True
    tree = Path("/lib/modules") / platform.release()
    with contextlib.suppress(OSError):
        builtin = (tree / "modules.builtin").read_text()
        if f"/{name}.ko" in builtin:
            return True
    if not tree.is_dir() or shutil.which("modprobe") is None:
        return None
    try:
        done = subprocess.run(["modprobe", "--dry-run", name], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode == 0


def _forward_policy() -> tuple[str | None, bool]:
    if shutil.which("iptables") is None:
        return None, False
    try:
        done = subprocess.run(
            ["iptables", "-w", "5", "-S"], capture_output=True, text=True, timeout=15
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, False
    policy = None
    for line in done.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            policy = line.split()[2]
    return policy, "-N DOCKER-USER" in done.stdout


def read_text_or_empty(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _docker() -> tuple[str | None, str | None]:
    """(error or None, default node image tag or None)."""
    try:
        from labctl.backends.docker_runtime import connect
        from labctl.backends.image import ImageBuilder

        client = connect(timeout=10)
    except PrerequisiteError as error:
        return error.requirement, None
    except Exception as error:  # noqa: BLE001 - reported as the check's detail
        return str(error), None
    try:
        builder = ImageBuilder(client)
        return None, builder.recipe.tag if builder.exists() else None
    finally:
        client.close()


def probe(dpdk: DpdkOptions | None = None, kvm: bool = False) -> HostFacts:
    """The host's facts. kvm: also boot the KVM probe guest (up to 3 s where KVM
    hangs), which `labctl doctor` does and `up` does not need. The probes that wait on
    something else (dockerd, iptables, modprobe, the KVM guest) run side by side."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        docker_probe = pool.submit(_docker)
        kvm_probe_result = pool.submit(kvm_probe.probe, "kvm") if kvm else None
        forward = pool.submit(_forward_policy)
        modules = {m: pool.submit(_module_available, m) for m in ("veth", "bridge", "openvswitch")}
        abi = installed_dpdk_abi()
        free_mib, total_mib = hugepages_mib(read_text_or_empty(Path("/proc/meminfo")))
        nf_call = None
        with contextlib.suppress(OSError, ValueError):
            nf_call = (
                Path("/proc/sys/net/bridge/bridge-nf-call-iptables").read_text().strip() == "1"
            )
        docker_error, image = docker_probe.result()
        kvm_result = kvm_probe_result.result() if kvm_probe_result else None
        policy, docker_user = forward.result()
        kernel_modules = {m: future.result() for m, future in modules.items()}
    return HostFacts(
        is_root=os.geteuid() == 0,
        docker_error=docker_error,
        node_image=image,
        tools={tool: shutil.which(tool) is not None for tool in TOOLS},
        kernel_modules=kernel_modules,
        forward_policy=policy,
        bridge_nf_call_iptables=nf_call,
        docker_user_chain=docker_user,
        ovs_schema=Path(OVS_SCHEMA).is_file(),
        vswitchd_dpdk=os.access(VSWITCHD_DPDK, os.X_OK),
        dpdk_drivers={
            p: bool(glob.glob(plugin_glob(abi).format(plugin=p)))
            for p in ("net_af_packet", "mempool_ring")
        },
        dpdk_abi=abi,
        hugepages_free_mib=free_mib,
        hugepages_total_mib=total_mib,
        hugetlbfs_mounted=hugetlbfs_mounted(read_text_or_empty(Path("/proc/mounts"))),
        dpdk_socket_mem_mib=socket_mem_mib((dpdk or DpdkOptions()).socket_mem),
        kernel=platform.release(),
        kvm_works=kvm_result.works if kvm_result else None,
        kvm_detail=kvm_result.detail if kvm_result else None,
    )
