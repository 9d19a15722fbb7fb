"""Which DPDK the Open vSwitch DPDK build uses, and the names of its driver packages.

Debian and Ubuntu ship every DPDK driver as a plugin in a package named after
DPDK's ABI version, which changes with each DPDK release: Debian 12 has DPDK
22.11 (ABI 23: librte-net-af-packet23, plugins in /usr/lib/<triplet>/dpdk/pmds-23.0),
Ubuntu 24.04 DPDK 23.11 (ABI 24: librte-net-af-packet24, pmds-24.0). The ABI is
read from what openvswitch-switch-dpdk depends on (`apt-cache depends`:
librte-eal<ABI>) before it is installed, and from the installed librte_eal.so.<ABI>
after.

Pure and standard library only: scripts/provision.sh runs this file with the
system's python3 before labctl's virtualenv exists:

    apt-cache depends openvswitch-switch-dpdk | python3 src/labctl/core/dpdk.py packages
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import PurePath

# The plugins labctl's DPDK ports need: af_packet attaches a veth, af_xdp is the other
# port driver, mempool_ring backs every port's mbuf pool ("Failed to create mempool").
DRIVER_PLUGINS = ("net_af_packet", "mempool_ring", "net_af_xdp")
UNKNOWN_ABI = "<ABI>"


def _newest(versions: Iterable[str]) -> str | None:
    found = sorted(set(versions), key=lambda v: tuple(int(p) for p in v.split(".")))
    return found[-1] if found else None


def abi_from_depends(text: str) -> str | None:
    """The DPDK ABI from a package list (`apt-cache depends openvswitch-switch-dpdk`,
    `dpkg-query -W`): the N of librte-eal<N>."""
    return _newest(re.findall(r"\blibrte-eal(\d+(?:\.\d+)?)\b", text))


def abi_from_libraries(paths: Iterable[str]) -> str | None:
    """The DPDK ABI from installed library paths: the N of librte_eal.so.<N>[.minor]."""
    versions = []
    for path in paths:
        match = re.fullmatch(r"librte_eal\.so\.(\d+)(?:\.\d+)*", PurePath(path).name)
        if match:
            versions.append(match.group(1))
    return _newest(versions)


def package(plugin: str, abi: str | None) -> str:
    """The Debian/Ubuntu package of a DPDK plugin (net_af_packet -> librte-net-af-packet23)."""
    return f"librte-{plugin.replace('_', '-')}{abi or UNKNOWN_ABI}"


def plugin_glob(abi: str | None) -> str:
    """Where the plugins of that DPDK are (a glob with {plugin}); any DPDK's if unknown."""
    folder = f"pmds-{abi}.0" if abi else "pmds-*"
    return f"/usr/lib/*/dpdk/{folder}/librte_{{plugin}}.so*"


def main(argv: list[str]) -> int:
    if argv[1:] != ["packages"]:
        print(f"usage: {argv[0]} packages < package-list", file=sys.stderr)
        return 2
    abi = abi_from_depends(sys.stdin.read())
    if abi is None:
        print("no librte-eal<ABI> in the package list: is openvswitch-switch-dpdk", file=sys.stderr)
        print("available (apt-get update) and built with DPDK?", file=sys.stderr)
        return 1
    print("\n".join(package(plugin, abi) for plugin in DRIVER_PLUGINS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
