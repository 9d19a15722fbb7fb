"""Scaling: up and down time of generated labs with N nodes on one switch.

Each lab has N nodes (one interface each, addresses in 10.1.0.0/16, no taps) on one
switch, and three HTTP requests between the first two nodes. Reported per N: up, run and
down time, time per node, node start (CreateNode steps); over N: a least-squares line
(slope = marginal cost per node, intercept = fixed cost, R^2) and whether cost grows
linearly (time per node at the largest N within 2x of that at 8). Target: 64 nodes up in
under 30 s on the Linux bridge. On OVS userspace the nodes have checksum offload off (the
seed bug would otherwise fail the HTTP requests), which adds one offload step per node.

    .venv/bin/python -m benchmarks.scale [--sizes 2,8,32,64] [--ovs-sizes 2,8,32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common
from benchmarks.common import fit_line, fmt, median, say, verdict
from labctl.api import load
from labctl.errors import LabctlError

NAME = "scale"
TARGET_NODES = 64
TARGET_SECONDS = 30.0
LINEAR_FACTOR = 2.0
REFERENCE_N = 8


def sizes(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if any(n < 2 or n > 250 for n in values):
        raise argparse.ArgumentTypeError("sizes must be between 2 and 250")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(NAME, __doc__.splitlines()[0], repeat=1)
    p.add_argument("--sizes", type=sizes, default=[2, 8, 32, 64], help="N on the Linux bridge")
    p.add_argument(
        "--ovs-sizes",
        type=sizes,
        default=[2, 8, 32],
        help="N on OVS userspace (empty string: skip OVS)",
    )
    p.add_argument("--requests", type=int, default=3, help="HTTP requests per lab (default 3)")
    p.add_argument("--runtime", choices=("docker", "netns"), default="docker")
    return p


def address(index: int) -> str:
    """Node `index` (1-based) in 10.1.0.0/16."""
    return f"10.1.{index // 254}.{index % 254 + 1}/16"


def topology_document(n: int, kind: str, requests: int) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    links = []
    for index in range(1, n + 1):
        node: dict[str, Any] = {"interfaces": {"eth0": {"ipv4": address(index)}}}
        if kind in common.OVS_KINDS:
            node["offload"] = {"tx": False, "rx": False}
        nodes[f"n{index}"] = node
        links.append({"a": f"n{index}:eth0", "b": f"switch:p{index}"})
    return {
        "name": "scale",
        "nodes": nodes,
        "switch": {"kind": kind},
        "links": links,
        "traffic": {"client": "n1", "server": "n2", "requests": requests, "timeout": 3},
    }


def one_lab(
    kind: str, n: int, args: argparse.Namespace, tmp: Path, names: list[str]
) -> dict[str, Any]:
    path = tmp / f"scale-{kind}-{n}.yaml"
    path.write_text(yaml.safe_dump(topology_document(n, kind, args.requests), sort_keys=False))
    name = common.unique_name("bs", common.SWITCH_SHORT[kind], str(n))
    names.append(name)
    topology, document = load(path, name=name, runtime=args.runtime)
    entry: dict[str, Any] = {"switch": kind, "n": n, "lab": name, "ok": False, "error": None}
    if kind in common.OVS_KINDS:
        entry["ovs_wait"] = round(common.wait_for_ovs_idle(args.ovs_wait, names), 2)
    session = common.LabSession(topology, document, tmp / "state", tmp / "runs")
    summary = None
    with session:
        try:
            session.up()
            summary = session.run_traffic()
            session.down()
        except LabctlError as error:
            entry["error"] = " / ".join(error.lines())
    if session.down_error:
        entry["error"] = (entry["error"] or "") + f" [down: {session.down_error}]"
    if entry["error"] or summary is None:
        return entry
    up = session.up_breakdown()
    down = session.down_breakdown()
    entry.update(
        ok=True,
        up=up["total"],
        node_start=up["nodes"],
        run=session.phases["run"].seconds,
        down=down["total"],
        node_stop=down["nodes"],
        http={"succeeded": summary.succeeded, "failed": summary.failed},
        up_breakdown=up,
        down_breakdown=down,
        calls=session.call_stats(),
    )
    return entry


def series(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per N, fits over N, the linearity check and the target."""
    by_n: dict[int, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry["ok"]:
            by_n.setdefault(entry["n"], []).append(entry)
    points = []
    for n in sorted(by_n):
        runs = by_n[n]
        up = median([r["up"] for r in runs])
        down = median([r["down"] for r in runs])
        points.append(
            {
                "n": n,
                "up": up,
                "down": down,
                "run": median([r["run"] for r in runs]),
                "node_start": median([r["node_start"] for r in runs]),
                "node_stop": median([r["node_stop"] for r in runs]),
                "up_per_node": up / n if up is not None else None,
                "down_per_node": down / n if down is not None else None,
                "http_ok": all(r["http"]["failed"] == 0 for r in runs),
            }
        )
    ns = [p["n"] for p in points]
    result: dict[str, Any] = {
        "switch": kind,
        "points": points,
        "up_fit": fit_line(ns, [p["up"] for p in points]),
        "down_fit": fit_line(ns, [p["down"] for p in points]),
        "errors": [e["error"] for e in entries if e["error"]],
    }
    reference = next((p for p in points if p["n"] == REFERENCE_N), None)
    largest = points[-1] if points else None
    if reference and largest and largest["n"] > REFERENCE_N:
        ratio = largest["up_per_node"] / reference["up_per_node"]
        result["linearity"] = {
            "n": largest["n"],
            "per_node_ratio_to_8": ratio,
            "linear": ratio <= LINEAR_FACTOR,
        }
    target = next((p for p in points if p["n"] == TARGET_NODES), None)
    if kind == "linux-bridge" and target:
        result["target"] = {
            "n": TARGET_NODES,
            "up": target["up"],
            "verdict": verdict(target["up"], TARGET_SECONDS),
        }
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    common.require_root()
    plan = [("linux-bridge", args.sizes), ("ovs-userspace", args.ovs_sizes)]
    result: dict[str, Any] = {
        "benchmark": NAME,
        "environment": common.environment(),
        "settings": {
            "repeat": args.repeat,
            "sizes": {kind: ns for kind, ns in plan},
            "requests": args.requests,
            "runtime": args.runtime,
            "target": f"{TARGET_NODES} nodes up in < {TARGET_SECONDS:g} s (linux-bridge)",
        },
        "series": [],
    }
    names: list[str] = []
    with common.isolated_dirs(args.keep_runs) as tmp:
        result["host_before"] = common.host_activity(tmp / "state")
        for kind, ns in plan:
            entries = []
            for n in ns:
                for index in range(args.repeat):
                    say(f"scale: {kind} N={n} #{index + 1}")
                    entry = one_lab(kind, n, args, tmp, names)
                    entries.append(entry)
                    say(
                        f"  -> up {fmt(entry.get('up'))} s, down {fmt(entry.get('down'))} s"
                        + (f" ({entry['error']})" if entry["error"] else "")
                    )
            if entries:
                summary = series(kind, entries)
                summary["runs"] = entries
                result["series"].append(summary)
        result["host_after"] = common.leftovers(tmp / "state", names, tmp)
        result["clean"] = common.clean(result["host_after"])
    return result


def render(result: dict[str, Any], markdown: bool = False) -> str:
    headers = (
        "switch",
        "N",
        "up s",
        "up s/node",
        "node start s",
        "run s",
        "down s",
        "down s/node",
        "HTTP",
    )
    rows = []
    fits = []
    for s in result["series"]:
        for p in s["points"]:
            rows.append(
                [
                    s["switch"],
                    p["n"],
                    fmt(p["up"]),
                    fmt(p["up_per_node"], 3),
                    fmt(p["node_start"]),
                    fmt(p["run"]),
                    fmt(p["down"]),
                    fmt(p["down_per_node"], 3),
                    "ok" if p["http_ok"] else "failed",
                ]
            )
        for what in ("up", "down"):
            fit = s.get(f"{what}_fit")
            if fit:
                fits.append(
                    [
                        s["switch"],
                        what,
                        fmt(fit["slope"], 3),
                        fmt(fit["intercept"], 2),
                        fmt(fit["r2"], 3),
                    ]
                )
        for error in s["errors"]:
            rows.append([s["switch"], "-", f"error: {error[:80]}"] + [""] * 6)
    text = [common.format_table(headers, rows, markdown), ""]
    if fits:
        fit_headers = ("switch", "phase", "s per node (slope)", "fixed s (intercept)", "R^2")
        text += [common.format_table(fit_headers, fits, markdown), ""]
    for s in result["series"]:
        lin = s.get("linearity")
        if lin:
            text.append(
                f"{s['switch']}: up time per node at N={lin['n']} is "
                f"{lin['per_node_ratio_to_8']:.2f}x that at N={REFERENCE_N} "
                f"({'linear or better' if lin['linear'] else 'SUPERLINEAR'}: limit "
                f"{LINEAR_FACTOR:g}x)"
            )
        target = s.get("target")
        if target:
            text.append(
                f"{s['switch']}: {target['n']} nodes up in {target['up']:.2f} s "
                f"(target < {TARGET_SECONDS:g} s): {target['verdict']}"
            )
    return "\n".join(text).rstrip()


def targets(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for s in result["series"]:
        target = s.get("target")
        if target:
            rows.append(
                [
                    f"{target['n']} nodes up ({s['switch']})",
                    f"< {TARGET_SECONDS:g} s",
                    f"{target['up']:.2f} s",
                    target["verdict"],
                ]
            )
        lin = s.get("linearity")
        if lin:
            rows.append(
                [
                    f"up time per node, N={lin['n']} vs N={REFERENCE_N} ({s['switch']})",
                    f"<= {LINEAR_FACTOR:g}x",
                    f"{lin['per_node_ratio_to_8']:.2f}x",
                    "PASS" if lin["linear"] else "MISS",
                ]
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main(build_parser, run, render, argv, targets=targets)


if __name__ == "__main__":
    sys.exit(main())
