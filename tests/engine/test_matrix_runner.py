"""The matrix runner against in-memory backends: statuses, skips, expectations, and cells
that really run side by side, except those that need differently configured OVS daemons."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labctl.backends.base import Backends
from labctl.core import schedule
from labctl.core.events import EventSink
from labctl.core.matrix import cells, load_lab
from labctl.core.model import RuntimeKind, Switch, SwitchKind
from labctl.core.result import MatrixResult, read_matrix
from labctl.errors import PrerequisiteError
from labctl.matrix import BackendsFactory, MatrixRunner, exit_code
from tests.engine.fakes import FakeHost, FakeLinks, FakeOffload, FakeRuntime, FakeSwitch

pytestmark = pytest.mark.engine
LAB = Path(__file__).resolve().parents[2] / "labs" / "veth-checksum"
FAILING = {"veth-checksum-ou-on", "veth-checksum-od-on"}


class Daemons:
    """Like labctl's own OVS daemons: one configuration at a time, shared by every lab
    that needs the same one; another configuration while a lab uses it is refused (the
    real OvsDaemons raises the same PrerequisiteError, which a cell reports as skipped)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config: object = None
        self.users: set[str] = set()

    def ensure(self, lab: str, config: object) -> None:
        with self.lock:
            if self.users and config != self.config:
                raise PrerequisiteError(
                    f"ovs-vswitchd runs another configuration for {sorted(self.users)}",
                    "take those labs down",
                )
            self.config = config
            self.users.add(lab)

    def release(self, lab: str) -> None:
        with self.lock:
            self.users.discard(lab)


class OvsFake(FakeSwitch):
    def __init__(self, host: FakeHost, daemons: Daemons, unavailable: str | None = None):
        super().__init__(host, unavailable)
        self.daemons = daemons

    def ensure_switch(self, lab: str, bridge: str, switch: Switch) -> dict[str, Any]:
        self.daemons.ensure(lab, schedule.vswitchd_config(switch))
        return super().ensure_switch(lab, bridge, switch)

    def remove_switch(self, lab: str, bridge: str) -> None:
        super().remove_switch(lab, bridge)
        self.daemons.release(lab)


def factory(host: FakeHost, daemons: Daemons | None = None) -> BackendsFactory:
    """Backends whose HTTP fails for the labs in host.failing_labs; no ovs-kernel."""
    daemons = daemons or Daemons()

    def make(on_event: EventSink) -> tuple[Backends, Callable[[], None]]:
        switches = {
            SwitchKind.LINUX_BRIDGE: FakeSwitch(host),
            SwitchKind.OVS_KERNEL: OvsFake(
                host, daemons, "the openvswitch kernel module is missing"
            ),
            SwitchKind.OVS_USERSPACE: OvsFake(host, daemons),
            SwitchKind.OVS_DPDK: OvsFake(host, daemons),
        }
        backends = Backends(
            {RuntimeKind.DOCKER: FakeRuntime(host)},
            FakeLinks(host),
            switches.__getitem__,
            lambda: [switches[SwitchKind.LINUX_BRIDGE]],
            offload=FakeOffload(host),
            host_versions=lambda: {"kernel": "test"},
        )
        return backends, lambda: None

    return make


def run_matrix(
    tmp_path: Path, workers: int, curl_seconds: float = 0.0
) -> tuple[MatrixResult, FakeHost]:
    lab = load_lab(LAB)
    host = FakeHost(failing_labs=set(FAILING), curl_seconds=curl_seconds)
    runner = MatrixRunner(
        lab, tmp_path / f"runs{workers}", backends_factory=factory(host), host_checks=False
    )
    return runner.run(cells(lab), workers=workers), host


def test_matrix_cells_pass_skip_and_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    # The fakes do not capture, so there is no diagnosis: expectations that name findings
    # (the OVS offload-on cells) cannot be met, and are reported as failed with the reason.
    typed, host = run_matrix(tmp_path, workers=1)
    assert exit_code(typed) == 1
    result = typed.to_json()  # report.json
    by_key = {(c["switch"], c["offload"]): c for c in result["cells"]}
    assert by_key[("linux-bridge", "on")]["status"] == "passed"
    assert by_key[("ovs-userspace", "off")]["status"] == "passed"
    skipped = by_key[("ovs-kernel", "on")]
    assert skipped["status"] == "skipped" and "kernel module" in skipped["reason"]
    dpdk_on = by_key[("ovs-dpdk", "on")]
    assert dpdk_on["status"] == "failed"
    assert dpdk_on["reason"] == "expected finding bad-checksum, syn-unanswered, not reported"
    assert dpdk_on["observed"]["http"] == "fail"
    # server-only: the fakes pass HTTP where OVS userspace/DPDK are expected to fail it.
    assert by_key[("ovs-dpdk", "server-only")]["status"] == "failed"
    assert by_key[("linux-bridge", "server-only")]["status"] == "passed"
    assert result["summary"] == {"passed": 5, "failed": 4, "skipped": 3, "error": 0}
    assert host.empty()
    assert result["host"]["kernel"] == "test" and result["host"]["hostname"]
    # Serially nothing overlaps.
    windows = sorted(tuple(c["window"]) for c in result["cells"])
    assert all(a[1] <= b[0] for a, b in zip(windows, windows[1:], strict=False))


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_parallel_cells_overlap_and_give_the_serial_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    serial = run_matrix(tmp_path, workers=1, curl_seconds=0.2)[0].to_json()
    typed, host = run_matrix(tmp_path, workers=3, curl_seconds=0.2)
    parallel = typed.to_json()
    assert host.empty()
    assert [(c["switch"], c["offload"], c["status"], c["reason"]) for c in serial["cells"]] == [
        (c["switch"], c["offload"], c["status"], c["reason"]) for c in parallel["cells"]
    ]
    # The HTTP traffic of different cells ran at the same time (recorded by the fake
    # runtime, not taken from the runner's own report) ...
    curls = {lab: (start, end) for lab, start, end in host.intervals}
    pairs = sum(1 for a in curls for b in curls if a < b and overlaps(curls[a], curls[b]))
    assert pairs >= 3
    assert max(c["window"][1] for c in parallel["cells"]) < sum(
        c["seconds"] for c in serial["cells"]
    )
    # ... but never a userspace cell beside a DPDK cell: they need different vswitchd builds.
    for user in ("veth-checksum-ou-on", "veth-checksum-ou-off"):
        for dpdk in ("veth-checksum-od-on", "veth-checksum-od-off"):
            assert not overlaps(curls[user], curls[dpdk]), (user, dpdk)
    # The runner says why cells waited, and which rule applies.
    waits = parallel["schedule"]["waits"]
    assert waits and all("vswitchd" in w["reason"] for w in waits)
    assert any("DPDK build" in rule for rule in parallel["schedule"]["rules"])


def test_a_cell_waiting_for_the_daemons_starts_early_but_its_switch_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    lab = load_lab(LAB)
    ovs = [c for c in cells(lab) if c.switch.value in ("ovs-userspace", "ovs-dpdk")]

    def run(workers: int) -> tuple[MatrixResult, FakeHost]:
        host = FakeHost(failing_labs=set(FAILING), curl_seconds=0.2)
        runner = MatrixRunner(
            lab, tmp_path / f"runs{workers}", backends_factory=factory(host), host_checks=False
        )
        return runner.run(ovs, workers=workers), host

    serial, _ = run(1)
    # Four workers, the three DPDK cells first: nothing else may start beside them, so the
    # fourth worker takes an OVS userspace cell, which starts its nodes at once while its
    # switch waits for the DPDK cells to finish.
    parallel, host = run(4)
    assert host.empty()
    assert [(c.switch, c.offload, c.status) for c in serial.cells] == [
        (c.switch, c.offload, c.status) for c in parallel.cells
    ]
    by_key = {f"{c.switch}-{c.offload}": c for c in parallel.cells}
    windows = {key: (c.window, c.switch_window) for key, c in by_key.items()}
    assert all(w is not None and sw is not None for w, sw in windows.values())
    gated = [key for key, (w, sw) in windows.items() if w and sw and sw[0] > w[0] + 0.1]
    assert gated and all(key.startswith("ovs-userspace") for key in gated)
    for user in ("ovs-userspace-on", "ovs-userspace-off", "ovs-userspace-server-only"):
        for dpdk in ("ovs-dpdk-on", "ovs-dpdk-off", "ovs-dpdk-server-only"):
            a, b = windows[user][1], windows[dpdk][1]
            assert a is not None and b is not None
            assert not overlaps(a, b), (user, dpdk)
    curls = {lab: (start, end) for lab, start, end in host.intervals}
    for user in ("veth-checksum-ou-on", "veth-checksum-ou-off"):
        for dpdk in ("veth-checksum-od-on", "veth-checksum-od-off"):
            assert not overlaps(curls[user], curls[dpdk]), (user, dpdk)


def test_workers_must_be_positive(tmp_path: Path) -> None:
    from labctl.errors import UsageError

    lab = load_lab(LAB)
    runner = MatrixRunner(lab, tmp_path, backends_factory=factory(FakeHost()), host_checks=False)
    with pytest.raises(UsageError):
        runner.run(cells(lab), workers=0)


def statuses(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["switch"], c["offload"], c["status"]) for c in result["cells"]]


def test_shards_merge_into_the_unsharded_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labctl.matrix import merge_reports, write_reports

    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    lab = load_lab(LAB)
    typed_whole, _ = run_matrix(tmp_path, workers=2)
    whole = typed_whole.to_json()
    dirs = []
    shard_keys = []
    for k in (1, 2):
        runner = MatrixRunner(
            lab, tmp_path / f"shard{k}", backends_factory=factory(FakeHost()), host_checks=False
        )
        result = runner.run(cells(lab), workers=2, shard=(k, 2)).to_json()
        write_reports(read_matrix(result))
        dirs.append(Path(result["report_dir"]))
        shard_keys.append({c["switch"] + "-" + c["offload"] for c in result["cells"]})
    # A real split: both shards run cells, none twice, none left out.
    assert all(shard_keys) and not shard_keys[0] & shard_keys[1]
    assert len(shard_keys[0] | shard_keys[1]) == len(whole["cells"])
    # The long cells (OVS cells expected to wait out an HTTP timeout) are shared out.
    long_cells = {c["switch"] + "-" + c["offload"] for c in whole["cells"]}
    long_cells = {k for k in long_cells if k.startswith("ovs-") and "-off" not in k}
    long_cells -= {"ovs-kernel-on", "ovs-kernel-server-only"}
    assert long_cells & shard_keys[0] and long_cells & shard_keys[1]
    typed_merged = merge_reports(dirs, tmp_path / "merged")
    merged = typed_merged.to_json()
    assert "shard" not in merged and "schedule" not in merged
    assert statuses(merged) == statuses(whole)
    assert merged["summary"] == whole["summary"]
    assert all(c["host"] for c in merged["cells"])
    assert [s["shard"] for s in merged["shards"]] == ["1/2", "2/2"]
    paths = write_reports(typed_merged)
    assert "(on " in paths["markdown"].read_text()
    assert "host: " in paths["junit"].read_text()
    # The merge refuses what does not belong together.
    from labctl.errors import UsageError

    with pytest.raises(UsageError, match="missing"):
        merge_reports(dirs[:1], tmp_path / "m2")
    with pytest.raises(UsageError, match="twice"):
        merge_reports([dirs[0], dirs[0], dirs[1]], tmp_path / "m3")
    report = dirs[1] / "report.json"
    data = json.loads(report.read_text())
    data["lab_version"] = "0" * 12
    report.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="different lab versions"):
        merge_reports(dirs, tmp_path / "m4")
    write_reports(typed_whole)
    with pytest.raises(UsageError, match="not a shard"):
        merge_reports([Path(whole["report_dir"])], tmp_path / "m5")


def test_ovs_config_cells_never_share_a_daemon_and_shards_keep_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cells whose matrix.ovs_config settings differ need differently configured vswitchds:
    the fake daemons refuse a second configuration while a lab uses the first (as the real
    ones do), so any overlap would show as a skipped cell."""
    from labctl.matrix import merge_reports, write_reports

    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    seed = LAB.parents[1] / "topologies" / "seed.yaml"
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "lab.yaml").write_text(
        f"name: oc-lab\ntopology: {seed}\nmatrix:\n  switches: [linux-bridge, ovs-userspace]\n"
        '  offload:\n    "on": {tx: on}\n    "off": {tx: off}\n'
        '  ovs_config:\n    "utso-off": {userspace-tso-enable: "false"}\n'
        '    "utso-on": {userspace-tso-enable: "true"}\n'
    )
    lab = load_lab(tmp_path / "lab")
    host = FakeHost(curl_seconds=0.2)
    runner = MatrixRunner(lab, tmp_path / "runs", backends_factory=factory(host), host_checks=False)
    result = runner.run(cells(lab), workers=4)
    assert host.empty()
    assert [c.status for c in result.cells] == ["passed"] * 6
    # In matrix order (tests/unit/test_ovs_config.py pins that order).
    assert [c.key for c in result.cells] == [c.key for c in cells(lab)]
    by_key = {c.key: c for c in result.cells}
    for off in ("ovs-userspace-on+utso-off", "ovs-userspace-off+utso-off"):
        for on in ("ovs-userspace-on+utso-on", "ovs-userspace-off+utso-on"):
            a, b = by_key[off].switch_window, by_key[on].switch_window
            assert a is not None and b is not None and not overlaps(a, b), (off, on)
    # Cells of one setting do share the daemon (and run side by side).
    curls = {lab_name: (start, end) for lab_name, start, end in host.intervals}
    assert overlaps(curls["oc-lab-ou-on-utso-on"], curls["oc-lab-ou-off-utso-on"])
    assert result.schedule is not None
    assert any("userspace-tso-enable=true" in rule for rule in result.schedule.rules)
    assert by_key["ovs-userspace-on+utso-on"].ovs_config_settings == {
        "userspace-tso-enable": "true"
    }
    assert (Path(result.report_dir or "") / "ovs-userspace-on+utso-on").is_dir()
    # Shards and their merge keep the dimension.
    dirs = []
    for k in (1, 2):
        shard_runner = MatrixRunner(
            lab, tmp_path / f"shard{k}", backends_factory=factory(FakeHost()), host_checks=False
        )
        shard = shard_runner.run(cells(lab), workers=2, shard=(k, 2))
        write_reports(shard)
        dirs.append(Path(shard.report_dir or ""))
    merged = merge_reports(dirs, tmp_path / "merged")
    assert [c.key for c in merged.cells] == [c.key for c in result.cells]
    assert merged.ovs_configs == result.ovs_configs == lab.ovs_configs
    assert read_matrix(merged.to_json()) == merged
