#!/usr/bin/env bash
# The one way labctl makes a guest's root file system, shared by the Vagrant box
# (scripts/build-box.sh) and the platform images (scripts/build-platform-image.sh,
# src/labctl/platforms.py): Debian from its archive with everything labctl needs inside.
#
#   scripts/guest-rootfs.sh --suite SUITE [--kernel-suite SUITE] [--include PKG,...] ROOT
#
#   --suite         the Debian release (bookworm, trixie)
#   --kernel-suite  where linux-image-amd64 comes from (default: SUITE; e.g.
#                   bookworm-backports for Debian 12 with a newer kernel)
#   --include       more packages for debootstrap (the box adds ssh, sudo, dhcp)
#
# What ROOT gets: debootstrap minbase of SUITE with systemd, udev, kmod,
# linux-image-amd64 and initramfs-tools; every Debian package that
# scripts/provision.sh installs (provision.sh --packages-only in the chroot, so the
# DPDK driver names come from that release's OVS-DPDK: src/labctl/core/dpdk.py); a
# wheelhouse of labctl's Python dependencies in /var/cache/labctl/wheels, built by
# the guest's own python3 (the guest's pip needs no index, and compiled wheels match
# the guest's Python); labctl's node image as a packed root file system in
# /var/cache/labctl/images (the guest imports it instead of running debootstrap).
# The system Open vSwitch services are masked: labctl starts its own daemons.
# The host's apt cache is shared with the chroot. ROOT is left unmounted.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MIRROR="${LABCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${LABCTL_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
LABCTL="${LABCTL:-$REPO_DIR/.venv/bin/labctl}"
# Files the root file system is made from (the callers hash them into their recipes).
RECIPE_FILES="scripts/guest-rootfs.sh scripts/provision.sh src/labctl/core/dpdk.py pyproject.toml src/labctl/backends/image.py"

say() { printf '==> %s\n' "$*"; }
die() { printf 'guest-rootfs: %s\n' "$*" >&2; exit 1; }

SUITE=""
KERNEL_SUITE=""
EXTRA=""
ROOT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --suite) SUITE="$2"; shift 2 ;;
    --kernel-suite) KERNEL_SUITE="$2"; shift 2 ;;
    --include) EXTRA="$2"; shift 2 ;;
    --print-recipe-files) echo "$RECIPE_FILES"; exit 0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) ROOT="$1"; shift ;;
  esac
done
[ -n "$SUITE" ] || die "--suite is required (bookworm, trixie)"
[ -n "$ROOT" ] || die "the root directory is required"
KERNEL_SUITE="${KERNEL_SUITE:-$SUITE}"
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
command -v debootstrap >/dev/null || die "debootstrap is missing: run scripts/provision.sh"
[ -e "/usr/share/debootstrap/scripts/$SUITE" ] || die "this debootstrap does not know $SUITE: apt-get install debootstrap from a newer release"
[ ! -e "$ROOT" ] || [ -z "$(ls -A "$ROOT")" ] || die "$ROOT is not empty"

unmount_chroot() {
  for mnt in var/cache/apt/archives dev/pts dev sys proc; do
    if mountpoint -q "$ROOT/$mnt" 2>/dev/null; then umount "$@" "$ROOT/$mnt"; fi
  done
}
trap 'unmount_chroot -l' EXIT

mkdir -p "$ROOT"
log="$(dirname "$ROOT")/debootstrap-$SUITE.log"
say "debootstrap $SUITE into $ROOT (the host's apt cache is reused)"
debootstrap --variant=minbase --cache-dir=/var/cache/apt/archives \
  --include="systemd-sysv,udev,dbus,kmod,initramfs-tools,iproute2,ca-certificates,python3${EXTRA:+,$EXTRA}" \
  "$SUITE" "$ROOT" "$MIRROR" >"$log" 2>&1 \
  || { tail -n 20 "$log" >&2; die "debootstrap failed (log above, $log); is $MIRROR reachable?"; }

mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
mount --bind /var/cache/apt/archives "$ROOT/var/cache/apt/archives"
# Packages must not start their services inside the build chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod +x "$ROOT/usr/sbin/policy-rc.d"
{
  printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
    "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY_MIRROR" "$SUITE"
  [ "$KERNEL_SUITE" = "$SUITE" ] || printf 'deb %s %s main\n' "$MIRROR" "$KERNEL_SUITE"
} >"$ROOT/etc/apt/sources.list"
rm -f "$ROOT/etc/apt/sources.list.d/debian.sources"

say "installing linux-image-amd64 from $KERNEL_SUITE"
chroot "$ROOT" apt-get update -qq
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends -t "$KERNEL_SUITE" linux-image-amd64 >/dev/null

say "installing what scripts/provision.sh installs (provision.sh --packages-only in the chroot)"
# provision.sh and what it reads (the DPDK driver lookup), at their repository paths.
for file in $RECIPE_FILES; do
  install -D -m 0644 "$REPO_DIR/$file" "$ROOT/tmp/labctl-repo/$file"
done
chroot "$ROOT" env INSTALL_VAGRANT=0 DEBIAN_FRONTEND=noninteractive \
  bash /tmp/labctl-repo/scripts/provision.sh --packages-only

# labctl runs its own ovsdb-server/ovs-vswitchd, as on the host: no system OVS.
chroot "$ROOT" systemctl disable openvswitch-switch.service ovsdb-server.service ovs-vswitchd.service >/dev/null 2>&1 || true
chroot "$ROOT" systemctl mask openvswitch-switch.service ovsdb-server.service ovs-vswitchd.service >/dev/null
# A throwaway VM must not start package downloads in the middle of a measurement.
chroot "$ROOT" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer >/dev/null
: >"$ROOT/etc/machine-id"

say "adding a wheelhouse of labctl's Python dependencies, built by the guest's python3"
# labctl's own wheel needs its package: the whole source tree goes in for the build and
# leaves again with that wheel (the guest gets labctl itself at run time).
cp -r "$REPO_DIR/src" "$ROOT/tmp/labctl-repo/"
cp "$REPO_DIR/README.md" "$ROOT/tmp/labctl-repo/" 2>/dev/null || true
# pip trusts what the host trusts (a proxy with its own CA), only for this build.
host_ca="${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}"
cp "$host_ca" "$ROOT/tmp/labctl-host-ca.crt"
chroot "$ROOT" python3 -m venv /tmp/labctl-wheel-venv
chroot "$ROOT" env -u PIP_FIND_LINKS PIP_CERT=/tmp/labctl-host-ca.crt \
  SSL_CERT_FILE=/tmp/labctl-host-ca.crt REQUESTS_CA_BUNDLE=/tmp/labctl-host-ca.crt \
  /tmp/labctl-wheel-venv/bin/pip wheel -q --wheel-dir /var/cache/labctl/wheels \
  "/tmp/labctl-repo[dev]" pip setuptools wheel
rm -f "$ROOT"/var/cache/labctl/wheels/labctl-*.whl
rm -rf "$ROOT/tmp/labctl-wheel-venv" "$ROOT/tmp/labctl-repo" "$ROOT/tmp/labctl-host-ca.crt"

say "adding labctl's node image (packed root file system) to the guest's cache"
rootfs_line="$("$LABCTL" image build --keep-rootfs | grep '^root file system: ')"
node_rootfs="${rootfs_line#root file system: }"
install -d "$ROOT/var/cache/labctl/images"
cp "$node_rootfs" "$ROOT/var/cache/labctl/images/"

rm -f "$ROOT/usr/sbin/policy-rc.d"
unmount_chroot
trap - EXIT
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/tmp/* "$ROOT"/var/log/*.log
say "root file system ready: $ROOT ($(du -sh "$ROOT" | cut -f1))"
