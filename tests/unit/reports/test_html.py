"""The HTML report: structure read back with html.parser, self-containment, escaping."""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from labctl.core.result import read_matrix
from labctl.reports import html

from .helpers import RUN_ROOT, assert_golden, cell, sample

pytestmark = pytest.mark.unit

VOID = {"meta", "br", "hr", "img", "input", "link", "source", "wbr", "col", "area", "base"}
EXTERNAL_TAGS = {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parents: tuple[str, ...]
    classes: tuple[str, ...] = ()


class Page(HTMLParser):
    """Every element with its attributes and ancestors; end tags checked against the stack."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[str] = []
        self.unbalanced: list[str] = []
        self.text_in: dict[str, list[str]] = {}

    def _element(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        classes = tuple(values.get("class", "").split())
        self.elements.append(Element(tag, values, tuple(self.stack), classes))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._element(tag, attrs)  # SVG's <rect .../>: opened and closed at once

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.unbalanced.append(tag)
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.text_in.setdefault(self.stack[-1], []).append(data)

    def find(self, tag: str, cls: str | None = None, inside: str | None = None) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag
            and (cls is None or cls in e.classes)
            and (inside is None or inside in e.parents)
        ]


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def report(result: dict[str, Any] | None = None, report_dir: Path | None = None) -> str:
    return html.render(read_matrix(result if result is not None else sample()), report_dir)


def matrix_cells(page: Page) -> list[Element]:
    return [e for e in page.find("td") if "cell" in e.classes]


def test_sample_report_is_exactly_the_golden_page() -> None:
    assert_golden("matrix.html", report(report_dir=Path(RUN_ROOT)))


def test_tags_are_balanced_and_ids_unique() -> None:
    page = parse(report())
    assert page.unbalanced == []
    assert page.stack == []
    ids = [e.attrs["id"] for e in page.elements if "id" in e.attrs]
    assert len(ids) == len(set(ids))


def test_matrix_table_has_one_colour_coded_cell_per_switch_and_offload() -> None:
    page = parse(report())
    cells = matrix_cells(page)
    assert len(cells) == 4 * 2
    kinds = [next(c for c in e.classes if c != "cell") for e in cells]
    assert kinds == [
        "http-ok",
        "http-ok",
        "skipped",
        "skipped",
        "http-failed",
        "http-ok",
        "http-failed",
        "http-failed",
    ]
    assert [e for e in cells if "differs" in e.classes] == [cells[-1]]
    row_headers = [e for e in page.find("th") if e.attrs.get("scope") == "row"]
    assert len(row_headers) >= 4


def test_every_matrix_cell_links_to_its_details_and_every_anchor_resolves() -> None:
    text = report()
    page = parse(text)
    ids = {e.attrs["id"] for e in page.elements if "id" in e.attrs}
    local = [e.attrs["href"] for e in page.find("a") if e.attrs.get("href", "").startswith("#")]
    assert local and all(href[1:] in ids for href in local)
    cell_links = [
        e.attrs["href"] for e in page.find("a", inside="td") if "#cell-" in e.attrs["href"]
    ]
    assert len(cell_links) == 8 and len(set(cell_links)) == 8
    details = page.find("section", cls="cell-details")
    assert {"#" + e.attrs["id"] for e in details} == set(cell_links)


def test_two_inline_svgs_a_chart_and_a_topology() -> None:
    page = parse(report())
    svgs = page.find("svg")
    assert [e.attrs["class"] for e in svgs] == ["chart", "topology"]
    assert all("viewBox" in e.attrs or "viewbox" in e.attrs for e in svgs)
    # Six cells ran: six bars; four had successful requests: four latency dots.
    assert len(page.find("g", cls="bar")) == 6
    assert len(page.find("g", cls="latency")) == 4
    assert len(page.find("g", cls="differs-bar")) == 1
    text = report()
    assert "HTTP requests succeeded (%)" in text and "median latency (ms)" in text


def test_topology_draws_nodes_switch_links_and_numbered_taps() -> None:
    page = parse(report())
    assert len(page.find("rect", cls="node")) == 2
    assert len(page.find("rect", cls="switch")) == 1
    assert len(page.find("line", cls="link")) == 2
    taps = page.find("g", cls="tap")
    assert len(taps) == 3
    legend = page.find("span", cls="tap-marker")
    assert len(legend) == 3
    text = report()
    for words in (
        "server-eth0</strong> inside node server, on eth0",
        "server-host</strong> on the host end of the veth of server:eth0",
        "client-port</strong> on switch port cli",
    ):
        assert words in text


def test_nothing_is_loaded_from_anywhere() -> None:
    text = report()
    page = parse(text)
    assert "<script" not in text.lower()
    assert "http://" not in text and "https://" not in text
    assert not [e for e in page.elements if e.tag in EXTERNAL_TAGS]
    assert not [e for e in page.elements if "src" in e.attrs or "srcset" in e.attrs]
    style = "".join(page.text_in.get("style", []))
    assert style and "url(" not in style and "@import" not in style
    hrefs = [e.attrs["href"] for e in page.find("a")]
    assert not [h for h in hrefs if re.match(r"^[a-z][a-z0-9+.-]*:|^//", h, re.IGNORECASE)]


def pcap_hrefs(page: Page) -> list[str]:
    return [e.attrs["href"] for e in page.find("a") if e.attrs["href"].endswith(".pcap")]


def test_pcap_links_are_relative_to_the_report_directory() -> None:
    page = parse(report(report_dir=Path(RUN_ROOT)))
    hrefs = pcap_hrefs(page)
    expected = {
        f"{c['switch']}-{c['offload']}/{tap}.pcap"
        for c in sample()["cells"]
        if c["pcaps"]
        for tap in c["pcaps"]
    }
    assert set(hrefs) == expected and len(expected) == 6 * 3
    files = [e.attrs["href"] for e in page.find("a") if not e.attrs["href"].startswith("#")]
    assert "ovs-dpdk-off" in files  # the cell's run directory
    assert not [f for f in files if f.startswith(("/", "..")) or ":" in f]


def test_pcap_links_climb_out_of_a_sibling_report_directory() -> None:
    hrefs = pcap_hrefs(parse(report(report_dir=Path("reports/veth-checksum"))))
    assert hrefs and all(h.startswith(f"../../{RUN_ROOT}/") for h in hrefs)


def test_pcap_links_without_a_report_directory_are_the_paths_given() -> None:
    hrefs = pcap_hrefs(parse(report()))
    assert f"{RUN_ROOT}/ovs-dpdk-off/server-host.pcap" in hrefs


def test_paths_are_url_quoted() -> None:
    assert html.link_target("runs/a b/#1?.pcap", Path("runs")) == "a%20b/%231%3F.pcap"
    assert html.link_target("javascript:alert(1)", None) == "javascript%3Aalert%281%29"


def test_strings_from_the_result_are_escaped_everywhere() -> None:
    result = sample()
    evil = "<script>alert('x')</script> & \"quoted\""
    result["lab"] = evil
    result["notes"] = f"- {evil}\n- `{evil}`"
    result["description"] = evil
    result["host"]["os"] = evil
    failed = cell(result, "ovs-dpdk", "off")
    failed["reason"] = evil
    failed["diagnosis"]["findings"][0]["message"] = evil
    failed["diagnosis"]["findings"][0]["packets"] = [evil]
    failed["diagnosis"]["verdict"] = evil
    failed["pcaps"]["server-host"] = f"{RUN_ROOT}/<b>.pcap"
    result["topology"]["nodes"]["client"]["interfaces"]["eth0"]["ipv4"] = "<i>10.0.0.1/24"
    result["topology"]["taps"][0]["name"] = evil
    text = report(result)
    assert "<script" not in text.lower()
    assert "<b>" not in text and "<i>" not in text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;quoted&#34;" in text
    page = parse(text)
    assert page.unbalanced == []
    titles = [e.attrs["title"] for e in page.find("a") if "title" in e.attrs]
    assert evil in titles


def test_error_and_unexpected_cells() -> None:
    result = sample()
    cell(result, "ovs-dpdk", "on").update(
        status="error",
        reason="ovs-vswitchd did not start\nEAL: cannot get hugepages",
        observed=None,
        diagnosis=None,
    )
    cell(result, "linux-bridge", "off")["expected"] = None
    text = report(result)
    page = parse(text)
    assert "error" in matrix_cells(page)[6].classes
    assert '<pre class="reason">ovs-vswitchd did not start\nEAL: cannot get hugepages</pre>' in text
    assert "❔ no expectation" in text
    assert len(page.find("g", cls="bar")) == 5


def test_other_topologies_draw_too() -> None:
    result = sample()
    result["topology"] = {
        "name": "pair",
        "nodes": {
            "a": {"interfaces": {"eth0": {"ipv4": "10.1.0.1/24"}, "eth1": {}}},
            "b": {"interfaces": {"eth0": {"ipv4": "10.1.0.2/24"}}},
            "c": {"interfaces": {"eth0": {}}},
        },
        "switch": None,
        "links": [{"a": "a:eth0", "b": "b:eth0"}, {"a": "a:eth1", "b": "c:eth0"}],
        "taps": [
            {"name": "in-a", "node": "a:eth0"},
            {"name": "nowhere", "switch_port": "p9"},
        ],
    }
    page = parse(report(result))
    assert page.unbalanced == []
    assert len(page.find("rect", cls="node")) == 3
    assert page.find("rect", cls="switch") == []
    assert len(page.find("polyline", cls="link")) == 2
    assert len(page.find("g", cls="tap")) == 1
    assert "(not drawn: no such place in the drawing)" in report(result)


def test_without_a_topology_the_page_says_so() -> None:
    result = sample()
    del result["topology"]
    text = report(result)
    assert "The result holds no topology to draw." in text
    assert len(parse(text).find("svg")) == 1


def test_chart_latency_axis_has_a_round_maximum() -> None:
    svg = html.chart_svg(read_matrix(sample()))
    ticks = re.findall(r'class="tick" text-anchor="start">([0-9.]+)<', svg)
    assert ticks == ["0", "1", "2", "3", "4", "5"]
