"""The warm labctl runs a command as labctl would: the caller's arguments, working
directory, environment, stdout/stderr and exit status; a code change means a new server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl import warm

pytestmark = pytest.mark.unit


@pytest.fixture
def server() -> object:
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl.warm", "serve"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
    )
    address = warm.address(warm.fingerprint())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(address)
                break
            except OSError:
                time.sleep(0.05)
    yield process
    process.kill()
    process.wait(10)


def test_a_command_runs_in_the_warm_server_as_it_would_here(
    server: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "bad.yaml").write_text("nodes: [\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    # A relative path only resolves in the caller's directory; the error goes to its stderr.
    assert warm.run(["validate", "bad.yaml"]) == 2
    assert "bad.yaml:" in capfd.readouterr().err
    # The caller's environment: its (empty) state directory, so no lab is up.
    assert warm.run(["run"]) == 2
    assert "no lab is up" in capfd.readouterr().err
    assert warm.run(["--version"]) == 0
    assert capfd.readouterr().out.startswith("labctl ")


def test_the_fingerprint_follows_the_python_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = warm.fingerprint()
    assert warm.fingerprint() == before
    packages = tmp_path / "site-packages"
    packages.mkdir()
    monkeypatch.setattr(warm.site, "getsitepackages", lambda: [str(packages)])
    with_entry = warm.fingerprint()
    assert with_entry != before
    (packages / "new_package").mkdir()  # a package installed: the directory changes
    assert warm.fingerprint() != with_entry


def test_no_server_means_run_it_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm, "fingerprint", lambda: "no-such-server")
    started = []
    monkeypatch.setattr(warm, "_start_server", lambda: started.append(1))
    assert warm.run(["--version"]) is None
    assert started == [1]


def test_a_python_caller_of_main_runs_in_its_own_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labctl import cli

    def refuse(argv: object) -> int:
        raise AssertionError("main(argv) went to the warm labctl")

    monkeypatch.setattr(warm, "run", refuse)
    assert cli.main(["schema"]) == 0
    assert '"properties"' in capsys.readouterr().out
    monkeypatch.setenv(warm.ENV_SWITCH, "0")
    monkeypatch.setattr(sys, "argv", ["labctl", "schema"])
    assert cli.main() == 0  # LABCTL_WARM=0: the program runs it here too
