"""Which matrix cells may run at the same time, and in what order they start. Pure.

Every cell is its own lab with its own names, so cells only meet in what the host
shares: labctl runs one pair of OVS daemons (ovsdb-server, ovs-vswitchd) for every
OVS lab. Cells that need the same ovs-vswitchd configuration share it; a cell that
needs another one (the DPDK build instead of the plain one, other global other_config
such as userspace-tso-enable, other DPDK memory) cannot start while a cell using the running one is
still up: the daemons would have to restart under it. Cells that share the daemons may
overlap, DPDK cells too: they share vswitchd's one busy-polling PMD thread, so a second
DPDK cell takes no second core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from labctl.core import ovs_config
from labctl.core.model import DpdkOptions, Switch, SwitchKind, Topology
from labctl.core.plan import switch_kinds_text
from labctl.errors import UsageError

MAX_DEFAULT_WORKERS = 4
"""The default never runs more cells at once than this (nor more than the host's cores)."""

# Rough seconds a cell takes besides its HTTP timeouts (node start, daemons, captures),
# only to start long cells first; a wrong guess changes the wall time, never a result.
BASE_SECONDS = {
    SwitchKind.LINUX_BRIDGE: 1.5,
    SwitchKind.OVS_KERNEL: 2.0,
    SwitchKind.OVS_USERSPACE: 2.0,
    SwitchKind.OVS_DPDK: 3.0,
}


@dataclass(frozen=True)
class VswitchdConfig:
    """What a switch needs from ovs-vswitchd's global configuration: the DPDK build with
    these options, or the plain build; the global other_config settings that differ from
    OVS's defaults (labctl.core.ovs_config), sorted."""

    dpdk: DpdkOptions | None = None
    other_config: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        build = "the DPDK build" if self.dpdk is not None else "the plain build"
        extra = f", dpdk-socket-mem={self.dpdk.socket_mem}" if self.dpdk is not None else ""
        return f"{build} ({ovs_config.describe(self.other_config)}{extra})"


def vswitchd_config(switch: Switch) -> VswitchdConfig | None:
    """The OVS daemon configuration a switch needs; None for a Linux bridge. The switch
    backend starts (or refuses) ovs-vswitchd by this same value."""
    if not switch.kind.is_ovs:
        return None
    return VswitchdConfig(
        dpdk=switch.dpdk if switch.kind is SwitchKind.OVS_DPDK else None,
        other_config=ovs_config.normalized(switch.ovs.effective_other_config()),
    )


def topology_vswitchd_config(topology: Topology) -> VswitchdConfig | None:
    """What all the OVS switches of a lab need from the one ovs-vswitchd they share: the
    DPDK build if one is ovs-dpdk (it serves the other kinds too); None without OVS."""
    configs = [c for s in topology.all_switches().values() if (c := vswitchd_config(s))]
    if not configs:
        return None
    dpdk = next((c.dpdk for c in configs if c.dpdk is not None), None)
    # Validation makes the switches of a lab agree on other_config (one vswitchd).
    return VswitchdConfig(dpdk=dpdk, other_config=configs[0].other_config)


@dataclass(frozen=True)
class Job:
    """One cell to schedule: its key (e.g. "ovs-dpdk-on"), the lab it builds, a guess of
    how long it takes."""

    key: str
    topology: Topology
    expected_seconds: float

    @property
    def needs(self) -> VswitchdConfig | None:
        return topology_vswitchd_config(self.topology)


def job(
    key: str,
    topology: Topology,
    expect_http_fail: bool,
    failing_probes: frozenset[str] = frozenset(),
) -> Job:
    """A Job with its cost guessed: a cell expected to fail HTTP waits out a timeout, a
    probe takes its own duration (iperf3 -t, ping's count), all of its timeout when it is
    expected to fail."""
    from labctl.core import probes

    kinds = [s.kind for s in topology.all_switches().values()] or [SwitchKind.LINUX_BRIDGE]
    seconds = sum(BASE_SECONDS[kind] for kind in kinds)
    for name, probe in topology.named_probes():
        if probe.kind == "http":
            if expect_http_fail or name in failing_probes:
                seconds += probes.probe_seconds(probe)
        elif name in failing_probes:
            seconds += probes.probe_seconds(probe)
        elif probe.kind in ("tcp", "udp"):
            seconds += float(probe.seconds) + 0.5
        elif probe.kind == "icmp":
            seconds += probe.count * float(probe.interval)
    return Job(key, topology, seconds)


def conflict(a: Job, b: Job) -> str | None:
    """Why `a` and `b` must not run at the same time, or None."""
    if a.needs is None or b.needs is None or a.needs == b.needs:
        return None
    return (
        f"{a.key} needs ovs-vswitchd as {a.needs.describe()}, {b.key} needs "
        f"{b.needs.describe()}; labctl runs one pair of OVS daemons, so they take turns"
    )


def start_order(jobs: Sequence[Job]) -> list[int]:
    """Indexes of `jobs`, longest expected first (a long cell started last would be alone
    at the end); ties keep the matrix order."""
    return sorted(range(len(jobs)), key=lambda i: (-jobs[i].expected_seconds, i))


def next_to_start(
    jobs: Sequence[Job], pending: Sequence[int], running: Sequence[int], workers: int
) -> tuple[int | None, dict[int, str]]:
    """The first pending job (in `pending` order) that may start now beside `running`, and
    for each pending job passed over, why it waits."""
    waits: dict[int, str] = {}
    if len(running) >= workers:
        return None, waits
    for index in pending:
        reason = next(
            (r for other in running if (r := conflict(jobs[index], jobs[other])) is not None),
            None,
        )
        if reason is None:
            return index, waits
        waits[index] = reason
    return None, waits


def default_workers(cpus: int | None) -> int:
    """Cells at once by default: two per core, at most MAX_DEFAULT_WORKERS; 1 on one core.
    A cell mostly waits (on Docker, the OVS daemons, an HTTP timeout), not on the CPU: on
    2 cores the 12-cell veth-checksum matrix took 15 s with 4 workers, 16.5 s with 3 and
    20 s with 2 (benchmarks/results/summary.md has the latest numbers)."""
    if not cpus or cpus < 2:
        return 1
    return min(2 * cpus, MAX_DEFAULT_WORKERS)


def rules(jobs: Sequence[Job]) -> list[str]:
    """Which cells take turns and why, one line for all of them (none when all may overlap)."""
    groups: dict[VswitchdConfig, list[str]] = {}
    for one in jobs:
        if one.needs is not None:
            kinds = groups.setdefault(one.needs, [])
            described = switch_kinds_text(one.topology) or ""
            if described not in kinds:
                kinds.append(described)
    if len(groups) < 2:
        return []
    described = "; ".join(
        f"{', '.join(kinds)} cells need ovs-vswitchd as {config.describe()}"
        for config, kinds in groups.items()
    )
    return [f"{described}: labctl runs one pair of OVS daemons, so these groups take turns"]


def parse_shard(text: str) -> tuple[int, int]:
    """ "K/N" -> (K, N) with 1 <= K <= N."""
    head, sep, tail = text.partition("/")
    if not sep or not head.strip().isdigit() or not tail.strip().isdigit():
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 1/2")
    shard, count = int(head), int(tail)
    if not 1 <= shard <= count:
        raise UsageError(f"--shard {text!r}: K must be between 1 and N")
    return shard, count


def shard_of(jobs: Sequence[Job], count: int) -> list[int]:
    """The shard (1..count) of every job: longest expected first, each to the shard with
    the least expected time so far (ties: the lower shard). Depends only on the jobs, so
    every machine computes the same split."""
    totals = [0.0] * count
    assigned = [0] * len(jobs)
    for index in start_order(jobs):
        target = min(range(count), key=lambda s: (totals[s], s))
        totals[target] += jobs[index].expected_seconds
        assigned[index] = target + 1
    return assigned
