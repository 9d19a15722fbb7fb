"""The DPDK driver packages and plugin folder, from what the distribution ships."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labctl.core import dpdk

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# `apt-cache depends openvswitch-switch-dpdk` on Debian 12 (OVS 3.1, DPDK 22.11)
DEBIAN_12 = """\
openvswitch-switch-dpdk
  Depends: dpdk
  Depends: openvswitch-switch
  Depends: libbpf1
  Depends: libc6
  Depends: libcap-ng0
  Depends: libnuma1
  Depends: librte-eal23
  Depends: librte-ethdev23
  Depends: librte-mbuf23
  Depends: librte-mempool23
  Depends: librte-meter23
  Depends: librte-vhost23
  Depends: libssl3
  Depends: libunbound8
  Depends: libxdp1
  Enhances: openvswitch-switch
"""

# ... and on Ubuntu 24.04 (OVS 3.3, DPDK 23.11)
UBUNTU_24_04 = """\
openvswitch-switch-dpdk
  Depends: dpdk
  Depends: openvswitch-switch
  Depends: libbpf1
  Depends: libc6
  Depends: libcap-ng0
  Depends: libnuma1
  Depends: librte-eal24
  Depends: librte-ethdev24
  Depends: librte-mbuf24
  Depends: librte-mempool24
  Depends: librte-meter24
  Depends: librte-vhost24
  Depends: libssl3t64
  Depends: libunbound8
  Depends: libxdp1
  Enhances: openvswitch-switch
"""


@pytest.mark.parametrize(("depends", "abi"), [(DEBIAN_12, "23"), (UBUNTU_24_04, "24")])
def test_driver_packages_follow_the_dpdk_that_ovs_depends_on(depends: str, abi: str) -> None:
    assert dpdk.abi_from_depends(depends) == abi
    assert [dpdk.package(p, abi) for p in dpdk.DRIVER_PLUGINS] == [
        f"librte-net-af-packet{abi}",
        f"librte-mempool-ring{abi}",
        f"librte-net-af-xdp{abi}",
    ]
    assert dpdk.plugin_glob(abi) == f"/usr/lib/*/dpdk/pmds-{abi}.0/librte_{{plugin}}.so*"


def test_installed_dpdk_is_read_from_its_eal_library() -> None:
    debian = [
        "/usr/lib/x86_64-linux-gnu/librte_eal.so.23",
        "/usr/lib/x86_64-linux-gnu/librte_eal.so.23.0",
    ]
    assert dpdk.abi_from_libraries(debian) == "23"
    ubuntu = ["/usr/lib/aarch64-linux-gnu/librte_eal.so.24.0", "/usr/lib/x/librte_ethdev.so.24"]
    assert dpdk.abi_from_libraries(ubuntu) == "24"
    assert dpdk.abi_from_libraries(["/usr/lib/x/librte_eal.so"]) is None
    assert dpdk.abi_from_depends("Depends: libc6\n") is None
    assert dpdk.package("net_af_packet", None) == "librte-net-af-packet<ABI>"
    assert dpdk.plugin_glob(None) == "/usr/lib/*/dpdk/pmds-*/librte_{plugin}.so*"


@pytest.mark.parametrize(("depends", "abi"), [(DEBIAN_12, "23"), (UBUNTU_24_04, "24")])
def test_provision_runs_the_lookup_as_a_script(depends: str, abi: str) -> None:
    """As scripts/provision.sh does: the file alone, no labctl on the path, -I -S."""
    script = ROOT / "src" / "labctl" / "core" / "dpdk.py"
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "packages"],
        input=depends,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        f"librte-{d}{abi}" for d in ("net-af-packet", "mempool-ring", "net-af-xdp")
    ]
    provision = [
        line.partition("#")[0]
        for line in (ROOT / "scripts" / "provision.sh").read_text().splitlines()
    ]
    assert any("src/labctl/core/dpdk.py" in line for line in provision)
    assert not [line for line in provision if "librte-" in line]  # no package name hard-coded
    missing = subprocess.run(
        [sys.executable, "-I", "-S", str(script), "packages"],
        input="Depends: libc6\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and "librte-eal" in missing.stderr
