"""The one exception hierarchy of labctl.

Every error a user can cause says where (file:line:column, or the host
requirement) and how to fix it. The CLI maps each class to an exit code and
prints one line per problem, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class LabctlError(Exception):
    """Base class. `exit_code` is what the CLI returns for it."""

    exit_code = 1

    def lines(self) -> list[str]:
        return [str(self)]


@dataclass(frozen=True)
class Problem:
    """One problem in a topology file."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(LabctlError):
    """The topology (or another user file) is invalid. Nothing was created."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        super().__init__("\n".join(str(p) for p in self.problems))

    def lines(self) -> list[str]:
        return [str(p) for p in self.problems]


class UsageError(LabctlError):
    """A command was called in a way that cannot work (no such lab, lab already up...)."""

    exit_code = 2


class PrerequisiteError(LabctlError):
    """The host lacks something labctl needs. The message names the fix."""

    exit_code = 3

    def __init__(self, requirement: str, fix: str):
        self.requirement = requirement
        self.fix = fix
        super().__init__(f"{requirement}; fix: {fix}")


class BackendError(LabctlError):
    """A backend (Docker, netlink, OVSDB, iptables, capture) failed.

    Raised at the backend boundary, wrapping the library's own exception so the
    user sees what labctl was doing, not a stack of library frames.
    """

    exit_code = 4

    def __init__(self, action: str, cause: object, hint: str | None = None):
        self.action = action
        self.cause = cause
        self.hint = hint
        text = f"{action}: {_text_of(cause)}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


def _text_of(cause: object) -> str:
    """str(cause), also for a library exception whose __str__ itself fails (ovsdbapp's
    OvsdbConnectionUnavailable without `msg`): a wrapped error must never raise anew."""
    try:
        return str(cause)
    except Exception:  # noqa: BLE001 - any failure of a foreign __str__
        return f"{type(cause).__name__} (its message could not be read)"


class TeardownError(LabctlError):
    """`down` could not remove everything. Lists what was left behind."""

    exit_code = 5

    def __init__(self, leftovers: list[str]):
        self.leftovers = leftovers
        super().__init__("could not remove: " + "; ".join(leftovers))

    def lines(self) -> list[str]:
        return ["teardown left resources behind:"] + [f"  {item}" for item in self.leftovers]
