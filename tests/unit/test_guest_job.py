"""What a platform VM's job does before the first cell: dockerd starts without a bridge or
iptables, and the guest's labctl imports its modules while dockerd starts, then waits
for it (labctl.platform_matrix)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl import platform_matrix
from labctl.backends.platform_vm import parse_marks
from labctl.core.matrix import load_lab
from labctl.core.model import SwitchKind

pytestmark = pytest.mark.unit

LAB = Path(__file__).resolve().parents[2] / "labs" / "veth-checksum"


def test_the_matrix_starts_while_dockerd_does_and_runs_once_it_answers() -> None:
    lab = load_lab(LAB)
    script = platform_matrix.guest_script(
        lab, [SwitchKind.OVS_KERNEL], None, Path("/out"), Path("/src"), "debian-12"
    )
    dockerd = script[script.index("dockerd ") :].splitlines()[0]
    assert "--bridge=none" in dockerd and "--iptables=false" in dockerd
    runner = platform_matrix.preloaded_runner()
    matrix = script[script.index(runner) + len(runner) :].splitlines()[0]
    assert matrix.startswith(" matrix ") and matrix.endswith("&")
    assert "--switch ovs-kernel" in matrix and "--serial" in matrix
    order = [
        "dockerd ",
        runner,
        "until timeout 20 curl",
        f"touch {platform_matrix.DOCKER_UP}",
        "wait $matrix_pid",
    ]
    assert [script.index(text) for text in order] == sorted(script.index(t) for t in order)


def test_the_preloaded_labctl_waits_for_its_file_then_runs_the_command(tmp_path: Path) -> None:
    ready = tmp_path / "docker-up"
    command = platform_matrix.preloaded_runner(sys.executable, str(ready)) + " --version"
    started = subprocess.Popen(
        ["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(1.5)
    assert started.poll() is None  # imported, waiting
    ready.touch()
    out, err = started.communicate(timeout=30)
    assert started.returncode == 0, err
    assert out.startswith("labctl ")
    # the guest's console gets the moment the imports were done, as a timing mark
    assert "imports" in parse_marks(err.splitlines())


def _modules_at_exit(tmp_path: Path, ready: Path, wait_before_ready: float) -> set[str]:
    """The modules loaded when the preloaded labctl (`labctl --version`) exits: a
    sitecustomize on PYTHONPATH writes sys.modules at exit."""
    hook = tmp_path / "hook"
    hook.mkdir()
    dump = tmp_path / "modules.txt"
    (hook / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(dump)!r}, 'w').write('\\n'.join(sys.modules)))\n"
    )
    command = platform_matrix.preloaded_runner(sys.executable, str(ready)) + " --version"
    started = subprocess.Popen(
        ["bash", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(hook)},
    )
    time.sleep(wait_before_ready)
    ready.touch()
    _out, err = started.communicate(timeout=60)
    assert started.returncode == 0, err
    return set(dump.read_text().splitlines())


def test_what_cells_need_later_loads_while_dockerd_starts(tmp_path: Path) -> None:
    loaded = _modules_at_exit(tmp_path, tmp_path / "docker-up", wait_before_ready=5)
    assert set(platform_matrix.MATRIX_MODULES) <= loaded
    assert set(platform_matrix.LATER_MODULES) <= loaded


def test_what_cells_need_later_never_holds_back_a_ready_dockerd(tmp_path: Path) -> None:
    ready = tmp_path / "docker-up"
    ready.touch()
    loaded = _modules_at_exit(tmp_path, ready, wait_before_ready=0)
    assert set(platform_matrix.MATRIX_MODULES) <= loaded
    # `labctl --version` needs none of them: the runner went straight to the command.
    assert not set(platform_matrix.LATER_MODULES) & loaded
