"""A snapshot of everything on the host that a lab could leave behind.

Taken before `up` and after `down`; the difference must be empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Where labctl keeps run-time files outside a run directory. Lock files stay on purpose
# (flock needs a file; they are empty); logs in /var/log/labctl are kept for debugging.
WATCHED_DIRS = ("/run/labctl", "/etc/netns", "/run/netns")
HOST_PROCESSES = {"tcpdump", "ovs-vswitchd", "ovsdb-server", "busybox", "curl", "iperf3"}


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    return done.stdout if done.returncode == 0 else ""


@dataclass(frozen=True)
class HostSnapshot:
    links: frozenset[str]
    netns: frozenset[str]
    containers: frozenset[str]
    iptables: frozenset[str]
    ip6tables: frozenset[str]
    nft: frozenset[str]
    processes: frozenset[str]
    files: frozenset[str]

    @classmethod
    def take(cls) -> HostSnapshot:
        links = json.loads(_run(["ip", "-j", "link", "show"]) or "[]")
        containers = _run(["docker", "ps", "-a", "--format", "{{.Names}}"]).split()
        # Zombies are not left behind by labctl: they wait for pid 1 to reap them.
        procs = [
            fields[1]
            for fields in (
                line.split(None, 1) for line in _run(["ps", "-eo", "stat=,comm="]).splitlines()
            )
            if len(fields) == 2 and not fields[0].startswith("Z")
        ]
        return cls(
            links=frozenset(f"{link['ifname']}" for link in links),
            netns=frozenset(
                line.split()[0]
                for line in _run(["ip", "netns", "list"]).splitlines()
                if line.strip()
            ),
            containers=frozenset(containers),
            iptables=frozenset(_run(["iptables", "-S"]).splitlines()),
            ip6tables=frozenset(_run(["ip6tables", "-S"]).splitlines()),
            nft=frozenset(_run(["nft", "--stateless", "list", "ruleset"]).splitlines())
            if shutil.which("nft")
            else frozenset(),
            # Processes labctl might start on the host and must stop again.
            processes=frozenset(p for p in procs if p in HOST_PROCESSES),
            files=frozenset(_files()),
        )

    def added_since(self, before: HostSnapshot) -> dict[str, list[str]]:
        diff = {}
        for field in self.__dataclass_fields__:
            added = sorted(getattr(self, field) - getattr(before, field))
            if added:
                diff[field] = added
        return diff


def _files() -> list[str]:
    found = []
    for root in WATCHED_DIRS:
        for directory, _dirs, names in os.walk(root):
            found += [str(Path(directory) / name) for name in names if not name.endswith(".lock")]
    return found
