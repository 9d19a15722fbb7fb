"""The fresh-VM path as a user runs it: box build, `vagrant up` (boot, provisioning,
the veth-checksum matrix inside the VM), `vagrant destroy -f`.

    .venv/bin/python -m benchmarks.vm_path              # box from its cache when built
    .venv/bin/python -m benchmarks.vm_path --rebuild-box  # also time a box build

Wall clock of the commands scripts/vagrant-matrix.sh runs (the script .ci/run runs),
read from its "vm-path: STEP SECONDS" lines; the split of `vagrant up` into boot,
provisioning and matrix comes from the provisioning log's time stamps.
Needs `scripts/provision.sh --vm` first. Takes 10 to 20 minutes under TCG.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common

STEP = re.compile(r"^vm-path: (\w+) ([0-9.]+)$")
# `vagrant up`'s phases, from its start: "boot" ends when SSH answers, so it includes the
# upload of the box into libvirt's pool the first time a box is used.
PHASES = {
    "boot": "box upload, boot and SSH",
    "provisioning": "provisioning",
    "matrix": "the matrix",
}
REPORT_LINE = re.compile(r"^\s+(\d+) cells on (\S+): (.*)$")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.vm_path", description=__doc__)
    p.add_argument("--rebuild-box", action="store_true", help="rebuild the box (timed)")
    p.add_argument("--json", type=Path, default=common.RESULTS_DIR / "vm_path.json")
    return p


def _stamp_lines(log: str) -> dict[str, float]:
    """Seconds from `vagrant up` start to milestones, from the time-stamped output."""
    marks: dict[str, float] = {}
    milestones = {
        "booted": "Machine booted and ready!",
        "provisioning": "Running provisioner: labctl",
        "matrix": "labctl: host ready, running the matrix",
        "reports": "bringing the matrix reports back",
    }
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        for name, needle in milestones.items():
            if name not in marks and needle in text:
                marks[name] = float(stamp)
    return marks


def run(args: argparse.Namespace) -> dict[str, Any]:
    common.require_root()
    root = common.ROOT
    if args.rebuild_box:
        start = time.monotonic()
        subprocess.run(["bash", "scripts/build-box.sh", "--force"], cwd=root, check=True)
        rebuild = time.monotonic() - start
    else:
        rebuild = None
    start = time.monotonic()
    process = subprocess.Popen(
        ["bash", "scripts/vagrant-matrix.sh"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    stamped: list[str] = []
    for line in process.stdout:
        sys.stdout.write(line)
        stamped.append(f"{time.monotonic() - start:.1f} {line.rstrip()}")
    code = process.wait()
    steps: dict[str, float] = {}
    report: dict[str, Any] = {}
    for entry in stamped:
        text = entry.partition(" ")[2]
        if match := STEP.match(text):
            steps[match.group(1)] = float(match.group(2))
        if match := REPORT_LINE.match(text):
            report = {
                "cells": int(match.group(1)),
                "kernel": match.group(2),
                "verdict": match.group(3),
            }
    marks = _stamp_lines("\n".join(stamped))
    up_phases: dict[str, float] = {}
    if {"booted", "provisioning", "matrix", "reports"} <= marks.keys():
        up_start = steps.get("box", 0.0)
        up_phases = {
            "boot": marks["booted"] - up_start,
            "provisioning": marks["matrix"] - marks["booted"],
            "matrix": marks["reports"] - marks["matrix"],
        }
    return {
        "environment": common.environment(),
        "exit": code,
        "box_rebuild_s": rebuild,
        "steps_s": steps,
        "up_phases_s": up_phases,
        "report": report,
        "total_s": time.monotonic() - start,
    }


def render(result: dict[str, Any], markdown: bool = False) -> str:
    rows = []
    if result.get("box_rebuild_s") is not None:
        rows.append(
            ("box build (scripts/build-box.sh --force)", f"{result['box_rebuild_s']:.0f} s")
        )
    labels = {
        "box": "box from its cache (build-box.sh)",
        "up": "vagrant up",
        "destroy": "vagrant destroy -f",
    }
    for step, seconds in result["steps_s"].items():
        rows.append((labels.get(step, step), f"{seconds:.0f} s"))
        if step == "up":
            for phase, value in result.get("up_phases_s", {}).items():
                rows.append((f"  of which {PHASES.get(phase, phase)}", f"{value:.0f} s"))
    rows.append(("whole path (scripts/vagrant-matrix.sh)", f"{result['total_s']:.0f} s"))
    report = result.get("report") or {}
    if report:
        rows.append(
            (
                f"matrix in the VM ({report['kernel']})",
                f"{report['cells']} cells: {report['verdict']}",
            )
        )
    return common.format_table(("step", "wall clock"), rows, markdown)


def targets(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    ok = result.get("exit") == 0
    return [
        (
            "fresh VM: every cell of labs/veth-checksum as expected, host clean",
            "exit 0",
            f"exit {result.get('exit')}",
            "PASS" if ok else "MISS",
        )
    ]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = run(args)
    common.write_json(args.json, result)
    print(render(result))
    return 0 if result["exit"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
