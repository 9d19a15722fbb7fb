"""The exception hierarchy's own robustness."""

from __future__ import annotations

import pytest

from labctl.errors import BackendError

pytestmark = pytest.mark.unit


def test_a_backend_error_survives_a_cause_whose_message_cannot_be_read() -> None:
    """ovsdbapp's OvsdbConnectionUnavailable can fail in __str__; wrapping it must not
    raise a second error (it did, in the middle of a matrix cell's teardown)."""

    class Unreadable(Exception):
        def __str__(self) -> str:
            raise AttributeError("msg")

    error = BackendError("connecting to ovsdb-server", Unreadable())
    assert str(error) == "connecting to ovsdb-server: Unreadable (its message could not be read)"
