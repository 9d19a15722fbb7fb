"""A plain wheel install (`pip install .`, not editable) works as the README says.

Builds the wheel from this checkout, installs it into a fresh virtualenv (its
dependencies from the package index, as a user gets them) and runs labctl from
an empty directory: the files the messages name must be found there.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import labctl

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str | Path], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, timeout=600, cwd=cwd
    )
    if check:
        assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, ROOT], cwd=out)
    (built,) = out.glob("labctl-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", venv], cwd=venv)
    run([venv / "bin" / "pip", "install", "-q", wheel], cwd=venv)
    return venv / "bin"


def test_wheel_carries_examples_license_and_one_version(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        license_text = archive.read(info.replace("METADATA", "licenses/LICENSE")).decode()
    assert {
        "labctl/examples/topologies/seed.yaml",
        "labctl/examples/labs/veth-checksum/lab.yaml",
        # The HTML report reads these at run time.
        "labctl/reports/html/style.css",
        "labctl/reports/html/templates/page.html.j2",
        "labctl/reports/html/templates/cell.html.j2",
    } <= names
    assert "tasks.py" not in names
    assert f"\nVersion: {labctl.__version__}\n" in metadata
    assert "\nLicense-Expression: Apache-2.0\n" in metadata
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    # invoke only for the tasks of a clone, never for the command.
    invoke = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: invoke")]
    assert invoke and all('extra == "tasks"' in line for line in invoke)


def test_installed_labctl_finds_the_files_its_messages_name(
    installed: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    state = tmp_path / "state"
    # With no lab up, `run` says which file to start from; that file must work here.
    hint = subprocess.run(
        [str(installed / "labctl"), "run"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=empty,
        env={"PATH": "/usr/bin:/bin", "LABCTL_STATE_DIR": str(state)},
    )
    assert hint.returncode == 2
    named = re.search(r"`labctl up (\S+)`", hint.stderr)
    assert named, hint.stderr
    ok = run([installed / "labctl", "validate", named.group(1), "--json"], cwd=empty)
    assert json.loads(ok.stdout)["lab"] == "seed"
    # The lab the README and the matrix help name loads too, with the topology it names.
    lab = run(
        [
            installed / "python",
            "-c",
            "from labctl.core.matrix import load_lab; "
            "print(load_lab('labs/veth-checksum').topology.name)",
        ],
        cwd=empty,
    )
    assert lab.stdout.strip() == "seed"
    # `labctl init` writes copies to edit, in the layout the lab expects.
    run([installed / "labctl", "init", "mine"], cwd=empty)
    run([installed / "labctl", "validate", "mine/topologies/seed.yaml"], cwd=empty)
    assert (empty / "mine" / "labs" / "veth-checksum" / "lab.yaml").is_file()
