#!/usr/bin/env bash
# Builds one platform image for `labctl matrix --platform` (src/labctl/platforms.py runs
# this; by hand it is the same):
#
#   scripts/build-platform-image.sh --suite trixie [--kernel-suite SUITE] OUT_DIR
#
# The root file system comes from scripts/guest-rootfs.sh (the builder the Vagrant box
# uses too), plus a virtualenv with labctl's dependencies from its wheelhouse
# (/opt/labctl/venv: labctl itself comes from the host at run time, over virtio-9p)
# and the VM's PID 1 (scripts/platform-guest-init). OUT_DIR gets:
#   root.qcow2   the ext4 root file system (label labctl-root), booted read-write
#                through a per-run overlay, so it stays pristine
#   vmlinuz, initrd.img   for qemu's direct kernel boot
#   versions.json         kernel, Open vSwitch, DPDK, Docker and Python versions in it
# Without loop devices or a helper VM: mkfs.ext4 -d fills the file system.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DISK_GIB="${LABCTL_PLATFORM_DISK_GIB:-12}"
say() { printf '==> %s\n' "$*"; }
die() { printf 'build-platform-image: %s\n' "$*" >&2; exit 1; }

SUITE=""
KERNEL_SUITE=""
OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE="$2"; shift 2 ;;
    --kernel-suite) KERNEL_SUITE="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) OUT="$1"; shift ;;
  esac
done
[ -n "$SUITE" ] && [ -n "$OUT" ] || die "usage: $0 --suite SUITE [--kernel-suite SUITE] OUT_DIR"
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
for tool in mkfs.ext4 qemu-img; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/provision.sh --vm"
done

started=$(date +%s)
WORK="$(mktemp -d /var/tmp/labctl-platform.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"
bash "$REPO_DIR/scripts/guest-rootfs.sh" --suite "$SUITE" ${KERNEL_SUITE:+--kernel-suite "$KERNEL_SUITE"} "$ROOT"

say "labctl's dependencies into /opt/labctl/venv (from the wheelhouse, no index)"
mount -t proc proc "$ROOT/proc"
chroot "$ROOT" python3 -m venv /opt/labctl/venv
chroot "$ROOT" env -u PIP_FIND_LINKS sh -c 'cd /var/cache/labctl/wheels && /opt/labctl/venv/bin/pip install -q --no-index --find-links . ./*.whl'
umount "$ROOT/proc"
install -m 0755 "$REPO_DIR/scripts/platform-guest-init" "$ROOT/usr/local/sbin/labctl-guest-init"
echo labctl-guest >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost labctl-guest\n::1 localhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
printf 'LABEL=labctl-root / ext4 defaults,noatime 0 1\n' >"$ROOT/etc/fstab"

say "versions in the image"
pkg() { chroot "$ROOT" dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
kernel_release="$(ls "$ROOT/lib/modules" | sort -V | tail -n 1)"
eal="$(chroot "$ROOT" dpkg-query -W -f='${Package} ${Version}\n' 'librte-eal*' 2>/dev/null | head -n 1 | cut -d' ' -f2)"
cat >"$WORK/versions.json" <<JSON
{"suite": "$SUITE", "kernel_suite": "${KERNEL_SUITE:-$SUITE}", "kernel": "$kernel_release",
 "kernel_package": "$(pkg "linux-image-$kernel_release")", "openvswitch": "$(pkg openvswitch-switch-dpdk)",
 "dpdk": "$eal", "docker": "$(pkg docker.io)", "python": "$(pkg python3)",
 "debian": "$(cat "$ROOT/etc/debian_version")"}
JSON
cat "$WORK/versions.json"

say "making the root file system image"
mkdir -p "$OUT"
cp "$ROOT/boot/vmlinuz-$kernel_release" "$OUT/vmlinuz.partial"
cp "$ROOT/boot/initrd.img-$kernel_release" "$OUT/initrd.img.partial"
truncate -s "${DISK_GIB}G" "$WORK/root.raw"
mkfs.ext4 -q -F -L labctl-root -d "$ROOT" "$WORK/root.raw"
rm -rf "$ROOT"
qemu-img convert -O qcow2 "$WORK/root.raw" "$OUT/root.qcow2.partial"
mv "$OUT/vmlinuz.partial" "$OUT/vmlinuz"
mv "$OUT/initrd.img.partial" "$OUT/initrd.img"
mv "$OUT/root.qcow2.partial" "$OUT/root.qcow2"
cp "$WORK/versions.json" "$OUT/versions.json"
say "platform image in $OUT ($(du -sh "$OUT" | cut -f1)) in $(( $(date +%s) - started )) s"
