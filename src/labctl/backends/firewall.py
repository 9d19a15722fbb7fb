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
    """iptables/ip6tables rules for lab bridges. `run` is injectable for tests."""

    def __init__(self, binaries: Sequence[str] = (IPV4, IPV6), run: Runner = run_command) -> None:
        self._binaries = tuple(binaries)
        self._run = run

    def check(self) -> None:
        """Raise PrerequisiteError unless the IPv4 binary is present and works."""
        if shutil.which(self._binaries[0]) is None:
            raise PrerequisiteError(
                f"{self._binaries[0]} not found", "apt-get install iptables (run as root)"
            )
        if not self._usable(self._binaries[0]):
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
        for binary in self._usable_binaries():
            placed = next((c for c in CHAINS if self._has_rule(binary, c, spec)), None)
            if placed is None:
                placed = self._target_chain(binary)
                self._must(binary, ["-I", placed, "1", *spec], f"adding {binary} rule for {bridge}")
            chains[binary] = placed
        return chains

    def remove_bridge_accept(self, lab: str, bridge: str) -> None:
        """Delete the lab's rule for `bridge` wherever it is; absence is fine."""
        spec = bridge_rule(lab, bridge)
        for binary in self._usable_binaries():
            for chain in CHAINS:
                while self._has_rule(binary, chain, spec):
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
        for binary in self._usable_binaries():
            for chain in self._existing_chains(binary):
                for spec in self._rules(binary, chain):
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

    def _succeeds(self, argv: Sequence[str]) -> bool:
        """Run a probe; a probe that cannot run at all answers no."""
        try:
            return self._run(argv).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _usable(self, binary: str) -> bool:
        return self._succeeds([binary, "-w", "-S", "FORWARD"])

    def _usable_binaries(self) -> list[str]:
        # ip6tables may be installed while the kernel lacks IPv6 filtering: skip it then.
        return [b for b in self._binaries if shutil.which(b) is not None and self._usable(b)]

    def _existing_chains(self, binary: str) -> list[str]:
        return [c for c in CHAINS if self._succeeds([binary, "-w", "-S", c])]

    def _target_chain(self, binary: str) -> str:
        return self._existing_chains(binary)[0]

    def _has_rule(self, binary: str, chain: str, spec: Sequence[str]) -> bool:
        # Non-zero also when the chain does not exist: then the rule is not there either.
        return self._succeeds([binary, "-w", "-C", chain, *spec])

    def _rules(self, binary: str, chain: str) -> list[list[str]]:
        """Rule specs of `chain` as `iptables -S` prints them, without '-A CHAIN'."""
        result = self._must(binary, ["-S", chain], f"listing {binary} chain {chain}")
        specs = []
        for line in result.stdout.splitlines():
            tokens = shlex.split(line)
            if len(tokens) > 2 and tokens[0] == "-A" and tokens[1] == chain:
                specs.append(tokens[2:])
        return specs

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
