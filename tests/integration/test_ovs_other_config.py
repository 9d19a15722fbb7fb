"""switch.ovs.other_config and matrix.ovs_config for real, on OVS userspace: the vswitchd
labctl runs has the settings a lab asks for (OVSDB and the daemon's own log say so, and
TCP behaves accordingly), and labs or matrix cells that ask for different ones never
share it."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from labctl import Lab
from labctl.backends.ovs.daemons import OvsDaemons, OvsPaths
from labctl.errors import PrerequisiteError
from labctl.run import RunRecorder
from tests.integration.host_snapshot import HostSnapshot
from tests.integration.lab_fixtures import SEED, labctl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("docker_host")]

TSO_ENABLED = "Userspace TCP Segmentation Offloading support enabled"
"""What ovs-vswitchd 3.1 logs when it reads userspace-tso-enable=true at its start."""


def seed_with(tmp_path: Path, name: str, other_config: dict[str, str]) -> Path:
    data = yaml.safe_load(SEED.read_text())
    data["switch"] = {"kind": "ovs-userspace", "ovs": {"other_config": other_config}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def vsctl_other_config() -> dict[str, str]:
    endpoint = OvsDaemons().current()
    assert endpoint is not None and endpoint.managed, "labctl's own OVS daemons should run"
    done = subprocess.run(
        [
            "ovs-vsctl",
            f"--db={endpoint.connection}",
            "--format=json",
            "--columns=other_config",
            "list",
            "Open_vSwitch",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    rows = json.loads(done.stdout)["data"]
    return dict(rows[0][0][1])


def vswitchd_log_since_start() -> str:
    """The running vswitchd's part of its log (each start opens the log anew)."""
    text = OvsPaths().log_file("ovs-vswitchd").read_text(errors="replace")
    return text[text.rfind("vlog|INFO|opened log file") :]


def test_vswitchd_runs_with_the_lab_settings_and_is_not_shared(
    state_dir: Path, tmp_path: Path
) -> None:
    before = HostSnapshot.take()
    names = [f"oc-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    tso_on = seed_with(tmp_path, "on", {"userspace-tso-enable": "true"})
    tso_off = seed_with(tmp_path, "off", {"userspace-tso-enable": "false"})
    with Lab.from_file(tso_on, name=names[0]) as lab:
        assert vsctl_other_config()["userspace-tso-enable"] == "true"
        assert TSO_ENABLED in vswitchd_log_since_start()
        # A lab that needs the other value is refused while this one uses the daemon, and
        # builds nothing.
        during = HostSnapshot.take()
        with (
            pytest.raises(PrerequisiteError, match="userspace-tso-enable=true") as refused,
            Lab.from_file(tso_off, name=names[1]),
        ):
            pass
        assert "take those labs down" in " ".join(refused.value.lines())
        assert HostSnapshot.take().added_since(during) == {}
        assert vsctl_other_config()["userspace-tso-enable"] == "true"
        # The seed's TCP through OVS userspace with offload on works with userspace TSO
        # (measured: the receiver accepts the unfinished checksums, labs/tcp-bulk).
        on = RunRecorder(lab.engine, tmp_path / "runs").run(lab.name)
    with Lab.from_file(tso_off, name=names[1]) as lab:
        assert "userspace-tso-enable" not in vsctl_other_config()  # OVS's default: unset
        assert TSO_ENABLED not in vswitchd_log_since_start()
        off = RunRecorder(lab.engine, tmp_path / "runs").run(lab.name)
    assert HostSnapshot.take().added_since(before) == {}
    assert on.http is not None and on.http.ok, on.http.render_text()
    assert off.http is not None and off.http.succeeded == 0, off.http.render_text()


def test_matrix_cells_of_two_settings_take_turns(state_dir: Path, tmp_path: Path) -> None:
    before = HostSnapshot.take()
    lab: dict[str, Any] = {
        "name": f"oc-{uuid.uuid4().hex[:6]}",
        "topology": str(SEED),
        "matrix": {
            "switches": ["linux-bridge", "ovs-userspace"],
            "offload": {"on": {"tx": True, "rx": True}},
            "ovs_config": {
                "utso-off": {"userspace-tso-enable": "false"},
                "utso-on": {"userspace-tso-enable": "true"},
            },
        },
        "expectations": [
            {"when": {"switch": "linux-bridge"}, "http": "pass"},
            {"when": {"ovs_config": "utso-on"}, "http": "pass"},
            {"when": {"ovs_config": "utso-off"}, "http": "fail"},
        ],
    }
    path = tmp_path / "lab" / "lab.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(lab, sort_keys=False))
    done = labctl(
        "matrix",
        str(path),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--json",
        "--workers",
        "3",
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    result = json.loads(done.stdout)
    assert HostSnapshot.take().added_since(before) == {}
    by_key = {c["lab_name"].removeprefix(lab["name"]): c for c in result["cells"]}
    assert sorted(by_key) == ["-lb-on", "-ou-on-utso-off", "-ou-on-utso-on"]
    assert [c["status"] for c in result["cells"]] == ["passed"] * 3
    on, off = by_key["-ou-on-utso-on"], by_key["-ou-on-utso-off"]
    assert on["ovs_config_settings"] == {"userspace-tso-enable": "true"}
    a, b = on["switch_window"], off["switch_window"]
    assert not (a[0] < b[1] and b[0] < a[1]), "two vswitchd settings at once"
    assert any("userspace-tso-enable=true" in rule for rule in result["schedule"]["rules"])
    report = Path(result["report_dir"]) / "report.md"
    assert "| ovs-userspace utso-on |" in report.read_text()
