"""Two switches in one lab, for real: a Linux bridge and OVS joined by a host veth, two OVS
userspace bridges joined by patch ports; traffic crosses both, and `down` (also after
SIGKILL, also without the state file) leaves the host as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from labctl import Lab
from labctl.backends.ovs.daemons import OvsDaemons
from labctl.core import names
from labctl.run import RunRecorder
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import ROOT, labctl
from tests.integration.test_reliability import wait_for_step

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]
TWO = ROOT / "topologies" / "two-switch.yaml"


def offload_off(tmp_path: Path, drop_between_tap: bool = False) -> Path:
    """The two-switch topology with the nodes finishing their checksums (every switch kind
    then carries TCP), optionally without the tap between the switches (a patch port)."""
    data = yaml.safe_load(TWO.read_text())
    for node in data["nodes"].values():
        node["offload"] = {"tx": False, "rx": False}
    if drop_between_tap:
        data["taps"] = [t for t in data["taps"] if t["name"] != "between"]
    path = tmp_path / "two-switch-off.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ovs_rows(table: str, column: str) -> list[str]:
    endpoint = OvsDaemons().current()
    if endpoint is None:
        return []
    done = subprocess.run(
        ["ovs-vsctl", f"--db={endpoint.connection}", "--bare", "--columns", column, "list", table],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.split()


def test_linux_bridge_and_ovs_joined_by_a_veth(
    lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    topology = offload_off(tmp_path)
    with Lab.from_file(topology, switch="sw2=ovs-userspace", name=lab_name) as lab:
        up, down = names.host_veth_name(lab_name, "up"), names.host_veth_name(lab_name, "down")
        listed = subprocess.run(
            ["ip", "-j", "link", "show", "master", names.bridge_name(lab_name, "sw1")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        ports = {link["ifname"] for link in json.loads(listed)}
        # sw1's end of the veth is a port of the Linux bridge, sw2's of the OVS bridge.
        assert ports == {names.host_veth_name(lab_name, "cli"), up}
        assert down in ovs_rows("Interface", "name")
        record = RunRecorder(lab.engine, tmp_path / "runs").run(lab_name)
    assert HostSnapshot.take().added_since(before) == {}
    assert record.http is not None and (record.http.succeeded, record.http.failed) == (3, 0)
    diagnosis = record.diagnosis
    assert diagnosis is not None and diagnosis.ok
    # The tap between the switches saw the whole conversation, checksums finished.
    between = next(t for t in diagnosis.taps if t.name == "between")
    assert between.packets > 0 and between.verdicts["valid"] > 0
    assert between.verdicts["unfinished"] == 0


@pytest.mark.parametrize("kinds", ["ovs-userspace", "sw1=ovs-userspace,sw2=ovs-dpdk"])
def test_two_ovs_bridges_joined_by_patch_ports_then_swept_without_state(
    kinds: str, lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    topology = offload_off(tmp_path, drop_between_tap=True)
    labctl("up", str(topology), "--switch", kinds, "--name", lab_name)
    patch = {names.host_veth_name(lab_name, "up"), names.host_veth_name(lab_name, "down")}
    assert patch <= set(ovs_rows("Interface", "name"))
    assert "patch" in ovs_rows("Interface", "type")
    # No veth between the switches: the patch ports are no netdevs.
    host_links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    assert not any(name in host_links for name in patch)
    run = labctl("run", lab_name)
    assert "3/3 succeeded" in run.stdout, run.stdout
    # A crash that lost the state file: `down` finds everything by its labels.
    (state_dir / f"{lab_name}.json").unlink()
    labctl("down", lab_name)
    assert HostSnapshot.take().added_since(before) == {}
    assert not patch & set(ovs_rows("Interface", "name"))


@pytest.mark.parametrize("lose_state", [False, True])
def test_sigkill_after_the_veth_between_switches_then_down(
    lose_state: bool, lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "up", str(offload_off(tmp_path))]
        + ["--switch", "sw2=linux-bridge", "--name", lab_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    wait_for_step(process, 9)  # the veth between the switches made, sw1's end attached
    process.kill()
    process.communicate(timeout=30)
    left = HostSnapshot.take().added_since(before)
    assert names.host_veth_name(lab_name, "up") in left.get("links", [])
    if lose_state:
        (state_dir / f"{lab_name}.json").unlink()
    labctl("down", lab_name)
    assert HostSnapshot.take().added_since(before) == {}
