"""The shipped examples: found by their repository paths where no such file exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl import examples
from labctl.core.loader import load_topology
from labctl.errors import UsageError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def test_repository_paths_resolve_to_shipped_copies_only_when_absent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seed = examples.shipped("topologies/seed.yaml")
    assert seed is not None and seed.read_bytes() == (ROOT / "topologies/seed.yaml").read_bytes()
    assert examples.shipped("./labs/veth-checksum") == examples.ROOT / "labs" / "veth-checksum"
    assert examples.shipped("topologies/nosuch.yaml") is None
    assert examples.shipped("other/seed.yaml") is None
    assert examples.shipped("topologies/../topologies/seed.yaml") is None
    assert load_topology("topologies/seed.yaml")[0].name == "seed"
    # A file of the user's own with that name wins.
    (tmp_path / "topologies").mkdir()
    (tmp_path / "topologies" / "seed.yaml").write_text("name: mine\nnodes: {a: {}}\n")
    assert examples.shipped("topologies/seed.yaml") is None
    assert load_topology("topologies/seed.yaml")[0].name == "mine"


def test_every_example_in_the_repository_is_shipped() -> None:
    in_repo = sorted(
        p.relative_to(ROOT) for d in examples.FOLDERS for p in (ROOT / d).rglob("*.yaml")
    )
    assert in_repo and examples.files() == in_repo


def test_write_copies_the_layout_and_never_overwrites(tmp_path: Path) -> None:
    written = examples.write(tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in written) == examples.files()
    mine = tmp_path / "topologies" / "seed.yaml"
    mine.write_text("# edited\n")
    with pytest.raises(UsageError, match="nothing was written"):
        examples.write(tmp_path)
    assert mine.read_text() == "# edited\n"
