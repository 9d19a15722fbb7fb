"""labctl: reproducible container network labs with packet forensics."""

from labctl.errors import LabctlError

__all__ = ["LabctlError", "Lab"]
__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # The API pulls in docker and pyroute2; keep `import labctl` light for the pure core.
    if name == "Lab":
        from labctl.api import Lab

        return Lab
    raise AttributeError(name)
