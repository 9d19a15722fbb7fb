"""Getting into a running lab as a user does: `labctl exec` on both node runtimes.

Each runtime's seed lab is built once per module (linux-bridge), with its own
state directory, and torn down after; the host must be clean then.
"""

from __future__ import annotations

import io
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import dpkt
import pytest

from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED, docker_problem
from tests.skips import skip_or_fail

pytestmark = pytest.mark.integration

CURL = ("curl", "-s", "-o", "/dev/null", "--max-time", "10", "http://10.0.0.2/")


class UpLab:
    def __init__(self, name: str, env: dict[str, str]):
        self.name = name
        self.env = env

    def labctl(
        self, *argv: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "labctl.cli", *argv],
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )


@pytest.fixture(scope="module", params=["docker", "netns"])
def up_lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UpLab]:
    problem = docker_problem()
    if problem:
        skip_or_fail(problem)
    root = tmp_path_factory.mktemp(f"lab-{request.param}")
    env = {
        **os.environ,
        "LABCTL_STATE_DIR": str(root / "state"),
        "LABCTL_RUNS_DIR": str(root / "runs"),
    }
    lab = UpLab(f"it-{uuid.uuid4().hex[:8]}", env)
    before = HostSnapshot.take()
    up = lab.labctl("up", str(SEED), "--name", lab.name, "--runtime", request.param)
    assert up.returncode == 0, up.stderr
    try:
        yield lab
    finally:
        down = lab.labctl("down", lab.name, timeout=300)
        assert down.returncode == 0, down.stderr
        assert HostSnapshot.take().added_since(before) == {}


def test_exec_passes_exit_code_output_and_stdin(up_lab: UpLab) -> None:
    done = up_lab.labctl(
        "exec", up_lab.name, "server", "--", "sh", "-c", "echo out; echo err >&2; exit 7"
    )
    assert (done.returncode, done.stdout, done.stderr) == (7, "out\n", "err\n")
    piped = up_lab.labctl("exec", up_lab.name, "client", "--", "cat", stdin="through stdin\n")
    assert (piped.returncode, piped.stdout) == (0, "through stdin\n")
    # The command runs in the node: it sees the node's own interface and address.
    addr = up_lab.labctl("exec", up_lab.name, "client", "--", "ip", "-4", "-o", "addr", "show")
    assert addr.returncode == 0 and "eth0" in addr.stdout and "10.0.0.1/24" in addr.stdout


def test_exec_without_a_command_is_an_interactive_shell_on_a_terminal(up_lab: UpLab) -> None:
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "exec", up_lab.name, "server"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**up_lab.env, "TERM": "dumb"},
        start_new_session=True,
    )
    os.close(slave)
    output = b""
    try:
        os.write(master, b'test -t 0 && echo "tty=yes host=$(hostname)"; exit 5\n')
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    output += os.read(master, 4096)
                except OSError:  # EIO: the last writer closed the terminal
                    break
        assert process.wait(timeout=10) == 5, output
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert b"tty=yes host=server" in output


def test_exec_names_the_nodes_when_one_is_unknown(up_lab: UpLab) -> None:
    done = up_lab.labctl("exec", up_lab.name, "nosuch", "--", "true")
    assert done.returncode == 2
    assert f"lab {up_lab.name} has no node 'nosuch' (nodes: client, server)" in done.stderr


# -- capture anywhere, streamed --------------------------------------------------------


def _read_exactly(stream: IO[bytes], size: int, deadline: float) -> bytes:
    data = b""
    while len(data) < size:
        assert time.monotonic() < deadline, f"only {len(data)} of {size} bytes arrived"
        ready, _, _ = select.select([stream], [], [], 0.2)
        if ready:
            chunk = os.read(stream.fileno(), size - len(data))
            assert chunk, "the stream ended early"
            data += chunk
    return data


def test_capture_streams_pcap_from_a_switch_port_until_ctrl_c(up_lab: UpLab) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labctl.cli",
            "capture",
            "switch:srv",
            "--lab",
            up_lab.name,
            "-w",
            "-",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=up_lab.env,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        deadline = time.monotonic() + 60
        header = _read_exactly(process.stdout, 24, deadline)  # written once tcpdump listens
        said = process.stderr.readline().decode()
        assert said.startswith("capturing at switch-srv"), said
        fetch = up_lab.labctl("exec", up_lab.name, "client", "--", *CURL)
        assert fetch.returncode == 0, fetch.stdout + fetch.stderr
        # Packets arrive while the capture still runs: live, not at the end.
        first = _read_exactly(process.stdout, 16, deadline)
        assert process.poll() is None
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C on the terminal does
        rest = process.stdout.read()
        assert process.wait(timeout=30) == 0, process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
    packets = list(dpkt.pcap.Reader(io.BytesIO(header + first + rest)))
    flags = [
        (socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst), ip.data.flags & 0x12)
        for ip in (dpkt.ethernet.Ethernet(frame).data for _ts, frame in packets)
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP)
    ]
    assert ("10.0.0.1", "10.0.0.2", dpkt.tcp.TH_SYN) in flags
    assert ("10.0.0.2", "10.0.0.1", dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK) in flags
    assert f"stdout: {len(packets)} packets" in process.stderr.read().decode()


def test_capture_at_a_node_interface_that_is_no_declared_tap(up_lab: UpLab, tmp_path: Path) -> None:
    pcap = tmp_path / "client.pcap"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labctl.cli",
            "capture",
            "client:eth0",
            "--lab",
            up_lab.name,
            "--seconds",
            "3",
            "-o",
            str(pcap),
            "--json",
            "--filter",
            "tcp port 80",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=up_lab.env,
    )
    assert process.stderr is not None
    said = process.stderr.readline().decode()  # once tcpdump listens
    assert said.startswith("capturing at client-eth0"), said
    fetch = up_lab.labctl("exec", up_lab.name, "client", "--", *CURL)
    assert fetch.returncode == 0, fetch.stderr
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, said + err.decode()
    report = json.loads(out)
    assert report["tap"] == "client-eth0" and report["pcap"] == str(pcap)
    with pcap.open("rb") as f:
        count = sum(1 for _ in dpkt.pcap.Reader(f))
    assert count == report["packets_captured"] and count >= 6  # handshake, GET, reply, close


def test_capture_stream_ends_when_its_reader_goes_away(up_lab: UpLab) -> None:
    """`... -w - | head -c N`: tcpdump's next write fails, and labctl ends with it."""
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "labctl.cli", "capture", "switch:cli", "--lab", up_lab.name]
        + ["-w", "-", "--filter", "tcp port 80"],
        stdin=subprocess.DEVNULL,
        stdout=write_end,
        stderr=subprocess.PIPE,
        env=up_lab.env,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as reader:
            assert len(reader.read(24)) == 24  # the pcap header: tcpdump listens
        # The reader is gone; the next packets hit a closed pipe.
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            up_lab.labctl("exec", up_lab.name, "client", "--", *CURL)
            time.sleep(0.2)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_graph_of_a_running_lab(up_lab: UpLab) -> None:
    done = up_lab.labctl("graph", up_lab.name, "--format", "mermaid")
    assert done.returncode == 0, done.stderr
    assert f"topology {up_lab.name}:" in done.stdout
    assert 'n_client ---|"eth0 - cli"| switch' in done.stdout
