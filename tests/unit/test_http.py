from __future__ import annotations

from pathlib import Path

import pytest

from labctl.core import http
from labctl.core.loader import load_topology

pytestmark = pytest.mark.unit
SEED = Path(__file__).resolve().parents[2] / "topologies" / "seed.yaml"


def test_client_targets_server_address() -> None:
    topology, _ = load_topology(SEED)
    assert topology.traffic is not None
    argv = http.batch_client_argv(topology, topology.traffic)
    assert argv[0] == "curl" and argv[-1] == "http://10.0.0.2:80/"
    v6 = topology.traffic.model_copy(update={"family": "ipv6"})
    assert http.url(topology, v6) == "http://[fd00::2]:80/"


def test_parse_curl_success_and_failures() -> None:
    ok = http.parse_curl(1, 0, "200 0.000412 0.001234", "")
    assert ok.ok and ok.status == 200 and ok.total_seconds == pytest.approx(0.001234)
    timeout = http.parse_curl(2, 28, "000 0.000000 3.001", "curl: (28) Connection timed out")
    assert not timeout.ok and timeout.error == "curl exit 28: timed out" and timeout.status is None
    notfound = http.parse_curl(3, 0, "404 0.1 0.2", "")
    assert not notfound.ok and notfound.error == "HTTP status 404"
    odd = http.parse_curl(4, 99, "", "curl: (99) weird\n")
    assert odd.error == "curl exit 99: curl: (99) weird"


def test_summary_counts_and_renders() -> None:
    results = (http.parse_curl(1, 0, "200 0.001 0.002", ""), http.parse_curl(2, 28, "000 0 3", ""))
    summary = http.TrafficSummary("http://10.0.0.2:80/", results)
    assert (summary.succeeded, summary.failed, summary.ok) == (1, 1, False)
    text = summary.render_text()
    assert "1/2 succeeded" in text and "FAIL curl exit 28: timed out" in text
    assert summary.to_dict()["latency_ms"] == {"min": 2.0, "median": 2.0, "max": 2.0}


def test_batch_client_makes_one_transfer_per_request() -> None:
    topology, _ = load_topology(SEED)
    assert topology.traffic is not None
    argv = http.batch_client_argv(topology, topology.traffic)
    assert argv.count("http://10.0.0.2:80/") == 5 and argv.count("--output") == 5
    assert argv[argv.index("--header") + 1] == "Connection: close"
    # All at once, each on a connection of its own: a lab where TCP cannot connect waits
    # out one timeout, not five.
    assert "--parallel" in argv and "--parallel-immediate" in argv
    assert argv[argv.index("--parallel-max") + 1] == "5"
    assert http.batch_seconds(topology.traffic) == 3
    many = topology.traffic.model_copy(update={"requests": 120})
    assert http.batch_seconds(many) == 9  # 50 at a time: three rounds


def test_parse_batch_maps_each_line_and_error_to_its_request() -> None:
    # Lines come in completion order; the first field is the transfer's URL index.
    stdout = "2 7 000 0.000000 0.000200\n0 0 200 0.000300 0.001000\n1 28 000 0.000000 3.001000\n"
    stderr = "curl: (28) Connection timed out after 3001 milliseconds\ncurl: (7) Failed\n"
    results = http.parse_batch(4, 7, stdout, stderr)
    assert [r.ok for r in results] == [True, False, False, False]
    assert results[0].total_seconds == pytest.approx(0.001)
    assert results[1].error == "curl exit 28: timed out"
    assert results[2].error == "curl exit 7: connection refused or unreachable"
    assert results[3].error == "no result from curl (curl: (7) Failed)"


def test_listening_reads_proc_net_tcp() -> None:
    table = (
        "  sl  local_address rem_address   st\n"
        "   0: 00000000:0050 00000000:0000 0A 00000000:00000000\n"
        "   1: 0100007F:1F90 0200007F:D431 01 00000000:00000000\n"
    )
    assert http.listening(table, 80)
    assert not http.listening(table, 8080)  # 0x1F90 is established, not listening
    assert not http.listening("", 80)
