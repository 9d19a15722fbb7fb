"""The seed lab, for real: Docker nodes, netlink veths, a Linux bridge, HTTP traffic.

Needs root and a running dockerd (scripts/provision.sh). Each test uses its own
lab name so a failed test cannot poison the next one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from labctl import Lab
from labctl.errors import UsageError
from labctl.run import run_traffic
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED, labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]


def test_seed_lab_on_linux_bridge_passes_http_and_leaves_host_clean(
    lab_name: str, state_dir: Path
) -> None:
    before = HostSnapshot.take()
    with Lab.from_file(SEED, switch="linux-bridge", name=lab_name) as lab:
        during = HostSnapshot.take()
        added = during.added_since(before)
        assert len(added["containers"]) == 2
        assert {
            f"lc{_lab_id(lab_name)}-br",
            f"lc{_lab_id(lab_name)}-cli",
            f"lc{_lab_id(lab_name)}-srv",
        } <= set(added["links"])
        # The narrowly scoped ACCEPT rule that makes bridging work despite dockerd's DROP.
        rules = [r for r in added.get("iptables", []) if f"labctl lab={lab_name}" in r]
        assert rules and all(f"-i lc{_lab_id(lab_name)}-br" in r for r in rules)
        result = lab.run()
        assert result.ok, result.render_text()
        assert result.succeeded == 5
    assert HostSnapshot.take().added_since(before) == {}


def test_cli_up_run_status_down(lab_name: str, state_dir: Path) -> None:
    before = HostSnapshot.take()
    labctl("up", str(SEED), "--switch", "linux-bridge", "--name", lab_name)
    status = json.loads(labctl("status", lab_name, "--json").stdout)
    kinds = sorted(r["kind"] for r in status["labs"][0]["resources"])
    assert status["labs"][0]["status"] == "up"
    assert kinds.count("container") == 2 and "bridge" in kinds
    run = json.loads(labctl("run", lab_name, "--json").stdout)
    assert run["http"]["succeeded"] == 5 and run["http"]["failed"] == 0
    second = labctl("up", str(SEED), "--name", lab_name, check=False)
    assert second.returncode == 2 and "already up" in second.stderr
    labctl("down", lab_name)
    labctl("down", lab_name)  # idempotent
    assert HostSnapshot.take().added_since(before) == {}


def test_down_after_lost_state_sweeps_by_label(lab_name: str, state_dir: Path) -> None:
    before = HostSnapshot.take()
    labctl("up", str(SEED), "--name", lab_name)
    (state_dir / f"{lab_name}.json").unlink()  # as if labctl had crashed and lost its journal
    down = labctl("down", lab_name)
    assert "swept by label" in down.stdout
    assert HostSnapshot.take().added_since(before) == {}


def test_failed_up_rolls_back(lab_name: str, state_dir: Path, tmp_path: Path) -> None:
    """A name clash with an interface labctl does not own aborts `up` and undoes it."""
    before = HostSnapshot.take()
    clash = f"lc{_lab_id(lab_name)}-srv"
    subprocess.run(["ip", "link", "add", clash, "type", "bridge"], check=True)
    try:
        done = labctl("up", str(SEED), "--name", lab_name, check=False)
        assert done.returncode == 4, done.stderr
        assert clash in done.stderr
        after = HostSnapshot.take().added_since(before)
        assert after == {"links": [clash]}  # only the user's own interface, untouched
    finally:
        subprocess.run(["ip", "link", "del", clash], check=False)


def test_node_to_node_link(lab_name: str, state_dir: Path, tmp_path: Path) -> None:
    topology = tmp_path / "pair.yaml"
    topology.write_text(f"""
name: {lab_name}
nodes:
  a: {{interfaces: {{eth1: {{ipv4: 192.0.2.1/24, ipv6: "2001:db8::1/64"}}}}}}
  b: {{interfaces: {{eth1: {{ipv4: 192.0.2.2/24, ipv6: "2001:db8::2/64"}}}}}}
links:
  - {{a: a:eth1, b: b:eth1}}
traffic: {{client: a, server: b, requests: 2, family: ipv6}}
""")
    before = HostSnapshot.take()
    with Lab.from_file(topology) as lab:
        result = lab.run()
        assert result.ok, result.render_text()
    assert HostSnapshot.take().added_since(before) == {}


def test_run_without_lab_is_a_clear_error(state_dir: Path) -> None:
    done = labctl("run", "no-such-lab", check=False)
    assert done.returncode == 2
    assert "lab 'no-such-lab' is not up" in done.stderr


def test_api_refuses_run_after_exit(lab_name: str, state_dir: Path) -> None:
    lab = Lab.from_file(SEED, name=lab_name)
    with lab:
        pass
    with pytest.raises(UsageError):
        run_traffic(lab.engine, lab_name)


def _lab_id(name: str) -> str:
    from labctl.core.names import lab_id

    return lab_id(name)
