#!/usr/bin/env bash
# Builds labctl's Vagrant box for the libvirt provider from Debian packages only,
# for hosts that cannot reach a box catalogue, and adds it with `vagrant box add`.
#
#   scripts/build-box.sh               # build (or reuse the cached box) and add it
#   scripts/build-box.sh --print-name  # the box name of the current recipe, nothing else
#   scripts/build-box.sh --force       # rebuild even when the recipe did not change
#
# What is in the box: the root file system of scripts/guest-rootfs.sh, the one guest
# builder (shared with the platform images of `labctl matrix --platform`): Debian
# bookworm (debootstrap minbase) with linux-image-amd64, systemd, every Debian package
# that scripts/provision.sh installs, a wheelhouse of labctl's Python dependencies (the
# guest needs no network for packages), labctl's node image as a packed root file
# system (the guest imports it instead of running debootstrap), the system Open vSwitch
# service masked (labctl starts its own daemons, as on the host); and for Vagrant:
# openssh-server, sudo, rsync, DHCP, the vagrant user with Vagrant's insecure key.
#
# The disk is made without loop devices or a helper VM: sfdisk writes the partition
# table into a sparse file, mkfs.fat/mtools/syslinux make the boot partition at its
# offset, mkfs.ext4 -d fills the root partition at its offset, qemu-img converts to
# qcow2. The box boots with its own bootloader (syslinux), so it works wherever
# vagrant-libvirt runs, without kernel paths on the host.
#
# Cached by the hash of its recipe (RECIPE_FILES below): the box
# name carries the hash, the .box file stays in $LABCTL_BOX_CACHE
# (default /var/cache/labctl/box), and nothing is rebuilt until the recipe changes.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${LABCTL_BOX_CACHE:-/var/cache/labctl/box}"
MIRROR="${LABCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${LABCTL_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
SUITE=bookworm
DISK_GIB=20
BOOT_MIB=256
LABCTL="${LABCTL:-$REPO_DIR/.venv/bin/labctl}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'build-box: %s\n' "$*" >&2; exit 1; }

FORCE=0
PRINT_NAME=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --print-name) PRINT_NAME=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) die "unknown option $arg (see --help)" ;;
  esac
done

# What the box is made from: this script and what scripts/guest-rootfs.sh (the root file
# system, shared with the platform images) is made from.
RECIPE_FILES="scripts/build-box.sh $(bash "$REPO_DIR/scripts/guest-rootfs.sh" --print-recipe-files)"
recipe_hash() {
  (cd "$REPO_DIR" && cat $RECIPE_FILES) | sha256sum | cut -c1-12
}
BOX_NAME="labctl-debian12-$(recipe_hash)"
if [ "$PRINT_NAME" = "1" ]; then
  echo "$BOX_NAME"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it)"
for tool in debootstrap sfdisk mkfs.fat mcopy syslinux mkfs.ext4 qemu-img vagrant; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/provision.sh --vm first"
done
MBR=/usr/lib/syslinux/mbr/mbr.bin
[ -f "$MBR" ] || die "$MBR is missing: apt-get install syslinux-common (scripts/provision.sh --vm)"
INSECURE_KEY="$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n 1 || true)"
[ -n "$INSECURE_KEY" ] || INSECURE_KEY="$(ls /opt/vagrant/embedded/gems/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n 1 || true)"
[ -n "$INSECURE_KEY" ] || die "Vagrant's insecure public key (keys/vagrant.pub in the vagrant gem) was not found: apt-get install vagrant"

box_added() { vagrant box list 2>/dev/null | grep -q "^$BOX_NAME "; }
BOX_FILE="$CACHE_DIR/$BOX_NAME.box"

if [ "$FORCE" = "0" ] && box_added; then
  say "box $BOX_NAME is added and up to date"
  exit 0
fi

started=$(date +%s)
if [ "$FORCE" = "1" ] || [ ! -f "$BOX_FILE" ]; then
  WORK="$(mktemp -d /var/tmp/labctl-box.XXXXXX)"
  ROOT="$WORK/rootfs"
  unmount_chroot() {
    for mnt in var/cache/apt/archives dev/pts dev sys proc; do
      if mountpoint -q "$ROOT/$mnt" 2>/dev/null; then umount "$@" "$ROOT/$mnt"; fi
    done
  }
  cleanup() {
    unmount_chroot -l
    rm -rf "$WORK"
  }
  trap cleanup EXIT

  # The root file system: the one guest builder, shared with the platform images.
  bash "$REPO_DIR/scripts/guest-rootfs.sh" --suite "$SUITE" \
    --include openssh-server,sudo,rsync,ifupdown,isc-dhcp-client "$ROOT"

  say "configuring the guest: vagrant user, ssh, network, boot"
  chroot "$ROOT" useradd --create-home --shell /bin/bash --groups sudo,docker vagrant
  echo 'vagrant:vagrant' | chroot "$ROOT" chpasswd
  echo 'vagrant ALL=(ALL) NOPASSWD: ALL' >"$ROOT/etc/sudoers.d/vagrant"
  chmod 0440 "$ROOT/etc/sudoers.d/vagrant"
  install -d -m 0700 "$ROOT/home/vagrant/.ssh"
  install -m 0600 "$INSECURE_KEY" "$ROOT/home/vagrant/.ssh/authorized_keys"
  chroot "$ROOT" chown -R vagrant:vagrant /home/vagrant/.ssh
  echo 'UseDNS no' >"$ROOT/etc/ssh/sshd_config.d/vagrant.conf"
  # Every VM made from the box gets its own host keys, at its first boot.
  rm -f "$ROOT"/etc/ssh/ssh_host_*
  mkdir -p "$ROOT/etc/systemd/system/ssh.service.d"
  # (ssh.service checks its config with `sshd -t` first, which fails without keys.)
  printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
    >"$ROOT/etc/systemd/system/ssh.service.d/host-keys.conf"
  echo labctl >"$ROOT/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 labctl\n::1 localhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
  printf 'LABEL=labctl-root / ext4 defaults,noatime 0 1\n' >"$ROOT/etc/fstab"
  printf 'auto lo\niface lo inet loopback\n\nallow-hotplug eth0\niface eth0 inet dhcp\n' >"$ROOT/etc/network/interfaces"

  say "making the disk image (partition table, syslinux boot partition, ext4 root)"
  kernel="$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -n 1)"
  initrd="$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -n 1)"
  raw="$WORK/disk.raw"
  boot_start=2048                                  # sectors of 512 bytes
  boot_sectors=$((BOOT_MIB * 2048))
  root_start=$((boot_start + boot_sectors))
  truncate -s "${DISK_GIB}G" "$raw"
  printf 'label: dos\nstart=%s, size=%s, type=e, bootable\nstart=%s, type=83\n' \
    "$boot_start" "$boot_sectors" "$root_start" | sfdisk --quiet "$raw"
  mkfs.fat -F 16 -s 16 -n LABCTLBOOT --offset "$boot_start" "$raw" $((BOOT_MIB * 1024)) >/dev/null
  cat >"$WORK/syslinux.cfg" <<CFG
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=LABEL=labctl-root rw console=tty0 console=ttyS0,115200 net.ifnames=0 biosdevname=0
CFG
  boot_at="$raw@@$((boot_start * 512))"
  mcopy -i "$boot_at" "$kernel" ::/vmlinuz
  mcopy -i "$boot_at" "$initrd" ::/initrd.img
  mcopy -i "$boot_at" "$WORK/syslinux.cfg" ::/syslinux.cfg
  syslinux --offset $((boot_start * 512)) --install "$raw"
  dd if="$MBR" of="$raw" bs=440 count=1 conv=notrunc status=none
  root_bytes=$(( DISK_GIB * 1024 * 1024 * 1024 - root_start * 512 ))
  mkfs.ext4 -q -F -L labctl-root -E "offset=$((root_start * 512))" -d "$ROOT" "$raw" "$((root_bytes / 1024))k"
  rm -rf "$ROOT"

  say "packing the box"
  qemu-img convert -O qcow2 "$raw" "$WORK/box.img"
  rm -f "$raw"
  printf '{"provider": "libvirt", "format": "qcow2", "virtual_size": %s}\n' "$DISK_GIB" >"$WORK/metadata.json"
  cat >"$WORK/Vagrantfile" <<'VF'
# labctl's locally built Debian 12 box (scripts/build-box.sh): it boots with its own
# bootloader from a virtio disk.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
VF
  mkdir -p "$CACHE_DIR"
  tar -C "$WORK" -cf "$BOX_FILE.partial" metadata.json Vagrantfile box.img
  mv "$BOX_FILE.partial" "$BOX_FILE"
  # Older recipes' boxes can never be used again.
  find "$CACHE_DIR" -maxdepth 1 -name 'labctl-debian12-*.box' ! -name "$BOX_NAME.box" -delete
  say "built $BOX_FILE ($(du -h "$BOX_FILE" | cut -f1)) in $(( $(date +%s) - started )) s"
fi

say "vagrant box add $BOX_NAME"
vagrant box add --force --name "$BOX_NAME" "$BOX_FILE" >/dev/null
# Boxes of older recipes, and the images vagrant-libvirt uploaded for them, go.
for old in $(vagrant box list 2>/dev/null | awk '/^labctl-debian12-/ {print $1}' | sort -u); do
  [ "$old" = "$BOX_NAME" ] && continue
  vagrant box remove --force --all "$old" >/dev/null 2>&1 || true
done
if command -v virsh >/dev/null && virsh -c qemu:///system pool-info default >/dev/null 2>&1; then
  for vol in $(virsh -c qemu:///system vol-list default 2>/dev/null | awk '/^ *labctl-debian12-/ {print $1}'); do
    case "$vol" in "$BOX_NAME"_vagrant_box_image_*) continue ;; esac
    virsh -c qemu:///system vol-delete --pool default "$vol" >/dev/null 2>&1 || true
  done
fi
say "box $BOX_NAME is ready ($(( $(date +%s) - started )) s): LABCTL_BOX=local vagrant up"
