"""Wall time of the full veth-checksum matrix (labctl.matrix.MatrixRunner), serial and,
when the runner can, parallel; the cells' statuses must not depend on the mode.

Every cell of labs/veth-checksum runs (4 switch kinds x offload on, off and server-only =
12 cells; ovs-kernel is reported as skipped on hosts without the openvswitch module). The
lab is renamed to a unique name per run so that its cells' labs never collide with anyone
else's.

    .venv/bin/python -m benchmarks.matrix_time [--repeat 1] [--workers 2] [--mode serial]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import fmt, median, say, verdict
from labctl.core.matrix import Cell, cells, load_lab
from labctl.matrix import MatrixRunner

NAME = "matrix_time"
TARGET_SECONDS = 60.0
PARALLEL_PARAMETERS = ("workers", "parallel", "jobs", "max_workers")


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(NAME, __doc__.splitlines()[0], repeat=1)
    p.add_argument("--lab", type=Path, default=common.VETH_LAB, help="lab directory or lab.yaml")
    p.add_argument("--workers", type=int, default=2, help="workers in parallel mode (default 2)")
    p.add_argument(
        "--mode",
        action="append",
        choices=("serial", "parallel"),
        help="run only these modes (default: serial, and parallel if the runner supports it)",
    )
    return p


@dataclasses.dataclass(frozen=True)
class ParallelKnob:
    """How this MatrixRunner is told to run cells side by side, found by its signature."""

    where: str  # "init" or "run"
    parameter: str
    serial: Any
    parallel: Any

    def kwargs(self, mode: str) -> dict[str, Any]:
        return {self.parameter: self.parallel if mode == "parallel" else self.serial}


def parallel_knob(workers: int) -> ParallelKnob | None:
    for where, function in (("run", MatrixRunner.run), ("init", MatrixRunner.__init__)):
        parameters = inspect.signature(function).parameters
        for name in PARALLEL_PARAMETERS:
            if name in parameters:
                default = parameters[name].default
                if name == "parallel" and (isinstance(default, bool) or default is None):
                    return ParallelKnob(where, name, False, True)
                return ParallelKnob(where, name, 1, workers)
    return None


def run_matrix(
    mode: str, knob: ParallelKnob | None, args: argparse.Namespace, tmp: Path, names: list[str]
) -> dict[str, Any]:
    lab = load_lab(args.lab)
    name = common.unique_name("bm")
    lab = dataclasses.replace(lab, spec=lab.spec.model_copy(update={"name": name}))
    chosen: list[Cell] = cells(lab)
    names.extend(cell.lab_name(name) for cell in chosen)
    init_kwargs = knob.kwargs(mode) if knob and knob.where == "init" else {}
    run_kwargs = knob.kwargs(mode) if knob and knob.where == "run" else {}
    waited = common.wait_for_ovs_idle(args.ovs_wait, names)
    events = common.EventLog()
    runner = MatrixRunner(lab, tmp / "runs", on_event=events, **init_kwargs)
    started = time.monotonic()
    result = runner.run(chosen, **run_kwargs)
    wall = time.monotonic() - started
    return {
        "mode": mode,
        "knob": dict(init_kwargs or run_kwargs),
        "lab": name,
        "ovs_wait": round(waited, 2),
        "wall": wall,
        "runner_seconds": result.get("seconds"),
        "summary": result.get("summary"),
        "cells": [
            {
                "cell": f"{c['switch']}/{c['offload']}",
                "status": c["status"],
                "seconds": c.get("seconds"),
                "expected_http": (c.get("expected") or {}).get("http"),
                "observed_http": (c.get("observed") or {}).get("http"),
                "reason": c.get("reason"),
            }
            for c in result["cells"]
        ],
    }


def statuses(run: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    return {c["cell"]: (c["status"], c["observed_http"]) for c in run["cells"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    common.require_root()
    knob = parallel_knob(args.workers)
    modes = args.mode or (["serial", "parallel"] if knob else ["serial"])
    if "parallel" in modes and knob is None:
        say("matrix: MatrixRunner has no parallel/workers parameter; serial only")
        modes = [m for m in modes if m != "parallel"]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "environment": common.environment(),
        "settings": {
            "lab": str(args.lab),
            "repeat": args.repeat,
            "modes": modes,
            "parallel_knob": dataclasses.asdict(knob) if knob else None,
            "target_seconds": TARGET_SECONDS,
        },
        "runs": [],
    }
    names: list[str] = []
    with common.isolated_dirs(args.keep_runs) as tmp:
        result["host_before"] = common.host_activity(tmp / "state")
        for index in range(args.repeat):
            for mode in modes:
                say(f"matrix: {mode} #{index + 1}")
                entry = run_matrix(mode, knob, args, tmp, names)
                say(f"  -> {entry['wall']:.1f} s {entry['summary']}")
                result["runs"].append(entry)
        result["host_after"] = common.leftovers(tmp / "state", names, tmp)
        result["clean"] = common.clean(result["host_after"])
    result["modes"] = summarise(result["runs"], modes)
    distinct = {tuple(sorted(statuses(r).items())) for r in result["runs"]}
    result["statuses_identical"] = len(distinct) <= 1
    return result


def summarise(runs: list[dict[str, Any]], modes: list[str]) -> list[dict[str, Any]]:
    rows = []
    for mode in modes:
        mine = [r for r in runs if r["mode"] == mode]
        if not mine:
            continue
        wall = median([r["wall"] for r in mine])
        rows.append(
            {
                "mode": mode,
                "knob": mine[0]["knob"],
                "runs": len(mine),
                "wall": wall,
                "summary": mine[-1]["summary"],
                "verdict": verdict(wall, TARGET_SECONDS),
            }
        )
    return rows


def render(result: dict[str, Any], markdown: bool = False) -> str:
    headers = ("mode", "setting", "wall s", "cells", "passed", "failed", "skipped", "error")
    headers += (f"< {TARGET_SECONDS:g} s",)
    rows = []
    for row in result["modes"]:
        s = row["summary"] or {}
        setting = ", ".join(f"{k}={v}" for k, v in row["knob"].items()) or "-"
        rows.append(
            [row["mode"], setting, fmt(row["wall"], 1), sum(s.values())]
            + [s.get(k, 0) for k in ("passed", "failed", "skipped", "error")]
            + [row["verdict"]]
        )
    text = [common.format_table(headers, rows, markdown), ""]
    modes = [row["mode"] for row in result["modes"]]
    last = {m: next(r for r in reversed(result["runs"]) if r["mode"] == m) for m in modes}
    if last:
        cell_names = [c["cell"] for c in next(iter(last.values()))["cells"]]
        cell_rows = []
        for name in cell_names:
            line = [name]
            for mode in modes:
                cell = next(c for c in last[mode]["cells"] if c["cell"] == name)
                line.append(f"{cell['status']} ({fmt(cell['seconds'], 1)} s)")
            cell_rows.append(line)
        text.append(common.format_table(["cell", *modes], cell_rows, markdown))
        text.append("")
    same = "identical" if result["statuses_identical"] else "DIFFERENT"
    text.append(f"Per-cell statuses across modes and repeats: {same}.")
    return "\n".join(text)


def targets(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in result["modes"]:
        setting = ", ".join(f"{k}={v}" for k, v in row["knob"].items())
        rows.append(
            [
                f"full veth-checksum matrix, {row['mode']}" + (f" ({setting})" if setting else ""),
                f"< {TARGET_SECONDS:g} s",
                f"{row['wall']:.1f} s",
                row["verdict"],
            ]
        )
    if len(result["modes"]) > 1:
        same = result["statuses_identical"]
        rows.append(
            [
                "per-cell statuses serial = parallel",
                "identical",
                "identical" if same else "different",
                "PASS" if same else "MISS",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main(
        build_parser, run, render, argv, ok=lambda result: bool(result["statuses_identical"])
    )


if __name__ == "__main__":
    sys.exit(main())
