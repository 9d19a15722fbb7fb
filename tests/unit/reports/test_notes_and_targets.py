"""A lab's note on an expectation, and offload settings that target nodes, in every report."""

from __future__ import annotations

import pytest

from labctl.core.result import read_matrix
from labctl.reports import html, junit, markdown

from .helpers import cell, sample

pytestmark = pytest.mark.unit

NOTE = "The seed's observation: SYN/ACK right at taps 1 and 2, unfinished at tap 3."


def with_note_and_targets() -> dict[str, object]:
    result = sample()
    cell(result, "ovs-userspace", "on")["expected"]["note"] = NOTE
    result["offloads"]["on"] = {"client": {"tx": False, "rx": False}, "server": {"tx": True}}
    return result


def test_markdown_shows_the_note_and_the_targets() -> None:
    text = markdown.render(read_matrix(with_note_and_targets()))
    section = text.split("### ovs-userspace, offload on", 1)[1].split("###", 1)[0]
    assert f"Note: {markdown.escape(NOTE)}" in section
    assert "offload on (client: tx off, rx off; server: tx on)" in text


def test_junit_and_html_show_the_note() -> None:
    result = with_note_and_targets()
    assert f"note: {NOTE}" in junit.render(read_matrix(result))
    page = html.render(read_matrix(result))
    assert "The seed&#39;s observation" in page or "The seed's observation" in page
    assert "client: tx off, rx off; server: tx on" in page
