"""ovs-vswitchd's other_config: the topology setting, the matrix dimension
(matrix.ovs_config), when:, the cells' names, the schedule, the result and --ovs-config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.core import ovs_config, schedule
from labctl.core.matrix import cells, load_lab
from labctl.core.model import Switch
from labctl.core.names import LAB_NAME_RE
from labctl.core.result import CellResult, MatrixResult, read_matrix
from labctl.errors import UsageError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "topologies" / "seed.yaml"


def write_lab(tmp_path: Path, body: str, switches: str = "[linux-bridge, ovs-userspace]") -> Path:
    (tmp_path / "lab.yaml").write_text(
        f"name: oc-lab\ntopology: {SEED}\nmatrix:\n  switches: {switches}\n"
        '  offload:\n    "on": {tx: on}\n    "off": {tx: off}\n' + body
    )
    return tmp_path


CONFIGS = (
    "  ovs_config:\n"
    '    "utso-off": {userspace-tso-enable: "false"}\n'
    '    "utso-on": {userspace-tso-enable: true, max-idle: 1000}\n'
)


def test_userspace_tso_is_the_other_config_key() -> None:
    switch = Switch.model_validate({"kind": "ovs-userspace", "ovs": {"userspace_tso": True}})
    assert switch.ovs.effective_other_config() == {"userspace-tso-enable": "true"}
    # YAML scalars become the text OVSDB stores.
    switch = Switch.model_validate(
        {"kind": "ovs-userspace", "ovs": {"other_config": {"smc-enable": True, "max-idle": 900}}}
    )
    assert switch.ovs.other_config == {"smc-enable": "true", "max-idle": "900"}


def test_vswitchd_config_compares_settings_not_spelling() -> None:
    def needs(kind: str, other_config: dict[str, str], tso: bool = False) -> object:
        switch = Switch.model_validate(
            {"kind": kind, "ovs": {"other_config": other_config, "userspace_tso": tso}}
        )
        return schedule.vswitchd_config(switch)

    # OVS's default written out is the same daemon as no key at all ...
    assert needs("ovs-userspace", {}) == needs("ovs-userspace", {"userspace-tso-enable": "false"})
    # ... userspace_tso: true is the key ...
    assert needs("ovs-userspace", {"userspace-tso-enable": "true"}) == needs(
        "ovs-userspace", {}, tso=True
    )
    # ... and another value is another daemon, for every OVS kind (none is exempt).
    for kind in ("ovs-kernel", "ovs-userspace", "ovs-dpdk"):
        assert needs(kind, {}) != needs(kind, {"userspace-tso-enable": "true"})
    assert needs("linux-bridge", {"userspace-tso-enable": "true"}) is None
    config = needs("ovs-userspace", {"userspace-tso-enable": "true", "max-idle": "900"})
    assert isinstance(config, schedule.VswitchdConfig)
    assert config.describe() == "the plain build (max-idle=900, userspace-tso-enable=true)"
    assert schedule.VswitchdConfig().describe() == "the plain build (OVS defaults)"


def test_key_problems_name_the_fix() -> None:
    assert ovs_config.key_problem("userspace-tso-enable", "true") is None
    assert "labctl knows userspace-tso-enable" in str(ovs_config.key_problem("tso", "true"))
    assert "switch.dpdk.socket_mem" in str(ovs_config.key_problem("dpdk-socket-mem", "1"))
    assert "Bridge" in str(ovs_config.key_problem("mac-aging-time", "30"))
    assert "from 0 to 1000000" in str(ovs_config.key_problem("tx-flush-interval", "2000000"))


def test_ovs_kinds_get_a_cell_per_setting_the_linux_bridge_one(tmp_path: Path) -> None:
    lab = load_lab(write_lab(tmp_path, CONFIGS))
    assert lab.ovs_configs == {
        "utso-off": {"userspace-tso-enable": "false"},
        "utso-on": {"userspace-tso-enable": "true", "max-idle": "1000"},
    }
    found = cells(lab)
    assert [c.key for c in found] == [
        "linux-bridge-on",
        "linux-bridge-off",
        "ovs-userspace-on+utso-off",
        "ovs-userspace-off+utso-off",
        "ovs-userspace-on+utso-on",
        "ovs-userspace-off+utso-on",
    ]
    names = [c.lab_name(lab.name) for c in found]
    assert len(set(names)) == len(names) and all(LAB_NAME_RE.match(n) for n in names)
    assert names[4] == "oc-lab-ou-on-utso-on"
    # The cell's topology carries the setting over the topology's own other_config.
    on = found[4].topology(lab.topology, lab.name)
    assert on.switch is not None and on.switch.ovs.effective_other_config() == {
        "userspace-tso-enable": "true",
        "max-idle": "1000",
    }
    bridge = found[0].topology(lab.topology, lab.name)
    assert bridge.switch is not None and bridge.switch.ovs.effective_other_config() == {}
    # The two settings need two daemons: the schedule keeps their cells apart.
    jobs = [schedule.Job(c.key, c.topology(lab.topology, lab.name), 1.0) for c in found]
    assert schedule.conflict(jobs[2], jobs[4]) is not None
    assert schedule.conflict(jobs[2], jobs[3]) is None
    assert schedule.conflict(jobs[0], jobs[4]) is None
    (rule,) = schedule.rules(jobs)
    assert "userspace-tso-enable=true" in rule


def test_without_ovs_config_cells_are_as_before(tmp_path: Path) -> None:
    lab = load_lab(write_lab(tmp_path, ""))
    assert [c.key for c in cells(lab)] == [
        "linux-bridge-on",
        "linux-bridge-off",
        "ovs-userspace-on",
        "ovs-userspace-off",
    ]
    assert all(c.ovs_config_name is None for c in cells(lab))
    with pytest.raises(UsageError, match="has no matrix.ovs_config"):
        cells(lab, ovs_configs=["utso-on"])


def test_long_names_keep_cell_lab_names_valid(tmp_path: Path) -> None:
    lab = load_lab(write_lab(tmp_path, '  ovs_config:\n    "twelve-chars": {max-idle: 800}\n'))
    cell = cells(lab, ["ovs-userspace"])[0]
    long_lab = "a-lab-name-of-thirty-one-chars-"[:31]
    assert LAB_NAME_RE.match(cell.lab_name(long_lab))
    assert cell.lab_name(long_lab).endswith("-ou-on-twelve-chars")


def test_when_ovs_config_picks_expectations(tmp_path: Path) -> None:
    lab = load_lab(
        write_lab(
            tmp_path,
            CONFIGS
            + "expectations:\n"
            + "  - when: {ovs_config: utso-on}\n    http: pass\n"
            + "  - when: {switch: ovs-userspace, offload: 'on'}\n    http: fail\n"
            + "  - when: {}\n    http: pass\n    note: every other cell\n",
        )
    )
    by_key = {c.key: c.expectation for c in cells(lab)}
    assert by_key["ovs-userspace-on+utso-on"].http == "pass"  # type: ignore[union-attr]
    assert by_key["ovs-userspace-on+utso-off"].http == "fail"  # type: ignore[union-attr]
    # A Linux bridge cell has no ovs_config: `when: {ovs_config: ...}` never matches it.
    assert by_key["linux-bridge-on"].note == "every other cell"  # type: ignore[union-attr]


def test_ovs_config_selection(tmp_path: Path) -> None:
    lab = load_lab(write_lab(tmp_path, CONFIGS))
    chosen = cells(lab, ovs_configs=["utso-on"])
    # The Linux bridge has no ovs_config: selecting one leaves it out.
    assert [c.key for c in chosen] == ["ovs-userspace-on+utso-on", "ovs-userspace-off+utso-on"]
    assert [c.key for c in cells(lab, None, ["off"], ovs_configs=["utso-on", "utso-off"])] == [
        "ovs-userspace-off+utso-on",
        "ovs-userspace-off+utso-off",
    ]
    with pytest.raises(UsageError, match="--ovs-config nope: lab oc-lab has utso-off, utso-on"):
        cells(lab, ovs_configs=["nope"])
    with pytest.raises(UsageError, match="no OVS switch kind is chosen"):
        cells(lab, ["linux-bridge"], ovs_configs=["utso-on"])


def cell_result(switch: str, offload: str, config: str | None) -> CellResult:
    return CellResult(
        switch=switch,
        offload=offload,
        status="passed",
        ovs_config=config,
        ovs_config_settings={"userspace-tso-enable": "true"} if config == "utso-on" else {},
    )


def test_result_round_trip_rows_and_names() -> None:
    result = MatrixResult(
        lab="oc-lab",
        switches=["linux-bridge", "ovs-userspace"],
        offloads={"on": {"tx": True}, "off": {"tx": False}},
        ovs_configs={"utso-off": {}, "utso-on": {"userspace-tso-enable": "true"}},
        cells=[
            cell_result("ovs-userspace", "off", "utso-on"),
            cell_result("linux-bridge", "on", None),
            cell_result("ovs-userspace", "on", "utso-off"),
            cell_result("ovs-userspace", "on", "utso-on"),
        ],
    )
    again = read_matrix(json.loads(json.dumps(result.to_json())))
    assert again == result
    assert [r.label for r in again.row_axis] == [
        "linux-bridge",
        "ovs-userspace utso-off",
        "ovs-userspace utso-on",
    ]
    assert [c.key for c in again.ordered_cells()] == [
        "linux-bridge-on",
        "ovs-userspace-on+utso-off",
        "ovs-userspace-on+utso-on",
        "ovs-userspace-off+utso-on",
    ]
    cell = again.cell("ovs-userspace", "on", "utso-on")
    assert cell is not None and cell.ovs_config_settings == {"userspace-tso-enable": "true"}
    assert cell.title == "ovs-userspace, offload on, ovs_config utso-on"
    assert cell.test_name == "ovs-userspace offload=on ovs_config=utso-on"
    assert again.cell("ovs-userspace", "on") is None
    # A report.json without the dimension reads as before.
    old = read_matrix(
        {"lab": "x", "cells": [{"switch": "ovs-dpdk", "offload": "on", "status": "passed"}]}
    )
    assert old.cells[0].ovs_config is None and old.cells[0].key == "ovs-dpdk-on"
    assert [r.label for r in old.row_axis] == ["ovs-dpdk"]


def test_reports_show_the_dimension() -> None:
    from labctl.reports import html, junit, markdown

    result = MatrixResult(
        lab="oc-lab",
        switches=["linux-bridge", "ovs-userspace"],
        offloads={"on": {"tx": True}},
        ovs_configs={"utso-off": {}, "utso-on": {"userspace-tso-enable": "true"}},
        cells=[
            cell_result("linux-bridge", "on", None),
            cell_result("ovs-userspace", "on", "utso-off"),
            cell_result("ovs-userspace", "on", "utso-on"),
        ],
    )
    text = markdown.render(result)
    assert "| ovs-userspace utso-on |" in text and "| linux-bridge |" in text
    assert "`utso-on`: userspace-tso-enable=true" in text and "`utso-off`: OVS defaults" in text
    assert 'name="ovs-userspace offload=on ovs_config=utso-on"' in junit.render(result)
    page = html.render(result)
    assert "ovs-userspace utso-on</th>" in page and 'id="cell-ovs-userspace-on-utso-on"' in page
    assert "userspace-tso-enable=true. A Linux bridge has no ovs-vswitchd: one row." in page


def test_cli_selects_cells_by_ovs_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from labctl import cli
    from labctl import matrix as runner_module

    lab_dir = write_lab(tmp_path, CONFIGS)
    ran: list[list[str]] = []

    def run(
        self: object, chosen: list[object], workers: int = 1, shard: object = None
    ) -> MatrixResult:
        ran.append([c.key for c in chosen])  # type: ignore[attr-defined]
        return MatrixResult(lab="oc-lab", cells=[cell_result("ovs-userspace", "on", "utso-on")])

    monkeypatch.setattr(runner_module.MatrixRunner, "run", run)
    monkeypatch.setattr(runner_module, "write_reports", lambda result: {})
    argv = ["matrix", str(lab_dir), "--runs-dir", str(tmp_path / "runs")]
    assert cli.main([*argv, "--ovs-config", "utso-on", "--offload", "on"], warm=False) == 0
    assert ran == [["ovs-userspace-on+utso-on"]]
    out = capsys.readouterr().out
    assert "ovs_config" in out and "utso-on" in out
    assert cli.main([*argv, "--ovs-config", "nope"], warm=False) == 2
    assert "--ovs-config nope: lab oc-lab has utso-off, utso-on" in capsys.readouterr().err
    assert len(ran) == 1
