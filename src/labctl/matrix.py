"""`labctl matrix`: one lab over switch kinds x offload settings.

Each cell is its own lab (its own name), built, run with captures and
diagnosis, and torn down; then its observation is compared with the lab's
expectation. Cells that cannot run on this host (a missing prerequisite)
are reported as skipped with the reason, never as passed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from labctl.backends.base import Backends, SwitchBackend
from labctl.core import schedule
from labctl.core.events import Event, EventSink, discard
from labctl.core.matrix import Cell, Experiment, Observation, compare
from labctl.core.model import Topology
from labctl.core.probes import Latency, ProbeObservation
from labctl.core.result import (
    CellResult,
    DiagnosisRecord,
    MatrixResult,
    Schedule,
    ScheduleWait,
    ShardRecord,
    ShardRef,
    read_matrix,
)
from labctl.errors import LabctlError, PrerequisiteError, UsageError
from labctl.run import RunRecord, RunRecorder

BackendsFactory = Callable[[EventSink], tuple[Backends, Callable[[], None]]]


def _real_backends(on_event: EventSink) -> tuple[Backends, Callable[[], None]]:
    from labctl.backends.registry import real_backends

    return real_backends(on_event)


def observe(record: RunRecord) -> Observation:
    summary = record.http
    diagnosis = record.diagnosis
    faults = tuple(
        dict.fromkeys(
            f.kind for f in (diagnosis.findings if diagnosis else ()) if f.severity == "fault"
        )
    )
    latency = summary.latency_ms() if summary else None
    http_probe = (
        summary is not None or not record.probes or any(p.kind == "http" for p in record.probes)
    )
    return Observation(
        http=("pass" if summary and summary.ok else "fail") if http_probe else None,
        succeeded=summary.succeeded if summary else 0,
        failed=summary.failed if summary else 0,
        latency_ms=Latency(**latency) if latency else None,
        findings=faults,
        verdict=diagnosis.verdict if diagnosis else "no taps: no diagnosis",
        probes=tuple(ProbeObservation.model_validate(p.to_dict()) for p in record.probes),
    )


class MatrixRunner:
    def __init__(
        self,
        lab: Experiment,
        runs_root: Path,
        on_event: EventSink = discard,
        backends_factory: BackendsFactory = _real_backends,
        host_checks: bool = True,
        runtime: str | None = None,
    ):
        self.lab = lab
        self.runs_root = runs_root
        self.emit = on_event
        self.backends_factory = backends_factory
        self.host_checks = host_checks
        self.runtime = runtime  # overrides the topology's node runtime
        self._facts_lock = threading.Lock()
        self._facts: dict[Any, Any] = {}

    def run(
        self, cells: list[Cell], workers: int = 1, shard: tuple[int, int] | None = None
    ) -> MatrixResult:
        """Run every cell, up to `workers` at the same time (each cell is its own lab).
        Cells that need differently configured OVS daemons take turns (see
        labctl.core.schedule); the cells' results do not depend on `workers`.
        With `shard` (K, N), only share K of N of the cells (labctl.core.schedule.shard_of)."""
        if workers < 1:
            raise UsageError(f"workers must be at least 1, not {workers}")
        started = time.monotonic()
        all_keys = [cell.key for cell in cells]
        if shard is not None:
            assigned = schedule.shard_of([self._job(cell) for cell in cells], shard[1])
            cells = [cell for cell, k in zip(cells, assigned, strict=True) if k == shard[0]]
        out_dir = self._new_dir()
        jobs = [self._job(cell) for cell in cells]
        result = MatrixResult(
            lab=self.lab.name,
            lab_version=lab_version(self.lab),
            runtime=self.runtime or self.lab.topology.runtime,
            description=self.lab.spec.description,
            notes=self.lab.spec.notes,
            lab_file=str(self.lab.file),
            topology_file=str(self.lab.topology_file),
            started_at=_now(),
            topology=self.lab.topology,
            switches=list(dict.fromkeys(c.switch.value for c in cells)),
            offloads={c.offload_name: c.offload.as_dict() for c in cells},
            ovs_configs={c.ovs_config_name: dict(c.ovs_config) for c in cells if c.ovs_config_name},
            report_dir=str(out_dir),
            schedule=Schedule(workers=workers, rules=schedule.rules(jobs)),
            matrix_cells=all_keys,
            shard=None if shard is None else ShardRef(index=shard[0], count=shard[1]),
        )
        # Tool versions do not change between cells: ask once, while the first cells run.
        versions_pool = ThreadPoolExecutor(max_workers=1)
        versions = versions_pool.submit(self._host_versions)
        try:
            entries = self._run_all(cells, jobs, workers, out_dir, started, result)
        finally:
            versions_pool.shutdown(wait=True)
        result.cells = entries
        try:
            host = {k: None if v is None else str(v) for k, v in versions.result().items()}
        except Exception as error:  # noqa: BLE001 - a report field, never a reason to fail
            host = {"error": str(error)}
        result.host = {**host, "hostname": socket.gethostname()}
        result.ended_at = _now()
        result.seconds = round(time.monotonic() - started, 2)
        return result

    def _run_all(
        self,
        cells: list[Cell],
        jobs: list[schedule.Job],
        workers: int,
        out_dir: Path,
        started: float,
        result: MatrixResult,
    ) -> list[CellResult]:
        entries: list[CellResult | None] = [None] * len(cells)
        pending = schedule.start_order(jobs)
        running: dict[Future[CellResult], int] = {}
        told: set[int] = set()
        done_count = 0
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cell")
        try:
            while pending or running:
                while True:
                    index, waits = schedule.next_to_start(
                        jobs, pending, list(running.values()), workers
                    )
                    for waiting, reason in waits.items():
                        if waiting not in told:  # say why once per cell
                            told.add(waiting)
                            assert result.schedule is not None
                            result.schedule.waits.append(
                                ScheduleWait(cell=jobs[waiting].key, reason=reason)
                            )
                            self.emit(Event("info", f"{jobs[waiting].key} waits: {reason}"))
                    gate: list[Future[CellResult]] = []
                    if index is None:
                        # Nothing else can start, a worker is free, and a cell waits only
                        # for the OVS daemons (cells still running use them otherwise
                        # configured): it starts now and builds everything but its switch
                        # (the node containers; links wait for the switch), which waits
                        # until those cells have finished (gated_switches).
                        index = _first_gated(jobs, pending, list(running.values()), workers)
                        if index is None:
                            break
                        gate = [
                            future
                            for future, other in running.items()
                            if schedule.conflict(jobs[index], jobs[other]) is not None
                        ]
                    pending.remove(index)
                    cell = cells[index]
                    self.emit(
                        Event(
                            "phase",
                            f"cell {index + 1}/{len(cells)}: {cell.switch.value}, "
                            f"offload {cell.offload_name}"
                            + (
                                f", ovs_config {cell.ovs_config_name}"
                                if cell.ovs_config_name
                                else ""
                            ),
                        )
                    )
                    future = pool.submit(self._run_cell, cell, out_dir / cell.key, started, gate)
                    running[future] = index
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = running.pop(future)
                    entry = future.result()
                    entries[index] = entry
                    done_count += 1
                    self.emit(
                        Event(
                            "step-done",
                            _cell_line(entry),
                            done_count,
                            len(cells),
                            entry.seconds,
                        )
                    )
        except BaseException:
            # Ctrl-C: start nothing more; running cells finish and tear their labs down.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        return [entry for entry in entries if entry is not None]

    def _new_dir(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.runs_root / self.lab.name / stamp
        suffix = 1
        while path.exists():
            suffix += 1
            path = self.runs_root / self.lab.name / f"{stamp}-{suffix}"
        path.mkdir(parents=True)
        return path

    def _job(self, cell: Cell) -> schedule.Job:
        expectation = cell.expectation
        failing = frozenset(
            name
            for name, wanted in (expectation.probes.items() if expectation else ())
            if wanted.result == "fail"
        )
        return schedule.job(
            cell.key,
            self._topology(cell),
            expect_http_fail=expectation is not None and expectation.http == "fail",
            failing_probes=failing,
        )

    def _topology(self, cell: Cell) -> Topology:
        topology = cell.topology(self.lab.topology, self.lab.name)
        if self.runtime is not None:
            topology = topology.with_runtime(self.runtime)
        return topology

    def _host_versions(self) -> dict[str, Any]:
        backends, close = self.backends_factory(discard)
        try:
            return dict(backends.host_versions())
        finally:
            close()

    def _host_facts(self, dpdk: Any) -> Any:
        """The doctor's host facts, gathered once per matrix (per DPDK setting): the host
        does not change between cells, and cells side by side need not each probe it."""
        from labctl.backends.host_probe import probe

        with self._facts_lock:
            if dpdk not in self._facts:
                self._facts[dpdk] = probe(dpdk)
            return self._facts[dpdk]

    def _run_cell(
        self,
        cell: Cell,
        run_dir: Path,
        matrix_started: float,
        gate: list[Future[CellResult]] | None = None,
    ) -> CellResult:
        """One cell's lab: up, run, down. With `gate`, its switch is created only once
        those cells (which need the OVS daemons otherwise configured) have finished."""
        from labctl.api import Lab as LiveLab

        started = time.monotonic()
        switch_from = [started]
        entry = CellResult(
            switch=cell.switch.value,
            offload=cell.offload_name,
            offload_settings=cell.offload.as_dict(),
            lab_name=cell.lab_name(self.lab.name),
            status="error",
            expected=cell.expectation,
            ovs_config=cell.ovs_config_name,
            ovs_config_settings=dict(cell.ovs_config),
        )
        topology = self._topology(cell)
        backends, close = self.backends_factory(discard)
        if gate:
            backends = gated_switches(backends, gate, switch_from)
        try:
            live = LiveLab(
                topology,
                self.lab.topology_document,
                backends=backends,
                host_checks=self.host_checks,
                host_facts=self._host_facts,
            )
            with live:
                record = RunRecorder(live.engine, self.runs_root).run(live.name, run_dir)
            observation = observe(record)
            difference = compare(cell.expectation, observation)
            entry.status = "failed" if difference else "passed"
            entry.reason = difference
            entry.observed = observation
            entry.run_dir = str(run_dir)
            entry.pcaps = {t["name"]: str(run_dir / t["pcap"]) for t in record.manifest["taps"]}
            if record.diagnosis is not None:
                entry.diagnosis = DiagnosisRecord.model_validate(record.diagnosis.to_dict())
        except PrerequisiteError as error:
            entry.status, entry.reason = "skipped", str(error)
        except LabctlError as error:
            entry.status, entry.reason = "error", " / ".join(error.lines())
        finally:
            close()
        ended = time.monotonic()
        entry.host = socket.gethostname()
        entry.seconds = round(ended - started, 2)
        entry.window = (round(started - matrix_started, 3), round(ended - matrix_started, 3))
        # When it could use the switch: from the start, or from when its gate opened.
        entry.switch_window = (round(switch_from[0] - matrix_started, 3), entry.window[1])
        return entry


def _first_gated(
    jobs: list[schedule.Job], pending: list[int], running: list[int], workers: int
) -> int | None:
    """The first pending job that waits only because of running jobs it conflicts with,
    when a worker is free; None otherwise."""
    if len(running) >= workers:
        return None
    return next(
        (
            index
            for index in pending
            if any(schedule.conflict(jobs[index], jobs[other]) for other in running)
        ),
        None,
    )


class _GatedSwitch:
    """A switch backend whose ensure_switch first waits for `gate` (cells that need the
    OVS daemons in another configuration) to finish; everything else passes through."""

    def __init__(self, backend: SwitchBackend, gate: list[Future[CellResult]], opened: list[float]):
        self._backend = backend
        self._gate = gate
        self._opened = opened

    def ensure_switch(self, lab: str, bridge: str, switch: Any) -> dict[str, Any]:
        wait(self._gate)
        self._opened[0] = time.monotonic()
        return self._backend.ensure_switch(lab, bridge, switch)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def gated_switches(
    backends: Backends, gate: list[Future[CellResult]], opened: list[float]
) -> Backends:
    """`backends` whose switches are created only after `gate` finished (see _GatedSwitch);
    `opened[0]` becomes the time the gate opened."""

    def switch_for(kind: Any) -> SwitchBackend:
        return cast(SwitchBackend, _GatedSwitch(backends.switch_for(kind), gate, opened))

    return replace(backends, switch_for=switch_for)


def lab_version(lab: Experiment) -> str:
    """What makes two matrix results comparable: a hash of lab.yaml and the topology file
    as they are on disk (12 hex digits of SHA-256)."""
    digest = hashlib.sha256()
    for path in (lab.file, lab.topology_file):
        digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def _cell_line(entry: CellResult) -> str:
    head = f"{entry.test_name}: {entry.status}"
    observed = entry.observed
    if observed and observed.http_only:
        head += f" (HTTP {observed.succeeded}/{observed.requests})"
    elif observed:
        head += f" ({observed.probes_line()})"
    if entry.reason and entry.status != "passed":
        head += f": {entry.reason}"
    return head


def report_paths(out: Path) -> dict[str, Path]:
    """Where a matrix's reports go in its directory, by format."""
    return {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "junit": out / "junit.xml",
        "html": out / "report.html",
    }


def write_reports(result: MatrixResult) -> dict[str, Path]:
    """report.json, report.md, junit.xml and report.html in the matrix directory."""
    from labctl.reports import html, junit, markdown

    if result.report_dir is None:
        raise UsageError("the matrix result names no report directory to write to")
    out = Path(result.report_dir)
    paths = report_paths(out)
    paths["json"].write_text(json.dumps(result.to_json(), indent=2) + "\n")
    paths["markdown"].write_text(markdown.render(result))
    paths["junit"].write_text(junit.render(result))
    paths["html"].write_text(html.render(result, report_dir=out))
    return paths


def exit_code(result: MatrixResult) -> int:
    return 1 if result.failed else 0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def merge_reports(inputs: list[Path], out_dir: Path) -> MatrixResult:
    """One matrix result from the report.json of every shard of one lab version.

    Refuses shards of different labs or lab versions, unsharded results, a shard given
    twice, and missing shards. Each cell's run directory (pcaps, diagnosis) is copied
    into `out_dir/<cell>/` so that the merged report links to files next to it; each
    cell keeps the name of the host it ran on."""
    shards = [_read_shard(path) for path in inputs]
    first_path, first = shards[0]
    for path, data in shards[1:]:
        for key, what in (("lab", "labs"), ("lab_version", "lab versions")):
            if getattr(data, key) != getattr(first, key):
                raise UsageError(
                    f"{path} and {first_path} are of different {what} "
                    f"({getattr(data, key)} vs {getattr(first, key)}); merge shards of one "
                    "lab run only"
                )
    counts = {_shard(data).count for _path, data in shards}
    if len(counts) != 1:
        raise UsageError(f"the shards were cut differently (N = {sorted(counts)})")
    count = counts.pop()
    seen: dict[int, Path] = {}
    for path, data in shards:
        index = _shard(data).index
        if index in seen:
            raise UsageError(f"shard {index}/{count} given twice: {seen[index]} and {path}")
        seen[index] = path
    missing = [str(k) for k in range(1, count + 1) if k not in seen]
    if missing:
        raise UsageError(
            f"shard(s) {', '.join(missing)} of {count} missing; give every shard's report"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    by_key: dict[str, CellResult] = {}
    for path, data in shards:
        for cell in data.cells:
            if cell.key in by_key:
                raise UsageError(f"cell {cell.key} is in more than one shard ({path})")
            by_key[cell.key] = _relocate(cell, path.parent, out_dir / cell.key)
    order = first.matrix_cells or list(by_key)
    cells = [by_key[key] for key in order if key in by_key]
    cells += [cell for key, cell in by_key.items() if key not in order]
    ordered = sorted(shards, key=lambda item: _shard(item[1]).index)
    return first.model_copy(
        update={
            "switches": list(dict.fromkeys(s for _p, d in ordered for s in d.switches)),
            "offloads": {k: v for _p, d in ordered for k, v in d.offloads.items()},
            "ovs_configs": {k: v for _p, d in ordered for k, v in d.ovs_configs.items()},
            "report_dir": str(out_dir),
            "schedule": None,
            "shard": None,
            "started_at": min(d.started_at or "" for _p, d in shards),
            "ended_at": max(d.ended_at or "" for _p, d in shards),
            # The shards run at the same time on their own machines: the longest is the
            # wall time.
            "seconds": max(d.seconds or 0.0 for _p, d in shards),
            "host": {
                **first.host,
                "hostname": ", ".join(
                    dict.fromkeys(str(d.host.get("hostname")) for _p, d in ordered)
                ),
            },
            "shards": [
                ShardRecord(
                    shard=f"{_shard(d).index}/{count}",
                    hostname=d.host.get("hostname"),
                    report=str(p),
                    seconds=d.seconds,
                    cells=[c.key for c in d.cells],
                    host=d.host,
                )
                for p, d in ordered
            ],
            "cells": cells,
        }
    )


def _shard(result: MatrixResult) -> ShardRef:
    assert result.shard is not None  # _read_shard refuses results without one
    return result.shard


def _read_shard(path: Path) -> tuple[Path, MatrixResult]:
    file = path / "report.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise UsageError(f"{file}: no such file; give a matrix report directory") from None
    except ValueError as error:
        raise UsageError(f"{file}: not JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise UsageError(f"{file}: not a labctl matrix report.json")
    if not data.get("shard"):
        raise UsageError(
            f"{file}: not a shard's report; run `labctl matrix LAB --shard K/N` on each machine"
        )
    if not data.get("lab_version"):
        raise UsageError(f"{file}: has no lab_version (made by an older labctl)")
    try:
        return file, read_matrix(data)
    except UsageError as error:
        raise UsageError(f"{file}: {error}") from None


def _relocate(cell: CellResult, shard_dir: Path, target: Path) -> CellResult:
    """The cell with its run directory copied to `target`, when it lies in the shard's
    report directory (where the runner puts it); paths elsewhere are kept as given."""
    if not cell.run_dir:
        return cell
    source = shard_dir / Path(cell.run_dir).name
    if not source.is_dir():
        return cell
    if source.resolve() != target.resolve():
        shutil.copytree(source, target, dirs_exist_ok=True)
    pcaps = {tap: str(target / Path(pcap).name) for tap, pcap in cell.pcaps.items()}
    return cell.model_copy(update={"run_dir": str(target), "pcaps": pcaps})
