from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core import names
from labctl.core.loader import load_topology, parse_yaml
from labctl.core.model import Offload, SwitchKind
from labctl.core.plan import AttachPort, CreateNode, CreateSwitch, CreateSwitchLink, make_plan
from labctl.core.schema import json_schema
from labctl.errors import ConfigError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "topologies" / "seed.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return path


def test_seed_topology_is_valid() -> None:
    topology, _ = load_topology(SEED)
    assert topology.name == "seed"
    assert set(topology.nodes) == {"client", "server"}
    assert topology.switch is not None and topology.switch.kind is SwitchKind.LINUX_BRIDGE
    assert [t.name for t in topology.taps] == ["server-eth0", "server-host", "client-port"]


def test_every_topology_in_the_repo_is_valid() -> None:
    paths = sorted((ROOT / "topologies").glob("*.yaml"))
    assert paths, f"no topologies found under {ROOT / 'topologies'}"
    for path in paths:
        load_topology(path)


def test_positions_point_at_keys_and_items(tmp_path: Path) -> None:
    doc = parse_yaml("name: x\nnodes:\n  a:\n    image: i\nlinks:\n  - a: a:eth0\n", "f.yaml")
    assert doc.position(("nodes", "a", "image")) == (4, 5)
    assert doc.position(("links", 0)) == (6, 5)
    # An unknown path falls back to its nearest known ancestor.
    assert doc.position(("links", 0, "b")) == (6, 5)


def test_yaml_on_off_are_booleans_for_offload(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: offl
nodes:
  a:
    offload: {tx: off, rx: off}
    interfaces:
      eth0: {ipv4: 10.0.0.1/24, offload: {tx: on, tso: off}}
""".replace("\n      eth0", "\n      eth0"),
    )
    with pytest.raises(ConfigError) as caught:  # eth0 is not linked
        load_topology(path)
    assert "not connected by any link" in str(caught.value)


def test_unquoted_yaml_boolean_gets_a_quoting_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_topology(write(tmp_path, "name: off\nnodes: {}\n"))
    assert caught.value.lines()[0].endswith(
        "lab.yaml:1:1: name: expected a string, got boolean false; quote it to make it a string"
    )


def test_offload_merges_interface_over_node_default() -> None:
    node_default = Offload(tx=False, rx=False, gro=True)
    own = Offload(tx=True)
    assert own.merged_over(node_default).as_dict() == {"tx": True, "rx": False, "gro": True}
    assert Offload().merged_over(None).as_dict() == {}


def test_switch_override_keeps_options(tmp_path: Path) -> None:
    topology, _ = load_topology(SEED)
    dpdk = topology.with_switch_kind(SwitchKind.OVS_DPDK)
    assert dpdk.switch is not None and dpdk.switch.kind is SwitchKind.OVS_DPDK
    assert dpdk.switch.dpdk.socket_mem == "256"
    assert topology.switch is not None and topology.switch.kind is SwitchKind.LINUX_BRIDGE


def test_model_is_immutable() -> None:
    topology, _ = load_topology(SEED)
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError
        topology.name = "other"  # type: ignore[misc]


def test_schema_forbids_unknown_keys() -> None:
    schema = json_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "nodes"}
    assert schema["$defs"]["Switch"]["properties"]["kind"]


def test_plan_for_seed_orders_nodes_switch_links_ports_server() -> None:
    topology, _ = load_topology(SEED)
    plan = make_plan(topology)
    kinds = [type(s) for s in plan.steps]
    assert kinds[:3] == [CreateNode, CreateNode, CreateSwitch]
    assert kinds[3:7] == [CreateSwitchLink, AttachPort, CreateSwitchLink, AttachPort]
    assert plan.steps[-1].key == "http:server"
    keys = [s.key for s in plan.steps]
    assert len(keys) == len(set(keys))
    lab = names.lab_id("seed")
    assert plan.bridge == f"lc{lab}-br"
    taps = {t.name: (t.namespace, t.ifname) for t in plan.taps}
    assert taps == {
        "server-eth0": ("server", "eth0"),
        "server-host": ("host", f"lc{lab}-srv"),
        "client-port": ("host", f"lc{lab}-cli"),
    }


def test_plan_node_to_node_link(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: pair
nodes:
  a: {interfaces: {eth0: {ipv4: 10.0.0.1/24}}}
  b: {interfaces: {eth0: {ipv4: 10.0.0.2/24}}}
links:
  - {a: a:eth0, b: b:eth0}
""",
    )
    topology, _ = load_topology(path)
    plan = make_plan(topology)
    link = plan.steps[-1]
    assert link.action == "CreateNodeLink"
    assert (link.a, link.b) == (("a", "eth0"), ("b", "eth0"))  # type: ignore[attr-defined]
    assert plan.bridge is None


def test_generated_names_fit_and_differ_per_lab() -> None:
    for lab in ("seed", "a" * 31, "seed-2"):
        for name in (
            names.bridge_name(lab),
            names.host_veth_name(lab, "p234567"),
            names.dpdk_port_name(lab, "p2345"),
        ):
            assert names.check_generated(name) == name
    assert names.bridge_name("seed") != names.bridge_name("seed-2")
    assert names.lab_of_alias(names.interface_alias("seed", "link a:eth0")) == "seed"
    assert names.lab_of_alias("something else") is None
    assert names.lab_of_alias(None) is None


def test_plan_configures_offload_only_where_the_topology_sets_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: offl
nodes:
  a:
    offload: {tx: off}
    interfaces: {eth0: {ipv4: 10.0.0.1/24, offload: {gro: on}, host_offload: {tx: off}}}
  b: {interfaces: {eth0: {ipv4: 10.0.0.2/24}}}
switch: {kind: ovs-userspace}
links:
  - {a: a:eth0, b: switch:pa}
  - {a: b:eth0, b: switch:pb}
""",
    )
    topology, _ = load_topology(path)
    steps = [s for s in make_plan(topology).steps if s.action == "ConfigureOffload"]
    assert len(steps) == 1
    step = steps[0]
    assert step.description == "offload a:eth0: tx off, gro on; host end tx off"
    assert step.offload.as_dict() == {"tx": False, "gro": True}  # type: ignore[attr-defined]
    assert step.host_ifname == names.host_veth_name("offl", "pa")  # type: ignore[attr-defined]
