"""Capture backend: one tcpdump per tap, in the tap's network namespace.

The host's tcpdump is started through `nsenter --net=<node netns>` for taps
inside a node, so the node image needs no capture tools and the pcaps are
written straight into the run directory on the host. Each process is started
and confirmed listening before traffic starts, and stopped and flushed after.
tcpdump gets PR_SET_PDEATHSIG (set by `setpriv --pdeathsig`, kept across the
exec of nsenter and tcpdump), so it dies with labctl even on SIGKILL: a crashed
run never leaves a capture running. setpriv rather than a Python pre-exec hook:
a hook forces a full fork of labctl's process for every capture (about 10 ms
each, far more under load), without it Python spawns with vfork.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

from labctl.backends.base import CaptureResult, CaptureSpec
from labctl.core.doctor import PROVISION
from labctl.errors import BackendError, PrerequisiteError

# The largest IP packet: whole segments, so every L4 checksum can be verified.
SNAPLEN = 65535
# Immediate mode gives libpcap a ring of fixed-size frames (one snaplen each): with its
# default 2 MiB that is a handful of frames, and a tcpdump starved of CPU by a
# busy-polling OVS thread drops packets. 32 MiB holds hundreds.
BUFFER_KIB = 32768
LISTEN_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def tcpdump_argv(spec: CaptureSpec, tcpdump: str = "tcpdump") -> list[str]:
    argv = [
        tcpdump,
        "-i",
        spec.ifname,
        "-w",
        str(spec.pcap),
        "-s",
        str(SNAPLEN),
        "-B",
        str(BUFFER_KIB),
        "--immediate-mode",
        "-U",
        "-n",
        "-Z",
        "root",
    ]
    if spec.filter:
        argv.append(spec.filter)  # one argv element: never reaches a shell
    if spec.netns_path:
        argv = ["nsenter", f"--net={spec.netns_path}", "--", *argv]
    # SIGTERM when the labctl thread that started it ends, also on SIGKILL.
    return ["setpriv", "--pdeathsig", "TERM", "--", *argv]


class TcpdumpCapture:
    def __init__(self, tcpdump: str = "tcpdump"):
        self.tcpdump = tcpdump

    def check(self) -> None:
        tools = ((self.tcpdump, "tcpdump"), ("nsenter", "util-linux"), ("setpriv", "util-linux"))
        for tool, package in tools:
            if shutil.which(tool) is None:
                raise PrerequisiteError(
                    f"{tool} is not installed (taps need it)",
                    f"apt-get install {package}, or {PROVISION}",
                )

    @contextmanager
    def capturing(self, specs: Sequence[CaptureSpec]) -> Iterator[list[CaptureResult]]:
        """Start every capture, wait until each listens, yield; always stop and flush."""
        self.check()
        running: list[tuple[CaptureSpec, subprocess.Popen[bytes]]] = []
        results = [CaptureResult(s.tap, s.pcap) for s in specs]
        try:
            # Start them all, then wait for each: the waits overlap.
            for spec in specs:
                spec.pcap.parent.mkdir(parents=True, exist_ok=True)
                process = subprocess.Popen(
                    tcpdump_argv(spec, self.tcpdump),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                running.append((spec, process))
            for spec, process in running:
                self._wait_listening(spec, process)
            yield results
        finally:
            # Interrupt them all, then collect each: they flush and exit side by side.
            for _spec, process in running:
                self._interrupt(process)
            for (spec, process), result in zip(running, results, strict=False):
                self._collect(spec, process, result)

    def stream(
        self,
        spec: CaptureSpec,
        seconds: float | None = None,
        listening: Callable[[], None] | None = None,
    ) -> CaptureResult:
        """One capture whose pcap goes to this process's stdout (`tcpdump -w -`), packet by
        packet, until `seconds` pass, Ctrl-C, or the reader closes the pipe. `listening` is
        called once tcpdump listens."""
        self.check()
        argv = tcpdump_argv(replace(spec, pcap=Path("-")), self.tcpdump)
        result = CaptureResult(spec.tap, Path("-"))
        # tcpdump writes straight to our stdout: no copy through this process.
        process = subprocess.Popen(argv, stdout=None, stderr=subprocess.PIPE)
        try:
            self._wait_listening(spec, process)
            if listening is not None:
                listening()
            deadline = None if seconds is None else time.monotonic() + seconds
            # Ctrl-C reaches tcpdump too (same process group); it flushes and exits.
            with suppress(KeyboardInterrupt):
                while process.poll() is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        break
                    time.sleep(0.05)
        finally:
            self._interrupt(process)
            self._collect(spec, process, result)
        return result

    def _wait_listening(self, spec: CaptureSpec, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        deadline = time.monotonic() + LISTEN_TIMEOUT
        seen = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stderr], [], [], 0.1)
            if ready:
                chunk = os.read(process.stderr.fileno(), 4096)
                seen += chunk
                if b"listening on" in seen:
                    return
                if not chunk:
                    break
            if process.poll() is not None:
                break
        text = seen.decode(errors="replace").strip().splitlines()
        raise BackendError(
            f"starting the capture for tap {spec.tap} on {spec.ifname}",
            " | ".join(text[-3:]) or "tcpdump did not start listening in time",
            "check the tap's interface and its capture filter",
        )

    @staticmethod
    def _interrupt(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # tcpdump flushes and prints its counters

    def _collect(
        self, spec: CaptureSpec, process: subprocess.Popen[bytes], result: CaptureResult
    ) -> None:
        """Wait for an interrupted tcpdump to exit; its counters go into `result`."""
        try:
            _, stderr = process.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        lines = stderr.decode(errors="replace").strip().splitlines()
        result.stderr_tail = lines[-5:]
        for line in lines:
            match = re.match(r"(\d+) packets? (captured|dropped by kernel)", line)
            if match and match.group(2) == "captured":
                result.packets_captured = int(match.group(1))
            elif match:
                result.packets_dropped = int(match.group(1))
