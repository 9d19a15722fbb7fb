"""Firewall backend: lets a lab bridge's own traffic through iptables FORWARD.

Why this exists: with `net.bridge.bridge-nf-call-iptables=1` (dockerd turns it
on) frames bridged between two ports of a Linux bridge traverse the iptables
FORWARD chain, and dockerd sets FORWARD's policy to DROP. A lab bridge then
silently drops everything. One ACCEPT rule per lab, scoped to frames that
enter *and* leave the lab bridge, fixes that and nothing else.

Rules carry the comment `labctl lab=<lab>`; removal and sweeps match that
exact comment and delete by the exact rule spec. Nothing is ever flushed.
Commands run from argv lists, never through a shell.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from labctl.backends.base import Owned
from labctl.core import names
from labctl.errors import BackendError, PrerequisiteError

IPV4 = "iptables"
IPV6 = "ip6tables"
# Docker jumps from FORWARD to DOCKER-USER first and never flushes it: rules
# there run before dockerd's own. Plain FORWARD is the fallback without Docker.
CHAINS = ("DOCKER-USER", "FORWARD")
# firewall_comment("") is the prefix every labctl comment starts with.
COMMENT_PREFIX = names.firewall_comment("")
TIMEOUT = 30.0

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=TIMEOUT)


def bridge_rule(lab: str, bridge: str) -> list[str]:
    """Rule spec (without chain) accepting frames bridged within `bridge` only."""
    comment = names.firewall_comment(lab)
    return ["-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]


def comment_of(spec: Sequence[str]) -> str | None:
    """The --comment value of a parsed rule spec, if any."""
    for option, value in zip(spec, spec[1:], strict=False):
        if option == "--comment":
            return value
    return None


def lab_of_comment(comment: str | None) -> str | None:
    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    return comment[len(COMMENT_PREFIX) :] or None


class Iptables:
    """iptables/ip6tables rules for lab bridges. `run` is injectable for tests.

    Each operation reads the whole filter table once per family (`iptables -S`) and
    decides from that listing; only changes are further commands. A family whose
    binary is missing or cannot read the table (ip6tables on a kernel without IPv6
    filtering) is skipped, as if it had no rules.
    """

    def __init__(self, binaries: Sequence[str] = (IPV4, IPV6), run: Runner = run_command) -> None:
        self._binaries = tuple(binaries)
        self._run = run

    def check(self) -> None:
        """Raise PrerequisiteError unless the IPv4 binary is present and works."""
        if shutil.which(self._binaries[0]) is None:
            raise PrerequisiteError(
                f"{self._binaries[0]} not found", "apt-get install iptables (run as root)"
            )
        if self._table(self._binaries[0]) is None:
            raise PrerequisiteError(
                f"{self._binaries[0]} cannot read the filter table",
                "run as root with CAP_NET_ADMIN; load the ip_tables/nf_tables modules",
            )

    def ensure_bridge_accept(self, lab: str, bridge: str) -> dict[str, str]:
        """Insert the ACCEPT rule at the top of DOCKER-USER (else FORWARD), per family.

        Returns the chain used for each family, e.g. {"iptables": "DOCKER-USER"}.
        """
        spec = bridge_rule(lab, bridge)
        chains: dict[str, str] = {}
        for binary, table in self._tables():
            placed = next((c for c in CHAINS if spec in table.get(c, [])), None)
            if placed is None:
                placed = next(c for c in CHAINS if c in table)
                self._must(binary, ["-I", placed, "1", *spec], f"adding {binary} rule for {bridge}")
            chains[binary] = placed
        return chains

    def remove_bridge_accept(self, lab: str, bridge: str) -> None:
        """Delete the lab's rule for `bridge` wherever it is (every copy); absence is fine."""
        spec = bridge_rule(lab, bridge)
        for binary, table in self._tables():
            for chain in CHAINS:
                for _copy in range(table.get(chain, []).count(spec)):
                    self._must(binary, ["-D", chain, *spec], f"removing {binary} rule for {bridge}")

    def sweep(self, lab: str) -> list[Owned]:
        """Delete every rule in FORWARD/DOCKER-USER whose comment is exactly this lab's."""
        removed = []
        for rule in self.list_owned(lab):
            binary, chain = rule.details["binary"], rule.details["chain"]
            spec = rule.details["spec"]
            self._must(binary, ["-D", chain, *spec], f"removing {binary} rule {rule.name}")
            removed.append(rule)
        return removed

    def list_owned(self, lab: str | None = None) -> list[Owned]:
        owned = []
        for binary, table in self._tables():
            for chain in CHAINS:
                for spec in table.get(chain, []):
                    owner = lab_of_comment(comment_of(spec))
                    if owner is None or (lab is not None and owner != lab):
                        continue
                    owned.append(
                        Owned(
                            kind="iptables-rule",
                            name=f"{binary} {chain} {shlex.join(spec)}",
                            lab=owner,
                            details={"binary": binary, "chain": chain, "spec": spec},
                        )
                    )
        return owned

    # -- internals ---------------------------------------------------------

    def _tables(self) -> list[tuple[str, dict[str, list[list[str]]]]]:
        """(binary, filter table) for every usable family, read side by side."""
        binaries = [b for b in self._binaries if shutil.which(b) is not None]
        if len(binaries) < 2:
            tables = [self._table(b) for b in binaries]
        else:
            with ThreadPoolExecutor(max_workers=len(binaries)) as pool:
                tables = list(pool.map(self._table, binaries))
        return [(b, t) for b, t in zip(binaries, tables, strict=True) if t is not None]

    def _table(self, binary: str) -> dict[str, list[list[str]]] | None:
        """The filter table as `iptables -S` prints it: every chain (built-in or not) with
        its rule specs, without '-A CHAIN'. None if the binary cannot read it."""
        try:
            result = self._run([binary, "-w", "-S"])
        except (OSError, subprocess.TimeoutExpired):
            return None
        if result.returncode != 0:
            return None
        return parse_rules(result.stdout)

    def _must(
        self, binary: str, args: Sequence[str], action: str
    ) -> subprocess.CompletedProcess[str]:
        try:
            result = self._run([binary, "-w", *args])
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BackendError(action, error) from error
        if result.returncode != 0:
            hint = "run as root" if "ermission" in result.stderr else None
            raise BackendError(action, result.stderr.strip() or f"exit {result.returncode}", hint)
        return result


def parse_rules(listing: str) -> dict[str, list[list[str]]]:
    """`iptables -S` output: {chain: [rule spec, ...]}; a chain without rules maps to []."""
    table: dict[str, list[list[str]]] = {}
    for line in listing.splitlines():
        tokens = shlex.split(line)
        if len(tokens) >= 2 and tokens[0] in ("-P", "-N"):
            table.setdefault(tokens[1], [])
        elif len(tokens) > 2 and tokens[0] == "-A":
            table.setdefault(tokens[1], []).append(tokens[2:])
    return table
