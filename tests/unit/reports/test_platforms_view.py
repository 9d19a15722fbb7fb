"""The version view: platform x switch x offload with each platform's versions, and the
one report of a matrix over platforms."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from labctl import platform_matrix
from labctl.core.result import MatrixResult
from labctl.reports import platforms as view

from .helpers import sample

pytestmark = pytest.mark.unit

D13 = {
    "os": "Debian GNU/Linux 13 (trixie)",
    "kernel": "6.12.57+deb13-amd64",
    "ovs": "ovs-vswitchd (Open vSwitch) 3.5.0",
    "dpdk": "24.11.3",
    "docker": "26.1.5",
}


def over_platforms(tmp_path: Path) -> MatrixResult:
    return MatrixResult.model_validate(raw_over_platforms(tmp_path))


def raw_over_platforms(tmp_path: Path) -> dict[str, Any]:
    """The sample's cells on the host, and an ovs-dpdk/on cell in a debian-13 VM that
    behaves differently (HTTP passes)."""
    result = sample()
    result["report_dir"] = str(tmp_path)
    for cell in result["cells"]:
        cell["platform"] = "host"
    guest = copy.deepcopy(
        next(c for c in result["cells"] if c["switch"] == "linux-bridge" and c["offload"] == "on")
    )
    guest.update(switch="ovs-dpdk", platform="debian-13")
    result["cells"].append(guest)
    result["platforms"] = {
        "host": {"name": "host", "versions": result["host"]},
        "debian-13": {
            "name": "debian-13",
            "versions": D13,
            "boot_seconds": 9.4,
            "first_cell_seconds": 21.0,
            "accel": "tcg",
        },
    }
    result["platform_notes"] = [
        "this host has no openvswitch kernel module: its ovs-kernel cells ran in the debian-13 VM"
    ]
    return result


def test_rows_are_platform_by_switch_with_versions(tmp_path: Path) -> None:
    headers, rows = view.rows(over_platforms(tmp_path))
    assert headers[:7] == ["platform", "OS", "kernel", "Open vSwitch", "DPDK", "Docker", "switch"]
    assert [h for h in headers[7:]] == ["offload on", "offload off"]
    guest = [r for r in rows if r[0] == "debian-13"]
    assert len(guest) == 1
    assert guest[0][1:7] == [
        D13["os"],
        D13["kernel"],
        D13["ovs"],
        D13["dpdk"],
        D13["docker"],
        "ovs-dpdk",
    ]
    assert guest[0][7].startswith("✅ HTTP ") and guest[0][8] == ""
    host_dpdk = next(r for r in rows if r[0] == "host" and r[6] == "ovs-dpdk")
    assert "HTTP 0/" in host_dpdk[7]  # the host's seed bug, beside the VM's result


def test_a_platform_whose_vm_failed_says_why(tmp_path: Path) -> None:
    raw = raw_over_platforms(tmp_path)
    raw["cells"] = [c for c in raw["cells"] if c["platform"] == "host"]
    raw["platforms"]["debian-13"]["error"] = "the debian-13 VM returned no matrix result"
    _headers, rows = view.rows(MatrixResult.model_validate(raw))
    failed = [r for r in rows if r[0] == "debian-13"]
    assert failed and failed[0][-1] == "error: the debian-13 VM returned no matrix result"


def test_one_report_with_every_cell_and_the_version_view(tmp_path: Path) -> None:
    result = over_platforms(tmp_path)
    paths = platform_matrix.write_reports(result)
    saved = json.loads(paths["json"].read_text())
    assert len(saved["cells"]) == 9 and saved["cells"][-1]["platform"] == "debian-13"
    markdown = paths["markdown"].read_text()
    assert "## Platforms" in markdown
    assert "| debian-13 | Debian GNU/Linux 13 (trixie) | 6.12.57+deb13-amd64 |" in markdown
    assert "Note: this host has no openvswitch kernel module" in markdown
    assert "debian-13: boot 9.4 s, first cell at 21.0 s, (tcg)" in markdown
    page = paths["html"].read_text()
    assert '<section id="platforms">' in page and page.index("platforms") < page.index("</body>")
    assert "3.5.0" in page
    junit = paths["junit"].read_text()
    assert 'tests="9"' in junit
    assert platform_matrix.primary_platform(result) == "host"
    guest_only = result.model_copy(
        update={"cells": [c for c in result.cells if c.platform != "host"]}
    )
    assert platform_matrix.primary_platform(guest_only) == "debian-13"
