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

say "a small initrd: the root disk's modules, and a /init that mounts it"
# Debian's initrd (initramfs-tools: every storage driver, udev, ~36 MB compressed) took
# most of the guest's boot under TCG. A VM of this image has one disk, virtio-blk with
# ext4 on it (src/labctl/backends/platform_vm.py), so its initrd only loads those modules
# (with their dependencies: depmod over just these), mounts /dev/vda and hands over to the
# kernel command line's init=. Uncompressed: the kernel unpacks it without inflating.
INITRD="$ROOT/tmp/labctl-initrd"
[ -L "$ROOT/bin" ] || die "the root file system is not merged-/usr: the initrd recipe assumes it"
mkdir -p "$INITRD"/{proc,sys,dev,run,root,usr/bin,usr/sbin,usr/lib,usr/lib64}
for dir in bin sbin lib lib64; do ln -s "usr/$dir" "$INITRD/$dir"; done
# The root disk's modules, and 9p's for the guest's shares (scripts/platform-guest-init),
# loaded by one modprobe (a process start costs a tenth of a second and more under TCG).
INITRD_MODULES="virtio_pci virtio_blk ext4 9p 9pnet_virtio"
for module in $INITRD_MODULES; do
  chroot "$ROOT" modprobe -S "$kernel_release" --show-depends "$module"
done | awk '$1 == "insmod" { print $2 }' | sort -u >"$WORK/initrd-modules"
grep -q '/virtio_blk\.ko' "$WORK/initrd-modules" && grep -q '/ext4\.ko' "$WORK/initrd-modules" \
  || die "modprobe did not resolve virtio_blk and ext4 to modules: $(cat "$WORK/initrd-modules")"
echo "$INITRD_MODULES" >"$INITRD/modules"
tools="/usr/bin/bash /usr/bin/kmod /usr/bin/mount /usr/bin/sleep /usr/sbin/switch_root"
# The tools' shared libraries, as the guest's own loader resolves them, each at its real
# path and, where the loader names it through a symlink, at that name too.
libs="$(chroot "$ROOT" ldd $tools | grep -o '/[^ ]*\.so[^ ]*' | sort -u)"
for file in $(cat "$WORK/initrd-modules") $tools $libs; do
  real="$(chroot "$ROOT" readlink -f "$file")"
  [ -e "$INITRD$real" ] || install -D -m 0755 "$ROOT$real" "$INITRD$real"
  [ "$file" = "$real" ] || [ -e "$INITRD$file" ] || ln -s "$real" "$INITRD$file"
done
ln -s kmod "$INITRD/usr/bin/modprobe"
for file in modules.order modules.builtin modules.builtin.modinfo; do
  cp "$ROOT/usr/lib/modules/$kernel_release/$file" "$INITRD/usr/lib/modules/$kernel_release/"
done
chroot "$ROOT" depmod -b /tmp/labctl-initrd "$kernel_release"
cat >"$INITRD/init" <<'INIT'
#!/usr/bin/bash
# The initrd of a labctl platform image (scripts/build-platform-image.sh): load the root
# disk's modules, mount it, switch to it and run the kernel command line's init=.
export PATH=/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
modprobe -a $(</modules)
root=/dev/vda init=/sbin/init
for word in $(</proc/cmdline); do
  case "$word" in root=*) root="${word#root=}" ;; init=*) init="${word#init=}" ;; esac
done
for ((i = 0; i < 200; i++)); do [ -b "$root" ] && break; sleep 0.05; done
if ! mount -t ext4 -o rw "$root" /root; then
  echo "labctl initrd: cannot mount $root as the root file system; powering off"
  echo o >/proc/sysrq-trigger
fi
# switch_root moves /proc, /sys and /dev into the new root.
exec switch_root /root "$init"
INIT
chmod 0755 "$INITRD/init"

say "making the root file system image"
mkdir -p "$OUT"
cp "$ROOT/boot/vmlinuz-$kernel_release" "$OUT/vmlinuz.partial"
# The kernel as an uncompressed ELF with its PVH entry point (Debian's kernels have
# CONFIG_PVH): qemu starts it directly, without the bzImage inflating itself, which takes
# seconds under TCG. Where there is none, VMs boot vmlinuz.
if python3 "$REPO_DIR/scripts/extract-pvh-kernel.py" "$OUT/vmlinuz.partial" "$OUT/vmlinux.partial"; then
  mv "$OUT/vmlinux.partial" "$OUT/vmlinux"
else
  rm -f "$OUT/vmlinux.partial" "$OUT/vmlinux"
fi
chroot "$ROOT" sh -c 'cd /tmp/labctl-initrd && find . | cpio --quiet -o -H newc' \
  >"$OUT/initrd.img.partial"
rm -rf "$INITRD"
truncate -s "${DISK_GIB}G" "$WORK/root.raw"
mkfs.ext4 -q -F -L labctl-root -d "$ROOT" "$WORK/root.raw"
rm -rf "$ROOT"
qemu-img convert -O qcow2 "$WORK/root.raw" "$OUT/root.qcow2.partial"
mv "$OUT/vmlinuz.partial" "$OUT/vmlinuz"
mv "$OUT/initrd.img.partial" "$OUT/initrd.img"
mv "$OUT/root.qcow2.partial" "$OUT/root.qcow2"
cp "$WORK/versions.json" "$OUT/versions.json"
say "platform image in $OUT ($(du -sh "$OUT" | cut -f1)) in $(( $(date +%s) - started )) s"
