"""Where `labctl matrix` runs the ovs-kernel cells of a host without the openvswitch
module: in a debian-12 VM by default, in the lab's or the option's platform, or skipped
with --no-ovs-kernel-vm; a matrix without ovs-kernel cells boots no VM. The runners are
replaced by recorders: which one gets which cells is the decision under test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from labctl import cli, platform_matrix
from labctl.core import platforms
from labctl.matrix import MatrixRunner

pytestmark = pytest.mark.unit

LAB = Path(__file__).resolve().parents[2] / "labs" / "veth-checksum"


class Routed(Exception):
    def __init__(self, path: str, **details: Any) -> None:
        super().__init__(path)
        self.path = path
        self.details = details


@pytest.fixture
def host_without_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(platform_matrix.PLATFORM_ENV, raising=False)
    monkeypatch.setattr(platform_matrix, "host_has_ovs_module", lambda: False)

    def on_host(self: MatrixRunner, cells: list[Any], **_: Any) -> None:
        raise Routed("host", switches={c.switch.value for c in cells})

    def over_platforms(*args: Any, **_: Any) -> None:
        chosen, choice = args[3], args[4]
        raise Routed("platforms", platforms=[p.name for p in chosen], vm=choice)

    monkeypatch.setattr(MatrixRunner, "run", on_host)
    monkeypatch.setattr(platform_matrix, "run", over_platforms)


def route(*argv: str) -> Routed:
    with pytest.raises(Routed) as caught:
        cli.main(["matrix", *argv], warm=False)
    return caught.value


@pytest.mark.usefixtures("host_without_module")
def test_ovs_kernel_cells_go_to_a_debian_12_vm_by_default() -> None:
    routed = route(str(LAB))
    assert routed.path == "platforms"
    assert routed.details == {
        "platforms": ["host"],
        "vm": platforms.OvsKernelVm("debian-12", "the default on such a host"),
    }
    routed = route(str(LAB), "--ovs-kernel-vm", "debian-13")
    assert routed.details["vm"].platform == "debian-13"


@pytest.mark.usefixtures("host_without_module")
def test_a_matrix_without_ovs_kernel_cells_boots_nothing() -> None:
    routed = route(str(LAB), "--switch", "linux-bridge", "--switch", "ovs-dpdk")
    assert routed.path == "host" and routed.details["switches"] == {"linux-bridge", "ovs-dpdk"}


@pytest.mark.usefixtures("host_without_module")
def test_no_ovs_kernel_vm_keeps_the_skip_on_the_host() -> None:
    routed = route(str(LAB), "--no-ovs-kernel-vm")
    assert routed.path == "host" and "ovs-kernel" in routed.details["switches"]
    # a shard keeps to its machine: the default does not boot a VM there
    routed = route(str(LAB), "--shard", "1/1")
    assert routed.path == "host" and "ovs-kernel" in routed.details["switches"]


@pytest.mark.usefixtures("host_without_module")
def test_lab_yaml_chooses_the_vm_or_the_skip(tmp_path: Path) -> None:
    text = (LAB / "lab.yaml").read_text()
    topology = (LAB / ".." / ".." / "topologies" / "seed.yaml").resolve()
    text = text.replace("topology: ../../topologies/seed.yaml", f"topology: {topology}")
    lab = tmp_path / "lab.yaml"
    lab.write_text(text.replace("matrix:\n", "matrix:\n  ovs_kernel_vm: false\n", 1))
    assert route(str(lab)).path == "host"
    assert route(str(lab), "--ovs-kernel-vm", "debian-12").path == "platforms"
    lab.write_text(text.replace("matrix:\n", "matrix:\n  ovs_kernel_vm: debian-13\n", 1))
    vm = route(str(lab)).details["vm"]
    assert vm == platforms.OvsKernelVm("debian-13", "matrix.ovs_kernel_vm: debian-13 in lab.yaml")


def test_a_host_with_the_module_runs_its_ovs_kernel_cells_itself(
    monkeypatch: pytest.MonkeyPatch, host_without_module: None
) -> None:
    monkeypatch.setattr(platform_matrix, "host_has_ovs_module", lambda: True)
    routed = route(str(LAB))
    assert routed.path == "host" and "ovs-kernel" in routed.details["switches"]


def cell_record(cell: Any, lab: Any) -> dict[str, Any]:
    return {
        "switch": cell.switch.value,
        "offload": cell.offload_name,
        "lab_name": cell.lab_name(lab.name),
        "status": "passed",
    }


def test_the_vm_runs_the_handed_over_cells_and_the_report_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from labctl.core.matrix import cells, load_lab

    lab = load_lab(LAB)
    ran: dict[str, list[str]] = {}

    class HostRunner:
        def run(self, host_cells: list[Any], workers: int) -> Any:
            ran["host"] = sorted({c.switch.value for c in host_cells})
            data = {
                "lab": lab.name,
                "report_dir": str(tmp_path),
                "offloads": {},
                "host": {"kernel": "6.18"},
                "cells": [cell_record(c, lab) for c in host_cells],
            }
            return type("Result", (), {"to_json": lambda self: data})()

    def in_vm(lab_: Any, platform: Any, switches: list[Any], *_: Any) -> dict[str, Any]:
        ran[platform.name] = [s.value for s in switches]
        wanted = [c for c in cells(lab, platform=platform.name) if c.switch in switches]
        return {"name": platform.name, "cells": [cell_record(c, lab) for c in wanted]}

    monkeypatch.setattr(platform_matrix, "run_on_platform", in_vm)
    result = platform_matrix.run(
        lab,
        HostRunner(),  # type: ignore[arg-type]
        lambda platform: cells(lab, platform=platform),
        [platforms.PLATFORMS["host"]],
        platforms.ovs_kernel_vm(None, False, None),
        1,
        None,
        say=lambda _line: None,
        has_module=False,
    )
    assert ran == {
        "host": ["linux-bridge", "ovs-dpdk", "ovs-userspace"],
        "debian-12": ["ovs-kernel"],
    }
    assert {c.platform for c in result.cells if c.switch == "ovs-kernel"} == {"debian-12"}
    assert len(result.cells) == 12 and not any(c.status == "skipped" for c in result.cells)
    assert result.platforms["host"]["ovs_kernel_vm"] == "debian-12"
    assert result.platform_notes == [
        platforms.ovs_kernel_note(platforms.ovs_kernel_vm(None, False, None))
    ]
