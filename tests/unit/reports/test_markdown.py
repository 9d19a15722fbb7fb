"""The Markdown report: exact text for the sample, and text from the result kept inert."""

from __future__ import annotations

import re

import pytest

from labctl.core.result import read_matrix
from labctl.reports import markdown

from .helpers import assert_golden, cell, sample

pytestmark = pytest.mark.unit


def table_rows(text: str) -> list[list[str]]:
    """Rows of the first table, split on pipes that are not escaped."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [re.split(r"(?<!\\)\|", row.strip())[1:-1] for row in rows]


def test_sample_report_is_exactly_the_golden_text() -> None:
    assert_golden("matrix.md", markdown.render(read_matrix(sample())))


def test_matrix_table_has_a_row_per_switch_and_a_column_per_offload() -> None:
    rows = table_rows(markdown.render(read_matrix(sample())))
    assert len(rows) == 2 + 4
    assert all(len(row) == 3 for row in rows)
    assert [row[0].strip() for row in rows[2:]] == [
        "linux-bridge",
        "ovs-kernel",
        "ovs-userspace",
        "ovs-dpdk",
    ]
    assert rows[0][1].strip() == "offload on (tx on, rx on)"


def test_fault_evidence_quotes_the_first_fault_of_each_failing_cell() -> None:
    text = markdown.render(read_matrix(sample()))
    evidence = text.split("## Fault evidence", 1)[1].split("## Notes", 1)[0]
    headings = re.findall(r"^### (.+)$", evidence, flags=re.MULTILINE)
    assert headings == [
        "ovs-userspace, offload on",
        "ovs-dpdk, offload on",
        "ovs-dpdk, offload off",
    ]
    assert "> **FAULT lost-between-taps** at tap `client-port`" in evidence
    assert "_and 3 more: lost-between-taps, syn-unanswered x2_" in evidence


def test_strings_from_the_result_cannot_inject_markup_or_break_the_table() -> None:
    result = sample()
    cell(result, "ovs-dpdk", "off")["reason"] = "<script>alert(1)</script> a|b\nnext line"
    cell(result, "ovs-kernel", "on")["reason"] = "**bold** [link](x) `tick`"
    text = markdown.render(read_matrix(result))
    assert not re.search(r"(?<!\\)<", text), "every < from the result is escaped"
    assert r"\<script>alert(1)\</script> a\|b next line" in text
    assert r"\*\*bold\*\* \[link\](x) \`tick\`" in text
    rows = table_rows(text)
    assert all(len(row) == 3 for row in rows)


def test_error_and_unexpected_cells_show_their_markers() -> None:
    result = sample()
    cell(result, "ovs-dpdk", "on").update(status="error", reason="dpdk init failed", observed=None)
    cell(result, "linux-bridge", "off")["expected"] = None
    rows = table_rows(markdown.render(read_matrix(result)))
    assert rows[5][1].strip() == "⛔ error: dpdk init failed"
    assert rows[2][2].strip() == "✅ HTTP 5/5, 0.94 ms ❔"


def test_without_failures_there_is_no_evidence_section() -> None:
    result = sample()
    result["cells"] = [c for c in result["cells"] if c["offload"] == "off"]
    cell(result, "ovs-dpdk", "off").update(status="skipped", reason="no hugepages", observed=None)
    result["notes"] = ""
    text = markdown.render(read_matrix(result))
    assert "## Fault evidence" not in text and "## Notes" not in text
    assert text.splitlines()[2].startswith("**PASSED**: all 2 cells that ran matched")
