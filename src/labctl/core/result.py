"""The matrix result: what `labctl matrix` found, as typed records.

The runner (labctl.matrix) builds a `MatrixResult` cell by cell; every report
(labctl.reports) renders one; `labctl report merge` reads the shards' report.json
back into it. report.json is `MatrixResult.to_json()`:

    {"lab", "lab_version", "runtime", "description", "notes", "lab_file",
     "topology_file", "started_at", "topology", "switches", "offloads",
     "ovs_configs", "report_dir", "schedule", "matrix_cells", "shard", "cells", "host",
     "ended_at", "seconds", "summary"}

A result merged from shards has "shards" (where each ran) instead of "schedule"
and "shard". Each cell: switch, offload, offload_settings, lab_name, status
(passed | failed | skipped | error), reason, expected, observed, run_dir, pcaps,
diagnosis, host, seconds, window, ovs_config (the matrix.ovs_config setting of an OVS
cell, null otherwise), ovs_config_settings. "summary" is counted from the cells when
written and ignored when read. `read_matrix` reads such JSON, also hand-made
(fields the reports do not need may be missing; "ok" is read as "pass"), and
names the path of a malformed value: `cells[3].observed.succeeded`.

Pure: pydantic and the core's own models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    computed_field,
    field_serializer,
    model_validator,
)

from labctl.core.matrix import Expectation, Observation
from labctl.core.model import Topology
from labctl.errors import UsageError

Status = Literal["passed", "failed", "skipped", "error"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "skipped", "error")
JsonScalar = str | int | float | bool | None


class _Record(BaseModel):
    # Unknown keys are ignored: a report.json of a newer labctl still reads.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class TapRecord(_Record):
    """One tap of a cell's diagnosis (analysis.diagnose.TapSummary as JSON)."""

    name: str = ""
    pcap: str = ""
    frames: StrictInt = 0
    packets: StrictInt = 0
    skipped: dict[str, StrictInt] = Field(default_factory=dict)
    ip_header_wrong: StrictInt = 0
    verdicts: dict[str, StrictInt] = Field(default_factory=dict)
    off_path: StrictBool = False  # not a hop of the path: `frames` is what reached it
    isolation: str = ""  # why the traffic can never reach it; "" for a branch

    def off_path_meaning(self) -> str:
        """What an off-path tap's count says, in a few words for the reports."""
        if self.isolation:
            outcome = "nothing reached it" if self.frames == 0 else "LEAK (seen-off-path, a fault)"
            return f"isolated ({self.isolation}): {outcome}"
        if self.frames == 0:
            return "a branch: nothing reached it"
        return "a branch: a switch floods a first packet there (seen-off-path, a warning)"


class FindingRecord(_Record):
    """One finding of a cell's diagnosis (analysis.diagnose.Finding as JSON)."""

    kind: str = "finding"
    severity: str = "fault"
    tap: str = ""
    flow: str = ""
    message: str = ""
    packets: tuple[str, ...] = ()
    evidence: dict[str, JsonScalar] = Field(default_factory=dict)


class DiagnosisRecord(_Record):
    """A cell's diagnosis as written to its run directory (analysis.diagnose.Diagnosis)."""

    ok: StrictBool = False
    verdict: str = ""
    taps: list[TapRecord] = Field(default_factory=list)
    flows: list[dict[str, Any]] = Field(default_factory=list)  # packet timelines, not read
    findings: list[FindingRecord] = Field(default_factory=list)


def _http_word(value: object) -> object:
    """ "pass" or "fail": the runner writes those, hand-made results also "ok"."""
    if value is True or value in ("ok", "passed"):
        return "pass"
    if value is False or value == "failed":
        return "fail"
    return value


class Row(NamedTuple):
    """A row of the report's table: a switch kind, and for an OVS kind in a lab with
    matrix.ovs_config, one of its settings."""

    switch: str
    ovs_config: str | None = None

    @property
    def label(self) -> str:
        return f"{self.switch} {self.ovs_config}" if self.ovs_config else self.switch


class CellResult(_Record):
    switch: str
    offload: str
    offload_settings: dict[str, Any] = Field(default_factory=dict)
    lab_name: str | None = None
    status: Status
    reason: str | None = None
    expected: Expectation | None = None
    observed: Observation | None = None
    run_dir: str | None = None
    pcaps: dict[str, str] = Field(default_factory=dict)  # tap name -> path, in tap order
    diagnosis: DiagnosisRecord | None = None
    host: str | None = None  # the machine it ran on
    seconds: float | None = None
    # When the cell ran, in seconds since the matrix started: shows which cells overlapped.
    window: tuple[float, float] | None = None
    # From when it could use its switch: a cell that waited for the OVS daemons started its
    # nodes earlier (window) than its switch.
    switch_window: tuple[float, float] | None = None
    # Where it ran (labctl.core.platforms) and that platform's kernel, OS, OVS, DPDK, Docker.
    platform: str = "host"
    platform_versions: dict[str, str | None] = Field(default_factory=dict)
    # The matrix.ovs_config setting of an OVS cell (None: the lab has none, or a Linux
    # bridge) and its other_config.
    ovs_config: str | None = None
    ovs_config_settings: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _http_words(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        for part in ("expected", "observed"):
            if isinstance(data.get(part), Mapping) and "http" in data[part]:
                data[part] = {**data[part], "http": _http_word(data[part]["http"])}
        return data

    @field_serializer("expected")
    def _expected_as_written(self, expected: Expectation | None) -> dict[str, Any] | None:
        # `when` chose the expectation for this cell; the cell does not repeat it.
        return None if expected is None else expected.model_dump(exclude={"when"})

    # ---- for the reports

    @property
    def key(self) -> str:
        """As labctl.core.matrix.Cell.key."""
        config = f"+{self.ovs_config}" if self.ovs_config else ""
        return f"{self.switch}-{self.offload}{config}"

    @property
    def row(self) -> Row:
        return Row(self.switch, self.ovs_config)

    @property
    def on_platform(self) -> str:
        """What names the platform VM a cell ran in, after its switch and offload; "" on the
        host."""
        return "" if self.platform == "host" else f" (in the {self.platform} VM)"

    @property
    def title(self) -> str:
        config = f", ovs_config {self.ovs_config}" if self.ovs_config else ""
        return f"{self.switch}, offload {self.offload}{config}{self.on_platform}"

    @property
    def test_name(self) -> str:
        config = f" ovs_config={self.ovs_config}" if self.ovs_config else ""
        return f"{self.switch} offload={self.offload}{config}"

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
        """Worth quoting evidence for: HTTP or a probe failed, or the cell differs."""
        http_failed = self.observed is not None and not self.observed.traffic_ok
        return http_failed or self.status == "failed"


class ScheduleWait(_Record):
    cell: str
    reason: str


class Schedule(_Record):
    """How the runner ran the cells: how many at a time, and which waited why."""

    workers: StrictInt
    rules: list[str] = Field(default_factory=list)
    waits: list[ScheduleWait] = Field(default_factory=list)


class ShardRef(_Record):
    index: StrictInt
    count: StrictInt


class ShardRecord(_Record):
    """In a merged result: one shard, where it ran and which cells it had."""

    shard: str  # "K/N"
    hostname: str | None = None
    report: str
    seconds: float | None = None
    cells: list[str] = Field(default_factory=list)
    host: dict[str, str | None] = Field(default_factory=dict)


class Counts(BaseModel):
    passed: int
    failed: int
    skipped: int
    error: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.error


class MatrixResult(_Record):
    lab: str
    lab_version: str | None = None  # hash of lab.yaml and the topology file
    runtime: str | None = None
    description: str = ""
    notes: str = ""
    lab_file: str | None = None
    topology_file: str | None = None
    started_at: str | None = None
    topology: Topology | None = None
    switches: list[str] = Field(default_factory=list)
    offloads: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ovs_configs: dict[str, dict[str, str]] = Field(default_factory=dict)
    report_dir: str | None = None
    schedule: Schedule | None = None
    matrix_cells: list[str] = Field(default_factory=list)  # every cell, also other shards'
    shard: ShardRef | None = None
    cells: list[CellResult] = Field(default_factory=list)
    host: dict[str, str | None] = Field(default_factory=dict)
    ended_at: str | None = None
    seconds: float | None = None
    shards: list[ShardRecord] | None = None  # a result merged from shards
    # A matrix over platforms (labctl.platform_matrix): each platform's versions and costs.
    platforms: dict[str, dict[str, Any]] = Field(default_factory=dict)
    platform_notes: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _host_values_as_text(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("host"), Mapping):
            host = {
                k: v if v is None or isinstance(v, str) else str(v) for k, v in data["host"].items()
            }
            data = {**data, "host": host}
        return data

    @field_serializer("topology")
    def _topology_as_written(self, topology: Topology | None) -> dict[str, Any] | None:
        return None if topology is None else topology.model_dump(mode="json", exclude_none=True)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(c.status for c in self.cells)
        return {status: counts.get(status, 0) for status in STATUSES}

    def to_json(self) -> dict[str, Any]:
        """As report.json has it: a merged result has no schedule or shard of its own,
        an unmerged one no shards."""
        exclude = {"schedule", "shard"} if self.shards is not None else {"shards"}
        return self.model_dump(mode="json", exclude=exclude)

    # ---- for the reports

    @property
    def merged(self) -> bool:
        return bool(self.shards)

    @property
    def switch_axis(self) -> list[str]:
        """The switch kinds listed, then any a cell names that the list lacks."""
        return list(dict.fromkeys([*self.switches, *(c.switch for c in self.cells)]))

    @property
    def offload_axis(self) -> dict[str, dict[str, Any]]:
        """The offload settings listed, then any a cell names that the list lacks."""
        axis = dict(self.offloads)
        for cell in self.cells:
            axis.setdefault(cell.offload, {})
        return axis

    @property
    def row_axis(self) -> list[Row]:
        """The table's rows: each switch kind of switch_axis, an OVS kind once per
        ovs_config setting its cells ran with (listed settings first)."""
        configs = list(dict.fromkeys([*self.ovs_configs, *(c.ovs_config for c in self.cells)]))
        rows = []
        for switch in self.switch_axis:
            ran = {c.ovs_config for c in self.cells if c.switch == switch}
            mine = [name for name in configs if name in ran]
            rows += [Row(switch, name) for name in mine] or [Row(switch)]
        return rows

    def cell(self, switch: str, offload: str, ovs_config: str | None = None) -> CellResult | None:
        return next(
            (
                c
                for c in self.cells
                if c.switch == switch and c.offload == offload and c.ovs_config == ovs_config
            ),
            None,
        )

    def ordered_cells(self) -> list[CellResult]:
        """Row by row (switch kinds, with their ovs_config settings), then offload
        settings, then platforms, as the matrix table reads."""
        rows, offloads = self.row_axis, list(self.offload_axis)
        platforms = list(dict.fromkeys([*self.platforms, *(c.platform for c in self.cells)]))
        return sorted(
            self.cells,
            key=lambda c: (
                rows.index(c.row),
                offloads.index(c.offload),
                platforms.index(c.platform),
            ),
        )

    @property
    def counts(self) -> Counts:
        """Counted from the cells; a "summary" in the JSON read is not trusted."""
        return Counts(**self.summary)

    @property
    def failed(self) -> bool:
        return bool(self.summary["failed"] or self.summary["error"])


def read_matrix(data: object) -> MatrixResult:
    """A matrix result from its JSON data; UsageError names the path of a malformed value."""
    try:
        return MatrixResult.model_validate(data)
    except ValidationError as error:
        raise _problem(error) from None


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _problem(error: ValidationError) -> UsageError:
    first = error.errors()[0]
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    path = path or "<top>"
    if first["type"] == "missing":
        return UsageError(f"matrix result: {path}: missing")
    if first["type"] == "literal_error":
        what = f"one of {first.get('ctx', {}).get('expected', '')}"
    else:
        what = _EXPECTED.get(first["type"], first["msg"])
    return UsageError(f"matrix result: {path}: expected {what}, got {first['input']!r}")
