"""Docker's environment decides where labctl connects (as the docker CLI and docker.from_env)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.backends.docker_runtime import _demux, connect
from labctl.errors import PrerequisiteError

pytestmark = pytest.mark.unit


def test_docker_host_is_where_it_connects(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-daemon.sock"
    with pytest.raises(PrerequisiteError) as raised:
        connect(timeout=2, environment={"DOCKER_HOST": url})
    text = "\n".join(raised.value.lines())
    assert f"the Docker daemon is not reachable at {url}" in text
    assert "point DOCKER_HOST at it" in text


def test_docker_tls_settings_are_read(tmp_path: Path) -> None:
    env = {
        "DOCKER_HOST": "tcp://127.0.0.1:9",
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_CERT_PATH": str(tmp_path / "no-certs"),
    }
    with pytest.raises(PrerequisiteError) as raised:
        connect(timeout=2, environment=env)
    # With TLS verification asked for, a missing client certificate is the problem.
    assert "certificate" in "\n".join(raised.value.lines())


def test_exec_stream_frames_are_split_by_stream() -> None:
    frames = b"\x01\x00\x00\x00\x00\x00\x00\x03out\x02\x00\x00\x00\x00\x00\x00\x02er"
    frames += b"\x01\x00\x00\x00\x00\x00\x00\x01!"
    assert _demux(frames) == (b"out!", b"er")
