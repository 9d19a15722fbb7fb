"""The Vagrantfile is valid for Vagrant (Debian's package, installed by provision.sh) and
chooses box and libvirt driver as its header says. The VM itself runs in .ci/run
(scripts/vagrant-matrix.sh): minutes under TCG, too long for a test."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from labctl.backends import kvm_probe

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def vagrant(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("vagrant"), "vagrant is not installed: run scripts/provision.sh"
    return subprocess.run(
        ["vagrant", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
    )


def test_vagrantfile_validates() -> None:
    done = vagrant("validate", "--ignore-provider")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Vagrantfile validated successfully" in done.stdout


def test_bad_settings_are_named_without_a_traceback() -> None:
    done = vagrant("validate", "--ignore-provider", LABCTL_BOX="catalogue")
    assert done.returncode != 0
    assert 'LABCTL_BOX must be local or public, not "catalogue"' in done.stderr
    assert "Traceback" not in done.stderr and ".rb:" not in done.stderr


def test_box_and_driver_follow_the_settings_and_the_kvm_probe() -> None:
    local = subprocess.run(
        ["bash", "scripts/build-box.sh", "--print-name"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert re.fullmatch(r"labctl-debian12-[0-9a-f]{12}", local)
    # The helpers are plain Ruby methods: ask Ruby for their answers under each setting.
    probe = "kvm" if kvm_probe.probe("kvm").works else "qemu"
    for env, box, driver in (
        ({"LABCTL_BOX": "local"}, local, probe),
        ({"LABCTL_BOX": "public", "LABCTL_VM_DRIVER": "qemu"}, "debian/bookworm64", "qemu"),
        ({"LABCTL_BOX": "public", "LABCTL_VM_DRIVER": "kvm"}, "debian/bookworm64", "kvm"),
    ):
        done = subprocess.run(
            ["ruby", "-e", RUBY_ASK],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [box, driver], env


# Loads the Vagrantfile with a stand-in for Vagrant.configure, then calls its helpers.
RUBY_ASK = """
module Vagrant
  module Errors
    class VagrantError < StandardError; def initialize(*) super(error_message) end; end
  end
  def self.configure(_version) end
end
load "Vagrantfile"
puts labctl_box
puts labctl_libvirt_driver
"""


def test_reports_come_back_without_nfs_and_the_vm_runs_the_shared_script() -> None:
    text = (ROOT / "Vagrantfile").read_text()
    # A synced folder without a type is NFS on libvirt: every one must name its type.
    for line in re.findall(r"synced_folder[^\n]*", text):
        assert "type:" in line, line
    assert "machine.communicate.download" in text
    assert "bash scripts/provision.sh" in text
    assert "modprobe openvswitch" in text
    assert "labctl matrix labs/veth-checksum" in text
    assert "lv.cpus = 2" in text and "vb.cpus = 2" in text
