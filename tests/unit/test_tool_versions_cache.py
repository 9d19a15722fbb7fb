"""Tool versions are asked once and kept until a tool's file (or the kernel) changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labctl.backends import hostinfo

pytestmark = pytest.mark.unit


def test_versions_are_cached_until_a_tool_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(hostinfo.CACHE_DIR_ENV, str(tmp_path / "cache"))
    tool = tmp_path / "tcpdump"
    tool.write_text("#!/bin/sh\n")
    monkeypatch.setattr(hostinfo.shutil, "which", lambda name: str(tool))
    asked: list[int] = []

    def ask() -> dict[str, str]:
        asked.append(1)
        return {"tcpdump": f"tcpdump version {len(asked)}"}

    monkeypatch.setattr(hostinfo, "_tool_versions", ask)
    assert hostinfo.tool_versions() == {"tcpdump": "tcpdump version 1"}
    assert hostinfo.tool_versions() == {"tcpdump": "tcpdump version 1"}
    assert len(asked) == 1
    # An upgrade replaces the binary: new size and time, so the tools are asked again.
    tool.write_text("#!/bin/sh\n# upgraded\n")
    os.utime(tool, ns=(1, 1))
    assert hostinfo.tool_versions() == {"tcpdump": "tcpdump version 2"}
    assert len(asked) == 2
    # A torn cache file is ignored, not an error.
    (tmp_path / "cache" / "tool-versions.json").write_text("{")
    assert hostinfo.tool_versions() == {"tcpdump": "tcpdump version 3"}
