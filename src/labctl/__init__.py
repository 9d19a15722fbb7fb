"""labctl: reproducible container network labs with packet forensics."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labctl.api import Lab
    from labctl.errors import LabctlError

__all__ = ["LabctlError", "Lab"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Nothing is imported with the package itself: the `labctl` program (labctl.warm)
    # starts by handing the command over, and the API pulls in docker and pyroute2.
    if name == "Lab":
        from labctl.api import Lab

        return Lab
    if name == "LabctlError":
        from labctl.errors import LabctlError

        return LabctlError
    raise AttributeError(name)
