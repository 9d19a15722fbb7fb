"""Applies plans through the backends, as a journal that can be undone.

`up` applies the steps in order and records each completed step in the state
file; if a step fails (or the user presses Ctrl-C) the completed steps are
undone in reverse order and the original error is raised. `down` replays the
state in reverse, then sweeps whatever still carries the lab's identity in
every backend, so it also works after a crash or with the state file gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from labctl import interrupts
from labctl.backends.base import (
    AddressSpec,
    Backends,
    NodeHandle,
    NodeRuntime,
    Owned,
)
from labctl.core import http
from labctl.core.events import Event, EventSink, discard
from labctl.core.model import Topology
from labctl.core.plan import (
    AttachPort,
    ConfigureOffload,
    ConnectPatch,
    CreateNode,
    CreateNodeLink,
    CreateSwitch,
    CreateSwitchLink,
    CreateSwitchPair,
    InterfaceSettings,
    Plan,
    StartHttpServer,
    Step,
    make_plan,
)
from labctl.errors import (
    BackendError,
    LabctlError,
    PrerequisiteError,
    TeardownError,
    UsageError,
)
from labctl.state import LabState, StateStore


def _address_spec(settings: InterfaceSettings) -> AddressSpec:
    return AddressSpec(addresses=settings.addresses, mac=settings.mac, mtu=settings.mtu)


class Engine:
    def __init__(self, backends: Backends, store: StateStore, on_event: EventSink = discard):
        self.backends = backends
        self.store = store
        self.emit = on_event
        # Node handles kept for the duration of `same_nodes()` (None: look up every time).
        self._node_handles: dict[tuple[str, str], NodeHandle] | None = None

    @contextmanager
    def same_nodes(self) -> Iterator[None]:
        """Within the block each node is looked up once: one command (a run: captures,
        offload readback, traffic) asks the runtime once per node, not once per use."""
        outer = self._node_handles
        if outer is None:
            self._node_handles = {}
        try:
            yield
        finally:
            self._node_handles = outer

    # ---- up ---------------------------------------------------------------------------

    def up(self, topology: Topology, topology_file: str) -> LabState:
        plan = make_plan(topology)
        lab = topology.name
        with self.store.lock(lab):
            existing = self.store.load(lab)
            if existing is not None:
                raise UsageError(
                    f"lab {lab!r} is already {existing.status} (since "
                    f"{time.strftime('%H:%M:%S', time.localtime(existing.created_at))}); "
                    f"run `labctl down {lab}` first"
                )
            for switch in topology.all_switches().values():
                self.backends.switch_for(switch.kind).check(switch)
            state = LabState(
                lab=lab,
                topology_file=topology_file,
                topology=topology.model_dump(mode="json"),
                switch_kind=plan.switch_kind,
            )
            self.store.save(state)
            self._apply(plan, topology, state)
            state.status = "up"
            self.store.save(state)
            return state

    def _apply(self, plan: Plan, topology: Topology, state: LabState) -> None:
        total = len(plan.steps)
        handles: dict[str, NodeHandle] = {}
        done: list[tuple[Step, dict[str, Any]]] = []
        self.emit(Event("phase", f"building lab {plan.lab}: {total} steps"))

        def record(index: int, step: Step, result: dict[str, Any], started: float) -> None:
            # Idempotent: after a Ctrl-C the parallel path records what finished, once.
            if any(other.key == step.key for other, _result in done):
                return
            done.append((step, result))
            state.completed.append({"key": step.key, "action": step.action, "result": result})
            self.store.save(state)
            self.emit(
                Event("step-done", step.description, index, total, time.monotonic() - started)
            )

        # An HTTP server needs only its node: it starts as soon as the node runs, beside the
        # wiring (busybox httpd listens on the wildcard address), and is journalled at its
        # place in the plan, after the steps before it.
        early_steps = [s for s in plan.steps if isinstance(s, StartHttpServer)]
        early: dict[str, tuple[Future[dict[str, Any]], float]] = {}
        early_pool = ThreadPoolExecutor(max_workers=len(early_steps)) if early_steps else None

        def start_early() -> None:
            for step in early_steps:
                if early_pool and step.key not in early and step.node in handles:
                    future = early_pool.submit(self._do, step, topology, handles, state)
                    early[step.key] = (future, time.monotonic())

        try:
            for batch in _batches(plan.steps):
                interrupts.raise_if_received()
                start_early()
                if len(batch) == 1:
                    index, step = batch[0]
                    started = time.monotonic()
                    self.emit(Event("step-start", step.description, index, total))
                    if step.key in early:
                        future, started = early[step.key]
                        result = future.result()
                    else:
                        result = self._do(step, topology, handles, state)
                    record(index, step, result, started)
                else:
                    self._apply_parallel(batch, topology, handles, state, record)
            interrupts.raise_if_received()
        except BaseException as error:  # also Ctrl-C: nothing half-built may remain
            # A server still starting finishes first: the rollback removes its node.
            wait([future for future, _started in early.values()])
            self.emit(Event("step-failed", f"{_one_line(error)}; undoing {len(done)} steps"))
            leftovers = self._undo(topology, done)
            if not leftovers:
                self.store.delete(plan.lab)
            else:
                state.status = "failed"
                self.store.save(state)
                self.emit(Event("warning", "rollback left: " + "; ".join(leftovers)))
            raise
        finally:
            if early_pool is not None:
                early_pool.shutdown(wait=True)

    def _apply_parallel(
        self,
        batch: list[tuple[int, Step]],
        topology: Topology,
        handles: dict[str, NodeHandle],
        state: LabState,
        record: Callable[[int, Step, dict[str, Any], float], None],
    ) -> None:
        """Independent steps (nodes, the switch) side by side; each is journalled when it is
        done, also those that finish after another one failed, so rollback sees them all."""
        started = time.monotonic()
        pool = ThreadPoolExecutor(max_workers=min(PARALLEL_WORKERS, len(batch)))
        futures = [
            (index, step, pool.submit(self._do, step, topology, handles, state))
            for index, step in batch
        ]
        try:
            for index, step, future in futures:
                record(index, step, future.result(), started)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            for index, step, future in futures:
                if future.done() and not future.cancelled() and future.exception() is None:
                    record(index, step, future.result(), started)
            raise
        finally:
            pool.shutdown(wait=True)

    def _do(
        self, step: Step, topology: Topology, handles: dict[str, NodeHandle], state: LabState
    ) -> dict[str, Any]:
        return step_kind(step).apply(self, step, _Building(topology, handles, state))

    # ---- undo / down ------------------------------------------------------------------

    def _undo(self, topology: Topology, done: list[tuple[Step, dict[str, Any]]]) -> list[str]:
        leftovers: list[str] = []
        steps = [step for step, _result in reversed(done)]
        for batch in _batches(steps):
            with ThreadPoolExecutor(max_workers=min(PARALLEL_WORKERS, len(batch))) as pool:
                for _index, step in batch:
                    self.emit(Event("undo", f"undo: {step.description}"))
                outcomes = list(pool.map(lambda item: self._try_undo(topology, item[1]), batch))
            leftovers.extend(o for o in outcomes if o)
        return leftovers

    def _try_undo(self, topology: Topology, step: Step) -> str | None:
        try:
            self._undo_step(topology, step)
        except LabctlError as error:
            return f"{step.description}: {error}"
        return None

    def _undo_step(self, topology: Topology, step: Step) -> None:
        undo = step_kind(step).undo
        if not isinstance(undo, NothingToUndo):
            undo(self, step, topology)

    def down(self, lab: str) -> list[Owned]:
        """Remove everything of `lab`. Returns what the sweep found beyond the state file."""
        with self.store.lock(lab):
            state = self.store.load(lab)
            leftovers: list[str] = []
            if state is not None:
                self.emit(Event("phase", f"tearing down lab {lab}: {len(state.completed)} steps"))
                topology = Topology.model_validate(state.topology)
                plan = make_plan(topology)
                by_key = {s.key: s for s in plan.steps}
                done = [
                    (by_key[c["key"]], c["result"]) for c in state.completed if c["key"] in by_key
                ]
                leftovers = self._undo(topology, done)
            else:
                self.emit(Event("phase", f"no state for lab {lab}; sweeping by labels"))
            swept = self._sweep(lab)
            remaining = self.owned(lab)
            if remaining:
                raise TeardownError([str(o) for o in remaining] + leftovers)
            self.store.delete(lab)
            return swept

    def _sweep(self, lab: str) -> list[Owned]:
        # Nodes first: removing a container destroys its namespace and its veth ends.
        b = self.backends
        swept: list[Owned] = []
        runtimes = list(b.runtimes.values())
        for sweeper in (
            *[r.sweep for r in runtimes],
            b.links.sweep,
            *[s.sweep for s in b.all_switches()],
        ):
            try:
                found = sweeper(lab)
            except LabctlError as error:
                self.emit(Event("warning", f"sweep: {error}"))
                continue
            for item in found:
                self.emit(Event("info", f"swept leftover {item}"))
            swept.extend(found)
        return swept

    def owned(self, lab: str | None = None) -> list[Owned]:
        b = self.backends
        found: list[Owned] = []
        for lister in (
            *[r.list_owned for r in b.runtimes.values()],
            b.links.list_owned,
            *[s.list_owned for s in b.all_switches()],
        ):
            try:
                found.extend(lister(lab))
            except PrerequisiteError:
                continue  # e.g. no Docker on a host that runs netns labs only
        return found

    def runtime(self, topology: Topology) -> NodeRuntime:
        try:
            return self.backends.runtimes[topology.runtime]
        except KeyError:
            raise UsageError(f"no node runtime {topology.runtime!r} in this labctl") from None

    def known_labs(self) -> list[str]:
        labs = set(self.store.labs())
        labs.update(o.lab for o in self.owned(None))
        return sorted(labs)

    # ---- run --------------------------------------------------------------------------

    def load_state(self, lab: str) -> tuple[LabState, Topology]:
        state = self.store.load(lab)
        if state is None or state.status != "up":
            raise UsageError(f"lab {lab!r} is not up; start it with `labctl up <topology>`")
        return state, Topology.model_validate(state.topology)

    def node(self, lab: str, name: str, topology: Topology | None = None) -> NodeHandle:
        """A running node of a lab that is up (its topology read from the state if not given)."""
        known = self._node_handles
        if known is not None and (lab, name) in known:
            return known[(lab, name)]
        if topology is None:
            _state, topology = self.load_state(lab)
        handle = self.runtime(topology).get_node(lab, name)
        if handle is None:
            raise UsageError(
                f"node {name!r} of lab {lab!r} is not running; `labctl down {lab}` and up again"
            )
        if known is not None:
            known[(lab, name)] = handle
        return handle


def _socket_tables(runtime: NodeRuntime, handle: NodeHandle) -> str:
    """/proc/net/tcp{,6} of the node's namespace; read from the host when a process of the
    node is known (fast), else through the runtime."""
    if handle.pid > 0:
        try:
            return "".join(
                Path(f"/proc/{handle.pid}/net/{name}").read_text() for name in ("tcp", "tcp6")
            )
        except OSError:
            pass
    return runtime.exec(handle, ["cat", "/proc/net/tcp", "/proc/net/tcp6"]).stdout


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text


PARALLEL_WORKERS = 8
"""Containers start (and are removed) this many at a time: dockerd works in parallel."""

PARALLEL_STEPS = (CreateNode, CreateSwitch)
"""Steps that depend on nothing before them: the nodes, and the switch (with its OVS
daemons), start at the same time; links and ports come after both."""


def _is_ovs_switch(step: Step) -> bool:
    return isinstance(step, CreateSwitch) and step.switch.kind.is_ovs


def _batches(steps: Sequence[Step]) -> list[list[tuple[int, Step]]]:
    """Runs of consecutive independent steps, numbered from 1; everything else alone. The
    OVS switches of a lab come one after another: the first starts the lab's ovs-vswitchd
    (the plan puts a DPDK switch first, whose daemon serves the other kinds too)."""
    batches: list[list[tuple[int, Step]]] = []
    for index, step in enumerate(steps, start=1):
        previous = batches[-1] if batches else None
        if (
            previous
            and isinstance(step, PARALLEL_STEPS)
            and isinstance(previous[-1][1], PARALLEL_STEPS)
            and not (_is_ovs_switch(step) and any(_is_ovs_switch(s) for _i, s in previous))
        ):
            previous.append((index, step))
        else:
            batches.append([(index, step)])
    return batches


# ---- what each kind of step does, and how it is undone ---------------------------------


@dataclass(frozen=True)
class _Building:
    """What the steps of one `up` share: the topology, the nodes started so far (later steps
    reach into their namespaces) and the state the node records go to."""

    topology: Topology
    handles: dict[str, NodeHandle]
    state: LabState


@dataclass(frozen=True)
class NothingToUndo:
    """A step whose effect goes away with another step's undo; `why` says which."""

    why: str


S = TypeVar("S", bound=Step)


@dataclass(frozen=True)
class StepKind(Generic[S]):
    apply: Callable[[Engine, S, _Building], dict[str, Any]]
    undo: Callable[[Engine, S, Topology], None] | NothingToUndo


def _create_node(engine: Engine, step: CreateNode, building: _Building) -> dict[str, Any]:
    topology = building.topology
    handle = engine.runtime(topology).ensure_node(
        topology.name, step.node, topology.nodes[step.node]
    )
    building.handles[step.node] = handle
    building.state.nodes[step.node] = {"container_id": handle.container_id, "pid": handle.pid}
    return {"container_id": handle.container_id, "pid": handle.pid}


def _remove_node(engine: Engine, step: CreateNode, topology: Topology) -> None:
    engine.runtime(topology).remove_node(topology.name, step.node)


def _create_switch(engine: Engine, step: CreateSwitch, building: _Building) -> dict[str, Any]:
    switch = engine.backends.switch_for(step.switch.kind)
    return switch.ensure_switch(building.topology.name, step.bridge, step.switch)


def _remove_switch(engine: Engine, step: CreateSwitch, topology: Topology) -> None:
    engine.backends.switch_for(step.switch.kind).remove_switch(topology.name, step.bridge)


def _create_switch_link(
    engine: Engine, step: CreateSwitchLink, building: _Building
) -> dict[str, Any]:
    return engine.backends.links.ensure_veth_to_node(
        building.topology.name,
        step.host_ifname,
        building.handles[step.node],
        step.ifname,
        _address_spec(step.settings),
        role=f"link {step.node}:{step.ifname}",
        host_mtu=step.host_mtu,
    )


def _remove_switch_link(engine: Engine, step: CreateSwitchLink, topology: Topology) -> None:
    engine.backends.links.remove_link(topology.name, step.host_ifname)


def _attach_port(engine: Engine, step: AttachPort, building: _Building) -> dict[str, Any]:
    switch = engine.backends.switch_for(step.switch.kind)
    return switch.ensure_port(
        building.topology.name, step.bridge, step.port, step.host_ifname, step.switch, step.options
    )


def _detach_port(engine: Engine, step: AttachPort, topology: Topology) -> None:
    engine.backends.switch_for(step.switch.kind).remove_port(
        topology.name, step.bridge, step.port, step.host_ifname
    )


def _create_switch_pair(
    engine: Engine, step: CreateSwitchPair, building: _Building
) -> dict[str, Any]:
    # Born in a node of the lab and moved out labelled, as a node's veth is: see links.py.
    via = building.handles[next(iter(building.topology.nodes))]
    return engine.backends.links.ensure_veth_between_switches(
        building.topology.name,
        (step.a_ifname, step.a_mtu),
        (step.b_ifname, step.b_mtu),
        via,
        role=f"link {step.a_ifname}-{step.b_ifname}",
    )


def _remove_switch_pair(engine: Engine, step: CreateSwitchPair, topology: Topology) -> None:
    engine.backends.links.remove_link(topology.name, step.a_ifname)


def _connect_patch(engine: Engine, step: ConnectPatch, building: _Building) -> dict[str, Any]:
    switch = engine.backends.switch_for(step.a.switch.kind)
    return switch.ensure_patch(building.topology.name, step.a, step.b)


def _disconnect_patch(engine: Engine, step: ConnectPatch, topology: Topology) -> None:
    engine.backends.switch_for(step.a.switch.kind).remove_patch(topology.name, step.a, step.b)


def _create_node_link(engine: Engine, step: CreateNodeLink, building: _Building) -> dict[str, Any]:
    handles = building.handles
    return engine.backends.links.ensure_veth_between_nodes(
        building.topology.name,
        (handles[step.a[0]], step.a[1], _address_spec(step.a_settings)),
        (handles[step.b[0]], step.b[1], _address_spec(step.b_settings)),
        role=f"link {step.a[0]}:{step.a[1]}-{step.b[0]}:{step.b[1]}",
    )


def _configure_offload(
    engine: Engine, step: ConfigureOffload, building: _Building
) -> dict[str, Any]:
    control = engine.backends.offload
    if control is None:
        raise BackendError(step.description, "this labctl has no offload backend")
    handle = building.handles[step.node]
    result = {"node": control.apply(handle.netns_path, step.ifname, step.offload)}
    if step.host_ifname and step.host_offload is not None:
        result["host"] = control.apply(None, step.host_ifname, step.host_offload)
    return result


def _start_http_server(
    engine: Engine, step: StartHttpServer, building: _Building
) -> dict[str, Any]:
    runtime = engine.runtime(building.topology)
    handle = building.handles[step.node]
    runtime.exec(handle, http.server_argv(step.port), detach=True)
    # Bounded wait until the server listens, so `run` does not race its start.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if http.listening(_socket_tables(runtime, handle), step.port):
            return {"port": step.port}
        time.sleep(0.02)
    raise BackendError(
        f"starting the HTTP server on {step.node}:{step.port}",
        "it is not listening after 10 s",
        "the node image needs busybox (httpd); set traffic.start_server: "
        "false if the image serves by itself",
    )


STEP_KINDS: Mapping[type[Step], StepKind[Any]] = {
    CreateNode: StepKind(_create_node, _remove_node),
    CreateSwitch: StepKind(_create_switch, _remove_switch),
    CreateSwitchLink: StepKind(_create_switch_link, _remove_switch_link),
    AttachPort: StepKind(_attach_port, _detach_port),
    CreateSwitchPair: StepKind(_create_switch_pair, _remove_switch_pair),
    ConnectPatch: StepKind(_connect_patch, _disconnect_patch),
    CreateNodeLink: StepKind(
        _create_node_link,
        NothingToUndo("the pair exists only inside its two nodes and goes with them"),
    ),
    ConfigureOffload: StepKind(
        _configure_offload,
        NothingToUndo("the settings belong to the interfaces, which go with their link"),
    ),
    StartHttpServer: StepKind(
        _start_http_server,
        NothingToUndo("the server is a process of its node and ends when the node is removed"),
    ),
}
"""Every kind of plan step: how the engine applies it and how it undoes it."""


def step_kind(step: Step) -> StepKind[Any]:
    try:
        return STEP_KINDS[type(step)]
    except KeyError:
        raise AssertionError(f"no entry in STEP_KINDS for {step.action}") from None
