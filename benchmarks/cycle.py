"""Seed-lab cycle time per switch kind (and node runtime): up, run, down.

Each cycle is what a user does by hand: `labctl up topologies/seed.yaml`, `labctl run`
(captures at the three taps, five HTTP requests, diagnosis), `labctl down`, through the
Python API in one process, with a unique lab name and private state and run dirs.

The cycle is split three ways:
- unavoidable: starting and removing the nodes (containers or namespaces), starting and
  stopping the OVS daemons with DPDK initialisation (the CreateSwitch step and the switch
  removal, OVS kinds only), and the HTTP requests themselves (curl's time_total);
- tool waits: time labctl spends waiting on the other components it drives for the lab
  (netlink for veths and the bridge, OVSDB for ports, iptables, the HTTP server starting,
  docker exec around curl, tcpdump starting and flushing, the sweep's queries);
- labctl's own overhead: the rest, its own code and choices (host checks, plan and state
  files, the settle time after the traffic, reading the captures and the diagnosis).
The 20% target applies to labctl's own overhead; the tool waits are reported beside it.

OVS kinds run a variant of the seed with TX/RX checksum offload off, so that HTTP works
and failing requests (3 s timeouts, the bug the seed reproduces) do not dominate the cycle.

    .venv/bin/python -m benchmarks.cycle [--repeat 3] [--switch ovs-dpdk] [--runtime docker]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from typing import Any

from benchmarks import common
from benchmarks.common import fmt, median, say, verdict
from labctl.api import load
from labctl.core.matrix import Cell
from labctl.core.model import Offload, SwitchKind
from labctl.errors import LabctlError
from labctl.run import QUIET_MAX

NAME = "cycle"
TARGETS = {"linux-bridge": 5.0, "ovs-dpdk": 10.0}
OVERHEAD_TARGET = 0.20
RUNTIMES = ("docker", "netns")
SHORT_RUNTIME = {"docker": "d", "netns": "n"}


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(NAME, __doc__.splitlines()[0], repeat=3)
    p.add_argument(
        "--switch",
        action="append",
        choices=common.SWITCHES_HERE,
        help="switch kind (repeatable; default: all that run here)",
    )
    p.add_argument(
        "--runtime",
        action="append",
        choices=RUNTIMES,
        help="node runtime (repeatable; default: docker, and netns when labctl has it)",
    )
    p.add_argument(
        "--offload",
        choices=("auto", "seed", "off"),
        default="auto",
        help="auto: the seed as is on linux-bridge, offload off on OVS kinds (default)",
    )
    return p


def netns_support() -> str | None:
    """None when labctl has a netns node runtime; else why the netns rows are skipped."""
    if importlib.util.find_spec("labctl.backends.netns_runtime") is None:
        return "labctl has no labctl.backends.netns_runtime"
    from labctl.core.model import Topology

    if "runtime" not in Topology.model_fields:
        return "the topology model has no `runtime:`"
    return None


def seed_topology(kind: str, runtime: str, name: str, offload: str) -> tuple[Any, Any, str]:
    topology, document = load(common.SEED, switch=kind, runtime=runtime)
    off = offload == "off" or (offload == "auto" and kind in common.OVS_KINDS)
    if off:
        cell = Cell(SwitchKind(kind), "off", Offload(tx=False, rx=False), None)
        topology = cell.topology(topology, topology.name)
    return topology.with_name(name), document, "seed, offload off" if off else "seed"


def one_cycle(
    kind: str, runtime: str, args: argparse.Namespace, tmp: Path, names: list[str]
) -> dict[str, Any]:
    name = common.unique_name("bc", common.SWITCH_SHORT[kind], SHORT_RUNTIME[runtime])
    names.append(name)
    topology, document, variant = seed_topology(kind, runtime, name, args.offload)
    entry: dict[str, Any] = {"lab": name, "topology": variant, "ok": False, "error": None}
    if kind in common.OVS_KINDS:
        entry["ovs_wait"] = round(common.wait_for_ovs_idle(args.ovs_wait, names), 2)
        entry["ovs_users_before"] = common.ovs_daemon_users()
    session = common.LabSession(topology, document, tmp / "state", tmp / "runs")
    record = None
    with session:
        try:
            session.up()
            record = session.run_recorded()
            session.down()
        except LabctlError as error:
            entry["error"] = " / ".join(error.lines())
    if session.down_error:
        entry["error"] = (entry["error"] or "") + f" [down: {session.down_error}]"
    if entry["error"] or record is None or set(session.phases) != {"up", "run", "down"}:
        return entry
    entry["ok"] = True
    entry["http"] = {"succeeded": record.http.succeeded, "failed": record.http.failed}
    entry["verdict"] = record.diagnosis.verdict if record.diagnosis else None
    entry.update(account(session, record, kind))
    entry["calls"] = session.call_stats()
    return entry


def account(session: common.LabSession, record: Any, kind: str) -> dict[str, Any]:
    up = session.up_breakdown()
    run = session.run_breakdown(record.http)
    down = session.down_breakdown()
    ovs = kind in common.OVS_KINDS
    # The switch starts (and goes) beside the nodes: only the part of it that the nodes
    # do not cover adds to the cycle, and is counted here.
    switch_up_alone = up["start"] - up["nodes"]
    switch_down_alone = down["nodes_switch"] - down["nodes"]
    unavoidable = {
        "node_start": up["nodes"],
        "node_stop": down["nodes"],
        "daemon_start": switch_up_alone if ovs else 0.0,
        "daemon_stop": switch_down_alone if ovs else 0.0,
        "http": run["http"],
    }
    cycle = up["total"] + run["total"] + down["total"]
    overhead = cycle - sum(unavoidable.values())
    own = (
        up["preflight"]
        + (up["total"] - up["preflight"] - up["steps"])
        + (run["total"] - run["curl_exec"] - run["capture_start"] - run["capture_stop"])
        + (down["total"] - down["all"])
    )
    up_steps_other = up["steps"] - up["nodes"] - up.get("step:StartHttpServer", 0.0)
    if ovs:
        up_steps_other -= switch_up_alone
    overheads = {
        "up_preflight": up["preflight"],
        "up_wiring": up_steps_other,  # veths, ports, offload (and the Linux bridge)
        "up_http_server": up.get("step:StartHttpServer", 0.0),
        "up_other": up["total"] - up["preflight"] - up["steps"],  # state, locks, checks
        "run_exec": max(run["curl_exec"] - run["http"], 0.0),
        "run_capture": run["capture_start"] + run["capture_stop"],
        "run_other": run["total"] - run["curl_exec"] - run["capture_start"] - run["capture_stop"],
        "down_links_ports": down["links_ports"] + (0.0 if ovs else switch_down_alone),
        "down_sweep_verify": down["sweep_verify"],
        "down_other": down["total"] - down["all"],
    }
    return {
        "up": up,
        "run": run,
        "down": down,
        "cycle": cycle,
        "unavoidable": unavoidable,
        "overhead": overhead,
        "overhead_share": overhead / cycle if cycle else None,
        "overhead_parts": overheads,
        "own": own,
        "own_share": own / cycle if cycle else None,
        "tool_waits": overhead - own,
    }


def summarise(kind: str, runtime: str, cycles: list[dict[str, Any]]) -> dict[str, Any]:
    good = [c for c in cycles if c["ok"]]

    def med(get: Any) -> float | None:
        return median([get(c) for c in good])

    row: dict[str, Any] = {
        "switch": kind,
        "runtime": runtime,
        "topology": cycles[0]["topology"] if cycles else None,
        "repeats": len(cycles),
        "ok": len(good),
        "errors": [c["error"] for c in cycles if c["error"]],
        "cycles": cycles,
    }
    if not good:
        return row
    row.update(
        up=med(lambda c: c["up"]["total"]),
        run=med(lambda c: c["run"]["total"]),
        down=med(lambda c: c["down"]["total"]),
        cycle=med(lambda c: c["cycle"]),
        cycle_min=min(c["cycle"] for c in good),
        nodes=med(lambda c: c["unavoidable"]["node_start"] + c["unavoidable"]["node_stop"]),
        daemons=med(lambda c: c["unavoidable"]["daemon_start"] + c["unavoidable"]["daemon_stop"]),
        http=med(lambda c: c["unavoidable"]["http"]),
        overhead=med(lambda c: c["overhead"]),
        overhead_share=med(lambda c: c["overhead_share"]),
        own=med(lambda c: c["own"]),
        own_share=med(lambda c: c["own_share"]),
        tool_waits=med(lambda c: c["tool_waits"]),
        overhead_parts={
            part: med(lambda c, p=part: c["overhead_parts"][p])
            for part in good[0]["overhead_parts"]
        },
        http_ok=all(c["http"]["failed"] == 0 for c in good),
    )
    target = TARGETS.get(kind)
    row["cycle_target"] = target
    row["cycle_verdict"] = verdict(row["cycle"], target) if target else "-"
    row["overhead_verdict"] = verdict(row["own_share"], OVERHEAD_TARGET)
    return row


def run(args: argparse.Namespace) -> dict[str, Any]:
    common.require_root()
    kinds = args.switch or list(common.SWITCHES_HERE)
    runtimes = args.runtime or list(RUNTIMES)
    netns_problem = netns_support()
    result: dict[str, Any] = {
        "benchmark": NAME,
        "environment": common.environment(),
        "settings": {
            "repeat": args.repeat,
            "offload": args.offload,
            "settle_max_seconds": QUIET_MAX,
            "targets": {"cycle_seconds": TARGETS, "overhead_share": OVERHEAD_TARGET},
        },
        "rows": [],
    }
    names: list[str] = []
    with common.isolated_dirs(args.keep_runs) as tmp:
        result["host_before"] = common.host_activity(tmp / "state")
        for kind in kinds:
            for runtime in runtimes:
                if runtime == "netns" and netns_problem:
                    result["rows"].append(skipped(kind, runtime, netns_problem))
                    continue
                cycles = []
                for index in range(args.repeat):
                    say(f"cycle: {kind} / {runtime} #{index + 1}")
                    entry = one_cycle(kind, runtime, args, tmp, names)
                    cycles.append(entry)
                    say(
                        f"  -> {fmt(entry.get('cycle'))} s"
                        + (f" ({entry['error']})" if entry["error"] else "")
                    )
                    if entry["error"] and runtime == "netns":
                        break  # the netns runtime does not work here: skip the row
                row = summarise(kind, runtime, cycles)
                if runtime == "netns" and not row["ok"]:
                    row = skipped(kind, runtime, f"netns runtime failed: {row['errors'][0]}")
                result["rows"].append(row)
        result["host_after"] = common.leftovers(tmp / "state", names, tmp)
        result["clean"] = common.clean(result["host_after"])
    return result


def skipped(kind: str, runtime: str, reason: str) -> dict[str, Any]:
    return {"switch": kind, "runtime": runtime, "skipped": reason, "ok": 0, "cycles": []}


HEADERS = (
    "switch",
    "runtime",
    "topology",
    "up s",
    "run s",
    "down s",
    "cycle s",
    "nodes start+stop s",
    "OVS daemons start+stop s",
    "HTTP s",
    "tool waits s",
    "labctl own s",
    "labctl own %",
    "cycle target",
    "own < 20%",
)


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for row in result["rows"]:
        if row.get("skipped") or not row.get("ok"):
            reason = row.get("skipped") or "; ".join(row.get("errors", []))[:60]
            rows.append([row["switch"], row["runtime"], f"skipped: {reason}"] + [""] * 11)
            continue
        target = row["cycle_target"]
        rows.append(
            [
                row["switch"],
                row["runtime"],
                row["topology"] + ("" if row["http_ok"] else " (HTTP failed)"),
                fmt(row["up"]),
                fmt(row["run"]),
                fmt(row["down"]),
                fmt(row["cycle"]),
                fmt(row["nodes"]),
                fmt(row["daemons"]) if row["switch"] in common.OVS_KINDS else "-",
                fmt(row["http"]),
                fmt(row["tool_waits"]),
                fmt(row["own"]),
                fmt(100 * row["own_share"], 0),
                f"< {target:g} s {row['cycle_verdict']}" if target else "-",
                row["overhead_verdict"],
            ]
        )
    return rows


PART_HEADERS = (
    "switch",
    "runtime",
    "preflight",
    "wiring",
    "HTTP server wait",
    "up other",
    "exec around curl",
    "captures",
    "settle+diagnosis",
    "down links/ports",
    "down sweep+check",
    "down other",
)
PART_KEYS = (
    "up_preflight",
    "up_wiring",
    "up_http_server",
    "up_other",
    "run_exec",
    "run_capture",
    "run_other",
    "down_links_ports",
    "down_sweep_verify",
    "down_other",
)


def part_rows(result: dict[str, Any]) -> list[list[str]]:
    return [
        [row["switch"], row["runtime"]] + [fmt(row["overhead_parts"][k]) for k in PART_KEYS]
        for row in result["rows"]
        if row.get("ok") and not row.get("skipped")
    ]


def render(result: dict[str, Any], markdown: bool = False) -> str:
    repeat = result["settings"]["repeat"]
    text = [
        common.format_table(HEADERS, table_rows(result), markdown),
        "",
        f"Medians of {repeat} cycle(s). Everything beyond the unavoidable work, by phase "
        "(seconds; preflight, up other, run other and down other are labctl's own):",
        "",
        common.format_table(PART_HEADERS, part_rows(result), markdown),
    ]
    return "\n".join(text)


def targets(result: dict[str, Any]) -> list[list[str]]:
    """(target, limit, measured, verdict) rows for the summary."""
    rows = []
    for row in result["rows"]:
        if not row.get("ok") or row.get("skipped"):
            continue
        where = f"{row['switch']}, {row['runtime']}"
        if row["cycle_target"]:
            rows.append(
                [
                    f"seed-lab cycle ({where}; {row['topology']})",
                    f"< {row['cycle_target']:g} s",
                    f"{row['cycle']:.2f} s",
                    row["cycle_verdict"],
                ]
            )
        rows.append(
            [
                f"labctl's own overhead share of the cycle ({where})",
                f"< {100 * OVERHEAD_TARGET:.0f}%",
                f"{100 * row['own_share']:.0f}% ({row['own']:.2f} s; tool waits "
                f"{row['tool_waits']:.2f} s more)",
                row["overhead_verdict"],
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main(build_parser, run, render, argv, targets=targets)


if __name__ == "__main__":
    sys.exit(main())
