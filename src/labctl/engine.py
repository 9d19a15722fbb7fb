"""Applies plans through the backends, as a journal that can be undone.

`up` applies the steps in order and records each completed step in the state
file; if a step fails (or the user presses Ctrl-C) the completed steps are
undone in reverse order and the original error is raised. `down` replays the
state in reverse, then sweeps whatever still carries the lab's identity in
every backend, so it also works after a crash or with the state file gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.backends.base import (
    AddressSpec,
    Backends,
    CaptureResult,
    CaptureSpec,
    NodeHandle,
    NodeRuntime,
    Owned,
)
from labctl.core import http
from labctl.core.events import Event, EventSink, discard
from labctl.core.model import Topology
from labctl.core.plan import (
    AttachPort,
    ConfigureOffload,
    CreateNode,
    CreateNodeLink,
    CreateSwitch,
    CreateSwitchLink,
    InterfaceSettings,
    Plan,
    StartHttpServer,
    Step,
    make_plan,
)
from labctl.core.taps import default_filter, offload_senders
from labctl.errors import (
    BackendError,
    LabctlError,
    PrerequisiteError,
    TeardownError,
    UsageError,
)
from labctl.state import LabState, StateStore

if TYPE_CHECKING:
    # Reading pcaps is only for `run`: up and down do not pay for importing it.
    from labctl.analysis.diagnose import Diagnosis


@dataclass
class RunRecord:
    """One `labctl run`: where its artifacts are and what they say."""

    lab: str
    run_dir: Path
    http: http.TrafficSummary | None
    diagnosis: Diagnosis | None
    manifest: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.http is not None and self.http.ok

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "run_dir": str(self.run_dir),
            "http": self.http.to_dict() if self.http else None,
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
            "manifest": self.manifest,
        }


def _address_spec(settings: InterfaceSettings) -> AddressSpec:
    return AddressSpec(addresses=settings.addresses, mac=settings.mac, mtu=settings.mtu)


class Engine:
    def __init__(self, backends: Backends, store: StateStore, on_event: EventSink = discard):
        self.backends = backends
        self.store = store
        self.emit = on_event
        # Node handles kept for the duration of `same_nodes()` (None: look up every time).
        self._node_handles: dict[tuple[str, str], NodeHandle] | None = None

    @contextmanager
    def same_nodes(self) -> Iterator[None]:
        """Within the block each node is looked up once: one command (a run: captures,
        offload readback, traffic) asks the runtime once per node, not once per use."""
        outer = self._node_handles
        if outer is None:
            self._node_handles = {}
        try:
            yield
        finally:
            self._node_handles = outer

    # ---- up ---------------------------------------------------------------------------

    def up(self, topology: Topology, topology_file: str) -> LabState:
        plan = make_plan(topology)
        lab = topology.name
        with self.store.lock(lab):
            existing = self.store.load(lab)
            if existing is not None:
                raise UsageError(
                    f"lab {lab!r} is already {existing.status} (since "
                    f"{time.strftime('%H:%M:%S', time.localtime(existing.created_at))}); "
                    f"run `labctl down {lab}` first"
                )
            if topology.switch is not None:
                self.backends.switch_for(topology.switch.kind).check(topology.switch)
            state = LabState(
                lab=lab,
                topology_file=topology_file,
                topology=topology.model_dump(mode="json"),
                switch_kind=plan.switch_kind,
            )
            self.store.save(state)
            self._apply(plan, topology, state)
            state.status = "up"
            self.store.save(state)
            return state

    def _apply(self, plan: Plan, topology: Topology, state: LabState) -> None:
        total = len(plan.steps)
        handles: dict[str, NodeHandle] = {}
        done: list[tuple[Step, dict[str, Any]]] = []
        self.emit(Event("phase", f"building lab {plan.lab}: {total} steps"))

        def record(index: int, step: Step, result: dict[str, Any], started: float) -> None:
            # Idempotent: after a Ctrl-C the parallel path records what finished, once.
            if any(other.key == step.key for other, _result in done):
                return
            done.append((step, result))
            state.completed.append({"key": step.key, "action": step.action, "result": result})
            self.store.save(state)
            self.emit(
                Event("step-done", step.description, index, total, time.monotonic() - started)
            )

        # An HTTP server needs only its node: it starts as soon as the node runs, beside the
        # wiring (busybox httpd listens on the wildcard address), and is journalled at its
        # place in the plan, after the steps before it.
        early_steps = [s for s in plan.steps if isinstance(s, StartHttpServer)]
        early: dict[str, tuple[Future[dict[str, Any]], float]] = {}
        early_pool = ThreadPoolExecutor(max_workers=len(early_steps)) if early_steps else None

        def start_early() -> None:
            for step in early_steps:
                if early_pool and step.key not in early and step.node in handles:
                    future = early_pool.submit(self._do, step, topology, handles, state)
                    early[step.key] = (future, time.monotonic())

        try:
            for batch in _batches(plan.steps):
                start_early()
                if len(batch) == 1:
                    index, step = batch[0]
                    started = time.monotonic()
                    self.emit(Event("step-start", step.description, index, total))
                    if step.key in early:
                        future, started = early[step.key]
                        result = future.result()
                    else:
                        result = self._do(step, topology, handles, state)
                    record(index, step, result, started)
                else:
                    self._apply_parallel(batch, topology, handles, state, record)
        except BaseException as error:  # also Ctrl-C: nothing half-built may remain
            # A server still starting finishes first: the rollback removes its node.
            wait([future for future, _started in early.values()])
            self.emit(Event("step-failed", f"{_one_line(error)}; undoing {len(done)} steps"))
            leftovers = self._undo(topology, done)
            if not leftovers:
                self.store.delete(plan.lab)
            else:
                state.status = "failed"
                self.store.save(state)
                self.emit(Event("warning", "rollback left: " + "; ".join(leftovers)))
            raise
        finally:
            if early_pool is not None:
                early_pool.shutdown(wait=True)

    def _apply_parallel(
        self,
        batch: list[tuple[int, Step]],
        topology: Topology,
        handles: dict[str, NodeHandle],
        state: LabState,
        record: Callable[[int, Step, dict[str, Any], float], None],
    ) -> None:
        """Independent steps (nodes, the switch) side by side; each is journalled when it is
        done, also those that finish after another one failed, so rollback sees them all."""
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=min(PARALLEL_WORKERS, len(batch)))
        futures = [
            (index, step, pool.submit(self._do, step, topology, handles, state))
            for index, step in batch
        ]
        try:
            for index, step, future in futures:
                record(index, step, future.result(), started)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            for index, step, future in futures:
                if future.done() and not future.cancelled() and future.exception() is None:
                    record(index, step, future.result(), started)
            raise
        finally:
            pool.shutdown(wait=True)

    def _do(
        self, step: Step, topology: Topology, handles: dict[str, NodeHandle], state: LabState
    ) -> dict[str, Any]:
        b = self.backends
        lab = topology.name
        if isinstance(step, CreateNode):
            handle = self.runtime(topology).ensure_node(lab, step.node, topology.nodes[step.node])
            handles[step.node] = handle
            state.nodes[step.node] = {"container_id": handle.container_id, "pid": handle.pid}
            return {"container_id": handle.container_id, "pid": handle.pid}
        if isinstance(step, CreateSwitch):
            return b.switch_for(step.switch.kind).ensure_switch(lab, step.bridge, step.switch)
        if isinstance(step, CreateSwitchLink):
            return b.links.ensure_veth_to_node(
                lab,
                step.host_ifname,
                handles[step.node],
                step.ifname,
                _address_spec(step.settings),
                role=f"link {step.node}:{step.ifname}",
            )
        if isinstance(step, AttachPort):
            return b.switch_for(step.switch.kind).ensure_port(
                lab, step.bridge, step.port, step.host_ifname, step.switch
            )
        if isinstance(step, CreateNodeLink):
            return b.links.ensure_veth_between_nodes(
                lab,
                step.transient_names,
                (handles[step.a[0]], step.a[1], _address_spec(step.a_settings)),
                (handles[step.b[0]], step.b[1], _address_spec(step.b_settings)),
                role=f"link {step.a[0]}:{step.a[1]}-{step.b[0]}:{step.b[1]}",
            )
        if isinstance(step, ConfigureOffload):
            return self._configure_offload(handles[step.node], step)
        if isinstance(step, StartHttpServer):
            return self._start_http_server(self.runtime(topology), handles[step.node], step)
        raise AssertionError(f"no handler for {step.action}")

    def _configure_offload(self, handle: NodeHandle, step: ConfigureOffload) -> dict[str, Any]:
        control = self.backends.offload
        if control is None:
            raise BackendError(step.description, "this labctl has no offload backend")
        result = {"node": control.apply(handle.netns_path, step.ifname, step.offload)}
        if step.host_ifname and step.host_offload is not None:
            result["host"] = control.apply(None, step.host_ifname, step.host_offload)
        return result

    def _start_http_server(
        self, runtime: NodeRuntime, handle: NodeHandle, step: StartHttpServer
    ) -> dict[str, Any]:
        runtime.exec(handle, http.server_argv(step.port), detach=True)
        # Bounded wait until the server listens, so `run` does not race its start.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if http.listening(_socket_tables(runtime, handle), step.port):
                return {"port": step.port}
            time.sleep(0.02)
        raise BackendError(
            f"starting the HTTP server on {step.node}:{step.port}",
            "it is not listening after 10 s",
            "the node image needs busybox (httpd); set traffic.start_server: "
            "false if the image serves by itself",
        )

    # ---- undo / down ------------------------------------------------------------------

    def _undo(self, topology: Topology, done: list[tuple[Step, dict[str, Any]]]) -> list[str]:
        leftovers: list[str] = []
        steps = [step for step, _result in reversed(done)]
        for batch in _batches(steps):
            with ThreadPoolExecutor(max_workers=min(PARALLEL_WORKERS, len(batch))) as pool:
                for _index, step in batch:
                    self.emit(Event("undo", f"undo: {step.description}"))
                outcomes = list(pool.map(lambda item: self._try_undo(topology, item[1]), batch))
            leftovers.extend(o for o in outcomes if o)
        return leftovers

    def _try_undo(self, topology: Topology, step: Step) -> str | None:
        try:
            self._undo_step(topology, step)
        except LabctlError as error:
            return f"{step.description}: {error}"
        return None

    def _undo_step(self, topology: Topology, step: Step) -> None:
        b = self.backends
        lab = topology.name
        if isinstance(step, CreateNode):
            self.runtime(topology).remove_node(lab, step.node)
        elif isinstance(step, CreateSwitch):
            b.switch_for(step.switch.kind).remove_switch(lab, step.bridge)
        elif isinstance(step, CreateSwitchLink):
            b.links.remove_link(lab, step.host_ifname)
        elif isinstance(step, AttachPort):
            b.switch_for(step.switch.kind).remove_port(
                lab, step.bridge, step.port, step.host_ifname
            )
        elif isinstance(step, CreateNodeLink):
            for name in step.transient_names:
                b.links.remove_link(lab, name)

    def down(self, lab: str) -> list[Owned]:
        """Remove everything of `lab`. Returns what the sweep found beyond the state file."""
        with self.store.lock(lab):
            state = self.store.load(lab)
            leftovers: list[str] = []
            if state is not None:
                self.emit(Event("phase", f"tearing down lab {lab}: {len(state.completed)} steps"))
                topology = Topology.model_validate(state.topology)
                plan = make_plan(topology)
                by_key = {s.key: s for s in plan.steps}
                done = [
                    (by_key[c["key"]], c["result"]) for c in state.completed if c["key"] in by_key
                ]
                leftovers = self._undo(topology, done)
            else:
                self.emit(Event("phase", f"no state for lab {lab}; sweeping by labels"))
            swept = self._sweep(lab)
            remaining = self.owned(lab)
            if remaining:
                raise TeardownError([str(o) for o in remaining] + leftovers)
            self.store.delete(lab)
            return swept

    def _sweep(self, lab: str) -> list[Owned]:
        # Nodes first: removing a container destroys its namespace and its veth ends.
        b = self.backends
        swept: list[Owned] = []
        runtimes = list(b.runtimes.values())
        for sweeper in (
            *[r.sweep for r in runtimes],
            b.links.sweep,
            *[s.sweep for s in b.all_switches()],
        ):
            try:
                found = sweeper(lab)
            except LabctlError as error:
                self.emit(Event("warning", f"sweep: {error}"))
                continue
            for item in found:
                self.emit(Event("info", f"swept leftover {item}"))
            swept.extend(found)
        return swept

    def owned(self, lab: str | None = None) -> list[Owned]:
        b = self.backends
        found: list[Owned] = []
        for lister in (
            *[r.list_owned for r in b.runtimes.values()],
            b.links.list_owned,
            *[s.list_owned for s in b.all_switches()],
        ):
            try:
                found.extend(lister(lab))
            except PrerequisiteError:
                continue  # e.g. no Docker on a host that runs netns labs only
        return found

    def runtime(self, topology: Topology) -> NodeRuntime:
        try:
            return self.backends.runtimes[topology.runtime]
        except KeyError:
            raise UsageError(f"no node runtime {topology.runtime!r} in this labctl") from None

    def known_labs(self) -> list[str]:
        labs = set(self.store.labs())
        labs.update(o.lab for o in self.owned(None))
        return sorted(labs)

    # ---- run --------------------------------------------------------------------------

    def load_state(self, lab: str) -> tuple[LabState, Topology]:
        state = self.store.load(lab)
        if state is None or state.status != "up":
            raise UsageError(f"lab {lab!r} is not up; start it with `labctl up <topology>`")
        return state, Topology.model_validate(state.topology)

    def node(self, lab: str, name: str, topology: Topology | None = None) -> NodeHandle:
        """A running node of a lab that is up (its topology read from the state if not given)."""
        known = self._node_handles
        if known is not None and (lab, name) in known:
            return known[(lab, name)]
        if topology is None:
            _state, topology = self.load_state(lab)
        handle = self.runtime(topology).get_node(lab, name)
        if handle is None:
            raise UsageError(
                f"node {name!r} of lab {lab!r} is not running; `labctl down {lab}` and up again"
            )
        if known is not None:
            known[(lab, name)] = handle
        return handle

    def run_traffic(self, lab: str) -> http.TrafficSummary:
        _state, topology = self.load_state(lab)
        return self._traffic(lab, topology)

    def _traffic(self, lab: str, topology: Topology) -> http.TrafficSummary:
        traffic = topology.traffic
        if traffic is None:
            raise UsageError(f"lab {lab!r} has no `traffic:` section to run")
        client = self.node(lab, traffic.client, topology)
        argv = http.batch_client_argv(topology, traffic)
        self.emit(
            Event(
                "phase",
                f"HTTP: {traffic.requests} requests from {traffic.client} to "
                f"{http.url(topology, traffic)}, concurrently (timeout {traffic.timeout} s "
                "each)",
            )
        )
        budget = http.batch_seconds(traffic) + 10
        outcome = self.runtime(topology).exec(client, argv, timeout=budget)
        results = http.parse_batch(
            traffic.requests, outcome.exit_code, outcome.stdout, outcome.stderr
        )
        return http.TrafficSummary(http.url(topology, traffic), tuple(results))


def _socket_tables(runtime: NodeRuntime, handle: NodeHandle) -> str:
    """/proc/net/tcp{,6} of the node's namespace; read from the host when a process of the
    node is known (fast), else through the runtime."""
    if handle.pid > 0:
        try:
            return "".join(
                Path(f"/proc/{handle.pid}/net/{name}").read_text() for name in ("tcp", "tcp6")
            )
        except OSError:
            pass
    return runtime.exec(handle, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text


PARALLEL_WORKERS = 8
"""Containers start (and are removed) this many at a time: dockerd works in parallel."""

PARALLEL_STEPS = (CreateNode, CreateSwitch)
"""Steps that depend on nothing before them: the nodes, and the switch (with its OVS
daemons), start at the same time; links and ports come after both."""


def _batches(steps: Sequence[Step]) -> list[list[tuple[int, Step]]]:
    """Runs of consecutive independent steps, numbered from 1; everything else alone."""
    batches: list[list[tuple[int, Step]]] = []
    for index, step in enumerate(steps, start=1):
        previous = batches[-1] if batches else None
        if (
            previous
            and isinstance(step, PARALLEL_STEPS)
            and isinstance(previous[-1][1], PARALLEL_STEPS)
        ):
            previous.append((index, step))
        else:
            batches.append([(index, step)])
    return batches


QUIET_MIN = 0.02
QUIET_POLL = 0.02
QUIET_MAX = 1.0
"""After the last request, packets still in flight (the last ACKs) must reach every tap,
also when a busy-polling OVS thread keeps the CPUs busy: wait QUIET_MIN, then until no
pcap grows for three polls, at most QUIET_MAX seconds."""


def _wait_until_quiet(pcaps: Sequence[Path]) -> None:
    def sizes() -> list[int]:
        found = []
        for pcap in pcaps:
            try:
                found.append(pcap.stat().st_size)
            except OSError:
                found.append(-1)
        return found

    deadline = time.monotonic() + QUIET_MAX
    time.sleep(QUIET_MIN)
    last, calm = sizes(), 0
    while calm < 3 and time.monotonic() < deadline:
        time.sleep(QUIET_POLL)
        now = sizes()
        calm = calm + 1 if now == last else 0
        last = now


class RunRecorder:
    """`labctl run`: captures at every tap around the traffic, then the diagnosis.

    Artifacts go to <runs_root>/<lab>/<timestamp>/: one pcap per tap,
    manifest.json, http.json, diagnosis.json and diagnosis.txt. They are
    written even when the traffic or the capture fails.
    """

    def __init__(self, engine: Engine, runs_root: Path):
        self.engine = engine
        self.runs_root = runs_root

    def run(self, lab: str, run_dir: Path | None = None) -> RunRecord:
        """Run the lab's traffic with captures; artifacts in `run_dir` (default: a new one)."""
        with self.engine.same_nodes():
            return self._run(lab, run_dir)

    def _run(self, lab: str, run_dir: Path | None) -> RunRecord:
        engine = self.engine
        state, topology = engine.load_state(lab)
        plan = make_plan(topology)
        if run_dir is None:
            run_dir = self._new_run_dir(lab)
        else:
            run_dir.mkdir(parents=True, exist_ok=True)
        specs = self._capture_specs(lab, topology, plan, run_dir)
        manifest: dict[str, Any] = {
            "lab": lab,
            "topology_file": state.topology_file,
            "topology": state.topology,
            "switch_kind": plan.switch_kind,
            "taps": [
                self._tap_entry(topology, tap, spec)
                for tap, spec in zip(plan.taps, specs, strict=True)
            ],
            "versions": {},  # filled in below, gathered while the traffic runs
            "offload": {},  # read back while the captures start
            "started_at": _now(),
        }
        record = RunRecord(lab, run_dir, None, None, manifest)
        results: list[CaptureResult] = []
        # Asking every tool for its version takes a few subprocesses, and reading back the
        # offload settings a netlink query per interface: overlap both with starting the
        # captures. The readback is complete before any traffic is sent.
        versions_pool = ThreadPoolExecutor(max_workers=2)
        versions = versions_pool.submit(engine.backends.host_versions)
        readback = versions_pool.submit(self._offload_readback, lab, topology, plan)
        try:
            capture = engine.backends.capture
            if specs and capture is not None:
                engine.emit(Event("phase", f"capturing at {len(specs)} taps into {run_dir}"))
                with capture.capturing(specs) as results:
                    manifest["offload"] = readback.result()
                    record.http = engine._traffic(lab, topology)
                    _wait_until_quiet([spec.pcap for spec in specs])
            else:
                manifest["offload"] = readback.result()
                record.http = engine._traffic(lab, topology)
        finally:
            if not manifest["offload"] and readback.done() and readback.exception() is None:
                manifest["offload"] = readback.result()
            manifest["ended_at"] = _now()
            try:
                manifest["versions"] = versions.result(timeout=30)
            except Exception as error:  # noqa: BLE001 - a manifest field, not a run failure
                manifest["versions"] = {"error": str(error)}
            versions_pool.shutdown(wait=False)
            manifest["switch_health"] = self._switch_health(topology)
            for problem in manifest["switch_health"]:
                engine.emit(Event("warning", problem))
            manifest["captures"] = [
                {
                    "tap": r.tap,
                    "pcap": r.pcap.name,
                    "packets_captured": r.packets_captured,
                    "packets_dropped": r.packets_dropped,
                }
                for r in results
            ]
            _write_json(run_dir / "manifest.json", manifest)
            if record.http is not None:
                _write_json(run_dir / "http.json", record.http.to_dict())
            if results:
                record.diagnosis = self._diagnose(manifest, run_dir)
        return record

    def _switch_health(self, topology: Topology) -> list[str]:
        if topology.switch is None:
            return []
        backend = self.engine.backends.switch_for(topology.switch.kind)
        try:
            return list(backend.health())
        except LabctlError as error:
            return [str(error)]

    def _new_run_dir(self, lab: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = self.runs_root / lab / stamp
        suffix = 1
        while run_dir.exists():
            suffix += 1
            run_dir = self.runs_root / lab / f"{stamp}-{suffix}"
        run_dir.mkdir(parents=True)
        return run_dir

    def _capture_specs(
        self, lab: str, topology: Topology, plan: Plan, run_dir: Path
    ) -> list[CaptureSpec]:
        specs = []
        for tap in plan.taps:
            netns = None
            if tap.namespace != "host":
                netns = self.engine.node(lab, tap.namespace, topology).netns_path
            specs.append(
                CaptureSpec(
                    tap.name,
                    tap.ifname,
                    run_dir / f"{tap.name}.pcap",
                    netns,
                    tap.filter or default_filter(topology),
                )
            )
        return specs

    @staticmethod
    def _tap_entry(topology: Topology, tap: Any, spec: CaptureSpec) -> dict[str, Any]:
        return {
            "name": tap.name,
            "where": tap.description,
            "namespace": tap.namespace,
            "ifname": tap.ifname,
            "filter": spec.filter,
            "pcap": spec.pcap.name,
            "offload_senders": sorted(offload_senders(topology, tap)),
        }

    def _offload_readback(self, lab: str, topology: Topology, plan: Plan) -> dict[str, Any]:
        control = self.engine.backends.offload
        if control is None:
            return {}
        readings: dict[str, Any] = {}
        for step in plan.steps:
            if isinstance(step, CreateSwitchLink):
                node = self.engine.node(lab, step.node, topology)
                readings[f"{step.node}:{step.ifname}"] = control.read(node.netns_path, step.ifname)
                readings[f"host:{step.host_ifname}"] = control.read(None, step.host_ifname)
            elif isinstance(step, CreateNodeLink):
                for node_name, ifname in (step.a, step.b):
                    node = self.engine.node(lab, node_name, topology)
                    readings[f"{node_name}:{ifname}"] = control.read(node.netns_path, ifname)
        return readings

    def _diagnose(self, manifest: dict[str, Any], run_dir: Path) -> Diagnosis | None:
        diagnosis = diagnose_run_dir(run_dir, manifest)
        _write_json(run_dir / "diagnosis.json", diagnosis.to_dict())
        from labctl.analysis.diagnose import render_text

        (run_dir / "diagnosis.txt").write_text(render_text(diagnosis) + "\n")
        return diagnosis


def diagnose_run_dir(run_dir: Path, manifest: dict[str, Any] | None = None) -> Diagnosis:
    """The diagnosis of a run directory, taps in the topology's (path) order."""
    from labctl.analysis.diagnose import Tap, diagnose

    if manifest is None:
        manifest = json.loads((run_dir / "manifest.json").read_text())
    drops = {c["tap"]: c.get("packets_dropped") or 0 for c in manifest.get("captures", [])}
    # The topology places every tap: positions and TCP's evidence are judged together.
    taps = [
        Tap(
            t["name"],
            run_dir / t["pcap"],
            frozenset(t["offload_senders"]),
            drops.get(t["name"], 0),
            positioned=True,
        )
        for t in manifest["taps"]
        if (run_dir / t["pcap"]).exists()
    ]
    return diagnose(taps)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
