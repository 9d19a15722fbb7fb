"""Traffic probes: the commands they run in the nodes, and what their output means.

A topology's traffic is a list of probes (`probes:`; a `traffic:` block is one
http probe named "http"). Each probe gives one ProbeResult: the figures it
measured (throughput, retransmits, loss, round-trip time, an exit code and
output) and whether they meet the probe's own bounds. Pure: labctl.run runs the
argv built here inside the nodes and hands the output back to the parsers (the
HTTP requests' own are in labctl.core.http).

Every command built here runs under coreutils `timeout`, so a probe whose packets never
arrive (iperf3 waiting for a control connection, ping for replies) ends on its
own with exit code 124 instead of hanging the run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labctl.core.http import TrafficSummary
from labctl.core.model import (
    CommandProbe,
    HttpProbe,
    IcmpProbe,
    ProbeSpec,
    TcpProbe,
    Topology,
    UdpProbe,
)

TIMEOUT_EXIT = 124
"""coreutils timeout's exit code when it had to stop the command."""
CONNECT_TIMEOUT_MS = 3000
"""iperf3 --connect-timeout: how long the client tries to open its TCP control connection."""
IPERF_SLACK = 8.0
"""Seconds an iperf3 test takes beyond its -t: connecting, the parameter exchange, results."""
OUTPUT_KEEP = 4000
"""Characters of a command probe's output kept for the reports."""


@dataclass(frozen=True)
class HostTool:
    """A program a probe runs in its nodes. A netns node runs the host's own binaries,
    so there the host must have it."""

    command: str
    package: str | None  # the Debian package; None for a command probe's own program


def host_tools(probe: ProbeSpec) -> tuple[HostTool, ...]:
    """What `probe` runs in its nodes (besides coreutils `timeout`); an http probe's
    server, busybox httpd, is a netns runtime requirement of its own (labctl doctor)."""
    if isinstance(probe, HttpProbe):
        return (HostTool("curl", "curl"),)
    if isinstance(probe, TcpProbe | UdpProbe):
        return (HostTool("iperf3", "iperf3"),)
    if isinstance(probe, IcmpProbe):
        return (HostTool("ping", "iputils-ping"),)
    return (HostTool(probe.argv[0], None),)


def address_of(topology: Topology, client: str, server: str, family: str) -> str:
    """The address of `server` that `client` targets (see Topology.target)."""
    found = topology.target(client, server, family)
    if found is None:
        raise ValueError(f"node {server} has no {family} address")
    return str(found[1].ip)


def _host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def describe(topology: Topology, probe: ProbeSpec) -> str:
    """One line naming what the probe does, for progress events and reports."""
    if isinstance(probe, CommandProbe):
        return f"{probe.node}: {' '.join(probe.argv)}"
    target = _host(address_of(topology, probe.client, probe.server, probe.family))
    if isinstance(probe, HttpProbe):
        return f"{probe.client} -> http://{target}:{probe.port}{probe.path} x{probe.requests}"
    if isinstance(probe, TcpProbe):
        rate = "" if probe.bitrate == "0" else f" at {probe.bitrate}bit/s"
        return f"{probe.client} -> {target}:{probe.port} TCP bulk {probe.seconds:g} s{rate}"
    if isinstance(probe, UdpProbe):
        rate = f"{probe.bitrate}bit/s"
        return f"{probe.client} -> {target}:{probe.port} UDP {rate} {probe.seconds:g} s"
    return f"{probe.client} -> {target} ping x{probe.count}"


# ---- commands -------------------------------------------------------------------------


def probe_seconds(probe: ProbeSpec) -> float:
    """The longest the probe's client command may take (its `timeout` bound)."""
    if isinstance(probe, TcpProbe | UdpProbe):
        return float(probe.seconds) + IPERF_SLACK
    if isinstance(probe, IcmpProbe):
        return probe.count * float(probe.interval) + float(probe.timeout) + 1
    if isinstance(probe, CommandProbe):
        return float(probe.timeout)
    rounds = -(-probe.requests // 50)
    return rounds * float(probe.timeout)


def _timed(seconds: float, argv: list[str]) -> list[str]:
    return ["timeout", "-k", "1", f"{seconds:g}", *argv]


def iperf_server_argv(probe: TcpProbe | UdpProbe) -> list[str]:
    """A one-off iperf3 server (-1: it serves one test, then exits); the timeout ends it
    when no client ever connects, so a failed probe leaves nothing listening."""
    return _timed(
        probe_seconds(probe) + CONNECT_TIMEOUT_MS / 1000,
        ["iperf3", "-s", "-1", "-p", str(probe.port)],
    )


def iperf_client_argv(topology: Topology, probe: TcpProbe | UdpProbe) -> list[str]:
    address = address_of(topology, probe.client, probe.server, probe.family)
    argv = [
        "iperf3",
        "-c",
        address,
        "-p",
        str(probe.port),
        "-t",
        f"{probe.seconds:g}",
        "-b",
        probe.bitrate,
        "--connect-timeout",
        str(CONNECT_TIMEOUT_MS),
        "-J",
    ]
    if isinstance(probe, TcpProbe):
        argv += ["-P", str(probe.streams)]
    else:
        argv.append("-u")
        if probe.length is not None:
            argv += ["-l", str(probe.length)]
    return _timed(probe_seconds(probe), argv)


def ping_argv(topology: Topology, probe: IcmpProbe) -> list[str]:
    address = address_of(topology, probe.client, probe.server, probe.family)
    argv = [
        "ping",
        "-6" if probe.family == "ipv6" else "-4",
        "-n",
        "-c",
        str(probe.count),
        "-i",
        f"{probe.interval:g}",
        "-s",
        str(probe.size),
        "-W",
        f"{probe.timeout:g}",
        address,
    ]
    return _timed(probe_seconds(probe), argv)


def command_argv(probe: CommandProbe) -> list[str]:
    return _timed(float(probe.timeout), list(probe.argv))


# ---- results --------------------------------------------------------------------------


class Latency(BaseModel):
    """Of the requests that succeeded, in milliseconds."""

    model_config = ConfigDict(frozen=True)

    min: float
    median: float
    max: float


class RoundTrip(BaseModel):
    """ping's round-trip times, in milliseconds."""

    model_config = ConfigDict(frozen=True)

    min: float
    avg: float
    max: float


class ProbeObservation(BaseModel):
    """What one probe measured, and whether it met the probe's bounds: a ProbeResult as
    the matrix result (report.json) keeps it, without the http requests one by one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    kind: str
    target: str = ""
    ok: bool
    problems: tuple[str, ...] = ()
    """Why it did not pass: the tool's error, or each bound it missed."""
    throughput_mbps: float | None = None
    retransmits: int | None = None
    sent: int | None = None
    received: int | None = None
    loss_percent: float | None = None
    rtt_ms: RoundTrip | None = None
    latency_ms: Latency | None = None
    exit_code: int | None = None
    output: str | None = None
    """A command probe's standard output (and error), shortened to OUTPUT_KEEP characters."""

    def summary(self) -> str:
        """The figures in a few words: "940.2 Mbit/s, 3 retransmits", "0.0% loss (5/5)"."""
        parts = []
        if self.kind == "http" and self.sent is not None:
            parts.append(f"{self.received}/{self.sent} requests")
        if self.throughput_mbps is not None:
            parts.append(f"{self.throughput_mbps:.1f} Mbit/s")
        if self.retransmits is not None:
            parts.append(f"{self.retransmits} retransmits")
        if self.loss_percent is not None:
            parts.append(f"{self.loss_percent:.1f}% loss ({self.received}/{self.sent})")
        if self.rtt_ms is not None:
            parts.append(f"rtt {self.rtt_ms.avg:.3f} ms")
        if self.kind == "command" and self.exit_code is not None:
            parts.append(f"exit {self.exit_code}")
        return ", ".join(parts)


class ProbeResult(ProbeObservation):
    """A probe's result as a run has it: with the HTTP requests one by one (http probes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    http: TrafficSummary | None = Field(default=None, exclude=True)

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        if self.http is not None:
            data["http"] = self.http.to_dict()
        return data

    def render_text(self) -> str:
        if self.http is not None:
            head = self.http.render_text()
        else:
            head = f"{self.kind.upper()} {self.target}\n  {self.summary() or 'no result'}"
        verdict = "PASS" if self.ok else "FAIL: " + "; ".join(self.problems)
        text = f"[{self.name}] {head}\n  {verdict}"
        if self.output:
            shown = "\n".join("    " + line for line in self.output.rstrip().splitlines()[:20])
            text += f"\n  output:\n{shown}"
        return text


def result_of(name: str, kind: str, target: str, *problems: str, **figures: Any) -> ProbeResult:
    """A result that passes exactly when nothing is wrong with it (no `problems`)."""
    return ProbeResult(
        name=name, kind=kind, target=target, ok=not problems, problems=problems, **figures
    )


def from_http(name: str, target: str, summary: TrafficSummary) -> ProbeResult:
    problems: list[str] = []
    if not summary.ok:
        problems.append(f"{summary.failed} of {len(summary.results)} requests failed")
        problems += list(dict.fromkeys(r.error for r in summary.results if r.error))[:3]
    latency = summary.latency_ms()
    return result_of(
        name,
        "http",
        target,
        *problems,
        latency_ms=None if latency is None else Latency(**latency),
        sent=len(summary.results),
        received=summary.succeeded,
        http=summary,
    )


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def parse_iperf(
    name: str, target: str, probe: TcpProbe | UdpProbe, exit_code: int, stdout: str, stderr: str
) -> ProbeResult:
    """iperf3 -J output: throughput received and retransmits (TCP), datagrams sent and
    received (UDP). Loss is counted from what the client sent and the server received,
    not iperf3's lost_percent, which counts only gaps before the last datagram that
    arrived: it misses datagrams lost at the end and says 0% when none arrives at all."""
    kind = probe.kind
    try:
        data = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError:
        data = None
    if exit_code == TIMEOUT_EXIT:
        stopped = f"iperf3 did not finish within {probe_seconds(probe):g} s (stopped)"
        return result_of(name, kind, target, stopped, exit_code=exit_code)
    if not isinstance(data, dict):
        reason = _first_line(stderr) or _first_line(stdout) or f"exit {exit_code}"
        return result_of(name, kind, target, f"iperf3: {reason}", exit_code=exit_code)
    if data.get("error"):
        return result_of(name, kind, target, f"iperf3: {data['error']}", exit_code=exit_code)
    end = data.get("end") or {}
    received = end.get("sum_received") or {}
    sent = end.get("sum_sent") or {}
    bits = received.get("bits_per_second")
    mbps = round(float(bits) / 1e6, 3) if isinstance(bits, int | float) else None
    problems: list[str] = [] if exit_code == 0 else [f"iperf3 exit {exit_code}"]
    if isinstance(probe, TcpProbe):
        retransmits = sent.get("retransmits")
        retransmits = int(retransmits) if isinstance(retransmits, int) else None
        if not received.get("bytes"):
            problems.append("the server received no data")
        if probe.min_mbps is not None and (mbps or 0) < probe.min_mbps:
            problems.append(f"throughput {mbps or 0:.1f} Mbit/s is below {probe.min_mbps:g}")
        if (
            probe.max_retransmits is not None
            and retransmits is not None
            and retransmits > probe.max_retransmits
        ):
            problems.append(f"{retransmits} retransmits, more than {probe.max_retransmits}")
        return result_of(
            name,
            kind,
            target,
            *problems,
            throughput_mbps=mbps,
            retransmits=retransmits,
            exit_code=exit_code,
        )
    total = end.get("sum") or {}
    sent_packets = sent.get("packets", total.get("packets"))
    # The server's "packets" is the highest sequence number it saw and "lost_packets" the
    # gaps below it; what arrived is the difference (iperf3 before 3.11 has only "sum").
    counts = received if "packets" in received else total
    got = (counts.get("packets") or 0) - (counts.get("lost_packets") or 0)
    loss = None
    if isinstance(sent_packets, int) and sent_packets > 0 and isinstance(got, int):
        loss = round(100.0 * max(sent_packets - got, 0) / sent_packets, 3)
    if loss is None:
        problems.append("iperf3 reported no datagram counts")
    elif loss > probe.max_loss_percent:
        problems.append(f"{loss:.1f}% of datagrams lost, more than {probe.max_loss_percent:g}%")
    return result_of(
        name,
        kind,
        target,
        *problems,
        throughput_mbps=mbps,
        sent=sent_packets if isinstance(sent_packets, int) else None,
        received=got if isinstance(got, int) else None,
        loss_percent=loss,
        exit_code=exit_code,
    )


PING_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
PING_RTT = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/mdev)? = ([\d.]+)/([\d.]+)/([\d.]+)")


def parse_ping(
    name: str, target: str, probe: IcmpProbe, exit_code: int, stdout: str, stderr: str
) -> ProbeResult:
    """iputils (or busybox) ping's summary: transmitted, received, min/avg/max RTT."""
    counts = PING_COUNTS.search(stdout)
    if counts is None:
        reason = _first_line(stderr) or _first_line(stdout) or f"exit {exit_code}"
        if exit_code == TIMEOUT_EXIT:
            reason = f"ping did not finish within {probe_seconds(probe):g} s (stopped)"
        return result_of(name, "icmp", target, f"ping: {reason}", exit_code=exit_code)
    sent, got = int(counts.group(1)), int(counts.group(2))
    loss = round(100.0 * (sent - got) / sent, 3) if sent else 100.0
    rtt = None
    match = PING_RTT.search(stdout)
    if match:
        rtt = RoundTrip(
            min=float(match.group(1)), avg=float(match.group(2)), max=float(match.group(3))
        )
    problems = []
    if loss > probe.max_loss_percent:
        problems.append(
            f"{loss:.1f}% of echo requests unanswered, more than {probe.max_loss_percent:g}%"
        )
    if probe.max_rtt_ms is not None and rtt is not None and rtt.avg > probe.max_rtt_ms:
        problems.append(f"average round trip {rtt.avg:.3f} ms, more than {probe.max_rtt_ms:g}")
    return result_of(
        name,
        "icmp",
        target,
        *problems,
        sent=sent,
        received=got,
        loss_percent=loss,
        rtt_ms=rtt,
        exit_code=exit_code,
    )


def parse_command(
    name: str, target: str, probe: CommandProbe, exit_code: int, stdout: str, stderr: str
) -> ProbeResult:
    problems = []
    if exit_code == TIMEOUT_EXIT and probe.exit_code != TIMEOUT_EXIT:
        problems.append(f"did not finish within {probe.timeout:g} s (stopped)")
    elif exit_code != probe.exit_code:
        problems.append(f"exit code {exit_code}, expected {probe.exit_code}")
    if probe.output is not None and re.search(probe.output, stdout, re.MULTILINE) is None:
        problems.append(f"output does not match /{probe.output}/")
    output = stdout + (f"\n[stderr]\n{stderr}" if stderr.strip() else "")
    if len(output) > OUTPUT_KEEP:
        output = output[:OUTPUT_KEEP] + f"\n... ({len(output) - OUTPUT_KEEP} more characters)"
    return result_of(
        name,
        "command",
        target,
        *problems,
        exit_code=exit_code,
        output=output,
    )


def parse(
    name: str,
    topology: Topology,
    probe: TcpProbe | UdpProbe | IcmpProbe | CommandProbe,
    exit_code: int,
    stdout: str,
    stderr: str,
) -> ProbeResult:
    """The result of a probe (not http) from its client command's exit code and output."""
    target = describe(topology, probe)
    if isinstance(probe, TcpProbe | UdpProbe):
        return parse_iperf(name, target, probe, exit_code, stdout, stderr)
    if isinstance(probe, IcmpProbe):
        return parse_ping(name, target, probe, exit_code, stdout, stderr)
    return parse_command(name, target, probe, exit_code, stdout, stderr)


def capture_filter(topology: Topology) -> str | None:
    """A pcap filter for every probe's packets (plus ARP and ICMP, which explain failures),
    or None when a command probe may send anything, or there is no probe (then: all TCP
    and UDP)."""
    terms: list[str] = []
    probes = topology.named_probes()
    if not probes:
        return None
    for _name, probe in probes:
        if isinstance(probe, CommandProbe):
            return None
        if isinstance(probe, HttpProbe):
            term = f"tcp port {probe.port}"
        elif isinstance(probe, TcpProbe | UdpProbe):
            term = f"port {probe.port}"  # the control connection (TCP) and the data
        else:
            continue  # icmp and icmp6 are always in
        if term not in terms:
            terms.append(term)
    return " or ".join([*terms, "arp", "icmp", "icmp6"])
