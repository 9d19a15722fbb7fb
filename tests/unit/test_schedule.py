"""Which matrix cells may overlap: only OVS cells needing another vswitchd configuration wait."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core import schedule
from labctl.core.matrix import cells, load_lab

pytestmark = pytest.mark.unit
LAB = Path(__file__).resolve().parents[2] / "labs" / "veth-checksum"


def jobs() -> dict[str, schedule.Job]:
    lab = load_lab(LAB)
    return {
        c.key: schedule.job(
            c.key,
            c.topology(lab.topology, lab.name),
            expect_http_fail=bool(c.expectation and c.expectation.http == "fail"),
        )
        for c in cells(lab)
    }


def test_only_different_vswitchd_configurations_conflict() -> None:
    j = jobs()
    assert schedule.conflict(j["linux-bridge-on"], j["ovs-dpdk-on"]) is None
    assert schedule.conflict(j["ovs-userspace-on"], j["ovs-userspace-off"]) is None
    assert schedule.conflict(j["ovs-dpdk-on"], j["ovs-dpdk-off"]) is None
    # The kernel datapath uses the plain build too: it may share with userspace cells.
    assert schedule.conflict(j["ovs-kernel-on"], j["ovs-userspace-off"]) is None
    reason = schedule.conflict(j["ovs-userspace-on"], j["ovs-dpdk-off"])
    assert reason is not None and "DPDK build" in reason and "plain build" in reason


def test_long_cells_start_first_and_conflicts_wait() -> None:
    j = list(jobs().values())
    keys = [one.key for one in j]
    order = schedule.start_order(j)
    # Cells where HTTP is expected to fail wait out a timeout: they start first.
    assert [j[i].key for i in order[:4]] == [
        "ovs-dpdk-on",
        "ovs-dpdk-server-only",
        "ovs-userspace-on",
        "ovs-userspace-server-only",
    ]
    dpdk_on = keys.index("ovs-dpdk-on")
    pending = [keys.index("ovs-userspace-on"), keys.index("linux-bridge-on")]
    index, waits = schedule.next_to_start(j, pending, [dpdk_on], workers=2)
    assert index == keys.index("linux-bridge-on")
    assert list(waits) == [keys.index("ovs-userspace-on")]
    index, waits = schedule.next_to_start(j, pending, [dpdk_on, index], workers=2)
    assert index is None and waits == {}  # both workers busy


def test_default_workers_follow_the_cores() -> None:
    assert schedule.default_workers(1) == 1
    assert schedule.default_workers(2) == 4
    assert schedule.default_workers(None) == 1
    assert schedule.default_workers(64) == schedule.MAX_DEFAULT_WORKERS
