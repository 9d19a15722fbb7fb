"""labctl command line. One error handler maps labctl errors to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl import __version__, interrupts
from labctl.errors import LabctlError, UsageError

if TYPE_CHECKING:
    from labctl.core.result import MatrixResult

# labctl.core.model.SwitchKind and RuntimeKind, spelled out: importing the model (pydantic)
# here would cost every command, also those that never read a topology (a unit test keeps
# them equal).
SWITCH_KINDS = ["linux-bridge", "ovs-kernel", "ovs-userspace", "ovs-dpdk"]
RUNTIME_KINDS = ["docker", "netns"]
# labctl.core.platforms.PLATFORMS, spelled out for the same reason.
PLATFORM_NAMES = ["host", "debian-12", "debian-12-kernel-6.12", "debian-13"]
DEFAULT_OVS_KERNEL_VM = "debian-12"  # labctl.core.platforms.DEFAULT_OVS_KERNEL_VM


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """labctl's argument parser; built once per process (parsing does not change it)."""
    parser = argparse.ArgumentParser(
        prog="labctl",
        description="Build container network labs on Linux bridges or Open vSwitch, run "
        "traffic probes (HTTP, iperf3 TCP/UDP, ping, any command) through them with captures "
        "at their taps, and tear them down without a trace.",
    )
    parser.add_argument("--version", action="version", version=f"labctl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every detail step")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def topology_args(p: argparse.ArgumentParser, file_help: str = "") -> None:
        p.add_argument("file", help=file_help or "topology YAML file, e.g. topologies/seed.yaml")
        p.add_argument(
            "--switch",
            metavar="KIND|NAME=KIND[,NAME=KIND]",
            help="override the switch kind: of every switch (" + ", ".join(SWITCH_KINDS) + "), "
            "or of switches named in `switches:`",
        )
        p.add_argument("--name", help="override the lab name (run two copies side by side)")
        p.add_argument(
            "--runtime",
            choices=RUNTIME_KINDS,
            help="override the node runtime: Docker containers or plain namespaces",
        )

    p = sub.add_parser(
        "validate", help="check a topology file or a lab; exit 2 listing every problem"
    )
    topology_args(
        p,
        "topology YAML file, e.g. topologies/seed.yaml, or a lab (directory or lab.yaml, e.g. "
        "labs/veth-checksum: the lab file, its topology and every cell's topology)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the topology JSON Schema (for editors)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("plan", help="show the steps `up` would take, without doing them")
    topology_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("up", help="build a lab from a topology file")
    topology_args(p)
    p.add_argument("--json", action="store_true", help="print the lab state as JSON")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "run",
        help="run the traffic probes with captures at every tap, then diagnose "
        "(exit 1 if a probe fails)",
    )
    p.add_argument("lab", nargs="?", help="lab name (default: the only lab that is up)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--runs-dir",
        default=None,
        help="where run directories go (default: $LABCTL_RUNS_DIR or ./runs)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "capture",
        help="capture at a tap, a node interface or a switch port of a running lab",
        description="Captures at a tap of the topology, or at any node interface (NODE:IFACE, "
        "inside the node) or switch port (switch:PORT) of a running lab. `-w -` streams the "
        "pcap to stdout until Ctrl-C: labctl capture server:eth0 -w - | wireshark -k -i -. "
        "It prints 'capturing at TAP ...' on stderr once tcpdump listens: traffic started "
        "after that line is captured.",
    )
    p.add_argument("tap", help="tap name from the topology, NODE:IFACE or switch:PORT")
    p.add_argument("--lab", help="lab name (default: the only lab that is up)")
    p.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="how long (default 10; with -w -: until Ctrl-C)",
    )
    p.add_argument("--filter", help="pcap filter (default: the tap's, or the traffic under test)")
    p.add_argument(
        "-o",
        "-w",
        "--output",
        help="pcap file, or - for stdout (default: <runs-dir>/<lab>/capture-...)",
    )
    p.add_argument("--runs-dir", default=None, help="default: $LABCTL_RUNS_DIR or ./runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_capture)

    p = sub.add_parser(
        "analyze",
        help="checksum forensics on pcaps (any pcaps, or a labctl run directory)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=ANALYZE_DESCRIPTION,
    )
    p.add_argument(
        "pcaps",
        nargs="+",
        metavar="PCAP|RUN_DIR",
        help=(
            "pcap/pcapng files (gzip'ed too) in path order, each interface of a pcapng a "
            "tap, or one run directory"
        ),
    )
    p.add_argument(
        "--order",
        help="tap names in path order, comma-separated (default: the files' order, a pcapng's "
        "interfaces in file order)",
    )
    p.add_argument(
        "--sender",
        action="append",
        default=[],
        metavar="TAP=ADDR[,ADDR]",
        help="addresses whose packets are still inside their sender's kernel at "
        "TAP (an unfinished checksum there is normal TX offload); with any --sender, "
        "every other source counts as having left its kernel at every tap; repeatable",
    )
    p.add_argument(
        "--off-path",
        action="append",
        default=[],
        metavar="TAP[,TAP]",
        help="taps the traffic should not cross, e.g. a port of another VLAN: "
        "left out of the path order; what reached them is reported (seen-off-path, a "
        "warning: a switch may flood a first packet); repeatable",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_analyze)

    p = sub.add_parser(
        "matrix",
        help="run a lab over switch kinds x offload settings (x ovs_config, x platforms) and "
        "compare with its expectations",
    )
    p.add_argument("lab", help="lab directory or lab.yaml, e.g. labs/veth-checksum")
    p.add_argument(
        "--switch",
        action="append",
        metavar="KIND|NAME=KIND[,NAME=KIND]",
        help="only cells of this switch kind (" + ", ".join(SWITCH_KINDS) + "), for every "
        "switch, or of these kinds for switches named in `switches:` (repeatable: one cell "
        "each)",
    )
    p.add_argument("--offload", action="append", help="only this offload setting (repeatable)")
    p.add_argument(
        "--ovs-config",
        action="append",
        metavar="NAME",
        help="only the OVS cells with this matrix.ovs_config setting (repeatable; leaves "
        "the Linux bridge, which has none, out)",
    )
    p.add_argument(
        "--runtime", choices=RUNTIME_KINDS, help="override the node runtime of every cell"
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="cells running at the same time, each its own lab (default: two per core, at "
        "most 4; 1 on one core); OVS cells needing another ovs-vswitchd build or settings "
        "take turns",
    )
    p.add_argument("--serial", action="store_true", help="one cell at a time (--workers 1)")
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="run only share K of N (1 <= K <= N) of the cells: the same share on every "
        "machine given the same LAB, --switch, --offload and --ovs-config; combine the "
        "shards' reports with `labctl report merge`",
    )
    p.add_argument(
        "--platform",
        action="append",
        choices=PLATFORM_NAMES,
        help="where the cells run: host, or a Debian release booted in a throwaway qemu VM "
        "(its image is built once from Debian packages and cached); repeatable, overrides "
        "lab.yaml's matrix.platforms",
    )
    p.add_argument(
        "--ovs-kernel-vm",
        metavar="PLATFORM",
        choices=[n for n in PLATFORM_NAMES if n != "host"],
        help="on a host without the openvswitch kernel module, run the host's ovs-kernel "
        f"cells in this platform's VM (default: lab.yaml's matrix.ovs_kernel_vm, else "
        f"{DEFAULT_OVS_KERNEL_VM}; the report says so)",
    )
    p.add_argument(
        "--no-ovs-kernel-vm",
        action="store_true",
        help="on a host without the openvswitch kernel module, skip the host's ovs-kernel "
        "cells (with that reason) instead of booting a platform VM for them",
    )
    p.add_argument("--runs-dir", default=None, help="default: $LABCTL_RUNS_DIR or ./runs")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("report", help="matrix reports")
    report_sub = p.add_subparsers(dest="report_command", required=True, metavar="ACTION")
    m = report_sub.add_parser(
        "merge",
        help="one report (json, md, junit, html) from the report.json of matrix shards",
    )
    m.add_argument(
        "dirs", nargs="+", metavar="DIR", help="shard report directories (or report.json files)"
    )
    m.add_argument("-o", "--output", required=True, metavar="OUT", help="directory to write")
    m.add_argument("--json", action="store_true", help="print the merged result as JSON")
    m.set_defaults(func=cmd_report_merge)

    p = sub.add_parser("down", help="tear a lab down; finds leftovers by label, idempotent")
    p.add_argument("lab", nargs="?", help="lab name (default: the only lab known)")
    p.add_argument("--all", action="store_true", help="tear down every labctl lab on this host")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="what labctl has created on this host")
    p.add_argument("lab", nargs="?", help="only this lab")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("doctor", help="check every host requirement; print ok or the fix")
    p.add_argument(
        "--switch", choices=SWITCH_KINDS, help="exit non-zero when this switch kind cannot run here"
    )
    p.add_argument(
        "--runtime",
        choices=RUNTIME_KINDS,
        default="docker",
        help="the node runtime to check for (default docker)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("image", help="the default node image")
    image_sub = p.add_subparsers(dest="image_command", required=True, metavar="ACTION")
    b = image_sub.add_parser("build", help="build it (cached: only when its recipe changed)")
    b.add_argument("--force", action="store_true", help="rebuild even if up to date")
    b.add_argument(
        "--keep-rootfs",
        action="store_true",
        help="also keep the packed root file system in the cache (LABCTL_IMAGE_CACHE, "
        "default /var/cache/labctl/images) and print its path; scripts/build-box.sh "
        "puts it in the VM image so the VM imports it instead of running debootstrap",
    )
    b.add_argument("--json", action="store_true", help="machine-readable output")
    b.set_defaults(func=cmd_image_build)
    _add_user_commands(sub)
    _accept_global_options(parser)
    _add_completers(parser)
    return parser


GLOBAL_OPTIONS = (("-v", "--verbose"),)
"""Options of `labctl` itself that every subcommand also accepts after its name."""


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_subparsers(child)]
    return found


def _accept_global_options(parser: argparse.ArgumentParser) -> None:
    """`labctl validate FILE -v` as well as `labctl -v validate FILE`."""
    top = {flag: action for action in parser._actions for flag in action.option_strings}
    for child in _subparsers(parser):
        for flags in GLOBAL_OPTIONS:
            action = top[flags[0]]
            # SUPPRESS: a subcommand that was not given the option keeps the top level's value.
            child.add_argument(
                *flags,
                dest=action.dest,
                action="store_true",
                default=argparse.SUPPRESS,
                help=action.help,
            )


def _add_user_commands(sub: Any) -> None:
    p = sub.add_parser(
        "exec",
        help="a shell in a node of a running lab, or one command (its exit code is labctl's)",
        description="Without CMD: an interactive shell in the node (bash, else sh). With CMD: "
        "runs it in the node on this terminal's stdin/stdout/stderr and exits with its exit "
        "code. Works for both runtimes (Docker containers and network namespaces).",
    )
    p.add_argument("lab", help="lab name")
    p.add_argument("node", help="node name")
    p.add_argument(
        "cmd",
        nargs=argparse.REMAINDER,
        metavar="-- CMD",
        help="the command and its arguments (default: an interactive shell)",
    )
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser(
        "graph",
        help="draw a topology (a file, or a lab that is up): Mermaid, Graphviz DOT or SVG",
        description="The topology drawing of the matrix report, for docs and bug reports: "
        "nodes with roles and addresses, the switch, veth links and the numbered taps. "
        "labctl graph topologies/seed.yaml --format svg > seed.svg",
    )
    p.add_argument("source", metavar="FILE|LAB", help="topology file, or the name of a lab")
    p.add_argument(
        "--format",
        choices=["mermaid", "dot", "svg"],
        default="mermaid",
        help="default mermaid (renders in GitHub/GitLab Markdown)",
    )
    p.set_defaults(func=cmd_graph)

    p = sub.add_parser(
        "init",
        help="write the example topologies and labs into DIR, to edit and run",
    )
    p.add_argument("dir", nargs="?", default=".", help="target directory (default: here)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "completion",
        help='print the shell completion script: eval "$(labctl completion bash)"',
    )
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=cmd_completion)


def _progress(args: argparse.Namespace) -> Callable[[Any], None]:
    from labctl.render import ProgressPrinter

    return ProgressPrinter(verbose=args.verbose)


def cmd_validate(args: argparse.Namespace) -> int:
    from labctl.api import load
    from labctl.errors import ConfigError

    try:
        if _is_lab_file(Path(args.file)):
            return _validate_lab(args)
        topology, _ = load(args.file, args.switch, args.name, args.runtime)
    except ConfigError as error:
        if not args.json:
            raise
        problems = [p.__dict__ for p in error.problems]
        print(json.dumps({"file": args.file, "ok": False, "problems": problems}, indent=2))
        return error.exit_code
    from labctl.core.plan import switch_kinds_text

    kind = switch_kinds_text(topology) or "none"
    if args.json:
        print(
            json.dumps(
                {
                    "file": args.file,
                    "ok": True,
                    "lab": topology.name,
                    "switch": switch_kinds_text(topology),
                    "runtime": topology.runtime,
                    "nodes": sorted(topology.nodes),
                    "links": len(topology.links),
                    "taps": [t.name for t in topology.taps],
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{args.file}: ok (lab {topology.name}, {len(topology.nodes)} nodes, switch {kind}, "
        f"{len(topology.links)} links, {len(topology.taps)} taps)"
    )
    return 0


def _is_lab_file(path: Path) -> bool:
    """A lab (labs/NAME or its lab.yaml: a topology plus a matrix), not a topology."""
    from labctl.examples import shipped

    path = shipped(path) or path
    if path.is_dir():
        return (path / "lab.yaml").is_file()
    if not path.is_file():
        return False
    import yaml

    try:
        data = yaml.safe_load(path.read_text(errors="replace"))
    except yaml.YAMLError:
        return False  # the topology loader says where and why
    return isinstance(data, dict) and "matrix" in data and "topology" in data


def _validate_lab(args: argparse.Namespace) -> int:
    """The lab file, the topology it names and every cell's topology, without running."""
    from dataclasses import replace

    from labctl.core.matrix import cells, load_lab
    from labctl.core.validate import semantic_problems
    from labctl.errors import ConfigError
    from labctl.reports.common import plural

    if args.switch or args.name or args.runtime:
        raise UsageError(
            "--switch, --name and --runtime apply to a topology; a lab's cells come from its "
            "matrix (labctl matrix LAB --switch KIND runs some of them)"
        )
    lab = load_lab(args.file)
    chosen = cells(lab)
    problems = []
    for cell in chosen:
        topology = cell.topology(lab.topology, lab.name)
        for problem in semantic_problems(topology, lab.topology_document):
            problems.append(replace(problem, message=f"cell {cell.key}: {problem.message}"))
    if problems:
        raise ConfigError(problems)
    switches = len({c.switch.value for c in chosen})
    without = [c.key for c in chosen if c.expectation is None]
    if args.json:
        print(
            json.dumps(
                {
                    "file": str(lab.file),
                    "ok": True,
                    "lab": lab.name,
                    "topology": str(lab.topology_file),
                    "cells": [
                        {"cell": c.key, "expectation": c.expectation is not None} for c in chosen
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{lab.file}: ok (lab {lab.name}, topology {lab.topology_file.name}: {len(chosen)} "
        f"cells, {plural(switches, 'switch choice')} x "
        f"{plural(len(lab.offloads), 'offload setting')}"
        + (f" x {plural(len(lab.ovs_configs), 'ovs_config setting')}" if lab.ovs_configs else "")
        + (f"; no expectation on the host for {', '.join(without)}" if without else "")
        + ")"
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from labctl.core.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from labctl.api import load
    from labctl.core.plan import make_plan

    topology, _ = load(args.file, args.switch, args.name, args.runtime)
    plan = make_plan(topology)
    if args.json:
        print(
            json.dumps(
                {
                    "lab": plan.lab,
                    "switch": plan.switch_kind,
                    "bridge": plan.bridge,
                    "bridges": dict(plan.bridges),
                    "steps": [
                        {"key": s.key, "action": s.action, "description": s.description}
                        for s in plan.steps
                    ],
                    "taps": [t.__dict__ for t in plan.taps],
                },
                indent=2,
            )
        )
        return 0
    print(f"lab {plan.lab}: switch {plan.switch_kind or 'none'}")
    print("\n".join(plan.describe()))
    for tap in plan.taps:
        off_path = ", off the path" if tap.off_path else ""
        print(f"tap {tap.name}: {tap.description} ({tap.namespace} {tap.ifname}{off_path})")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from labctl.api import Lab

    lab = Lab.from_file(args.file, args.switch, args.name, args.runtime, on_event=_progress(args))
    try:
        state = lab.up()
    finally:
        lab.close()
    if args.json:
        print(json.dumps(state.to_dict(), indent=2))
    else:
        print(
            f"lab {state.lab} is up ({state.switch_kind or 'no switch'}); "
            f"next: labctl run {state.lab}, labctl down {state.lab}"
        )
    return 0


def _engine(args: argparse.Namespace) -> tuple[Any, Callable[[], None]]:
    from labctl.backends.registry import real_backends
    from labctl.engine import Engine
    from labctl.state import StateStore

    progress = _progress(args)
    backends, close = real_backends(progress)
    return Engine(backends, StateStore(), progress), close


def _pick_lab(engine: Any, given: str | None, up_only: bool) -> str:
    if given:
        return given
    labs = engine.store.labs() if up_only else engine.known_labs()
    if len(labs) == 1:
        return str(labs[0])
    if not labs:
        raise UsageError("no lab is up; start one with `labctl up topologies/seed.yaml`")
    raise UsageError(f"several labs exist ({', '.join(labs)}); name one")


def runs_root(given: str | None) -> Path:
    return Path(given or os.environ.get("LABCTL_RUNS_DIR", "runs"))


def cmd_run(args: argparse.Namespace) -> int:
    from labctl.analysis.diagnosis_text import render_text
    from labctl.run import RunRecorder

    engine, close = _engine(args)
    try:
        lab = _pick_lab(engine, args.lab, up_only=True)
        record = RunRecorder(engine, runs_root(args.runs_dir)).run(lab)
    finally:
        close()
    if args.json:
        print(json.dumps(record.to_dict(), indent=2, default=str))
        return 0 if record.ok else 1
    for probe in record.probes:
        print(probe.render_text())
    if record.diagnosis is not None:
        print()
        print(render_text(record.diagnosis, width=_width(), max_flows=2, findings_per_kind=1))
    print(f"\nartifacts: {record.run_dir} (pcaps, manifest.json, diagnosis.txt)")
    return 0 if record.ok else 1


def cmd_capture(args: argparse.Namespace) -> int:
    import time

    from labctl.backends.base import CaptureSpec
    from labctl.core.taps import default_filter

    streaming = args.output == "-"
    if args.seconds is not None and not 0 < args.seconds <= 3600:
        raise UsageError("--seconds must be between 0 and 3600")
    if streaming and sys.stdout.isatty():
        raise UsageError("-w - writes a binary pcap: pipe it, e.g. | wireshark -k -i -")
    if streaming and args.json:
        raise UsageError("-w - puts the pcap on stdout; --json cannot go there too")
    seconds = args.seconds if args.seconds is not None or streaming else 10.0
    engine, close = _engine(args)
    try:
        lab = _pick_lab(engine, args.lab, up_only=True)
        _state, topology = engine.load_state(lab)
        tap = capture_point(lab, topology, args.tap)
        netns = (
            None
            if tap.namespace == "host"
            else engine.node(lab, tap.namespace, topology).netns_path
        )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        output = Path(
            args.output or runs_root(args.runs_dir) / lab / f"capture-{stamp}" / f"{tap.name}.pcap"
        )
        spec = CaptureSpec(
            tap.name,
            tap.ifname,
            output,
            netns,
            args.filter or tap.filter or default_filter(topology),
        )
        assert engine.backends.capture is not None
        until = "Ctrl-C" if seconds is None else f"{seconds:g} s (Ctrl-C stops early)"

        def listening() -> None:
            # Said only once tcpdump listens: a script may start its traffic on this line.
            print(
                f"capturing at {tap.name} ({tap.description}) until {until}",
                file=sys.stderr,
                flush=True,
            )

        if streaming:
            result = engine.backends.capture.stream(spec, seconds, listening)
        else:
            capture = engine.backends.capture.capturing([spec])
            with capture as results, contextlib.suppress(KeyboardInterrupt):
                listening()
                time.sleep(seconds or 0)
            result = results[0]
    finally:
        close()
    if args.json:
        print(
            json.dumps(
                {
                    "lab": lab,
                    "tap": tap.name,
                    "pcap": str(output),
                    "packets_captured": result.packets_captured,
                    "packets_dropped": result.packets_dropped,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{'stdout' if streaming else output}: {result.packets_captured} packets",
        file=sys.stderr if streaming else sys.stdout,
    )
    return 0


def capture_targets(topology: Any) -> tuple[list[str], list[str], list[str]]:
    """What `capture` can name in a lab: its taps, node interfaces (NODE:IFACE, lo
    included) and switch ports (switch:PORT, or SWITCH:PORT with `switches:`)."""
    from labctl.core.validate import parse_endpoint

    ends = [
        e
        for link in topology.links
        for e in (
            parse_endpoint(link.a, topology.switch_names()),
            parse_endpoint(link.b, topology.switch_names()),
        )
        if e is not None
    ]
    interfaces = {
        f"{n}:{i}" for n, node in topology.nodes.items() for i in (*node.interfaces, "lo")
    }
    interfaces |= {str(e) for e in ends if not e.is_switch}
    ports = sorted({str(e) for e in ends if e.is_switch})
    return [t.name for t in topology.taps], sorted(interfaces), ports


def capture_point(lab: str, topology: Any, target: str) -> Any:
    """The TapPoint for a tap name, NODE:IFACE (inside the node) or switch:PORT."""
    from labctl.core.model import Tap
    from labctl.core.plan import make_plan
    from labctl.core.validate import parse_endpoint

    taps, interfaces, ports = capture_targets(topology)
    if target in taps:
        return next(t for t in make_plan(topology).taps if t.name == target)
    name = target.replace(":", "-")
    end = parse_endpoint(target, topology.switch_names())
    if end is not None and target in ports:
        tap = Tap(name=name, switch_port=end.name)
    elif target in interfaces:
        tap = Tap(name=name, node=target)
    else:
        raise UsageError(
            f"lab {lab} has no tap, node interface or switch port {target!r} "
            f"(taps: {', '.join(taps) or '-'}; interfaces: {', '.join(interfaces) or '-'}; "
            f"switch ports: {', '.join(ports) or '-'})"
        )
    with_tap = topology.model_copy(update={"taps": [*topology.taps, tap]})
    return make_plan(with_tap).taps[-1]


def _width() -> int:
    return min(shutil.get_terminal_size((100, 20)).columns, 120)


ANALYZE_DESCRIPTION = """\
Checksum forensics on captures: every TCP/UDP checksum is valid, unfinished
(only the pseudo-header sum that TX checksum offload leaves) or wrong.

What one capture proves on its own: TCP's evidence. A segment its peer
answered (SYN answered by SYN/ACK, data or FIN covered by a later ACK) was
accepted by the receiving TCP, whatever its checksum looked like here: not a
fault. A segment sent again and never acknowledged, a SYN never answered, is
a fault, with that evidence quoted. Without evidence (UDP, a capture that
ends first, one direction only) the finding is a warning: where a tap sits is
not known, and an unfinished checksum is normal inside its sender's kernel.

What needs more: --sender TAP=ADDR says where taps sit (then an unfinished
checksum from any other source is a fault by position, and acknowledged
segments that contradict it are reported); several pcaps in path order show
where on the way a checksum changes or a packet is lost; a run directory
(labctl run) knows every tap's position from the topology. --off-path TAP
names a capture the traffic should not cross (a port of another VLAN, a branch):
it is no hop of the path; the report gives what reached it (seen-off-path).

Files: classic pcap (microsecond or nanosecond, either byte order) and
pcapng (several sections, interfaces and time resolutions), gzip'ed or not.
Links: Ethernet (VLAN tags, MPLS, PPPoE too), Linux cooked SLL and SLL2 (-i any), raw IP
(link types 12, 14, 101, 228, 229), BSD/macOS loopback (NULL, LOOP); frames of
any other link type are counted as skipped with its number. Tunnels (VXLAN,
VXLAN-GPE, Geneve, GRE, ERSPAN, IP in IP): the packets inside are judged and
matched with the overlay's captures; the tunnel's datagram takes their evidence.

Taps are named by file stem. A pcapng with packets on several interfaces
(dumpcap -i eth0 -i any) is one tap per interface, a capture point each:
STEM:IFNAME, or STEM:ifN (N counts the file's interfaces from 0) when the
interface has no name or shares it; so is a tcpdump -i any file (SLL2) with
frames of several kernel interfaces: STEM:ifindexN. --order, --sender and
--off-path take these names. Without --order their order is a guess, and an
interface that saw nothing of a connection is not on its path.

Exit 0 when nothing is a fault (warnings included), 1 on a fault, 2 on bad
input."""


def cmd_analyze(args: argparse.Namespace) -> int:
    from labctl.analysis.diagnose import capture_points, diagnose
    from labctl.analysis.diagnosis import Tap
    from labctl.analysis.diagnosis_text import render_text
    from labctl.run import diagnose_run_dir

    paths = [Path(p) for p in args.pcaps]
    if len(paths) == 1 and paths[0].is_dir():
        if not (paths[0] / "manifest.json").is_file():
            raise UsageError(
                f"{paths[0]} is a directory without manifest.json; name the pcap files instead"
            )
        diagnosis = diagnose_run_dir(paths[0])
    else:
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise UsageError(f"no such file: {', '.join(missing)}")
        by_name: dict[str, tuple[Path, int | None]] = {}
        for path in paths:
            for name, interface in capture_points(path):
                if name in by_name:
                    raise UsageError(
                        f"two taps are named {name!r} ({by_name[name][0]}, {path}); "
                        "taps are named by file stem: rename one of the files"
                    )
                by_name[name] = (path, interface)
        names = ", ".join(by_name)
        order = list(by_name)
        if args.order:
            order = [name.strip() for name in args.order.split(",") if name.strip()]
            mismatch = sorted(set(order) ^ set(by_name))
            mismatch += [f"{name} twice" for name in sorted(set(order)) if order.count(name) > 1]
            if mismatch:
                raise UsageError(
                    f"--order must name each tap exactly once "
                    f"(taps: {names}; mismatch: {', '.join(mismatch)})"
                )
        senders = _parse_senders(args.sender, list(by_name))
        off_path = {name.strip() for value in args.off_path for name in value.split(",")}
        off_path.discard("")
        if off_path - set(by_name):
            raise UsageError(
                f"--off-path names no tap: {', '.join(sorted(off_path - set(by_name)))} "
                f"(taps: {names})"
            )
        # Without --sender nothing says where the taps sit: TCP's evidence alone decides.
        positioned = bool(args.sender)
        # The interfaces of one file stand in file order, a guess unless --order says it.
        split = {name for name, (_, interface) in by_name.items() if interface is not None}
        diagnosis = diagnose(
            [
                Tap(
                    name,
                    by_name[name][0],
                    frozenset(senders.get(name, ())),
                    positioned=positioned,
                    off_path=name in off_path,
                    interface=by_name[name][1],
                    order_known=bool(args.order) or name not in split,
                )
                for name in order
            ]
        )
    if args.json:
        print(json.dumps(diagnosis.to_dict(), indent=2))
    else:
        print(render_text(diagnosis, width=_width()))
    return 0 if diagnosis.ok else 1


def _parse_senders(values: list[str], taps: list[str]) -> dict[str, list[str]]:
    senders: dict[str, list[str]] = {}
    for value in values:
        tap, sep, addresses = value.partition("=")
        if not sep or tap not in taps:
            raise UsageError(
                f"--sender {value!r}: expected TAP=ADDR[,ADDR] with TAP one of {', '.join(taps)}"
            )
        senders.setdefault(tap, []).extend(a.strip() for a in addresses.split(",") if a.strip())
    return senders


def cmd_matrix(args: argparse.Namespace) -> int:
    from labctl.core import schedule
    from labctl.core.matrix import cells, load_lab
    from labctl.matrix import MatrixRunner, write_reports

    if args.serial and args.workers not in (None, 1):
        raise UsageError("--serial is --workers 1; give one of them")
    workers = 1 if args.serial else args.workers or schedule.default_workers(os.cpu_count())
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, not {workers}")
    shard = schedule.parse_shard(args.shard) if args.shard else None
    lab = load_lab(args.lab)
    runner = MatrixRunner(
        lab, runs_root(args.runs_dir), on_event=_progress(args), runtime=args.runtime
    )
    from labctl import platform_matrix
    from labctl.core import platforms as plat

    ovs_kernel_vm = plat.ovs_kernel_vm(
        args.ovs_kernel_vm, args.no_ovs_kernel_vm, lab.spec.matrix.ovs_kernel_vm
    )
    chosen = cells(
        lab, args.switch, args.offload, platform_matrix.current_platform(), args.ovs_config
    )
    # A host without the openvswitch module runs its ovs-kernel cells in a platform VM
    # unless told otherwise; a matrix without ovs-kernel cells boots nothing. A shard
    # keeps to its own machine (--ovs-kernel-vm with --shard is refused below).
    hand_over = (
        ovs_kernel_vm.platform is not None
        and not shard
        and platform_matrix.current_platform() == plat.HOST
        and any(c.switch.value == "ovs-kernel" for c in chosen)
        and not platform_matrix.host_has_ovs_module()
    )
    if args.platform or lab.spec.matrix.platforms or args.ovs_kernel_vm or hand_over:
        if shard:
            raise UsageError("--shard and platforms: give one of them")
        chosen_platforms = platform_matrix.check_choice(args.platform, lab)
        result = platform_matrix.run(
            lab,
            runner,
            lambda platform: cells(lab, args.switch, args.offload, platform, args.ovs_config),
            chosen_platforms,
            ovs_kernel_vm,
            workers,
            args.offload,
            say=lambda line: print(line, file=sys.stderr, flush=True),
            ovs_configs=args.ovs_config,
        )
        reports = platform_matrix.write_reports(result)
        return _print_matrix(result, reports, args.json)
    result = runner.run(chosen, workers=workers, shard=shard)
    reports = write_reports(result)
    return _print_matrix(result, reports, args.json)


def cmd_report_merge(args: argparse.Namespace) -> int:
    from labctl.matrix import merge_reports, write_reports

    result = merge_reports([Path(d) for d in args.dirs], Path(args.output))
    reports = write_reports(result)
    return _print_matrix(result, reports, args.json)


def _print_matrix(result: MatrixResult, reports: dict[str, Path], as_json: bool) -> int:
    from labctl.analysis.tables import format_table
    from labctl.matrix import exit_code

    if as_json:
        print(json.dumps(result.to_json(), indent=2))
        return exit_code(result)
    rows = []
    on_platforms = bool(result.platforms)
    with_configs = any(cell.ovs_config for cell in result.cells)
    for cell in result.cells:
        observed = cell.observed
        rows.append(
            [
                *([cell.platform] if on_platforms else []),
                cell.switch,
                cell.offload,
                *([cell.ovs_config or "-"] if with_configs else []),
                (
                    "-"
                    if observed is None
                    else f"HTTP {observed.succeeded}/{observed.requests}"
                    if observed.http_only
                    else _clip(observed.probes_line(), 70)
                ),
                ", ".join(observed.findings if observed else ()) or "-",
                cell.status,
                _clip(cell.reason or "", 60),
            ]
        )
    headers = [
        "switch",
        "offload",
        *(["ovs_config"] if with_configs else []),
        *["traffic", "faults", "status", "note"],
    ]
    print(format_table(["platform", *headers] if on_platforms else headers, rows))
    for note in result.platform_notes:
        print(f"note: {note}")
    summary = result.summary
    print(
        f"\n{len(result.cells)} cells: {summary['passed']} as expected, "
        f"{summary['failed']} differ, {summary['skipped']} skipped, {summary['error']} errors "
        f"({result.seconds or 0:.0f} s)"
    )
    plan = result.schedule
    if plan is not None and plan.workers:
        print(f"up to {plan.workers} cells at a time", end="")
        print("; " + "; ".join(plan.rules) if plan.rules else "")
    for shard in result.shards or []:
        print(f"  shard {shard.shard} ran on {shard.hostname} ({shard.report})")
    for kind, path in reports.items():
        print(f"  {kind:8} {path}")
    return exit_code(result)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_down(args: argparse.Namespace) -> int:
    engine, close = _engine(args)
    try:
        if args.all:
            labs = engine.known_labs()
        else:
            labs = (
                [_pick_lab(engine, args.lab, up_only=False)]
                if (args.lab or engine.known_labs())
                else []
            )
        vms = _platform_vms() if args.all else []
        if not labs and not vms and not args.json:
            print("nothing to tear down")
        done = []
        for lab in labs:
            swept = engine.down(lab)
            done.append({"lab": lab, "swept": [{"kind": o.kind, "name": o.name} for o in swept]})
            if not args.json:
                extra = f" ({len(swept)} leftovers swept by label)" if swept else ""
                print(f"lab {lab} is down{extra}")
        from labctl.backends import platform_vm

        for vm in vms:
            platform_vm.remove(vm)
            if not args.json:
                state = "stopped and removed" if vm.alive else "removed (its qemu was gone)"
                print(f"platform VM {vm.run_dir.name} ({vm.platform}, lab {vm.lab}): {state}")
    finally:
        close()
    if args.json:
        removed = [{"vm": v.run_dir.name, "platform": v.platform, "lab": v.lab} for v in vms]
        print(json.dumps({"down": done, "platform_vms": removed}, indent=2))
    return 0


def _platform_vms() -> list[Any]:
    from labctl.backends import platform_vm

    return platform_vm.listing()


def cmd_status(args: argparse.Namespace) -> int:
    from labctl.analysis.tables import format_table

    engine, close = _engine(args)
    try:
        owned = engine.owned(args.lab)
        labs = sorted({*engine.store.labs(), *(o.lab for o in owned)})
        if args.lab:
            labs = [lab for lab in labs if lab == args.lab]
        report = []
        for lab in labs:
            state = engine.store.load(lab)
            report.append(
                {
                    "lab": lab,
                    "status": state.status if state else "leftovers (no state file)",
                    "switch": state.switch_kind if state else None,
                    "topology_file": state.topology_file if state else None,
                    "resources": [
                        {"kind": o.kind, "name": o.name, **o.details} for o in owned if o.lab == lab
                    ],
                }
            )
    finally:
        close()
    vms = [
        {
            "vm": vm.run_dir.name,
            "platform": vm.platform,
            "lab": vm.lab,
            "pid": vm.pid,
            "running": vm.alive,
            "started_at": vm.details.get("started_at"),
            "run_dir": str(vm.run_dir),
        }
        for vm in _platform_vms()
        if not args.lab or vm.lab == args.lab
    ]
    if args.json:
        print(json.dumps({"labs": report, "platform_vms": vms}, indent=2))
        return 0
    for vm in vms:
        state = f"running, qemu pid {vm['pid']}" if vm["running"] else "left behind (no qemu)"
        print(
            f"platform VM {vm['vm']}: {vm['platform']} for lab {vm['lab']}, {state}, "
            f"since {vm['started_at']} ({vm['run_dir']})"
        )
    if not report:
        print("no labs")
        return 0
    for entry in report:
        print(
            f"lab {entry['lab']}: {entry['status']}, switch {entry['switch'] or '-'}, "
            f"from {entry['topology_file'] or '-'}"
        )
        rows = [
            [
                r["kind"],
                _clip(r["name"], 50),
                _clip(
                    " ".join(
                        f"{k}={v}"
                        for k, v in r.items()
                        if k not in ("kind", "name", "external_ids", "spec") and v is not None
                    ),
                    max(20, _width() - 40),
                ),
            ]
            for r in entry["resources"]
        ]
        print(
            format_table(["kind", "name", "details"], rows) if rows else "  (nothing on the host)"
        )
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from labctl.backends.host_probe import probe
    from labctl.core.doctor import blocking, evaluate, runnable, runnable_line

    checks = evaluate(probe(kvm=True))
    from labctl.core.model import RuntimeKind, SwitchKind

    kind = SwitchKind(args.switch) if args.switch else None
    runtime = RuntimeKind(args.runtime)
    failing = blocking(checks, kind, runtime)
    if args.json:
        print(
            json.dumps(
                {
                    "checks": [c.to_dict() for c in checks],
                    "runnable": runnable(checks, runtime),
                    "switch": args.switch,
                    "runtime": runtime,
                    "ok": not failing,
                },
                indent=2,
            )
        )
        return 1 if failing else 0
    for check in checks:
        if (kind is not None and kind not in check.needed_by) or runtime not in check.runtimes:
            continue
        mark = "ok  " if check.ok else ("FAIL" if check.required else "warn")
        print(f"{mark}  {check.name:24} {check.detail}")
        if check.fix and not check.ok:
            print(f"      {'':24} fix: {check.fix}")
    can = runnable(checks, runtime)
    print("\n" + runnable_line(can))
    return 1 if failing else 0


def cmd_image_build(args: argparse.Namespace) -> int:
    from labctl.backends.docker_runtime import connect
    from labctl.backends.image import ImageBuilder

    client = connect()
    try:
        builder = ImageBuilder(client, on_event=_progress(args))
        tag, built = builder.ensure(force=args.force, keep_rootfs=args.keep_rootfs)
    finally:
        client.close()
    if args.json:
        rootfs = str(builder.cached_rootfs) if args.keep_rootfs else None
        print(json.dumps({"image": tag, "built": built, "rootfs": rootfs}, indent=2))
        return 0
    print(f"node image {tag} {'built' if built else 'is up to date'}")
    if args.keep_rootfs:
        print(f"root file system: {builder.cached_rootfs}")
    return 0


INTERACTIVE_SHELL = [
    "sh",
    "-c",
    "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh",
]


def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.cmd)
    if "--" in argv and all(a.startswith("-") for a in argv[: argv.index("--")]):
        # labctl's own options after NODE, before `--` (argparse hands them over as CMD).
        head, argv = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
        unknown = [a for a in head if a not in ("-v", "--verbose")]
        if unknown:
            raise UsageError(f"exec: unknown option {unknown[0]!r} (the command goes after --)")
        args.verbose = args.verbose or bool(head)
    engine, close = _engine(args)
    try:
        _state, topology = engine.load_state(args.lab)
        if args.node not in topology.nodes:
            raise UsageError(
                f"lab {args.lab} has no node {args.node!r} (nodes: {', '.join(topology.nodes)})"
            )
        handle = engine.node(args.lab, args.node, topology)
        tty = sys.stdin.isatty() and sys.stdout.isatty()
        return int(engine.runtime(topology).attach(handle, argv or INTERACTIVE_SHELL, tty=tty))
    finally:
        close()


def cmd_graph(args: argparse.Namespace) -> int:
    from labctl.examples import shipped
    from labctl.reports.graph import render
    from labctl.state import StateStore

    if Path(args.source).exists() or shipped(args.source):
        from labctl.api import load

        topology, _ = load(args.source)
    else:
        store = StateStore()
        state = store.load(args.source)
        if state is None:
            labs = ", ".join(store.labs()) or "none is up"
            raise UsageError(f"{args.source} is neither a file nor a lab (labs: {labs})")
        from labctl.core.model import Topology

        topology = Topology.model_validate(state.topology)
    sys.stdout.write(render(topology, args.format))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from labctl import examples

    target = Path(args.dir)
    written = examples.write(target)
    if args.json:
        print(json.dumps({"dir": str(target), "written": [str(p) for p in written]}, indent=2))
        return 0
    for path in written:
        print(f"wrote {path}")
    where = "" if target == Path(".") else f"cd {target} && "
    print(f"next: {where}labctl up topologies/seed.yaml, or labctl matrix labs/veth-checksum")
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import argcomplete

    print(argcomplete.shellcode(["labctl"], shell=args.shell))  # type: ignore[attr-defined]
    return 0


# -- completion: what argcomplete offers for the arguments that name something on this host


def _up_topology(lab: str | None) -> dict[str, Any]:
    """The topology of a lab from its state file (of the only lab when none is named)."""
    from labctl.state import StateStore

    store = StateStore()
    labs = store.labs()
    if lab is None and len(labs) == 1:
        lab = labs[0]
    state = store.load(lab) if lab else None
    return state.topology if state else {}


def _complete_labs(prefix: str, **_: Any) -> list[str]:
    from labctl.state import StateStore

    return [lab for lab in StateStore().labs() if lab.startswith(prefix)]


def _complete_nodes(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    nodes = _up_topology(getattr(parsed_args, "lab", None)).get("nodes") or {}
    return [node for node in nodes if node.startswith(prefix)]


def _complete_capture_targets(prefix: str, parsed_args: argparse.Namespace, **_: Any) -> list[str]:
    from labctl.core.model import Topology

    data = _up_topology(getattr(parsed_args, "lab", None))
    if not data:
        return []
    taps, interfaces, ports = capture_targets(Topology.model_validate(data))
    return [t for t in (*taps, *interfaces, *ports) if t.startswith(prefix)]


def _complete_labs_and_files(prefix: str, **kwargs: Any) -> list[str]:
    from argcomplete.completers import FilesCompleter

    return [*_complete_labs(prefix), *FilesCompleter()(prefix, **kwargs)]


COMPLETERS: dict[str, dict[str, Callable[..., list[str]]]] = {
    "run": {"lab": _complete_labs},
    "down": {"lab": _complete_labs},
    "status": {"lab": _complete_labs},
    "capture": {"lab": _complete_labs, "tap": _complete_capture_targets},
    "exec": {"lab": _complete_labs, "node": _complete_nodes},
    "graph": {"source": _complete_labs_and_files},
}
"""Per subcommand, argument dest -> completer; other arguments complete as files."""


def _add_completers(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, child in action.choices.items():
                for arg in child._actions:
                    completer = COMPLETERS.get(command, {}).get(arg.dest)
                    if completer is not None:
                        arg.completer = completer


def main(argv: Sequence[str] | None = None, *, warm: bool = True) -> int:
    """The CLI. argv None: run as the `labctl` program (sys.argv), which hands the command
    to the warm labctl if there is one, unless `warm` is False (labctl.warm.main has
    tried already)."""
    if argv is None and "_ARGCOMPLETE" in os.environ:
        # The shell's completion function runs labctl this way; nothing is imported otherwise.
        import argcomplete

        argcomplete.autocomplete(_parser())  # prints the candidates and exits
    if argv is None and warm:  # run as the `labctl` program, not called from Python
        from labctl import warm as warm_labctl

        if warm_labctl.enabled():
            code = warm_labctl.run(sys.argv[1:])
            if code is not None:
                return code
    args = _parser().parse_args(argv)
    interrupts.install()
    try:
        return int(args.func(args))
    except LabctlError as error:
        for line in error.lines():
            print(f"labctl: {line}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("labctl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
