"""A matrix result as GitHub-flavoured Markdown, fit to paste into a bug report.

Strings from the result are escaped so that a reason such as "<script>" or
"a | b" shows as written instead of becoming HTML or breaking the table. The
lab's own description and notes are Markdown already and go in as written.
"""

from __future__ import annotations

import re
from collections import Counter

from labctl.core import ovs_config
from labctl.core.result import CellResult, FindingRecord, MatrixResult
from labctl.reports.common import (
    ICON_DIFFERS,
    LEGEND,
    LEGEND_MATCHED,
    format_ms,
    host_versions,
    offload_settings,
    one_line,
    outcome,
    summarize_cell,
)

MAX_PACKETS = 5  # packet lines quoted per finding; the HTML report has them all

# ">" only matters at the start of a line (a quote); "&" only where it starts an entity.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<|~]|^>|&(?=#?\w+;))")


def render(matrix: MatrixResult) -> str:
    word, sentence = outcome(matrix)
    lines = [f"# {escape(matrix.lab)}: labctl matrix", "", f"**{word}**: {escape(sentence)}", ""]
    lines += _context(matrix)
    if matrix.description.strip():
        lines += [matrix.description.strip(), ""]
    lines += _table(matrix)
    lines += ["", "Legend: " + " · ".join(f"{icon} {text}" for icon, text in LEGEND) + ".  "]
    lines += [LEGEND_MATCHED, ""]
    probes = _probes(matrix)
    if probes:
        lines += ["## Probes", "", *probes, ""]
    off_path = _off_path(matrix)
    if off_path:
        lines += ["## Taps off the path", "", *off_path, ""]
    evidence = _evidence(matrix)
    if evidence:
        lines += ["## Fault evidence", "", *evidence]
    if matrix.notes.strip():
        lines += ["## Notes", "", matrix.notes.strip(), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def escape(text: str) -> str:
    """Inline text, on one line, with Markdown and HTML syntax neutralised."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))


def code(text: str) -> str:
    """An inline code span that survives backticks in `text`."""
    text = one_line(text)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _context(matrix: MatrixResult) -> list[str]:
    lines = []
    versions = host_versions(matrix)
    if versions:
        lines.append("Host: " + " · ".join(escape(v) for v in versions))
    run = []
    if matrix.topology_file:
        run.append(f"topology {code(matrix.topology_file)}")
    if matrix.started_at:
        span = matrix.started_at + (f" to {matrix.ended_at}" if matrix.ended_at else "")
        run.append(escape(span))
    if run:
        lines.append("Run: " + ", ".join(run))
    # Two trailing spaces: a line break between the two lines, not a new paragraph.
    return [line + "  " for line in lines[:-1]] + lines[-1:] + [""] if lines else []


def _table(matrix: MatrixResult) -> list[str]:
    headers = ["switch"]
    for name, settings in matrix.offload_axis.items():
        described = offload_settings(settings)
        headers.append(f"offload {name}" + (f" ({described})" if described else ""))
    lines = [
        "| " + " | ".join(escape(h) for h in headers) + " |",
        "|" + "---|" * len(headers),
    ]
    for line in matrix.row_axis:
        row = [escape(line.label)]
        for offload in matrix.offload_axis:
            cell = matrix.cell(line.switch, offload, line.ovs_config)
            row.append("" if cell is None else escape(summarize_cell(cell, matrix.merged).line()))
        lines.append("| " + " | ".join(row) + " |")
    return lines + _ovs_configs(matrix)


def _ovs_configs(matrix: MatrixResult) -> list[str]:
    """What each ovs_config row name stands for; nothing when the lab has none."""
    if not matrix.ovs_configs:
        return []
    described = "; ".join(
        f"{code(name)}: {escape(ovs_config.describe(settings))}"
        for name, settings in matrix.ovs_configs.items()
    )
    return [
        "",
        f"ovs-vswitchd other_config per OVS row: {described}. A Linux bridge has no "
        "ovs-vswitchd: one row.",
    ]


def _probes(matrix: MatrixResult) -> list[str]:
    """Every probe of every cell that ran, with what it measured; none when the traffic was
    the HTTP requests alone (the matrix table says it all then)."""
    ran = [
        cell
        for cell in matrix.ordered_cells()
        if cell.observed is not None and not cell.observed.http_only
    ]
    if not ran:
        return []
    lines = [
        "| switch | offload | probe | result | throughput | retransmits | loss | RTT / latency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cell in ran:
        assert cell.observed is not None
        for probe in cell.observed.probes:
            result = "pass" if probe.ok else "FAIL: " + "; ".join(probe.problems)
            if probe.kind == "command" and probe.exit_code is not None:
                result += f" (exit {probe.exit_code})"
            timing = ""
            if probe.rtt_ms is not None:
                timing = f"{probe.rtt_ms.avg:.3f} ms (max {probe.rtt_ms.max:.3f})"
            elif probe.latency_ms is not None:
                timing = f"median {format_ms(probe.latency_ms.median)}"
            loss = ""
            if probe.loss_percent is not None:
                loss = f"{probe.loss_percent:.1f}% ({probe.received}/{probe.sent})"
            elif probe.kind == "http" and probe.sent is not None:
                loss = f"{probe.received}/{probe.sent} requests"
            row = [
                cell.row.label + cell.on_platform,
                cell.offload,
                probe.name,
                result,
                "" if probe.throughput_mbps is None else f"{probe.throughput_mbps:.1f} Mbit/s",
                "" if probe.retransmits is None else str(probe.retransmits),
                loss,
                timing,
            ]
            lines.append("| " + " | ".join(escape(v) for v in row) + " |")
    return lines


def _off_path(matrix: MatrixResult) -> list[str]:
    """Every tap off the path of every cell with a diagnosis, with what reached it."""
    rows = [
        (cell, tap)
        for cell in matrix.ordered_cells()
        if cell.diagnosis is not None
        for tap in cell.diagnosis.taps
        if tap.off_path
    ]
    if not rows:
        return []
    lines = [
        "Taps that are no hop of the path: what of the traffic under test reached them "
        "(0 frames is the isolation).",
        "",
        "| switch | offload | tap | frames | TCP/UDP packets | what it says |",
        "|---|---|---|---|---|---|",
    ]
    for cell, tap in rows:
        row = [cell.switch, cell.offload, tap.name, str(tap.frames), str(tap.packets)]
        row.append(tap.off_path_meaning())
        lines.append("| " + " | ".join(escape(v) for v in row) + " |")
    return lines


def _evidence(matrix: MatrixResult) -> list[str]:
    lines: list[str] = []
    for cell in matrix.ordered_cells():
        if not cell.failing:
            continue
        summary = summarize_cell(cell, matrix.merged)
        judged = (
            f"{ICON_DIFFERS} differs: {escape(summary.reason or 'not as expected')}"
            if summary.differs
            else "no expectation"
            if summary.unchecked
            else "as expected"
        )
        lines += [
            f"### {escape(cell.title)}",
            "",
            f"{summary.icon} {escape(summary.text)}; {judged}.",
            "",
        ]
        if cell.expected is not None and cell.expected.note:
            lines += [f"Note: {escape(cell.expected.note)}", ""]
        lines += _quote(cell)
    return lines


def _quote(cell: CellResult) -> list[str]:
    finding = cell.first_finding()
    if finding is None:
        verdict = cell.verdict
        text = escape(verdict) if verdict else "no finding in the captures"
        return [f"> {text}", ""]
    # Two trailing spaces: a line break inside the quote.
    lines = [f"> {_finding_head(finding)}  ", f"> {escape(finding.message)}"]
    if finding.packets:
        packets = [one_line(p) for p in finding.packets[:MAX_PACKETS]]
        if len(finding.packets) > MAX_PACKETS:
            packets.append(f"... {len(finding.packets) - MAX_PACKETS} more")
        fence = "`" * max(3, 1 + max(len(r) for p in packets for r in re.findall("`+", p) or [""]))
        lines += [">", f"> {fence}", *(f"> {p}" for p in packets), f"> {fence}"]
    others = _other_findings(cell, finding)
    if others:
        lines += [">", f"> {others}"]
    return [*lines, ""]


def _finding_head(finding: FindingRecord) -> str:
    where = f" at tap {code(finding.tap)}" if finding.tap else ""
    flow = f", {escape(finding.flow)}" if finding.flow else ""
    return f"**{escape(finding.severity.upper())} {escape(finding.kind)}**{where}{flow}:"


def _other_findings(cell: CellResult, shown: FindingRecord) -> str:
    if cell.diagnosis is None:
        return ""
    rest = list(cell.diagnosis.findings)
    rest.remove(shown)
    if not rest:
        return ""
    kinds = Counter(f.kind for f in rest)
    listed = ", ".join(f"{kind} x{count}" if count > 1 else kind for kind, count in kinds.items())
    return f"_and {len(rest)} more: {escape(listed)}_"
