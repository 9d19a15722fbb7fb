"""Daemon faults: a clear error within a bounded time, no hang, and `down` still cleans up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED, labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]
OVS_STATE = Path("/run/labctl/ovs/daemons.json")


def our_daemon_pid(name: str) -> int:
    state = json.loads(OVS_STATE.read_text())
    return int(state[name]["pid"])


@pytest.mark.parametrize("kind", ["ovs-userspace", "ovs-dpdk"])
def test_vswitchd_killed_during_a_lab(
    kind: str, lab_name: str, state_dir: Path, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    labctl("up", str(SEED), "--switch", kind, "--name", lab_name)
    try:
        os.kill(our_daemon_pid("ovs_vswitchd"), signal.SIGKILL)
        started = time.monotonic()
        run = labctl("run", lab_name, "--runs-dir", str(tmp_path / "runs"), check=False)
        assert time.monotonic() - started < 120
        assert run.returncode == 1  # no switch: every request fails, clearly
        assert "0/5 succeeded" in run.stdout
        assert "labctl's ovs-vswitchd" in run.stderr and "is not running" in run.stderr
        # The run's artifacts are still written.
        run_dir = next((tmp_path / "runs" / lab_name).iterdir())
        assert (run_dir / "manifest.json").is_file() and (run_dir / "diagnosis.json").is_file()
    finally:
        down = labctl("down", lab_name, check=False)
    assert down.returncode == 0, down.stderr
    assert HostSnapshot.take().added_since(before) == {}


def test_ovsdb_server_stopped_gives_a_clear_error_and_down_cleans(
    lab_name: str, state_dir: Path
) -> None:
    before = HostSnapshot.take()
    labctl("up", str(SEED), "--switch", "ovs-userspace", "--name", lab_name)
    try:
        os.kill(our_daemon_pid("ovsdb_server"), signal.SIGKILL)
        started = time.monotonic()
        status = labctl("status", lab_name, check=False)
        assert time.monotonic() - started < 60
        assert status.returncode in (0, 4), status.stderr
    finally:
        down = labctl("down", lab_name, check=False)
    assert time.monotonic() - started < 180
    assert down.returncode == 0, down.stderr
    assert HostSnapshot.take().added_since(before) == {}


def _dockerd_pids() -> list[int]:
    done = subprocess.run(["pidof", "dockerd"], capture_output=True, text=True)
    return [int(p) for p in done.stdout.split()]


def _start_dockerd() -> None:
    if shutil.which("systemctl") and Path("/run/systemd/system").is_dir():
        subprocess.run(["systemctl", "start", "docker"], check=True, timeout=120)
    else:
        Path("/var/log/labctl").mkdir(parents=True, exist_ok=True)
        with open("/var/log/labctl/dockerd.log", "ab") as log:
            subprocess.Popen(
                ["dockerd"],
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("dockerd did not come back within 60 s")


def test_docker_daemon_stopped_gives_the_fix_and_creates_nothing(
    lab_name: str, state_dir: Path
) -> None:
    before = HostSnapshot.take()
    pids = _dockerd_pids()
    assert pids, "dockerd is not running"
    try:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while _dockerd_pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        started = time.monotonic()
        done = labctl("up", str(SEED), "--name", lab_name, check=False)
        assert time.monotonic() - started < 60
        assert done.returncode == 3, done.stderr
        assert "the Docker daemon is not reachable" in done.stderr
        assert "fix: start dockerd" in done.stderr
        status = labctl("status", check=False)  # still answers, without Docker
        assert status.returncode == 0, status.stderr
    finally:
        if not _dockerd_pids():
            _start_dockerd()
    after = HostSnapshot.take().added_since(before)
    assert after == {}
