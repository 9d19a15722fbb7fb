"""labctl doctor on the real host: its verdicts agree with what `up` does here."""

from __future__ import annotations

import json
import os

import pytest

from tests.integration.lab_fixtures import labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]


def test_doctor_reports_every_requirement_and_what_can_run() -> None:
    done = labctl("doctor", "--json", check=False)
    report = json.loads(done.stdout)
    names = {c["name"] for c in report["checks"]}
    assert {
        "root",
        "docker daemon",
        "node image",
        "tcpdump",
        "hugepages",
        "kernel: openvswitch",
        "dpdk driver net_af_packet",
    } <= names
    # The provisioned host runs the Linux bridge and both userspace OVS kinds.
    assert report["runnable"]["linux-bridge"]
    assert report["runnable"]["ovs-userspace"]
    assert report["runnable"]["ovs-dpdk"]
    assert report["runnable"]["ovs-kernel"] == os.path.isdir("/sys/module/openvswitch")


def test_doctor_exit_code_follows_the_switch_kind() -> None:
    assert labctl("doctor", "--switch", "ovs-dpdk", check=False).returncode == 0
    kernel = labctl("doctor", "--switch", "ovs-kernel", check=False)
    if os.path.isdir("/sys/module/openvswitch"):
        assert kernel.returncode == 0
    else:
        assert kernel.returncode == 1
        assert "runs the ovs-kernel cells in a debian-12 VM" in kernel.stdout
        assert "use --switch ovs-userspace or --switch ovs-dpdk" in kernel.stdout
