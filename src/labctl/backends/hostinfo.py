"""Versions of everything on the packet path, for the run manifest."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from typing import Any

OVS_VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"


def _output(argv: list[str]) -> str | None:
    """What a version command prints (stdout, else stderr), or None if it cannot run."""
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout or done.stderr).strip()


def _first_line(argv: list[str]) -> str | None:
    text = _output(argv)
    return text.splitlines()[0] if text else None


def _dpdk_version() -> str | None:
    match = re.search(r"DPDK\s+([\w.\-]+)", _output([OVS_VSWITCHD_DPDK, "--version"]) or "")
    return match.group(1) if match else None


def host_versions(docker_client: Any = None) -> dict[str, Any]:
    docker_version = None
    if docker_client is not None:
        try:
            docker_version = docker_client.version().get("Version")
        except Exception:  # noqa: BLE001 - a manifest field, never a reason to fail a run
            docker_version = None
    return {
        "kernel": platform.release(),
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "docker": docker_version,
        "ovs": _first_line(["ovs-vswitchd", "--version"]),
        "dpdk": _dpdk_version(),
        "tcpdump": _first_line(["tcpdump", "--version"]),
        "python": platform.python_version(),
    }
