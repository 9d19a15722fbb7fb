"""The Vagrantfile is valid for Vagrant (Debian's package, installed by provision.sh)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_vagrantfile_validates() -> None:
    if shutil.which("vagrant") is None:
        pytest.skip("vagrant is not installed (scripts/provision.sh installs it)")
    # Provider plugins (libvirt, VirtualBox) are not installed here: validate the rest.
    done = subprocess.run(
        ["vagrant", "validate", "--ignore-provider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully" in done.stdout


def test_vagrant_provisions_with_the_shared_script_and_runs_the_matrix() -> None:
    text = (ROOT / "Vagrantfile").read_text()
    assert "bash scripts/provision.sh" in text
    assert "labctl matrix labs/veth-checksum" in text
    assert "lv.cpus = 2" in text and "vb.cpus = 2" in text
