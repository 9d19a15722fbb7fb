"""Platform definitions, image recipes and which cells go where (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.cli import PLATFORM_NAMES
from labctl.core import platforms
from labctl.core.matrix import cells, load_lab
from labctl.core.model import SwitchKind
from labctl.errors import ConfigError, UsageError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
FILES = {"scripts/a.sh": b"one", "scripts/b": b"two"}
ALL = list(SwitchKind)


def test_cli_lists_every_platform() -> None:
    assert list(platforms.PLATFORMS) == PLATFORM_NAMES


def test_definitions_name_their_debian_release_and_kernel() -> None:
    p = platforms.PLATFORMS
    assert p["host"].is_host
    assert p["debian-12"].builder_args() == ["--suite", "bookworm"]
    assert p["debian-12-kernel-6.12"].builder_args() == [
        "--suite",
        "bookworm",
        "--kernel-suite",
        "bookworm-backports",
    ]
    assert p["debian-13"].builder_args() == ["--suite", "trixie"]
    with pytest.raises(ValueError):
        p["host"].builder_args()


def test_recipe_digest_changes_with_the_definition_and_every_file() -> None:
    d12 = platforms.PLATFORMS["debian-12"]
    base = platforms.recipe_digest(d12, FILES)
    assert len(base) == 12 and base == platforms.recipe_digest(d12, dict(reversed(FILES.items())))
    assert platforms.recipe_digest(platforms.PLATFORMS["debian-12-kernel-6.12"], FILES) != base
    assert platforms.recipe_digest(d12, {**FILES, "scripts/b": b"changed"}) != base
    assert platforms.recipe_digest(d12, {**FILES, "scripts/c": b""}) != base
    # the same bytes under another path are another recipe
    assert platforms.recipe_digest(d12, {"scripts/x": b"one", "scripts/b": b"two"}) != base
    with pytest.raises(ValueError):
        platforms.recipe_digest(platforms.PLATFORMS["host"], FILES)


def test_image_dirs_and_the_stale_ones(tmp_path: Path) -> None:
    d12 = platforms.PLATFORMS["debian-12"]
    current = platforms.image_dir(d12, "0123456789ab", tmp_path)
    assert current == tmp_path / "platforms" / "debian-12-0123456789ab"
    present = [
        current,
        current.with_name("debian-12-ffffffffffff"),
        current.with_name("debian-12-kernel-6.12-ffffffffffff"),  # another platform
        current.with_name("debian-12-ffffffffffff.build.log"),
    ]
    assert platforms.stale_image_dirs(d12, current, present) == [
        current.with_name("debian-12-ffffffffffff")
    ]


def test_choose_names_unknown_and_repeated_platforms() -> None:
    assert [p.name for p in platforms.choose(None, None)] == ["host"]
    assert [p.name for p in platforms.choose(None, ["debian-13"])] == ["debian-13"]
    assert [p.name for p in platforms.choose(["debian-12"], ["debian-13"])] == ["debian-12"]
    with pytest.raises(UsageError, match="--platform: unknown platform 'debian-11'; known: host"):
        platforms.choose(["debian-11"], None)
    with pytest.raises(UsageError, match="given twice"):
        platforms.choose(["debian-12", "debian-12"], None)


def test_plan_moves_ovs_kernel_to_a_vm_only_when_the_host_lacks_the_module() -> None:
    host = [platforms.PLATFORMS["host"]]
    both = [*host, platforms.PLATFORMS["debian-13"]]
    assert platforms.plan_cells(host, ALL, True, "debian-12") == {"host": ALL}
    assert platforms.plan_cells(host, ALL, False, None) == {"host": ALL}
    moved = platforms.plan_cells(host, ALL, False, "debian-12")
    assert SwitchKind.OVS_KERNEL not in moved["host"]
    assert moved["debian-12"] == [SwitchKind.OVS_KERNEL]
    # the VM already runs every switch kind: nothing twice
    together = platforms.plan_cells(both, ALL, False, "debian-13")
    assert together["debian-13"] == ALL
    assert SwitchKind.OVS_KERNEL not in together["host"]
    # only ovs-kernel on the host: the host runs nothing
    assert platforms.plan_cells(host, [SwitchKind.OVS_KERNEL], False, "debian-12") == {
        "debian-12": [SwitchKind.OVS_KERNEL]
    }
    with pytest.raises(UsageError, match="not host"):
        platforms.plan_cells(host, ALL, False, "host")


def write_lab(tmp_path: Path, extra: str) -> Path:
    seed = ROOT / "topologies" / "seed.yaml"
    (tmp_path / "lab.yaml").write_text(
        f"name: x\ntopology: {seed}\nmatrix:\n  switches: [linux-bridge, ovs-dpdk]\n{extra}"
    )
    return tmp_path


def test_expectations_per_platform(tmp_path: Path) -> None:
    lab = load_lab(
        write_lab(
            tmp_path,
            "  platforms: [host, debian-13]\n"
            "expectations:\n"
            "  - {when: {switch: ovs-dpdk, platform: debian-13}, http: pass, findings: []}\n"
            "  - {when: {switch: ovs-dpdk}, http: fail}\n"
            "  - {when: {}, http: pass}\n",
        )
    )
    assert lab.spec.matrix.platforms == ["host", "debian-13"]

    def http(platform: str) -> dict[str, str]:
        return {c.key: c.expectation.http for c in cells(lab, platform=platform)}  # type: ignore[union-attr]

    assert http("host") == {
        "linux-bridge-on": "pass",
        "linux-bridge-off": "pass",
        "ovs-dpdk-on": "fail",
        "ovs-dpdk-off": "fail",
    }
    assert http("debian-13")["ovs-dpdk-on"] == "pass"


def test_unknown_platforms_in_lab_yaml_have_positions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_lab(
            write_lab(
                tmp_path,
                "  platforms: [host, debian-9]\n"
                "expectations:\n  - {when: {platform: sid}, http: pass}\n",
            )
        )
    text = str(caught.value)
    assert "lab.yaml:5:21: matrix.platforms[1]:" in text and "unknown platform 'debian-9'" in text
    assert "expectations[0].when.platform: unknown platform 'sid'" in text


def test_vms_side_by_side_need_cores_and_memory() -> None:
    assert platforms.parallel_vms(2, 24 * 1024, 3) == 1  # this 2-core host: one at a time
    assert platforms.parallel_vms(8, 24 * 1024, 3) == 3
    assert platforms.parallel_vms(8, 24 * 1024, 2) == 2
    assert platforms.parallel_vms(16, 8 * 1024, 4) == 1  # memory for one VM beside the host
    assert platforms.parallel_vms(1, 1024, 2) == 1


def test_ovs_kernel_vm_default_lab_and_options_in_that_order() -> None:
    default = platforms.ovs_kernel_vm(None, False, None)
    assert default == platforms.OvsKernelVm("debian-12", "the default on such a host")
    assert platforms.ovs_kernel_vm(None, False, "debian-13").platform == "debian-13"
    assert platforms.ovs_kernel_vm(None, False, False).platform is None
    assert platforms.ovs_kernel_vm("debian-13", False, False).platform == "debian-13"
    skipped = platforms.ovs_kernel_vm(None, True, "debian-13")
    assert skipped == platforms.OvsKernelVm(None, "--no-ovs-kernel-vm")
    with pytest.raises(UsageError, match="give one of them"):
        platforms.ovs_kernel_vm("debian-12", True, None)
    with pytest.raises(UsageError, match="--ovs-kernel-vm: give a VM platform, not host"):
        platforms.ovs_kernel_vm("host", False, None)
    with pytest.raises(UsageError, match="unknown platform 'sid'"):
        platforms.ovs_kernel_vm("sid", False, None)


def test_only_a_host_without_the_module_and_with_ovs_kernel_cells_needs_a_vm() -> None:
    host, d13 = platforms.PLATFORMS["host"], platforms.PLATFORMS["debian-13"]
    assert platforms.needs_ovs_kernel_vm([host], ALL, False)
    assert not platforms.needs_ovs_kernel_vm([host], ALL, True)
    assert not platforms.needs_ovs_kernel_vm([host], [SwitchKind.LINUX_BRIDGE], False)
    assert not platforms.needs_ovs_kernel_vm([d13], ALL, False)


def test_the_note_says_where_the_ovs_kernel_cells_went_and_why() -> None:
    ran = platforms.ovs_kernel_note(platforms.ovs_kernel_vm(None, False, None))
    assert "no openvswitch kernel module" in ran
    assert "ran in a debian-12 VM (the default on such a host" in ran
    assert "--no-ovs-kernel-vm skips them" in ran
    skipped = platforms.ovs_kernel_note(platforms.ovs_kernel_vm(None, True, None))
    assert "are skipped (--no-ovs-kernel-vm)" in skipped


def test_lab_yaml_names_the_ovs_kernel_vm_or_false(tmp_path: Path) -> None:
    lab = load_lab(write_lab(tmp_path, "  ovs_kernel_vm: debian-13\n"))
    assert lab.spec.matrix.ovs_kernel_vm == "debian-13"
    lab = load_lab(write_lab(tmp_path, "  ovs_kernel_vm: false\n"))
    assert lab.spec.matrix.ovs_kernel_vm is False
    with pytest.raises(ConfigError) as caught:
        load_lab(write_lab(tmp_path, "  ovs_kernel_vm: host\n"))
    assert "lab.yaml:5:3: matrix.ovs_kernel_vm: 'host' is not a platform VM" in str(caught.value)
