"""Several switches in one topology: model, validation, plan, taps, matrix cells."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core import names
from labctl.core.loader import load_topology
from labctl.core.matrix import cells, load_lab
from labctl.core.model import SwitchKind, Topology
from labctl.core.plan import (
    AttachPort,
    ConnectPatch,
    CreateSwitch,
    CreateSwitchPair,
    make_plan,
)
from labctl.core.schedule import topology_vswitchd_config
from labctl.core.switch_choice import (
    SwitchCombo,
    effective_kinds,
    parse_switch_choice,
    selector_matches,
)
from labctl.core.taps import kernel_neighbours, offload_senders
from labctl.engine import _batches
from labctl.errors import ConfigError, UsageError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
TWO = ROOT / "topologies" / "two-switch.yaml"


def two(sw1: SwitchKind, sw2: SwitchKind, *, between_tap: bool = True) -> Topology:
    topology, _ = load_topology(TWO)
    topology = topology.with_switch_kinds({"sw1": sw1, "sw2": sw2})
    if between_tap:
        return topology
    return topology.model_copy(update={"taps": [t for t in topology.taps if t.name != "between"]})


def test_two_switch_topology_loads_with_its_switches() -> None:
    topology, _ = load_topology(TWO)
    assert topology.switch is None
    assert {n: s.kind for n, s in topology.all_switches().items()} == {
        "sw1": SwitchKind.LINUX_BRIDGE,
        "sw2": SwitchKind.OVS_USERSPACE,
    }
    assert topology.switch_names() == {"sw1", "sw2"}


def test_single_switch_is_the_switch_named_switch() -> None:
    topology, _ = load_topology(ROOT / "topologies" / "seed.yaml")
    assert list(topology.all_switches()) == ["switch"]
    plan = make_plan(topology)
    switch_steps = [s for s in plan.steps if isinstance(s, CreateSwitch)]
    # Unchanged names and keys for `switch:` (state files of running labs name them).
    assert [(s.key, s.bridge) for s in switch_steps] == [("switch", names.bridge_name("seed"))]
    assert plan.bridge == names.bridge_name("seed") and plan.switch_kind == "linux-bridge"


def test_veth_between_a_bridge_and_ovs() -> None:
    plan = make_plan(two(SwitchKind.LINUX_BRIDGE, SwitchKind.OVS_USERSPACE))
    lab = "two-switch"
    bridges = dict(plan.bridges)
    assert bridges == {"sw1": names.bridge_name(lab, "sw1"), "sw2": names.bridge_name(lab, "sw2")}
    assert bridges["sw1"] != names.bridge_name(lab) and all(
        len(b) <= names.IFNAMSIZ for b in bridges.values()
    )
    pair = next(s for s in plan.steps if isinstance(s, CreateSwitchPair))
    assert (pair.a_ifname, pair.b_ifname) == (
        names.host_veth_name(lab, "up"),
        names.host_veth_name(lab, "down"),
    )
    attached = {s.port: (s.bridge, s.host_ifname) for s in plan.steps if isinstance(s, AttachPort)}
    assert attached["up"] == (bridges["sw1"], pair.a_ifname)
    assert attached["down"] == (bridges["sw2"], pair.b_ifname)
    assert attached["srv"][0] == bridges["sw2"] and attached["cli"][0] == bridges["sw1"]
    assert not any(isinstance(s, ConnectPatch) for s in plan.steps)
    assert plan.switch_kind == "sw1=linux-bridge+sw2=ovs-userspace"
    between = next(t for t in plan.taps if t.name == "between")
    assert (between.namespace, between.ifname, between.node) == ("host", pair.a_ifname, "")


@pytest.mark.parametrize(
    ("sw1", "sw2", "patch"),
    [
        (SwitchKind.OVS_USERSPACE, SwitchKind.OVS_USERSPACE, True),
        (SwitchKind.OVS_USERSPACE, SwitchKind.OVS_DPDK, True),
        (SwitchKind.OVS_KERNEL, SwitchKind.OVS_KERNEL, True),
        (SwitchKind.OVS_KERNEL, SwitchKind.OVS_USERSPACE, False),
        (SwitchKind.LINUX_BRIDGE, SwitchKind.LINUX_BRIDGE, False),
        (SwitchKind.OVS_DPDK, SwitchKind.LINUX_BRIDGE, False),
    ],
)
def test_patch_ports_only_within_one_ovs_datapath_type(
    sw1: SwitchKind, sw2: SwitchKind, patch: bool
) -> None:
    topology = two(sw1, sw2)
    plan = make_plan(two(sw1, sw2, between_tap=False))
    patches = [s for s in plan.steps if isinstance(s, ConnectPatch)]
    assert bool(patches) is patch
    if patch:
        assert (patches[0].a.port, patches[0].b.port) == ("up", "down")
        assert patches[0].a.ovs_port == names.host_veth_name("two-switch", "up")
        # The plan checked by validation never taps a patch port; a cell that makes one
        # is refused before anything is created.
        with pytest.raises(UsageError, match="patch port"):
            make_plan(topology)


def test_dpdk_switch_comes_first_and_ovs_switches_one_at_a_time() -> None:
    plan = make_plan(two(SwitchKind.OVS_USERSPACE, SwitchKind.OVS_DPDK, between_tap=False))
    switches = [s for s in plan.steps if isinstance(s, CreateSwitch)]
    assert [s.name for s in switches] == ["sw2", "sw1"]
    batches = _batches(plan.steps)
    holding = [b for b in batches if any(isinstance(s, CreateSwitch) for _i, s in b)]
    assert len(holding) == 2
    # A Linux bridge still starts beside the nodes and the OVS switch.
    mixed = _batches(make_plan(two(SwitchKind.LINUX_BRIDGE, SwitchKind.OVS_DPDK)).steps)
    assert len(mixed[0]) == 4


def test_one_vswitchd_config_for_all_ovs_switches_of_a_lab() -> None:
    config = topology_vswitchd_config(two(SwitchKind.OVS_USERSPACE, SwitchKind.OVS_DPDK))
    assert config is not None and config.dpdk is not None
    assert topology_vswitchd_config(two(SwitchKind.LINUX_BRIDGE, SwitchKind.LINUX_BRIDGE)) is None


def test_kernel_reach_follows_kernel_switches_only() -> None:
    both_kernel = two(SwitchKind.LINUX_BRIDGE, SwitchKind.LINUX_BRIDGE)
    assert kernel_neighbours(both_kernel, "server") == {"client"}
    userspace = two(SwitchKind.LINUX_BRIDGE, SwitchKind.OVS_USERSPACE)
    assert kernel_neighbours(userspace, "server") == set()
    assert kernel_neighbours(userspace, "client") == set()
    plan = make_plan(userspace)
    between = next(t for t in plan.taps if t.name == "between")
    # The veth between the switches: the client's packets arrive through the Linux bridge
    # (still in the kernel); the server's come out of the userspace switch.
    assert offload_senders(userspace, between) == frozenset({"10.0.0.1"})
    swapped = two(SwitchKind.OVS_USERSPACE, SwitchKind.LINUX_BRIDGE)
    between = next(t for t in make_plan(swapped).taps if t.name == "between")
    assert offload_senders(swapped, between) == frozenset({"10.0.0.2"})


def test_switch_choices_parse_and_select() -> None:
    assert parse_switch_choice("ovs-dpdk") is SwitchKind.OVS_DPDK
    combo = parse_switch_choice("sw1=linux-bridge,sw2=ovs-dpdk")
    assert combo == SwitchCombo((("sw1", SwitchKind.LINUX_BRIDGE), ("sw2", SwitchKind.OVS_DPDK)))
    assert combo.value == "sw1=linux-bridge+sw2=ovs-dpdk"
    assert parse_switch_choice(combo.value) == combo
    for bad in ("ovs", "sw1=ovs", "=ovs-dpdk"):
        with pytest.raises(ValueError):
            parse_switch_choice(bad)
    topology, _ = load_topology(TWO)
    kinds = effective_kinds(topology, parse_switch_choice("sw2=linux-bridge"))
    assert kinds == {"sw1": SwitchKind.LINUX_BRIDGE, "sw2": SwitchKind.LINUX_BRIDGE}
    assert selector_matches("linux-bridge", kinds)
    assert selector_matches("sw2=linux-bridge", kinds)
    assert not selector_matches("sw2=ovs-dpdk", kinds)
    mixed = effective_kinds(topology, SwitchKind.OVS_DPDK)
    assert selector_matches("ovs-dpdk", mixed) and selector_matches("sw1=ovs-dpdk", mixed)
    assert not selector_matches("ovs-dpdk", effective_kinds(topology, combo_sw2_dpdk()))


def combo_sw2_dpdk() -> SwitchCombo:
    return SwitchCombo((("sw2", SwitchKind.OVS_DPDK),))


def test_two_switch_lab_cells_and_expectations() -> None:
    lab = load_lab(ROOT / "labs" / "two-switch")
    found = {c.key: c for c in cells(lab)}
    assert len(found) == 15
    cell = found["sw2=ovs-dpdk-on"]
    assert cell.lab_name(lab.name) == "two-switch-sw2od-on"
    assert cell.expectation is not None and cell.expectation.http == "fail"
    both_bridges = found["sw2=linux-bridge-on"]
    assert both_bridges.expectation is not None and both_bridges.expectation.findings == []
    swapped = found["sw1=ovs-userspace+sw2=linux-bridge-server-only"]
    assert swapped.expectation is not None and swapped.expectation.http == "fail"
    assert found["sw2=ovs-kernel-on"].expectation is None
    topology = swapped.topology(lab.topology, lab.name)
    assert effective_kinds(topology, SwitchCombo(())) == {
        "sw1": SwitchKind.OVS_USERSPACE,
        "sw2": SwitchKind.LINUX_BRIDGE,
    }
    for key in found:
        name = found[key].lab_name(lab.name)
        assert names.LAB_NAME_RE.match(name), name
    chosen = cells(lab, ["sw2=ovs-userspace"], ["off"])
    assert [c.key for c in chosen] == ["sw2=ovs-userspace-off"]
    with pytest.raises(UsageError, match="no switch sw9"):
        cells(lab, ["sw9=ovs-dpdk"])


def test_lab_matrix_names_only_switches_of_its_topology(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(
        f"name: x\ntopology: {TWO}\nmatrix:\n  switches:\n    - {{sw3: ovs-dpdk}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_lab(tmp_path)
    assert caught.value.lines() == [
        f"{tmp_path / 'lab.yaml'}:5:8: matrix.switches[0].sw3: {TWO} has no switch "
        "'sw3' (it has: sw1, sw2)"
    ]
    (tmp_path / "lab.yaml").write_text(
        f"name: x\ntopology: {TWO}\nexpectations:\n  - when: {{switch: sw2=ovs}}\n    http: pass\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_lab(tmp_path)
    assert "expectations[0].when.switch: value error, 'ovs' is not a switch kind" in str(
        caught.value
    )


def test_switch_override_names_switches(tmp_path: Path) -> None:
    from labctl.api import load

    topology, _ = load(TWO, "sw2=ovs-dpdk")
    assert topology.all_switches()["sw2"].kind is SwitchKind.OVS_DPDK
    topology, _ = load(TWO, "ovs-dpdk")
    assert {s.kind for s in topology.all_switches().values()} == {SwitchKind.OVS_DPDK}
    with pytest.raises(UsageError, match="has no switch nope"):
        load(TWO, "nope=ovs-dpdk")
    seed = ROOT / "topologies" / "seed.yaml"
    assert load(seed, "switch=ovs-dpdk")[0].switch.kind is SwitchKind.OVS_DPDK  # type: ignore[union-attr]


def test_drawing_shows_every_switch_and_the_links_between_them() -> None:
    from labctl.reports.graph import render
    from labctl.reports.html.topology import kinds_per_switch, topology_drawing

    topology, _ = load_topology(TWO)
    mermaid = render(topology, "mermaid")
    assert 's_sw1{{"sw1<br/>linux-bridge"}}' in mermaid
    assert 's_sw2{{"sw2<br/>ovs-userspace"}}' in mermaid
    assert 's_sw1 ---|"up - down"| s_sw2' in mermaid
    assert 'n_client ---|"eth0 - cli"| s_sw1' in mermaid
    assert 'tap3 -.-|"between: on switch port up"| s_sw1' in mermaid
    dot = render(topology, "dot")
    assert '"s_sw1" -- "s_sw2" [taillabel="up", headlabel="down"];' in dot
    svg, marks = topology_drawing(topology)
    assert str(svg).count('class="switch"') == 2 and ">veth<" in str(svg)
    assert all(mark.point is not None for mark in marks)
    patched = topology.with_switch_kind(SwitchKind.OVS_DPDK)
    assert ">patch<" in str(topology_drawing(patched)[0])
    listed = ["sw2=ovs-dpdk", "sw1=ovs-userspace+sw2=linux-bridge", "ovs-kernel"]
    assert kinds_per_switch(topology, listed) == {
        "sw1": ["linux-bridge", "ovs-userspace", "ovs-kernel"],
        "sw2": ["ovs-dpdk", "linux-bridge", "ovs-kernel"],
    }


def test_cli_plan_and_validate_name_every_switch() -> None:
    import json
    import subprocess
    import sys

    def labctl(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "labctl.cli", *argv], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    plan = json.loads(labctl("plan", str(TWO), "--switch", "sw2=ovs-dpdk", "--json"))
    assert plan["switch"] == "sw1=linux-bridge+sw2=ovs-dpdk" and plan["bridge"] is None
    assert plan["bridges"] == {
        "sw1": names.bridge_name("two-switch", "sw1"),
        "sw2": names.bridge_name("two-switch", "sw2"),
    }
    assert "CreateSwitchPair" in [s["action"] for s in plan["steps"]]
    checked = json.loads(labctl("validate", str(TWO), "--json"))
    assert checked["switch"] == "sw1=linux-bridge+sw2=ovs-userspace"


def test_platform_matrix_runs_plain_kinds_only() -> None:
    from labctl import platform_matrix

    lab = load_lab(ROOT / "labs" / "two-switch")
    with pytest.raises(UsageError, match=r"NAME=KIND"):
        platform_matrix.run(
            lab,
            runner=None,  # type: ignore[arg-type]
            cells_for=lambda platform: cells(lab, platform=platform),
            chosen=[],
            ovs_kernel_vm=None,
            workers=1,
            offloads=None,
            say=lambda _line: None,
        )


def test_capture_names_ports_of_every_switch() -> None:
    from labctl.cli import capture_point, capture_targets

    topology, _ = load_topology(TWO)
    _taps, _interfaces, ports = capture_targets(topology)
    assert ports == ["sw1:cli", "sw1:up", "sw2:down", "sw2:srv"]
    point = capture_point("two-switch", topology, "sw2:down")
    assert (point.namespace, point.ifname) == ("host", names.host_veth_name("two-switch", "down"))
    with pytest.raises(UsageError, match="patch port"):
        capture_point("two-switch", topology.with_switch_kind(SwitchKind.OVS_DPDK), "sw2:down")
