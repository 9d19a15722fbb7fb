"""A diagnosis as text for a terminal: the verdict, the taps, the flows' timelines and
the findings, wrapped to a width."""

from __future__ import annotations

import textwrap
from collections import Counter

from labctl.analysis.diagnosis import CELL_LEGEND, VERDICT_KEYS, Diagnosis, FlowTimeline
from labctl.analysis.tables import format_table


def render_text(
    diagnosis: Diagnosis,
    width: int = 100,
    max_events: int = 40,
    max_flows: int | None = None,
    findings_per_kind: int | None = None,
) -> str:
    """A report for a terminal: verdict, taps, per-flow timelines, findings.

    With max_flows, the flows that findings name come first and the rest are
    counted, so a run of many healthy requests still fits a screen.
    """
    flows = _flows_to_show(diagnosis, max_flows)
    hidden = len(diagnosis.flows) - len(flows)
    sections = [
        _wrap(diagnosis.verdict, width),
        _render_taps(diagnosis),
        *(_render_flow(flow, diagnosis, width, max_events) for flow in flows),
        *([f"(+{hidden} more flows like these; all are in the JSON report)"] if hidden else []),
        *([_wrap("Legend: " + CELL_LEGEND, width)] if flows else []),
        _render_findings(diagnosis, width, findings_per_kind),
    ]
    return "\n\n".join(sections) + "\n"


def _flows_to_show(diagnosis: Diagnosis, max_flows: int | None) -> list[FlowTimeline]:
    flows = list(diagnosis.flows)
    if max_flows is None or len(flows) <= max_flows:
        return flows

    def named(flow: FlowTimeline) -> bool:
        return any(flow.client in f.flow and flow.server in f.flow for f in diagnosis.findings)

    chosen = [flow for flow in flows if named(flow)][:max_flows]
    chosen += [flow for flow in flows if flow not in chosen][: max_flows - len(chosen)]
    return [flow for flow in flows if flow in chosen]


# Short headers for VERDICT_KEYS so that the tap table fits 100 columns.
VERDICT_HEADERS = (
    "valid",
    "offload",
    "accepted",
    "unfinished",
    "wrong",
    "no-csum",
    "trunc",
    "frag",
)


def _render_taps(diagnosis: Diagnosis) -> str:
    headers = ["#", "tap", "tcp/udp", *VERDICT_HEADERS, "bad-ip"]
    path = diagnosis.path_taps
    rows = [
        [
            str(number),
            tap.name,
            str(tap.packets),
            *(str(tap.verdicts[key]) for key in VERDICT_KEYS),
            str(tap.ip_header_wrong),
        ]
        for number, tap in enumerate(path, start=1)
    ]
    frames = [
        f"  [{number}] {tap.name}: {tap.frames} frames"
        + "".join(f", {n} {reason}" for reason, n in tap.skipped.items())
        for number, tap in enumerate(path, start=1)
        if tap.skipped
    ]
    skipped = "\nSkipped frames\n" + "\n".join(frames) if frames else ""
    text = "Taps, in path order\n" + format_table(headers, rows, indent=2) + skipped
    off_path = [tap for tap in diagnosis.taps if tap.off_path]
    if off_path:
        text += "\nOff the path (what of the traffic under test reached them)\n" + "\n".join(
            f"  {tap.name}: {tap.frames} frames, {tap.packets} TCP/UDP"
            + "".join(f", {n} {reason}" for reason, n in tap.skipped.items())
            + (f"; isolated: {tap.isolation}" if tap.isolation else "")
            for tap in off_path
        )
    return text


def _render_flow(flow: FlowTimeline, diagnosis: Diagnosis, width: int, max_events: int) -> str:
    names = [tap.name for tap in diagnosis.path_taps]
    events = flow.events[:max_events]
    rows = [
        [
            f"{event.time:.6f}",
            event.direction,
            event.packet + (f" (resent #{event.retransmission})" if event.retransmission else ""),
            *event.cells,
        ]
        for event in events
    ]
    table = format_table(["time", "dir", "packet", *names], rows, indent=2)
    if max(len(line) for line in table.splitlines()) > width:
        # Long tap names: number the columns as in the tap table.
        numbers = [f"[{n}]" for n in range(1, len(names) + 1)]
        table = format_table(["time", "dir", "packet", *numbers], rows, indent=2)
    more = len(flow.events) - len(events)
    tail = f"\n  ... {more} more packets" if more > 0 else ""
    return f"Flow {flow.label}\n{table}{tail}"


def _render_findings(diagnosis: Diagnosis, width: int, per_kind: int | None = None) -> str:
    if not diagnosis.findings:
        return "Findings: none"
    lines = ["Findings"]
    shown: Counter[tuple[str, str]] = Counter()
    hidden: Counter[tuple[str, str]] = Counter()
    for number, finding in enumerate(diagnosis.findings, start=1):
        key = (finding.kind, finding.tap)
        if per_kind is not None and shown[key] >= per_kind:
            hidden[key] += 1
            continue
        shown[key] += 1
        head = f"{number}. {finding.severity.upper()} {finding.kind} at '{finding.tap}': "
        lines.append(_wrap(head + finding.message, width, indent="  ", hanging="     "))
        lines.extend(_wrap(p, width, indent="     - ", hanging="       ") for p in finding.packets)
    for (kind, tap), count in hidden.items():
        lines.append(f"  (+{count} more {kind} at '{tap}' in other flows; see the JSON report)")
    return "\n".join(lines)


def _wrap(text: str, width: int, indent: str = "", hanging: str = "") -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent,
        subsequent_indent=hanging or indent,
        break_on_hyphens=False,
        break_long_words=False,
    )
