"""The Docker node runtime against the real daemon: Docker's environment, exec timeouts."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.backends.base import NodeHandle
from labctl.backends.docker_runtime import DockerRuntime, connect
from labctl.backends.image import Recipe
from labctl.core.model import Node
from labctl.errors import BackendError

pytestmark = pytest.mark.integration

DEFAULT_SOCKET = "/var/run/docker.sock"


@pytest.fixture
def node(docker_host: None) -> Iterator[tuple[DockerRuntime, NodeHandle]]:
    # A 2 s per-call timeout: an exec longer than that must still finish.
    runtime = DockerRuntime(connect(timeout=2), default_image=Recipe().tag)
    lab = f"it-{uuid.uuid4().hex[:8]}"
    try:
        yield runtime, runtime.ensure_node(lab, "n1", Node.model_validate({}))
    finally:
        runtime.sweep(lab)
        runtime.close()


def test_exec_passes_exit_code_and_both_streams(node: tuple[DockerRuntime, NodeHandle]) -> None:
    runtime, handle = node
    result = runtime.exec(handle, ["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=10)
    assert (result.exit_code, result.stdout, result.stderr) == (7, "out\n", "err\n")


def test_exec_runs_longer_than_the_clients_per_call_timeout(
    node: tuple[DockerRuntime, NodeHandle],
) -> None:
    runtime, handle = node
    started = time.monotonic()
    result = runtime.exec(handle, ["sh", "-c", "sleep 3; echo done"], timeout=20)
    assert result.exit_code == 0 and result.stdout == "done\n"
    assert time.monotonic() - started >= 3


def test_exec_timeout_is_the_one_asked_for_and_kills_the_command(
    node: tuple[DockerRuntime, NodeHandle],
) -> None:
    runtime, handle = node
    started = time.monotonic()
    with pytest.raises(BackendError, match=r"no exit after 1 s; killed it"):
        runtime.exec(handle, ["sh", "-c", "sleep 47; echo never"], timeout=1)
    assert time.monotonic() - started < 5
    node_pidns = os.readlink(f"/proc/{handle.pid}/ns/pid")
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "ns/pid") == node_pidns:
                left.append((proc / "cmdline").read_bytes())
        except OSError:
            continue
    assert not [c for c in left if b"47" in c], left


@pytest.fixture
def proxied_socket(tmp_path: Path, docker_host: None) -> Iterator[tuple[str, list[int]]]:
    """A unix socket that forwards to dockerd's and counts the connections it served."""
    path = tmp_path / "proxy.sock"
    served: list[int] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            served.append(1)
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(DEFAULT_SOCKET)
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"unix://{path}", served
    finally:
        listener.close()


def test_connect_honours_docker_host(proxied_socket: tuple[str, list[int]]) -> None:
    url, served = proxied_socket
    client = connect(environment={"DOCKER_HOST": url})
    try:
        assert client.ping()
    finally:
        client.close()
    assert served, "the client did not connect through DOCKER_HOST"
