"""The shared run-time plumbing: JSON files, file locks, and processes labctl started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.backends import processes
from labctl.backends.ovs.daemons import OvsDaemons, OvsPaths
from labctl.errors import UsageError
from labctl.store import file_lock, read_json, temporary_path, write_json

pytestmark = pytest.mark.unit


def test_json_round_trip_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    assert read_json(path) is None
    write_json(path, {"b": 1, "a": [2]}, sort_keys=True)
    first_inode = path.stat().st_ino
    write_json(path, {"b": 3})
    assert read_json(path) == {"b": 3}
    assert path.stat().st_ino != first_inode  # a new file took the old one's place
    assert not temporary_path(path).exists()
    assert path.read_text().endswith("}\n")


def test_a_damaged_json_file_raises_for_the_caller_to_judge(tmp_path: Path) -> None:
    path = tmp_path / "torn.json"
    path.write_text('{"lab": ')
    with pytest.raises(ValueError):
        read_json(path)


def test_a_held_lock_times_out_naming_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    started = time.monotonic()
    with (
        file_lock(path, "thing 'x'", 5),
        pytest.raises(UsageError) as caught,
        file_lock(path, "thing 'x'", 0.3),
    ):
        pass
    assert 0.3 <= time.monotonic() - started < 5
    message = str(caught.value)
    assert f"thing 'x' is locked by another labctl process ({path})" in message
    assert "wait for it to finish" in message


def test_the_ovs_daemons_lock_times_out_instead_of_blocking(tmp_path: Path) -> None:
    paths = OvsPaths(run_dir=tmp_path / "run", log_dir=tmp_path / "log")
    paths.run_dir.mkdir()
    write_json(paths.state_file, {"labs": ["lab"]})
    daemons = OvsDaemons(paths, system_socket=None, dpdk_abi="23", lock_wait=0.3)
    with (
        file_lock(paths.lock_file, "another process", 5),
        pytest.raises(UsageError, match=f"labctl's OVS daemons is locked .*{paths.lock_file}"),
    ):
        daemons.release("lab")  # reads the record under the lock
    assert read_json(paths.state_file) == {"labs": ["lab"]}  # untouched while locked
    assert daemons.release("lab") == []  # no daemon was recorded: nothing to stop
    assert not paths.state_file.exists()


def test_daemons_state_is_written_as_json(tmp_path: Path) -> None:
    paths = OvsPaths(run_dir=tmp_path / "run", log_dir=tmp_path / "log")
    paths.run_dir.mkdir()
    write_json(paths.state_file, {"labs": ["a"], "unknown": 1})
    daemons = OvsDaemons(paths, system_socket=None, dpdk_abi="23")
    assert [o.lab for o in daemons.list_owned()] == []  # no daemon recorded for lab a
    state = daemons._read_state()
    assert state.labs == ["a"]
    daemons._write_state(state)
    assert json.loads(paths.state_file.read_text())["labs"] == ["a"]


def test_proc_stat_names_a_live_process_and_its_start_time() -> None:
    stat = processes.proc_stat(os.getpid())
    assert stat is not None and stat.running and stat.starttime > 0
    assert processes.starttime(os.getpid()) == stat.starttime
    assert processes.proc_stat(2**22 + 1) is None  # above pid_max's ceiling


def test_terminate_escalates_to_kill_when_term_is_ignored(tmp_path: Path) -> None:
    ignore_term = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " + (
        "print('ready', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", ignore_term], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    sent: list[signal.Signals] = []

    def send(sig: signal.Signals) -> None:
        sent.append(sig)
        processes.signal_pid(child.pid, sig)

    assert processes.terminate(send, lambda: child.poll() is None, 0.3, 5)
    assert sent == [signal.SIGTERM, signal.SIGKILL]
    assert child.returncode == -signal.SIGKILL


def test_terminate_stops_at_term_when_that_is_enough() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    sent: list[signal.Signals] = []

    def send(sig: signal.Signals) -> None:
        sent.append(sig)
        processes.signal_pid(child.pid, sig)

    assert processes.terminate(send, lambda: child.poll() is None, 5, 5)
    assert sent == [signal.SIGTERM]


def test_log_tail_is_the_last_lines_or_none(tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    log.write_text("".join(f"line {n}\n" for n in range(10)))
    assert processes.log_tail(log, 2) == ["line 8", "line 9"]
    assert processes.log_tail(tmp_path / "missing.log", 2) is None


def test_a_dpdk_vswitchd_with_other_dpdk_settings_does_not_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dpdk-socket-mem and the other DPDK keys are daemon-wide other_config too: a lab that
    needs other ones must not share the running DPDK vswitchd (nor one whose other_config
    differs)."""
    from labctl.backends.ovs.daemons import DaemonNeeds, _State
    from labctl.core.model import DpdkOptions

    daemons = OvsDaemons(OvsPaths(run_dir=tmp_path), system_socket=None, dpdk_abi="23")
    monkeypatch.setattr(daemons, "_dpdk_initialized", lambda: True)
    needs = DaemonNeeds(dpdk=DpdkOptions(), other_config=(("userspace-tso-enable", "true"),))
    state = _State(
        ovs_vswitchd={"binary": str(daemons.binaries.vswitchd_dpdk)},
        other_config=needs.settings(),
    )
    assert daemons._mismatch(state, needs) is None
    more_memory = DaemonNeeds(dpdk=DpdkOptions(socket_mem="512"), other_config=needs.other_config)
    assert "dpdk-socket-mem=256" in str(daemons._mismatch(state, more_memory))
    assert "userspace-tso-enable=true" in str(
        daemons._mismatch(state, DaemonNeeds(dpdk=DpdkOptions()))
    )
