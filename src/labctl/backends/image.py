"""The default node image, built locally: no container registry is needed.

debootstrap makes a minimal Debian root file system with the tools a node
needs (HTTP server and client, iproute2, ethtool, tcpdump), then the Docker
SDK imports it. The image is tagged with a hash of its recipe, so it is
rebuilt exactly when the recipe changes and reused otherwise.

The packed root file system is kept in a cache folder under the same hash. A
Docker without the image (a fresh VM whose box carries the cache, or an image
removed by hand) imports it from there instead of running debootstrap again,
which needs the Debian archive and takes minutes under software emulation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from labctl.core.events import Event, EventSink, discard
from labctl.core.model import DEFAULT_IMAGE
from labctl.errors import BackendError, PrerequisiteError


@dataclass(frozen=True)
class Recipe:
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = (
        "busybox",  # httpd: the HTTP server under test
        "curl",  # the HTTP client under test
        "iproute2",
        "ethtool",  # offload settings inside the node
        "tcpdump",  # taps inside the node
        "iputils-ping",
        "procps",
        "iperf3",
    )
    files: tuple[tuple[str, str], ...] = (
        ("srv/www/index.html", "<html><body>labctl node</body></html>\n"),
    )

    def digest(self) -> str:
        text = json.dumps([self.suite, self.variant, sorted(self.packages), list(self.files)])
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{DEFAULT_IMAGE}:{self.digest()}"


def mirror() -> str:
    return os.environ.get("LABCTL_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def rootfs_cache_dir() -> Path:
    return Path(os.environ.get("LABCTL_IMAGE_CACHE", "/var/cache/labctl/images"))


class ImageBuilder:
    def __init__(
        self,
        client: docker.DockerClient,
        recipe: Recipe | None = None,
        on_event: EventSink = discard,
    ):
        self.client = client
        self.recipe = recipe or Recipe()
        self.emit = on_event

    def exists(self) -> bool:
        try:
            self.client.images.get(self.recipe.tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    @property
    def cached_rootfs(self) -> Path:
        """Where the packed root file system of this recipe is kept."""
        return rootfs_cache_dir() / f"{self.recipe.digest()}.tar"

    def ensure(self, force: bool = False, keep_rootfs: bool = False) -> tuple[str, bool]:
        """Build the image unless it exists. Returns (tag, built).

        keep_rootfs: also make sure the packed root file system is in the cache
        (the box builder copies it into the VM image).
        """
        cached = self.cached_rootfs.is_file()
        if not force and self.exists() and (cached or not keep_rootfs):
            self.emit(Event("info", f"node image {self.recipe.tag} is up to date"))
            return self.recipe.tag, False
        if not force and cached:
            self.emit(Event("step-start", f"importing {self.cached_rootfs} as {self.recipe.tag}"))
            self._import(self.cached_rootfs)
            self.emit(Event("step-done", f"node image {self.recipe.tag} from the cache"))
            return self.recipe.tag, True
        self.build()
        return self.recipe.tag, True

    def build(self) -> None:
        if shutil.which("debootstrap") is None:
            raise PrerequisiteError(
                "debootstrap is not installed (needed to build the node image)",
                "apt-get install debootstrap, or run scripts/provision.sh",
            )
        if os.geteuid() != 0:
            raise PrerequisiteError(
                "building the node image needs root (debootstrap)", "run as root"
            )
        workdir = Path(tempfile.mkdtemp(prefix="labctl-image-", dir="/var/tmp"))
        try:
            rootfs = workdir / "rootfs"
            self._debootstrap(rootfs)
            self._finish(rootfs)
            tarball = workdir / "rootfs.tar"
            self.emit(Event("step-start", "packing the root file system", 3, 4))
            _run(
                ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."],
                "packing the node image",
            )
            self.emit(Event("step-start", f"importing into Docker as {self.recipe.tag}", 4, 4))
            self._import(tarball)
            self._keep(tarball)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.emit(Event("step-done", f"built node image {self.recipe.tag}", 4, 4))

    def _debootstrap(self, rootfs: Path) -> None:
        recipe = self.recipe
        argv = [
            "debootstrap",
            f"--variant={recipe.variant}",
            f"--include={','.join(recipe.packages)}",
            recipe.suite,
            str(rootfs),
            mirror(),
        ]
        self.emit(
            Event("step-start", f"debootstrap {recipe.suite} from {mirror()} (about 30 s)", 1, 4)
        )
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        tail: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:
            tail = (tail + [line.rstrip()])[-15:]
            if line.startswith("I: ") and (
                "Retrieving" in line or "Installing" in line or "Configuring" in line
            ):
                self.emit(Event("info", line[3:].strip()))
        if process.wait(timeout=900) != 0:
            raise BackendError(
                "building the node image: debootstrap failed",
                " | ".join(tail[-5:]),
                f"check that {mirror()} is reachable (LABCTL_DEBIAN_MIRROR sets another mirror)",
            )

    def _finish(self, rootfs: Path) -> None:
        self.emit(Event("step-start", "adding labctl's files", 2, 4))
        for relative, content in self.recipe.files:
            target = rootfs / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        # Package caches are half the size and carry no value inside a node.
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / cache).glob("*"):
                if entry.is_file():
                    entry.unlink()

    def _keep(self, tarball: Path) -> None:
        """Move the packed root file system into the cache (atomically: a reader never
        sees half a file); older recipes' files go, they can never match again."""
        cache = rootfs_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        partial = cache / f".{self.recipe.digest()}.tar.partial"
        shutil.move(str(tarball), partial)
        os.replace(partial, self.cached_rootfs)
        for old in cache.glob("*.tar"):
            if old != self.cached_rootfs:
                old.unlink(missing_ok=True)

    def _import(self, tarball: Path) -> None:
        repository, tag = self.recipe.tag.split(":")
        changes = [f"LABEL labctl.recipe={self.recipe.digest()}", 'CMD ["sleep", "infinity"]']
        try:
            self.client.api.import_image_from_file(
                str(tarball), repository=repository, tag=tag, changes=changes
            )
            self.client.images.get(self.recipe.tag).tag(repository, "latest")
        except docker.errors.APIError as error:
            raise BackendError("importing the node image into Docker", error) from None


def _run(argv: list[str], action: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise BackendError(action, done.stderr.strip()[-300:] or f"exit {done.returncode}")
