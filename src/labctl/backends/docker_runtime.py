"""Docker node runtime, through the Docker SDK (never the docker CLI).

Containers start with network mode `none`: labctl wires every interface
itself. Each container carries the labels labctl.lab / labctl.node so that
`down` can find it without the state file.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions
from docker.models.containers import Container

from labctl.backends.base import ExecResult, NodeHandle, Owned
from labctl.core import names
from labctl.core.doctor import PROVISION
from labctl.core.events import Event, EventSink
from labctl.core.model import DEFAULT_IMAGE, Node, Topology
from labctl.errors import BackendError, PrerequisiteError

# What a Docker API call can raise: the daemon's answers, and the HTTP layer's own errors
# (a daemon too slow to answer within the client's timeout raises requests' ReadTimeout).
DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)

IDLE_COMMAND = ["sleep", "infinity"]
KILL_GRACE = 3.0
"""How long a timed-out exec may take to report its exit after SIGKILL."""


def connect(
    timeout: float = 30, environment: Mapping[str, str] | None = None
) -> docker.DockerClient:
    """A Docker client configured as the docker CLI is (DOCKER_HOST, DOCKER_TLS_VERIFY,
    DOCKER_CERT_PATH, DOCKER_CONTEXT), or a PrerequisiteError naming how to start dockerd.

    `timeout` bounds each API call; `exec` applies its own deadline to commands."""
    env = dict(os.environ if environment is None else environment)
    where = env.get("DOCKER_HOST") or "the default socket"
    try:
        # version="auto" asks the daemon for its API version: that request is the check
        # that it is reachable, so no separate ping.
        return docker.from_env(version="auto", timeout=int(timeout), environment=env)
    except (docker.errors.DockerException, OSError) as error:
        raise PrerequisiteError(
            f"the Docker daemon is not reachable at {where} ({_short(error)})",
            "start it (`dockerd &` / `systemctl start docker`, or "
            + PROVISION
            + ")"
            + (", or point DOCKER_HOST at it" if "DOCKER_HOST" in env else ""),
        ) from None


def _short(error: BaseException) -> str:
    text = str(error)
    return text if len(text) < 160 else text[:157] + "..."


class DockerRuntime:
    def __init__(
        self,
        client: docker.DockerClient | Callable[[], docker.DockerClient],
        default_image: str | None = None,
    ):
        # A client, or a factory: connecting late lets netns-only hosts run without Docker.
        self._client = client if isinstance(client, docker.DockerClient) else None
        self._connect = None if isinstance(client, docker.DockerClient) else client
        # The built, recipe-tagged image that the topology's logical default stands for.
        self.default_image = default_image

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            assert self._connect is not None
            self._client = self._connect()
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def prepare(self, topology: Topology, emit: EventSink) -> None:
        """Build the default node image on first use; other images are the user's."""
        uses_default = any(node.image == DEFAULT_IMAGE for node in topology.nodes.values())
        if uses_default and not self.image_exists(DEFAULT_IMAGE):
            from labctl.backends.image import ImageBuilder

            emit(Event("phase", "building the node image (first run only)"))
            ImageBuilder(self.client, on_event=emit).ensure()

    def resolve_image(self, image: str) -> str:
        if image == DEFAULT_IMAGE and self.default_image is not None:
            return self.default_image
        return image

    def image_exists(self, image: str) -> bool:
        try:
            self.client.images.get(self.resolve_image(image))
            return True
        except docker.errors.ImageNotFound:
            return False
        except DOCKER_ERRORS as error:
            raise BackendError(f"looking up image {image}", _short(error)) from None

    def _find(self, lab: str, name: str) -> Container | None:
        try:
            container = self.client.containers.get(names.container_name(lab, name))
        except docker.errors.NotFound:
            return None
        except DOCKER_ERRORS as error:
            raise BackendError(f"looking up node {name}", _short(error)) from None
        labels = container.labels or {}
        if labels.get(names.LABEL_LAB) != lab or labels.get(names.LABEL_NODE) != name:
            raise BackendError(
                f"starting node {name}",
                f"a container named {container.name} exists but was not created by labctl for "
                f"lab {lab}",
                "rename or remove that container, or rename the lab",
            )
        return container

    def ensure_node(self, lab: str, name: str, node: Node) -> NodeHandle:
        container = self._find(lab, name)
        try:
            if container is None:
                container = self.client.containers.run(
                    self.resolve_image(node.image),
                    command=list(node.command or IDLE_COMMAND),
                    name=names.container_name(lab, name),
                    hostname=name,
                    labels={names.LABEL_LAB: lab, names.LABEL_NODE: name, names.LABEL_ROLE: "node"},
                    environment=dict(node.env),
                    network_mode="none",
                    # ethtool and tcpdump inside the node need these.
                    cap_add=["NET_ADMIN", "NET_RAW"],
                    init=True,
                    detach=True,
                )
            elif container.status != "running":
                container.start()
            container.reload()
        except docker.errors.ImageNotFound:
            raise BackendError(
                f"starting node {name}",
                f"image {node.image} not found",
                "build it (`labctl image build` for the default image) or "
                "`docker load` it; no registry is used",
            ) from None
        except DOCKER_ERRORS as error:
            raise BackendError(f"starting node {name}", _short(error)) from None
        return self._handle(name, container)

    def _handle(self, name: str, container: Container) -> NodeHandle:
        pid = int(container.attrs.get("State", {}).get("Pid") or 0)
        if pid <= 0:
            logs = container.logs(tail=5).decode(errors="replace").strip()
            raise BackendError(
                f"starting node {name}",
                "the container exited at once",
                f"its last output: {logs or '(none)'}",
            )
        if container.id is None:  # only a Container made without the daemon's attributes
            raise BackendError(f"starting node {name}", "Docker returned no container id")
        return NodeHandle(name=name, container_id=container.id, pid=pid)

    def get_node(self, lab: str, name: str) -> NodeHandle | None:
        container = self._find(lab, name)
        if container is None or container.status != "running":
            return None
        return self._handle(name, container)

    def remove_node(self, lab: str, name: str) -> None:
        container = self._find(lab, name)
        if container is None:
            return
        self._remove(container)

    def _remove(self, container: Container) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            return
        except DOCKER_ERRORS as error:
            raise BackendError(f"removing container {container.name}", _short(error)) from None

    def exec(
        self, handle: NodeHandle, argv: Sequence[str], *, detach: bool = False, timeout: float = 60
    ) -> ExecResult:
        action = f"running {argv[0] if argv else '(nothing)'} in node {handle.name}"
        try:
            container = self.client.containers.get(handle.container_id)
            if detach:
                container.exec_run(list(argv), detach=True)
                return ExecResult(0, "")
            api = self.client.api
            exec_id = api.exec_create(container.id, list(argv), stdout=True, stderr=True)["Id"]
            deadline = time.monotonic() + timeout
            try:
                stdout, stderr = _read_exec_stream(api.exec_start(exec_id, socket=True), deadline)
                code = _exit_code(api, exec_id, deadline)
            except TimeoutError:
                # The SDK has no exec timeout and Docker no exec kill: kill it on the host.
                left = self._kill_exec(api, exec_id, handle)
                raise BackendError(
                    action, f"no exit after {timeout:g} s; " + (left or "killed it")
                ) from None
            return ExecResult(
                code, stdout.decode(errors="replace"), stderr.decode(errors="replace")
            )
        except DOCKER_ERRORS as error:
            raise BackendError(action, _short(error)) from None

    def attach(self, handle: NodeHandle, argv: Sequence[str], *, tty: bool) -> int:
        action = f"running {argv[0] if argv else '(nothing)'} in node {handle.name}"
        try:
            api = self.client.api
            exec_id = api.exec_create(
                handle.container_id, list(argv), stdin=True, stdout=True, stderr=True, tty=tty
            )["Id"]
            sock = api.exec_start(exec_id, socket=True, tty=tty)

            def interrupt() -> None:
                # Without a terminal Ctrl-C reaches labctl, not the command: pass it on.
                self._signal_exec(api, exec_id, handle, signal.SIGINT)

            with _terminal(api, exec_id) if tty else contextlib.nullcontext():
                _pump(sock, tty, interrupt)
            return _exit_code(api, exec_id, time.monotonic() + KILL_GRACE)
        except TimeoutError:
            raise BackendError(action, "the command's exit code did not arrive") from None
        except DOCKER_ERRORS as error:
            raise BackendError(action, _short(error)) from None

    def _kill_exec(self, api: Any, exec_id: str, handle: NodeHandle) -> str | None:
        """SIGKILL a timed-out exec and its descendants; a reason if it could not be."""
        left = self._signal_exec(api, exec_id, handle, signal.SIGKILL, tree=True)
        if left is None:
            with contextlib.suppress(TimeoutError):
                _exit_code(api, exec_id, time.monotonic() + KILL_GRACE)
        return left

    @staticmethod
    def _signal_exec(
        api: Any, exec_id: str, handle: NodeHandle, sig: signal.Signals, tree: bool = False
    ) -> str | None:
        """Signal an exec's process (and its descendants when `tree`): Docker has no API
        for it. A reason when it could not be signalled."""
        pid = int(api.exec_inspect(exec_id).get("Pid") or 0)
        # The daemon's pid is a host pid: only signal it when it is this container's process.
        try:
            same = pid > 0 and os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(
                f"/proc/{handle.pid}/ns/pid"
            )
        except OSError:
            same = False
        if not same:
            return f"it may still run (its pid {pid} is not visible on this host)"
        for victim in [pid, *(_descendants(pid) if tree else [])]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, sig)
        return None

    def _lab_containers(self, lab: str | None) -> list[Container]:
        label = f"{names.LABEL_LAB}={lab}" if lab else names.LABEL_LAB
        try:
            return list(self.client.containers.list(all=True, filters={"label": label}))
        except DOCKER_ERRORS as error:
            raise BackendError("listing lab containers", _short(error)) from None

    def sweep(self, lab: str) -> list[Owned]:
        removed = []
        for container in self._lab_containers(lab):
            self._remove(container)
            removed.append(self._owned(container))
        return removed

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        return [self._owned(c) for c in self._lab_containers(lab)]

    @staticmethod
    def _owned(container: Container) -> Owned:
        labels = container.labels or {}
        return Owned(
            "container",
            container.name or container.short_id,
            labels.get(names.LABEL_LAB, "?"),
            {
                "node": labels.get(names.LABEL_NODE),
                "status": container.status,
                "id": container.short_id,
            },
        )


def _read_exec_stream(sock: Any, deadline: float) -> tuple[bytes, bytes]:
    """Read an exec's multiplexed output until EOF; TimeoutError once `deadline` passes.

    Each read waits at most until the deadline, not the client's per-call timeout."""
    raw = getattr(sock, "_sock", sock)  # unix/tcp: a SocketIO around the socket
    data = bytearray()
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            raw.settimeout(remaining)
            chunk = raw.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    return _demux(bytes(data))


def _frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Docker's stream framing (8-byte header: stream, 3 pad, big-endian length): the
    complete frames in `data`, and the bytes of an incomplete last one."""
    frames = []
    offset = 0
    while offset + 8 <= len(data):
        stream, length = struct.unpack(">BxxxL", data[offset : offset + 8])
        if offset + 8 + length > len(data):
            break
        frames.append((stream, data[offset + 8 : offset + 8 + length]))
        offset += 8 + length
    return frames, data[offset:]


def _demux(data: bytes) -> tuple[bytes, bytes]:
    """stdout and stderr of a finished exec's whole output."""
    frames, _rest = _frames(data)
    return (
        b"".join(chunk for stream, chunk in frames if stream != 2),
        b"".join(chunk for stream, chunk in frames if stream == 2),
    )


def _exit_code(api: Any, exec_id: str, deadline: float) -> int:
    # The stream can close a moment before the daemon records the exit.
    while True:
        info = api.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(0.01)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                children = [int(c) for c in task.read_text().split()]
                found.extend(children)
                pending.extend(children)
    return found


def _pump(sock: Any, tty: bool, on_interrupt: Callable[[], None]) -> None:
    """Copy our stdin to an attached exec and its output to our stdout/stderr until it ends."""
    raw = getattr(sock, "_sock", sock)
    raw.settimeout(None)
    stdin = sys.stdin.fileno()
    outputs = {1: sys.stdout.buffer, 2: sys.stderr.buffer}
    pending = b""
    reading_stdin = True
    try:
        while True:
            try:
                ready, _, _ = select.select([raw, stdin] if reading_stdin else [raw], [], [])
            except KeyboardInterrupt:
                on_interrupt()
                continue
            if stdin in ready:
                data = os.read(stdin, 65536)
                if data:
                    raw.sendall(data)
                else:
                    reading_stdin = False
                    raw.shutdown(socket.SHUT_WR)  # EOF on the command's stdin
            if raw in ready:
                chunk = raw.recv(65536)
                if not chunk:
                    return
                if tty:  # one raw stream, no framing
                    outputs[1].write(chunk)
                    outputs[1].flush()
                    continue
                frames, pending = _frames(pending + chunk)
                for stream, payload in frames:
                    out = outputs.get(stream, outputs[1])
                    out.write(payload)
                    out.flush()
    finally:
        sock.close()


@contextlib.contextmanager
def _terminal(api: Any, exec_id: str) -> Iterator[None]:
    """Our terminal in raw mode (keys go to the node's shell), its size kept in sync."""
    import termios
    import tty as tty_mode

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)

    def resize(*_: object) -> None:
        size = os.get_terminal_size(sys.stdout.fileno())
        with contextlib.suppress(docker.errors.APIError):
            api.exec_resize(exec_id, height=size.lines, width=size.columns)

    previous = signal.signal(signal.SIGWINCH, resize)
    try:
        tty_mode.setraw(fd, termios.TCSADRAIN)  # keep what was typed ahead
        resize()
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, previous)
