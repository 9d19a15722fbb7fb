"""The KVM probe boots its firmware for real: under TCG it must reach long mode (the probe
works), and under KVM its verdict is the one `labctl doctor` prints."""

from __future__ import annotations

import json

import pytest

from labctl.backends import kvm_probe
from tests.integration.lab_fixtures import labctl

pytestmark = pytest.mark.integration


def test_probe_reaches_long_mode_under_tcg() -> None:
    # qemu comes from scripts/provision.sh --vm, which .ci/run runs.
    result = kvm_probe.probe("tcg")
    assert result.works is True, result.detail


def test_doctor_reports_the_probe_verdict() -> None:
    expected = kvm_probe.probe("kvm")
    report = json.loads(labctl("doctor", "--json", check=False).stdout)
    (check,) = [c for c in report["checks"] if c["name"] == "kvm"]
    assert check["ok"] is bool(expected.works)
    assert check["required"] is False
