"""`labctl graph`: the report's topology drawing as SVG, Mermaid and DOT."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.core.loader import load_topology
from labctl.core.model import Topology
from labctl.reports import graph, html

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "topologies" / "seed.yaml"


def seed() -> Topology:
    topology, _ = load_topology(SEED)
    return topology


def two_nodes_no_switch() -> Topology:
    return Topology.model_validate(
        {
            "name": "direct",
            "nodes": {"a": {"interfaces": {"eth1": {"ipv4": "10.9.0.1/24"}}}, "b": {}},
            "links": [{"a": "a:eth1", "b": "b:eth1"}],
            "taps": [{"name": "at-b", "node": "b:eth1"}],
        }
    )


def test_svg_is_the_reports_drawing_standalone() -> None:
    data = seed()
    standalone = graph.svg(data)
    root = ET.fromstring(standalone.encode())  # well-formed XML
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    style = root.find("{http://www.w3.org/2000/svg}style")
    assert style is not None and "svg .node {" in (style.text or "")
    assert "--tap: #d93025" in (style.text or "")  # the colours the rules refer to
    # Every element of the report's drawing is in the standalone file, unchanged.
    report_drawing, _ = html.topology_drawing(data)
    for line in report_drawing.splitlines()[1:]:
        assert line in standalone
    texts = {t.text for t in root.iter("{http://www.w3.org/2000/svg}text")}
    assert {"client", "server", "switch", "linux-bridge", "1", "2", "3"} <= texts


def test_mermaid_has_nodes_switch_links_and_numbered_taps() -> None:
    out = graph.mermaid(seed())
    assert out.startswith("flowchart LR\n")
    assert 'n_server["server<br/>HTTP server :80<br/>eth0 10.0.0.2/24 fd00::2/64"]' in out
    assert 'switch{{"switch<br/>linux-bridge"}}' in out
    assert 'n_client ---|"eth0 - cli"| switch' in out
    assert 'tap3 -.-|"client-port: on switch port cli"| switch' in out
    assert 'tap1 -.-|"server-eth0: inside node server, on eth0"| n_server' in out


def test_dot_is_an_undirected_graph_with_the_same_parts() -> None:
    out = graph.dot(seed())
    assert out.startswith('graph "seed" {') and out.rstrip().endswith("}")
    assert '"client" -- "switch" [taillabel="eth0", headlabel="cli"];' in out
    assert '"tap 2" -- "server" [style=dashed, label="server-host"];' in out
    # Balanced quotes on every statement line.
    assert all(line.count('"') % 2 == 0 for line in out.splitlines())


def test_node_to_node_links_without_a_switch() -> None:
    data = two_nodes_no_switch()
    assert "switch{{" not in graph.mermaid(data)
    assert 'n_a ---|"eth1 - eth1"| n_b' in graph.mermaid(data)
    assert '"a" -- "b" [taillabel="eth1", headlabel="eth1"];' in graph.dot(data)
    assert '"switch"' not in graph.dot(data)
    ET.fromstring(graph.svg(data).encode())


def test_cli_graph_reads_a_file_and_names_the_choices_otherwise(tmp_path: Path) -> None:
    labctl = Path(sys.executable).with_name("labctl")
    done = subprocess.run(
        [str(labctl), "graph", str(SEED), "--format", "dot"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout == graph.dot(seed())
    missing = subprocess.run(
        [str(labctl), "graph", "no-such-lab"],
        capture_output=True,
        text=True,
        env={"LABCTL_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert missing.returncode == 2
    assert re.search(r"no-such-lab is neither a file nor a lab", missing.stderr)
