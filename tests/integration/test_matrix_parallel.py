"""The veth-checksum matrix for real: cells overlap in time, and two shards merged give
what one unsharded run gives."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import ROOT, labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host", "state_dir")]


def private_lab(tmp_path: Path) -> Path:
    """labs/veth-checksum under a name of its own, so its cells' labs collide with nobody."""
    data = yaml.safe_load((ROOT / "labs" / "veth-checksum" / "lab.yaml").read_text())
    data["name"] = f"it-{uuid.uuid4().hex[:6]}"
    data["topology"] = str(ROOT / "topologies" / "seed.yaml")
    path = tmp_path / "lab" / "lab.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def statuses(result: dict) -> list[tuple[str, str, str, str | None]]:
    return [
        (c["switch"], c["offload"], c["status"], (c["observed"] or {}).get("http"))
        for c in result["cells"]
    ]


def matrix(lab: Path, runs: Path, *extra: str) -> dict:
    # The host's cells only (a shard keeps to its machine too): no VM for the ovs-kernel
    # cells of a host without the openvswitch module, so every run has the same cells.
    done = labctl(
        "matrix",
        str(lab),
        "--runs-dir",
        str(runs),
        "--json",
        "--no-ovs-kernel-vm",
        *extra,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def test_cells_overlap_and_merged_shards_equal_one_run(tmp_path: Path) -> None:
    before = HostSnapshot.take()
    lab = private_lab(tmp_path)
    whole = matrix(lab, tmp_path / "whole", "--workers", "2")
    # Cells ran at the same time: some pair of cells' windows overlap.
    windows = [(c["window"][0], c["window"][1]) for c in whole["cells"] if c["status"] != "skipped"]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(windows) for b in windows[i + 1 :])
    # The OVS userspace and DPDK cells never used the switch at the same time (different
    # vswitchd builds); a cell may start its nodes while the other build is still in use.
    by_key = {f"{c['switch']}-{c['offload']}": c for c in whole["cells"]}
    for user in ("ovs-userspace-on", "ovs-userspace-off"):
        for dpdk in ("ovs-dpdk-on", "ovs-dpdk-off"):
            a, b = by_key[user]["switch_window"], by_key[dpdk]["switch_window"]
            assert not (a[0] < b[1] and b[0] < a[1]), (user, dpdk)
    # ... and the runner said why.
    assert any("DPDK build" in rule for rule in whole["schedule"]["rules"])
    # Each cell where TCP cannot connect waited out one timeout, not one per request.
    for key in ("ovs-userspace-on", "ovs-dpdk-on"):
        observed = by_key[key]["observed"]
        assert observed["http"] == "fail" and observed["failed"] == 5
        assert by_key[key]["seconds"] < 3 * 5
    serial = matrix(lab, tmp_path / "serial", "--serial")
    assert statuses(serial) == statuses(whole)

    shard_dirs = []
    for k in (1, 2):
        shard = matrix(lab, tmp_path / f"shard{k}", "--shard", f"{k}/2")
        assert shard["shard"] == {"index": k, "count": 2} and shard["cells"]
        shard_dirs.append(shard["report_dir"])
    done = labctl(
        "report", "merge", *shard_dirs, "-o", str(tmp_path / "merged"), "--json", check=False
    )
    assert done.returncode in (0, 1), done.stderr
    merged = json.loads(done.stdout)
    assert statuses(merged) == statuses(whole)
    assert merged["summary"] == whole["summary"]
    assert {c["host"] for c in merged["cells"]} == {whole["host"]["hostname"]}
    for name in ("report.json", "report.md", "junit.xml", "report.html"):
        assert (tmp_path / "merged" / name).is_file()
    assert HostSnapshot.take().added_since(before) == {}
