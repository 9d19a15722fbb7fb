"""`labctl matrix`: one lab over switch kinds x offload settings.

Each cell is its own lab (its own name), built, run with captures and
diagnosis, and torn down; then its observation is compared with the lab's
expectation. Cells that cannot run on this host (a missing prerequisite)
are reported as skipped with the reason, never as passed.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.core.events import Event, EventSink, discard
from labctl.core.matrix import Cell, Lab, Observation, compare
from labctl.engine import Backends, RunRecord, RunRecorder
from labctl.errors import LabctlError, PrerequisiteError

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
    return Observation(
        http_ok=bool(summary and summary.ok),
        succeeded=summary.succeeded if summary else 0,
        failed=summary.failed if summary else 0,
        latency_ms=summary.latency_ms() if summary else None,
        findings=faults,
        verdict=diagnosis.verdict if diagnosis else "no taps: no diagnosis",
    )


class MatrixRunner:
    def __init__(
        self,
        lab: Lab,
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

    def run(self, cells: list[Cell], workers: int = 1) -> dict[str, Any]:
        """Run every cell; with workers > 1, cells of different switch families run side by
        side (each cell is its own lab). The cells' results do not depend on it."""
        started = time.monotonic()
        out_dir = self._new_dir()
        result: dict[str, Any] = {
            "lab": self.lab.name,
            "runtime": self.runtime or self.lab.topology.runtime,
            "description": self.lab.spec.description,
            "notes": self.lab.spec.notes,
            "lab_file": str(self.lab.file),
            "topology_file": str(self.lab.topology_file),
            "started_at": _now(),
            "topology": self.lab.topology.model_dump(mode="json", exclude_none=True),
            "switches": list(dict.fromkeys(c.switch.value for c in cells)),
            "offloads": {c.offload_name: c.offload.as_dict() for c in cells},
            "report_dir": str(out_dir),
            "cells": [],
        }
        host: dict[str, Any] = {}
        for index, cell in enumerate(cells, start=1):
            self.emit(
                Event(
                    "phase",
                    f"cell {index}/{len(cells)}: {cell.switch.value}, offload {cell.offload_name}",
                )
            )
            entry, versions = self._run_cell(cell, out_dir / cell.key)
            host = host or versions
            result["cells"].append(entry)
            self.emit(Event("step-done", _cell_line(entry), index, len(cells), entry["seconds"]))
        result["host"] = host
        result["ended_at"] = _now()
        result["seconds"] = round(time.monotonic() - started, 2)
        result["summary"] = summarise(result["cells"])
        return result

    def _new_dir(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.runs_root / self.lab.name / stamp
        suffix = 1
        while path.exists():
            suffix += 1
            path = self.runs_root / self.lab.name / f"{stamp}-{suffix}"
        path.mkdir(parents=True)
        return path

    def _run_cell(self, cell: Cell, run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
        from labctl.api import Lab as LiveLab

        started = time.monotonic()
        expected = cell.expectation.model_dump(exclude={"when"}) if cell.expectation else None
        entry: dict[str, Any] = {
            "switch": cell.switch.value,
            "offload": cell.offload_name,
            "offload_settings": cell.offload.as_dict(),
            "lab_name": cell.lab_name(self.lab.name),
            "status": "error",
            "reason": None,
            "expected": expected,
            "observed": None,
            "run_dir": None,
            "pcaps": {},
            "diagnosis": None,
        }
        versions: dict[str, Any] = {}
        topology = cell.topology(self.lab.topology, self.lab.name)
        if self.runtime is not None:
            topology = topology.with_runtime(self.runtime)
        backends, close = self.backends_factory(discard)
        try:
            versions = backends.host_versions()
            live = LiveLab(
                topology,
                self.lab.topology_document,
                backends=backends,
                host_checks=self.host_checks,
            )
            with live:
                record = RunRecorder(live.engine, self.runs_root).run(live.name, run_dir)
            observation = observe(record)
            difference = compare(cell.expectation, observation)
            entry.update(
                status="failed" if difference else "passed",
                reason=difference,
                observed=observation.to_dict(),
                run_dir=str(run_dir),
                pcaps={t["name"]: str(run_dir / t["pcap"]) for t in record.manifest["taps"]},
                diagnosis=record.diagnosis.to_dict() if record.diagnosis else None,
            )
        except PrerequisiteError as error:
            entry.update(status="skipped", reason=str(error))
        except LabctlError as error:
            entry.update(status="error", reason=" / ".join(error.lines()))
        finally:
            close()
        entry["seconds"] = round(time.monotonic() - started, 2)
        return entry, versions


def _groups(cells: list[Cell]) -> list[list[tuple[int, Cell]]]:
    """Cells that share host daemons run one after the other: the OVS kinds share one
    ovs-vswitchd (a userspace cell and a DPDK cell need different builds of it)."""
    by_family: dict[str, list[tuple[int, Cell]]] = {}
    for index, cell in enumerate(cells, start=1):
        family = "ovs" if cell.switch.is_ovs else cell.switch.value
        by_family.setdefault(family, []).append((index, cell))
    return list(by_family.values())


def summarise(cells: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(c["status"] for c in cells)
    return {status: counts.get(status, 0) for status in ("passed", "failed", "skipped", "error")}


def _cell_line(entry: dict[str, Any]) -> str:
    head = f"{entry['switch']} offload={entry['offload']}: {entry['status']}"
    observed = entry.get("observed")
    if observed:
        head += f" (HTTP {observed['succeeded']}/{observed['succeeded'] + observed['failed']})"
    if entry["reason"] and entry["status"] != "passed":
        head += f": {entry['reason']}"
    return head


def write_reports(result: dict[str, Any]) -> dict[str, Path]:
    """report.json, report.md, junit.xml and report.html in the matrix directory."""
    from labctl.reports import html, junit, markdown

    out = Path(result["report_dir"])
    paths = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "junit": out / "junit.xml",
        "html": out / "report.html",
    }
    paths["json"].write_text(json.dumps(result, indent=2, default=str) + "\n")
    paths["markdown"].write_text(markdown.render(result))
    paths["junit"].write_text(junit.render(result))
    paths["html"].write_text(html.render(result, report_dir=out))
    return paths


def exit_code(result: dict[str, Any]) -> int:
    summary = result["summary"]
    return 1 if summary["failed"] or summary["error"] else 0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
