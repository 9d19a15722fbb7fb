"""Taps off the path in a topology: where probes' traffic starts and ends, when the topology
proves that the traffic can never reach a tap, what a run tells the analysis, and how a
lab's expectations judge what reached such a tap."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labctl.core.loader import load_topology
from labctl.core.matrix import Expectation, Observation, compare
from labctl.core.model import Topology
from labctl.core.plan import make_plan
from labctl.core.taps import isolation
from labctl.reports import graph
from labctl.run import diagnose_run_dir

from .analysis.scenarios import http_exchange, write_scenario

pytestmark = pytest.mark.unit

TOPOLOGIES = Path(__file__).resolve().parents[2] / "topologies"


def topology(ports: dict[str, Any], taps: list[dict[str, Any]], **extra: Any) -> Topology:
    """client, server and other on one switch, each on its own port (cli, srv, oth)."""
    return Topology.model_validate(
        {
            "name": "op",
            "nodes": {
                "client": {"interfaces": {"eth0": {"ipv4": "10.0.0.1/24"}}},
                "server": {"interfaces": {"eth0": {"ipv4": "10.0.0.2/24"}}},
                "other": {"interfaces": {"eth0": {"ipv4": "10.0.0.3/24"}}},
            },
            "switch": {"kind": "ovs-userspace", "ports": ports},
            "links": [
                {"a": "client:eth0", "b": "switch:cli"},
                {"a": "server:eth0", "b": "switch:srv"},
                {"a": "other:eth0", "b": "switch:oth"},
            ],
            "taps": [{"name": "client-port", "switch_port": "cli"}, *taps],
            "traffic": {"client": "client", "server": "server"},
            **extra,
        }
    )


OTHER_PORT = {"name": "other-port", "switch_port": "oth", "off_path": True}
VLANS = {"cli": {"vlan": 10}, "srv": {"vlan": 10}, "oth": {"vlan": 20}}
ISOLATED = "port oth carries VLAN 20 only; the traffic under test runs on VLAN 10"


def test_traffic_ends_are_the_interfaces_a_probe_uses() -> None:
    topo = Topology.model_validate(
        {
            "name": "op",
            "nodes": {
                "client": {
                    "interfaces": {
                        "mgmt": {"ipv4": "192.168.9.1/24"},
                        "eth0": {"ipv4": "10.0.0.1/24", "ipv6": "fd00::1/64"},
                    }
                },
                "server": {
                    "interfaces": {
                        "eth0": {"ipv4": "10.0.0.2/24"},
                        "eth1": {"ipv6": "fd00::2/64"},
                    }
                },
            },
            "links": [{"a": "client:eth0", "b": "server:eth0"}],
            "probes": [
                {"kind": "icmp", "client": "client", "server": "server", "family": "ipv6"},
                {"kind": "http", "name": "web", "client": "client", "server": "server"},
                {"kind": "command", "node": "client", "argv": ["true"]},
                {"kind": "tcp", "client": "nobody", "server": "server"},
            ],
        }
    )
    assert topo.traffic_ends() == {
        ("server", "eth1"): "icmp",
        ("client", "eth0"): "icmp",
        ("server", "eth0"): "web",
    }


def test_a_port_of_another_vlan_is_isolated() -> None:
    assert isolation(topology(VLANS, [OTHER_PORT]), "other-port") == ISOLATED
    # The same port tapped at the node, or at the host end of its veth.
    for where in ({"node": "other:eth0"}, {"host": "other:eth0"}):
        tap = {"name": "other", "off_path": True, **where}
        assert isolation(topology(VLANS, [tap]), "other") == ISOLATED


@pytest.mark.parametrize(
    ("ports", "why"),
    [
        ({**VLANS, "oth": {"vlan": 10}}, "the traffic's VLAN: flooding reaches it"),
        ({**VLANS, "oth": {"vlan": 20, "trunks": [10]}}, "carries VLAN 10 tagged"),
        ({**VLANS, "oth": {}}, "no VLAN on the tap's port"),
        ({"cli": {"vlan": 10}, "oth": {"vlan": 20}}, "the server's port has no VLAN"),
    ],
)
def test_a_branch_is_not_isolated(ports: dict[str, Any], why: str) -> None:
    assert isolation(topology(ports, [OTHER_PORT]), "other-port") == "", why


def test_a_tap_on_the_path_is_never_isolated() -> None:
    topo = topology(VLANS, [{**OTHER_PORT, "off_path": False}])
    assert isolation(topo, "other-port") == ""


def test_isolation_holds_across_switches_and_trunks() -> None:
    """VLAN ids are not rewritten between switches: a VLAN 20 port of the second switch
    never carries the VLAN 10 traffic, trunk or not."""
    topo = Topology.model_validate(
        {
            "name": "op",
            "nodes": {
                "client": {"interfaces": {"eth0": {"ipv4": "10.0.0.1/24"}}},
                "server": {"interfaces": {"eth0": {"ipv4": "10.0.0.2/24"}}},
                "other": {"interfaces": {"eth0": {"ipv4": "10.0.0.3/24"}}},
            },
            "switches": {
                "sw1": {
                    "kind": "linux-bridge",
                    "ports": {"cli": {"vlan": 10}, "up": {"trunks": [10, 20]}},
                },
                "sw2": {
                    "kind": "ovs-userspace",
                    "ports": {
                        "down": {"trunks": [10, 20]},
                        "srv": {"vlan": 10},
                        "oth": {"vlan": 20},
                    },
                },
            },
            "links": [
                {"a": "client:eth0", "b": "sw1:cli"},
                {"a": "sw1:up", "b": "sw2:down"},
                {"a": "server:eth0", "b": "sw2:srv"},
                {"a": "other:eth0", "b": "sw2:oth"},
            ],
            "taps": [
                {"name": "between", "switch_port": "up"},
                {"name": "other-port", "switch_port": "oth", "off_path": True},
                {"name": "trunk", "switch_port": "down", "off_path": True},
            ],
            "traffic": {"client": "client", "server": "server"},
        }
    )
    assert isolation(topo, "other-port") == ISOLATED
    assert isolation(topo, "trunk") == ""


def test_the_labs_topologies() -> None:
    vlan_isolation, _ = load_topology(TOPOLOGIES / "vlan-isolation.yaml")
    assert [(t.name, t.off_path) for t in vlan_isolation.taps] == [
        ("client-port", False),
        ("server-port", False),
        ("other-port", True),
    ]
    assert isolation(vlan_isolation, "other-port") == ISOLATED
    vlan_apart, _ = load_topology(TOPOLOGIES / "vlan-apart.yaml")
    # other is on the client's VLAN: a branch, where the client's ARP requests flood.
    assert isolation(vlan_apart, "other-port") == ""


def test_the_plan_marks_taps_off_the_path() -> None:
    plan = make_plan(topology(VLANS, [OTHER_PORT]))
    assert [(t.name, t.off_path) for t in plan.taps] == [
        ("client-port", False),
        ("other-port", True),
    ]


TAP_NAMES = ("client-port", "server-port", "other-port")


def write_healthy_run(tmp_path: Path) -> None:
    """A healthy exchange between client-port and server-port; other-port saw nothing."""
    forward = {"client-port": "valid", "server-port": "valid"}
    backward = {"server-port": "valid", "client-port": "valid"}
    names = [(name, frozenset[str]()) for name in TAP_NAMES]
    write_scenario(tmp_path, names, http_exchange(forward, backward))


def test_a_run_directory_tells_the_analysis_which_taps_are_off_the_path(tmp_path: Path) -> None:
    write_healthy_run(tmp_path)
    entry = {"offload_senders": [], "off_path": False, "isolation": ""}
    manifest = {
        "taps": [
            {**entry, "name": "client-port", "pcap": "client-port.pcap"},
            {**entry, "name": "server-port", "pcap": "server-port.pcap"},
            {
                **entry,
                "name": "other-port",
                "pcap": "other-port.pcap",
                "off_path": True,
                "isolation": ISOLATED,
            },
        ]
    }
    diagnosis = diagnose_run_dir(tmp_path, manifest)
    assert (diagnosis.ok, diagnosis.findings) == (True, ())
    assert [(t.name, t.off_path, t.isolation) for t in diagnosis.taps][2] == (
        "other-port",
        True,
        ISOLATED,
    )
    # A manifest of a labctl before off_path: every tap on the path, as then.
    old = {
        "taps": [
            {k: v for k, v in t.items() if k not in entry or k == "offload_senders"}
            for t in manifest["taps"]
        ]
    }
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    kinds = {f.kind for f in diagnose_run_dir(tmp_path).findings}
    assert "lost-between-taps" in kinds


def observed(*faults: str) -> Observation:
    return Observation(http="pass", succeeded=3, failed=0, findings=faults)


def test_findings_none_fails_a_cell_whose_isolated_tap_saw_traffic() -> None:
    """A leak is a fault, so `findings: []` (no fault at all) is the isolation claim."""
    assert compare(Expectation(findings=[]), observed()) is None
    assert compare(Expectation(findings=[]), observed("seen-off-path")) == (
        "expected no fault, found seen-off-path"
    )
    # A lab that shows a leak names it.
    assert compare(Expectation(findings=["seen-off-path"]), observed("seen-off-path")) is None
    assert compare(Expectation(findings=["seen-off-path"]), observed()) == (
        "expected finding seen-off-path, not reported"
    )


def test_analyze_takes_taps_off_the_path(tmp_path: Path) -> None:
    write_healthy_run(tmp_path)
    pcaps = [str(tmp_path / f"{name}.pcap") for name in TAP_NAMES]
    as_one_path = labctl("analyze", *pcaps, "--json")
    assert as_one_path.returncode == 1
    assert "lost-between-taps" in as_one_path.stdout
    done = labctl("analyze", *pcaps, "--off-path", "other-port", "--json")
    assert done.returncode == 0, done.stderr
    diagnosis = json.loads(done.stdout)
    assert diagnosis["findings"] == []
    assert [(t["name"], t["off_path"], t["frames"]) for t in diagnosis["taps"]][2] == (
        "other-port",
        True,
        0,
    )
    wrong = labctl("analyze", *pcaps, "--off-path", "other-prot")
    assert (wrong.returncode, wrong.stderr.strip()) == (
        2,
        "labctl: --off-path names no tap: other-prot (taps: client-port, server-port, other-port)",
    )
    every = labctl("analyze", *pcaps, "--off-path", "client-port,server-port,other-port")
    assert every.returncode == 2
    assert "every tap is off the path" in every.stderr


def labctl(*argv: str) -> subprocess.CompletedProcess[str]:
    command = Path(sys.executable).with_name("labctl")
    return subprocess.run([str(command), *argv], capture_output=True, text=True, timeout=60)


def test_drawings_and_the_plan_say_which_taps_are_off_the_path() -> None:
    topo = topology(VLANS, [OTHER_PORT])
    assert '"other-port: on switch port oth (off the path)"' in graph.mermaid(topo)
    assert '"client-port: on switch port cli"' in graph.mermaid(topo)
    done = labctl("plan", str(TOPOLOGIES / "vlan-isolation.yaml"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith(", off the path)")
    assert not done.stdout.splitlines()[-2].endswith(", off the path)")
