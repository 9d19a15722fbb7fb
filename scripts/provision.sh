#!/usr/bin/env bash
# Host provisioning for labctl, shared by the README, .ci/run and the Vagrantfile.
# Idempotent: run it as often as you like. Needs root (it installs packages,
# starts daemons and reserves hugepages).
#
#   scripts/provision.sh                  # packages, daemons, hugepages, .venv, node image
#   scripts/provision.sh --vm             # the same, plus qemu, libvirt and vagrant-libvirt
#                                         # (libvirtd started), for the fresh-VM path
#   scripts/provision.sh --packages-only  # only the Debian packages (the box builder runs this
#                                         # inside the guest's root file system)
#   SKIP_IMAGE=1 scripts/provision.sh     # everything but the node image build
set -euo pipefail

WITH_VM=0
PACKAGES_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --vm) WITH_VM=1 ;;
    --packages-only) PACKAGES_ONLY=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) printf 'provision: unknown option %s (see --help)\n' "$arg" >&2; exit 2 ;;
  esac
done

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV_DIR="${VENV_DIR:-$REPO_DIR/.venv}"
PYTHON="${PYTHON:-python3}"
HUGEPAGES="${HUGEPAGES:-1024}"          # 2 MiB pages: 2 GiB, enough for OVS-DPDK socket memory
LOG_DIR="${LABCTL_LOG_DIR:-/var/log/labctl}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'provision: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (sudo $0): it installs packages and starts dockerd"
command -v apt-get >/dev/null || die "needs a Debian or Ubuntu host (apt-get not found)"

DEB_PACKAGES=(
  docker.io            # node runtime (dockerd + containerd)
  # Where the kernel has AppArmor (Debian's, Ubuntu's), dockerd loads its docker-default
  # profile with apparmor_parser and refuses to start any container without it.
  apparmor
  openvswitch-switch-dpdk  # ovsdb-server, ovs-vswitchd and its DPDK build (drivers: below)
  iproute2 iptables nftables ethtool kmod procps util-linux
  tcpdump tshark       # taps and a second opinion on the pcaps
  wireshark-common     # dumpcap: the pcapng captures of the analyze tests
  debootstrap debian-archive-keyring  # builds the node image locally (no registry needed)
  iperf3 curl ca-certificates
  iputils-ping         # ping: icmp probes of netns nodes (host binaries in a namespace)
  busybox              # httpd of the netns runtime's nodes (host binaries in a namespace)
  python3 python3-venv python3-dev gcc
)
# The test suite validates the Vagrantfile; the Vagrant VM itself does not need vagrant.
if [ "${INSTALL_VAGRANT:-1}" = "1" ] && [ "$PACKAGES_ONLY" = "0" ]; then
  DEB_PACKAGES+=(vagrant)
fi
# The test suite's completion tests drive a real zsh (and bash, which every host has).
if [ "$PACKAGES_ONLY" = "0" ]; then
  DEB_PACKAGES+=(zsh)
fi
if [ "$WITH_VM" = "1" ]; then
  DEB_PACKAGES+=(
    qemu-system-x86 qemu-utils        # the VM (TCG where KVM does not run guests)
    libvirt-daemon-system libvirt-clients vagrant-libvirt
    dnsmasq-base                      # DHCP/DNS of vagrant-libvirt's management network
    rsync                             # Vagrant's rsync synced folder
    # scripts/build-box.sh: a bootable disk image without loop devices or a helper VM
    fdisk syslinux syslinux-common mtools dosfstools e2fsprogs
  )
fi

missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # tshark asks whether non-root users may capture; the default (no) is fine.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages already installed"
fi

# DPDK drivers are separate packages, named after the ABI of the DPDK that this
# OVS-DPDK uses (librte-net-af-packet23 on Debian 12, ...24 on Ubuntu 24.04):
# af_packet attaches a veth as a DPDK port, mempool-ring backs every port's mbuf pool
# ("Failed to create mempool" without it). src/labctl/core/dpdk.py reads the ABI.
dpdk_packages="$(apt-cache depends openvswitch-switch-dpdk \
  | python3 -I -S "$REPO_DIR/src/labctl/core/dpdk.py" packages)" \
  || die "cannot tell which DPDK openvswitch-switch-dpdk uses (see above)"
missing_dpdk=()
for pkg in $dpdk_packages; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_dpdk+=("$pkg")
done
if [ "${#missing_dpdk[@]}" -gt 0 ]; then
  say "installing the DPDK drivers of the installed OVS-DPDK: ${missing_dpdk[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing_dpdk[@]}" >/dev/null
else
  say "DPDK drivers already installed: $(echo $dpdk_packages)"
fi

if [ "$PACKAGES_ONLY" = "1" ]; then
  say "Debian packages in place (--packages-only)"
  exit 0
fi

mkdir -p "$LOG_DIR"

if [ "$WITH_VM" = "1" ]; then
  # libvirtd without systemd (containers, CI): start the daemons ourselves.
  if virsh -c qemu:///system version >/dev/null 2>&1; then
    say "libvirtd is running"
  elif command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    say "starting libvirtd.service"
    systemctl start virtlogd.service libvirtd.service
  else
    say "starting virtlogd and libvirtd"
    pgrep -x virtlogd >/dev/null || virtlogd -d
    libvirtd -d
    for _ in $(seq 1 30); do
      virsh -c qemu:///system version >/dev/null 2>&1 && break
      sleep 1
    done
    virsh -c qemu:///system version >/dev/null 2>&1 || die "libvirtd did not answer within 30 s; see /var/log/libvirt/"
  fi
fi

# dockerd: there may be no systemd (containers, CI), so start it ourselves.
if docker info >/dev/null 2>&1; then
  say "dockerd is running"
else
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    say "starting docker.service"
    systemctl start docker
  else
    say "starting dockerd (log: $LOG_DIR/dockerd.log)"
    nohup dockerd >>"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "dockerd did not come up within 60 s; see $LOG_DIR/dockerd.log"
fi

# Bridged traffic must not be silently dropped by dockerd's FORWARD policy; labctl
# adds its own narrowly scoped ACCEPT rule per lab, nothing is changed here.
modprobe br_netfilter 2>/dev/null || true
modprobe openvswitch 2>/dev/null || say "no openvswitch kernel module: ovs-kernel cannot run here (ovs-userspace and ovs-dpdk can)"

# Hugepages for OVS-DPDK.
current="$(cat /proc/sys/vm/nr_hugepages)"
if [ "$current" -lt "$HUGEPAGES" ]; then
  say "reserving $HUGEPAGES hugepages of 2 MiB (had $current)"
  echo "$HUGEPAGES" > /proc/sys/vm/nr_hugepages
fi
# The kernel may reserve fewer than asked when memory is fragmented.
reserved="$(cat /proc/sys/vm/nr_hugepages)"
[ "$reserved" -ge 128 ] || die "only $reserved hugepages could be reserved; OVS-DPDK needs at least 128 (256 MiB): free memory or reboot, then run this again"
if ! grep -qs ' hugetlbfs ' /proc/mounts; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs nodev /dev/hugepages
fi
say "hugepages: $(cat /proc/sys/vm/nr_hugepages) total, mounted at $(awk '$3=="hugetlbfs"{print $2; exit}' /proc/mounts)"

# Python environment.
if [ ! -x "$VENV_DIR/bin/python" ]; then
  say "creating virtualenv $VENV_DIR"
  "$PYTHON" -m venv "$VENV_DIR"
fi
# A wheelhouse (the VM box carries one: scripts/build-box.sh) needs no package index.
WHEELHOUSE="${LABCTL_WHEELHOUSE:-/var/cache/labctl/wheels}"
pip_install() { "$VENV_DIR/bin/pip" install -q "$@"; }
if [ -d "$WHEELHOUSE" ] \
  && pip_install --no-index --find-links "$WHEELHOUSE" --upgrade pip >/dev/null \
  && pip_install --no-index --find-links "$WHEELHOUSE" -e "$REPO_DIR[dev]"; then
  say "installed labctl into $VENV_DIR from the wheelhouse $WHEELHOUSE"
else
  [ -d "$WHEELHOUSE" ] && say "the wheelhouse $WHEELHOUSE lacks a dependency: using the package index"
  say "installing labctl into $VENV_DIR"
  pip_install --upgrade pip >/dev/null
  pip_install -e "$REPO_DIR[dev]"
fi

if [ -z "${SKIP_IMAGE:-}" ]; then
  say "building the node image (cached; rebuilt only when its recipe changes)"
  "$VENV_DIR/bin/labctl" image build
fi

say "done. Activate with: source $VENV_DIR/bin/activate"
