"""HTTP traffic under test: the client command and the interpretation of its output.

The client is one curl inside the client node that runs every request at the same
time (`--parallel`), each on its own TCP connection (the bug shows on the
handshake). A lab where TCP cannot connect then costs one request timeout, not one
per request, and every request still gets its own result line.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from labctl.core.model import Topology, Traffic

# curl exit codes worth naming (man curl, EXIT CODES).
CURL_ERRORS = {
    6: "could not resolve host",
    7: "connection refused or unreachable",
    28: "timed out",
    52: "empty reply from server",
    56: "connection reset while receiving",
}
# %{urlnum}: with --parallel, transfers finish in any order; the index says which one.
BATCH_WRITE_OUT = "%{urlnum} %{exitcode} %{http_code} %{time_connect} %{time_total}\\n"
PARALLEL_MAX = 50
"""At most this many requests in flight (curl's own default); more wait for a free slot."""


def target_address(topology: Topology, traffic: Traffic) -> str:
    """The server's address on the client's subnet, else its first (Topology.target)."""
    found = topology.target(traffic.client, traffic.server, traffic.family)
    if found is None:
        raise ValueError(f"server {traffic.server} has no {traffic.family} address")
    return str(found[1].ip)


def url(topology: Topology, traffic: Traffic) -> str:
    address = target_address(topology, traffic)
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{traffic.port}{traffic.path}"


def batch_client_argv(topology: Topology, traffic: Traffic) -> list[str]:
    """One curl for all requests, run concurrently: one exec, and a lab where TCP cannot
    connect waits out one timeout instead of one per request. Each URL is its own transfer
    on its own connection (--parallel-immediate opens them at once instead of waiting to
    reuse one; the server is asked to close it), so every request still makes its own TCP
    handshake, which is where the checksum bug shows."""
    target = url(topology, traffic)
    argv = [
        "curl",
        "--silent",
        "--show-error",
        "--parallel",
        "--parallel-immediate",
        "--parallel-max",
        str(min(traffic.requests, PARALLEL_MAX)),
        "--header",
        "Connection: close",
        "--max-time",
        str(traffic.timeout),
        "--write-out",
        BATCH_WRITE_OUT,
    ]
    for _ in range(traffic.requests):
        argv += ["--output", "/dev/null", target]
    return argv


def batch_seconds(traffic: Traffic) -> float:
    """The longest batch_client_argv can take: one timeout per round of parallel requests."""
    rounds = -(-traffic.requests // PARALLEL_MAX)
    return rounds * float(traffic.timeout)


def parse_batch(requests: int, exit_code: int, stdout: str, stderr: str) -> list[RequestResult]:
    """Results of batch_client_argv: one write-out line per transfer, in the order the
    transfers finished, each starting with its 0-based URL index."""
    results = []
    by_index: dict[int, list[str]] = {}
    for line in stdout.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[0].isdigit():
            by_index.setdefault(int(fields[0]) + 1, fields[1:])
    errors = [line for line in stderr.splitlines() if line.startswith("curl: (")]
    for index in range(1, requests + 1):
        fields = by_index.get(index, [])
        if len(fields) != 4:
            reason = errors[-1] if errors else f"curl exit {exit_code}"
            results.append(
                RequestResult(index, False, None, None, None, f"no result from curl ({reason})")
            )
            continue
        code = int(fields[0]) if fields[0].isdigit() else -1
        transfer_err = next((e for e in errors if e.startswith(f"curl: ({code})")), "")
        results.append(parse_curl(index, code, " ".join(fields[1:]), transfer_err))
    return results


def server_argv(port: int, www_root: str = "/srv/www") -> list[str]:
    # busybox httpd in the foreground of a detached exec; binds all addresses (v4 and v6).
    return ["busybox", "httpd", "-f", "-p", str(port), "-h", www_root]


@dataclass(frozen=True)
class RequestResult:
    index: int
    ok: bool
    status: int | None
    connect_seconds: float | None
    total_seconds: float | None
    error: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def parse_curl(index: int, exit_code: int, stdout: str, stderr: str) -> RequestResult:
    fields = stdout.strip().split()
    status = connect = total = None
    if len(fields) == 3:
        try:
            status = int(fields[0]) or None
            connect, total = float(fields[1]), float(fields[2])
        except ValueError:
            status = None
    ok = exit_code == 0 and status is not None and 200 <= status < 400
    error = None
    if exit_code != 0:
        reason = CURL_ERRORS.get(
            exit_code, stderr.strip().splitlines()[-1] if stderr.strip() else "failed"
        )
        error = f"curl exit {exit_code}: {reason}"
    elif not ok:
        error = f"HTTP status {status}"
    return RequestResult(index, ok, status, connect, total, error)


@dataclass(frozen=True)
class TrafficSummary:
    url: str
    results: tuple[RequestResult, ...]

    @property
    def succeeded(self) -> int:
        return sum(1 for r in self.results if r.ok)

    @property
    def failed(self) -> int:
        return len(self.results) - self.succeeded

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def latency_ms(self) -> dict[str, float] | None:
        times = [
            r.total_seconds * 1000 for r in self.results if r.ok and r.total_seconds is not None
        ]
        if not times:
            return None
        return {"min": min(times), "median": statistics.median(times), "max": max(times)}

    def to_dict(self) -> dict[str, object]:
        return {
            "url": self.url,
            "requests": len(self.results),
            "succeeded": self.succeeded,
            "failed": self.failed,
            "latency_ms": self.latency_ms(),
            "results": [r.to_dict() for r in self.results],
        }

    def render_text(self) -> str:
        lines = [f"HTTP {self.url}"]
        for r in self.results:
            if r.ok:
                lines.append(f"  #{r.index:<3} {r.status}  {1000 * (r.total_seconds or 0):8.1f} ms")
            else:
                lines.append(f"  #{r.index:<3} FAIL {r.error}")
        lat = self.latency_ms()
        summary = f"  {self.succeeded}/{len(self.results)} succeeded"
        if lat:
            summary += (
                f"; latency min {lat['min']:.1f} ms, median {lat['median']:.1f} ms, "
                f"max {lat['max']:.1f} ms"
            )
        lines.append(summary)
        return "\n".join(lines)


def listening(socket_tables: str, port: int) -> bool:
    """Whether /proc/net/tcp{,6} text shows a socket listening (state 0A) on `port`."""
    port_hex = f":{port:04X}"
    for line in socket_tables.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1].endswith(port_hex) and fields[3] == "0A":
            return True
    return False
