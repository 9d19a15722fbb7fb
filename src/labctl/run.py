"""Running a lab that is up: its traffic, captures at every tap around it, the diagnosis.

The engine builds and tears down; this module only uses a built lab. `run_traffic` sends
the topology's HTTP requests from its client node (`Lab.run`, the matrix and
`RunRecorder` call it); `RunRecorder` wraps it in one capture per tap and writes the run
directory; `diagnose_run_dir` analyses a run directory again (`labctl analyze`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.backends.base import CaptureResult, CaptureSpec
from labctl.core import http, probes
from labctl.core.events import Event
from labctl.core.model import (
    HttpProbe,
    IcmpProbe,
    ProbeSpec,
    TcpProbe,
    Topology,
    Traffic,
    UdpProbe,
)
from labctl.core.plan import CreateNodeLink, CreateSwitchLink, Plan, TapPoint, make_plan
from labctl.core.taps import default_filter, isolation, offload_senders
from labctl.engine import Engine
from labctl.errors import LabctlError, UsageError

if TYPE_CHECKING:
    # Reading pcaps is only for the diagnosis: `Lab.run` does not pay for importing it.
    from labctl.analysis.diagnosis import Diagnosis


@dataclass
class RunRecord:
    """One `labctl run`: where its artifacts are and what they say."""

    lab: str
    run_dir: Path
    http: http.TrafficSummary | None
    """The `traffic:` block's (or the first http probe's) requests; also in `probes`."""
    diagnosis: Diagnosis | None
    manifest: dict[str, Any]
    probes: list[probes.ProbeResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        if not self.probes:
            return self.http is not None and self.http.ok
        return all(p.ok for p in self.probes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "run_dir": str(self.run_dir),
            "http": self.http.to_dict() if self.http else None,
            "probes": [p.to_dict() for p in self.probes],
            "diagnosis": self.diagnosis.to_dict() if self.diagnosis else None,
            "manifest": self.manifest,
        }


def run_traffic(engine: Engine, lab: str, topology: Topology | None = None) -> http.TrafficSummary:
    """The lab's HTTP requests (its `traffic:` block), sent from its client node, without
    captures. `topology` is read from the lab's state when not given."""
    if topology is None:
        _state, topology = engine.load_state(lab)
    traffic = topology.traffic
    if traffic is None:
        raise UsageError(f"lab {lab!r} has no `traffic:` section to run")
    return http_traffic(engine, lab, topology, traffic)


def http_traffic(
    engine: Engine, lab: str, topology: Topology, traffic: Traffic
) -> http.TrafficSummary:
    """One http probe (or the `traffic:` block): every request at once, from its client."""
    client = engine.node(lab, traffic.client, topology)
    argv = http.batch_client_argv(topology, traffic)
    engine.emit(
        Event(
            "phase",
            f"HTTP: {traffic.requests} requests from {traffic.client} to "
            f"{http.url(topology, traffic)}, concurrently (timeout {traffic.timeout} s "
            "each)",
        )
    )
    budget = http.batch_seconds(traffic) + 10
    outcome = engine.runtime(topology).exec(client, argv, timeout=budget)
    results = http.parse_batch(traffic.requests, outcome.exit_code, outcome.stdout, outcome.stderr)
    return http.TrafficSummary(http.url(topology, traffic), tuple(results))


SERVER_WAIT = 5.0
"""How long a tcp or udp probe waits for its iperf3 server to listen."""
EXEC_SLACK = 10.0
"""Seconds the runtime waits beyond a probe's own `timeout` before it gives up on the exec."""


def run_probes(
    engine: Engine,
    lab: str,
    topology: Topology,
    into: list[probes.ProbeResult] | None = None,
) -> list[probes.ProbeResult]:
    """Every probe of the topology, one after another (the traffic block's http probe
    first), appended to `into` as each one ends. What each runs and how its output is
    read is in labctl.core.probes."""
    results = into if into is not None else []
    for name, probe in topology.named_probes():
        engine.emit(Event("phase", f"probe {name}: {probes.describe(topology, probe)}"))
        result = run_probe(engine, lab, topology, name, probe)
        engine.emit(
            Event(
                "info" if result.ok else "warning",
                f"probe {name}: {'pass' if result.ok else 'FAIL'}"
                + (f" ({result.summary()})" if result.summary() else "")
                + ("" if result.ok else ": " + "; ".join(result.problems)),
            )
        )
        results.append(result)
    return results


def run_probe(
    engine: Engine, lab: str, topology: Topology, name: str, probe: ProbeSpec
) -> probes.ProbeResult:
    target = probes.describe(topology, probe)
    if isinstance(probe, HttpProbe):
        return probes.from_http(name, target, http_traffic(engine, lab, topology, probe))
    runtime = engine.runtime(topology)
    if isinstance(probe, TcpProbe | UdpProbe):
        server = engine.node(lab, probe.server, topology)
        runtime.exec(server, probes.iperf_server_argv(probe), detach=True)
        if not _listening(engine, lab, topology, probe.server, probe.port):
            return probes.result_of(
                name,
                probe.kind,
                target,
                f"the iperf3 server on {probe.server}:{probe.port} is not listening after "
                f"{SERVER_WAIT:g} s (the node image needs iperf3)",
            )
        argv = probes.iperf_client_argv(topology, probe)
        node = probe.client
    elif isinstance(probe, IcmpProbe):
        argv = probes.ping_argv(topology, probe)
        node = probe.client
    else:
        argv = probes.command_argv(probe)
        node = probe.node
    handle = engine.node(lab, node, topology)
    outcome = runtime.exec(handle, argv, timeout=probes.probe_seconds(probe) + EXEC_SLACK)
    return probes.parse(name, topology, probe, outcome.exit_code, outcome.stdout, outcome.stderr)


def _listening(engine: Engine, lab: str, topology: Topology, node: str, port: int) -> bool:
    from labctl.engine import _socket_tables

    runtime = engine.runtime(topology)
    handle = engine.node(lab, node, topology)
    deadline = time.monotonic() + SERVER_WAIT
    while time.monotonic() < deadline:
        # iperf3's control connection is TCP, also for -u.
        if http.listening(_socket_tables(runtime, handle), port):
            return True
        time.sleep(0.02)
    return False


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
                    self._run_probes(record, lab, topology)
                    _wait_until_quiet([spec.pcap for spec in specs])
            else:
                manifest["offload"] = readback.result()
                self._run_probes(record, lab, topology)
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
            if record.probes:
                _write_json(run_dir / "probes.json", [p.to_dict() for p in record.probes])
            if results:
                record.diagnosis = self._diagnose(manifest, run_dir)
        return record

    def _run_probes(self, record: RunRecord, lab: str, topology: Topology) -> None:
        if not topology.named_probes():
            raise UsageError(f"lab {lab!r} has no `traffic:` or `probes:` to run")
        try:
            # Appended one by one: a probe that raises leaves the earlier results in place.
            run_probes(self.engine, lab, topology, into=record.probes)
        finally:
            record.http = next((p.http for p in record.probes if p.http is not None), None)

    def _switch_health(self, topology: Topology) -> list[str]:
        problems: list[str] = []
        for kind in dict.fromkeys(s.kind for s in topology.all_switches().values()):
            backend = self.engine.backends.switch_for(kind)
            try:
                problems += [p for p in backend.health() if p not in problems]
            except LabctlError as error:
                problems.append(str(error))
        return problems

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
    def _tap_entry(topology: Topology, tap: TapPoint, spec: CaptureSpec) -> dict[str, Any]:
        return {
            "name": tap.name,
            "where": tap.description,
            "namespace": tap.namespace,
            "ifname": tap.ifname,
            "filter": spec.filter,
            "pcap": spec.pcap.name,
            "offload_senders": sorted(offload_senders(topology, tap)),
            "off_path": tap.off_path,
            "isolation": isolation(topology, tap.name),
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
        from labctl.analysis.diagnosis_text import render_text

        (run_dir / "diagnosis.txt").write_text(render_text(diagnosis) + "\n")
        return diagnosis


def diagnose_run_dir(run_dir: Path, manifest: dict[str, Any] | None = None) -> Diagnosis:
    """The diagnosis of a run directory, taps in the topology's (path) order."""
    from labctl.analysis.diagnose import diagnose
    from labctl.analysis.diagnosis import Tap

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
            off_path=t.get("off_path", False),
            isolation=t.get("isolation", ""),
        )
        for t in manifest["taps"]
        if (run_dir / t["pcap"]).exists()
    ]
    return diagnose(taps)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
