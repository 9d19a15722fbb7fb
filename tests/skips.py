"""The one way a test skips: a skip outside CI, a failure under CI=true.

tests/conftest.py's report hook applies the same policy to any plain
pytest.skip; this helper lets a fixture say it directly, with the reason.
"""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip, except under CI=true: there a test that cannot run fails with the reason."""
    if in_ci():
        pytest.fail(f"unexpected skip under CI: {reason}")
    pytest.skip(reason)
