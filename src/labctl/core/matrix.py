"""Labs with expectations, and the matrix of cells they run.

A lab (labs/<name>/lab.yaml) names a topology, the matrix (switch kinds x
offload settings, x ovs_config settings for the OVS kinds when the lab names
any) and what each cell is expected to show. Pure: loading,
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
from dataclasses import dataclass, field
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

from labctl.core import ovs_config
from labctl.core.loader import (
    Document,
    model_problems,
    parse_yaml,
    read_topology_text,
    value_problems,
)
from labctl.core.model import Offload, Switch, SwitchKind, Topology
from labctl.core.probes import Latency, ProbeObservation
from labctl.core.switch_choice import (
    SWITCH_ABBREVIATIONS,
    SwitchChoice,
    apply_choice,
    combo_of,
    effective_kinds,
    parse_switch_choice,
    selector_matches,
    selector_problem,
    unknown_switches,
)
from labctl.errors import ConfigError, Problem, UsageError

OFFLOAD_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,11}$")
OFFLOAD_FEATURES = tuple(Offload.model_fields)
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


def _every_kind() -> list[SwitchKind | dict[str, SwitchKind]]:
    return list(SwitchKind)


class MatrixSpec(_Spec):
    switches: list[SwitchKind | dict[StrictStr, SwitchKind]] = Field(
        default_factory=lambda: _every_kind(),
        description="a kind (every switch of the topology), or {switch: kind, ...} for "
        "named switches (the others keep the topology's kinds)",
    )
    platforms: list[StrictStr] | None = Field(
        None,
        description="where the cells run: host, or platform VMs (labctl.core.platforms); "
        "--platform overrides",
    )
    ovs_config: dict[StrictStr, dict[StrictStr, Any]] | None = Field(
        None,
        description="named ovs-vswitchd other_config settings (labctl.core.ovs_config), laid "
        "over the topology's switch.ovs.other_config: one more dimension for the OVS "
        "switch kinds (a Linux bridge has one cell per offload setting)",
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
    switch: StrictStr | list[StrictStr] | None = Field(
        None,
        description="KIND: cells where every switch has this kind; SWITCH=KIND: cells where "
        "that switch has it; a list: any of them",
    )
    offload: StrictStr | list[StrictStr] | None = None
    platform: StrictStr | list[StrictStr] | None = None
    ovs_config: StrictStr | list[StrictStr] | None = Field(
        None, description="matrix.ovs_config names; a cell without one (linux-bridge) never matches"
    )

    @field_validator("switch")
    @classmethod
    def _switch_selectors(cls, value: str | list[str] | None) -> str | list[str] | None:
        for selector in [value] if isinstance(value, str) else value or []:
            problem = selector_problem(selector)
            if problem is not None:
                raise ValueError(problem)
        return value

    def matches(
        self,
        switch: SwitchKind | dict[str, SwitchKind],
        offload: str,
        platform: str = "host",
        ovs_config: str | None = None,
    ) -> bool:
        """`switch`: the cell's kind, or every switch's kind by name."""
        kinds = {"switch": switch} if isinstance(switch, SwitchKind) else switch
        switches = [self.switch] if isinstance(self.switch, str) else self.switch
        offloads = [self.offload] if isinstance(self.offload, str) else self.offload
        platforms = [self.platform] if isinstance(self.platform, str) else self.platform
        configs = [self.ovs_config] if isinstance(self.ovs_config, str) else self.ovs_config
        return (
            (switches is None or any(selector_matches(s, kinds) for s in switches))
            and (offloads is None or offload in offloads)
            and (platforms is None or platform in platforms)
            and (configs is None or ovs_config in configs)
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
    ovs_configs: dict[str, dict[str, str]] = field(default_factory=dict)
    """matrix.ovs_config, checked, values as OVSDB text; empty: no such dimension."""

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class Cell:
    switch: SwitchChoice
    """A kind for every switch, or kinds for named switches (labctl.core.switch_choice)."""
    offload_name: str
    offload: OffloadSetting
    expectation: Expectation | None
    ovs_config_name: str | None = None
    """matrix.ovs_config setting of an OVS cell; None: the lab has none, or linux-bridge."""
    ovs_config: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        # "+": setting names are a-z, 0-9 and '-', so no two cells share a key.
        config = f"+{self.ovs_config_name}" if self.ovs_config_name else ""
        return f"{self.switch.value}-{self.offload_name}{config}"

    def lab_name(self, lab: str) -> str:
        """Each cell is its own lab, so cells may run side by side."""
        switch = (
            SWITCH_ABBREVIATIONS[self.switch]
            if isinstance(self.switch, SwitchKind)
            else self.switch.abbreviation
        )
        suffix = f"-{switch}-{self.offload_name}"
        if self.ovs_config_name:
            suffix += f"-{self.ovs_config_name}"
        keep = max(1, min(18, LAB_NAME_MAX - len(suffix)))
        return f"{lab[:keep].rstrip('-')}{suffix}"[:LAB_NAME_MAX].rstrip("-")

    def topology(self, base: Topology, lab: str) -> Topology:
        cell = apply_choice(self.offload.apply(base), self.switch)
        if self.ovs_config_name:
            cell = with_ovs_config(cell, self.ovs_config)
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
    if not topology.all_switches():
        problems.append(
            doc.problem(
                ("topology",),
                f"{spec.topology} has no `switch:` nor `switches:`; a matrix varies the "
                "switch kind",
            )
        )
    for index, item in enumerate(spec.matrix.switches):
        if isinstance(item, dict):
            for name in unknown_switches(combo_of(item), topology):
                problems.append(
                    doc.problem(
                        ("matrix", "switches", index, name),
                        f"{spec.topology} has no switch {name!r} (it has: "
                        f"{', '.join(sorted(topology.switch_names())) or 'none'})",
                    )
                )
    # Checked against the topology, so that every problem of the file shows at once.
    offloads, found = offload_settings(spec, doc, topology)
    problems += found
    ovs_configs, found = ovs_config_settings(spec, doc, topology)
    problems += found
    problems += _probe_expectation_problems(spec, doc, topology)
    if problems:
        raise ConfigError(problems)
    if spec.requests is not None and topology.traffic is not None:
        traffic = topology.traffic.model_copy(update={"requests": spec.requests})
        topology = topology.model_copy(update={"traffic": traffic})
    return Experiment(spec, file, topology_file, topology, topology_doc, offloads, ovs_configs)


def ovs_config_settings(
    spec: LabSpec, doc: Document, topology: Topology
) -> tuple[dict[str, dict[str, str]], list[Problem]]:
    """matrix.ovs_config checked: names, known global keys (labctl.core.ovs_config) and
    their values; true/false and numbers as the text OVSDB stores."""
    settings: dict[str, dict[str, str]] = {}
    problems: list[Problem] = []
    raw_settings = spec.matrix.ovs_config
    if raw_settings is None:
        return settings, problems
    choices = [combo_of(s) if isinstance(s, dict) else s for s in spec.matrix.switches]
    if not any(uses_ovs(topology, choice) for choice in choices):
        problems.append(
            doc.problem(
                ("matrix", "ovs_config"),
                "matrix.ovs_config sets ovs-vswitchd, but matrix.switches has no OVS switch "
                "kind; add one or drop ovs_config",
            )
        )
    if not raw_settings:
        problems.append(
            doc.problem(("matrix", "ovs_config"), "ovs_config is empty; name at least one setting")
        )
    for name, raw in raw_settings.items():
        path = ("matrix", "ovs_config", name)
        if not OFFLOAD_NAME_RE.match(name):
            problems.append(
                doc.problem(
                    path,
                    f"ovs_config setting name {name!r} must be 1-12 characters of a-z, 0-9 and '-'",
                )
            )
        setting: dict[str, str] = {}
        for key, value in raw.items():
            text = ovs_config.as_text(value)
            if text is None:
                problems.append(
                    doc.problem((*path, key), f"{key}: expected a string, got {value!r}")
                )
                continue
            problem = ovs_config.key_problem(key, text)
            if problem is not None:
                problems.append(doc.problem((*path, key), problem))
            setting[key] = text
        settings[name] = setting
    return settings, problems


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
        configs = expectation.when.ovs_config
        for name in [configs] if isinstance(configs, str) else configs or []:
            if name not in (spec.matrix.ovs_config or {}):
                problems.append(
                    doc.problem(
                        ("expectations", index, "when", "ovs_config"),
                        f"unknown ovs_config setting {name!r} (matrix has: "
                        f"{', '.join(spec.matrix.ovs_config or {}) or 'none'})",
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
    ovs_configs: list[str] | None = None,
) -> list[Cell]:
    """The cells to run, in matrix order (switch kind, ovs_config setting, offload setting),
    narrowed by --switch / --offload / --ovs-config, with the expectations of `platform`
    (where the cells run). An OVS switch kind has a cell per ovs_config setting, a Linux
    bridge one cell per offload setting; --ovs-config leaves the Linux bridge out."""
    matrix = lab.spec.matrix
    chosen_switches: list[SwitchChoice] = [
        item if isinstance(item, SwitchKind) else combo_of(item) for item in matrix.switches
    ]
    if switches:
        try:
            chosen_switches = [parse_switch_choice(s) for s in switches]
        except ValueError as error:
            raise UsageError(f"--switch: {error}") from None
        for choice in chosen_switches:
            unknown = unknown_switches(choice, lab.topology)
            if unknown:
                known = ", ".join(sorted(lab.topology.switch_names()))
                raise UsageError(
                    f"--switch {choice.value}: {lab.topology_file.name} has no switch "
                    f"{', '.join(unknown)} (it has: {known})"
                )
    chosen_offloads = list(matrix.offload)
    if offloads:
        unknown = [o for o in offloads if o not in matrix.offload]
        if unknown:
            raise UsageError(
                f"--offload {', '.join(unknown)}: lab {lab.name} has {', '.join(matrix.offload)}"
            )
        chosen_offloads = offloads
    chosen_configs = _chosen_ovs_configs(lab, ovs_configs)
    if ovs_configs:
        chosen_switches = [s for s in chosen_switches if uses_ovs(lab.topology, s)]
        if not chosen_switches:
            raise UsageError("--ovs-config selects OVS cells, and no OVS switch kind is chosen")
    return [
        Cell(
            switch,
            name,
            lab.offloads[name],
            expectation_for(
                lab.spec, effective_kinds(lab.topology, switch), name, platform, config
            ),
            config,
            lab.ovs_configs.get(config, {}) if config else {},
        )
        for switch in chosen_switches
        for config in (chosen_configs if uses_ovs(lab.topology, switch) else [None])
        for name in chosen_offloads
    ]


def _chosen_ovs_configs(lab: Experiment, wanted: list[str] | None) -> list[str | None]:
    """The ovs_config settings of the OVS cells: --ovs-config's, else every one; [None]
    when the lab has none."""
    if not wanted:
        return list(lab.ovs_configs) or [None]
    if not lab.ovs_configs:
        raise UsageError(f"--ovs-config: lab {lab.name} has no matrix.ovs_config")
    unknown = [name for name in wanted if name not in lab.ovs_configs]
    if unknown:
        raise UsageError(
            f"--ovs-config {', '.join(unknown)}: lab {lab.name} has {', '.join(lab.ovs_configs)}"
        )
    return list(dict.fromkeys(wanted))


def uses_ovs(topology: Topology, choice: SwitchChoice) -> bool:
    """A cell with this choice has an OVS switch (so ovs-vswitchd, and matrix.ovs_config)."""
    return any(kind.is_ovs for kind in effective_kinds(topology, choice).values())


def with_ovs_config(topology: Topology, config: Mapping[str, str]) -> Topology:
    """`topology` with `config` laid over every OVS switch's other_config."""

    def laid(switch: Switch) -> Switch:
        if not switch.kind.is_ovs:
            return switch
        return switch.model_copy(update={"ovs": switch.ovs.with_other_config(dict(config))})

    if topology.switch is not None:
        return topology.model_copy(update={"switch": laid(topology.switch)})
    if topology.switches:
        laid_all = {name: laid(spec) for name, spec in topology.switches.items()}
        return topology.model_copy(update={"switches": laid_all})
    return topology


def expectation_for(
    spec: LabSpec,
    switch: SwitchKind | dict[str, SwitchKind],
    offload: str,
    platform: str = "host",
    ovs_config: str | None = None,
) -> Expectation | None:
    """The first expectation whose `when` matches the cell (`switch`: the cell's kind, or
    every switch's kind by name)."""
    return next(
        (e for e in spec.expectations if e.when.matches(switch, offload, platform, ovs_config)),
        None,
    )


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
