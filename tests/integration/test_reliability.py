"""Reliability: interrupted and killed runs, concurrent labs, foreign objects, bad input.

Every test compares a snapshot of the host before and after: nothing of
labctl's may remain, and nothing that is not labctl's may change.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from labctl.core.names import bridge_name, container_name
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED, labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]
GOLDEN = Path(__file__).resolve().parents[1] / "unit" / "golden"


def start_up(lab_name: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "up", str(SEED), "--name", lab_name, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def wait_for_step(process: subprocess.Popen[str], step: int, timeout: float = 120) -> None:
    """Read progress until step `step` has finished ("[ k/n] ... ok")."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            raise AssertionError("labctl up ended before the step was reached")
        if line.startswith(f"[{step:>2}/") and " ... ok" in line:
            return
    raise AssertionError(f"step {step} not reached within {timeout} s")


@pytest.mark.parametrize("after_step", [1, 3, 5, 7])
def test_ctrl_c_during_up_undoes_everything(
    after_step: int, lab_name: str, state_dir: Path
) -> None:
    before = HostSnapshot.take()
    process = start_up(lab_name)
    wait_for_step(process, after_step)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert not (state_dir / f"{lab_name}.json").exists()
    assert HostSnapshot.take().added_since(before) == {}


@pytest.mark.parametrize("lose_state", [False, True])
def test_sigkill_mid_up_then_down_removes_every_leftover(
    lose_state: bool, lab_name: str, state_dir: Path
) -> None:
    before = HostSnapshot.take()
    process = start_up(lab_name)
    wait_for_step(process, 5)
    process.kill()
    process.communicate(timeout=30)
    assert HostSnapshot.take().added_since(before)  # something was left: the point
    if lose_state:
        (state_dir / f"{lab_name}.json").unlink()
        labctl("down", "--all")
    else:
        labctl("down", lab_name)
    assert HostSnapshot.take().added_since(before) == {}


def test_two_labs_side_by_side_do_not_collide(lab_name: str, state_dir: Path) -> None:
    other = f"{lab_name}-b"
    before = HostSnapshot.take()
    try:
        with ThreadPoolExecutor(2) as pool:
            ups = list(
                pool.map(
                    lambda n: labctl("up", str(SEED), "--name", n, check=False), [lab_name, other]
                )
            )
        assert [u.returncode for u in ups] == [0, 0], [u.stderr for u in ups]
        assert bridge_name(lab_name) != bridge_name(other)
        for name in (lab_name, other):
            run = labctl("run", name)
            assert "5/5 succeeded" in run.stdout
    finally:
        labctl("down", other, check=False)
        labctl("down", lab_name, check=False)
    assert HostSnapshot.take().added_since(before) == {}


def test_concurrent_up_of_one_lab_builds_it_once(lab_name: str, state_dir: Path) -> None:
    before = HostSnapshot.take()
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(lambda _: labctl("up", str(SEED), "--name", lab_name, check=False), range(2))
        )
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 2], [r.stderr for r in results]
    refused = next(r for r in results if r.returncode == 2)
    assert "already up" in refused.stderr or "locked" in refused.stderr
    assert "5/5 succeeded" in labctl("run", lab_name).stdout
    labctl("down", lab_name)
    assert HostSnapshot.take().added_since(before) == {}


def test_foreign_container_with_our_name_is_refused_and_survives(
    lab_name: str, state_dir: Path
) -> None:
    import docker

    client = docker.from_env()
    image = client.images.get("labctl-node:latest")
    foreign = client.containers.run(
        image.id,
        ["sleep", "300"],
        name=container_name(lab_name, "server"),
        network_mode="none",
        detach=True,
    )
    try:
        before = HostSnapshot.take()
        done = labctl("up", str(SEED), "--name", lab_name, check=False)
        assert done.returncode == 4
        assert "was not created by labctl" in done.stderr
        assert HostSnapshot.take().added_since(before) == {}
        foreign.reload()
        assert foreign.status == "running"
        labctl("down", lab_name)
        foreign.reload()
        assert foreign.status == "running"
    finally:
        foreign.remove(force=True)
        client.close()


def test_foreign_bridge_with_our_name_is_refused_and_survives(
    lab_name: str, state_dir: Path
) -> None:
    bridge = bridge_name(lab_name)
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        before = HostSnapshot.take()
        done = labctl("up", str(SEED), "--name", lab_name, check=False)
        assert done.returncode == 4 and bridge in done.stderr
        labctl("down", lab_name)
        assert HostSnapshot.take().added_since(before) == {}
        assert subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0
    finally:
        subprocess.run(["ip", "link", "del", bridge], check=False)


BAD_INPUTS = sorted(p.name for p in GOLDEN.glob("*.yaml"))


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_topology_creates_nothing(name: str, state_dir: Path) -> None:
    before = HostSnapshot.take()
    done = labctl("up", str(GOLDEN / name), check=False)
    assert done.returncode == 2
    expected = (GOLDEN / name.replace(".yaml", ".expected")).read_text().splitlines()
    assert [
        line.removeprefix("labctl: ").replace(str(GOLDEN) + "/", "")
        for line in done.stderr.splitlines()
    ] == expected
    assert HostSnapshot.take().added_since(before) == {}


def test_more_bad_inputs(tmp_path: Path, state_dir: Path) -> None:
    before = HostSnapshot.take()
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\n" + "# padding\n" * 1_100_000)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    missing_image = tmp_path / "image.yaml"
    missing_image.write_text(
        SEED.read_text().replace("  server:\n", "  server:\n    image: no-such-image:1\n")
    )
    shell = tmp_path / "shell.yaml"
    shell.write_text(
        SEED.read_text().replace(
            "    node: server:eth0\n",
            '    node: server:eth0\n    filter: "tcp; touch /tmp/pwned"\n',
        )
    )
    cases = {
        huge: "a topology may be at most 1048576 bytes",
        binary: "not UTF-8 text",
        tmp_path: "is a directory, not a topology file",
        tmp_path / "absent.yaml": "no such file",
        missing_image: "image 'no-such-image:1' is not present locally",
    }
    for path, message in cases.items():
        done = labctl("up", str(path), check=False)
        assert done.returncode == 2, (path, done.stderr)
        assert message in done.stderr and str(path) in done.stderr
    line = missing_image.read_text().splitlines().index("    image: no-such-image:1") + 1
    stderr = labctl("up", str(missing_image), check=False).stderr
    assert f"image.yaml:{line}:5: nodes.server.image" in stderr
    # A filter with shell metacharacters reaches tcpdump as one argument: tcpdump rejects it,
    # no shell runs it.
    lab = "it-shell-filter"
    labctl("up", str(shell), "--name", lab)
    try:
        run = labctl("run", lab, "--runs-dir", str(tmp_path / "runs"), check=False)
        assert run.returncode == 4 and "server-eth0" in run.stderr
        assert not Path("/tmp/pwned").exists()
    finally:
        labctl("down", lab)
    assert HostSnapshot.take().added_since(before) == {}
