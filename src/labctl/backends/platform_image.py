"""Platform images, built once per recipe and cached: scripts/build-platform-image.sh
(which makes its root file system with scripts/guest-rootfs.sh, the builder of the
Vagrant box too) into <cache>/platforms/<platform>-<recipe digest>/."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import labctl
from labctl.backends.hostinfo import cache_dir
from labctl.core import platforms
from labctl.core.platforms import Platform
from labctl.errors import BackendError, PrerequisiteError
from labctl.store import file_lock

BUILD_LOCK_WAIT = 3600.0


@dataclass(frozen=True)
class PlatformImage:
    platform: Platform
    directory: Path
    versions: dict[str, Any]

    @property
    def kernel(self) -> Path:
        """What qemu boots: the uncompressed kernel with its PVH entry point where the build
        could extract one (no self-inflation: seconds less under TCG), else the bzImage."""
        pvh = self.directory / "vmlinux"
        return pvh if pvh.is_file() else self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def root(self) -> Path:
        return self.directory / "root.qcow2"

    @property
    def primed(self) -> Path:
        """A qcow2 layer over root.qcow2 with dockerd's first start and the node image
        import done (labctl.platform_matrix.prime): VMs boot from it when it exists."""
        return self.directory / "primed.qcow2"

    @property
    def boot_disk(self) -> Path:
        return self.primed if self.primed.is_file() else self.root


def repo_dir() -> Path:
    """The checkout labctl runs from: the image scripts live there."""
    root = Path(labctl.__file__).resolve().parents[2]
    if not (root / "scripts" / "build-platform-image.sh").is_file():
        raise PrerequisiteError(
            f"platform images are built by scripts/build-platform-image.sh of a labctl "
            f"checkout; {root} is not one",
            "install labctl with pip install -e from a clone",
        )
    return root


def recipe_files(repo: Path) -> dict[str, bytes]:
    """Path -> content of every file a platform image is made from."""
    listed = subprocess.run(
        ["bash", str(repo / "scripts" / "guest-rootfs.sh"), "--print-recipe-files"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {path: (repo / path).read_bytes() for path in [*listed, *platforms.IMAGE_SCRIPTS]}


def locate(platform: Platform, repo: Path | None = None) -> Path:
    repo = repo or repo_dir()
    digest = platforms.recipe_digest(platform, recipe_files(repo))
    return platforms.image_dir(platform, digest, cache_dir())


def load(directory: Path, platform: Platform) -> PlatformImage | None:
    needed = ("vmlinuz", "initrd.img", "root.qcow2", "versions.json")
    if not all((directory / name).is_file() for name in needed):
        return None
    versions = json.loads((directory / "versions.json").read_text())
    return PlatformImage(platform, directory, versions)


def ensure(platform: Platform, on_line: Callable[[str], None] | None = None) -> PlatformImage:
    """The platform's image of the current recipe: from the cache, else built now
    (minutes: debootstrap, packages, wheelhouse). Older recipes' images are removed."""
    repo = repo_dir()
    directory = locate(platform, repo)
    # One build at a time: the builds share the host's apt cache (and its lock).
    with file_lock(directory.parent / ".build.lock", "platform image builds", BUILD_LOCK_WAIT):
        image = load(directory, platform)
        if image is not None:
            return image
        shutil.rmtree(directory, ignore_errors=True)
        for old in platforms.stale_image_dirs(platform, directory, directory.parent.glob("*")):
            shutil.rmtree(old, ignore_errors=True)
            old.with_name(f"{old.name}.build.log").unlink(missing_ok=True)
        argv = ["bash", str(repo / "scripts" / "build-platform-image.sh"), *platform.builder_args()]
        log = directory.parent / f"{directory.name}.build.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [*argv, str(directory)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                if on_line and line.startswith("==> "):
                    on_line(line.rstrip())
            rc = process.wait()
        if rc != 0:
            shutil.rmtree(directory, ignore_errors=True)
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise BackendError(
                f"building the {platform.name} image (exit {rc}, log {log})", " | ".join(tail)
            )
        image = load(directory, platform)
        if image is None:
            raise BackendError(f"building the {platform.name} image", f"no image in {directory}")
        return image
