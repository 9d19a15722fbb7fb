"""A matrix result read into typed, immutable records, and the wording the reports share.

The matrix result is plain JSON (see `labctl.reports`). Reading it once here,
with every missing optional field defaulted and every wrong type reported
with its path (`cells[3].observed.succeeded`), keeps the three writers free
of dictionary plumbing and makes them say the same thing in the same words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from labctl.errors import UsageError

Status = Literal["passed", "failed", "skipped", "error"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "skipped", "error")

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
# Records


@dataclass(frozen=True)
class Latency:
    min: float
    median: float
    max: float


@dataclass(frozen=True)
class Expectation:
    http: str | None  # "ok" | "fail" | None (not judged)
    findings: tuple[str, ...] | None  # () = no fault at all; None = findings not checked
    note: str | None = None  # the lab's words on what the cell shows


@dataclass(frozen=True)
class Observation:
    http: str | None  # "ok" | "fail"
    succeeded: int
    failed: int
    latency_ms: Latency | None
    findings: tuple[str, ...]
    verdict: str

    @property
    def requests(self) -> int:
        return self.succeeded + self.failed

    @property
    def http_ok(self) -> bool:
        if self.http is not None:
            return self.http == "ok"
        return self.failed == 0 and self.succeeded > 0

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.requests if self.requests else None


@dataclass(frozen=True)
class FindingRecord:
    kind: str
    severity: str
    tap: str
    flow: str
    message: str
    packets: tuple[str, ...]


@dataclass(frozen=True)
class TapRecord:
    name: str
    pcap: str
    frames: int
    packets: int
    ip_header_wrong: int
    skipped: tuple[tuple[str, int], ...]
    verdicts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class DiagnosisRecord:
    ok: bool
    verdict: str
    taps: tuple[TapRecord, ...]
    findings: tuple[FindingRecord, ...]


@dataclass(frozen=True)
class Cell:
    switch: str
    offload: str
    status: Status
    reason: str | None
    expected: Expectation | None
    observed: Observation | None
    run_dir: str | None
    pcaps: tuple[tuple[str, str], ...]  # (tap name, path) in the order given
    diagnosis: DiagnosisRecord | None
    seconds: float | None
    host: str | None = None  # the machine it ran on, in a report merged from shards

    @property
    def title(self) -> str:
        return f"{self.switch}, offload {self.offload}"

    @property
    def test_name(self) -> str:
        return f"{self.switch} offload={self.offload}"

    @property
    def differs(self) -> bool:
        return self.status == "failed"

    def first_fault(self) -> FindingRecord | None:
        """The first finding of severity fault (findings come cause first)."""
        if self.diagnosis is None:
            return None
        return next((f for f in self.diagnosis.findings if f.severity == "fault"), None)

    def first_finding(self) -> FindingRecord | None:
        if self.diagnosis is None or not self.diagnosis.findings:
            return None
        return self.first_fault() or self.diagnosis.findings[0]

    @property
    def verdict(self) -> str | None:
        if self.diagnosis is not None and self.diagnosis.verdict:
            return self.diagnosis.verdict
        if self.observed is not None and self.observed.verdict:
            return self.observed.verdict
        return None

    @property
    def failing(self) -> bool:
        """Worth quoting evidence for: HTTP failed, or the cell differs."""
        http_failed = self.observed is not None and not self.observed.http_ok
        return http_failed or self.status == "failed"


@dataclass(frozen=True)
class Counts:
    passed: int
    failed: int
    skipped: int
    error: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.error


@dataclass(frozen=True)
class Matrix:
    lab: str
    description: str
    notes: str
    topology_file: str | None
    started_at: str | None
    ended_at: str | None
    seconds: float | None
    host: tuple[tuple[str, str | None], ...]
    topology: Mapping[str, object]
    switches: tuple[str, ...]  # listed kinds, then any a cell names that the list lacks
    offloads: tuple[tuple[str, tuple[tuple[str, object], ...]], ...]
    cells: tuple[Cell, ...]

    def cell(self, switch: str, offload: str) -> Cell | None:
        return next((c for c in self.cells if c.switch == switch and c.offload == offload), None)

    def ordered_cells(self) -> list[Cell]:
        """Row by row (switch kinds), then offload settings, as the matrix table reads."""
        offload_names = [name for name, _ in self.offloads]

        def key(cell: Cell) -> tuple[int, int]:
            return (self.switches.index(cell.switch), offload_names.index(cell.offload))

        return sorted(self.cells, key=key)

    @property
    def counts(self) -> Counts:
        """Counted from the cells; the result's own "summary" is not trusted."""
        tally = {status: sum(1 for c in self.cells if c.status == status) for status in STATUSES}
        return Counts(tally["passed"], tally["failed"], tally["skipped"], tally["error"])


# --------------------------------------------------------------------------
# Reading the JSON


class _Reader:
    """Typed access to one mapping, naming the path of any value of the wrong type."""

    def __init__(self, data: object, path: str):
        if not isinstance(data, Mapping):
            raise _bad(path, "an object", data)
        self.data: Mapping[str, object] = data
        self.path = path

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _bad(self.at(key), "a string", value)

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise UsageError(f"matrix result: {self.at(key)}: missing")
        return value

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(self.at(key), "a number", value)
        return float(value)

    def integer(self, key: str) -> int:
        value = self.data.get(key)
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(self.at(key), "an integer", value)
        return value

    def flag(self, key: str) -> bool:
        value = self.data.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise _bad(self.at(key), "true or false", value)
        return value

    def mapping(self, key: str) -> Mapping[str, object]:
        value = self.data.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise _bad(self.at(key), "an object", value)
        return value

    def child(self, key: str) -> _Reader | None:
        value = self.data.get(key)
        return None if value is None else _Reader(value, self.at(key))

    def items(self, key: str) -> list[object]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _bad(self.at(key), "a list", value)
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.items(key)
        for index, value in enumerate(values):
            if not isinstance(value, str):
                raise _bad(f"{self.at(key)}[{index}]", "a string", value)
        return tuple(str(v) for v in values)

    def int_map(self, key: str) -> tuple[tuple[str, int], ...]:
        pairs = []
        for name, value in self.mapping(key).items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise _bad(f"{self.at(key)}.{name}", "an integer", value)
            pairs.append((str(name), value))
        return tuple(pairs)


def _bad(path: str, what: str, value: object) -> UsageError:
    return UsageError(f"matrix result: {path or '<top>'}: expected {what}, got {value!r}")


def read_matrix(result: Mapping[str, object]) -> Matrix:
    """The result as records; UsageError names the path of a malformed value."""
    top = _Reader(result, "")
    merged = bool(top.items("shards"))
    cells = tuple(
        _read_cell(_Reader(c, f"cells[{i}]"), merged) for i, c in enumerate(top.items("cells"))
    )
    switches = list(top.strings("switches"))
    offloads = [
        (str(name), tuple(_Reader(settings or {}, f"offloads.{name}").data.items()))
        for name, settings in top.mapping("offloads").items()
    ]
    for cell in cells:
        if cell.switch not in switches:
            switches.append(cell.switch)
        if cell.offload not in [name for name, _ in offloads]:
            offloads.append((cell.offload, ()))
    host = []
    for key, value in top.mapping("host").items():
        if value is not None and not isinstance(value, str):
            value = str(value)
        host.append((str(key), value))
    return Matrix(
        lab=top.required_text("lab"),
        description=top.text("description") or "",
        notes=top.text("notes") or "",
        topology_file=top.text("topology_file"),
        started_at=top.text("started_at"),
        ended_at=top.text("ended_at"),
        seconds=top.number("seconds"),
        host=tuple(host),
        topology=top.mapping("topology"),
        switches=tuple(switches),
        offloads=tuple(offloads),
        cells=cells,
    )


def _read_cell(cell: _Reader, merged: bool = False) -> Cell:
    status = cell.required_text("status")
    if status not in STATUSES:
        raise _bad(cell.at("status"), f"one of {', '.join(STATUSES)}", status)
    pcaps = []
    for tap, path in cell.mapping("pcaps").items():
        if not isinstance(path, str):
            raise _bad(cell.at(f"pcaps.{tap}"), "a path", path)
        pcaps.append((str(tap), path))
    expected = cell.child("expected")
    observed = cell.child("observed")
    diagnosis = cell.child("diagnosis")
    return Cell(
        switch=cell.required_text("switch"),
        offload=cell.required_text("offload"),
        status=_status(status),
        reason=cell.text("reason"),
        expected=None if expected is None else _read_expectation(expected),
        observed=None if observed is None else _read_observation(observed),
        run_dir=cell.text("run_dir"),
        pcaps=tuple(pcaps),
        diagnosis=None if diagnosis is None else _read_diagnosis(diagnosis),
        seconds=cell.number("seconds"),
        host=cell.text("host") if merged else None,
    )


def _status(value: str) -> Status:
    for status in STATUSES:
        if status == value:
            return status
    raise AssertionError(value)


def _read_expectation(expected: _Reader) -> Expectation:
    findings = None if expected.data.get("findings") is None else expected.strings("findings")
    return Expectation(http=_http(expected, "http"), findings=findings, note=expected.text("note"))


def _http(reader: _Reader, key: str) -> str | None:
    """ "ok" or "fail": the matrix runner writes "pass"/"fail", hand-made results "ok"."""
    value = reader.data.get(key)
    if value is None:
        return None
    if value is True or value in ("ok", "pass", "passed"):
        return "ok"
    if value is False or value in ("fail", "failed"):
        return "fail"
    raise _bad(reader.at(key), '"pass", "ok" or "fail"', value)


def _read_observation(observed: _Reader) -> Observation:
    latency = observed.child("latency_ms")
    return Observation(
        http=_http(observed, "http"),
        succeeded=observed.integer("succeeded"),
        failed=observed.integer("failed"),
        latency_ms=None if latency is None else _read_latency(latency),
        findings=observed.strings("findings"),
        verdict=observed.text("verdict") or "",
    )


def _read_latency(latency: _Reader) -> Latency | None:
    values = [latency.number(key) for key in ("min", "median", "max")]
    if any(v is None or not math.isfinite(v) for v in values):
        return None
    low, median, high = (float(v or 0.0) for v in values)
    return Latency(low, median, high)


def _read_diagnosis(diagnosis: _Reader) -> DiagnosisRecord:
    taps = []
    for index, item in enumerate(diagnosis.items("taps")):
        tap = _Reader(item, diagnosis.at(f"taps[{index}]"))
        taps.append(
            TapRecord(
                name=tap.text("name") or f"tap {index + 1}",
                pcap=tap.text("pcap") or "",
                frames=tap.integer("frames"),
                packets=tap.integer("packets"),
                ip_header_wrong=tap.integer("ip_header_wrong"),
                skipped=tap.int_map("skipped"),
                verdicts=tap.int_map("verdicts"),
            )
        )
    findings = []
    for index, item in enumerate(diagnosis.items("findings")):
        finding = _Reader(item, diagnosis.at(f"findings[{index}]"))
        findings.append(
            FindingRecord(
                kind=finding.text("kind") or "finding",
                severity=finding.text("severity") or "fault",
                tap=finding.text("tap") or "",
                flow=finding.text("flow") or "",
                message=finding.text("message") or "",
                packets=finding.strings("packets"),
            )
        )
    return DiagnosisRecord(
        ok=diagnosis.flag("ok"),
        verdict=diagnosis.text("verdict") or "",
        taps=tuple(taps),
        findings=tuple(findings),
    )


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


def outcome(matrix: Matrix) -> tuple[str, str]:
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


def host_versions(matrix: Matrix) -> list[str]:
    """One entry per host component, e.g. "Docker 20.10.24" or "tcpdump version 4.99.3"."""
    entries = []
    for key, value in matrix.host:
        label = HOST_LABELS.get(key, key)
        if value is None or not value.strip():
            entries.append(f"{label or key}: not found")
        elif not label or label.lower() in value.lower() or key.lower() in value.lower():
            entries.append(one_line(value))
        else:
            entries.append(f"{label} {one_line(value)}")
    return entries


def offload_settings(settings: Sequence[tuple[str, object]]) -> str:
    """ "tx on, rx on"; unset features say "default"; a node or node:interface
    target reads "client: tx off, rx off", separated by "; "."""
    words: list[str] = []
    targets = [
        f"{key}: {offload_settings(list(value.items())) or 'default'}"
        for key, value in settings
        if isinstance(value, Mapping)
    ]
    for feature, value in settings:
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
    http = {"ok": "HTTP ok", "fail": "HTTP fails"}.get(expected.http or "", "HTTP not judged")
    return f"{http}; {describe_expected_findings(expected)}"


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


def summarize_cell(cell: Cell) -> CellSummary:
    summary = _summarize(cell)
    if cell.host is None:
        return summary
    return replace(summary, text=f"{summary.text} (on {cell.host})")


def _summarize(cell: Cell) -> CellSummary:
    reason = one_line(cell.reason) if cell.reason else None
    if cell.status == "skipped":
        return CellSummary(
            ICON_SKIPPED, f"skipped: {reason or 'no reason given'}", False, False, None
        )
    if cell.status == "error" or cell.observed is None:
        text = f"error: {reason or 'no reason given'}" if cell.status == "error" else "not run"
        return CellSummary(ICON_ERROR, text, cell.differs, False, reason if cell.differs else None)
    observed = cell.observed
    text = f"HTTP {observed.succeeded}/{observed.requests}"
    if observed.latency_ms is not None:
        text += f", {format_ms(observed.latency_ms.median)}"
    finding = cell.first_fault()
    if finding is not None:
        text += f": {finding.kind}" + (f" at {finding.tap}" if finding.tap else "")
    elif observed.findings and not observed.http_ok:
        text += f": {observed.findings[0]}"
    elif not observed.http_ok:
        text += ": no diagnosis" if cell.diagnosis is None else ": no fault in the captures"
    icon = ICON_HTTP_OK if observed.http_ok else ICON_HTTP_FAILED
    return CellSummary(icon, text, cell.differs, cell.expected is None, reason)


LEGEND = (
    (ICON_HTTP_OK, "every HTTP request succeeded (median latency)"),
    (
        ICON_HTTP_FAILED,
        "some or all requests failed (first fault finding, and the tap where it shows)",
    ),
    (ICON_DIFFERS, "differs: the observation is not what the lab expects, the cell fails"),
    (ICON_NO_EXPECTATION, "the lab states no expectation for this cell"),
    (ICON_SKIPPED, "skipped (why)"),
    (ICON_ERROR, "error: the cell could not run"),
)
LEGEND_MATCHED = f"A cell without {ICON_DIFFERS} or {ICON_NO_EXPECTATION} matched its expectation."


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def cell_anchors(matrix: Matrix) -> dict[Cell, str]:
    """A unique HTML id per cell: "cell-ovs-dpdk-on"."""
    anchors: dict[Cell, str] = {}
    used: set[str] = set()
    for cell in matrix.ordered_cells():
        base = f"cell-{slug(cell.switch)}-{slug(cell.offload)}"
        anchor, number = base, 2
        while anchor in used:
            anchor, number = f"{base}-{number}", number + 1
        used.add(anchor)
        anchors[cell] = anchor
    return anchors
