"""What every benchmark shares: isolated labctl directories, timed backends, a lab session
that measures its phases, breakdowns of those phases, host checks, tables and JSON.

Where time goes is measured two ways, both without touching labctl's code:
- the engine's events, time-stamped on arrival (step-done carries the step's duration);
- thin proxies around the real backends that time every backend call (the engine emits
  no durations while tearing down, and none for exec or captures).
Parallel calls overlap, so a category's time is the union of its intervals, never a sum.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from labctl.api import Lab
from labctl.backends.base import Backends
from labctl.core.events import Event
from labctl.core.http import TrafficSummary
from labctl.core.loader import Document
from labctl.core.model import Topology
from labctl.core.plan import CreateNode, CreateSwitch, Step
from labctl.engine import Engine
from labctl.run import RunRecord, RunRecorder
from labctl.state import StateStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
SEED = ROOT / "topologies" / "seed.yaml"
VETH_LAB = ROOT / "labs" / "veth-checksum"

SWITCH_SHORT = {
    "linux-bridge": "lb",
    "ovs-kernel": "ok",
    "ovs-userspace": "ou",
    "ovs-dpdk": "od",
    None: "nx",
}
OVS_KINDS = ("ovs-kernel", "ovs-userspace", "ovs-dpdk")
SWITCHES_HERE = ("linux-bridge", "ovs-userspace", "ovs-dpdk")
"""Switch kinds that run on the project's machines (no openvswitch kernel module)."""

STATE_DIR_ENV = "LABCTL_STATE_DIR"
RUNS_DIR_ENV = "LABCTL_RUNS_DIR"


# ---- names, directories -----------------------------------------------------------------


def unique_name(*parts: str) -> str:
    """A lab name nobody else uses: parts plus 6 random hex digits, at most 31 characters."""
    name = "-".join([*parts, uuid.uuid4().hex[:6]])
    if len(name) > 31:
        raise ValueError(f"lab name {name!r} is longer than 31 characters")
    return name


@contextlib.contextmanager
def isolated_dirs(keep: bool = False) -> Iterator[Path]:
    """A temporary directory holding labctl's state and runs for this benchmark only.

    LABCTL_STATE_DIR / LABCTL_RUNS_DIR point into it for the duration (the matrix runner
    builds its own StateStore from the environment)."""
    tmp = Path(tempfile.mkdtemp(prefix="labctl-bench-"))
    (tmp / "state").mkdir()
    (tmp / "runs").mkdir()
    saved = {key: os.environ.get(key) for key in (STATE_DIR_ENV, RUNS_DIR_ENV)}
    os.environ[STATE_DIR_ENV] = str(tmp / "state")
    os.environ[RUNS_DIR_ENV] = str(tmp / "runs")
    try:
        yield tmp
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if keep:
            print(f"kept labctl state and runs in {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- events and backend call timings ------------------------------------------------------


class EventLog:
    """An EventSink that keeps every event with its arrival time (time.monotonic())."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[tuple[float, Event]] = []

    def __call__(self, event: Event) -> None:
        now = time.monotonic()
        with self._lock:
            self.events.append((now, event))

    def between(self, start: float, end: float) -> list[tuple[float, Event]]:
        with self._lock:
            return [(t, e) for t, e in self.events if start <= t <= end]


@dataclass(frozen=True)
class Call:
    category: str  # "runtime", "links", "switch", "capture", "offload"
    method: str
    detail: str  # for exec: the program run
    start: float
    end: float


class Timings:
    """Records every call made through the proxies that `wrap` returns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[Call] = []

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def wrap(self, target: Any, category: str) -> Any:
        return _TimedProxy(target, category, self)

    def select(
        self,
        start: float,
        end: float,
        category: str | None = None,
        methods: Iterable[str] | None = None,
        detail: str | None = None,
    ) -> list[Call]:
        wanted = set(methods) if methods is not None else None
        with self._lock:
            return [
                c
                for c in self.calls
                if c.start >= start
                and c.end <= end
                and (category is None or c.category == category)
                and (wanted is None or c.method in wanted)
                and (detail is None or c.detail == detail)
            ]


class _TimedProxy:
    """Forwards everything to `target`; public methods are timed into `timings`."""

    def __init__(self, target: Any, category: str, timings: Timings):
        self._target = target
        self._category = category
        self._timings = timings

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_") or not callable(value):
            return value
        if name == "capturing":
            return self._timed_context(value)

        def timed(*args: Any, **kwargs: Any) -> Any:
            detail = _detail(name, args)
            started = time.monotonic()
            try:
                return value(*args, **kwargs)
            finally:
                self._timings.add(Call(self._category, name, detail, started, time.monotonic()))

        return timed

    def _timed_context(self, factory: Callable[..., Any]) -> Callable[..., Any]:
        timings, category = self._timings, self._category

        @contextlib.contextmanager
        def capturing(*args: Any, **kwargs: Any) -> Iterator[Any]:
            context = factory(*args, **kwargs)
            started = time.monotonic()
            value = context.__enter__()
            timings.add(Call(category, "start", "", started, time.monotonic()))
            try:
                yield value
            except BaseException:
                stopping = time.monotonic()
                if not context.__exit__(*sys.exc_info()):
                    raise
                timings.add(Call(category, "stop", "", stopping, time.monotonic()))
            else:
                stopping = time.monotonic()
                context.__exit__(None, None, None)
                timings.add(Call(category, "stop", "", stopping, time.monotonic()))

        return capturing


def _detail(method: str, args: tuple[Any, ...]) -> str:
    if method == "exec" and len(args) > 1 and args[1]:
        return str(list(args[1])[0])
    return ""


def timed_backends(
    on_event: Callable[[Event], None],
) -> tuple[Backends, Callable[[], None], Timings]:
    """labctl's real backends, each behind a timing proxy."""
    from labctl.backends.registry import real_backends

    backends, close = real_backends(on_event)
    timings = Timings()
    switch_for = backends.switch_for
    all_switches = backends.all_switches
    wrapped = replace(
        backends,
        runtimes={name: timings.wrap(r, "runtime") for name, r in backends.runtimes.items()},
        links=timings.wrap(backends.links, "links"),
        switch_for=lambda kind: timings.wrap(switch_for(kind), "switch"),
        all_switches=lambda: [timings.wrap(s, "switch") for s in all_switches()],
        capture=timings.wrap(backends.capture, "capture") if backends.capture else None,
        offload=timings.wrap(backends.offload, "offload") if backends.offload else None,
    )
    return wrapped, close, timings


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Total time covered by possibly overlapping intervals."""
    total = 0.0
    current: tuple[float, float] | None = None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total


def call_seconds(calls: Iterable[Call]) -> float:
    return union_seconds((c.start, c.end) for c in calls)


# ---- a lab whose phases are measured ------------------------------------------------------


@dataclass
class Phase:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class LabSession:
    """One lab (up, run, down) through labctl's Python API, with its phases timed.

    Use as a context manager: the lab is always taken down and its backends closed."""

    topology: Topology
    document: Document
    state_dir: Path
    runs_root: Path
    host_checks: bool = True
    events: EventLog = field(default_factory=EventLog)
    phases: dict[str, Phase] = field(default_factory=dict)
    down_error: str | None = None

    def __post_init__(self) -> None:
        backends, self._close, self.timings = timed_backends(self.events)
        self.lab = Lab(
            self.topology,
            self.document,
            backends=backends,
            store=StateStore(self.state_dir),
            on_event=self.events,
            host_checks=self.host_checks,
        )
        self._down_done = False

    @property
    def name(self) -> str:
        return self.topology.name

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = Phase(started, time.monotonic())

    def up(self) -> None:
        with self._phase("up"):
            self.lab.up()

    def run_recorded(self) -> RunRecord:
        """`labctl run`: captures at every tap, traffic, diagnosis."""
        with self._phase("run"):
            return RunRecorder(self.lab.engine, self.runs_root).run(self.name)

    def run_traffic(self) -> TrafficSummary:
        """The lab's HTTP traffic without captures (`Lab.run`)."""
        with self._phase("run"):
            return self.lab.run()

    def down(self) -> None:
        self._down_done = True
        with self._phase("down"):
            self.lab.down()

    def runtime(self) -> Any:
        return self.lab.engine.runtime(self.topology)

    def node(self, name: str) -> Any:
        return self.lab.engine.node(self.name, name)

    def __enter__(self) -> LabSession:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if not self._down_done:
                try:
                    self.down()
                except Exception as error:  # noqa: BLE001 - reported, the caller's error wins
                    self.down_error = f"{type(error).__name__}: {error}"
        finally:
            self._close()

    # ---- where the time went --------------------------------------------------------

    def plan_steps(self) -> tuple[Step, ...]:
        return self.lab.plan().steps

    def step_intervals(self) -> list[tuple[Step, float, float]]:
        """(step, start, end) of every completed step of `up`, from the step-done events."""
        phase = self.phases.get("up")
        if phase is None:
            return []
        steps = self.plan_steps()
        found = []
        for t, event in self.events.between(phase.start, phase.end):
            if event.kind != "step-done" or event.index is None or event.seconds is None:
                continue
            if not 1 <= event.index <= len(steps):
                continue
            step = steps[event.index - 1]
            if step.description == event.message:
                found.append((step, t - event.seconds, t))
        return found

    def up_breakdown(self) -> dict[str, float]:
        """Seconds of `up`: total, preflight (host checks, before the first step), each step
        kind (union of its steps' intervals), node start and switch start."""
        phase = self.phases["up"]
        intervals = self.step_intervals()
        first_step = min((s for _step, s, _e in intervals), default=phase.end)
        building = next(
            (
                t
                for t, e in self.events.between(phase.start, phase.end)
                if e.kind == "phase" and e.message.startswith("building lab")
            ),
            first_step,
        )
        by_action: dict[str, list[tuple[float, float]]] = {}
        for step, start, end in intervals:
            by_action.setdefault(step.action, []).append((start, end))
        result = {
            "total": phase.seconds,
            "preflight": building - phase.start,
            "nodes": union_seconds(
                (s, e) for step, s, e in intervals if isinstance(step, CreateNode)
            ),
            "switch": union_seconds(
                (s, e) for step, s, e in intervals if isinstance(step, CreateSwitch)
            ),
            # Nodes and the switch start at the same time: their union, counted once.
            "start": union_seconds(
                (s, e) for step, s, e in intervals if isinstance(step, (CreateNode, CreateSwitch))
            ),
        }
        result.update({f"step:{a}": union_seconds(v) for a, v in sorted(by_action.items())})
        result["steps"] = union_seconds((s, e) for _step, s, e in intervals)
        return result

    def run_breakdown(self, summary: TrafficSummary | None) -> dict[str, float]:
        """Seconds of `run`: total, HTTP (curl's own time_total, summed), the exec calls that
        ran curl, capture start and stop."""
        phase = self.phases["run"]
        calls = self.timings
        http = 0.0
        if summary is not None:
            http = sum(r.total_seconds or 0.0 for r in summary.results)
        return {
            "total": phase.seconds,
            "http": http,
            "curl_exec": call_seconds(
                calls.select(phase.start, phase.end, "runtime", ["exec"], "curl")
            ),
            "capture_start": call_seconds(
                calls.select(phase.start, phase.end, "capture", ["start"])
            ),
            "capture_stop": call_seconds(calls.select(phase.start, phase.end, "capture", ["stop"])),
        }

    def call_stats(self) -> dict[str, dict[str, float]]:
        """Per backend method (exec: per program): calls, summed and wall seconds, mean ms."""
        groups: dict[str, list[Call]] = {}
        for call in self.timings.select(float("-inf"), float("inf")):
            key = f"{call.category}.{call.method}" + (f"[{call.detail}]" if call.detail else "")
            groups.setdefault(key, []).append(call)
        stats = {}
        for key, calls in sorted(groups.items()):
            total = sum(c.end - c.start for c in calls)
            stats[key] = {
                "calls": len(calls),
                "seconds": round(total, 4),
                "wall": round(call_seconds(calls), 4),
                "mean_ms": round(1000 * total / len(calls), 2),
            }
        return stats

    def down_breakdown(self) -> dict[str, float]:
        """Seconds of `down`: total, node removal, switch removal (OVS: bridge and, when no
        other lab uses them, the daemons), the sweep and the final ownership check."""
        phase = self.phases["down"]
        calls = self.timings
        return {
            "total": phase.seconds,
            "nodes": call_seconds(calls.select(phase.start, phase.end, "runtime", ["remove_node"])),
            "switch": call_seconds(
                calls.select(phase.start, phase.end, "switch", ["remove_switch"])
            ),
            "links_ports": call_seconds(
                calls.select(phase.start, phase.end, None, ["remove_link", "remove_port"])
            ),
            "sweep_verify": call_seconds(
                calls.select(phase.start, phase.end, None, ["sweep", "list_owned"])
            ),
            # Nodes and the switch are removed at the same time: their union, counted once.
            "nodes_switch": call_seconds(
                calls.select(phase.start, phase.end, "runtime", ["remove_node"])
                + calls.select(phase.start, phase.end, "switch", ["remove_switch"])
            ),
            "all": call_seconds(
                calls.select(
                    phase.start,
                    phase.end,
                    None,
                    ["remove_node", "remove_switch", "remove_link", "remove_port", "sweep"]
                    + ["list_owned"],
                )
            ),
        }


# ---- host state ---------------------------------------------------------------------------


def labctl_engine(state_dir: Path) -> tuple[Engine, Callable[[], None]]:
    from labctl.backends.registry import real_backends

    backends, close = real_backends()
    return Engine(backends, StateStore(state_dir)), close


def owned_labs(state_dir: Path) -> dict[str, list[str]]:
    """Every lab labctl finds on this host (containers, links, OVS rows, netns, daemons)."""
    engine, close = labctl_engine(state_dir)
    try:
        found: dict[str, list[str]] = {}
        for item in engine.owned(None):
            found.setdefault(item.lab, []).append(str(item))
        return found
    finally:
        close()


def processes_named(*names: str) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if comm in names and state not in ("Z", "X"):
            found.append((int(entry.name), comm))
    return sorted(found)


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (e.g. a tcpdump writing into our temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def ovs_daemon_users() -> list[str]:
    """Labs that use labctl's own OVS daemons now (their daemons.json)."""
    from labctl.backends.ovs import OvsPaths

    try:
        data = json.loads(OvsPaths().state_file.read_text())
    except (OSError, ValueError):
        return []
    return [str(lab) for lab in data.get("labs", [])]


def wait_for_ovs_idle(timeout: float, mine: Sequence[str] = ()) -> float:
    """Wait (bounded) until no other lab uses labctl's OVS daemons, so that an OVS row
    measures the daemons' start and stop, not someone else's daemons. Returns the wait."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not [lab for lab in ovs_daemon_users() if lab not in mine]:
            break
        time.sleep(1)
    return time.monotonic() - started


def host_activity(state_dir: Path, mine: Sequence[str] = ()) -> dict[str, Any]:
    """What else runs here: other labs, OVS daemons, load. Benchmarks share the 2 CPUs."""
    try:
        others = sorted(lab for lab in owned_labs(state_dir) if lab not in mine)
    except Exception as error:  # noqa: BLE001 - informational only
        others = [f"(could not list: {error})"]
    return {
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "other_labs": others,
        "ovs_daemons": [name for _pid, name in processes_named("ovs-vswitchd", "ovsdb-server")],
        "ovs_daemon_users": ovs_daemon_users(),
    }


def leftovers(state_dir: Path, labs: Sequence[str], tmp: Path) -> dict[str, Any]:
    """Anything of our labs still on the host, and captures still writing into `tmp`."""
    found = owned_labs(state_dir)
    return {
        "resources": {lab: found[lab] for lab in labs if lab in found},
        "processes": processes_mentioning(str(tmp)),
        "ovs_daemons": [name for _pid, name in processes_named("ovs-vswitchd", "ovsdb-server")],
        "ovs_daemon_users": ovs_daemon_users(),
    }


def clean(report: dict[str, Any]) -> bool:
    return not report["resources"] and not report["processes"]


def environment() -> dict[str, Any]:
    def run(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "labctl_commit": run(["git", "rev-parse", "--short", "HEAD"]),
        "labctl_dirty": bool(run(["git", "status", "--porcelain", "--", "src"])),
        "docker": run(["docker", "version", "--format", "{{.Server.Version}}"]),
        "ovs": (run(["ovs-vswitchd", "--version"]).splitlines() or [""])[0],
    }


def require_root() -> None:
    if os.geteuid() != 0:
        sys.exit("benchmarks build real labs: run them as root")


# ---- numbers ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float] | None:
    """Least-squares y = slope * x + intercept, and R^2."""
    if len(xs) < 2 or len(set(xs)) < 2:
        return None
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    sxy = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    intercept = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for y in ys)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in zip(xs, ys, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"slope": slope, "intercept": intercept, "r2": r2}


def verdict(value: float | None, limit: float, below: bool = True) -> str:
    if value is None:
        return "-"
    return "PASS" if (value < limit if below else value > limit) else "MISS"


def fmt(value: float | None, digits: int = 2, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}"


# ---- output -------------------------------------------------------------------------------


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], markdown: bool = False
) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells[1:]
    ]
    return "\n".join(lines)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def parser(name: str, description: str, repeat: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{name}", description=description)
    p.add_argument(
        "--json",
        type=Path,
        default=RESULTS_DIR / f"{name}.json",
        help=f"where to write the results (default: benchmarks/results/{name}.json)",
    )
    p.add_argument("--repeat", type=int, default=repeat, help=f"repetitions (default {repeat})")
    p.add_argument(
        "--keep-runs", action="store_true", help="keep labctl's state and run dirs (pcaps)"
    )
    p.add_argument(
        "--ovs-wait",
        type=float,
        default=120.0,
        help="seconds to wait for other labs to release labctl's OVS daemons (default 120)",
    )
    return p


def say(message: str) -> None:
    """Progress on stderr, so that stdout is the table."""
    print(message, file=sys.stderr, flush=True)


def missed(rows: Sequence[Sequence[str]]) -> list[str]:
    """The targets among (target, limit, measured, verdict) rows whose verdict is MISS."""
    return [str(row[0]) for row in rows if row[-1] == "MISS"]


def benchmark_main(
    build_parser: Callable[[], argparse.ArgumentParser],
    run: Callable[[argparse.Namespace], dict[str, Any]],
    render: Callable[[dict[str, Any]], str],
    argv: list[str] | None = None,
    ok: Callable[[dict[str, Any]], bool] = lambda result: True,
    targets: Callable[[dict[str, Any]], list[list[str]]] | None = None,
) -> int:
    """The `main` of every benchmark: run, write JSON, print the table; exit 1 if the host
    was not left clean, `ok` says the result is not valid, or a target is missed."""
    args = build_parser().parse_args(argv)
    result = run(args)
    write_json(args.json, result)
    print(render(result))
    print(f"\nclean after: {result['clean']}; results in {args.json}")
    misses = missed(targets(result)) if targets is not None else []
    for target in misses:
        print(f"MISSED: {target}")
    return 0 if result["clean"] and ok(result) and not misses else 1
