"""Lab expectations per probe: loading them (with file:line:col) and comparing a cell."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core.matrix import (
    Expectation,
    Observation,
    ProbeExpectation,
    compare,
    load_lab,
)
from labctl.core.probes import ProbeObservation
from labctl.errors import ConfigError

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def observed(*probes: ProbeObservation, http: str | None = None) -> Observation:
    return Observation.model_validate(
        {"http": http, "succeeded": 0, "failed": 0, "probes": [p.model_dump() for p in probes]}
    )


BULK = ProbeObservation(name="bulk", kind="tcp", ok=True, throughput_mbps=512.0, retransmits=9)
UDP_LOST = ProbeObservation(
    name="udp",
    kind="udp",
    ok=False,
    problems=("100.0% of datagrams lost, more than 0%",),
    sent=120,
    received=0,
    loss_percent=100.0,
)


def test_probe_results_and_bounds_are_compared() -> None:
    expectation = Expectation(
        probes={
            "bulk": ProbeExpectation(result="pass", min_mbps=600, max_retransmits=10),
            "udp": "pass",
        }
    )
    assert compare(expectation, observed(BULK, UDP_LOST)) == (
        "expected probe bulk throughput at least 600 Mbit/s, measured 512 Mbit/s; "
        "expected probe udp to pass, it did fail (100.0% of datagrams lost, more than 0%)"
    )
    met = Expectation(probes={"bulk": ProbeExpectation(result="pass", min_mbps=500), "udp": "fail"})
    assert compare(met, observed(BULK, UDP_LOST)) is None


def test_a_bound_on_a_figure_the_probe_did_not_measure_is_a_difference() -> None:
    expectation = Expectation(probes={"bulk": ProbeExpectation(result="pass", max_rtt_ms=1)})
    assert compare(expectation, observed(BULK)) == (
        "expected probe bulk average RTT at most 1 ms, not measured"
    )


def test_a_probe_that_did_not_run_differs() -> None:
    assert compare(Expectation(probes={"ping6": "pass"}), observed(BULK)) == (
        "expected probe ping6 to pass, it did not run"
    )


def test_http_is_not_judged_when_the_lab_does_not_say() -> None:
    assert compare(Expectation(probes={"bulk": "pass"}), observed(BULK)) is None
    assert observed(BULK).traffic_ok and not observed(BULK, UDP_LOST).traffic_ok


def test_probes_line_names_each_probe_and_its_figures() -> None:
    assert observed(BULK, UDP_LOST).probes_line() == (
        "bulk 512.0 Mbit/s, 9 retransmits; udp FAIL 100.0% loss (0/120)"
    )
    assert not observed(BULK).http_only


def test_expectations_name_probes_of_the_topology(tmp_path: Path) -> None:
    lab = tmp_path / "lab.yaml"
    lab.write_text(
        f"name: probes\ntopology: {ROOT / 'topologies' / 'udp.yaml'}\n"
        "expectations:\n"
        "  - http: pass\n"
        "    probes: {udp: pass, udp-sned: fail}\n"
        "  - probes:\n"
        "      udp: {result: pass, max_loss: 1}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_lab(lab)
    assert [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in caught.value.problems] == [
        "7:27: expectations[1].probes.udp.max_loss: unknown key 'max_loss' (allowed: result, "
        "min_mbps, max_mbps, min_loss_percent, max_loss_percent, max_rtt_ms, max_retransmits)",
    ]
    lab.write_text(lab.read_text().replace(", max_loss: 1", ""))
    with pytest.raises(ConfigError) as caught:
        load_lab(lab)
    assert [f"{p.line}:{p.column}: {p.path}: {p.message}" for p in caught.value.problems] == [
        "4:5: expectations[0].http: the topology has no http probe (no `traffic:`, no probe "
        "of kind http); expect its probes by name under `probes:`",
        "5:25: expectations[0].probes.udp-sned: the topology has no probe 'udp-sned' "
        "(it has: udp, udp-send, udp-csum)",
    ]


def test_the_new_labs_load_with_their_probe_expectations() -> None:
    for name in ("seed-ipv6", "udp-offload", "tcp-bulk"):
        lab = load_lab(ROOT / "labs" / name)
        probe_names = {n for n, _p in lab.topology.named_probes()}
        for expectation in lab.spec.expectations:
            assert set(expectation.probes) <= probe_names
