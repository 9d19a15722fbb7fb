"""The capture's pre-exec hook: prctl is resolved in the parent, not in the forked child."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

import pytest

from labctl.backends.capture import die_with_parent_hook

pytestmark = pytest.mark.unit

# The child reads its parent-death signal back (PR_GET_PDEATHSIG = 2).
READ_PDEATHSIG = (
    "import ctypes; v = ctypes.c_int(-1); "
    "ctypes.CDLL(None).prctl(2, ctypes.byref(v)); print(v.value)"
)


def test_hook_sets_pdeathsig_without_loading_a_library_in_the_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hook = die_with_parent_hook()

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a library was loaded between fork and exec")

    # The forked child inherits this: a CDLL call in the hook would fail the spawn.
    monkeypatch.setattr(ctypes, "CDLL", no_loading)
    out = subprocess.run(
        [sys.executable, "-c", READ_PDEATHSIG],
        preexec_fn=hook,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert int(out.stdout) == signal.SIGTERM
