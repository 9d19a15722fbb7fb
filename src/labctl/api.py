"""The Python API for users' own tests.

    from labctl import Lab

    with Lab.from_file("topologies/seed.yaml", switch="ovs-dpdk") as lab:
        result = lab.run()
        assert not result.ok

The lab is always torn down when the block ends, also on an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from labctl.backends.base import Backends
from labctl.core.events import EventSink, discard
from labctl.core.http import TrafficSummary
from labctl.core.loader import Document, load_topology
from labctl.core.model import DEFAULT_IMAGE, RuntimeKind, SwitchKind, Topology
from labctl.core.plan import Plan, make_plan
from labctl.engine import Engine
from labctl.errors import ConfigError, LabctlError, Problem, UsageError
from labctl.state import LabState, StateStore

if TYPE_CHECKING:
    from labctl.core.doctor import HostFacts
    from labctl.core.model import DpdkOptions


def load(
    path: str | Path,
    switch: str | SwitchKind | None = None,
    name: str | None = None,
    runtime: str | None = None,
) -> tuple[Topology, Document]:
    """Load a topology and apply command-line overrides (switch kind, lab name)."""
    topology, doc = load_topology(path)
    if switch is not None:
        from labctl.core.switch_choice import apply_choice, parse_switch_choice, unknown_switches

        try:
            choice = parse_switch_choice(
                str(switch.value if isinstance(switch, SwitchKind) else switch)
            )
        except ValueError as error:
            raise UsageError(f"--switch: {error}") from None
        if not topology.all_switches():
            raise UsageError(f"--switch given, but {path} has no `switch:` nor `switches:`")
        unknown = unknown_switches(choice, topology)
        if unknown:
            raise UsageError(
                f"--switch {switch}: {path} has no switch {', '.join(unknown)} (it has: "
                f"{', '.join(sorted(topology.switch_names()))})"
            )
        topology = apply_choice(topology, choice)
    if name is not None:
        from labctl.core import names

        if not names.LAB_NAME_RE.match(name):
            raise UsageError(f"--name {name!r} must be 1-31 characters of a-z, 0-9 and '-'")
        topology = topology.with_name(name)
    if runtime is not None:
        kinds = [k.value for k in RuntimeKind]
        if runtime not in kinds:
            raise UsageError(f"--runtime {runtime!r} is not one of {', '.join(kinds)}")
        topology = topology.with_runtime(runtime)
    return topology, doc


class Lab:
    def __init__(
        self,
        topology: Topology,
        document: Document,
        *,
        backends: Backends | None = None,
        store: StateStore | None = None,
        on_event: EventSink = discard,
        host_checks: bool | None = None,
        host_facts: Callable[[DpdkOptions | None], HostFacts] | None = None,
    ):
        """`host_facts` gathers what the host checks judge (default: probe the host now);
        a caller running many labs on one host can pass one that probes once."""
        self.topology = topology
        self.host_facts = host_facts
        self.document = document
        self.emit = on_event
        self._close: Callable[[], None] = lambda: None
        # The doctor's checks run before `up` on the real host, not with injected backends.
        self.host_checks = backends is None if host_checks is None else host_checks
        if backends is None:
            from labctl.backends.registry import real_backends

            backends, self._close = real_backends(on_event)
        self.engine = Engine(backends, store or StateStore(), on_event)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        switch: str | SwitchKind | None = None,
        name: str | None = None,
        runtime: str | None = None,
        **kwargs: object,
    ) -> Lab:
        topology, doc = load(path, switch, name, runtime)
        return cls(topology, doc, **kwargs)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.topology.name

    def plan(self) -> Plan:
        return make_plan(self.topology)

    def check_host(self) -> None:
        """The doctor's checks for this lab's switch kind; refuse with the first failing one."""
        from labctl.core.doctor import blocking, evaluate
        from labctl.errors import PrerequisiteError

        if self.host_facts is None:
            from labctl.backends.host_probe import probe

            self.host_facts = probe
        switches = list(self.topology.all_switches().values())
        dpdk = next((s.dpdk for s in switches if s.kind is SwitchKind.OVS_DPDK), None)
        checks = evaluate(self.host_facts(dpdk))
        kinds = list(dict.fromkeys(s.kind for s in switches)) or [SwitchKind.LINUX_BRIDGE]
        failing = [f for kind in kinds for f in blocking(checks, kind, self.topology.runtime)]
        if failing:
            check = failing[0]
            raise PrerequisiteError(
                f"{check.name}: {check.detail}", check.fix or "see labctl doctor"
            )

    def preflight(self) -> None:
        """Everything that can be checked before creating anything: host, node images."""
        if self.host_checks:
            self.check_host()
        runtime = self.engine.runtime(self.topology)
        problems = []
        for node_name, node in self.topology.nodes.items():
            # The default image is the runtime's to build (prepare, below).
            if node.image != DEFAULT_IMAGE and not runtime.image_exists(node.image):
                problems.append(
                    self.document.problem(
                        ("nodes", node_name, "image"),
                        f"image {node.image!r} is not present locally and no registry is used; "
                        f"`docker load` or build it first, or use the default {DEFAULT_IMAGE}",
                    )
                )
        if self.host_checks and self.topology.runtime is RuntimeKind.NETNS:
            problems += self._missing_host_tools()
        if problems:
            raise ConfigError(problems)
        runtime.prepare(self.topology, self.emit)

    def _missing_host_tools(self) -> list[Problem]:
        """A netns node runs the host's binaries: each probe's programs must be there."""
        import shutil

        from labctl.core.doctor import PROVISION
        from labctl.core.probes import host_tools

        listed: list[tuple[str | int, ...]] = [("traffic",)] if self.topology.traffic else []
        listed += [("probes", index) for index in range(len(self.topology.probes))]
        problems = []
        for path, (name, probe) in zip(listed, self.topology.named_probes(), strict=True):
            for tool in host_tools(probe):
                if shutil.which(tool.command) is not None:
                    continue
                fix = (
                    f"apt-get install {tool.package} (or {PROVISION})"
                    if tool.package
                    else "install it on the host, or give its full path"
                )
                problems.append(
                    self.document.problem(
                        path,
                        f"probe {name!r} runs `{tool.command}`, which this host does not "
                        f"have, and netns nodes run the host's programs: {fix}",
                    )
                )
        return problems

    def up(self) -> LabState:
        self.preflight()
        return self.engine.up(self.topology, self.document.file)

    def run(self) -> TrafficSummary:
        from labctl.run import run_traffic

        return run_traffic(self.engine, self.name)

    def down(self) -> None:
        self.engine.down(self.name)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Lab:
        try:
            self.up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            try:
                self.down()
            except LabctlError:
                # down is idempotent: a second pass finishes what a passing failure stopped
                # (a busy daemon, an interrupted dump), so no lab state is left behind.
                self.down()
        except LabctlError:
            if exc is None:
                raise
        finally:
            self.close()
