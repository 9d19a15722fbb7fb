"""Probes: names, commands, and what the tools' output means (core/probes.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labctl.core import probes
from labctl.core.http import RequestResult, TrafficSummary, url
from labctl.core.loader import load_topology
from labctl.core.model import (
    CommandProbe,
    IcmpProbe,
    TcpProbe,
    Topology,
    UdpProbe,
)
from labctl.core.plan import StartHttpServer, make_plan
from labctl.core.taps import default_filter

pytestmark = pytest.mark.unit


def topology(**extra: Any) -> Topology:
    data: dict[str, Any] = {
        "name": "t",
        "nodes": {
            "client": {"interfaces": {"eth0": {"ipv4": "10.0.0.1/24", "ipv6": "fd00::1/64"}}},
            "server": {"interfaces": {"eth0": {"ipv4": "10.0.0.2/24", "ipv6": "fd00::2/64"}}},
        },
        "switch": {"kind": "linux-bridge"},
        "links": [
            {"a": "client:eth0", "b": "switch:cli"},
            {"a": "server:eth0", "b": "switch:srv"},
        ],
        **extra,
    }
    return Topology.model_validate(data)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    return path


# ---- names and the traffic block ------------------------------------------------------


def test_traffic_block_is_one_http_probe_named_http() -> None:
    topo = topology(traffic={"client": "client", "server": "server", "port": 8080})
    [(name, probe)] = topo.named_probes()
    assert name == "http"
    assert probe.kind == "http" and probe.port == 8080


def test_unnamed_probes_are_named_by_kind_and_numbered_when_repeated() -> None:
    topo = topology(
        traffic={"client": "client", "server": "server"},
        probes=[
            {"kind": "tcp", "client": "client", "server": "server"},
            {"kind": "icmp", "client": "client", "server": "server"},
            {"kind": "icmp", "client": "client", "server": "server", "family": "ipv6"},
            {"kind": "http", "client": "client", "server": "server", "port": 8080},
            {"kind": "command", "name": "neigh", "node": "server", "argv": ["ip", "neigh"]},
        ],
    )
    names = [name for name, _ in topo.named_probes()]
    assert names == ["http", "tcp", "icmp-1", "icmp-2", "http-1", "neigh"]


def test_seed_topology_still_loads_as_one_http_probe() -> None:
    topo, _doc = load_topology("topologies/seed.yaml")
    assert [(n, p.kind) for n, p in topo.named_probes()] == [("http", "http")]
    assert default_filter(topo) == "tcp port 80 or arp or icmp or icmp6"


def test_every_http_probe_gets_its_server_once(tmp_path: Path) -> None:
    topo = topology(
        traffic={"client": "client", "server": "server"},
        probes=[
            {"kind": "http", "client": "client", "server": "server"},
            {"kind": "http", "client": "server", "server": "client", "port": 8080},
        ],
    )
    servers = [s for s in make_plan(topo).steps if isinstance(s, StartHttpServer)]
    assert [(s.key, s.node, s.port) for s in servers] == [
        ("http:server", "server", 80),
        ("http:client:8080", "client", 8080),
    ]


def test_capture_filter_covers_every_probe() -> None:
    topo = topology(
        traffic={"client": "client", "server": "server"},
        probes=[
            {"kind": "tcp", "client": "client", "server": "server"},
            {"kind": "udp", "client": "client", "server": "server", "port": 5202},
            {"kind": "icmp", "client": "client", "server": "server"},
        ],
    )
    assert default_filter(topo) == "tcp port 80 or port 5201 or port 5202 or arp or icmp or icmp6"


def test_a_command_probe_captures_all_tcp_and_udp() -> None:
    topo = topology(probes=[{"kind": "command", "node": "server", "argv": ["true"]}])
    assert default_filter(topo) == "tcp or udp or arp or icmp or icmp6"


# ---- commands -------------------------------------------------------------------------


def test_iperf_client_over_ipv6_with_bounds() -> None:
    topo = topology()
    tcp = TcpProbe(kind="tcp", client="client", server="server", family="ipv6", seconds=1.5)
    argv = probes.iperf_client_argv(topo, tcp)
    assert argv[:4] == ["timeout", "-k", "1", "9.5"]
    assert argv[4:] == [
        "iperf3",
        "-c",
        "fd00::2",
        "-p",
        "5201",
        "-t",
        "1.5",
        "-b",
        "0",
        "--connect-timeout",
        "3000",
        "-J",
        "-P",
        "1",
    ]
    udp = UdpProbe(kind="udp", client="client", server="server", length=1200, bitrate="5M")
    argv = probes.iperf_client_argv(topo, udp)
    assert argv[-3:] == ["-u", "-l", "1200"] and "10.0.0.2" in argv and "5M" in argv
    assert probes.iperf_server_argv(udp) == [
        "timeout", "-k", "1", "13", "iperf3", "-s", "-1", "-p", "5201",
    ]  # fmt: skip


def test_ping_argv_names_the_family() -> None:
    icmp = IcmpProbe(kind="icmp", client="client", server="server", family="ipv6", count=3)
    argv = probes.ping_argv(topology(), icmp)
    assert argv[4:7] == ["ping", "-6", "-n"] and argv[-1] == "fd00::2"
    assert argv[7:9] == ["-c", "3"]


def test_every_probe_targets_the_servers_address_on_the_clients_subnet() -> None:
    """A server whose first interface is on another segment (a management network, a
    second switch): labctl sets no routes, so only its address on the client's subnet
    can be reached, whichever interface comes first; with none shared, the first."""
    topo = Topology.model_validate(
        {
            "name": "t",
            "nodes": {
                "client": {"interfaces": {"eth0": {"ipv4": "10.0.0.1/24", "ipv6": "fd00::1/64"}}},
                "server": {
                    "interfaces": {
                        "mgmt": {"ipv4": "192.168.99.2/24", "ipv6": "fd99::2/64"},
                        "eth1": {"ipv4": "10.0.0.2/24", "ipv6": "fd00::2/64"},
                    }
                },
                "other": {"interfaces": {"eth0": {"ipv4": "172.16.0.1/24"}}},
            },
            "switches": {"a": {"kind": "linux-bridge"}, "b": {"kind": "linux-bridge"}},
            "links": [
                {"a": "client:eth0", "b": "a:cli"},
                {"a": "server:eth1", "b": "a:srv"},
                {"a": "server:mgmt", "b": "b:srv"},
                {"a": "other:eth0", "b": "b:oth"},
            ],
            "traffic": {"client": "client", "server": "server"},
            "probes": [
                {"kind": "icmp", "client": "client", "server": "server", "family": "ipv6"},
                {"kind": "tcp", "client": "client", "server": "server"},
                {"kind": "icmp", "client": "other", "server": "server"},
            ],
        }
    )
    [(_, http), (_, ping6), (_, tcp), (_, ping_other)] = topo.named_probes()
    assert probes.describe(topo, http).startswith("client -> http://10.0.0.2:80/")
    assert topo.traffic is not None and url(topo, topo.traffic) == "http://10.0.0.2:80/"
    assert probes.ping_argv(topo, ping6)[-1] == "fd00::2"  # type: ignore[arg-type]
    assert "10.0.0.2" in probes.iperf_client_argv(topo, tcp)  # type: ignore[arg-type]
    # `other` shares no subnet with the server: its first address, as before.
    assert probes.ping_argv(topo, ping_other)[-1] == "192.168.99.2"  # type: ignore[arg-type]
    ends = topo.traffic_ends()
    assert ("server", "eth1") in ends and ("client", "eth0") in ends


def test_command_argv_runs_without_a_shell_under_its_timeout() -> None:
    cmd = CommandProbe(kind="command", node="server", argv=["ip", "-6", "neigh"], timeout=4)
    assert probes.command_argv(cmd) == ["timeout", "-k", "1", "4", "ip", "-6", "neigh"]


# ---- iperf3 ---------------------------------------------------------------------------

TCP_OK = {
    "end": {
        "sum_sent": {"bytes": 1062993920, "bits_per_second": 8500525648.1, "retransmits": 5},
        "sum_received": {"bytes": 1056964608, "bits_per_second": 8451203921.1},
    }
}
# iperf3 3.12 at 3 Gbit/s over 127.0.0.1 in a node, trimmed: what the client prints for
# -u -J. The server's socket buffer overflowed: /proc/net/snmp counted 2447
# UdpRcvbufErrors; "packets" received is the highest sequence number seen (11432).
UDP_SOME_LOST = {
    "end": {
        "sum": {"packets": 11436, "lost_packets": 2447, "lost_percent": 21.4},
        "sum_sent": {"packets": 11436, "lost_packets": 0, "bits_per_second": 3e9},
        "sum_received": {"packets": 11432, "lost_packets": 2447, "bits_per_second": 2.3e9},
    }
}


def test_tcp_throughput_and_retransmits() -> None:
    tcp = TcpProbe(kind="tcp", client="client", server="server")
    result = probes.parse_iperf("tcp", "t", tcp, 0, json.dumps(TCP_OK), "")
    assert result.ok and result.problems == ()
    assert result.throughput_mbps == pytest.approx(8451.204, abs=0.001)
    assert result.retransmits == 5


def test_tcp_bounds_fail_the_probe() -> None:
    tcp = TcpProbe(kind="tcp", client="client", server="server", min_mbps=10000, max_retransmits=1)
    result = probes.parse_iperf("tcp", "t", tcp, 0, json.dumps(TCP_OK), "")
    assert not result.ok
    assert result.problems == (
        "throughput 8451.2 Mbit/s is below 10000",
        "5 retransmits, more than 1",
    )


def test_udp_loss_counts_what_was_sent_not_iperfs_lost_percent() -> None:
    udp = UdpProbe(kind="udp", client="client", server="server", max_loss_percent=50)
    result = probes.parse_iperf("udp", "t", udp, 0, json.dumps(UDP_SOME_LOST), "")
    assert (result.sent, result.received) == (11436, 8985)
    assert result.loss_percent == pytest.approx(21.432, abs=0.001)
    assert result.ok


def test_udp_where_nothing_arrives_is_total_loss() -> None:
    nothing = {
        "end": {
            "sum": {"packets": 0, "lost_packets": 0, "lost_percent": 0},
            "sum_sent": {"packets": 120},
            "sum_received": {"packets": 0, "bits_per_second": 0},
        }
    }
    udp = UdpProbe(kind="udp", client="client", server="server")
    result = probes.parse_iperf("udp", "t", udp, 0, json.dumps(nothing), "")
    assert not result.ok and result.loss_percent == 100.0
    assert result.problems == ("100.0% of datagrams lost, more than 0%",)


def test_iperf_error_and_timeout_are_failures_with_the_reason() -> None:
    tcp = TcpProbe(kind="tcp", client="client", server="server")
    error = json.dumps({"end": {}, "error": "unable to connect to server: Connection refused"})
    result = probes.parse_iperf("tcp", "t", tcp, 1, error, "")
    assert not result.ok
    assert result.problems == ("iperf3: unable to connect to server: Connection refused",)
    result = probes.parse_iperf("tcp", "t", tcp, 124, '{"start": {', "")
    assert result.problems == ("iperf3 did not finish within 10 s (stopped)",)
    result = probes.parse_iperf("tcp", "t", tcp, 127, "", "timeout: failed to run command")
    assert result.problems == ("iperf3: timeout: failed to run command",)


# ---- ping -----------------------------------------------------------------------------

PING_OK = """PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.355 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 407ms
rtt min/avg/max/mdev = 0.034/0.144/0.355/0.148 ms
"""
PING_NONE = """PING 10.9.9.9 (10.9.9.9) 56(84) bytes of data.
From 21.4.1.21 icmp_seq=1 Destination Port Unreachable

--- 10.9.9.9 ping statistics ---
2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 201ms
"""


def test_ping_rtt_and_loss() -> None:
    icmp = IcmpProbe(kind="icmp", client="client", server="server", count=3)
    result = probes.parse_ping("icmp", "t", icmp, 0, PING_OK, "")
    assert result.ok and result.loss_percent == 0.0
    assert result.rtt_ms == probes.RoundTrip(min=0.034, avg=0.144, max=0.355)
    slow = icmp.model_copy(update={"max_rtt_ms": 0.1})
    assert probes.parse_ping("icmp", "t", slow, 0, PING_OK, "").problems == (
        "average round trip 0.144 ms, more than 0.1",
    )


def test_ping_without_replies() -> None:
    icmp = IcmpProbe(kind="icmp", client="client", server="server", count=2)
    result = probes.parse_ping("icmp", "t", icmp, 1, PING_NONE, "")
    assert not result.ok and result.loss_percent == 100.0 and result.rtt_ms is None
    assert (result.sent, result.received) == (2, 0)
    tolerant = icmp.model_copy(update={"max_loss_percent": 100})
    assert probes.parse_ping("icmp", "t", tolerant, 1, PING_NONE, "").ok


def test_ping_that_could_not_start() -> None:
    icmp = IcmpProbe(kind="icmp", client="client", server="server", family="ipv6")
    result = probes.parse_ping(
        "icmp", "t", icmp, 2, "", "ping: connect: Cannot assign requested address\n"
    )
    assert result.problems == ("ping: ping: connect: Cannot assign requested address",)


# ---- command --------------------------------------------------------------------------


def test_command_exit_code_and_output_pattern() -> None:
    cmd = CommandProbe(
        kind="command", node="server", argv=["nstat"], output=r"UdpInCsumErrors\s+0\b"
    )
    good = probes.parse_command("c", "t", cmd, 0, "UdpInCsumErrors   0   0.0\n", "")
    assert good.ok and good.output == "UdpInCsumErrors   0   0.0\n"
    bad = probes.parse_command("c", "t", cmd, 1, "UdpInCsumErrors   12   0.0\n", "oops\n")
    assert not bad.ok
    assert bad.problems == (
        "exit code 1, expected 0",
        r"output does not match /UdpInCsumErrors\s+0\b/",
    )
    assert bad.output is not None and bad.output.endswith("[stderr]\noops\n")


def test_command_expected_to_fail_and_stopped_command() -> None:
    cmd = CommandProbe(kind="command", node="server", argv=["false"], exit_code=1, timeout=2)
    assert probes.parse_command("c", "t", cmd, 1, "", "").ok
    stopped = probes.parse_command("c", "t", cmd, 124, "", "")
    assert stopped.problems == ("did not finish within 2 s (stopped)",)


def test_command_output_is_shortened_for_reports() -> None:
    cmd = CommandProbe(kind="command", node="server", argv=["yes"])
    result = probes.parse_command("c", "t", cmd, 0, "y\n" * 5000, "")
    assert result.output is not None
    assert result.output.endswith("(6000 more characters)")


def test_http_summary_as_a_probe_result() -> None:
    summary = TrafficSummary(
        "http://10.0.0.2:80/",
        (
            RequestResult(1, True, 200, 0.001, 0.002, None),
            RequestResult(2, False, None, None, None, "curl exit 28: timed out"),
        ),
    )
    result = probes.from_http("http", "t", summary)
    assert not result.ok and (result.sent, result.received) == (2, 1)
    assert result.problems == ("1 of 2 requests failed", "curl exit 28: timed out")
    assert result.to_dict()["http"]["succeeded"] == 1


def test_result_summary_and_text() -> None:
    icmp = IcmpProbe(kind="icmp", client="client", server="server", count=3)
    result = probes.parse_ping("ping6", "client -> fd00::2 ping x3", icmp, 0, PING_OK, "")
    assert result.summary() == "0.0% loss (3/3), rtt 0.144 ms"
    assert result.render_text() == (
        "[ping6] ICMP client -> fd00::2 ping x3\n  0.0% loss (3/3), rtt 0.144 ms\n  PASS"
    )


def test_the_schedule_counts_each_probe_and_a_failing_probe_its_whole_timeout() -> None:
    from labctl.core import schedule

    topo = topology(
        probes=[
            {"kind": "tcp", "client": "client", "server": "server", "seconds": 2},
            {"kind": "icmp", "client": "client", "server": "server", "count": 5},
        ]
    )
    bare = schedule.job("k", topology(), expect_http_fail=False).expected_seconds
    passing = schedule.job("k", topo, expect_http_fail=False).expected_seconds
    failing = schedule.job(
        "k", topo, expect_http_fail=False, failing_probes=frozenset({"tcp"})
    ).expected_seconds
    assert passing - bare == pytest.approx(2.5 + 5 * 0.2)
    assert failing - bare == pytest.approx(2 + probes.IPERF_SLACK + 5 * 0.2)
