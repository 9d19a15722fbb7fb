"""Reading a matrix result, and the wording all three reports share."""

from __future__ import annotations

import pytest

from labctl.core.result import read_matrix
from labctl.errors import UsageError
from labctl.reports.common import (
    ICON_DIFFERS,
    ICON_ERROR,
    ICON_HTTP_FAILED,
    ICON_HTTP_OK,
    ICON_NO_EXPECTATION,
    ICON_SKIPPED,
    cell_anchors,
    describe_expectation,
    host_versions,
    outcome,
    summarize_cell,
)

from .helpers import cell, sample

pytestmark = pytest.mark.unit


def test_counts_come_from_the_cells_not_the_summary() -> None:
    result = sample()
    result["summary"] = {"passed": 8, "failed": 0, "skipped": 0, "error": 0}
    counts = read_matrix(result).counts
    assert (counts.passed, counts.failed, counts.skipped, counts.error) == (5, 1, 2, 0)
    assert counts.total == 8


def test_cells_are_ordered_row_by_row() -> None:
    result = sample()
    result["cells"].reverse()
    order = [(c.switch, c.offload) for c in read_matrix(result).ordered_cells()]
    assert order[:4] == [
        ("linux-bridge", "on"),
        ("linux-bridge", "off"),
        ("ovs-kernel", "on"),
        ("ovs-kernel", "off"),
    ]
    assert order[-1] == ("ovs-dpdk", "off")


def test_a_cell_outside_the_listed_axes_still_gets_a_row_and_column() -> None:
    result = sample()
    result["cells"].append(
        {**cell(result, "ovs-dpdk", "off"), "switch": "ovs-afxdp", "offload": "tso"}
    )
    matrix = read_matrix(result)
    assert matrix.switch_axis[-1] == "ovs-afxdp"
    assert list(matrix.offload_axis) == ["on", "off", "tso"]
    assert matrix.cell("ovs-afxdp", "tso") is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: cell(r, "ovs-dpdk", "on").update(status="green"), "cells[6].status"),
        (
            lambda r: cell(r, "ovs-dpdk", "on")["observed"].update(succeeded="5"),
            "cells[6].observed.succeeded: expected an integer, got '5'",
        ),
        (lambda r: r.update(cells={}), "cells: expected a list"),
        (lambda r: r.pop("lab"), "lab: missing"),
        (
            lambda r: cell(r, "ovs-dpdk", "on")["diagnosis"]["taps"][0].update(frames=True),
            "cells[6].diagnosis.taps[0].frames",
        ),
    ],
)
def test_a_malformed_result_names_the_path(change: object, message: str) -> None:
    result = sample()
    assert callable(change)
    change(result)
    with pytest.raises(UsageError, match="matrix result: ") as caught:
        read_matrix(result)
    assert message in str(caught.value)


def test_cell_summaries_cover_every_status() -> None:
    result = sample()
    matrix = read_matrix(result)
    lines = {(c.switch, c.offload): summarize_cell(c).line() for c in matrix.cells}
    assert lines[("linux-bridge", "on")] == f"{ICON_HTTP_OK} HTTP 5/5, 1.1 ms"
    assert lines[("linux-bridge", "off")] == f"{ICON_HTTP_OK} HTTP 5/5, 0.94 ms"
    assert (
        lines[("ovs-userspace", "on")]
        == f"{ICON_HTTP_FAILED} HTTP 0/5: bad-checksum at server-host"
    )
    assert lines[("ovs-kernel", "on")].startswith(
        f"{ICON_SKIPPED} skipped: the openvswitch kernel module is missing"
    )
    assert lines[("ovs-dpdk", "off")] == (
        f"{ICON_DIFFERS} differs: {ICON_HTTP_FAILED} HTTP 3/5, 2.4 ms: lost-between-taps at "
        "client-port (expected HTTP to pass, it did fail (3/5); expected no fault, found "
        "lost-between-taps, syn-unanswered)"
    )


def test_error_and_unexpected_cells() -> None:
    result = sample()
    cell(result, "ovs-dpdk", "on").update(
        status="error", reason="ovs-vswitchd: dpdk init failed\nEAL: no hugepages", observed=None
    )
    cell(result, "linux-bridge", "on")["expected"] = None
    matrix = read_matrix(result)
    error = summarize_cell(matrix.cell("ovs-dpdk", "on"))  # type: ignore[arg-type]
    assert error.line() == f"{ICON_ERROR} error: ovs-vswitchd: dpdk init failed EAL: no hugepages"
    unchecked = summarize_cell(matrix.cell("linux-bridge", "on"))  # type: ignore[arg-type]
    assert unchecked.line() == f"{ICON_HTTP_OK} HTTP 5/5, 1.1 ms {ICON_NO_EXPECTATION}"


def test_outcome_sentences() -> None:
    result = sample()
    assert outcome(read_matrix(result)) == (
        "FAILED",
        "1 of 8 cells differs from the expectation (5 passed, 1 failed, 2 skipped, 0 errors) "
        "in 61.2 s.",
    )
    cell(result, "ovs-dpdk", "off").update(status="passed", reason=None)
    assert outcome(read_matrix(result))[1].startswith("all 6 cells that ran matched")
    cell(result, "ovs-dpdk", "on").update(status="error", reason="boom")
    assert outcome(read_matrix(result)) == (
        "FAILED",
        "1 cell could not run (5 passed, 0 failed, 2 skipped, 1 error) in 61.2 s.",
    )
    for item in result["cells"]:
        item["status"] = "skipped"
    assert outcome(read_matrix(result))[0] == "NOTHING RAN"


def test_host_versions_name_each_component_once() -> None:
    result = sample()
    result["host"]["dpdk"] = None
    assert host_versions(read_matrix(result)) == [
        "Linux 6.18.44",
        "Debian GNU/Linux 12 (bookworm)",
        "Docker 20.10.24",
        "ovs-vswitchd (Open vSwitch) 3.1.0",
        "DPDK: not found",
        "tcpdump version 4.99.3",
        "Python 3.11.7",
    ]


def test_anchors_are_unique_and_safe() -> None:
    result = sample()
    cell(result, "linux-bridge", "on")["switch"] = "linux bridge"
    result["cells"].append({**cell(result, "ovs-dpdk", "off"), "switch": "linux-bridge"})
    cell(result, "linux-bridge", "off")["offload"] = "on"
    anchors = list(cell_anchors(read_matrix(result)).values())
    assert len(anchors) == len(set(anchors)) == 9
    assert "cell-linux-bridge-on" in anchors and "cell-linux-bridge-on-2" in anchors
    assert all(a.replace("-", "").isalnum() for a in anchors)


def test_http_words_of_the_runner_and_of_hand_made_results_mean_the_same() -> None:
    runner = sample()
    hand_made = sample()
    for item in hand_made["cells"]:
        for part in ("expected", "observed"):
            if item[part] is not None:
                item[part]["http"] = {"pass": "ok", "fail": "fail"}[item[part]["http"]]
    assert read_matrix(runner) == read_matrix(hand_made)
    broken = sample()
    cell(broken, "ovs-dpdk", "on")["observed"]["http"] = "maybe"
    with pytest.raises(UsageError, match=r"cells\[6\]\.observed\.http"):
        read_matrix(broken)


def test_expected_findings_null_means_not_checked() -> None:
    result = sample()
    cell(result, "ovs-dpdk", "on")["expected"]["findings"] = None
    matrix = read_matrix(result)
    expected = matrix.cell("ovs-dpdk", "on").expected  # type: ignore[union-attr]
    assert expected is not None and expected.findings is None
    assert describe_expectation(expected) == "HTTP fails; findings not checked"
    assert describe_expectation(matrix.cell("linux-bridge", "on").expected) == (  # type: ignore[union-attr]
        "HTTP ok; no fault"
    )
