#!/usr/bin/env bash
# The fresh-VM path end to end, as .ci/run and benchmarks/vm_path.py run it:
# the local box (built or from its cache), `vagrant up` (provisioning and the
# veth-checksum matrix inside the VM), a check of the report that came back,
# `vagrant destroy -f`, and a check that the host's libvirt domains, volumes,
# networks, dnsmasq processes and iptables rules are as they were before.
#
#   scripts/vagrant-matrix.sh        # needs scripts/provision.sh --vm first
#
# Prints one "vm-path: STEP SECONDS" line per step (the benchmark reads them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_DIR="$PWD"
VIRSH=(virsh -c qemu:///system)
STATE_DIR="$(mktemp -d /tmp/labctl-vm-path.XXXXXX)"

say() { printf '==> %s\n' "$*"; }
die() { printf 'vagrant-matrix: %s\n' "$*" >&2; exit 1; }
timed() {  # timed STEP CMD...: runs CMD, prints how long it took
  local step="$1" start rc=0 ms
  shift
  start=$(date +%s%N)
  "$@" || rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf 'vm-path: %s %d.%d\n' "$step" $((ms / 1000)) $((ms % 1000 / 100))
  return "$rc"
}

host_state() {  # what a VM may leave behind, one sorted line each
  {
    "${VIRSH[@]}" list --all --name | sed '/^$/d; s/^/domain /'
    for pool in $("${VIRSH[@]}" pool-list --all --name); do
      "${VIRSH[@]}" vol-list "$pool" 2>/dev/null | awk -v p="$pool" 'NR>2 && $1 {print "volume " p "/" $1}'
    done
    "${VIRSH[@]}" net-list --all --name | sed '/^$/d; s/^/network /'
    # (a dnsmasq that exited but is not reaped yet is gone, not left behind)
    ps -eo stat=,args= | awk '$1 !~ /^Z/ && $2 ~ /dnsmasq/ {$1 = "dnsmasq"; print}' 
    # libvirtd's own scaffolding is not the VM's: at its first network start it creates
    # its LIBVIRT_* chains and a jump into each from the built-in chains (in tables it may
    # use for the first time), and keeps them while it runs. What a network puts inside
    # those chains still counts.
    iptables-save 2>/dev/null | grep -v '^[#:*]' | grep -v '^COMMIT' \
      | grep -Ev '^-A (INPUT|FORWARD|OUTPUT|PREROUTING|POSTROUTING) -j LIBVIRT_[A-Z]+$' \
      | sed 's/\[[0-9:]*\]//; s/^/iptables /' || true
    ip -o link show | awk -F': ' '{print "link " $2}' | sed 's/@.*//'
  } | sort
}

"${VIRSH[@]}" version >/dev/null 2>&1 || die "libvirtd does not answer: run scripts/provision.sh --vm"
timed box bash scripts/build-box.sh
box="$(bash scripts/build-box.sh --print-name)"
# After the box step: it removes older recipes' boxes and their volumes, which are its own.
host_state >"$STATE_DIR/before"
# vagrant-libvirt uploads the box into the default pool once and keeps it; when that
# happens in this run, the volume goes again at the end, like everything else new.

# vagrant-libvirt redraws an upload progress line thousands of times: keep the log readable.
quiet_progress() { sed -u -e 's/\x1b\[K//g' -e 's/\r/\n/g' | grep --line-buffered -v '^Progress: [0-9]*%' || true; }
vagrant_up() { vagrant up --provider=libvirt 2>&1 | quiet_progress; return "${PIPESTATUS[0]}"; }

up_rc=0
LABCTL_BOX=local timed up vagrant_up || up_rc=$?

report="$(ls -d reports/veth-checksum/*/ 2>/dev/null | sort | tail -n 1)"
check_rc=0
if [ -n "$report" ] && [ -f "$report/report.json" ]; then
  say "checking $report"
  python3 - "$report" <<'PY' || check_rc=$?
import json, sys
from pathlib import Path

run = Path(sys.argv[1])
report = json.loads((run / "report.json").read_text())
missing = [f for f in ("report.json", "report.md", "junit.xml", "report.html") if not (run / f).is_file()]
cells = report["cells"]
expected_cells = len(report["switches"]) * len(report["offloads"])
problems = []
if missing:
    problems.append(f"missing files: {missing}")
if "ovs-kernel" not in report["switches"]:
    problems.append("the matrix has no ovs-kernel column")
if len(cells) != expected_cells:
    problems.append(f"{len(cells)} cells, expected {expected_cells}")
for cell in cells:
    name = f"{cell['switch']}/{cell['offload']}"
    if cell["status"] != "passed":
        problems.append(f"{name}: {cell['status']} ({cell.get('reason')})")
for cell in cells:
    print(f"  {cell['switch']:14} {cell['offload']:12} {cell['status']}")
kernel = report.get("host", {}).get("kernel", "?")
print(f"  {len(cells)} cells on {kernel}: " + ("all as expected" if not problems else "; ".join(problems)))
sys.exit(1 if problems else 0)
PY
else
  echo "vagrant-matrix: no report came back into reports/veth-checksum/" >&2
  check_rc=1
fi

timed destroy vagrant destroy -f
# The box's image in the pool is new only on a first run; it is the box's cache, but a
# run must leave the host as it found it.
for vol in $("${VIRSH[@]}" vol-list default 2>/dev/null | awk -v b="$box" 'index($1, b "_vagrant_box_image") == 1 {print $1}'); do
  grep -qx "volume default/$vol" "$STATE_DIR/before" || "${VIRSH[@]}" vol-delete --pool default "$vol" >/dev/null
done

host_state >"$STATE_DIR/after"
if ! diff -u "$STATE_DIR/before" "$STATE_DIR/after" >"$STATE_DIR/diff"; then
  echo "vagrant-matrix: the host is not as before (+ left behind, - removed):" >&2
  grep '^[+-][^+-]' "$STATE_DIR/diff" >&2
  rm -rf "$STATE_DIR"
  exit 1
fi
rm -rf "$STATE_DIR"
say "host clean: no domain, volume, network, dnsmasq, iptables rule or link left behind"
[ "$up_rc" -eq 0 ] || die "vagrant up failed (exit $up_rc)"
[ "$check_rc" -eq 0 ] || die "the VM's report is not as the lab expects"
say "fresh VM: every cell ran and is as expected"
