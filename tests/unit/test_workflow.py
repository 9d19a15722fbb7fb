"""The CI workflow runs every shard of the matrix once and merges them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit
WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "matrix.yml"


def test_every_shard_runs_once_and_the_merge_takes_them_all() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text())
    count = int(flow["env"]["SHARDS"])
    matrix = flow["jobs"]["matrix"]
    assert matrix["strategy"]["matrix"]["shard"] == list(range(1, count + 1))
    run = " ".join(step.get("run", "") for step in matrix["steps"])
    assert "--shard ${{ matrix.shard }}/${{ env.SHARDS }}" in run
    merge = flow["jobs"]["merge"]
    assert merge["needs"] == "matrix" and merge["if"] == "always()"
    merge_run = " ".join(step.get("run", "") for step in merge["steps"])
    assert "labctl report merge shards/" in merge_run
