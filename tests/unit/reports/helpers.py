"""The sample matrix result and golden-file comparison for the report tests."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
GOLDEN = HERE / "golden"
SAMPLE = HERE / "sample_matrix.json"
RUN_ROOT = "runs/veth-checksum/20261125-074500"


def sample() -> dict[str, Any]:
    """A fresh copy of the sample result: 8 cells, one of them failed, two skipped."""
    result: dict[str, Any] = json.loads(SAMPLE.read_text(encoding="utf-8"))
    return copy.deepcopy(result)


def cell(result: dict[str, Any], switch: str, offload: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        c for c in result["cells"] if c["switch"] == switch and c["offload"] == offload
    )
    return found


def assert_golden(name: str, text: str) -> None:
    """Compare with golden/<name>; LABCTL_UPDATE_GOLDEN=1 rewrites the file."""
    path = GOLDEN / name
    if os.environ.get("LABCTL_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} missing: run with LABCTL_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")
