"""Taps off the path in the reports: each with its count, and what that count says."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labctl.core.result import read_matrix
from labctl.reports import html, markdown

from .helpers import cell, sample

pytestmark = pytest.mark.unit

ISOLATION = "port oth carries VLAN 20 only; the traffic under test runs on VLAN 10"


def off_path_tap(name: str, frames: int, isolation: str) -> dict[str, Any]:
    return {
        "name": name,
        "pcap": f"{name}.pcap",
        "frames": frames,
        "packets": frames,
        "off_path": True,
        "isolation": isolation,
        "verdicts": {"valid": frames},
    }


def with_off_path_taps() -> dict[str, Any]:
    result = sample()
    taps = cell(result, "ovs-userspace", "off")["diagnosis"]["taps"]
    taps.append(off_path_tap("other-port", 0, ISOLATION))
    cell(result, "ovs-dpdk", "off")["diagnosis"]["taps"] += [
        off_path_tap("other-port", 2, ISOLATION),
        {**off_path_tap("branch", 1, ""), "verdicts": {"unfinished": 1}},
    ]
    return result


def test_markdown_lists_every_tap_off_the_path_with_its_count() -> None:
    text = markdown.render(read_matrix(with_off_path_taps()))
    section = text.split("## Taps off the path\n\n")[1].split("\n\n## ")[0]
    assert section.splitlines()[2:] == [
        "| switch | offload | tap | frames | TCP/UDP packets | what it says |",
        "|---|---|---|---|---|---|",
        "| ovs-userspace | off | other-port | 0 | 0 | isolated "
        f"({ISOLATION}): nothing reached it |",
        "| ovs-dpdk | off | other-port | 2 | 2 | isolated "
        f"({ISOLATION}): LEAK (seen-off-path, a fault) |",
        "| ovs-dpdk | off | branch | 1 | 1 | a branch: a switch floods a first packet there "
        "(seen-off-path, a warning) |",
    ]


def test_markdown_without_taps_off_the_path_has_no_section() -> None:
    assert "Taps off the path" not in markdown.render(read_matrix(sample()))


def test_html_marks_taps_off_the_path_and_a_leak() -> None:
    page = html.render(read_matrix(with_off_path_taps()))
    assert (
        '<th scope="row">other-port<br><span class="hint">off the path: isolated '
        f"({ISOLATION}): nothing reached it</span></th>"
        '<td class="num">0</td><td class="num">0</td>'
    ) in page
    # A leak's counts are marked bad.
    assert f"({ISOLATION}): LEAK (seen-off-path, a fault)</span></th>" in page
    assert '<td class="num bad">2</td><td class="num bad">2</td>' in page
    assert "0 proves the isolation" in page
    # The branch's unfinished checksum is no receiver's problem: not marked bad.
    branch = page.split('<th scope="row">branch<br>')[1].split("</tr>")[0]
    assert "bad" not in branch and '<td class="num">1</td>' in branch
    assert "0 proves the isolation" not in html.render(read_matrix(sample()))


def test_report_json_keeps_the_fields() -> None:
    matrix = read_matrix(with_off_path_taps())
    dumped = json.loads(json.dumps(matrix.to_json()))
    taps = cell(dumped, "ovs-userspace", "off")["diagnosis"]["taps"]
    assert (taps[-1]["off_path"], taps[-1]["isolation"], taps[-1]["frames"]) == (
        True,
        ISOLATION,
        0,
    )
    assert taps[0]["off_path"] is False
