"""Reports of a lab with probes: every probe's figures in the Markdown table, the HTML
charts of throughput, loss and RTT, and a command probe's output in the cell's details."""

from __future__ import annotations

from typing import Any

import pytest

from labctl.core.result import read_matrix
from labctl.reports import html, markdown
from labctl.reports.common import summarize_cell

from .helpers import cell, sample

pytestmark = pytest.mark.unit


def probe(name: str, kind: str, ok: bool = True, **figures: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "target": f"{kind} target", "ok": ok, **figures}


def with_probes() -> dict[str, Any]:
    """The sample with probes in two cells: one where all pass, one where iperf3 failed."""
    result = sample()
    good = cell(result, "linux-bridge", "on")
    good["observed"]["probes"] = [
        probe("http", "http", sent=5, received=5, latency_ms={"min": 1, "median": 1, "max": 2}),
        probe("bulk", "tcp", throughput_mbps=3453.7, retransmits=508, exit_code=0),
        probe(
            "ping6",
            "icmp",
            sent=3,
            received=3,
            loss_percent=0.0,
            rtt_ms={"min": 0.09, "avg": 0.102, "max": 0.113},
        ),
        probe(
            "udp-csum",
            "command",
            exit_code=0,
            output="UdpInCsumErrors=0\nUdpNoPorts=<20>\n",
            target="server: awk /proc/net/snmp",
        ),
    ]
    bad = cell(result, "ovs-userspace", "on")
    bad["observed"]["probes"] = [
        probe("http", "http", False, sent=5, received=0, problems=["5 of 5 requests failed"]),
        probe(
            "bulk",
            "tcp",
            False,
            problems=["iperf3: unable to connect to server: Connection timed out"],
            exit_code=1,
        ),
        probe("ping6", "icmp", sent=3, received=3, loss_percent=0.0),
        probe(
            "udp-csum",
            "command",
            False,
            problems=["output does not match /^UdpInCsumErrors=0$/"],
            exit_code=0,
            output="UdpInCsumErrors=20\n",
        ),
    ]
    return result


def test_cell_text_lists_every_probe_with_its_figures() -> None:
    matrix = read_matrix(with_probes())
    good = matrix.cell("linux-bridge", "on")
    assert good is not None
    assert summarize_cell(good).text == (
        "http 5/5 requests; bulk 3453.7 Mbit/s, 508 retransmits; "
        "ping6 0.0% loss (3/3), rtt 0.102 ms; udp-csum exit 0"
    )
    bad = matrix.cell("ovs-userspace", "on")
    assert bad is not None
    assert summarize_cell(bad).text.startswith("http FAIL 0/5 requests; bulk FAIL; ")


def test_markdown_has_a_probes_table_with_throughput_loss_and_rtt() -> None:
    text = markdown.render(read_matrix(with_probes()))
    section = text.split("## Probes\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section[0] == (
        "| switch | offload | probe | result | throughput | retransmits | loss | RTT / latency |"
    )
    assert "| linux-bridge | on | bulk | pass | 3453.7 Mbit/s | 508 |  |  |" in section
    assert "| linux-bridge | on | ping6 | pass |  |  | 0.0% (3/3) | 0.102 ms (max 0.113) |" in (
        section
    )
    assert (
        "| ovs-userspace | on | bulk | FAIL: iperf3: unable to connect to server: Connection "
        "timed out |  |  |  |  |" in section
    )


def test_markdown_without_probes_has_no_probes_section() -> None:
    assert "## Probes" not in markdown.render(read_matrix(sample()))


def test_html_charts_throughput_loss_and_rtt_and_says_why_a_cell_has_no_bar() -> None:
    page = html.render(read_matrix(with_probes()))
    assert '<section id="probes">' in page
    for caption in (
        "probe bulk: throughput (Mbit/s)",
        "probe ping6: loss (%)",
        "probe ping6: average round trip (ms)",
    ):
        assert f"<title>{caption}</title>" in page
    assert "no result: iperf3: unable to connect to server: Connection timed out" in page
    assert ">3454 Mbit/s<" in page and ">0.102 ms<" in page


def test_html_cell_details_hold_the_command_output_escaped() -> None:
    page = html.render(read_matrix(with_probes()))
    assert "Output of probe udp-csum (server: awk /proc/net/snmp)" in page
    assert "UdpInCsumErrors=0\nUdpNoPorts=&lt;20&gt;\n" in page
    assert "<td>fails: exit 0 (output does not match /^UdpInCsumErrors=0$/)</td>" in page


def test_html_without_probes_has_no_probe_charts() -> None:
    assert '<section id="probes">' not in html.render(read_matrix(sample()))
