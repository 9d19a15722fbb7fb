"""Fixtures of the OVSDB tests: a private OVS per test (see private_ovs.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from labctl.backends.ovs.daemons import VSWITCHD
from tests.ovsdb.private_ovs import PrivateOvs
from tests.skips import skip_or_fail


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A tmp dir with a short path: unix socket paths are limited to 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="lc-ovs-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def private_ovs(short_tmp: Path) -> Iterator[PrivateOvs]:
    if not shutil.which("ovsdb-server") or not VSWITCHD.exists():
        skip_or_fail("Open vSwitch is not installed (apt-get install openvswitch-switch)")
    ovs = PrivateOvs(short_tmp / "ovs")
    ovs.directory.mkdir()
    try:
        ovs.start()
        yield ovs
    finally:
        ovs.stop()
