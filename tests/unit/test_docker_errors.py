"""A Docker daemon too slow to answer (requests' ReadTimeout, as under TCG with several
cells starting at once) is a labctl BackendError naming the action, not a traceback."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import requests.exceptions

from labctl.backends.docker_runtime import DockerRuntime
from labctl.errors import BackendError

pytestmark = pytest.mark.unit


class SlowImages:
    def get(self, name: str) -> Any:
        raise requests.exceptions.ReadTimeout("Read timed out. (read timeout=30)")


def test_a_read_timeout_is_a_backend_error_naming_the_action() -> None:
    runtime = DockerRuntime(lambda: SimpleNamespace(images=SlowImages()))  # type: ignore[arg-type, return-value]
    with pytest.raises(BackendError, match="looking up image labctl-node") as raised:
        runtime.image_exists("labctl-node")
    assert "timed out" in str(raised.value)
