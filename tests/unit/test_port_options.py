"""Switch-port options (MTU, VLANs): how the plan resolves them and what each switch
backend is asked to set. The backends themselves are tested for real in
tests/integration/test_port_options.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.backends.ovs.switch import port_settings
from labctl.core.loader import load_topology
from labctl.core.model import PortOptions
from labctl.core.plan import AttachPort, CreateSwitchLink, make_plan

pytestmark = pytest.mark.unit

TOPOLOGY = """
name: ports
nodes:
  a: {interfaces: {eth0: {ipv4: 10.0.0.1/24, mtu: 9000}}}
  b: {interfaces: {eth0: {ipv4: 10.0.0.2/24}}}
  c: {interfaces: {eth0: {ipv4: 10.0.0.3/24, mtu: 4000}}}
  d: {interfaces: {eth0: {ipv4: 10.0.0.4/24}}}
switch:
  ports:
    pa: {mtu: 1500, vlan: 10}
    pb: {mtu: 2000, trunks: [20, 30]}
    pc: {vlan: 10, trunks: [20]}
links:
  - {a: a:eth0, b: switch:pa}
  - {a: b:eth0, b: switch:pb}
  - {a: c:eth0, b: switch:pc}
  - {a: d:eth0, b: switch:pd}
"""


def steps(tmp_path: Path) -> tuple[dict[str, CreateSwitchLink], dict[str, AttachPort]]:
    file = tmp_path / "t.yaml"
    file.write_text(TOPOLOGY)
    plan = make_plan(load_topology(file)[0])
    links = {s.node: s for s in plan.steps if isinstance(s, CreateSwitchLink)}
    ports = {s.port: s for s in plan.steps if isinstance(s, AttachPort)}
    return links, ports


def test_each_end_of_a_switch_link_has_its_own_mtu_or_the_other_ends(tmp_path: Path) -> None:
    links, ports = steps(tmp_path)
    # interface 9000, port 1500: the mismatch is kept, each end its own
    assert (links["a"].settings.mtu, links["a"].host_mtu) == (9000, 1500)
    # only the port: the node end follows it
    assert (links["b"].settings.mtu, links["b"].host_mtu) == (2000, 2000)
    # only the interface: the host end (and so the port) follows it
    assert (links["c"].settings.mtu, links["c"].host_mtu) == (4000, 4000)
    assert ports["pc"].options.mtu == 4000
    # neither: the kernel's default on both ends
    assert (links["d"].settings.mtu, links["d"].host_mtu) == (None, None)
    assert ports["pd"].options == PortOptions()
    assert "mtu 1500 <-> 9000" in links["a"].description


def test_attach_port_carries_vlans_and_says_so(tmp_path: Path) -> None:
    _links, ports = steps(tmp_path)
    assert ports["pa"].options == PortOptions(mtu=1500, vlan=10)
    assert ports["pa"].description.endswith("(mtu 1500, vlan 10)")
    assert ports["pb"].description.endswith("(mtu 2000, trunks 20,30)")
    assert ports["pa"].switch.uses_vlans


def test_ports_without_options_leave_the_plan_as_before(tmp_path: Path) -> None:
    plan = make_plan(load_topology(Path("topologies/seed.yaml"))[0])
    attach = [s for s in plan.steps if isinstance(s, AttachPort)]
    assert all(s.options == PortOptions() for s in attach)
    assert not any(s.switch.uses_vlans for s in attach)
    assert [s.description for s in attach][0].endswith("as port cli")


@pytest.mark.parametrize(
    ("options", "columns"),
    [
        (PortOptions(vlan=10), {"tag": 10, "vlan_mode": "access"}),
        (PortOptions(trunks=[30, 20]), {"trunks": [20, 30], "vlan_mode": "trunk"}),
        (
            PortOptions(vlan=10, trunks=[20]),
            {"tag": 10, "trunks": [10, 20], "vlan_mode": "native-untagged"},
        ),
        (PortOptions(mtu=9000), {"mtu_request": 9000}),
        (PortOptions(), {}),
    ],
)
def test_ovs_columns_of_port_options(options: PortOptions, columns: dict[str, object]) -> None:
    assert port_settings(options) == columns
