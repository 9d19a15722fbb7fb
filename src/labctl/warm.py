"""A warm labctl: the imports every command repeats, done once per host.

A labctl process spends about as long importing itself, pydantic, the Docker SDK and
pyroute2 as a seed lab takes to build. So the first `labctl` command starts, beside
doing its own work, a small server (`python -m labctl.warm serve`) that imports all of
that and then waits on a Unix socket. A later `labctl` command hands the server its
arguments, working directory, environment and its stdin, stdout and stderr; the server
forks, and the child runs the command exactly as `labctl` would have (every check,
every probe), writing to the caller's terminal. Signals the caller gets (Ctrl-C) are
passed on to the child; the caller exits with the child's exit status.

What is cached is only imported code, never a result: the socket's name carries a
fingerprint of labctl's own files and of the Python environment (interpreter, import
path entries), so after any change a command goes to a new server and the old one,
never asked again, exits when idle. The server exits after IDLE_SECONDS without a
command. Only the same user can use it (checked with SO_PEERCRED: the socket lives in
the abstract namespace and has no file permissions). LABCTL_WARM=0 turns it off.
"""

from __future__ import annotations

# Only what handing a command over needs: the `labctl` program imports this module
# before anything else, and every import here is paid by every command.
import json
import os
import signal
import site
import socket
import struct
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

ENV_SWITCH = "LABCTL_WARM"
IDLE_SECONDS = 120.0
_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!i")
# What the commands import; the server imports it once, before it serves.
PRELOAD = (
    "labctl.cli",
    "labctl.api",
    "labctl.engine",
    "labctl.run",
    "labctl.matrix",
    "labctl.render",
    "labctl.state",
    "labctl.core.plan",
    "labctl.core.doctor",
    "labctl.analysis.diagnose",
    "labctl.analysis.diagnosis_text",
    "labctl.analysis.tables",
    "labctl.backends.registry",
    "labctl.backends.docker_runtime",
    "labctl.backends.image",
    "labctl.backends.links",
    "labctl.backends.netns_runtime",
    "labctl.backends.linux_bridge",
    "labctl.backends.firewall",
    "labctl.backends.capture",
    "labctl.backends.offload",
    "labctl.backends.hostinfo",
    "labctl.backends.host_probe",
    "labctl.backends.ovs.switch",
    "labctl.backends.ovs.ovsdb_idl",
    "labctl.reports.markdown",
    "labctl.reports.junit",
    "labctl.reports.html",
)


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1") != "0"


def main() -> int:
    """The `labctl` program: the command goes to the warm labctl if there is one, else
    it runs in this process (and a warm labctl is started for the next command)."""
    if enabled() and "_ARGCOMPLETE" not in os.environ:
        code = run(sys.argv[1:])
        if code is not None:
            return code
    from labctl.cli import main as cli_main

    return cli_main(warm=False)


def fingerprint() -> str:
    """Changes whenever a file of labctl, the interpreter, a site-packages directory
    (installing or upgrading a package changes it) or PYTHONPATH changes."""
    import hashlib

    digest = hashlib.sha256()
    package = os.path.dirname(os.path.realpath(__file__))
    extra = [e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if e]
    entries = [sys.executable, *site.getsitepackages(), *extra]
    for entry in entries:
        try:
            stat = os.stat(entry or ".")
        except OSError:
            continue
        digest.update(f"{entry}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    for folder, dirs, files in sorted(os.walk(package)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith((".py", ".typed")):
                path = os.path.join(folder, name)
                try:
                    stat = os.stat(path)
                except OSError:
                    continue
                digest.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    return digest.hexdigest()[:20]


def address(print_: str) -> bytes:
    return f"\0labctl-warm-{os.getuid()}-{print_}".encode()


# ---- the caller's side ---------------------------------------------------------------


def run(argv: Sequence[str]) -> int | None:
    """Run `labctl argv` in the warm server; None when there is none (then this process
    runs the command itself, and a server is started for the next one)."""
    print_ = fingerprint()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address(print_))
    except OSError:
        sock.close()
        _start_server()
        return None
    with sock:
        try:
            payload = json.dumps(
                {"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ)}
            ).encode()
            socket.send_fds(sock, [_HEADER.pack(len(payload)) + payload], [0, 1, 2])
        except OSError:
            return None  # nothing ran yet (e.g. a closed stdin): run it here
        reader = sock.makefile("rb")
        line = reader.readline()
        if not line:
            return None  # no child took the command (the server was just exiting): run it here
        child = int(line)

        def forward(signum: int, _frame: object) -> None:
            try:  # noqa: SIM105 - contextlib is not imported on this path
                os.kill(child, signum)
            except ProcessLookupError:
                pass

        signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
        saved = {signum: signal.signal(signum, forward) for signum in signals}
        try:
            status = reader.read(_STATUS.size)
        finally:
            for signum, handler in saved.items():
                signal.signal(signum, handler)
    if len(status) != _STATUS.size:
        print("labctl: the command's process ended without an exit status", file=sys.stderr)
        return 1
    return int(_STATUS.unpack(status)[0])


def _start_server() -> None:
    import contextlib
    import subprocess

    with contextlib.suppress(OSError):
        subprocess.Popen(
            [sys.executable, "-m", "labctl.warm", "serve"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )


# ---- the server ------------------------------------------------------------------------


def serve() -> int:
    print_ = fingerprint()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Claimed before the imports: a second server for the same code gives up at once.
        listener.bind(address(print_))
    except OSError:
        return 0
    import gc
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    from labctl import cli

    cli._parser()  # built once here; each command's child parses with it
    if fingerprint() != print_:
        return 0  # changed while importing: what was imported may be stale
    # What is imported stays as it is: the children's garbage collector leaves it alone,
    # so a child does not copy the pages of every imported object (copy-on-write).
    gc.freeze()
    listener.listen(16)
    listener.settimeout(IDLE_SECONDS)
    # Children are reaped by the kernel; each child restores the default for its own.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            return 0
        with conn:
            if not _same_user(conn):
                continue
            conn.settimeout(None)
            pid = os.fork()
            if pid == 0:
                listener.close()
                os._exit(_child(conn))


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


def _child(conn: socket.socket) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # labctl waits for its own subprocesses
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        head, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
        size = _HEADER.unpack(head)[0] if len(head) == _HEADER.size else 0
        data = b""
        while len(data) < size:
            chunk = conn.recv(size - len(data))
            if not chunk:
                break
            data += chunk
        request = json.loads(data)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.stdout.reconfigure(line_buffering=os.isatty(1))  # type: ignore[union-attr]
        sys.argv = ["labctl", *request["argv"]]
    except Exception:  # noqa: BLE001 - the caller says the command was refused
        return 1
    conn.sendall(f"{os.getpid()}\n".encode())
    code = 1
    import contextlib

    try:
        from labctl.cli import main

        code = main(request["argv"], warm=False)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int | None):
            print(exit_.code, file=sys.stderr)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - shown as a cold labctl would show it
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    with contextlib.suppress(OSError):
        conn.sendall(_STATUS.pack(code))
    return code


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["serve"] else 2)
