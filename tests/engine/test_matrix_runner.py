"""The matrix runner against in-memory backends: statuses, skips, expectations."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core.matrix import cells, load_lab
from labctl.core.model import SwitchKind
from labctl.engine import Backends
from labctl.matrix import MatrixRunner, exit_code
from tests.engine.fakes import FakeHost, FakeLinks, FakeOffload, FakeRuntime, switch_table

pytestmark = pytest.mark.engine
LAB = Path(__file__).resolve().parents[2] / "labs" / "veth-checksum"


def factory(host: FakeHost, failing_http: set[str]):
    """Backends whose HTTP fails for the lab names in `failing_http`; no ovs-kernel."""

    class Runtime(FakeRuntime):
        def exec(self, handle, argv, *, detach=False, timeout=60):  # type: ignore[no-untyped-def]
            lab = handle.container_id.split("-", 1)[1].rsplit("-", 1)[0]
            self.host.curl_exit = 28 if lab in failing_http else 0
            return super().exec(handle, argv, detach=detach, timeout=timeout)

    def make(on_event):  # type: ignore[no-untyped-def]
        switch_for, all_switches = switch_table(
            host, {SwitchKind.OVS_KERNEL: "the openvswitch kernel module is missing"}
        )
        backends = Backends(
            {"docker": Runtime(host)},
            FakeLinks(host),
            switch_for,
            all_switches,
            offload=FakeOffload(host),
            host_versions=lambda: {"kernel": "test"},
        )
        return backends, lambda: None

    return make


def test_matrix_cells_pass_skip_and_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    lab = load_lab(LAB)
    host = FakeHost()
    # The fakes do not capture, so there is no diagnosis: expectations that name findings
    # (the OVS offload-on cells) cannot be met, and are reported as failed with the reason.
    failing = {"veth-checksum-ou-on", "veth-checksum-od-on"}
    runner = MatrixRunner(
        lab, tmp_path / "runs", backends_factory=factory(host, failing), host_checks=False
    )
    result = runner.run(cells(lab))
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
    assert exit_code(result) == 1
    assert host.empty()
    assert result["host"] == {"kernel": "test"}


def test_parallel_cells_give_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_STATE_DIR", str(tmp_path / "state"))
    lab = load_lab(LAB)
    failing = {"veth-checksum-ou-on", "veth-checksum-od-on"}
    outcomes = []
    for workers in (1, 2):
        host = FakeHost()
        runner = MatrixRunner(
            lab,
            tmp_path / f"runs{workers}",
            backends_factory=factory(host, failing),
            host_checks=False,
        )
        result = runner.run(cells(lab), workers=workers)
        outcomes.append(
            [(c["switch"], c["offload"], c["status"], c["reason"]) for c in result["cells"]]
        )
        assert host.empty()
    assert outcomes[0] == outcomes[1]
