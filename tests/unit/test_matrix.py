from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core.matrix import Observation, cells, compare, load_lab
from labctl.core.model import SwitchKind
from labctl.errors import ConfigError, UsageError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "labs" / "veth-checksum"


def obs(ok: bool, findings: tuple[str, ...] = ()) -> Observation:
    return Observation(
        http="pass" if ok else "fail",
        succeeded=5 if ok else 0,
        failed=0 if ok else 5,
        findings=findings,
    )


def test_veth_checksum_lab_has_the_seed_expectations() -> None:
    lab = load_lab(LAB)
    table = {(c.switch.value, c.offload_name): c for c in cells(lab)}
    assert len(table) == 12  # 4 switch kinds x on, off, server-only
    assert table[("ovs-dpdk", "on")].expectation.http == "fail"  # type: ignore[union-attr]
    assert table[("ovs-userspace", "off")].expectation.http == "pass"  # type: ignore[union-attr]
    assert table[("linux-bridge", "on")].expectation.findings == []  # type: ignore[union-attr]
    assert table[("ovs-kernel", "on")].lab_name(lab.name) == "veth-checksum-ok-on"


def test_every_lab_in_the_repo_loads() -> None:
    paths = sorted((ROOT / "labs").glob("*/lab.yaml"))
    assert paths, f"no labs found under {ROOT / 'labs'}"
    for path in paths:
        load_lab(path)


def test_cell_topology_overrides_switch_offload_and_name() -> None:
    lab = load_lab(LAB)
    cell = next(c for c in cells(lab, ["ovs-dpdk"], ["off"]))
    topology = cell.topology(lab.topology, lab.name)
    assert topology.name == "veth-checksum-od-off"
    assert topology.switch is not None and topology.switch.kind is SwitchKind.OVS_DPDK
    assert topology.nodes["client"].effective_offload("eth0").as_dict() == {
        "tx": False,
        "rx": False,
    }


def test_narrowing_and_unknown_names() -> None:
    lab = load_lab(LAB)
    assert [c.key for c in cells(lab, ["linux-bridge"], None)] == [
        "linux-bridge-on",
        "linux-bridge-off",
        "linux-bridge-server-only",
    ]
    with pytest.raises(UsageError, match="--offload maybe"):
        cells(lab, None, ["maybe"])


def test_compare_reports_how_a_cell_differs() -> None:
    lab = load_lab(LAB)
    bug = next(c for c in cells(lab, ["ovs-userspace"], ["on"])).expectation
    assert compare(bug, obs(False, ("bad-checksum", "syn-unanswered"))) is None
    assert compare(bug, obs(True)) == (
        "expected HTTP to fail, it did pass (5/5); expected "
        "finding bad-checksum, syn-unanswered, not reported"
    )
    clean = next(c for c in cells(lab, ["linux-bridge"], ["on"])).expectation
    assert compare(clean, obs(True, ("lost-between-taps",))) == (
        "expected no fault, found lost-between-taps"
    )
    assert compare(None, obs(False)) is None


def test_lab_file_errors_have_positions(tmp_path: Path) -> None:
    (tmp_path / "lab.yaml").write_text(
        "name: x\ntopology: missing.yaml\nmatrix:\n  offload:\n    on: {tx: true}\n"
        "expectations:\n  - {when: {offload: nope}, http: maybe}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_lab(tmp_path)
    text = str(caught.value)
    assert "lab.yaml:5:5: matrix.offload: keys must be strings, got True (YAML reads" in text
    assert "expectations[0].http: 'maybe' is not one of 'pass' or 'fail'" in text


def test_server_only_column_targets_nodes() -> None:
    lab = load_lab(LAB)
    by_switch = {c.switch.value: c for c in cells(lab, None, ["server-only"])}
    assert set(by_switch) == {"linux-bridge", "ovs-kernel", "ovs-userspace", "ovs-dpdk"}
    cell = by_switch["ovs-userspace"]
    assert cell.offload.as_dict() == {
        "client": {"tx": False, "rx": False},
        "server": {"tx": True, "rx": True},
    }
    topology = cell.topology(lab.topology, lab.name)
    assert topology.name == "veth-checksum-ou-server-only"
    assert topology.nodes["client"].effective_offload("eth0").as_dict() == {
        "tx": False,
        "rx": False,
    }
    assert topology.nodes["server"].effective_offload("eth0").as_dict() == {"tx": True, "rx": True}
    expectation = cell.expectation
    assert expectation is not None and expectation.findings == ["bad-checksum"]
    assert expectation.note is not None and "seed's observation" in expectation.note
    assert by_switch["linux-bridge"].expectation.http == "pass"  # type: ignore[union-attr]


def write_lab(tmp_path: Path, offload: str) -> Path:
    seed = ROOT / "topologies" / "seed.yaml"
    (tmp_path / "lab.yaml").write_text(
        f"name: x\ntopology: {seed}\nmatrix:\n  switches: [linux-bridge]\n  offload:\n{offload}"
    )
    return tmp_path


def test_offload_levels_every_node_then_node_then_interface(tmp_path: Path) -> None:
    lab = load_lab(
        write_lab(
            tmp_path,
            '    "mixed": {tx: off, gro: off, server: {tx: on}, "server:eth0": {gro: on}}\n'
            '    "plain": {tso: off}\n',
        )
    )
    mixed, plain = cells(lab)
    topology = mixed.topology(lab.topology, lab.name)
    assert topology.nodes["client"].effective_offload("eth0").as_dict() == {
        "tx": False,
        "gro": False,
    }
    assert topology.nodes["server"].effective_offload("eth0").as_dict() == {
        "tx": True,
        "gro": True,
    }
    assert mixed.offload.as_dict() == {
        "tx": False,
        "gro": False,
        "server": {"tx": True},
        "server:eth0": {"gro": True},
    }
    # Today's form: features for every node.
    plain_topology = plain.topology(lab.topology, lab.name)
    for node in ("client", "server"):
        assert plain_topology.nodes[node].effective_offload("eth0").as_dict() == {"tso": False}


def test_long_offload_names_keep_cell_lab_names_valid(tmp_path: Path) -> None:
    from labctl.core.names import LAB_NAME_RE

    lab = load_lab(write_lab(tmp_path, '    "twelve-chars": {tx: off}\n'))
    (cell,) = cells(lab)
    long_lab = "a-lab-name-of-thirty-one-chars-"[:31]
    assert LAB_NAME_RE.match(cell.lab_name(long_lab))
    assert cell.lab_name(long_lab).endswith("-lb-twelve-chars")
