"""The version view: platform x switch x offload with each platform's versions, and the
one report of a matrix over platforms."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from labctl import platform_matrix
from labctl.core import platforms
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


def test_junit_names_the_platform_of_each_cell(tmp_path: Path) -> None:
    """The same switch and offload on two platforms are two distinct test cases."""
    from labctl.reports import junit

    names = re.findall(r'<testcase name="([^"]+)"', junit.render(over_platforms(tmp_path)))
    assert len(names) == len(set(names)) == 9
    assert "ovs-dpdk offload=on platform=host" in names
    assert "ovs-dpdk offload=on platform=debian-13" in names
    # a matrix of the host alone keeps the names it always had
    plain = re.findall(r'<testcase name="([^"]+)"', junit.render(MatrixResult(**sample())))
    assert "ovs-dpdk offload=on" in plain


def handed_over(tmp_path: Path) -> MatrixResult:
    """The host's ovs-kernel cells ran in a debian-12 VM (no openvswitch module here)."""
    raw = raw_over_platforms(tmp_path)
    bridge = next(c for c in raw["cells"] if c["switch"] == "linux-bridge" and c["offload"] == "on")
    raw["cells"] = [c for c in raw["cells"] if c["switch"] != "ovs-kernel"]
    for offload in ("on", "off"):
        moved = copy.deepcopy(bridge)
        moved.update(switch="ovs-kernel", offload=offload, platform="debian-12")
        raw["cells"].append(moved)
    raw["platforms"]["host"]["ovs_kernel_vm"] = "debian-12"
    raw["platforms"]["debian-12"] = {"name": "debian-12", "versions": {"kernel": "6.1.0-41"}}
    raw["platform_notes"] = [platforms.ovs_kernel_note(platforms.ovs_kernel_vm(None, False, None))]
    return MatrixResult.model_validate(raw)


def test_cells_handed_to_a_vm_fill_the_hosts_grid_and_name_their_platform(
    tmp_path: Path,
) -> None:
    result = handed_over(tmp_path)
    grid = view.platform_result(result, "host", with_handed_over=True)
    assert {(c.switch, c.platform) for c in grid.cells if c.switch == "ovs-kernel"} == {
        ("ovs-kernel", "debian-12")
    }
    # the version view keeps them under their own platform only
    _headers, rows = view.rows(result)
    assert [r[0] for r in rows if r[6] == "ovs-kernel"] == ["debian-12"]
    paths = platform_matrix.write_reports(result)
    markdown = paths["markdown"].read_text()
    grid_row = next(line for line in markdown.splitlines() if line.startswith("| ovs-kernel |"))
    assert "(in the debian-12 VM)" in grid_row
    top = markdown[: markdown.index("## Platforms")]
    assert "its ovs-kernel cells ran in a debian-12 VM (the default on such a host" in top
    page = paths["html"].read_text()
    assert "ran in a debian-12 VM" in page and "(in the debian-12 VM)" in page
    saved = json.loads(paths["json"].read_text())
    assert saved["platforms"]["host"]["ovs_kernel_vm"] == "debian-12"
    assert "ran in a debian-12 VM" in saved["platform_notes"][0]
    assert {c["platform"] for c in saved["cells"] if c["switch"] == "ovs-kernel"} == {"debian-12"}
