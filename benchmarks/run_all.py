"""Run every benchmark with modest settings and write benchmarks/results/summary.md.

    .venv/bin/python -m benchmarks.run_all              # about 5 minutes on 2 CPUs
    .venv/bin/python -m benchmarks.run_all --quick      # fewer repeats and sizes
    .venv/bin/python -m benchmarks.run_all --only cycle,scale
    .venv/bin/python -m benchmarks.run_all --summary-only   # summary.md from existing JSON

Each benchmark writes benchmarks/results/<name>.json; summary.md holds the tables, ready
to paste into the README.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from benchmarks import cli, common, cycle, dataplane, matrix_time, platforms, scale, vm_path

# User-visible times first (separate labctl processes, wall clock), then the in-process
# breakdowns.
BENCHMARKS: dict[str, ModuleType] = {
    "cli": cli,
    "matrix_time": matrix_time,
    "cycle": cycle,
    "scale": scale,
    "dataplane": dataplane,
    "vm_path": vm_path,
    "platforms": platforms,
}
# Run only when named in --only: VMs under TCG, 15 to 25 minutes for vm_path (.ci/run runs
# it), several minutes per platform for platforms.
OPT_IN = {"vm_path", "platforms"}
DEFAULT_ARGS: dict[str, list[str]] = {
    "cli": ["--repeat", "5"],
    "cycle": ["--repeat", "3"],
    "matrix_time": ["--repeat", "1"],
    "scale": ["--sizes", "2,8,32,64", "--ovs-sizes", "2,8,32"],
    "dataplane": ["--seconds", "3", "--requests", "200"],
    "vm_path": [],
    "platforms": [],
}
QUICK_ARGS: dict[str, list[str]] = {
    "cli": ["--repeat", "3"],
    "cycle": ["--repeat", "1"],
    "matrix_time": ["--repeat", "1"],
    "scale": ["--sizes", "2,8,32,64", "--ovs-sizes", "2,8"],
    "dataplane": ["--seconds", "2", "--requests", "100"],
    "vm_path": [],
    "platforms": ["--platform", "debian-13"],
}
TITLES = {
    "cli": "Seed cycle as a user runs it: three labctl processes vs a shell script",
    "matrix_time": "`labctl matrix labs/veth-checksum`: one process, every cell",
    "cycle": "In-process breakdown: seed lab up, run (3 taps, 5 requests, diagnosis), down",
    "scale": "Scaling: N nodes on one switch",
    "dataplane": "Data plane: two nodes through each switch, vs a direct veth pair",
    "vm_path": "The fresh-VM path: local box, vagrant up with the matrix inside, destroy",
    "platforms": "`labctl matrix labs/veth-checksum --platform P`: a throwaway VM per platform",
}
NOTES = {
    "cycle": (
        "Unavoidable work = node start and removal, OVS daemon start/stop with DPDK init "
        "(OVS kinds), the HTTP requests themselves (curl time_total); tool waits = time "
        "spent waiting on netlink, OVSDB, iptables, tcpdump, docker exec and the HTTP server "
        "start; labctl own = the rest (its code, state files, settle, capture analysis), "
        "which the 20% target applies to. OVS kinds run the seed with checksum offload off so that "
        "HTTP succeeds (with it on, the 3 s timeouts of the seed bug would dominate)."
    ),
    "cli": (
        "Wall clock of separate processes, as typed in a shell. labctl does more than the "
        "script: host checks before `up`, a journal it can undo, offload read-back, tool "
        "versions, the diagnosis of the captures and the sweep after `down`. The warm labctl "
        "(src/labctl/warm.py) spares later processes the imports; LABCTL_WARM=0 shows the "
        "cycle without it."
    ),
    "matrix_time": (
        "Each cell is its own lab: up, run with captures and diagnosis, down. Cells run side "
        "by side (default: two per core, at most 4), except OVS cells that need another "
        "ovs-vswitchd build or settings, which take turns. The offload-on cells of the OVS "
        "userspace datapaths fail by design (the seed bug): their 5 requests run at once and "
        "wait out one 3 s curl timeout together."
    ),
    "scale": (
        "One interface per node, addresses in 10.1.0.0/16, no taps, 3 HTTP requests between "
        "two nodes. OVS userspace nodes have checksum offload off (one more step per node)."
    ),
    "dataplane": (
        "Ratios are to a direct veth pair with the same offload setting, measured in the "
        "same run. Offload on through OVS userspace / OVS-DPDK fails: that is the bug."
    ),
    "vm_path": (
        "Wall clock of scripts/vagrant-matrix.sh as .ci/run runs it, on the 2-core host under "
        "TCG (KVM does not run guests here). `vagrant up` includes the upload of the box "
        "into libvirt's pool, the boot, provisioning from the box's own packages and "
        "wheelhouse, and the whole veth-checksum matrix inside the VM."
    ),
    "platforms": (
        "Per platform, one throwaway qemu VM (direct kernel boot of the cached image, a "
        "qcow2 overlay, 9p shares) runs every cell of the lab. Boot = guest uptime when its "
        "job starts; dockerd = when dockerd answers; first cell = host wall clock from qemu's "
        "start to the guest labctl's first cell; per cell = the guest matrix's cell times. "
        "Under TCG on this 2-core host; other labs and VMs may run on the host at the same time."
    ),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_all", description=__doc__)
    p.add_argument(
        "--only",
        help=f"comma-separated subset of {', '.join(BENCHMARKS)} "
        f"({', '.join(sorted(OPT_IN))} runs only when named here)",
    )
    p.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    p.add_argument(
        "--summary-only", action="store_true", help="only rebuild summary.md from the JSON"
    )
    p.add_argument("--results-dir", type=Path, default=common.RESULTS_DIR)
    return p


def selected(only: str | None) -> list[str]:
    if not only:
        return [name for name in BENCHMARKS if name not in OPT_IN]
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}")
    return names


def run_one(name: str, quick: bool, results_dir: Path) -> dict[str, Any]:
    module = BENCHMARKS[name]
    path = results_dir / f"{name}.json"
    argv = [*(QUICK_ARGS if quick else DEFAULT_ARGS)[name], "--json", str(path)]
    args = module.build_parser().parse_args(argv)
    common.say(f"== {name} {' '.join(argv)}")
    result = module.run(args)
    result["argv"] = argv
    common.write_json(path, result)
    print(f"\n## {name}\n")
    print(module.render(result))
    return result


def load_results(names: list[str], results_dir: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for name in names:
        path = results_dir / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def summary_markdown(results: dict[str, dict[str, Any]], failures: dict[str, str]) -> str:
    env = next((r["environment"] for r in results.values() if "environment" in r), {})
    lines = ["# labctl benchmarks", ""]
    if env:
        commit = env.get("labctl_commit", "?") + (
            " + local changes" if env.get("labctl_dirty") else ""
        )
        lines += [
            f"Measured {env.get('date', '?')} on Linux {env.get('kernel', '?')}, "
            f"{env.get('cpus', '?')} CPUs, labctl {commit}, Docker {env.get('docker', '?')}, "
            f"{env.get('ovs', 'OVS ?')}. Reproduce with "
            "`.venv/bin/python -m benchmarks.run_all` (as root); details in "
            "`benchmarks/results/*.json`.",
            "",
        ]
    target_rows = []
    for name, result in results.items():
        target_rows += BENCHMARKS[name].targets(result)
    if target_rows:
        lines += ["## Targets", ""]
        lines.append(
            common.format_table(("target", "limit", "measured", "result"), target_rows, True)
        )
        lines.append("")
    for name, result in results.items():
        lines += [f"## {TITLES[name]}", ""]
        measured = result.get("environment", {})
        load = result.get("host_before", {}).get("loadavg")
        lines += [
            f"Measured {measured.get('date', '?')}, labctl {measured.get('labctl_commit', '?')}"
            + (" + local changes" if measured.get("labctl_dirty") else "")
            + (f", load average {load[0]:.2f} at the start" if load else "")
            + ".",
            "",
        ]
        lines += [BENCHMARKS[name].render(result, markdown=True), ""]
        lines += [NOTES[name], ""]
        busy = result.get("host_before", {}).get("other_labs")
        if busy:
            lines += [f"Other labs were running during this measurement: {', '.join(busy)}.", ""]
        if result.get("clean") is False:
            lines += [f"WARNING: left behind: {json.dumps(result.get('host_after'))}", ""]
    for name, error in failures.items():
        lines += [f"## {name}: FAILED", "", "```", error.strip(), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    names = selected(args.only)
    failures: dict[str, str] = {}
    if not args.summary_only:
        common.require_root()
        for name in names:
            try:
                run_one(name, args.quick, args.results_dir)
            except Exception:  # noqa: BLE001 - the other benchmarks still run
                failures[name] = traceback.format_exc()
                common.say(f"{name} failed:\n{failures[name]}")
    results = load_results(list(BENCHMARKS), args.results_dir)
    results = {n: r for n, r in results.items() if n not in failures}
    summary = args.results_dir / "summary.md"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(summary_markdown(results, failures))
    print(f"\nsummary: {summary}")
    unclean = [n for n, r in results.items() if r.get("clean") is False]
    # Only what ran now can fail this run (summary.md also shows older JSON).
    fresh = {n: r for n, r in results.items() if n in names and not args.summary_only}
    misses = [t for n, r in fresh.items() for t in common.missed(BENCHMARKS[n].targets(r))]
    for target in misses:
        print(f"MISSED: {target}")
    return 1 if failures or unclean or misses else 0


if __name__ == "__main__":
    sys.exit(main())
