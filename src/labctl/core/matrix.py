"""Labs with expectations, and the matrix of cells they run.

A lab (labs/<name>/lab.yaml) names a topology, the matrix (switch kinds x
offload settings) and what each cell is expected to show. Pure: loading,
enumerating cells, and comparing an observation with its expectation.

An offload setting (one column of the matrix) is a mapping whose keys are
offload features, nodes or interfaces of the topology::

    "on": {tx: true, rx: true}                  # every node (each interface)
    "server-only":
      client: {tx: off, rx: off}                # every interface of node client
      server:eth0: {tx: on, rx: on}             # one interface
    "mixed": {tx: off, server: {tx: on}}        # every node, then node server

The narrower target wins per feature (interface over node over every node),
and every level is laid over what the topology itself sets at that level.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from labctl.core.loader import (
    Document,
    model_problems,
    parse_yaml,
    read_topology_text,
    value_problems,
)
from labctl.core.model import Offload, SwitchKind, Topology
from labctl.core.probes import Latency, ProbeObservation
from labctl.errors import ConfigError, Problem, UsageError

OFFLOAD_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,11}$")
OFFLOAD_FEATURES = tuple(Offload.model_fields)
SWITCH_ABBREVIATIONS = {
    SwitchKind.LINUX_BRIDGE: "lb",
    SwitchKind.OVS_KERNEL: "ok",
    SwitchKind.OVS_USERSPACE: "ou",
    SwitchKind.OVS_DPDK: "od",
}
DEFAULT_OFFLOADS: dict[str, dict[str, Any]] = {
    "on": {"tx": True, "rx": True},
    "off": {"tx": False, "rx": False},
}
LAB_NAME_MAX = 31


@dataclass(frozen=True)
class OffloadSetting:
    """One column of the matrix: offload for every node, some nodes, some interfaces."""

    every: Offload = Offload()
    nodes: tuple[tuple[str, Offload], ...] = ()
    interfaces: tuple[tuple[str, str, Offload], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """As written in lab.yaml (features first, then node and node:interface targets)."""
        plain: dict[str, Any] = dict(self.every.as_dict())
        plain.update({node: offload.as_dict() for node, offload in self.nodes})
        plain.update({f"{n}:{i}": offload.as_dict() for n, i, offload in self.interfaces})
        return plain

    def apply(self, topology: Topology) -> Topology:
        nodes = {}
        node_settings = dict(self.nodes)
        for name, node in topology.nodes.items():
            node_wide = node_settings.get(name, Offload()).merged_over(self.every)
            interfaces = {
                ifname: node.interfaces[ifname].model_copy(
                    update={"offload": offload.merged_over(node.interfaces[ifname].offload)}
                )
                for target, ifname, offload in self.interfaces
                if target == name
            }
            update: dict[str, Any] = {"offload": node_wide.merged_over(node.offload)}
            if interfaces:
                update["interfaces"] = {**node.interfaces, **interfaces}
            nodes[name] = node.model_copy(update=update)
        return topology.model_copy(update={"nodes": nodes})


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatrixSpec(_Spec):
    switches: list[SwitchKind] = Field(default_factory=lambda: list(SwitchKind))
    platforms: list[StrictStr] | None = Field(
        None,
        description="where the cells run: host, or platform VMs (labctl.core.platforms); "
        "--platform overrides",
    )
    ovs_kernel_vm: StrictStr | Literal[False] | None = Field(
        None,
        description="on a host without the openvswitch kernel module, the platform VM that "
        "runs the host's ovs-kernel cells (default debian-12), or false to skip them; "
        "--ovs-kernel-vm and --no-ovs-kernel-vm override",
    )
    # Checked against the topology's nodes after loading, see `offload_settings`.
    offload: dict[StrictStr, dict[StrictStr, Any]] = Field(
        default_factory=lambda: dict(DEFAULT_OFFLOADS),
        description="named offload settings: features for every node, or per node / "
        "node:interface mappings of features",
    )


class When(_Spec):
    switch: SwitchKind | list[SwitchKind] | None = None
    offload: StrictStr | list[StrictStr] | None = None
    platform: StrictStr | list[StrictStr] | None = None

    def matches(self, switch: SwitchKind, offload: str, platform: str = "host") -> bool:
        switches = [self.switch] if isinstance(self.switch, SwitchKind) else self.switch
        offloads = [self.offload] if isinstance(self.offload, str) else self.offload
        platforms = [self.platform] if isinstance(self.platform, str) else self.platform
        return (
            (switches is None or switch in switches)
            and (offloads is None or offload in offloads)
            and (platforms is None or platform in platforms)
        )


Outcome = Literal["pass", "fail"]


class ProbeExpectation(_Spec):
    """What one probe shows in a cell: its result, and optionally bounds on its figures.
    Written as `pass` or `fail` alone, or as a mapping with `result:` and the bounds."""

    @model_validator(mode="before")
    @classmethod
    def _outcome_alone(cls, value: Any) -> Any:
        return {"result": value} if isinstance(value, str) else value

    result: Outcome
    min_mbps: Annotated[StrictFloat | StrictInt, Field(ge=0)] | None = None
    max_mbps: Annotated[StrictFloat | StrictInt, Field(ge=0)] | None = None
    min_loss_percent: Annotated[StrictFloat | StrictInt, Field(ge=0, le=100)] | None = None
    max_loss_percent: Annotated[StrictFloat | StrictInt, Field(ge=0, le=100)] | None = None
    max_rtt_ms: Annotated[StrictFloat | StrictInt, Field(gt=0)] | None = None
    max_retransmits: Annotated[StrictInt, Field(ge=0)] | None = None

    def differences(self, name: str, observed: ProbeObservation) -> list[str]:
        found = []
        result = "pass" if observed.ok else "fail"
        if result != self.result:
            why = "; ".join(observed.problems)
            found.append(
                f"expected probe {name} to {self.result}, it did {result}"
                + (f" ({why})" if why else "")
            )
        mbps = observed.throughput_mbps
        loss = observed.loss_percent
        rtt = observed.rtt_ms.avg if observed.rtt_ms is not None else None
        retransmits = observed.retransmits
        bounds: tuple[tuple[float | None, float | None, bool, str, str], ...] = (
            (self.min_mbps, mbps, True, "throughput", " Mbit/s"),
            (self.max_mbps, mbps, False, "throughput", " Mbit/s"),
            (self.min_loss_percent, loss, True, "loss", "%"),
            (self.max_loss_percent, loss, False, "loss", "%"),
            (self.max_rtt_ms, rtt, False, "average RTT", " ms"),
            (self.max_retransmits, retransmits, False, "retransmits", ""),
        )
        for bound, value, at_least, what, unit in bounds:
            if bound is None:
                continue
            words = "at least" if at_least else "at most"
            wanted = f"expected probe {name} {what} {words} {bound:g}{unit}"
            if value is None:
                found.append(f"{wanted}, not measured")
            elif (value < bound) if at_least else (value > bound):
                found.append(f"{wanted}, measured {value:g}{unit}")
        return found


class Expectation(_Spec):
    when: When = Field(default_factory=When)
    http: Outcome | None = Field(
        None, description="the result of the http probe(s): every request succeeds, or not"
    )
    probes: dict[StrictStr, ProbeExpectation] = Field(
        default_factory=dict,
        description="per probe name: pass, fail, or {result, bounds on its figures}",
    )
    findings: list[StrictStr] | None = Field(
        None,
        description="finding kinds that must be reported; [] means: no fault at all",
    )
    note: StrictStr | None = Field(
        None, description="what the cells it matches show, for the reports"
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
class Experiment:
    """A lab file loaded: its spec, the topology it names, and the offload settings
    (the matrix's columns) checked against that topology. Not to be confused with
    labctl.api.Lab, one running lab."""

    spec: LabSpec
    file: Path
    topology_file: Path
    topology: Topology
    topology_document: Document
    offloads: dict[str, OffloadSetting]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Cell:
    switch: SwitchKind
    offload_name: str
    offload: OffloadSetting
    expectation: Expectation | None

    @property
    def key(self) -> str:
        return f"{self.switch.value}-{self.offload_name}"

    def lab_name(self, lab: str) -> str:
        """Each cell is its own lab, so cells may run side by side."""
        suffix = f"-{SWITCH_ABBREVIATIONS[self.switch]}-{self.offload_name}"
        keep = min(18, LAB_NAME_MAX - len(suffix))
        return f"{lab[:keep].rstrip('-')}{suffix}"

    def topology(self, base: Topology, lab: str) -> Topology:
        cell = self.offload.apply(base).with_switch_kind(self.switch)
        return cell.with_name(self.lab_name(lab))


def load_lab(path: str | Path) -> Experiment:
    """Load labs/<name>/lab.yaml (or the directory) and the topology it names."""
    from labctl.examples import shipped

    file = shipped(path) or Path(path)
    if file.is_dir():
        file = file / "lab.yaml"
    doc = parse_yaml(read_topology_text(file), str(file))
    spec, problems = model_problems(doc, LabSpec)
    if spec is None:
        raise ConfigError(problems)
    problems += _lab_problems(spec, doc, file)
    topology_file = (file.parent / spec.topology).resolve()
    if not topology_file.is_file():
        raise ConfigError(problems)  # _lab_problems said so
    from labctl.core.loader import load_topology

    topology, topology_doc = load_topology(topology_file)
    if topology.switch is None:
        problems.append(
            doc.problem(
                ("topology",), f"{spec.topology} has no `switch:`; a matrix varies the switch kind"
            )
        )
    # Checked against the topology, so that every problem of the file shows at once.
    offloads, found = offload_settings(spec, doc, topology)
    problems += found
    problems += _probe_expectation_problems(spec, doc, topology)
    if problems:
        raise ConfigError(problems)
    if spec.requests is not None and topology.traffic is not None:
        traffic = topology.traffic.model_copy(update={"requests": spec.requests})
        topology = topology.model_copy(update={"traffic": traffic})
    return Experiment(spec, file, topology_file, topology, topology_doc, offloads)


def offload_settings(
    spec: LabSpec, doc: Document, topology: Topology
) -> tuple[dict[str, OffloadSetting], list[Problem]]:
    """Each named setting's keys: a feature (true/false, every node), a node or a
    node:interface of the topology (a mapping of features)."""
    settings: dict[str, OffloadSetting] = {}
    problems: list[Problem] = []
    for name, raw in spec.matrix.offload.items():
        path = ("matrix", "offload", name)
        features = {k: v for k, v in raw.items() if k in OFFLOAD_FEATURES}
        every, found = value_problems(doc, path, features, Offload)
        problems += found
        nodes: list[tuple[str, Offload]] = []
        interfaces: list[tuple[str, str, Offload]] = []
        for key, value in raw.items():
            if key in OFFLOAD_FEATURES:
                continue
            target = _offload_target(key, topology)
            if isinstance(target, str):
                problems.append(doc.problem((*path, key), target))
                continue
            offload, found = value_problems(doc, (*path, key), value, Offload)
            problems += found
            if offload is None:
                continue
            node, ifname = target
            if ifname is None:
                nodes.append((node, offload))
            else:
                interfaces.append((node, ifname, offload))
        if every is not None:
            settings[name] = OffloadSetting(every, tuple(nodes), tuple(interfaces))
    return settings, problems


def _offload_target(key: str, topology: Topology) -> tuple[str, str | None] | str:
    """(node, interface or None), or what is wrong with the key."""
    node, _, ifname = key.partition(":")
    if node not in topology.nodes:
        return (
            f"{key!r} is neither an offload feature ({', '.join(OFFLOAD_FEATURES)}) nor a "
            f"node of the topology ({', '.join(topology.nodes)}); use a feature for every "
            "node, NODE or NODE:INTERFACE for one"
        )
    if not ifname:
        return (node, None)
    if ifname not in topology.nodes[node].interfaces:
        return (
            f"node {node!r} has no interface {ifname!r} "
            f"(it has: {', '.join(topology.nodes[node].interfaces)})"
        )
    return (node, ifname)


def _probe_expectation_problems(spec: LabSpec, doc: Document, topology: Topology) -> list[Problem]:
    names = [name for name, _probe in topology.named_probes()]
    has_http = any(probe.kind == "http" for _name, probe in topology.named_probes())
    problems = []
    for index, expectation in enumerate(spec.expectations):
        if expectation.http is not None and not has_http:
            problems.append(
                doc.problem(
                    ("expectations", index, "http"),
                    "the topology has no http probe (no `traffic:`, no probe of kind http); "
                    "expect its probes by name under `probes:`",
                )
            )
        for name in expectation.probes:
            if name not in names:
                problems.append(
                    doc.problem(
                        ("expectations", index, "probes", name),
                        f"the topology has no probe {name!r} "
                        f"(it has: {', '.join(names) or 'none'})",
                    )
                )
    return problems


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
                    f"offload setting name {name!r} must be 1-12 characters of a-z, 0-9 and '-'",
                )
            )
    from labctl.core.platforms import PLATFORMS

    known = ", ".join(PLATFORMS)
    for index, name in enumerate(spec.matrix.platforms or []):
        if name not in PLATFORMS:
            problems.append(
                doc.problem(
                    ("matrix", "platforms", index), f"unknown platform {name!r} (known: {known})"
                )
            )
    vm = spec.matrix.ovs_kernel_vm
    if isinstance(vm, str) and (vm not in PLATFORMS or PLATFORMS[vm].is_host):
        vms = ", ".join(n for n, p in PLATFORMS.items() if not p.is_host)
        problems.append(
            doc.problem(
                ("matrix", "ovs_kernel_vm"),
                f"{vm!r} is not a platform VM (known: {vms}; false skips the cells)",
            )
        )
    for index, expectation in enumerate(spec.expectations):
        when_platforms = expectation.when.platform
        for name in [when_platforms] if isinstance(when_platforms, str) else when_platforms or []:
            if name not in PLATFORMS:
                problems.append(
                    doc.problem(
                        ("expectations", index, "when", "platform"),
                        f"unknown platform {name!r} (known: {known})",
                    )
                )
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
    lab: Experiment,
    switches: list[str] | None = None,
    offloads: list[str] | None = None,
    platform: str = "host",
) -> list[Cell]:
    """The cells to run, in matrix order, narrowed by --switch / --offload, with the
    expectations of `platform` (where the cells run)."""
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
        Cell(switch, name, lab.offloads[name], expectation_for(lab.spec, switch, name, platform))
        for switch in chosen_switches
        for name in chosen_offloads
    ]


def expectation_for(
    spec: LabSpec, switch: SwitchKind, offload: str, platform: str = "host"
) -> Expectation | None:
    """The first expectation whose `when` matches the cell."""
    return next((e for e in spec.expectations if e.when.matches(switch, offload, platform)), None)


class Observation(BaseModel):
    """What a cell showed: the traffic's outcome and the kinds of fault found."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    http: Literal["pass", "fail"] | None = None
    """None: the lab has no http probe."""
    succeeded: StrictInt
    failed: StrictInt
    latency_ms: Latency | None = None
    findings: tuple[str, ...] = ()  # kinds of fault findings, in report order
    verdict: str = ""
    probes: tuple[ProbeObservation, ...] = ()
    """Every probe's result, in the order they ran; empty in results of labctl before
    probes (their traffic was the http requests alone)."""

    @property
    def http_only(self) -> bool:
        """The traffic was the HTTP requests alone (then the reports word it as before)."""
        return all(p.kind == "http" for p in self.probes) and len(self.probes) <= 1

    def probes_line(self) -> str:
        """Every probe in a few words: "bulk 940.2 Mbit/s, 3 retransmits; ping6 FAIL ..."."""
        return "; ".join(
            " ".join(part for part in (p.name, "" if p.ok else "FAIL", p.summary()) if part)
            for p in self.probes
        )

    @property
    def traffic_ok(self) -> bool:
        """Every probe passed (results without probes: every HTTP request succeeded)."""
        if self.probes:
            return all(p.ok for p in self.probes)
        return self.http_ok

    @field_validator("latency_ms", mode="before")
    @classmethod
    def _finite_latency(cls, value: Any) -> Any:
        """No latency unless min, median and max are all numbers (NaN when nothing
        succeeded, in results of older runs)."""
        if isinstance(value, Mapping):
            numbers = [value.get(key) for key in ("min", "median", "max")]
            if not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in numbers
            ):
                return None
        return value

    @property
    def http_ok(self) -> bool:
        return self.http == "pass"

    @property
    def requests(self) -> int:
        return self.succeeded + self.failed

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.requests if self.requests else None


def compare(expectation: Expectation | None, observed: Observation) -> str | None:
    """None when the observation meets the expectation; else how it differs."""
    if expectation is None:
        return None
    differences = []
    if expectation.http is not None and observed.http != expectation.http:
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
    by_name = {p.name: p for p in observed.probes}
    for name, expected in expectation.probes.items():
        probe = by_name.get(name)
        if probe is None:
            differences.append(f"expected probe {name} to {expected.result}, it did not run")
            continue
        differences += expected.differences(name, probe)
    return "; ".join(differences) or None
