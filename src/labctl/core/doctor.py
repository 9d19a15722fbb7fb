"""Host requirements: facts in, one verdict per requirement out, each with its fix.

Pure: labctl.backends.host_probe gathers the facts; this module decides.
Tests feed it facts with each requirement missing in turn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from labctl.core import dpdk
from labctl.core.model import RuntimeKind, SwitchKind
from labctl.core.platforms import DEFAULT_OVS_KERNEL_VM

# What to do on a host whose kernel lacks the openvswitch module; said by doctor and
# by the OVS backend when an ovs-kernel switch is asked for.
OVS_KERNEL_MISSING_FIX = (
    f"labctl matrix runs the ovs-kernel cells in a {DEFAULT_OVS_KERNEL_VM} VM here by default "
    "(--ovs-kernel-vm); for labctl up and run use --switch ovs-userspace or --switch "
    "ovs-dpdk, the fresh VM (vagrant up, see README), or a host whose kernel has the "
    "module (modprobe openvswitch)"
)

ALL = frozenset(SwitchKind)
OVS = frozenset({SwitchKind.OVS_KERNEL, SwitchKind.OVS_USERSPACE, SwitchKind.OVS_DPDK})
PROVISION = "run scripts/provision.sh of a labctl clone"  # not in the wheel
HUGEPAGES_FIX = (
    "echo 1024 > /proc/sys/vm/nr_hugepages; mkdir -p /dev/hugepages; "
    "mount -t hugetlbfs nodev /dev/hugepages (or " + PROVISION + ")"
)
RUNTIMES = frozenset(RuntimeKind)
DOCKER = frozenset({RuntimeKind.DOCKER})
NETNS = frozenset({RuntimeKind.NETNS})


@dataclass(frozen=True)
class HostFacts:
    is_root: bool = False
    docker_error: str | None = "not probed"  # None: the daemon answers
    node_image: str | None = None  # tag of the default node image, if built
    tools: dict[str, bool] = field(default_factory=dict)  # tcpdump, nsenter, iptables, ...
    # bridge, openvswitch, veth: True, False, or None when the kernel has no module tree
    kernel_modules: dict[str, bool | None] = field(default_factory=dict)
    forward_policy: str | None = None  # iptables FORWARD policy
    bridge_nf_call_iptables: bool | None = None
    docker_user_chain: bool = False
    ovs_schema: bool = False
    vswitchd_dpdk: bool = False
    dpdk_drivers: dict[str, bool] = field(default_factory=dict)  # net_af_packet, mempool_ring
    dpdk_abi: str | None = None  # of the installed DPDK (23 for 22.11), names its packages
    hugepages_free_mib: int = 0
    hugepages_total_mib: int = 0
    hugetlbfs_mounted: bool = False
    dpdk_socket_mem_mib: int = 256
    kernel: str = ""
    # A real guest boot under KVM (labctl.backends.kvm_probe): its detail, None when not
    # probed; kvm_works None when it could not run (no qemu, say).
    kvm_works: bool | None = None
    kvm_detail: str | None = None


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None
    needed_by: frozenset[SwitchKind]
    required: bool = True  # False: a warning, labctl copes (e.g. builds the image itself)
    runtimes: frozenset[RuntimeKind] = RUNTIMES  # node runtimes that need it

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["needed_by"] = sorted(k.value for k in self.needed_by)
        data["runtimes"] = sorted(self.runtimes)
        return data


def hugepages_mib(meminfo: str) -> tuple[int, int]:
    """(free, total) MiB of hugepages from the text of /proc/meminfo."""
    info: dict[str, int] = {}
    for line in meminfo.splitlines():
        key, _, value = line.partition(":")
        if value.split() and value.split()[0].isdigit():
            info[key.strip()] = int(value.split()[0])
    size_mib = info.get("Hugepagesize", 2048) // 1024
    return info.get("HugePages_Free", 0) * size_mib, info.get("HugePages_Total", 0) * size_mib


def hugetlbfs_mounted(mounts: str) -> bool:
    """Whether the text of /proc/mounts shows a hugetlbfs."""
    return any(
        len(fields) > 2 and fields[2] == "hugetlbfs"
        for fields in (line.split() for line in mounts.splitlines())
    )


def socket_mem_mib(socket_mem: str) -> int:
    """Total MiB of a dpdk-socket-mem setting ("256" or "256,256"); 0 when unreadable."""
    try:
        return sum(int(part) for part in socket_mem.split(",") if part)
    except ValueError:
        return 0


def hugepage_problem(free_mib: int, mounted: bool, wanted_mib: int) -> tuple[str, str] | None:
    """(requirement, fix) when OVS-DPDK cannot get its socket memory, else None."""
    if free_mib < max(wanted_mib, 1):
        return (
            f"OVS-DPDK needs {wanted_mib} MiB of free hugepages, {free_mib} MiB are free",
            HUGEPAGES_FIX,
        )
    if not mounted:
        return "no hugetlbfs is mounted (OVS-DPDK needs one)", HUGEPAGES_FIX
    return None


def _tool(
    facts: HostFacts,
    name: str,
    package: str,
    why: str,
    needed_by: frozenset[SwitchKind] = ALL,
    runtimes: frozenset[RuntimeKind] = RUNTIMES,
    required: bool = True,
) -> Check:
    ok = facts.tools.get(name, False)
    return Check(
        f"{name}",
        ok,
        f"{why}: {'found' if ok else 'not found'}",
        None if ok else f"apt-get install {package} (or {PROVISION})",
        needed_by,
        required=required,
        runtimes=runtimes,
    )


def evaluate(facts: HostFacts) -> list[Check]:
    checks = [
        Check(
            "root",
            facts.is_root,
            "netlink, namespaces, iptables and Docker need root"
            if facts.is_root
            else "not running as root",
            None if facts.is_root else "run labctl as root (sudo)",
            ALL,
        ),
        Check(
            "docker daemon",
            facts.docker_error is None,
            "reachable" if facts.docker_error is None else facts.docker_error,
            None
            if facts.docker_error is None
            else "start dockerd (`dockerd &`, `systemctl start docker`, or " + PROVISION + ")",
            ALL,
            runtimes=DOCKER,
        ),
        Check(
            "node image",
            facts.node_image is not None,
            f"{facts.node_image} present"
            if facts.node_image
            else "not built yet: `labctl up` builds it on first use (about 30 s)",
            None if facts.node_image else "labctl image build",
            ALL,
            required=False,
            runtimes=DOCKER,
        ),
        _tool(facts, "debootstrap", "debootstrap", "builds the node image", runtimes=DOCKER),
        _tool(facts, "busybox", "busybox", "HTTP server of netns nodes", runtimes=NETNS),
        _tool(facts, "curl", "curl", "HTTP client of netns nodes", runtimes=NETNS),
        # Only labs with such probes need these: `up` names the probe that does.
        _tool(
            facts,
            "iperf3",
            "iperf3",
            "tcp/udp probes of netns nodes",
            runtimes=NETNS,
            required=False,
        ),
        _tool(
            facts,
            "ping",
            "iputils-ping",
            "icmp probes of netns nodes",
            runtimes=NETNS,
            required=False,
        ),
        _tool(facts, "tcpdump", "tcpdump", "captures at the taps"),
        _tool(facts, "nsenter", "util-linux", "enters node namespaces for taps and IPv6"),
        _tool(
            facts,
            "iptables",
            "iptables",
            "scoped ACCEPT rule for the lab's Linux bridge",
            frozenset({SwitchKind.LINUX_BRIDGE}),
        ),
        _module(facts, "veth", ALL, "veth pairs"),
        _module(facts, "bridge", frozenset({SwitchKind.LINUX_BRIDGE}), "the Linux bridge"),
        _forward_check(facts),
        Check(
            "ovs tools",
            all(facts.tools.get(t, False) for t in ("ovsdb-server", "ovs-vswitchd", "ovsdb-tool"))
            and facts.ovs_schema,
            "ovsdb-server, ovs-vswitchd, ovsdb-tool and the vswitch schema",
            None
            if facts.tools.get("ovs-vswitchd") and facts.ovs_schema
            else "apt-get install openvswitch-switch-dpdk (or " + PROVISION + ")",
            OVS,
        ),
        _openvswitch_module(facts),
        Check(
            "dpdk ovs-vswitchd",
            facts.vswitchd_dpdk,
            "the DPDK build of ovs-vswitchd" + (" found" if facts.vswitchd_dpdk else " missing"),
            None if facts.vswitchd_dpdk else "apt-get install openvswitch-switch-dpdk",
            frozenset({SwitchKind.OVS_DPDK}),
        ),
    ]
    for driver in ("net_af_packet", "mempool_ring"):
        package = dpdk.package(driver, facts.dpdk_abi)
        ok = facts.dpdk_drivers.get(driver, False)
        checks.append(
            Check(
                f"dpdk driver {driver}",
                ok,
                "installed" if ok else "the DPDK plugin is not installed",
                None if ok else f"apt-get install {package}",
                frozenset({SwitchKind.OVS_DPDK}),
            )
        )
    problem = hugepage_problem(
        facts.hugepages_free_mib, facts.hugetlbfs_mounted, facts.dpdk_socket_mem_mib
    )
    checks.append(
        Check(
            "hugepages",
            problem is None,
            problem[0]
            if problem
            else (
                f"{facts.hugepages_free_mib} of {facts.hugepages_total_mib} "
                "MiB free, hugetlbfs mounted"
            ),
            problem[1] if problem else None,
            frozenset({SwitchKind.OVS_DPDK}),
        )
    )
    if facts.kvm_detail is not None:
        checks.append(_kvm_check(facts, facts.kvm_detail))
    return checks


def _kvm_check(facts: HostFacts, detail: str) -> Check:
    """Informational: no switch kind needs KVM; VMs (Vagrant, platform VMs) are faster."""
    if facts.kvm_works:
        return Check(
            "kvm",
            True,
            f"{detail} under KVM: VMs use hardware virtualisation",
            None,
            frozenset(),
            required=False,
        )
    if facts.kvm_works is None:
        return Check(
            "kvm",
            False,
            f"could not probe KVM ({detail})",
            "scripts/provision.sh --vm installs qemu (only the VM path needs it)",
            frozenset(),
            required=False,
        )
    return Check(
        "kvm",
        False,
        f"KVM cannot run guests here ({detail}): VMs fall back to TCG "
        "(software emulation, several times slower); the Vagrantfile picks the qemu driver",
        "nothing needed for labctl; for KVM, enable VT-x/AMD-V (nested virtualisation: "
        "the vmx or svm flag in /proc/cpuinfo) and access to /dev/kvm",
        frozenset(),
        required=False,
    )


def _module(facts: HostFacts, module: str, needed_by: frozenset[SwitchKind], what: str) -> Check:
    state = facts.kernel_modules.get(module)
    if state is None:
        # Kernels without a module tree have what they need built in; `up` tells if not.
        return Check(
            f"kernel: {module}", True, f"{what}: assumed built in (no module tree)", None, needed_by
        )
    return Check(
        f"kernel: {module}",
        state,
        f"{what}: {'available' if state else 'missing'}",
        None if state else f"modprobe {module} (the kernel needs it for {what})",
        needed_by,
    )


def _ovs_tools(facts: HostFacts) -> Check:
    wanted = ("ovsdb-server", "ovs-vswitchd", "ovsdb-tool")
    missing = [t for t in wanted if not facts.tools.get(t, False)]
    if not facts.ovs_schema:
        missing.append("vswitch.ovsschema")
    return Check(
        "ovs tools",
        not missing,
        "ovsdb-server, ovs-vswitchd, ovsdb-tool and the vswitch schema: "
        + (f"missing {', '.join(missing)}" if missing else "found"),
        f"apt-get install openvswitch-switch-dpdk (or {PROVISION})" if missing else None,
        OVS,
    )


def _openvswitch_module(facts: HostFacts) -> Check:
    ok = bool(facts.kernel_modules.get("openvswitch"))
    return Check(
        "kernel: openvswitch",
        ok,
        "the OVS kernel datapath is available"
        if ok
        else f"the openvswitch kernel module is missing on this kernel ({facts.kernel})",
        None if ok else OVS_KERNEL_MISSING_FIX,
        frozenset({SwitchKind.OVS_KERNEL}),
    )


def _forward_check(facts: HostFacts) -> Check:
    """Informational: labctl copes with dockerd's FORWARD DROP by a scoped rule."""
    drops = facts.forward_policy == "DROP" and bool(facts.bridge_nf_call_iptables)
    detail = (
        f"FORWARD policy {facts.forward_policy or 'unknown'}, bridge-nf-call-iptables "
        f"{'on' if facts.bridge_nf_call_iptables else 'off'}"
    )
    if drops:
        detail += (
            "; bridged frames are filtered: labctl adds an ACCEPT rule for its bridge "
            f"in {'DOCKER-USER' if facts.docker_user_chain else 'FORWARD'}"
        )
    return Check(
        "iptables forwarding",
        True,
        detail,
        None,
        frozenset({SwitchKind.LINUX_BRIDGE}),
        required=False,
    )


def blocking(
    checks: list[Check], kind: SwitchKind | None, runtime: RuntimeKind = RuntimeKind.DOCKER
) -> list[Check]:
    """Required checks that fail for `kind` (or for every kind when None) and `runtime`."""
    return [
        c
        for c in checks
        if c.required
        and not c.ok
        and runtime in c.runtimes
        and (kind is None and c.needed_by == ALL or kind is not None and kind in c.needed_by)
    ]


def runnable(checks: list[Check], runtime: RuntimeKind = RuntimeKind.DOCKER) -> dict[str, bool]:
    return {kind.value: not blocking(checks, kind, runtime) for kind in SwitchKind}


def runnable_line(can: dict[str, bool]) -> str:
    """Doctor's summary line: the switch kinds that can run, or "none"."""
    return "switch kinds that can run here: " + (
        ", ".join(kind for kind, ok in can.items() if ok) or "none"
    )
