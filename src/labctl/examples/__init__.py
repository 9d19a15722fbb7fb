"""The example topologies and labs, shipped inside the package.

In a clone of the repository `topologies/` and `labs/` live at its top and this
folder links to them; a wheel carries copies. So `labctl up topologies/seed.yaml`
works after a plain `pip install` too: a path under topologies/ or labs/ that does
not exist where labctl runs is read from here. `labctl init DIR` writes copies to
edit. Pure: no docker, pyroute2 or ovs.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent
FOLDERS = ("topologies", "labs")


def shipped(path: str | Path) -> Path | None:
    """The shipped copy of an example named as in the repository (topologies/seed.yaml,
    labs/veth-checksum), when `path` does not exist here; else None."""
    given = Path(path)
    if given.is_absolute() or given.exists():
        return None
    parts = [part for part in given.parts if part != "."]
    if not parts or parts[0] not in FOLDERS or ".." in parts:
        return None
    candidate = ROOT.joinpath(*parts)
    return candidate if candidate.exists() else None


def files() -> list[Path]:
    """Every shipped example file, relative to the examples folder."""
    return sorted(
        path.relative_to(ROOT)
        for folder in FOLDERS
        for path in (ROOT / folder).rglob("*.yaml")
        if path.is_file()
    )


def write(target: Path) -> list[Path]:
    """Copy every example under `target`, keeping the layout (a lab names its topology
    by a relative path). Refuses, writing nothing, if any of them exists there."""
    from labctl.errors import UsageError

    existing = [target / rel for rel in files() if (target / rel).exists()]
    if existing:
        raise UsageError(
            f"{', '.join(map(str, existing))} already "
            f"{'exists' if len(existing) == 1 else 'exist'}; "
            "remove or move them, or choose another directory (nothing was written)"
        )
    written = []
    for rel in files():
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes((ROOT / rel).read_bytes())
        written.append(destination)
    return written
