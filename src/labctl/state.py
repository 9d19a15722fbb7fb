"""What exists at run time, as opposed to what was asked for (the topology).

One JSON file per lab, rewritten atomically after every step that succeeds,
so that `down` can replay it even after a crash. A per-lab lock file
serialises labctl processes working on the same lab.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.store import file_lock, read_json, write_json

DEFAULT_STATE_DIR = "/var/lib/labctl"


def state_dir() -> Path:
    return Path(os.environ.get("LABCTL_STATE_DIR", DEFAULT_STATE_DIR))


@dataclass
class LabState:
    lab: str
    topology_file: str
    topology: dict[str, Any]
    switch_kind: str | None
    created_at: float = field(default_factory=time.time)
    status: str = "building"  # building, up, failed
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    completed: list[dict[str, Any]] = field(default_factory=list)  # step key, action, result

    def to_dict(self) -> dict[str, Any]:
        return {
            "lab": self.lab,
            "topology_file": self.topology_file,
            "topology": self.topology,
            "switch_kind": self.switch_kind,
            "created_at": self.created_at,
            "status": self.status,
            "nodes": self.nodes,
            "completed": self.completed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabState:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class StateStore:
    def __init__(self, root: Path | None = None):
        self.root = root or state_dir()

    def path(self, lab: str) -> Path:
        return self.root / f"{lab}.json"

    def load(self, lab: str) -> LabState | None:
        try:
            data = read_json(self.path(lab))
            return LabState.from_dict(data) if data is not None else None
        except (OSError, ValueError, TypeError):
            # A torn or foreign file: `down` still sweeps by labels without it.
            return None

    def save(self, state: LabState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.path(state.lab), state.to_dict(), sort_keys=True)

    def delete(self, lab: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(lab).unlink()

    def labs(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.stem for p in self.root.glob("*.json"))

    @contextlib.contextmanager
    def lock(self, lab: str, wait_seconds: float = 30) -> Iterator[None]:
        """Serialise labctl processes on one lab; fail clearly instead of hanging.

        The lock file is removed again when the lab is gone, so labs leave no trace."""
        with file_lock(
            self.root / f"{lab}.lock",
            f"lab {lab!r}",
            wait_seconds,
            remove_after=lambda: not self.path(lab).exists(),
        ):
            yield
