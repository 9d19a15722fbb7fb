"""The wording the reports share, so that they say the same thing in the same words.

Every report renders one labctl.core.result.MatrixResult, the typed result the
matrix runner produces (and `read_matrix` reads back from report.json).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from labctl.core.matrix import Expectation, Observation
from labctl.core.result import CellResult, MatrixResult

# Observed traffic, and whether a cell matched its expectation.
ICON_HTTP_OK = "✅"
ICON_HTTP_FAILED = "❌"
ICON_DIFFERS = "⚠️"
ICON_SKIPPED = "⏭"
ICON_ERROR = "⛔"
ICON_NO_EXPECTATION = "❔"

# How host tools are named when their version string does not say it.
HOST_LABELS = {
    "kernel": "Linux",
    "os": "",
    "docker": "Docker",
    "ovs": "Open vSwitch",
    "dpdk": "DPDK",
    "tcpdump": "tcpdump",
    "python": "Python",
}

# --------------------------------------------------------------------------
# Shared wording


def plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count} {word if count == 1 else (many or word + 's')}"


def format_ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 1 else f"{value:.1f} ms"


def format_seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f} s"


def one_line(text: str) -> str:
    """Runs of whitespace, newlines included, as one space: for table cells and attributes."""
    return " ".join(text.split())


def outcome(matrix: MatrixResult) -> tuple[str, str]:
    """("FAILED" | "PASSED" | "NOTHING RAN", one sentence)."""
    counts = matrix.counts
    parts = []
    if counts.failed:
        parts.append(
            f"{counts.failed} of {plural(counts.total, 'cell')} "
            f"{'differs' if counts.failed == 1 else 'differ'} from the expectation"
        )
    if counts.error:
        parts.append(f"{plural(counts.error, 'cell')} could not run")
    if not parts:
        ran = counts.passed
        if ran == 0:
            parts.append("no cell ran")
        else:
            parts.append(
                "the only cell that ran matched the expectation"
                if ran == 1
                else f"all {ran} cells that ran matched the expectation"
            )
    tally = ", ".join(
        [
            f"{counts.passed} passed",
            f"{counts.failed} failed",
            f"{counts.skipped} skipped",
            plural(counts.error, "error"),
        ]
    )
    took = f" in {format_seconds(matrix.seconds)}" if matrix.seconds is not None else ""
    word = (
        "FAILED" if counts.failed or counts.error else "PASSED" if counts.passed else "NOTHING RAN"
    )
    return word, f"{'; '.join(parts)} ({tally}){took}."


def host_versions(matrix: MatrixResult) -> list[str]:
    """One entry per host component, e.g. "Docker 20.10.24" or "tcpdump version 4.99.3"."""
    entries = []
    for key, value in matrix.host.items():
        label = HOST_LABELS.get(key, key)
        if value is None or not value.strip():
            entries.append(f"{label or key}: not found")
        elif not label or label.lower() in value.lower() or key.lower() in value.lower():
            entries.append(one_line(value))
        else:
            entries.append(f"{label} {one_line(value)}")
    return entries


def offload_settings(settings: Mapping[str, object]) -> str:
    """ "tx on, rx on"; unset features say "default"; a node or node:interface
    target reads "client: tx off, rx off", separated by "; "."""
    words: list[str] = []
    targets = [
        f"{key}: {offload_settings(value) or 'default'}"
        for key, value in settings.items()
        if isinstance(value, Mapping)
    ]
    for feature, value in settings.items():
        if isinstance(value, Mapping):
            continue
        if value is True:
            words.append(f"{feature} on")
        elif value is False:
            words.append(f"{feature} off")
        elif value is None:
            words.append(f"{feature} default")
        else:
            words.append(f"{feature} {value}")
    return "; ".join(([", ".join(words)] if words else []) + targets)


def describe_expectation(expected: Expectation | None) -> str:
    if expected is None:
        return "no expectation"
    parts = []
    if expected.http is not None:
        parts.append({"pass": "HTTP ok", "fail": "HTTP fails"}[expected.http])
    if expected.probes:
        parts.append(describe_expected_probes(expected))
    parts.append(describe_expected_findings(expected))
    return "; ".join(parts)


def describe_expected_probes(expected: Expectation) -> str:
    """ "bulk passes; ping6 passes, loss at most 0%" """
    words = []
    for name, wanted in expected.probes.items():
        text = f"{name} {'passes' if wanted.result == 'pass' else 'fails'}"
        bounds = [
            (wanted.min_mbps, "throughput at least", " Mbit/s"),
            (wanted.max_mbps, "throughput at most", " Mbit/s"),
            (wanted.min_loss_percent, "loss at least", "%"),
            (wanted.max_loss_percent, "loss at most", "%"),
            (wanted.max_rtt_ms, "average RTT at most", " ms"),
            (wanted.max_retransmits, "retransmits at most", ""),
        ]
        text += "".join(
            f", {what} {bound:g}{unit}" for bound, what, unit in bounds if bound is not None
        )
        words.append(text)
    return "; ".join(words)


def describe_expected_findings(expected: Expectation) -> str:
    if expected.findings is None:
        return "findings not checked"
    return ", ".join(expected.findings) if expected.findings else "no fault"


def describe_observation(observed: Observation | None) -> str:
    if observed is None:
        return "not run"
    http = "HTTP ok" if observed.http_ok else "HTTP fails"
    findings = ", ".join(observed.findings) if observed.findings else "no findings"
    return f"{http} ({observed.succeeded}/{observed.requests}); {findings}"


@dataclass(frozen=True)
class CellSummary:
    """What a matrix cell shows. `icon` describes the observed traffic, or skip/error;
    `differs`/`unchecked` say how the observation compares with the expectation."""

    icon: str
    text: str  # "HTTP 5/5, 1.1 ms" | "HTTP 0/5: bad-checksum at server-host" | "skipped: why"
    differs: bool
    unchecked: bool  # ran, but the lab states no expectation for this cell
    reason: str | None

    def line(self) -> str:
        """One line of plain text with the legend's markers."""
        body = f"{self.icon} {self.text}"
        if self.differs:
            why = f" ({one_line(self.reason)})" if self.reason else ""
            return f"{ICON_DIFFERS} differs: {body}{why}"
        if self.unchecked:
            return f"{body} {ICON_NO_EXPECTATION}"
        return body


def summarize_cell(cell: CellResult, merged: bool = False, platform: bool = True) -> CellSummary:
    """With `merged` (a result merged from shards), also the host the cell ran on; with
    `platform`, the platform VM it ran in (a cell of the host says nothing)."""
    summary = _summarize(cell)
    if platform and cell.platform != "host":
        summary = replace(summary, text=summary.text + cell.on_platform)
    if not merged or cell.host is None:
        return summary
    return replace(summary, text=f"{summary.text} (on {cell.host})")


def _summarize(cell: CellResult) -> CellSummary:
    reason = one_line(cell.reason) if cell.reason else None
    if cell.status == "skipped":
        return CellSummary(
            ICON_SKIPPED, f"skipped: {reason or 'no reason given'}", False, False, None
        )
    if cell.status == "error" or cell.observed is None:
        text = f"error: {reason or 'no reason given'}" if cell.status == "error" else "not run"
        return CellSummary(ICON_ERROR, text, cell.differs, False, reason if cell.differs else None)
    observed = cell.observed
    if observed.http_only:
        text = f"HTTP {observed.succeeded}/{observed.requests}"
        if observed.latency_ms is not None:
            text += f", {format_ms(observed.latency_ms.median)}"
    else:
        text = observed.probes_line()
    finding = cell.first_fault()
    if finding is not None:
        text += f": {finding.kind}" + (f" at {finding.tap}" if finding.tap else "")
    elif observed.findings and not observed.traffic_ok:
        text += f": {observed.findings[0]}"
    elif not observed.traffic_ok:
        text += ": no diagnosis" if cell.diagnosis is None else ": no fault in the captures"
    icon = ICON_HTTP_OK if observed.traffic_ok else ICON_HTTP_FAILED
    return CellSummary(icon, text, cell.differs, cell.expected is None, reason)


LEGEND = (
    (ICON_HTTP_OK, "every HTTP request succeeded (median latency), every probe passed"),
    (
        ICON_HTTP_FAILED,
        "some or all requests failed, or a probe failed (first fault finding, and the tap "
        "where it shows)",
    ),
    (ICON_DIFFERS, "differs: the observation is not what the lab expects, the cell fails"),
    (ICON_NO_EXPECTATION, "the lab states no expectation for this cell"),
    (ICON_SKIPPED, "skipped (why)"),
    (ICON_ERROR, "error: the cell could not run"),
)
LEGEND_MATCHED = f"A cell without {ICON_DIFFERS} or {ICON_NO_EXPECTATION} matched its expectation."


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def cell_anchors(matrix: MatrixResult) -> dict[int, str]:
    """A unique HTML id per cell: "cell-ovs-dpdk-on", by id(cell) (two cells may be equal)."""
    anchors: dict[int, str] = {}
    used: set[str] = set()
    for cell in matrix.ordered_cells():
        config = f"-{slug(cell.ovs_config)}" if cell.ovs_config else ""
        base = f"cell-{slug(cell.switch)}-{slug(cell.offload)}{config}"
        if cell.platform != "host":
            base += f"-{slug(cell.platform)}"
        anchor, number = base, 2
        while anchor in used:
            anchor, number = f"{base}-{number}", number + 1
        used.add(anchor)
        anchors[id(cell)] = anchor
    return anchors
