"""Versions of everything on the packet path, for the run manifest."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

OVS_VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
CACHE_DIR_ENV = "LABCTL_CACHE_DIR"
DEFAULT_CACHE_DIR = "/var/cache/labctl"


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


def _tool_versions() -> dict[str, Any]:
    return {
        "os": _first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "ovs": _first_line(["ovs-vswitchd", "--version"]),
        "dpdk": _dpdk_version(),
        "tcpdump": _first_line(["tcpdump", "--version"]),
    }


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV, DEFAULT_CACHE_DIR))


def _fingerprint() -> list[Any]:
    """What the tool versions depend on: each file's path, size and modification time (an
    upgrade replaces the file), and the kernel."""
    files = [
        "/etc/os-release",
        shutil.which("ovs-vswitchd"),
        OVS_VSWITCHD_DPDK,
        shutil.which("tcpdump"),
    ]
    found: list[Any] = [platform.release()]
    for name in files:
        try:
            real = os.path.realpath(name) if name else None
            stat = os.stat(real) if real else None
        except OSError:
            stat = None
        found.append([real, stat.st_size, stat.st_mtime_ns] if stat and real else None)
    return found


def tool_versions() -> dict[str, Any]:
    """Versions of the OS, OVS, DPDK and tcpdump. Asking each tool costs a process, so the
    answers are kept in the cache directory until a tool's file or the kernel changes."""
    key = _fingerprint()
    path = cache_dir() / "tool-versions.json"
    try:
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return dict(cached["versions"])
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        pass
    versions = _tool_versions()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "versions": versions}))
        tmp.replace(path)
    except OSError:
        pass  # no cache: the next process asks the tools again
    return versions


def host_versions(docker_client: Any = None) -> dict[str, Any]:
    docker_version = None
    if docker_client is not None:
        try:
            docker_version = docker_client.version().get("Version")
        except Exception:  # noqa: BLE001 - a manifest field, never a reason to fail a run
            docker_version = None
    tools = tool_versions()
    return {
        "kernel": platform.release(),
        "os": tools.get("os"),
        "docker": docker_version,
        "ovs": tools.get("ovs"),
        "dpdk": tools.get("dpdk"),
        "tcpdump": tools.get("tcpdump"),
        "python": platform.python_version(),
    }
