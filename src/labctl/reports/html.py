"""A matrix result as one self-contained HTML page.

Everything is inline: CSS in a <style>, the chart and the topology drawing as
<svg>, no script, no font, no image, no stylesheet from anywhere. So the page
opens from a zip of the report directory on any machine, offline, and prints.
Every string from the result goes through `escape`; links to captures are
relative to `report_dir` when it is given, so the report directory can be
zipped together with the runs it points into.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape as _escape
from pathlib import Path, PurePath
from urllib.parse import quote

from labctl.core.model import Interface, Topology
from labctl.core.result import CellResult, FindingRecord, MatrixResult, TapRecord
from labctl.core.validate import parse_endpoint
from labctl.reports.common import (
    ICON_DIFFERS,
    ICON_NO_EXPECTATION,
    LEGEND,
    LEGEND_MATCHED,
    CellSummary,
    cell_anchors,
    describe_expectation,
    describe_expected_findings,
    format_ms,
    format_seconds,
    host_versions,
    offload_settings,
    one_line,
    outcome,
    summarize_cell,
)

MAX_PACKETS = 20  # packet lines listed per finding
ALWAYS_SHOWN_VERDICTS = ("valid", "offload", "unfinished", "wrong")
BAD_VERDICTS = ("unfinished", "wrong")
OFFLOAD_COLOURS = ("#4e79a7", "#f28e2b", "#76b7b2", "#9c755f", "#b07aa1", "#8c8c3a")


def render(matrix: MatrixResult, report_dir: Path | None = None) -> str:
    anchors = cell_anchors(matrix)
    word, _ = outcome(matrix)
    title = f"{matrix.lab}: labctl matrix, {word.lower()}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        "<main>",
        _header(matrix),
        _matrix_section(matrix, anchors),
        _chart_section(matrix),
        _topology_section(matrix),
        _cells_section(matrix, anchors, report_dir),
        _notes_section(matrix),
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def escape(text: str) -> str:
    return _escape(text, quote=True)


def link_target(path: str, report_dir: Path | None) -> str:
    """An href for a file of a run: relative to the report directory when given."""
    target = os.path.relpath(path, report_dir) if report_dir is not None else path
    return quote(PurePath(target).as_posix(), safe="/._-~+")


# --------------------------------------------------------------------------
# Header, matrix, notes


def _header(matrix: MatrixResult) -> str:
    word, sentence = outcome(matrix)
    badge = {"FAILED": "failed", "PASSED": "passed"}.get(word, "nothing")
    lines = [
        "<header>",
        '<p class="kicker">labctl matrix report</p>',
        f'<h1>{escape(matrix.lab)} <span class="badge {badge}">{escape(word)}</span></h1>',
        f'<p class="outcome">{escape(sentence)}</p>',
    ]
    versions = host_versions(matrix)
    if versions:
        items = "".join(f"<li>{escape(v)}</li>" for v in versions)
        lines.append(f'<ul class="host" aria-label="host versions">{items}</ul>')
    run = []
    if matrix.topology_file:
        run.append(f"topology <code>{escape(matrix.topology_file)}</code>")
    if matrix.started_at:
        span = matrix.started_at + (f" to {matrix.ended_at}" if matrix.ended_at else "")
        run.append(escape(span))
    if matrix.seconds is not None:
        run.append(escape(format_seconds(matrix.seconds)))
    if run:
        lines.append(f'<p class="run">{" · ".join(run)}</p>')
    if matrix.description.strip():
        lines.append(f'<div class="description">{markdownish(matrix.description)}</div>')
    contents = [("matrix", "Matrix"), ("chart", "HTTP chart"), ("topology", "Topology")]
    contents.append(("cells", "Cells"))
    if matrix.notes.strip():
        contents.append(("notes", "Notes"))
    links = " · ".join(f'<a href="#{anchor}">{text}</a>' for anchor, text in contents)
    lines += [f'<nav class="contents">{links}</nav>', "</header>"]
    return "\n".join(lines)


def _cell_classes(cell: CellResult, summary: CellSummary) -> str:
    if cell.status == "skipped":
        classes = ["skipped"]
    elif cell.status == "error" or cell.observed is None:
        classes = ["error"]
    else:
        classes = ["http-ok" if cell.observed.http_ok else "http-failed"]
    if summary.differs:
        classes.append("differs")
    return " ".join(classes)


def _judgement(cell: CellResult, summary: CellSummary) -> str:
    if summary.differs:
        return f'<span class="flag differs">{ICON_DIFFERS} differs</span>'
    if summary.unchecked:
        return f'<span class="flag unchecked">{ICON_NO_EXPECTATION} no expectation</span>'
    if cell.status != "passed":
        return ""
    return '<span class="flag matched">as expected</span>'


def _matrix_section(matrix: MatrixResult, anchors: Mapping[int, str]) -> str:
    head = ['<th scope="col">switch</th>']
    for name, settings in matrix.offload_axis.items():
        described = offload_settings(settings)
        small = f"<small>{escape(described)}</small>" if described else ""
        head.append(f'<th scope="col">offload {escape(name)}{small}</th>')
    rows = []
    for switch in matrix.switch_axis:
        row = [f'<th scope="row">{escape(switch)}</th>']
        for offload in matrix.offload_axis:
            cell = matrix.cell(switch, offload)
            if cell is None:
                row.append('<td class="cell missing">not in this run</td>')
                continue
            summary = summarize_cell(cell, matrix.merged)
            tooltip = f' title="{escape(summary.reason)}"' if summary.reason else ""
            row.append(
                f'<td class="cell {_cell_classes(cell, summary)}">'
                f'<a href="#{anchors[id(cell)]}"{tooltip}>'
                f'<span class="icon">{summary.icon}</span> {escape(summary.text)}'
                f"{_judgement(cell, summary)}</a></td>"
            )
        rows.append("<tr>" + "".join(row) + "</tr>")
    legend = "".join(
        f'<li><span class="icon">{icon}</span> {escape(text)}</li>' for icon, text in LEGEND
    )
    swatches = (
        '<li><span class="swatch http-ok"></span> HTTP works</li>'
        '<li><span class="swatch http-failed"></span> HTTP fails</li>'
        '<li><span class="swatch skipped"></span> skipped</li>'
        '<li><span class="swatch error"></span> error</li>'
        '<li><span class="swatch differs"></span> differs from the expectation</li>'
    )
    return "\n".join(
        [
            '<section id="matrix">',
            "<h2>Matrix</h2>",
            '<table class="matrix">',
            "<thead><tr>" + "".join(head) + "</tr></thead>",
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            f'<ul class="legend">{swatches}</ul>',
            f'<ul class="legend">{legend}</ul>',
            f'<p class="legend-note">{escape(LEGEND_MATCHED)} Each cell links to its details.</p>',
            "</section>",
        ]
    )


def _notes_section(matrix: MatrixResult) -> str:
    if not matrix.notes.strip():
        return ""
    return f'<section id="notes">\n<h2>Notes</h2>\n{markdownish(matrix.notes)}\n</section>'


def markdownish(text: str) -> str:
    """The little Markdown a lab's notes use: paragraphs, "- " lists, `code`,
    **bold**, fenced code. Escaped first, so nothing in it becomes markup of its own."""
    blocks: list[str] = []
    lines = text.strip().splitlines()
    index = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    while index < len(lines):
        line = lines[index].rstrip()
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
            index += 1
            while index < len(lines) and not lines[index].strip().startswith("```"):
                code.append(lines[index])
                index += 1
            blocks.append(f"<pre>{escape(chr(10).join(code))}</pre>")
        elif re.match(r"^([-*]|\d+[.)])\s+", stripped):
            flush()
            ordered = bool(re.match(r"^\d", stripped))
            items: list[str] = []
            while index < len(lines) and lines[index].strip():
                current = lines[index].strip()
                marker = re.match(r"^([-*]|\d+[.)])\s+", current)
                if marker:
                    items.append(current[marker.end() :])
                elif items:
                    items[-1] += " " + current
                index += 1
            tag = "ol" if ordered else "ul"
            body = "".join(f"<li>{_inline(item)}</li>" for item in items)
            blocks.append(f"<{tag}>{body}</{tag}>")
            continue
        elif stripped.startswith("#"):
            flush()
            blocks.append(f"<h3>{_inline(stripped.lstrip('#').strip())}</h3>")
        elif not stripped:
            flush()
        else:
            paragraph.append(stripped)
        index += 1
    flush()
    return "\n".join(blocks)


def _inline(text: str) -> str:
    pieces = re.split(r"(`[^`]+`)", text)
    out = []
    for piece in pieces:
        if len(piece) > 1 and piece.startswith("`") and piece.endswith("`"):
            out.append(f"<code>{escape(piece[1:-1])}</code>")
        else:
            escaped = escape(piece)
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))
    return "".join(out)


# --------------------------------------------------------------------------
# Cell details


def _cells_section(
    matrix: MatrixResult, anchors: Mapping[int, str], report_dir: Path | None
) -> str:
    sections = [
        _cell_details(cell, anchors[id(cell)], report_dir, matrix.merged)
        for cell in matrix.ordered_cells()
    ]
    return "\n".join(['<section id="cells">', "<h2>Cells</h2>", *sections, "</section>"])


def _cell_details(cell: CellResult, anchor: str, report_dir: Path | None, merged: bool) -> str:
    summary = summarize_cell(cell, merged)
    took = (
        f' <span class="took">{escape(format_seconds(cell.seconds))}</span>' if cell.seconds else ""
    )
    lines = [
        f'<section class="cell-details {_cell_classes(cell, summary)}" id="{anchor}">',
        f'<h3><span class="icon">{summary.icon}</span> {escape(cell.title)} '
        f'<span class="status {cell.status}">{cell.status}</span>{took}</h3>',
    ]
    if cell.reason:
        label = {
            "failed": f"{ICON_DIFFERS} Differs",
            "skipped": "Skipped",
            "error": "Error",
        }.get(cell.status, "Reason")
        if cell.status == "error" and "\n" in cell.reason.strip():
            lines.append(f'<p class="reason"><strong>{label}:</strong></p>')
            lines.append(f'<pre class="reason">{escape(cell.reason.strip())}</pre>')
        else:
            lines.append(
                f'<p class="reason"><strong>{label}:</strong> {escape(one_line(cell.reason))}</p>'
            )
    if cell.status == "passed":
        judged = "no expectation for this cell" if cell.expected is None else "as expected"
        lines.append(f'<p class="reason">Observation: {judged}.</p>')
    lines.append(_comparison(cell))
    verdict = cell.verdict
    if verdict:
        lines.append(
            f'<p class="verdict-label">Diagnosis</p><pre class="verdict">{escape(verdict)}</pre>'
        )
    if cell.diagnosis is not None and cell.diagnosis.findings:
        lines.append(_findings(cell.diagnosis.findings))
    pcaps = dict(cell.pcaps)
    if cell.diagnosis is not None and cell.diagnosis.taps:
        lines.append(_tap_table(cell.diagnosis.taps, pcaps, report_dir))
        listed = {tap.name for tap in cell.diagnosis.taps}
        pcaps = {tap: path for tap, path in pcaps.items() if tap not in listed}
    if pcaps:
        items = "".join(
            f'<li>{escape(tap)}: <a href="{escape(link_target(path, report_dir))}">'
            f"{escape(PurePath(path).name)}</a></li>"
            for tap, path in pcaps.items()
        )
        lines.append(f'<h4>Captures</h4><ul class="pcaps">{items}</ul>')
    if cell.run_dir:
        href = escape(link_target(cell.run_dir, report_dir))
        lines.append(
            f'<p class="run-dir">Run directory: <a href="{href}">{escape(cell.run_dir)}</a></p>'
        )
    lines += ['<p class="back"><a href="#matrix">back to the matrix</a></p>', "</section>"]
    return "\n".join(lines)


def _comparison(cell: CellResult) -> str:
    expected, observed = cell.expected, cell.observed
    rows = []
    if expected is None:
        expected_http = expected_findings = "no expectation"
    else:
        expected_http = {"pass": "works", "fail": "fails"}[expected.http]
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
    rows.append(("HTTP", expected_http, observed_http))
    rows.append(("findings", expected_findings, observed_findings))
    if expected is not None and expected.note:
        rows.append(("note", expected.note, ""))
    if observed_latency:
        rows.append(("latency", "", observed_latency))
    body = "".join(
        f'<tr><th scope="row">{name}</th><td>{escape(want)}</td><td>{escape(got)}</td></tr>'
        for name, want, got in rows
    )
    caption = escape(describe_expectation(expected))
    return (
        f'<table class="compare" aria-label="expected: {caption}">'
        '<thead><tr><th></th><th scope="col">expected</th><th scope="col">observed</th></tr>'
        f"</thead><tbody>{body}</tbody></table>"
    )


def _findings(findings: Sequence[FindingRecord]) -> str:
    items = []
    for finding in findings:
        severity = finding.severity.lower()
        head = (
            f'<span class="severity {escape(severity)}">{escape(finding.severity.upper())}</span> '
            f"<strong>{escape(finding.kind)}</strong>"
        )
        if finding.tap:
            head += f" at tap <code>{escape(finding.tap)}</code>"
        if finding.flow:
            head += f', <span class="flow">{escape(finding.flow)}</span>'
        packets = [one_line(p) for p in finding.packets[:MAX_PACKETS]]
        if len(finding.packets) > MAX_PACKETS:
            packets.append(f"... {len(finding.packets) - MAX_PACKETS} more")
        listing = f"<pre>{escape(chr(10).join(packets))}</pre>" if packets else ""
        items.append(f"<li>{head}<p>{escape(finding.message)}</p>{listing}</li>")
    return f'<h4>Findings ({len(findings)})</h4><ol class="findings">{"".join(items)}</ol>'


def _tap_table(taps: Sequence[TapRecord], pcaps: Mapping[str, str], report_dir: Path | None) -> str:
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
        verdicts = dict(tap.verdicts)
        cells = [f'<th scope="row">{escape(tap.name)}</th>']
        cells += [f'<td class="num">{tap.frames}</td>', f'<td class="num">{tap.packets}</td>']
        for key in keys:
            count = verdicts.get(key, 0)
            bad = " bad" if key in BAD_VERDICTS and count else ""
            cells.append(f'<td class="num{bad}">{count}</td>')
        if show_ip:
            bad = " bad" if tap.ip_header_wrong else ""
            cells.append(f'<td class="num{bad}">{tap.ip_header_wrong}</td>')
        path = pcaps.get(tap.name) or tap.pcap
        if path:
            href = escape(link_target(path, report_dir))
            cells.append(f'<td><a href="{href}">{escape(PurePath(path).name)}</a></td>')
        else:
            cells.append("<td></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    header = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    return (
        '<h4>Taps</h4><div class="scroll"><table class="taps">'
        f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="hint">Checksum verdicts per tap: offload = unfinished where TX offload '
        "leaves it (normal); accepted = unfinished or wrong, yet the peer acknowledged it; "
        "unfinished and wrong are checksums a receiver drops or nothing proves it took.</p>"
    )


# --------------------------------------------------------------------------
# SVG helpers


def _n(value: float) -> str:
    """A coordinate, short and stable."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _fit(text: str, width: float, size: float) -> str:
    """`text` cut to about `width` pixels at font `size` (no measuring without a browser)."""
    limit = max(3, int(width / (size * 0.6)))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(x: float, y: float, text: str, cls: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" class="{cls}" text-anchor="{anchor}"{extra}>'
        f"{escape(text)}</text>"
    )


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above `value` (an axis maximum)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for mantissa in (1.0, 2.0, 5.0, 10.0):
        candidate = mantissa * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)


def _tick(value: float) -> str:
    return f"{value:.6g}"


# --------------------------------------------------------------------------
# Chart: success rate (bars, left axis) and median latency (dots, right axis)


def _chart_section(matrix: MatrixResult) -> str:
    return "\n".join(
        [
            '<section id="chart">',
            "<h2>HTTP success and latency</h2>",
            f"<figure>{chart_svg(matrix)}",
            "<figcaption>Bars: share of HTTP requests that succeeded (left axis). Dots: median "
            "latency of the requests that succeeded (right axis). Skipped cells and cells "
            "that did not run have no bar.</figcaption></figure>",
            "</section>",
        ]
    )


def chart_svg(matrix: MatrixResult) -> str:
    width, height = 960, 330
    left, right, top, bottom = 80.0, 880.0, 70.0, 270.0
    plot_height = bottom - top
    offloads = list(matrix.offload_axis)
    medians = [
        c.observed.latency_ms.median
        for c in matrix.cells
        if c.observed is not None and c.observed.latency_ms is not None
    ]
    latency_max = _nice_ceiling(max(medians) * 1.1) if medians else 1.0
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="chart-title">',
        '<title id="chart-title">Share of HTTP requests that succeeded and median latency, '
        "per switch kind and offload setting</title>",
    ]
    out += _chart_legend(matrix, left)
    for step in range(6):
        fraction = step / 5
        y = bottom - fraction * plot_height
        out.append(
            f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(right)}" y2="{_n(y)}" class="grid"/>'
        )
        out.append(_text(left - 8, y + 4, f"{round(fraction * 100)}%", "tick", "end"))
        out.append(_text(right + 8, y + 4, _tick(fraction * latency_max), "tick"))
    out.append(
        f'<line x1="{_n(left)}" y1="{_n(top)}" x2="{_n(left)}" y2="{_n(bottom)}" class="axis"/>'
    )
    out.append(
        f'<line x1="{_n(right)}" y1="{_n(top)}" x2="{_n(right)}" y2="{_n(bottom)}" class="axis"/>'
    )
    out.append(
        f'<line x1="{_n(left)}" y1="{_n(bottom)}" x2="{_n(right)}" y2="{_n(bottom)}" class="axis"/>'
    )
    middle = (top + bottom) / 2
    out.append(
        _text(
            22,
            middle,
            "HTTP requests succeeded (%)",
            "axis-label",
            "middle",
            f' transform="rotate(-90 22 {_n(middle)})"',
        )
    )
    out.append(
        _text(
            940,
            middle,
            "median latency (ms)",
            "axis-label",
            "middle",
            f' transform="rotate(90 940 {_n(middle)})"',
        )
    )
    groups = max(1, len(matrix.switch_axis))
    group_width = (right - left) / groups
    gap = 10.0
    bar_width = min(56.0, (group_width * 0.75 - gap * (len(offloads) - 1)) / max(1, len(offloads)))
    dots: list[str] = []  # drawn after every bar, so no bar hides a latency label
    for group, switch in enumerate(matrix.switch_axis):
        centre = left + group_width * (group + 0.5)
        out.append(_text(centre, bottom + 42, _fit(switch, group_width - 8, 13), "group", "middle"))
        for index, offload in enumerate(offloads):
            x = centre + (index - (len(offloads) - 1) / 2) * (bar_width + gap) - bar_width / 2
            colour = OFFLOAD_COLOURS[index % len(OFFLOAD_COLOURS)]
            label = _fit(offload, bar_width + gap, 11)
            out.append(_text(x + bar_width / 2, bottom + 18, label, "tick", "middle"))
            cell = matrix.cell(switch, offload)
            out += _bar(cell, x, bar_width, colour, top, bottom)
            dots += _latency_dot(cell, x + bar_width / 2, top, bottom, latency_max)
    out += dots
    out.append("</svg>")
    return "\n".join(out)


def _chart_legend(matrix: MatrixResult, left: float) -> list[str]:
    out = []
    x = left
    for index, (name, settings) in enumerate(matrix.offload_axis.items()):
        colour = OFFLOAD_COLOURS[index % len(OFFLOAD_COLOURS)]
        described = offload_settings(settings)
        label = f"offload {name}" + (f" ({described})" if described else "")
        out.append(f'<rect x="{_n(x)}" y="20" width="14" height="14" fill="{colour}"/>')
        out.append(_text(x + 20, 32, label, "legend"))
        x += 28 + len(label) * 7.2
    out.append(f'<circle cx="{_n(x + 7)}" cy="27" r="5" class="dot"/>')
    out.append(_text(x + 18, 32, "median latency", "legend"))
    x += 140
    out.append(f'<rect x="{_n(x)}" y="20" width="14" height="14" class="differs-box"/>')
    out.append(_text(x + 20, 32, "differs from the expectation", "legend"))
    return out


def _bar(
    cell: CellResult | None,
    x: float,
    width: float,
    colour: str,
    top: float,
    bottom: float,
) -> list[str]:
    centre = x + width / 2
    if cell is None or cell.observed is None or cell.observed.success_rate is None:
        word = "not run" if cell is None else cell.status if cell.status != "passed" else "no data"
        cls = "no-bar error" if cell is not None and cell.status == "error" else "no-bar"
        return [
            _text(
                centre + 4,
                bottom - 8,
                word,
                cls,
                "start",
                f' transform="rotate(-90 {_n(centre + 4)} {_n(bottom - 8)})"',
            )
        ]
    observed = cell.observed
    rate = observed.success_rate or 0.0
    height = rate * (bottom - top)
    y = bottom - height
    tooltip = f"{cell.title}: {observed.succeeded} of {observed.requests} requests succeeded"
    if observed.latency_ms is not None:
        tooltip += f", median {format_ms(observed.latency_ms.median)}"
    differs = " differs-bar" if cell.differs else ""
    out = [
        f'<g class="bar{differs}"><title>{escape(tooltip)}</title>',
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(width)}" height="{_n(max(height, 2))}" '
        f'fill="{colour}"/>',
    ]
    if cell.differs:
        out.append(
            f'<rect x="{_n(x - 3)}" y="{_n(y - 3)}" width="{_n(width + 6)}" '
            f'height="{_n(max(height, 2) + 6)}" class="differs-box"/>'
        )
    label_class = "bar-label" if rate > 0 else "bar-label zero"
    out.append(_text(centre, y - 8, f"{round(rate * 100)}%", label_class, "middle"))
    out.append("</g>")
    return out


def _latency_dot(
    cell: CellResult | None, centre: float, top: float, bottom: float, latency_max: float
) -> list[str]:
    if cell is None or cell.observed is None or cell.observed.latency_ms is None:
        return []
    median = cell.observed.latency_ms.median
    y = bottom - min(median / latency_max, 1.0) * (bottom - top)
    return [
        f'<g class="latency"><title>{escape(f"{cell.title}: median latency {format_ms(median)}")}'
        f'</title><circle cx="{_n(centre)}" cy="{_n(y)}" r="5" class="dot"/>'
        f"{_text(centre + 9, y + 4, format_ms(median), 'dot-label')}</g>"
    ]


# --------------------------------------------------------------------------
# Topology drawing


NODE_WIDTH = 230.0
LEFT_X = 20.0
RIGHT_X = 710.0
SWITCH_X = 390.0
SWITCH_WIDTH = 180.0
ROW = 20.0


@dataclass
class _NodeBox:
    name: str
    x: float
    y: float
    interfaces: list[tuple[str, str]]  # (ifname, addresses)
    role: str
    side: str  # "left" | "right"

    @property
    def height(self) -> float:
        return 48 + ROW * max(1, len(self.interfaces)) + (14 if self.role else 0)

    def row_y(self, ifname: str) -> float:
        names = [name for name, _ in self.interfaces]
        index = names.index(ifname) if ifname in names else 0
        return self.y + 44 + (14 if self.role else 0) + ROW * index

    @property
    def inner_edge(self) -> float:
        """The x of the side that faces the switch."""
        return self.x + NODE_WIDTH if self.side == "left" else self.x


@dataclass
class _Drawing:
    nodes: dict[str, _NodeBox] = field(default_factory=dict)
    # (node, ifname, switch port)
    switch_links: list[tuple[str, str, str]] = field(default_factory=list)
    # (node a, if a, node b, if b)
    node_links: list[tuple[str, str, str, str]] = field(default_factory=list)


def _addresses(interface: Interface) -> str:
    return " ".join(v for v in (interface.ipv4, interface.ipv6) if v)


def _layout(topology: Topology) -> _Drawing:
    drawing = _Drawing()
    nodes = topology.nodes
    for link in topology.links:
        a, b = parse_endpoint(link.a), parse_endpoint(link.b)
        if a is None or b is None or a.node not in nodes:
            continue
        if b.node == "switch":
            drawing.switch_links.append((a.node, a.name, b.name))
        elif b.node in nodes:
            drawing.node_links.append((a.node, a.name, b.node, b.name))
    traffic = topology.traffic
    roles: dict[str, str] = {}
    if traffic is not None:
        roles[traffic.client] = "HTTP client"
        roles[traffic.server] = f"HTTP server :{traffic.port}"
    order: list[str] = []
    for node, _, _ in drawing.switch_links:
        if node not in order:
            order.append(node)
    sides: dict[str, str] = {
        name: "left" if i % 2 == 0 else "right" for i, name in enumerate(order)
    }
    for name in nodes:
        if name not in sides:
            lefts = sum(1 for side in sides.values() if side == "left")
            sides[name] = "left" if lefts <= len(sides) - lefts else "right"
            order.append(name)
    next_y = {"left": 20.0, "right": 20.0}
    for name in order:
        interfaces = [
            (ifname, _addresses(interface)) for ifname, interface in nodes[name].interfaces.items()
        ]
        side = sides[name]
        box = _NodeBox(
            name,
            LEFT_X if side == "left" else RIGHT_X,
            next_y[side],
            interfaces,
            roles.get(name, ""),
            side,
        )
        drawing.nodes[name] = box
        next_y[side] += box.height + 36
    return drawing


@dataclass(frozen=True)
class _TapMark:
    number: int
    name: str
    where: str  # words for the legend
    point: tuple[float, float] | None  # None: not drawn (unknown place)


def _topology_section(matrix: MatrixResult) -> str:
    svg, marks = topology_svg(matrix)
    if not svg:
        return (
            '<section id="topology">\n<h2>Topology</h2>\n'
            "<p>The result holds no topology to draw.</p>\n</section>"
        )
    items = []
    for mark in marks:
        note = "" if mark.point is not None else " (not drawn: no such place in the drawing)"
        items.append(
            f'<li><span class="tap-marker">{mark.number}</span> '
            f"<strong>{escape(mark.name)}</strong> {escape(mark.where)}{note}</li>"
        )
    legend = f'<ul class="taps-legend">{"".join(items)}</ul>' if items else ""
    return "\n".join(
        [
            '<section id="topology">',
            "<h2>Topology</h2>",
            f"<figure>{svg}<figcaption>Nodes are containers, lines are veth pairs labelled "
            "with the node's interface and the switch port; red markers are the taps "
            "where packets were captured.</figcaption></figure>",
            legend,
            "</section>",
        ]
    )


def topology_svg(matrix: MatrixResult) -> tuple[str, list[_TapMark]]:
    if matrix.topology is None:
        return "", []
    return topology_drawing(matrix.topology, matrix.switch_axis)


def switch_kinds(topology: Topology, listed: Sequence[str] = ()) -> list[str]:
    """The switch kinds to name on the switch: those listed, else the topology's."""
    if not listed and topology.switch is not None:
        return [topology.switch.kind.value]
    return list(listed)


def has_switch(topology: Topology, drawing: _Drawing) -> bool:
    return topology.switch is not None or bool(drawing.switch_links)


def topology_drawing(
    topology: Topology, listed_kinds: Sequence[str] = ()
) -> tuple[str, list[_TapMark]]:
    """The SVG drawing of a topology with its taps, and the taps' legend. Shared by the
    matrix report and `labctl graph`."""
    drawing = _layout(topology)
    kinds = switch_kinds(topology, listed_kinds)
    body: list[str] = []
    ports: dict[str, tuple[float, float]] = {}  # port name -> point on the switch edge
    link_ends: dict[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]] = {}
    lowest = max((b.y + b.height for b in drawing.nodes.values()), default=40.0)
    if has_switch(topology, drawing):
        ys = [drawing.nodes[n].row_y(i) for n, i, _ in drawing.switch_links] or [60.0]
        label_height = 24 + 15 * len(kinds)
        box_height = max(90.0, max(ys) - min(ys) + 60, label_height + 24)
        box_top = max(10.0, (max(ys) + min(ys)) / 2 - box_height / 2)
        body.append(
            f'<rect x="{_n(SWITCH_X)}" y="{_n(box_top)}" width="{_n(SWITCH_WIDTH)}" '
            f'height="{_n(box_height)}" rx="10" class="switch"/>'
        )
        text_y = box_top + box_height / 2 - label_height / 2 + 16
        body.append(_text(SWITCH_X + SWITCH_WIDTH / 2, text_y, "switch", "switch-name", "middle"))
        for index, kind in enumerate(kinds):
            body.append(
                _text(
                    SWITCH_X + SWITCH_WIDTH / 2,
                    text_y + 17 + 15 * index,
                    _fit(kind, SWITCH_WIDTH - 20, 11),
                    "switch-kind",
                    "middle",
                )
            )
        lowest = max(lowest, box_top + box_height)
        for node, ifname, port in drawing.switch_links:
            box = drawing.nodes[node]
            y = box.row_y(ifname)
            start = (box.inner_edge, y)
            end = (SWITCH_X if box.side == "left" else SWITCH_X + SWITCH_WIDTH, y)
            ports.setdefault(port, end)
            link_ends[(node, ifname)] = (start, end)
            body += _link(start, end, ifname, port)
    for index, (node_a, if_a, node_b, if_b) in enumerate(drawing.node_links):
        lane = lowest + 30 + 22 * index
        a, b = drawing.nodes[node_a], drawing.nodes[node_b]
        start = (a.x + NODE_WIDTH / 2 + 30, a.y + a.height)
        end = (b.x + NODE_WIDTH / 2 - 30, b.y + b.height)
        body.append(
            f'<polyline points="{_n(start[0])},{_n(start[1])} {_n(start[0])},{_n(lane)} '
            f'{_n(end[0])},{_n(lane)} {_n(end[0])},{_n(end[1])}" class="link"/>'
        )
        body.append(_text(start[0] + 5, start[1] + 14, if_a, "ifname"))
        body.append(_text(end[0] + 5, end[1] + 14, if_b, "ifname"))
        link_ends.setdefault((node_a, if_a), (start, start))
        link_ends.setdefault((node_b, if_b), (end, end))
        lowest = max(lowest, lane)
    for box in drawing.nodes.values():
        body += _node(box)
    marks, markers = _tap_marks(topology, drawing, link_ends, ports)
    body += markers
    height = lowest + 30
    svg = "\n".join(
        [
            f'<svg class="topology" viewBox="0 0 960 {_n(height)}" role="img" '
            'aria-labelledby="topology-title">',
            f'<title id="topology-title">Topology {escape(topology.name)}: '
            "nodes, switch, links and taps</title>",
            *body,
            "</svg>",
        ]
    )
    return svg, marks


def _link(
    start: tuple[float, float], end: tuple[float, float], ifname: str, port: str
) -> list[str]:
    (x1, y1), (x2, y2) = start, end
    leftwards = x2 < x1
    step = -14 if leftwards else 14  # clear of a tap marker (r=10) on either end
    room = abs(x2 - x1) / 2 - 16
    return [
        f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" class="link"/>',
        _text(x1 + step, y1 - 7, _fit(ifname, room, 12), "ifname", "end" if leftwards else "start"),
        _text(x2 - step, y2 - 7, _fit(port, room, 12), "port", "start" if leftwards else "end"),
        _text((x1 + x2) / 2, (y1 + y2) / 2 + 16, "veth", "veth", "middle"),
    ]


def _node(box: _NodeBox) -> list[str]:
    out = [
        f'<rect x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(NODE_WIDTH)}" '
        f'height="{_n(box.height)}" rx="8" class="node"/>',
        _text(box.x + 12, box.y + 22, _fit(box.name, NODE_WIDTH - 24, 15), "node-name"),
    ]
    if box.role:
        out.append(_text(box.x + 12, box.y + 38, box.role, "role"))
    for ifname, addresses in box.interfaces:
        y = box.row_y(ifname) + 4
        out.append(_text(box.x + 16, y, _fit(ifname, 50, 12), "ifname"))
        out.append(_text(box.x + 66, y, _fit(addresses, NODE_WIDTH - 74, 11), "address"))
    return out


def _tap_marks(
    topology: Topology,
    drawing: _Drawing,
    link_ends: Mapping[tuple[str, str], tuple[tuple[float, float], tuple[float, float]]],
    ports: Mapping[str, tuple[float, float]],
) -> tuple[list[_TapMark], list[str]]:
    marks: list[_TapMark] = []
    used: dict[tuple[float, float], int] = {}
    out: list[str] = []
    for number, tap in enumerate(topology.taps, start=1):
        name = tap.name or f"tap {number}"
        point: tuple[float, float] | None = None
        where = "at an unknown place"
        node_end = parse_endpoint(tap.node) if tap.node else None
        host_end = parse_endpoint(tap.host) if tap.host else None
        if node_end is not None:
            where = f"inside node {node_end.node}, on {node_end.name}"
            ends = link_ends.get((node_end.node, node_end.name))
            if ends is not None:
                point = ends[0]
            elif node_end.node in drawing.nodes:
                box = drawing.nodes[node_end.node]
                point = (box.inner_edge, box.row_y(node_end.name))
        elif host_end is not None:
            where = f"on the host end of the veth of {host_end.node}:{host_end.name}"
            ends = link_ends.get((host_end.node, host_end.name))
            if ends is not None and ends[0] != ends[1]:
                (x1, y1), (x2, y2) = ends
                point = (x1 + (x2 - x1) * 0.7, y1 + (y2 - y1) * 0.7)
        elif tap.switch_port is not None:
            where = f"on switch port {tap.switch_port}"
            point = ports.get(tap.switch_port)
        marks.append(_TapMark(number, name, where, point))
        if point is None:
            continue
        # Several taps at one place: step the later ones up, clear of the line.
        stacked = used.get(point, 0)
        used[point] = stacked + 1
        x, y = point[0], point[1] - 24 * stacked
        out.append(
            f'<g class="tap"><title>{escape(f"tap {number}: {name}, {where}")}</title>'
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="10"/>'
            f"{_text(x, y + 4, str(number), 'tap-number', 'middle')}</g>"
        )
    return marks, out


# --------------------------------------------------------------------------
# Style


CSS = """
:root {
  --ink: #202124; --muted: #5f6368; --line: #dadce0; --paper: #ffffff;
  --ok: #1e7e34; --ok-bg: #e6f4ea; --fail: #c5221f; --fail-bg: #fce8e6;
  --skip: #5f6368; --skip-bg: #f1f3f4; --error: #7b1fa2; --error-bg: #f3e8fd;
  --differs: #e37400; --tap: #d93025;
}
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { margin: 0; background: var(--paper); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 28px; margin: 0 0 6px; }
h2 { font-size: 21px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 17px; margin: 12px 0 8px; }
h4 { font-size: 15px; margin: 14px 0 6px; }
a { color: #1a56b8; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono",
  monospace; font-size: 13px; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f8f9fa;
  border: 1px solid var(--line);
  border-radius: 4px; padding: 8px 10px; margin: 6px 0; }
p, li, td, th { overflow-wrap: anywhere; }
.kicker { margin: 0; color: var(--muted); text-transform: uppercase; letter-spacing: .06em;
  font-size: 12px; }
.badge { display: inline-block; padding: 2px 12px; border-radius: 14px; font-size: 15px;
  color: #fff;
  vertical-align: middle; }
.badge.failed { background: var(--fail); } .badge.passed { background: var(--ok); }
.badge.nothing { background: var(--skip); }
.outcome { font-size: 17px; margin: 4px 0 10px; }
.host { display: flex; flex-wrap: wrap; gap: 6px; list-style: none; padding: 0; margin: 8px 0; }
.host li { background: var(--skip-bg); border-radius: 4px; padding: 1px 8px; font-size: 13px; }
.run { color: var(--muted); font-size: 14px; margin: 6px 0; }
.contents { font-size: 14px; margin-top: 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid var(--line); padding: 6px 8px; text-align: left; vertical-align: top; }
thead th { background: #f8f9fa; }
th small { display: block; font-weight: normal; color: var(--muted); }
table.matrix th[scope=row] { white-space: nowrap; }
table.matrix td.cell { padding: 0; width: 40%; }
table.matrix td.cell a { display: block; padding: 8px 10px; color: inherit;
  text-decoration: none; }
table.matrix td.cell a:hover { text-decoration: underline; }
.flag { display: block; font-size: 12px; margin-top: 3px; color: var(--muted); }
.flag.differs { color: #a04f00; font-weight: 600; }
.http-ok { background: var(--ok-bg); } .http-failed { background: var(--fail-bg); }
.skipped { background: var(--skip-bg); color: var(--skip); }
.error { background: var(--error-bg); }
td.differs { box-shadow: inset 0 0 0 3px var(--differs); }
td.missing { color: var(--muted); font-style: italic; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 16px; list-style: none; padding: 0;
  margin: 8px 0 0;
  font-size: 13px; color: var(--muted); }
.legend-note { font-size: 13px; color: var(--muted); margin: 4px 0; }
.swatch { display: inline-block; width: 14px; height: 14px; border: 1px solid var(--line);
  vertical-align: -2px; }
.swatch.differs { border: 3px solid var(--differs); }
figure { margin: 0; }
figcaption, .hint { font-size: 13px; color: var(--muted); }
svg { display: block; width: 100%; height: auto; max-width: 960px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  fill: var(--ink); }
svg .grid { stroke: #e8eaed; stroke-width: 1; }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg .tick { font-size: 12px; fill: var(--muted); }
svg .axis-label { font-size: 13px; fill: var(--muted); }
svg .group { font-size: 14px; font-weight: 600; }
svg .legend { font-size: 13px; }
svg .bar-label { font-size: 12px; font-weight: 600; }
svg .bar-label.zero { fill: var(--fail); }
svg .dot { fill: var(--ink); stroke: #fff; stroke-width: 2; }
svg .dot-label { font-size: 11px; fill: var(--ink); paint-order: stroke; stroke: #fff;
  stroke-width: 3; }
svg .no-bar { font-size: 12px; font-style: italic; fill: var(--muted); }
svg .no-bar.error { fill: var(--error); }
svg .differs-box { fill: none; stroke: var(--differs); stroke-width: 3; stroke-dasharray: 6 3; }
svg .node { fill: #e8f0fe; stroke: #4e79a7; stroke-width: 1.5; }
svg .switch { fill: #fef7e0; stroke: #b06000; stroke-width: 1.5; }
svg .node-name { font-size: 15px; font-weight: 600; }
svg .switch-name { font-size: 15px; font-weight: 600; }
svg .switch-kind, svg .role { font-size: 11px; fill: var(--muted); }
svg .ifname, svg .port { font-size: 12px; font-family: ui-monospace, Menlo, Consolas, monospace; }
svg .port { fill: #b06000; }
svg .address { font-size: 11px; fill: var(--muted);
  font-family: ui-monospace, Menlo, Consolas, monospace; }
svg .link { stroke: var(--ink); stroke-width: 2; fill: none; }
svg .veth { font-size: 11px; fill: var(--muted); font-style: italic; }
svg .tap circle { fill: var(--tap); stroke: #fff; stroke-width: 2; }
svg .tap-number { font-size: 12px; font-weight: 700; fill: #fff; }
.tap-marker { display: inline-block; min-width: 20px; height: 20px; border-radius: 10px;
  background: var(--tap);
  color: #fff; font-weight: 700; font-size: 12px; text-align: center; line-height: 20px; }
.taps-legend { list-style: none; padding: 0; margin: 8px 0; }
.taps-legend li { margin: 3px 0; }
.cell-details { border: 1px solid var(--line); border-left: 8px solid var(--line);
  border-radius: 4px;
  padding: 4px 16px 10px; margin: 16px 0; background: var(--paper); color: var(--ink); }
.cell-details.http-ok { border-left-color: var(--ok); }
.cell-details.http-failed { border-left-color: var(--fail); }
.cell-details.skipped { border-left-color: #9aa0a6; }
.cell-details.error { border-left-color: var(--error); }
.cell-details.differs { border-width: 3px 3px 3px 8px; border-top-color: var(--differs);
  border-right-color: var(--differs); border-bottom-color: var(--differs); }
.status { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 8px;
  border-radius: 10px;
  vertical-align: middle; color: #fff; background: var(--skip); }
.status.passed { background: var(--ok); } .status.failed { background: var(--differs); }
.status.error { background: var(--error); }
.took { font-size: 13px; font-weight: normal; color: var(--muted); }
.reason { margin: 6px 0; }
.verdict-label { margin: 10px 0 0; font-weight: 600; }
table.compare { width: auto; min-width: 60%; margin: 8px 0; }
table.compare th[scope=row] { width: 90px; }
.severity { font-size: 11px; font-weight: 700; padding: 0 6px; border-radius: 3px; color: #fff;
  background: var(--muted); }
.severity.fault { background: var(--fail); } .severity.warning { background: var(--differs); }
.findings li { margin: 6px 0 10px; } .findings p { margin: 4px 0; }
.flow { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 13px; }
.scroll { overflow-x: auto; }
table.taps td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.taps td.bad { color: var(--fail); font-weight: 700; }
.back { font-size: 13px; margin: 8px 0 0; }
@media print {
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  a { color: inherit; text-decoration: none; }
  .contents, .back { display: none; }
  h2, h3, h4 { break-after: avoid; }
  .cell-details, figure, table.matrix { break-inside: avoid; }
}
""".strip()
