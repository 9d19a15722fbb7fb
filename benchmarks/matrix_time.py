"""Wall time of `labctl matrix labs/veth-checksum` as a user runs it (one process, start
to exit), one cell at a time (--serial) and with the default workers; the cells' statuses
must not depend on it.

Every cell of labs/veth-checksum runs (4 switch kinds x offload on, off and server-only =
12 cells; ovs-kernel is reported as skipped on hosts without the openvswitch module:
--no-ovs-kernel-vm, the host's own time without a platform VM). The
lab is copied under a unique name so that its cells' labs never collide with anyone else's.

    .venv/bin/python -m benchmarks.matrix_time [--repeat 1] [--mode serial|parallel]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common
from benchmarks.cli import LABCTL
from benchmarks.common import fmt, median, say, verdict

NAME = "matrix_time"
TARGET_SECONDS = 15.0
# The host's own matrix: on a host without the openvswitch module its ovs-kernel cells are
# skipped (--no-ovs-kernel-vm), not run in a platform VM (benchmarks/platforms.py times that).
MODES = {
    "serial": ["--serial", "--no-ovs-kernel-vm"],
    "parallel": ["--no-ovs-kernel-vm"],
    # The 8 cells the matrix had before the server-only column (as first measured: 41 s).
    "parallel-on-off": ["--offload", "on", "--offload", "off", "--no-ovs-kernel-vm"],
}


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(NAME, __doc__.splitlines()[0], repeat=1)
    p.add_argument("--lab", type=Path, default=common.VETH_LAB, help="lab directory or lab.yaml")
    p.add_argument(
        "--mode",
        action="append",
        choices=tuple(MODES),
        help="run only these modes (default: all: serial, parallel and parallel-on-off)",
    )
    return p


def private_lab(source: Path, tmp: Path) -> tuple[Path, str]:
    """The lab under a unique name, its topology path made absolute."""
    file = source / "lab.yaml" if source.is_dir() else source
    data = yaml.safe_load(file.read_text())
    name = common.unique_name("bm")
    data["name"] = name
    data["topology"] = str((file.parent / data["topology"]).resolve())
    path = tmp / name / "lab.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, name


def run_matrix(mode: str, args: argparse.Namespace, tmp: Path, names: list[str]) -> dict[str, Any]:
    lab, name = private_lab(args.lab, tmp)
    argv = [*LABCTL, "matrix", str(lab), "--json", "--runs-dir", str(tmp / "runs"), *MODES[mode]]
    waited = common.wait_for_ovs_idle(args.ovs_wait, names)
    load = os.getloadavg()[0]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr[-800:]}")
    result = json.loads(done.stdout)
    names.extend(c["lab_name"] for c in result["cells"])
    return {
        "mode": mode,
        "argv": argv[len(LABCTL) :],
        "lab": name,
        "ovs_wait": round(waited, 2),
        "load": round(load, 2),
        "wall": wall,
        "runner_seconds": result.get("seconds"),
        "workers": result["schedule"]["workers"],
        "rules": result["schedule"]["rules"],
        "summary": result.get("summary"),
        "cells": [
            {
                "cell": f"{c['switch']}/{c['offload']}",
                "status": c["status"],
                "seconds": c.get("seconds"),
                "window": c.get("window"),
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
    modes = args.mode or list(MODES)
    result: dict[str, Any] = {
        "benchmark": NAME,
        "environment": common.environment(),
        "settings": {
            "lab": str(args.lab),
            "repeat": args.repeat,
            "modes": modes,
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
                entry = run_matrix(mode, args, tmp, names)
                say(f"  -> {entry['wall']:.1f} s {entry['summary']} (load {entry['load']})")
                result["runs"].append(entry)
        result["host_after"] = common.leftovers(tmp / "state", names, tmp)
        result["clean"] = common.clean(result["host_after"])
    result["modes"] = summarise(result["runs"], modes)
    # Every cell that ran in more than one run must have the same status in each.
    seen: dict[str, set[tuple[str, str | None]]] = {}
    for entry in result["runs"]:
        for cell, status in statuses(entry).items():
            seen.setdefault(cell, set()).add(status)
    result["statuses_identical"] = all(len(found) == 1 for found in seen.values())
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
                "workers": mine[0]["workers"],
                "runs": len(mine),
                "wall": wall,
                "load": [r["load"] for r in mine],
                "summary": mine[-1]["summary"],
                # The target is for the command as users run it: default workers.
                "verdict": verdict(wall, TARGET_SECONDS + 1e-9) if mode != "serial" else "-",
            }
        )
    return rows


def overlapped(run: dict[str, Any]) -> int:
    """Pairs of cells whose run windows overlap."""
    windows = [c["window"] for c in run["cells"] if c.get("window") and c["seconds"]]
    return sum(
        1 for i, a in enumerate(windows) for b in windows[i + 1 :] if a[0] < b[1] and b[0] < a[1]
    )


def render(result: dict[str, Any], markdown: bool = False) -> str:
    headers = ("command", "workers", "wall s", "cells", "passed", "failed", "skipped", "error")
    headers += ("overlapping cell pairs", f"<= {TARGET_SECONDS:g} s")
    rows = []
    for row in result["modes"]:
        s = row["summary"] or {}
        last = next(r for r in reversed(result["runs"]) if r["mode"] == row["mode"])
        rows.append(
            [" ".join(["labctl matrix LAB", *MODES[row["mode"]]])]
            + [row["workers"], fmt(row["wall"], 1), sum(s.values())]
            + [s.get(k, 0) for k in ("passed", "failed", "skipped", "error")]
            + [overlapped(last), row["verdict"]]
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
                cell = next((c for c in last[mode]["cells"] if c["cell"] == name), None)
                if cell is None:
                    line.append("-")
                    continue
                window = cell.get("window") or [None, None]
                line.append(
                    f"{cell['status']} ({fmt(cell['seconds'], 1)} s, "
                    f"{fmt(window[0], 1)}-{fmt(window[1], 1)})"
                )
            cell_rows.append(line)
        # Modes that ran fewer cells show "-" for the others.
        text.append(
            common.format_table(
                ["cell", *(f"{m}: status (s, from-to)" for m in modes)], cell_rows, markdown
            )
        )
        text.append("")
        rules = next(iter(last.values()))["rules"]
        if rules:
            text.append("Cells that take turns: " + "; ".join(rules) + ".")
    loads = [load for row in result["modes"] for load in row["load"]]
    same = "identical" if result["statuses_identical"] else "DIFFERENT"
    text.append(
        f"Per-cell statuses across modes and repeats: {same}. Load average at the start of "
        f"each run: {', '.join(f'{x:.2f}' for x in loads)}."
    )
    return "\n".join(text)


def targets(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in result["modes"]:
        if row["mode"] == "serial":
            continue
        cells = sum((row["summary"] or {}).values())
        rows.append(
            [
                "`" + " ".join(["labctl matrix labs/veth-checksum", *MODES[row["mode"]]]) + "`"
                f" ({cells} cells, {row['workers']} workers, the default here), process "
                "start to exit",
                f"<= {TARGET_SECONDS:g} s",
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
        build_parser,
        run,
        render,
        argv,
        ok=lambda result: bool(result["statuses_identical"]),
        targets=targets,
    )


if __name__ == "__main__":
    sys.exit(main())
