"""Switch throughput: TCP (iperf3) and HTTP request rate between two nodes, through each
switch kind with checksum offload on and off, as a ratio to a direct veth pair.

For every path (a direct veth pair between the two nodes, then each switch kind) and
offload setting (tx/rx on, tx/rx off on both nodes) one lab is built; inside it:
- TCP: `iperf3 -s` in the server node, `iperf3 -c <server> -t S -J` in the client node,
  through the runtime's exec; the receiver's bits per second from iperf3's JSON;
- HTTP: one curl process in the client node fetching the server's page R times (every
  request a new TCP connection: busybox httpd closes it), stopping at the first failure;
  the rate is successful requests per second of curl's own transfer time.
Ratios are to the direct veth pair with the same offload setting, measured in the same
run. With offload on, TCP through the OVS userspace datapath and OVS-DPDK fails: the bug
labctl reproduces; those cells show 0 and "fails (expected)".

    .venv/bin/python -m benchmarks.dataplane [--seconds 3] [--requests 200]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks import common
from benchmarks.common import fmt, median, say
from labctl.api import load
from labctl.errors import LabctlError

NAME = "dataplane"
PATHS = ("direct", *common.SWITCHES_HERE)
OFFLOADS = {"on": True, "off": False}
EXPECTED_FAILURES = {("ovs-userspace", "on"), ("ovs-dpdk", "on")}
IPERF_PORT = 5201
CLIENT, SERVER = "client", "server"
ADDRESSES = {CLIENT: "10.0.0.1/24", SERVER: "10.0.0.2/24"}
CURL_FORMAT = "%{http_code} %{time_total} %{num_connects}\\n"


def build_parser() -> argparse.ArgumentParser:
    p = common.parser(NAME, __doc__.splitlines()[0], repeat=1)
    p.add_argument("--seconds", type=int, default=3, help="iperf3 duration (default 3, max 10)")
    p.add_argument("--requests", type=int, default=200, help="HTTP requests (default 200)")
    p.add_argument(
        "--path", action="append", choices=PATHS, help="direct or a switch kind (repeatable)"
    )
    p.add_argument("--offload", action="append", choices=tuple(OFFLOADS), help="on / off")
    p.add_argument("--runtime", choices=("docker", "netns"), default="docker")
    return p


def topology_document(path: str, offload: bool) -> dict[str, Any]:
    nodes = {
        name: {
            "offload": {"tx": offload, "rx": offload},
            "interfaces": {"eth0": {"ipv4": ADDRESSES[name]}},
        }
        for name in (CLIENT, SERVER)
    }
    doc: dict[str, Any] = {"name": "dataplane", "nodes": nodes}
    if path == "direct":
        doc["links"] = [{"a": f"{CLIENT}:eth0", "b": f"{SERVER}:eth0"}]
    else:
        doc["switch"] = {"kind": path}
        doc["links"] = [
            {"a": f"{CLIENT}:eth0", "b": "switch:cli"},
            {"a": f"{SERVER}:eth0", "b": "switch:srv"},
        ]
    # One request only: the traffic section makes labctl start busybox httpd on the server.
    doc["traffic"] = {"client": CLIENT, "server": SERVER, "requests": 1, "timeout": 3}
    return doc


def server_ip() -> str:
    return str(ipaddress.ip_interface(ADDRESSES[SERVER]).ip)


def wait_listening(runtime: Any, handle: Any, port: int, timeout: float = 10.0) -> bool:
    """Bounded wait until something listens on TCP `port` in the node."""
    port_hex = f":{port:04X}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = runtime.exec(handle, ["cat", "/proc/net/tcp", "/proc/net/tcp6"])
        for line in probe.stdout.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[1].endswith(port_hex) and fields[3] == "0A":
                return True
        time.sleep(0.1)
    return False


def measure_tcp(runtime: Any, client: Any, server: Any, seconds: int) -> dict[str, Any]:
    runtime.exec(server, ["iperf3", "-s", "-p", str(IPERF_PORT)], detach=True)
    if not wait_listening(runtime, server, IPERF_PORT):
        return {"ok": False, "error": "iperf3 -s is not listening after 10 s"}
    argv = [
        "iperf3",
        "-c",
        server_ip(),
        "-p",
        str(IPERF_PORT),
        "-t",
        str(seconds),
        "-J",
        "--connect-timeout",
        "2000",
    ]
    started = time.monotonic()
    try:
        outcome = runtime.exec(client, argv, timeout=seconds + 20)
    except LabctlError as error:
        return {"ok": False, "error": " / ".join(error.lines())}
    wall = time.monotonic() - started
    try:
        data = json.loads(outcome.stdout)
    except ValueError:
        tail = (outcome.stderr or outcome.stdout).strip()[-200:]
        return {"ok": False, "error": f"iperf3 exit {outcome.exit_code}: {tail}", "wall": wall}
    if data.get("error") or outcome.exit_code != 0:
        return {
            "ok": False,
            "error": data.get("error") or f"exit {outcome.exit_code}",
            "wall": wall,
        }
    end = data.get("end", {})
    received = end.get("sum_received", {})
    sent = end.get("sum_sent", {})
    return {
        "ok": True,
        "gbps": received.get("bits_per_second", 0.0) / 1e9,
        "retransmits": sent.get("retransmits"),
        "seconds": received.get("seconds"),
        "wall": wall,
    }


def measure_http(runtime: Any, client: Any, requests: int) -> dict[str, Any]:
    url = f"http://{server_ip()}:80/"
    argv = [
        "curl",
        "--silent",
        "--fail-early",
        "--connect-timeout",
        "1",
        "--max-time",
        "2",
        "--write-out",
        CURL_FORMAT,
    ]
    for _ in range(requests):
        argv += ["--output", "/dev/null", url]
    started = time.monotonic()
    try:
        outcome = runtime.exec(client, argv, timeout=requests * 2 + 20)
    except LabctlError as error:
        return {"ok": False, "error": " / ".join(error.lines()), "succeeded": 0}
    wall = time.monotonic() - started
    transfer, succeeded, connects = 0.0, 0, 0
    for line in outcome.stdout.splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        if fields[0] == "200":
            succeeded += 1
            transfer += float(fields[1])
        connects += int(fields[2])
    entry: dict[str, Any] = {
        "ok": succeeded == requests,
        "requests": requests,
        "succeeded": succeeded,
        "new_connections": connects,
        "transfer_seconds": transfer,
        "wall": wall,
        "rate": succeeded / transfer if succeeded and transfer > 0 else 0.0,
        "rate_wall": succeeded / wall if wall > 0 else 0.0,
    }
    if not entry["ok"]:
        entry["error"] = f"curl exit {outcome.exit_code} after {succeeded} of {requests}"
    return entry


def one_lab(
    path: str, offload: str, args: argparse.Namespace, tmp: Path, names: list[str]
) -> dict[str, Any]:
    file = tmp / f"dataplane-{path}-{offload}.yaml"
    file.write_text(yaml.safe_dump(topology_document(path, OFFLOADS[offload]), sort_keys=False))
    name = common.unique_name("bd", common.SWITCH_SHORT.get(path, "nx"), offload)
    names.append(name)
    topology, document = load(file, name=name, runtime=args.runtime)
    entry: dict[str, Any] = {"path": path, "offload": offload, "lab": name, "error": None}
    if path in common.OVS_KINDS:
        entry["ovs_wait"] = round(common.wait_for_ovs_idle(args.ovs_wait, names), 2)
    session = common.LabSession(topology, document, tmp / "state", tmp / "runs")
    with session:
        try:
            session.up()
            runtime = session.runtime()
            client, server = session.node(CLIENT), session.node(SERVER)
            entry["tcp"] = measure_tcp(runtime, client, server, args.seconds)
            entry["http"] = measure_http(runtime, client, args.requests)
            session.down()
        except LabctlError as error:
            entry["error"] = " / ".join(error.lines())
    if session.down_error:
        entry["error"] = (entry["error"] or "") + f" [down: {session.down_error}]"
    return entry


def summarise(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (path, offload): medians, ratios to direct, expected failures."""
    rows = []
    keys = list(dict.fromkeys((e["path"], e["offload"]) for e in entries))
    values: dict[tuple[str, str], dict[str, float | None]] = {}
    for key in keys:
        mine = [e for e in entries if (e["path"], e["offload"]) == key and not e["error"]]
        gbps = [e["tcp"]["gbps"] if e["tcp"]["ok"] else 0.0 for e in mine]
        rate = [e["http"]["rate"] for e in mine]
        values[key] = {"gbps": median(gbps), "rate": median(rate)}
        tcp_ok = bool(mine) and all(e["tcp"]["ok"] for e in mine)
        http_ok = bool(mine) and all(e["http"]["ok"] for e in mine)
        expected_failure = key in EXPECTED_FAILURES
        rows.append(
            {
                "path": key[0],
                "offload": key[1],
                "runs": len(mine),
                "errors": [
                    e["error"] for e in entries if (e["path"], e["offload"]) == key and e["error"]
                ],
                "tcp_gbps": values[key]["gbps"],
                "http_rate": values[key]["rate"],
                "tcp_ok": tcp_ok,
                "http_ok": http_ok,
                "expected_failure": expected_failure,
                "tcp_errors": sorted(
                    {e["tcp"].get("error", "") for e in mine if not e["tcp"]["ok"]}
                ),
            }
        )
    for row in rows:
        base = values.get(("direct", row["offload"]), {})
        for metric, key in (("tcp_gbps", "gbps"), ("http_rate", "rate")):
            reference = base.get(key)
            value = row[metric]
            row[f"{metric}_ratio"] = value / reference if reference and value is not None else None
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    common.require_root()
    args.seconds = max(1, min(args.seconds, 10))
    args.requests = max(1, min(args.requests, 2000))
    paths = args.path or list(PATHS)
    if "direct" not in paths:
        paths = ["direct", *paths]  # the reference is measured in the same run
    offloads = args.offload or list(OFFLOADS)
    result: dict[str, Any] = {
        "benchmark": NAME,
        "environment": common.environment(),
        "settings": {
            "repeat": args.repeat,
            "seconds": args.seconds,
            "requests": args.requests,
            "runtime": args.runtime,
            "paths": paths,
            "offloads": offloads,
        },
        "runs": [],
    }
    names: list[str] = []
    with common.isolated_dirs(args.keep_runs) as tmp:
        result["host_before"] = common.host_activity(tmp / "state")
        for path in paths:
            for offload in offloads:
                for index in range(args.repeat):
                    say(f"dataplane: {path} offload {offload} #{index + 1}")
                    entry = one_lab(path, offload, args, tmp, names)
                    result["runs"].append(entry)
                    say("  -> " + brief(entry))
        result["host_after"] = common.leftovers(tmp / "state", names, tmp)
        result["clean"] = common.clean(result["host_after"])
    result["rows"] = summarise(result["runs"])
    return result


def brief(entry: dict[str, Any]) -> str:
    if entry["error"]:
        return f"error: {entry['error']}"
    tcp, http = entry["tcp"], entry["http"]
    gbps = f"{tcp['gbps']:.2f} Gbit/s" if tcp["ok"] else f"TCP failed ({tcp['error']})"
    return f"{gbps}, HTTP {http['succeeded']}/{http['requests']} at {http['rate']:.0f} req/s"


def status(row: dict[str, Any], ok: bool) -> str:
    if row["errors"] and not row["runs"]:
        return "error"
    if ok:
        return "ok" if not row["expected_failure"] else "works (UNEXPECTED)"
    return "fails (expected)" if row["expected_failure"] else "fails (UNEXPECTED)"


def render(result: dict[str, Any], markdown: bool = False) -> str:
    headers = (
        "path",
        "offload",
        "TCP Gbit/s",
        "TCP vs direct",
        "TCP",
        "HTTP req/s",
        "HTTP vs direct",
        "HTTP",
    )
    rows = []
    for row in result["rows"]:
        rows.append(
            [
                row["path"],
                row["offload"],
                fmt(row["tcp_gbps"]),
                fmt(row["tcp_gbps_ratio"], 2, "x"),
                status(row, row["tcp_ok"]),
                fmt(row["http_rate"], 0),
                fmt(row["http_rate_ratio"], 2, "x"),
                status(row, row["http_ok"]),
            ]
        )
    settings = result["settings"]
    note = (
        f"iperf3 {settings['seconds']} s, one stream; HTTP: {settings['requests']} requests, "
        "each a new connection, rate per second of curl transfer time; medians of "
        f"{settings['repeat']} run(s)."
    )
    return common.format_table(headers, rows, markdown) + "\n\n" + note


def targets(result: dict[str, Any]) -> list[list[str]]:
    """No numeric target: the expected outcome per path (works, or the seed bug)."""
    rows = []
    for row in result["rows"]:
        if row["path"] == "direct":
            continue
        expected = "TCP fails" if row["expected_failure"] else "TCP works"
        measured = "TCP works" if row["tcp_ok"] else "TCP fails"
        if row["tcp_ok"]:
            measured += f", {fmt(row['tcp_gbps_ratio'], 2, 'x')} of direct"
        rows.append(
            [
                f"TCP through {row['path']}, offload {row['offload']}",
                expected,
                measured,
                "PASS" if expected.split(",")[0] == measured.split(",")[0] else "MISS",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    return common.benchmark_main(build_parser, run, render, argv, targets=targets)


if __name__ == "__main__":
    sys.exit(main())
