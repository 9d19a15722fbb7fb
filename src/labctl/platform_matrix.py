"""A matrix over platforms: the host's cells run here (labctl.matrix.MatrixRunner), each
other platform's cells run in one throwaway VM booted from that platform's image, where
labctl (the host's checkout, over virtio-9p) runs `labctl matrix` on the same lab and
writes its report into the host's report directory. The results merge into one report:
every cell names its platform and that platform's kernel, OVS, DPDK and Docker.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from labctl.backends.platform_vm import MARK
from labctl.core import platforms as plat
from labctl.core.matrix import Cell
from labctl.core.matrix import Experiment as Lab
from labctl.core.model import SwitchKind
from labctl.core.result import MatrixResult
from labctl.errors import BackendError, LabctlError, UsageError
from labctl.matrix import MatrixRunner, report_paths

# The platform a labctl runs on, set by the platform VM's job (cells' expectations).
PLATFORM_ENV = "LABCTL_PLATFORM_NAME"
GUEST_LABCTL = "/opt/labctl/venv/bin/python"
GUEST_RUNNER = f"{GUEST_LABCTL} -c 'import sys; from labctl.cli import main; sys.exit(main())'"
# What `labctl matrix` imports on its way to the first cell. Under TCG, importing (and
# compiling: the checkout is a read-only share, no .pyc is kept) takes seconds: the
# guest's matrix process does it while dockerd starts, then waits for DOCKER_UP.
MATRIX_MODULES = (
    "labctl.cli",
    "labctl.core.matrix",
    "labctl.core.schedule",
    "labctl.matrix",
    "labctl.engine",
    "labctl.run",
    "labctl.backends.registry",
    "labctl.backends.docker_runtime",
    "labctl.backends.ovs.switch",
    "labctl.backends.linux_bridge",
    "labctl.backends.capture",
)
# What the cells need only after their traffic (the diagnosis) or the matrix only at its
# end (the reports): imported while dockerd is still starting, one module at a time, and
# no longer once it answers, so that they never hold back the first cell (what is left
# loads on first use).
LATER_MODULES = (
    "labctl.analysis.diagnose",
    "labctl.reports.markdown",
    "labctl.reports.junit",
    "labctl.reports.html",
)
DOCKER_UP = "/run/labctl-docker-up"


def preloaded_runner(python: str = GUEST_LABCTL, ready: str = DOCKER_UP) -> str:
    """A labctl command line (arguments follow) that imports MATRIX_MODULES at once, then
    LATER_MODULES while the file `ready` does not exist yet, then waits for `ready` before
    it runs the command."""
    code = "\n".join(
        [
            "import importlib, os, sys, time",
            f"for module in {list(MATRIX_MODULES)!r}:",
            "    importlib.import_module(module)",
            "uptime = open('/proc/uptime').read().split()[0]",
            f"print(f'{MARK}imports {{uptime}}', file=sys.stderr, flush=True)",
            f"for module in {list(LATER_MODULES)!r}:",
            f"    if os.path.exists({ready!r}):",
            "        break",
            "    importlib.import_module(module)",
            f"while not os.path.exists({ready!r}):",
            "    time.sleep(0.1)",
            "from labctl.cli import main",
            "sys.exit(main())",
        ]
    )
    return f"{python} -c {shlex.quote(code)}"


DOCKERD_WAIT = 240  # seconds
GUEST_HUGEPAGES = 512  # 2 MiB pages: 1 GiB of the VM's 4 GiB for OVS-DPDK


def _memory_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def current_platform() -> str:
    return os.environ.get(PLATFORM_ENV, plat.HOST)


def host_has_ovs_module() -> bool:
    """The openvswitch kernel module is loaded or loadable here."""
    if Path("/sys/module/openvswitch").is_dir():
        return True
    found = subprocess.run(["modprobe", "-n", "-q", "openvswitch"], capture_output=True)
    return found.returncode == 0


def accel() -> str:
    """kvm where a real probe says KVM runs guests, else tcg."""
    from labctl.backends.kvm_probe import probe

    return "kvm" if probe("kvm").works else "tcg"


def guest_setup(src: Path, platform: str, before_docker: Sequence[str] = ()) -> list[str]:
    """What labctl needs in a fresh guest, as scripts/provision.sh sets it up on a host:
    kernel modules, hugepages, dockerd; then labctl (the host's, over 9p) on the path.
    `before_docker` runs while dockerd starts (the environment is set by then)."""
    return [
        # What systemd would have set up: labctl's namespaces want shared mount propagation.
        "mount --make-rshared /",
        "mkdir -p /run/lock /var/log/labctl",
        # labctl's containers have network mode none (labctl wires their interfaces
        # itself) and its firewall rule goes to FORWARD when there is no DOCKER-USER: no
        # docker0 bridge and no iptables rules, which cost dockerd seconds under TCG.
        "dockerd --bridge=none --iptables=false --ip6tables=false "
        ">/var/log/labctl/dockerd.log 2>&1 &",
        f"export PYTHONPATH={shlex.quote(str(src))} PYTHONDONTWRITEBYTECODE=1 LABCTL_WARM=0 "
        f"{PLATFORM_ENV}={shlex.quote(platform)}",
        *before_docker,
        # Without udev nothing creates /dev/net/tun before the module is loaded; the OVS
        # userspace datapath needs it for its bridge's internal port.
        "modprobe -a tun openvswitch br_netfilter 2>/dev/null",
        f"echo {GUEST_HUGEPAGES} >/proc/sys/vm/nr_hugepages",
        # dockerd's first start under TCG can take a minute and more.
        f"deadline=$(( $(cut -d. -f1 /proc/uptime) + {DOCKERD_WAIT} ))",
        # dockerd's API itself: Debian 13's docker.io has no `docker` CLI (docker-cli).
        "until timeout 20 curl -sf --unix-socket /var/run/docker.sock http://docker/_ping "
        ">/dev/null; do",
        "  [ $(cut -d. -f1 /proc/uptime) -lt $deadline ] || "
        "{ tail -n 20 /var/log/labctl/dockerd.log; kill $(jobs -p) 2>/dev/null; exit 91; }",
        "  sleep 0.25",
        "done",
        f"touch {DOCKER_UP}",
        "mark docker",
    ]


def prime_script(src: Path, platform: str) -> str:
    """The priming job: dockerd's first start and the node image import, kept in a layer
    over the image, then dockerd stopped cleanly."""
    return "\n".join(
        [
            *guest_setup(src, platform),
            f"{GUEST_RUNNER} image build >/dev/null || exit 92",
            "kill $(cat /var/run/docker.pid)",
            "for _ in $(seq 1 120); do [ -e /var/run/docker.pid ] || break; sleep 0.25; done",
            "sync",
        ]
    )


def guest_script(
    lab: Lab,
    switches: list[SwitchKind],
    offloads: list[str] | None,
    out_dir: Path,
    src: Path,
    platform: str,
    ovs_configs: list[str] | None = None,
) -> str:
    """What the VM runs: the setup, then `labctl matrix` with this platform's
    expectations, one cell at a time, its result on stdout into the job share."""
    matrix = [str(lab.file), "--runs-dir", str(out_dir), "--serial", "--json"]
    for switch in switches:
        matrix += ["--switch", switch.value]
    for offload in offloads or []:
        matrix += ["--offload", offload]
    # --ovs-config leaves out Linux bridge cells, and refuses a choice without OVS kinds.
    for config in (ovs_configs or []) if any(s.is_ovs for s in switches) else []:
        matrix += ["--ovs-config", config]
    run_matrix = (
        f"{preloaded_runner()} matrix {' '.join(shlex.quote(a) for a in matrix)} "
        ">/run/labctl-job/result.json &"
    )
    return "\n".join(
        [
            *guest_setup(src, platform, before_docker=[run_matrix, "matrix_pid=$!"]),
            "wait $matrix_pid",
            "status=$?",
            "mark matrix",
            "exit $status",
        ]
    )


def prime(image: Any, src: Path, say: Callable[[str], None]) -> None:
    """Make the image's primed layer when it is missing (about a minute under TCG,
    once per image): later VMs start with dockerd initialised and the node image in."""
    from labctl.backends import platform_image, platform_vm
    from labctl.store import file_lock

    if image.primed.is_file():
        return
    lock = image.directory.parent / ".build.lock"
    with file_lock(lock, "platform image builds", platform_image.BUILD_LOCK_WAIT):
        if image.primed.is_file():
            return
        say(f"platform {image.platform.name}: priming its image (dockerd, node image), once")
        partial = image.directory / "primed.qcow2.partial"
        partial.unlink(missing_ok=True)
        spec = platform_vm.VmSpec(
            lab="prime",
            platform=image.platform.name,
            kernel=image.kernel,
            initrd=image.initrd,
            image=image.root,
            script=prime_script(src, image.platform.name),
            shares=(platform_vm.Share(src),),
            accel=accel(),
            keep_overlay=partial,
            timeout=900,
        )
        result = platform_vm.PlatformVM().run(spec)
        if result.exit_status != 0 or not partial.is_file():
            partial.unlink(missing_ok=True)
            raise BackendError(
                f"priming the {image.platform.name} image",
                f"job exit {result.exit_status}; console: {' | '.join(result.console[-5:])}",
            )
        os.replace(partial, image.primed)


def _shares(lab: Lab, src: Path, out_dir: Path) -> tuple[Any, ...]:
    from labctl.backends.platform_vm import Share

    lab_root = Path(
        os.path.commonpath([lab.file.parent.resolve(), lab.topology_file.parent.resolve()])
    )
    return (Share(src), Share(lab_root), Share(out_dir, readonly=False))


def run_on_platform(
    lab: Lab,
    platform: plat.Platform,
    switches: list[SwitchKind],
    offloads: list[str] | None,
    report_dir: Path,
    say: Callable[[str], None],
    ovs_configs: list[str] | None = None,
) -> dict[str, Any]:
    """The platform's cells in its VM: its block for the report, with the cells."""
    import labctl
    from labctl.backends import platform_image, platform_vm

    started = time.monotonic()
    src = Path(labctl.__file__).resolve().parent.parent
    image = platform_image.ensure(platform, on_line=say)
    prime(image, src, say)
    image_seconds = round(time.monotonic() - started, 2)  # build and priming, when needed
    out_dir = report_dir / "platforms" / platform.name
    out_dir.mkdir(parents=True, exist_ok=True)
    how = accel()
    spec = platform_vm.VmSpec(
        lab=lab.name,
        platform=platform.name,
        kernel=image.kernel,
        initrd=image.initrd,
        image=image.boot_disk,
        script=guest_script(lab, switches, offloads, out_dir, src, platform.name, ovs_configs),
        shares=_shares(lab, src, out_dir),
        accel=how,
    )
    say(f"platform {platform.name}: booting its VM ({how}) for {len(switches)} switch kind(s)")
    result = platform_vm.PlatformVM().run(spec)
    lockup = guest_lockup(result)
    if lockup is not None:
        # The guest's kernel, not the lab: its cells never ran. One fresh VM more.
        (out_dir / "console-locked-up.log").write_text("\n".join(result.console) + "\n")
        say(f"platform {platform.name}: the guest kernel failed ({lockup}); booting a new VM")
        result = platform_vm.PlatformVM().run(spec)
    (out_dir / "console.log").write_text("\n".join(result.console) + "\n")
    block: dict[str, Any] = {
        "name": platform.name,
        "description": platform.description,
        "image": str(image.boot_disk),
        "image_versions": image.versions,
        "accel": how,
        "image_seconds": image_seconds,
        "vm_seconds": result.seconds,
        "boot_seconds": result.mark("shares"),  # guest uptime when its job started
        "imports_seconds": result.mark("imports"),  # ... when labctl had imported its modules
        "setup_seconds": result.mark("docker"),  # ... when dockerd answered
        # From qemu's start to the guest labctl's first cell, on the host's clock.
        "first_cell_seconds": result.first_line("==> cell "),
        "exit_status": result.exit_status,
        "console": str(out_dir / "console.log"),
    }
    if lockup is not None:
        block["retried"] = (
            f"the first VM's kernel failed before a result ({lockup}); its console is in "
            f"{out_dir / 'console-locked-up.log'}; the cells ran in a second VM"
        )
    guest: dict[str, Any] | None = None
    raw = result.job_files.get("result.json", b"")
    if raw.strip():
        try:
            guest = json.loads(raw)
        except ValueError:
            guest = None
    if guest is None:
        tail = " | ".join(result.console[-5:])
        block["error"] = (
            f"the {platform.name} VM returned no matrix result (job exit "
            f"{result.exit_status}); console: {tail}"
        )
        block["cells"] = []
        return block
    block["versions"] = guest.get("host", {})
    block["report"] = guest.get("report_dir")
    block["matrix_seconds"] = guest.get("seconds")
    block["cells"] = guest["cells"]
    return block


def guest_lockup(result: Any) -> str | None:
    """Why a VM that returned no matrix result should be booted again: its kernel locked up
    or panicked (a console line says so), or None."""
    from labctl.backends.platform_vm import guest_kernel_failed

    if result.job_files.get("result.json", b"").strip():
        return None
    line = guest_kernel_failed(result.console)
    return line.split("] ", 1)[-1].strip() if line is not None else None


def error_cells(cells: list[Cell], lab: Lab, platform: str, reason: str) -> list[dict[str, Any]]:
    return [
        {
            "switch": c.switch.value,
            "offload": c.offload_name,
            "offload_settings": c.offload.as_dict(),
            "ovs_config": c.ovs_config_name,
            "ovs_config_settings": dict(c.ovs_config),
            "lab_name": c.lab_name(lab.name),
            "status": "error",
            "reason": reason,
            "expected": None,
            "observed": None,
            "run_dir": None,
            "pcaps": {},
            "diagnosis": None,
            "platform": platform,
        }
        for c in cells
    ]


def run(
    lab: Lab,
    runner: MatrixRunner,
    cells_for: Callable[[str], list[Cell]],
    chosen: list[plat.Platform],
    ovs_kernel_vm: plat.OvsKernelVm,
    workers: int,
    offloads: list[str] | None,
    say: Callable[[str], None],
    ovs_configs: list[str] | None = None,
    has_module: bool | None = None,
) -> MatrixResult:
    """The whole matrix over `chosen` platforms; `cells_for(platform)` enumerates the
    cells with that platform's expectations. On a host without the openvswitch module
    (`has_module`, probed when None) the host's ovs-kernel cells go to
    `ovs_kernel_vm.platform`'s VM, or are skipped when that is None."""
    started = time.monotonic()
    chosen_switches = list(dict.fromkeys(c.switch for c in cells_for(plat.HOST)))
    all_switches = [s for s in chosen_switches if isinstance(s, SwitchKind)]
    if len(all_switches) != len(chosen_switches):
        raise UsageError(
            "the platform matrix runs a kind for every switch; cells of named switches "
            "(NAME=KIND) run with `labctl matrix` on this host"
        )
    if has_module is None:
        has_module = host_has_ovs_module()
    plan = plat.plan_cells(chosen, all_switches, has_module, ovs_kernel_vm.platform)
    notes: list[str] = []
    if plat.needs_ovs_kernel_vm(chosen, all_switches, has_module):
        notes.append(plat.ovs_kernel_note(ovs_kernel_vm))
    host_cells = [c for c in cells_for(plat.HOST) if c.switch in plan.get(plat.HOST, [])]
    result = runner.run(host_cells, workers=workers).to_json()
    for cell in result["cells"]:
        cell["platform"] = plat.HOST
    blocks: dict[str, dict[str, Any]] = {}
    if plat.HOST in plan:
        blocks[plat.HOST] = {
            "name": plat.HOST,
            "description": plat.PLATFORMS[plat.HOST].description,
            "versions": result.get("host", {}),
        }
        if SwitchKind.OVS_KERNEL in all_switches and SwitchKind.OVS_KERNEL not in plan[plat.HOST]:
            # The report's grid of the host shows these cells in the host's row.
            blocks[plat.HOST]["ovs_kernel_vm"] = ovs_kernel_vm.platform
    report_dir = Path(result["report_dir"])
    vm_plan = {name: switches for name, switches in plan.items() if name != plat.HOST}

    def one(name: str) -> dict[str, Any]:
        platform = plat.PLATFORMS[name]
        try:
            return run_on_platform(
                lab, platform, vm_plan[name], offloads, report_dir, say, ovs_configs
            )
        except LabctlError as error:
            return {
                "name": name,
                "description": platform.description,
                "error": " / ".join(error.lines()),
                "cells": [],
            }

    side_by_side = plat.parallel_vms(os.cpu_count() or 1, _memory_mib(), len(vm_plan))
    # Each VM's qemu dies with the thread that started it (PR_SET_PDEATHSIG): the pool's
    # threads live until every VM has powered off.
    with ThreadPoolExecutor(max_workers=side_by_side) as pool:
        finished = dict(zip(vm_plan, pool.map(one, vm_plan), strict=True))
    for name, block in finished.items():
        wanted = [c for c in cells_for(name) if c.switch in vm_plan[name]]
        guest_cells = block.pop("cells")
        block.pop("offloads", None)
        # The host may have run none of these cells: its result may lack their offloads.
        for cell_def in wanted:
            result["offloads"].setdefault(cell_def.offload_name, cell_def.offload.as_dict())
            if cell_def.ovs_config_name:
                result["ovs_configs"].setdefault(
                    cell_def.ovs_config_name, dict(cell_def.ovs_config)
                )
        if "error" in block and not guest_cells:
            guest_cells = error_cells(wanted, lab, name, block["error"])
        for cell in guest_cells:
            cell["platform"] = name
        result["cells"].extend(guest_cells)
        block["vms_side_by_side"] = side_by_side
        blocks[name] = block
    for cell in result["cells"]:
        versions = blocks.get(cell["platform"], {}).get("versions") or {}
        cell["platform_versions"] = {
            k: versions.get(k) for k in ("os", "kernel", "ovs", "dpdk", "docker")
        }
    result["platforms"] = blocks
    result["platform_notes"] = notes
    result["switches"] = list(dict.fromkeys(c["switch"] for c in result["cells"]))
    result["seconds"] = round(time.monotonic() - started, 2)
    return MatrixResult.model_validate(result)


def check_choice(requested: list[str] | None, lab: Lab) -> list[plat.Platform]:
    chosen = plat.choose(requested, lab.spec.matrix.platforms)
    if current_platform() != plat.HOST and any(not p.is_host for p in chosen):
        raise UsageError("a platform VM does not start platform VMs (nested)")
    return chosen


def primary_platform(result: MatrixResult) -> str:
    """The platform whose cells fill the report's switch x offload grid: the host when it
    ran cells, else the first platform; the version view shows them all."""
    names = list(result.platforms)
    with_cells = [n for n in names if any(c.platform == n for c in result.cells)]
    if plat.HOST in with_cells:
        return plat.HOST
    return str((with_cells or names or [plat.HOST])[0])


def write_reports(result: MatrixResult) -> dict[str, Path]:
    """report.json with every cell of every platform; report.md and report.html with the
    grid of the primary platform and the version view of all; junit.xml with all cells."""
    from labctl.reports import html, junit, markdown
    from labctl.reports import platforms as view

    if result.report_dir is None:
        raise UsageError("the matrix result names no report directory to write to")
    out = Path(result.report_dir)
    primary = primary_platform(result)
    grid = view.platform_result(result, primary, with_handed_over=True)
    grid = grid.model_copy(
        update={
            "description": "\n\n".join(
                [
                    *([result.description.strip()] if result.description.strip() else []),
                    f"The grid below: platform {primary}; every platform in the Platforms table.",
                    *(f"Note: {note}." for note in result.platform_notes),
                ]
            )
        }
    )
    paths = report_paths(out)
    paths["json"].write_text(json.dumps(result.to_json(), indent=2) + "\n")
    paths["markdown"].write_text(markdown.render(grid) + "\n" + view.markdown(result))
    paths["junit"].write_text(junit.render(result))
    page = html.render(grid, report_dir=out)
    section = view.html_section(result)
    page = (
        page.replace("</body>", section + "\n</body>", 1) if "</body>" in page else page + section
    )
    paths["html"].write_text(page)
    return paths
