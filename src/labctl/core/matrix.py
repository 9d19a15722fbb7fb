"""Labs with expectations, and the matrix of cells they run.

A lab (labs/<name>/lab.yaml) names a topology, the matrix (switch kinds x
offload settings) and what each cell is expected to show. Pure: loading,
enumerating cells, and comparing an observation with its expectation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from labctl.core.loader import Document, model_problems, parse_yaml, read_topology_text
from labctl.core.model import Offload, SwitchKind, Topology
from labctl.errors import ConfigError, Problem, UsageError

OFFLOAD_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,7}$")
SWITCH_ABBREVIATIONS = {
    SwitchKind.LINUX_BRIDGE: "lb",
    SwitchKind.OVS_KERNEL: "ok",
    SwitchKind.OVS_USERSPACE: "ou",
    SwitchKind.OVS_DPDK: "od",
}
DEFAULT_OFFLOADS = {"on": Offload(tx=True, rx=True), "off": Offload(tx=False, rx=False)}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixSpec(_Spec):
    switches: list[SwitchKind] = Field(default_factory=lambda: list(SwitchKind))
    offload: dict[StrictStr, Offload] = Field(default_factory=lambda: dict(DEFAULT_OFFLOADS))


class When(_Spec):
    switch: SwitchKind | list[SwitchKind] | None = None
    offload: StrictStr | list[StrictStr] | None = None

    def matches(self, switch: SwitchKind, offload: str) -> bool:
        switches = [self.switch] if isinstance(self.switch, SwitchKind) else self.switch
        offloads = [self.offload] if isinstance(self.offload, str) else self.offload
        return (switches is None or switch in switches) and (
            offloads is None or offload in offloads
        )


class Expectation(_Spec):
    when: When = Field(default_factory=When)
    http: Literal["pass", "fail"]
    findings: list[StrictStr] | None = Field(
        None,
        description="finding kinds that must be reported; [] means: no fault at all",
    )


class LabSpec(_Spec):
    name: StrictStr
    description: StrictStr = ""
    topology: StrictStr
    matrix: MatrixSpec = Field(default_factory=MatrixSpec)
    expectations: list[Expectation] = Field(default_factory=list)
    notes: StrictStr = ""
    requests: Annotated[int, Field(ge=1, le=1000)] | None = None


@dataclass(frozen=True)
class Lab:
    spec: LabSpec
    file: Path
    topology_file: Path
    topology: Topology
    topology_document: Document

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Cell:
    switch: SwitchKind
    offload_name: str
    offload: Offload
    expectation: Expectation | None

    @property
    def key(self) -> str:
        return f"{self.switch.value}-{self.offload_name}"

    def lab_name(self, lab: str) -> str:
        """Each cell is its own lab, so cells may run side by side."""
        return f"{lab[:18].rstrip('-')}-{SWITCH_ABBREVIATIONS[self.switch]}-{self.offload_name}"

    def topology(self, base: Topology, lab: str) -> Topology:
        nodes = {
            name: node.model_copy(update={"offload": self.offload.merged_over(node.offload)})
            for name, node in base.nodes.items()
        }
        cell = base.model_copy(update={"nodes": nodes}).with_switch_kind(self.switch)
        return cell.with_name(self.lab_name(lab))


def load_lab(path: str | Path) -> Lab:
    """Load labs/<name>/lab.yaml (or the directory) and the topology it names."""
    from labctl.examples import shipped

    file = shipped(path) or Path(path)
    if file.is_dir():
        file = file / "lab.yaml"
    doc = parse_yaml(read_topology_text(file), str(file))
    spec, problems = model_problems(doc, LabSpec)
    if spec is not None:
        problems += _lab_problems(spec, doc, file)
    if problems:
        raise ConfigError(problems)
    from labctl.core.loader import load_topology

    topology_file = (file.parent / spec.topology).resolve()
    topology, topology_doc = load_topology(topology_file)
    if topology.switch is None:
        raise ConfigError(
            [
                doc.problem(
                    ("topology",),
                    f"{spec.topology} has no `switch:`; a matrix varies the switch kind",
                )
            ]
        )
    if spec.requests is not None and topology.traffic is not None:
        traffic = topology.traffic.model_copy(update={"requests": spec.requests})
        topology = topology.model_copy(update={"traffic": traffic})
    return Lab(spec, file, topology_file, topology, topology_doc)


def _lab_problems(spec: LabSpec, doc: Document, file: Path) -> list[Problem]:
    from labctl.core import names

    problems = []
    if not names.LAB_NAME_RE.match(spec.name):
        problems.append(
            doc.problem(
                ("name",), f"lab name {spec.name!r} must be 1-31 characters of a-z, 0-9 and '-'"
            )
        )
    if not (file.parent / spec.topology).is_file():
        problems.append(
            doc.problem(
                ("topology",), f"no topology file {spec.topology!r} (relative to {file.parent})"
            )
        )
    for name in spec.matrix.offload:
        if not OFFLOAD_NAME_RE.match(name):
            problems.append(
                doc.problem(
                    ("matrix", "offload", name),
                    f"offload setting name {name!r} must be 1-8 characters of a-z, 0-9 and '-'",
                )
            )
    for index, expectation in enumerate(spec.expectations):
        offloads = expectation.when.offload
        for name in [offloads] if isinstance(offloads, str) else offloads or []:
            if name not in spec.matrix.offload:
                problems.append(
                    doc.problem(
                        ("expectations", index, "when", "offload"),
                        f"unknown offload setting {name!r} (matrix has: "
                        f"{', '.join(spec.matrix.offload)})",
                    )
                )
    return problems


def cells(
    lab: Lab, switches: list[str] | None = None, offloads: list[str] | None = None
) -> list[Cell]:
    """The cells to run, in matrix order, narrowed by --switch / --offload."""
    matrix = lab.spec.matrix
    chosen_switches = list(matrix.switches)
    if switches:
        try:
            wanted = [SwitchKind(s) for s in switches]
        except ValueError as error:
            raise UsageError(f"--switch: {error}") from None
        chosen_switches = [s for s in wanted]
    chosen_offloads = list(matrix.offload)
    if offloads:
        unknown = [o for o in offloads if o not in matrix.offload]
        if unknown:
            raise UsageError(
                f"--offload {', '.join(unknown)}: lab {lab.name} has {', '.join(matrix.offload)}"
            )
        chosen_offloads = offloads
    return [
        Cell(switch, name, matrix.offload[name], expectation_for(lab.spec, switch, name))
        for switch in chosen_switches
        for name in chosen_offloads
    ]


def expectation_for(spec: LabSpec, switch: SwitchKind, offload: str) -> Expectation | None:
    """The first expectation whose `when` matches the cell."""
    return next((e for e in spec.expectations if e.when.matches(switch, offload)), None)


@dataclass(frozen=True)
class Observation:
    http_ok: bool
    succeeded: int
    failed: int
    latency_ms: dict[str, float] | None
    findings: tuple[str, ...]  # kinds of fault findings, in report order
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "http": "pass" if self.http_ok else "fail",
            "succeeded": self.succeeded,
            "failed": self.failed,
            "latency_ms": self.latency_ms,
            "findings": list(self.findings),
            "verdict": self.verdict,
        }


def compare(expectation: Expectation | None, observed: Observation) -> str | None:
    """None when the observation meets the expectation; else how it differs."""
    if expectation is None:
        return None
    differences = []
    observed_http = "pass" if observed.http_ok else "fail"
    if observed_http != expectation.http:
        differences.append(
            f"expected HTTP to {expectation.http}, it did "
            f"{'pass' if observed.http_ok else 'fail'} "
            f"({observed.succeeded}/{observed.succeeded + observed.failed})"
        )
    if expectation.findings is not None:
        if not expectation.findings and observed.findings:
            differences.append(f"expected no fault, found {', '.join(observed.findings)}")
        missing = [k for k in expectation.findings if k not in observed.findings]
        if missing:
            differences.append(f"expected finding {', '.join(missing)}, not reported")
    return "; ".join(differences) or None
