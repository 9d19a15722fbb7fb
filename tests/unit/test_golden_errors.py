"""Broken topologies next to the exact error text they must produce.

Regenerate the .expected files after a deliberate message change with
LABCTL_UPDATE_GOLDEN=1 pytest tests/unit/test_golden_errors.py, and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.core.loader import load_topology
from labctl.core.matrix import load_lab
from labctl.errors import ConfigError

pytestmark = pytest.mark.unit
GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_broken_topology_reports_exact_errors(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN)
    with pytest.raises(ConfigError) as caught:
        load_topology(name)
    actual = "\n".join(caught.value.lines()) + "\n"
    expected_file = GOLDEN / (name.removesuffix(".yaml") + ".expected")
    if os.environ.get("LABCTL_UPDATE_GOLDEN") == "1":
        expected_file.write_text(actual)
    assert actual == expected_file.read_text()


def test_there_are_golden_cases() -> None:
    assert CASES, "tests/unit/golden/*.yaml"


def test_every_golden_case_has_expected_text() -> None:
    for name in CASES:
        assert (GOLDEN / (name.removesuffix(".yaml") + ".expected")).is_file(), name


def test_every_problem_has_file_line_column() -> None:
    for name in CASES:
        with pytest.raises(ConfigError) as caught:
            load_topology(GOLDEN / name)
        assert caught.value.problems, name
        for problem in caught.value.problems:
            assert problem.line >= 1 and problem.column >= 1
            assert problem.file.endswith(name)


LAB_CASES = sorted(p.parent.name for p in (GOLDEN / "labs").glob("*/lab.yaml"))


def test_there_are_broken_lab_cases() -> None:
    assert LAB_CASES, "tests/unit/golden/labs/*/lab.yaml"


@pytest.mark.parametrize("name", LAB_CASES)
def test_broken_lab_reports_exact_errors(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    case = GOLDEN / "labs" / name
    monkeypatch.chdir(case)
    with pytest.raises(ConfigError) as caught:
        load_lab("lab.yaml")
    actual = "\n".join(caught.value.lines()) + "\n"
    expected_file = case / "expected"
    if os.environ.get("LABCTL_UPDATE_GOLDEN") == "1":
        expected_file.write_text(actual)
    assert actual == expected_file.read_text()
