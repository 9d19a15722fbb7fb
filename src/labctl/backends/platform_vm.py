"""Throwaway qemu VMs booted from a platform image (labctl.backends.platform_image).

One VM runs one job (a shell script) and powers off. qemu boots the image's kernel
and initrd directly (no bootloader, no systemd: the image's PID 1 is
scripts/platform-guest-init), its root file system through a qcow2 overlay of its
own, so the image stays pristine. There is no guest network: host directories go in
and results come back over virtio-9p, each mounted in the guest at its host path,
so paths in the guest's reports are valid on the host.

Everything a VM has on the host lives in one run directory,
<state dir>/vms/<lab>-<platform>-<id>/ (overlay, job share, console log, qemu's pid
file, meta.json with the lab and platform): `labctl status` lists it, `labctl down
--all` and every matrix start (`sweep`) remove what a killed labctl left. qemu gets
SIGKILL when the labctl process that started it dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.backends import processes
from labctl.errors import BackendError, PrerequisiteError
from labctl.state import state_dir

QEMU = "qemu-system-x86_64"
JOB_TAG = "labctl-job"
GUEST_INIT = "/usr/local/sbin/labctl-guest-init"
MARK = "labctl-guest: mark "  # a job's timing marks on the console: "<name> <uptime>"
# The guest kernel's command line after root= and init=. No AppArmor: dockerd then runs
# no apparmor_parser at its start, and the labs' containers run unconfined (their
# checksums do not care); PID 1 mounts no securityfs either.
# softlockup_panic: a guest kernel stuck in a soft lockup (seen under TCG with both vCPUs
# spinning at a container's start) panics, and with panic=-1 and -no-reboot qemu exits,
# instead of the VM hanging until its timeout; the platform matrix then boots a new VM.
KERNEL_ARGS = (
    "console=ttyS0,115200",
    "panic=-1",
    "softlockup_panic=1",
    "net.ifnames=0",
    "apparmor=0",
    "quiet",
)
LOCKUP_SIGNS = ("BUG: soft lockup", "rcu_preempt self-detected stall", "Kernel panic")


def guest_kernel_failed(console: Sequence[str]) -> str | None:
    """The console line that shows the guest's kernel locked up or panicked, or None."""
    return next((line for line in console if any(s in line for s in LOCKUP_SIGNS)), None)


PR_SET_PDEATHSIG = 1


def vms_root() -> Path:
    return state_dir() / "vms"


@dataclass(frozen=True)
class Share:
    host_path: Path
    readonly: bool = True


@dataclass(frozen=True)
class VmSpec:
    lab: str  # the lab or matrix the VM belongs to (status, down --all)
    platform: str
    kernel: Path
    initrd: Path
    image: Path  # the pristine root file system (qcow2)
    script: str  # the job: bash, run as root in the guest, shares mounted
    shares: tuple[Share, ...] = ()
    accel: str = "tcg"  # or "kvm"
    cpus: int = 2
    memory_mib: int = 4096
    timeout: float = 3600.0
    # Keep the VM's overlay (what the job wrote) at this path when the job exits 0: a
    # layer over the image that later VMs can boot from (the primed platform image).
    keep_overlay: Path | None = None


@dataclass
class VmResult:
    exit_status: int | None  # the job's, None when it did not finish
    seconds: float
    console: list[str]
    marks: dict[str, float] = field(default_factory=dict)  # guest uptime at each mark
    job_files: dict[str, bytes] = field(default_factory=dict)
    # When the host saw each console line, in seconds after qemu started.
    line_times: list[tuple[float, str]] = field(default_factory=list)

    def first_line(self, prefix: str) -> float | None:
        return next((t for t, line in self.line_times if line.startswith(prefix)), None)

    def mark(self, name: str) -> float | None:
        return self.marks.get(name)


def _set_pdeathsig() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def qemu_argv(spec: VmSpec, run_dir: Path) -> list[str]:
    """The qemu command line of a VM whose files are in run_dir."""
    accel = "kvm" if spec.accel == "kvm" else "tcg,thread=multi"
    argv = [
        QEMU,
        "-name",
        f"labctl-{run_dir.name}",
        "-accel",
        accel,
        # TCG: "max" has SSE4.2 and AVX2, which DPDK needs.
        "-cpu",
        "host" if spec.accel == "kvm" else "max",
        "-smp",
        str(spec.cpus),
        "-m",
        str(spec.memory_mib),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{run_dir / 'console.log'}",
        "-pidfile",
        str(run_dir / "qemu.pid"),
        "-kernel",
        str(spec.kernel),
        "-initrd",
        str(spec.initrd),
        "-append",
        " ".join(
            [
                "root=/dev/vda",
                "rw",
                f"init={GUEST_INIT}",
                *KERNEL_ARGS,
                "loglevel=4",
            ]
        ),
        "-drive",
        f"file={run_dir / 'overlay.qcow2'},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
        "-virtfs",
        f"local,path={run_dir / 'job'},mount_tag={JOB_TAG},security_model=passthrough,id=job",
    ]
    for index, share in enumerate(spec.shares):
        option = (
            f"local,path={share.host_path},mount_tag=share{index},"
            f"security_model=passthrough,id=share{index}"
        )
        argv += ["-virtfs", option + (",readonly=on" if share.readonly else "")]
    return argv


def job_script(spec: VmSpec) -> str:
    """job.sh as the guest runs it: the shares mounted at their host paths, then the job."""
    lines = ["set -u", 'mark() { echo "' + MARK + "$1 $(cut -d' ' -f1 /proc/uptime)\"; }"]
    for index, share in enumerate(spec.shares):
        path = shlex.quote(str(share.host_path))
        options = "trans=virtio,version=9p2000.L,msize=262144,cache=none"
        if share.readonly:
            options += ",ro"
        lines.append(f"mkdir -p {path} && mount -t 9p -o {options} share{index} {path} || exit 90")
    lines += ["mark shares", spec.script]
    return "\n".join(lines) + "\n"


def parse_marks(console: Sequence[str]) -> dict[str, float]:
    marks = {}
    for line in console:
        match = re.search(re.escape(MARK) + r"(\S+) ([\d.]+)", line)
        if match:
            marks[match.group(1)] = float(match.group(2))
    return marks


class PlatformVM:
    """Runs jobs in throwaway VMs; every VM it starts is gone when run() returns."""

    def __init__(self, root: Path | None = None, on_line: Callable[[str], None] | None = None):
        self.root = root or vms_root()
        self.on_line = on_line

    def run(self, spec: VmSpec) -> VmResult:
        if shutil.which(QEMU) is None:
            raise PrerequisiteError(
                f"{QEMU} is missing (platform VMs need it)", "run scripts/provision.sh --vm"
            )
        for path in (spec.kernel, spec.initrd, spec.image):
            if not path.is_file():
                raise BackendError(
                    f"platform {spec.platform}", f"{path} is missing", "rebuild its image"
                )
        sweep(self.root)
        run_dir = self.root / f"{spec.lab}-{spec.platform}-{secrets.token_hex(3)}"
        (run_dir / "job").mkdir(parents=True)
        started = time.monotonic()
        process: subprocess.Popen[bytes] | None = None
        try:
            (run_dir / "meta.json").write_text(
                json.dumps(
                    {
                        "lab": spec.lab,
                        "platform": spec.platform,
                        "image": str(spec.image),
                        "accel": spec.accel,
                        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "labctl_pid": os.getpid(),
                    }
                )
            )
            overlay = run_dir / "overlay.qcow2"
            made = subprocess.run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-F",
                    "qcow2",
                    "-b",
                    str(spec.image),
                    str(overlay),
                ],
                capture_output=True,
                text=True,
            )
            if made.returncode != 0:
                raise BackendError(f"qemu-img create {overlay}", made.stderr.strip())
            (run_dir / "job" / "job.sh").write_text(job_script(spec))
            process = subprocess.Popen(
                qemu_argv(spec, run_dir),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=open(run_dir / "qemu.stderr", "wb"),  # noqa: SIM115 - qemu owns it
                preexec_fn=_set_pdeathsig,  # noqa: PLW1509 - only prctl, no locks
                start_new_session=True,
            )
            (run_dir / "meta.json").write_text(
                json.dumps({**json.loads((run_dir / "meta.json").read_text()), "pid": process.pid})
            )
            line_times = self._follow(process, run_dir, spec.timeout)
            console = (run_dir / "console.log").read_text(errors="replace").splitlines()
            status_file = run_dir / "job" / "exit-status"
            exit_status = int(status_file.read_text()) if status_file.is_file() else None
            if process.returncode not in (0, None) and exit_status is None:
                tail = (run_dir / "qemu.stderr").read_text(errors="replace").strip()
                raise BackendError(
                    f"platform {spec.platform}: qemu exited {process.returncode}",
                    tail.splitlines()[-1] if tail else "no message",
                )
            if spec.keep_overlay is not None and exit_status == 0 and process.returncode == 0:
                os.replace(overlay, spec.keep_overlay)
            files = {
                p.name: p.read_bytes()
                for p in (run_dir / "job").iterdir()
                if p.is_file() and p.name != "job.sh"
            }
            return VmResult(
                exit_status,
                round(time.monotonic() - started, 2),
                console,
                parse_marks(console),
                files,
                line_times,
            )
        finally:
            if process is not None and process.poll() is None:
                _stop(process.pid)
                process.wait()
            shutil.rmtree(run_dir, ignore_errors=True)

    def _follow(
        self, process: subprocess.Popen[bytes], run_dir: Path, timeout: float
    ) -> list[tuple[float, str]]:
        """Wait for qemu to exit (the guest powers off), passing console lines on; when
        each line arrived (every 0.2 s)."""
        started = time.monotonic()
        deadline = started + timeout
        log = run_dir / "console.log"
        offset = 0
        seen: list[tuple[float, str]] = []
        while True:
            if log.is_file():
                with log.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
                cut = chunk.rfind(b"\n") + 1
                offset += cut
                for line in chunk[:cut].decode(errors="replace").splitlines():
                    seen.append((round(time.monotonic() - started, 1), line))
                    if self.on_line:
                        self.on_line(line)
            if process.poll() is not None:
                return seen
            if time.monotonic() > deadline:
                raise BackendError(
                    f"the VM in {run_dir} did not power off within {timeout:g} s",
                    f"last console lines: {' | '.join(processes.log_tail(log, 5) or [])}",
                )
            time.sleep(0.2)


def _stop(pid: int) -> None:
    processes.terminate(
        lambda sig: processes.signal_pid(pid, sig),
        lambda: processes.running(pid),
        term_grace=5,
        kill_grace=5,
    )


@dataclass(frozen=True)
class RunningVm:
    run_dir: Path
    lab: str
    platform: str
    pid: int | None
    alive: bool
    details: dict[str, Any]


def _qemu_of(run_dir: Path, pid: int | None) -> bool:
    """The pid is a qemu of that run directory (not a reused pid)."""
    if pid is None or not processes.running(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(run_dir / "overlay.qcow2").encode() in b" ".join(cmdline)


def listing(root: Path | None = None) -> list[RunningVm]:
    """Every VM run directory: the live ones, and what a killed labctl left."""
    root = root or vms_root()
    found = []
    for run_dir in sorted(root.glob("*")) if root.is_dir() else []:
        if not run_dir.is_dir():
            continue
        try:
            meta = json.loads((run_dir / "meta.json").read_text())
        except (OSError, ValueError):
            meta = {}
        pid = meta.get("pid")
        if pid is None:
            with contextlib.suppress(OSError, ValueError):
                pid = int((run_dir / "qemu.pid").read_text().strip())
        found.append(
            RunningVm(
                run_dir,
                str(meta.get("lab", run_dir.name)),
                str(meta.get("platform", "?")),
                pid,
                _qemu_of(run_dir, pid),
                meta,
            )
        )
    return found


def remove(vm: RunningVm) -> None:
    """Stop the VM's qemu (when it still runs) and remove its run directory."""
    if vm.alive and vm.pid is not None:
        _stop(vm.pid)
    shutil.rmtree(vm.run_dir, ignore_errors=True)


def sweep(root: Path | None = None) -> list[RunningVm]:
    """Remove the run directories of VMs whose labctl is gone (killed): their qemu died
    with it (PR_SET_PDEATHSIG), or is stopped here."""
    gone = []
    for vm in listing(root):
        owner = vm.details.get("labctl_pid")
        if isinstance(owner, int) and owner != os.getpid() and processes.running(owner):
            continue
        if isinstance(owner, int) and owner == os.getpid():
            continue
        remove(vm)
        gone.append(vm)
    return gone
