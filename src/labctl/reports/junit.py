"""A matrix result as JUnit XML: one testsuite for the lab, one testcase per cell.

The layout is the common denominator of CI parsers (Jenkins, GitLab, GitHub
test reporters): <testsuites> around one <testsuite> whose attributes carry
the counts, <failure>/<error>/<skipped> inside a <testcase>, the run's
details in <system-out>. Characters XML 1.0 cannot carry are dropped, so a
control byte in a captured error never makes the file unreadable.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from labctl.core.result import CellResult, MatrixResult
from labctl.reports.common import (
    describe_expectation,
    describe_observation,
    format_ms,
    one_line,
)

# Everything outside XML 1.0's Char production.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def render(matrix: MatrixResult) -> str:
    counts = matrix.counts
    totals = {
        "tests": str(counts.total),
        "failures": str(counts.failed),
        "errors": str(counts.error),
        "skipped": str(counts.skipped),
        "time": _seconds(matrix.seconds),
    }
    root = ET.Element("testsuites", {"name": _clean(f"labctl matrix {matrix.lab}"), **totals})
    suite = ET.SubElement(root, "testsuite", {"name": _clean(matrix.lab), **totals})
    timestamp = _timestamp(matrix.started_at)
    if timestamp:
        suite.set("timestamp", timestamp)
    _properties(suite, matrix)
    for cell in matrix.ordered_cells():
        _testcase(suite, matrix, cell)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _clean(text: str) -> str:
    return _NOT_XML.sub("", text)


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def _timestamp(started_at: str | None) -> str | None:
    """ISO 8601 in UTC without an offset, the form the JUnit schema allows."""
    if not started_at:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
        try:
            moment = datetime.strptime(started_at, layout)
        except ValueError:
            continue
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _properties(suite: ET.Element, matrix: MatrixResult) -> None:
    pairs: list[tuple[str, str]] = []
    if matrix.topology_file:
        pairs.append(("topology_file", matrix.topology_file))
    if matrix.started_at:
        pairs.append(("started_at", matrix.started_at))
    if matrix.ended_at:
        pairs.append(("ended_at", matrix.ended_at))
    pairs += [(f"host.{key}", value) for key, value in matrix.host.items() if value is not None]
    if not pairs:
        return
    properties = ET.SubElement(suite, "properties")
    for name, value in pairs:
        ET.SubElement(properties, "property", {"name": _clean(name), "value": _clean(value)})


def _testcase(suite: ET.Element, matrix: MatrixResult, cell: CellResult) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {
            # A matrix over platforms has the same switch and offload on several
            # platforms: the name says which one, so CI tells the cells apart.
            "name": _clean(
                f"{cell.test_name} platform={cell.platform}" if matrix.platforms else cell.test_name
            ),
            "classname": _clean(f"labctl.matrix.{matrix.lab}"),
            "time": _seconds(cell.seconds),
        },
    )
    reason = _clean(one_line(cell.reason or ""))
    if cell.status == "failed":
        failure = ET.SubElement(
            case,
            "failure",
            {"message": reason or "differs from the expectation", "type": "mismatch"},
        )
        failure.text = _clean(_details(cell))
    elif cell.status == "error":
        error = ET.SubElement(case, "error", {"message": reason or "error", "type": "error"})
        error.text = _clean(cell.reason or "") or None
    elif cell.status == "skipped":
        ET.SubElement(case, "skipped", {"message": reason or "skipped"})
    if cell.status in ("passed", "failed") or cell.observed is not None:
        out = ET.SubElement(case, "system-out")
        out.text = _clean(_record(cell, matrix.merged))


def _details(cell: CellResult) -> str:
    """The failure body: the verdict first, then what was expected and seen."""
    lines = []
    if cell.verdict:
        lines.append(cell.verdict)
    lines.append(f"expected: {describe_expectation(cell.expected)}")
    lines.append(f"observed: {describe_observation(cell.observed)}")
    if cell.expected is not None and cell.expected.note:
        lines.append(f"note: {cell.expected.note}")
    return "\n".join(lines)


def _record(cell: CellResult, merged: bool) -> str:
    lines = [f"host: {cell.host}"] if merged and cell.host else []
    lines.append(f"expected: {describe_expectation(cell.expected)}")
    lines.append(f"observed: {describe_observation(cell.observed)}")
    if cell.expected is not None and cell.expected.note:
        lines.append(f"note: {cell.expected.note}")
    observed = cell.observed
    if observed is not None and observed.latency_ms is not None:
        latency = observed.latency_ms
        lines.append(
            f"latency: min {format_ms(latency.min)}, median {format_ms(latency.median)}, "
            f"max {format_ms(latency.max)}"
        )
    if cell.verdict:
        lines.append(f"verdict: {cell.verdict}")
    if cell.run_dir:
        lines.append(f"run directory: {cell.run_dir}")
    lines += [f"pcap {tap}: {path}" for tap, path in cell.pcaps.items()]
    return "\n".join(lines)
