"""Fixtures shared by the integration tests that build real labs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.skips import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "topologies" / "seed.yaml"


def docker_problem() -> str | None:
    if os.geteuid() != 0:
        return "needs root (netlink, iptables, Docker)"
    try:
        from labctl.backends.docker_runtime import connect

        connect().close()
    except Exception as error:  # noqa: BLE001 - any failure means: no Docker here
        return f"Docker daemon not reachable: {error}"
    return None


@pytest.fixture(scope="module")
def docker_host() -> None:
    reason = docker_problem()
    if reason:
        skip_or_fail(reason)


@pytest.fixture
def lab_name(state_dir: Path) -> Iterator[str]:
    name = f"it-{uuid.uuid4().hex[:8]}"
    yield name
    # Whatever the test did, nothing of this lab may survive it (same state dir as the test).
    subprocess.run(
        [sys.executable, "-m", "labctl.cli", "down", name], capture_output=True, timeout=180
    )


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("LABCTL_STATE_DIR", str(path))
    monkeypatch.setenv("LABCTL_RUNS_DIR", str(tmp_path / "runs"))
    return path


def labctl(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "labctl.cli", *argv],
        capture_output=True,
        text=True,
        timeout=600,
        env=os.environ.copy(),
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"labctl {' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done
