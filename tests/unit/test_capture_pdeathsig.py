"""Captures die with labctl: tcpdump is started under `setpriv --pdeathsig TERM`, which
sets PR_SET_PDEATHSIG and keeps it across the exec of nsenter and tcpdump."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.backends.base import CaptureSpec
from labctl.backends.capture import tcpdump_argv

pytestmark = pytest.mark.unit

# The child reads its parent-death signal back (PR_GET_PDEATHSIG = 2).
READ_PDEATHSIG = (
    "import ctypes; v = ctypes.c_int(-1); "
    "ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)"
)


def _prefix(netns_path: str | None = None) -> list[str]:
    """The argv before tcpdump itself: what makes it die with labctl (and enter a node)."""
    argv = tcpdump_argv(CaptureSpec("t", "eth0", Path("/tmp/t.pcap"), netns_path, None))
    return argv[: argv.index("tcpdump")]


def test_the_capture_gets_sigterm_as_its_parent_death_signal() -> None:
    out = subprocess.run(
        [*_prefix(), sys.executable, "-c", READ_PDEATHSIG],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert int(out.stdout) == signal.SIGTERM


def test_in_a_node_nsenter_runs_under_setpriv() -> None:
    prefix = _prefix("/proc/1/ns/net")
    assert prefix[:4] == ["setpriv", "--pdeathsig", "TERM", "--"]
    assert prefix[4:] == ["nsenter", "--net=/proc/1/ns/net", "--"]


def test_a_killed_parent_takes_the_capture_with_it() -> None:
    # A parent that starts a long "capture" the way labctl does, then is SIGKILLed.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            f"p = subprocess.Popen({[*_prefix(), 'sleep', '60']!r}); "
            "print(p.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    # Once setpriv has exec'd the capture (here: sleep), the signal is set; labctl waits
    # for tcpdump to listen, long after that.
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child}/comm").read_text().strip() != "sleep":
        assert time.monotonic() < deadline, "setpriv did not start the capture"
        time.sleep(0.01)
    parent.kill()
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return  # gone (reaped by init)
        if state == "Z":
            return  # dead, waiting for init to reap it
        time.sleep(0.02)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the capture outlived its killed parent")
