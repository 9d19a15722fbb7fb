"""Plan / apply / rollback / down against in-memory backends with injected failures."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.backends.base import Backends
from labctl.core.events import Event
from labctl.core.loader import load_topology
from labctl.core.model import Offload, PortOptions, RuntimeKind, SwitchKind, Topology
from labctl.engine import Engine
from labctl.errors import BackendError, PrerequisiteError, UsageError
from labctl.run import run_traffic
from labctl.state import StateStore
from tests.engine.fakes import FakeHost, FakeLinks, FakeOffload, FakeRuntime, switch_table

pytestmark = pytest.mark.engine
SEED = Path(__file__).resolve().parents[2] / "topologies" / "seed.yaml"


@pytest.fixture
def host() -> FakeHost:
    return FakeHost()


def make_engine(
    host: FakeHost,
    tmp_path: Path,
    events: list[Event] | None = None,
    unavailable: dict[SwitchKind, str] | None = None,
) -> Engine:
    sink = events.append if events is not None else (lambda e: None)
    return Engine(fake_backends(host, unavailable), StateStore(tmp_path / "state"), sink)


def fake_backends(host: FakeHost, unavailable: dict[SwitchKind, str] | None = None) -> Backends:
    switch_for, all_switches = switch_table(host, unavailable)
    return Backends(
        {RuntimeKind.DOCKER: FakeRuntime(host)},
        FakeLinks(host),
        switch_for,
        all_switches,
        offload=FakeOffload(host),
    )


def seed() -> Topology:
    topology, _ = load_topology(SEED)
    return topology


def test_up_builds_everything_and_down_removes_it(host: FakeHost, tmp_path: Path) -> None:
    events: list[Event] = []
    engine = make_engine(host, tmp_path, events)
    state = engine.up(seed(), str(SEED))
    assert state.status == "up"
    assert set(host.containers) == {"seed/client", "seed/server"}
    assert len(host.links) == 2 and len(host.bridges) == 1 and len(host.ports) == 2
    assert [e.index for e in events if e.kind == "step-done"] == list(range(1, 9))
    assert engine.store.load("seed") is not None
    engine.down("seed")
    assert host.empty()
    assert engine.store.load("seed") is None
    assert list((tmp_path / "state").iterdir()) == []  # no state, no lock file: no trace
    # Reverse order: the HTTP server's node goes last, ports before links before the bridge.
    undo = [op for op in host.log if op.startswith("remove")]
    assert undo.index("remove_port:srv") < undo.index("remove_link:lc19b25-srv")
    assert undo.index("remove_switch:lc19b25-br") < undo.index("remove_node:client")


def test_the_http_server_starts_beside_the_wiring_and_is_journalled_in_plan_order(
    host: FakeHost, tmp_path: Path
) -> None:
    engine = make_engine(host, tmp_path)
    state = engine.up(seed(), str(SEED))
    # It needs only its node: started before the last port is attached ...
    assert host.log.index("exec:server:busybox") < host.log.index("ensure_port:srv")
    # ... and recorded where the plan has it (last), after every step before it.
    from labctl.core.plan import make_plan

    plan_keys = [step.key for step in make_plan(seed()).steps]
    assert [c["key"] for c in state.completed] == plan_keys
    engine.down("seed")
    assert host.empty()


@pytest.mark.parametrize(
    "failing",
    [
        "ensure_node:server",
        "ensure_switch:lc19b25-br",
        "ensure_veth:lc19b25-srv",
        "ensure_port:srv",
        "exec:server:busybox",
    ],
)
def test_failure_at_any_step_undoes_everything_and_raises_original(
    host: FakeHost, tmp_path: Path, failing: str
) -> None:
    host.fail_on.add(failing)
    engine = make_engine(host, tmp_path)
    with pytest.raises(BackendError) as caught:
        engine.up(seed(), str(SEED))
    assert caught.value.action == failing
    assert host.empty(), host
    assert engine.store.load("seed") is None


def test_ctrl_c_during_up_rolls_back(host: FakeHost, tmp_path: Path) -> None:
    host.interrupt_on.add("ensure_port:cli")
    engine = make_engine(host, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        engine.up(seed(), str(SEED))
    assert host.empty()


def test_failed_rollback_keeps_state_for_down(host: FakeHost, tmp_path: Path) -> None:
    host.fail_on.update({"ensure_port:srv", "remove_switch:lc19b25-br"})
    engine = make_engine(host, tmp_path)
    with pytest.raises(BackendError):
        engine.up(seed(), str(SEED))
    assert host.bridges  # the rollback could not remove it
    state = engine.store.load("seed")
    assert state is not None and state.status == "failed"
    host.fail_on.clear()
    engine.down("seed")
    assert host.empty()


def test_second_up_is_refused_without_touching_the_lab(host: FakeHost, tmp_path: Path) -> None:
    engine = make_engine(host, tmp_path)
    engine.up(seed(), str(SEED))
    before = dict(host.containers)
    with pytest.raises(UsageError, match="already up"):
        engine.up(seed(), str(SEED))
    assert host.containers == before


def test_missing_prerequisite_creates_nothing(host: FakeHost, tmp_path: Path) -> None:
    engine = make_engine(
        host, tmp_path, unavailable={SwitchKind.OVS_KERNEL: "no openvswitch kernel module"}
    )
    with pytest.raises(PrerequisiteError, match="openvswitch kernel module"):
        engine.up(seed().with_switch_kind(SwitchKind.OVS_KERNEL), str(SEED))
    assert host.empty() and host.log == []
    assert engine.store.load("seed") is None


def test_down_without_state_sweeps_by_label(host: FakeHost, tmp_path: Path) -> None:
    engine = make_engine(host, tmp_path)
    engine.up(seed(), str(SEED))
    engine.store.delete("seed")  # e.g. the state file was lost in a crash
    swept = engine.down("seed")
    assert {o.kind for o in swept} == {"container", "link", "bridge"}
    assert host.empty()


def test_down_is_idempotent_and_spares_other_labs(host: FakeHost, tmp_path: Path) -> None:
    engine = make_engine(host, tmp_path)
    engine.up(seed(), str(SEED))
    engine.up(seed().with_name("other"), str(SEED))
    engine.down("seed")
    engine.down("seed")
    assert set(host.containers) == {"other/client", "other/server"}
    assert engine.known_labs() == ["other"]
    engine.down("other")
    assert host.empty()


def test_run_reports_each_request(host: FakeHost, tmp_path: Path) -> None:
    engine = make_engine(host, tmp_path)
    engine.up(seed(), str(SEED))
    summary = run_traffic(engine, "seed")
    assert summary.ok and summary.succeeded == 5
    host.curl_exit = 28
    failed = run_traffic(engine, "seed")
    assert failed.failed == 5 and failed.results[0].error == "curl exit 28: timed out"


def test_run_on_a_lab_that_is_not_up(host: FakeHost, tmp_path: Path) -> None:
    engine = make_engine(host, tmp_path)
    with pytest.raises(UsageError, match="not up"):
        run_traffic(engine, "seed")


def test_offload_is_applied_after_the_link_and_recorded(host: FakeHost, tmp_path: Path) -> None:
    topology = seed()
    nodes = {
        name: node.model_copy(update={"offload": Offload(tx=False)})
        for name, node in topology.nodes.items()
    }
    engine = make_engine(host, tmp_path)
    state = engine.up(topology.model_copy(update={"nodes": nodes}), str(SEED))
    assert host.log.index("offload:eth0") == host.log.index("ensure_veth:lc19b25-cli") + 1
    recorded = [c for c in state.completed if c["action"] == "ConfigureOffload"]
    assert [c["result"]["node"]["tx"] for c in recorded] == [False, False]


def test_offload_failure_rolls_back(host: FakeHost, tmp_path: Path) -> None:
    topology = seed()
    nodes = {
        name: node.model_copy(update={"offload": Offload(tx=False)})
        for name, node in topology.nodes.items()
    }
    host.fail_on.add("offload:eth0")
    engine = make_engine(host, tmp_path)
    with pytest.raises(BackendError):
        engine.up(topology.model_copy(update={"nodes": nodes}), str(SEED))
    assert host.empty()


def test_lock_serialises_and_survives_removal_of_the_lock_file(tmp_path: Path) -> None:
    import threading

    store = StateStore(tmp_path / "state")
    order: list[str] = []
    inside = threading.Event()

    def second() -> None:
        with store.lock("lab", wait_seconds=10):
            order.append("second")

    with store.lock("lab"):
        order.append("first")
        thread = threading.Thread(target=second)
        thread.start()
        inside.wait(0.3)
        assert order == ["first"]  # the second waits while the first holds the lock
    thread.join(10)
    assert order == ["first", "second"]
    assert not (tmp_path / "state" / "lab.lock").exists()


def test_lock_times_out_with_a_clear_message(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    with (
        store.lock("lab"),
        pytest.raises(UsageError, match="locked by another labctl"),
        store.lock("lab", wait_seconds=0.2),
    ):
        pass


def test_a_lab_block_finishes_teardown_after_a_passing_failure(
    host: FakeHost, tmp_path: Path
) -> None:
    from labctl.api import Lab

    engine = make_engine(host, tmp_path)
    topology, document = load_topology(SEED)
    lab = Lab(topology, document, backends=engine.backends, store=engine.store, host_checks=False)
    with lab:
        # As in CI: listing the lab's links after the sweep failed once (an interrupted
        # netlink dump), before down could forget the lab.
        host.fail_once.add("list_links")
    assert not host.fail_once, "the check after the sweep was not reached"
    assert host.empty()
    # The first down stopped before it forgot the lab; the block ran down again.
    assert engine.store.load(topology.name) is None


def test_up_prepares_the_node_runtime_before_creating_anything(
    host: FakeHost, tmp_path: Path
) -> None:
    from labctl.api import Lab

    lab = Lab.from_file(SEED, backends=fake_backends(host), store=StateStore(tmp_path / "state"))
    host.fail_on = {f"prepare:{lab.name}"}
    with pytest.raises(BackendError, match="injected failure"):
        lab.up()
    assert host.log == [f"prepare:{lab.name}"] and host.empty()
    host.fail_on = set()
    lab.up()
    assert host.log[1] == f"prepare:{lab.name}" and not host.empty()
    lab.down()
    assert host.empty()


def test_every_kind_of_step_has_an_apply_and_an_undo() -> None:
    from labctl.core import plan
    from labctl.engine import STEP_KINDS

    kinds = {
        cls
        for cls in vars(plan).values()
        if isinstance(cls, type) and issubclass(cls, plan.Step) and cls is not plan.Step
    }
    assert kinds and kinds == set(STEP_KINDS)


def test_port_options_and_mtus_reach_the_backends(host: FakeHost, tmp_path: Path) -> None:
    topology = load_topology(
        Path(__file__).resolve().parents[2] / "topologies" / "mtu-mismatch.yaml"
    )[0]
    vlans = (
        topology.switch.model_copy(
            update={"ports": {**topology.switch.ports, "cli": PortOptions(mtu=9000, vlan=10)}}
        )
        if topology.switch
        else None
    )
    topology = topology.model_copy(update={"switch": vlans})
    make_engine(host, tmp_path).up(topology, "mtu-mismatch.yaml")
    by_port = {name.rsplit("-", 1)[1]: options for name, options in host.port_options.items()}
    assert by_port == {"cli": PortOptions(mtu=9000, vlan=10), "srv": PortOptions(mtu=1500)}
    mtus = {name.rsplit("-", 1)[1]: mtu for name, mtu in host.mtus.items()}
    assert mtus == {"cli": (9000, 9000), "srv": (9000, 1500)}


TWO = Path(__file__).resolve().parents[2] / "topologies" / "two-switch.yaml"


def two_switches(sw1: SwitchKind, sw2: SwitchKind) -> Topology:
    topology, _ = load_topology(TWO)
    topology = topology.with_switch_kinds({"sw1": sw1, "sw2": sw2})
    # A patch port has no device to tap.
    return topology.model_copy(update={"taps": [t for t in topology.taps if t.name != "between"]})


@pytest.mark.parametrize(
    ("sw2", "failing"),
    [
        (SwitchKind.OVS_USERSPACE, None),
        (SwitchKind.OVS_USERSPACE, "ensure_switch_pair:lc5f46f-up"),
        (SwitchKind.OVS_USERSPACE, "ensure_port:down"),
        (SwitchKind.OVS_USERSPACE, "ensure_port:srv"),
        (SwitchKind.LINUX_BRIDGE, "ensure_switch:lc5f46f.sw2"),
    ],
)
def test_two_switches_joined_by_a_veth_build_and_undo(
    host: FakeHost, tmp_path: Path, sw2: SwitchKind, failing: str | None
) -> None:
    engine = make_engine(host, tmp_path)
    topology = two_switches(SwitchKind.LINUX_BRIDGE, sw2)
    if failing is not None:
        host.fail_on.add(failing)
        with pytest.raises(BackendError):
            engine.up(topology, str(TWO))
        assert host.empty(), host
        return
    engine.up(topology, str(TWO))
    assert set(host.bridges) == {"lc5f46f.sw1", "lc5f46f.sw2"}
    assert host.peers == {"lc5f46f-up": "lc5f46f-down"}
    assert host.ports["lc5f46f-up"] == "lc5f46f.sw1"
    assert host.ports["lc5f46f-down"] == "lc5f46f.sw2"
    engine.down("two-switch")
    assert host.empty(), host
    undo = [op for op in host.log if op.startswith("remove")]
    assert undo.index("remove_port:down") < undo.index("remove_link:lc5f46f-up")
    assert undo.index("remove_link:lc5f46f-up") < undo.index("remove_switch:lc5f46f.sw1")


@pytest.mark.parametrize("failing", [None, "ensure_patch:up", "ensure_port:srv"])
def test_two_ovs_switches_joined_by_patch_ports_build_and_undo(
    host: FakeHost, tmp_path: Path, failing: str | None
) -> None:
    engine = make_engine(host, tmp_path)
    topology = two_switches(SwitchKind.OVS_USERSPACE, SwitchKind.OVS_DPDK)
    if failing is not None:
        host.fail_on.add(failing)
        with pytest.raises(BackendError):
            engine.up(topology, str(TWO))
        assert host.empty(), host
        return
    engine.up(topology, str(TWO))
    assert host.patches == {"lc5f46f-up": "lc5f46f.sw1", "lc5f46f-down": "lc5f46f.sw2"}
    assert not host.peers
    # The DPDK switch first, then the other OVS switch (one ovs-vswitchd for both).
    made = [op for op in host.log if op.startswith("ensure_switch:")]
    assert made == ["ensure_switch:lc5f46f.sw2", "ensure_switch:lc5f46f.sw1"]
    engine.down("two-switch")
    assert host.empty(), host
    assert "remove_patch:up" in host.log
