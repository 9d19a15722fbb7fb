"""Runs a lab's probes in its nodes, one after another, through the node runtime.

What each probe runs and how its output is read is in labctl.core.probes; this
module only starts the commands (an iperf3 server first where one is needed)
and hands their output back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from labctl.core import http, probes
from labctl.core.events import Event
from labctl.core.model import HttpProbe, ProbeSpec, TcpProbe, Topology, UdpProbe

if TYPE_CHECKING:
    from labctl.engine import Engine

SERVER_WAIT = 5.0
"""How long a probe waits for its iperf3 server to listen."""
EXEC_SLACK = 10.0
"""Seconds the runtime waits beyond a probe's own `timeout` before it gives up on the exec."""


def run_probes(
    engine: Engine,
    lab: str,
    topology: Topology,
    into: list[probes.ProbeResult] | None = None,
) -> list[probes.ProbeResult]:
    """Every probe of the topology, in order (the traffic block's http probe first),
    appended to `into` as each one ends."""
    results = into if into is not None else []
    for name, probe in topology.named_probes():
        engine.emit(Event("phase", f"probe {name}: {probes.describe(topology, probe)}"))
        result = run_probe(engine, lab, topology, name, probe)
        engine.emit(
            Event(
                "info" if result.ok else "warning",
                f"probe {name}: {'pass' if result.ok else 'FAIL'}"
                + (f" ({result.summary()})" if result.summary() else "")
                + ("" if result.ok else ": " + "; ".join(result.problems)),
            )
        )
        results.append(result)
    return results


def run_probe(
    engine: Engine, lab: str, topology: Topology, name: str, probe: ProbeSpec
) -> probes.ProbeResult:
    target = probes.describe(topology, probe)
    if isinstance(probe, HttpProbe):
        return probes.from_http(name, target, engine.http_traffic(lab, topology, probe))
    runtime = engine.runtime(topology)
    if isinstance(probe, TcpProbe | UdpProbe):
        server = engine.node(lab, probe.server, topology)
        runtime.exec(server, probes.iperf_server_argv(probe), detach=True)
        if not _listening(engine, lab, topology, probe):
            return probes.ProbeResult(
                name,
                probe.kind,
                target,
                False,
                (
                    f"the iperf3 server on {probe.server}:{probe.port} is not listening after "
                    f"{SERVER_WAIT:g} s (the node image needs iperf3)",
                ),
            )
        argv = probes.iperf_client_argv(topology, probe)
        node = probe.client
    elif probe.kind == "icmp":
        argv = probes.ping_argv(topology, probe)
        node = probe.client
    else:
        argv = probes.command_argv(probe)
        node = probe.node
    handle = engine.node(lab, node, topology)
    outcome = runtime.exec(handle, argv, timeout=probes.probe_seconds(probe) + EXEC_SLACK)
    return probes.parse(name, topology, probe, outcome.exit_code, outcome.stdout, outcome.stderr)


def _listening(engine: Engine, lab: str, topology: Topology, probe: TcpProbe | UdpProbe) -> bool:
    from labctl.engine import _socket_tables

    runtime = engine.runtime(topology)
    handle = engine.node(lab, probe.server, topology)
    deadline = time.monotonic() + SERVER_WAIT
    while time.monotonic() < deadline:
        # iperf3's control connection is TCP, also for -u.
        if http.listening(_socket_tables(runtime, handle), probe.port):
            return True
        time.sleep(0.02)
    return False
