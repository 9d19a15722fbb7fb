"""The report page: what each part of it shows, rendered by the templates in templates/.

The templates autoescape every value. What they get as markup is the two drawings
(rendered from their own templates), the lab's Markdown (markdownish.py escapes the
text before it adds its few tags) and the style sheet.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePath
from urllib.parse import quote

from markupsafe import Markup

from labctl.core import ovs_config
from labctl.core.matrix import Expectation
from labctl.core.result import CellResult, FindingRecord, MatrixResult, TapRecord
from labctl.reports.common import (
    ICON_DIFFERS,
    ICON_NO_EXPECTATION,
    LEGEND,
    LEGEND_MATCHED,
    CellSummary,
    cell_anchors,
    describe_expectation,
    describe_expected_findings,
    describe_expected_probes,
    format_ms,
    format_seconds,
    host_versions,
    offload_settings,
    one_line,
    outcome,
    summarize_cell,
)
from labctl.reports.html.chart import chart_svg
from labctl.reports.html.markdownish import markdownish
from labctl.reports.html.probe_chart import probe_charts
from labctl.reports.html.templating import environment
from labctl.reports.html.topology import topology_drawing

MAX_PACKETS = 20  # packet lines listed per finding
ALWAYS_SHOWN_VERDICTS = ("valid", "offload", "unfinished", "wrong")
BAD_VERDICTS = ("unfinished", "wrong")
SWATCHES = (
    ("http-ok", "HTTP works"),
    ("http-failed", "HTTP fails"),
    ("skipped", "skipped"),
    ("error", "error"),
    ("differs", "differs from the expectation"),
)
REASON_LABELS = {"failed": f"{ICON_DIFFERS} Differs", "skipped": "Skipped", "error": "Error"}


def render(matrix: MatrixResult, report_dir: Path | None = None) -> str:
    word, sentence = outcome(matrix)
    anchors = cell_anchors(matrix)
    topology_svg, tap_marks = (
        topology_drawing(matrix.topology, matrix.switch_axis)
        if matrix.topology is not None
        else (Markup(""), [])
    )

    def link(path: str) -> str:
        return link_target(path, report_dir)

    return (
        environment()
        .get_template("page.html.j2")
        .render(
            matrix=matrix,
            title=f"{matrix.lab}: labctl matrix, {word.lower()}",
            css=Markup(css()),
            word=word,
            sentence=sentence,
            badge={"FAILED": "failed", "PASSED": "passed"}.get(word, "nothing"),
            versions=host_versions(matrix),
            run=_run_line(matrix),
            description=markdownish(matrix.description) if matrix.description.strip() else "",
            notes=markdownish(matrix.notes) if matrix.notes.strip() else "",
            contents=_contents(matrix),
            columns=[(name, offload_settings(s)) for name, s in matrix.offload_axis.items()],
            rows=[
                (
                    row.label,
                    [
                        _view(matrix, matrix.cell(row.switch, o, row.ovs_config), anchors)
                        for o in matrix.offload_axis
                    ],
                )
                for row in matrix.row_axis
            ],
            ovs_configs=[
                (name, ovs_config.describe(settings))
                for name, settings in matrix.ovs_configs.items()
            ],
            swatches=SWATCHES,
            legend=LEGEND,
            legend_matched=LEGEND_MATCHED,
            icon_differs=ICON_DIFFERS,
            icon_no_expectation=ICON_NO_EXPECTATION,
            chart=chart_svg(matrix),
            probe_charts=probe_charts(matrix),
            topology_svg=topology_svg,
            tap_marks=tap_marks,
            cells=[_view(matrix, cell, anchors) for cell in matrix.ordered_cells()],
            link=link,
            file_name=lambda path: PurePath(path).name,
            format_seconds=format_seconds,
            one_line=one_line,
            describe_expectation=describe_expectation,
            packet_listing=_packet_listing,
        )
    )


@functools.cache
def css() -> str:
    """The page's style sheet (style.css, a resource of this package)."""
    return resources.files(__package__).joinpath("style.css").read_text(encoding="utf-8").strip()


def link_target(path: str, report_dir: Path | None) -> str:
    """An href for a file of a run: relative to the report directory when given."""
    target = os.path.relpath(path, report_dir) if report_dir is not None else path
    return quote(PurePath(target).as_posix(), safe="/._-~+")


def _run_line(matrix: MatrixResult) -> list[tuple[str, str]]:
    run = []
    if matrix.topology_file:
        run.append(("topology", matrix.topology_file))
    if matrix.started_at:
        run.append(
            ("time", matrix.started_at + (f" to {matrix.ended_at}" if matrix.ended_at else ""))
        )
    if matrix.seconds is not None:
        run.append(("time", format_seconds(matrix.seconds)))
    return run


def _contents(matrix: MatrixResult) -> list[tuple[str, str]]:
    contents = [("matrix", "Matrix"), ("chart", "HTTP chart")]
    if probe_charts(matrix):
        contents.append(("probes", "Probe charts"))
    contents.append(("topology", "Topology"))
    contents.append(("cells", "Cells"))
    if matrix.notes.strip():
        contents.append(("notes", "Notes"))
    return contents


@dataclass(frozen=True)
class TapRow:
    name: str
    counts: list[tuple[int, bool]]  # (count, whether it is bad), frames and packets first
    path: str | None
    off_path: str = ""  # for a tap off the path: what its count says


@dataclass(frozen=True)
class TapTable:
    head: list[str]
    rows: list[TapRow]


@dataclass(frozen=True)
class CellView:
    """A cell as the page shows it."""

    cell: CellResult
    summary: CellSummary
    anchor: str
    classes: str
    reason_label: str
    reason_block: bool  # an error of several lines, shown as written
    comparison: list[tuple[str, str, str]]  # (row, expected, observed)
    outputs: list[tuple[str, str, str]]  # command probes: (name, command, output)
    taps: TapTable | None
    other_pcaps: dict[str, str]  # captures the tap table does not list


def _view(
    matrix: MatrixResult, cell: CellResult | None, anchors: Mapping[int, str]
) -> CellView | None:
    if cell is None:
        return None
    summary = summarize_cell(cell, matrix.merged)
    pcaps = dict(cell.pcaps)
    taps = None
    if cell.diagnosis is not None and cell.diagnosis.taps:
        taps = _tap_table(cell.diagnosis.taps, pcaps)
        listed = {tap.name for tap in cell.diagnosis.taps}
        pcaps = {tap: path for tap, path in pcaps.items() if tap not in listed}
    return CellView(
        cell=cell,
        summary=summary,
        anchor=anchors[id(cell)],
        classes=_cell_classes(cell, summary),
        reason_label=REASON_LABELS.get(cell.status, "Reason"),
        reason_block=cell.status == "error" and "\n" in (cell.reason or "").strip(),
        comparison=_comparison(cell),
        outputs=[
            (p.name, p.target, p.output or "")
            for p in (cell.observed.probes if cell.observed is not None else ())
            if p.kind == "command"
        ],
        taps=taps,
        other_pcaps=pcaps,
    )


def _cell_classes(cell: CellResult, summary: CellSummary) -> str:
    if cell.status == "skipped":
        classes = ["skipped"]
    elif cell.status == "error" or cell.observed is None:
        classes = ["error"]
    else:
        classes = ["http-ok" if cell.observed.traffic_ok else "http-failed"]
    if summary.differs:
        classes.append("differs")
    return " ".join(classes)


def _comparison(cell: CellResult) -> list[tuple[str, str, str]]:
    expected, observed = cell.expected, cell.observed
    if expected is None:
        expected_http = expected_findings = "no expectation"
    else:
        expected_http = {"pass": "works", "fail": "fails", None: "not judged"}[expected.http]
        expected_findings = describe_expected_findings(expected)
    if observed is None:
        observed_http = observed_findings = "not run"
        observed_latency = ""
    else:
        verb = "works" if observed.http_ok else "fails"
        observed_http = f"{verb}: {observed.succeeded} of {observed.requests} requests succeeded"
        observed_findings = ", ".join(observed.findings) or "none"
        latency = observed.latency_ms
        observed_latency = (
            ""
            if latency is None
            else f"min {format_ms(latency.min)} · median {format_ms(latency.median)} · "
            f"max {format_ms(latency.max)}"
        )
    rows = []
    if observed is None or observed.http is not None or expected_http != "not judged":
        rows.append(("HTTP", expected_http, observed_http))
    rows += _probe_rows(cell)
    rows.append(("findings", expected_findings, observed_findings))
    if expected is not None and expected.note:
        rows.append(("note", expected.note, ""))
    if observed_latency:
        rows.append(("latency", "", observed_latency))
    return rows


def _probe_rows(cell: CellResult) -> list[tuple[str, str, str]]:
    """One row per probe other than the HTTP requests: what the lab expects, what it measured."""
    expected = cell.expected.probes if cell.expected is not None else {}
    observed = {p.name: p for p in cell.observed.probes} if cell.observed is not None else {}
    rows = []
    for name in [*observed, *(n for n in expected if n not in observed)]:
        probe = observed.get(name)
        if probe is not None and probe.kind == "http" and cell.observed and cell.observed.http_only:
            continue
        wanted = expected.get(name)
        if wanted is None:
            want = "no expectation" if cell.expected is None else "not judged"
        else:
            want = describe_expected_probes(Expectation(probes={name: wanted}))
            want = want.removeprefix(f"{name} ")
        if probe is None:
            got = "did not run"
        else:
            got = ("passes" if probe.ok else "fails") + (
                f": {probe.summary()}" if probe.summary() else ""
            )
            if probe.problems and not probe.ok:
                got += f" ({'; '.join(probe.problems)})"
        rows.append((f"probe {name}", want, got))
    return rows


def _packet_listing(finding: FindingRecord) -> str:
    packets = [one_line(p) for p in finding.packets[:MAX_PACKETS]]
    if len(finding.packets) > MAX_PACKETS:
        packets.append(f"... {len(finding.packets) - MAX_PACKETS} more")
    return "\n".join(packets)


def _tap_table(taps: list[TapRecord], pcaps: Mapping[str, str]) -> TapTable:
    keys: list[str] = list(ALWAYS_SHOWN_VERDICTS)
    for tap in taps:
        for key, count in tap.verdicts.items():
            if key not in keys and count:
                keys.append(key)
    show_ip = any(tap.ip_header_wrong for tap in taps)
    head = ["tap", "frames", "packets", *keys] + (["IPv4 header wrong"] if show_ip else [])
    head.append("capture")
    rows = []
    for tap in taps:
        # At an isolated tap off the path, any frame is a leak.
        leaked = tap.off_path and bool(tap.isolation) and tap.frames > 0
        counts = [(tap.frames, leaked), (tap.packets, leaked)]
        # Off the path no receiver's check is judged: its verdicts are bare, never "bad".
        counts += [
            (count, key in BAD_VERDICTS and bool(count) and not tap.off_path)
            for key in keys
            for count in [tap.verdicts.get(key, 0)]
        ]
        if show_ip:
            counts.append((tap.ip_header_wrong, bool(tap.ip_header_wrong)))
        meaning = f"off the path: {tap.off_path_meaning()}" if tap.off_path else ""
        rows.append(TapRow(tap.name, counts, pcaps.get(tap.name) or tap.pcap or None, meaning))
    return TapTable(head, rows)
